"""`voicebus replay`: the bus's events of a time window, delivered again.

Against AWS, EventBridge replays them from the bus's archive (stack outputs
`EventArchiveArn`, `EventBusArn`): to every rule, or with `--rule` to that rule only
(the replay's `FilterArns`). Locally there is no archive: the local bus writes every
event put on it to `BusRecordFile` (JSON lines, the delivered shape), and the replay
puts the window's events back on the bus, or with `--rule` sends only those matching
the rule's pattern in template.yaml (moto's matcher, as EventBridge would) to that
rule's queue. Either way every function behind the chosen rules hears the events
again; the consumers dedupe on the webhook id, your own functions may not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from voicebus_cli.cli_errors import CliError, UsageError
from voicebus_cli.operations import Target, TargetError


def parse_time(text: str, option: str) -> datetime:
    """An ISO 8601 time; one without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{option}: not an ISO 8601 time: {text!r} (e.g. 2026-11-21T10:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        if self.since >= self.until:
            raise UsageError("--since must be earlier than --until")

    def holds(self, event: dict[str, Any]) -> bool:
        try:
            moment = parse_time(str(event.get("time", "")), "time")
        except UsageError:
            return False
        return self.since <= moment < self.until


def _one(matches: list[str], what: str, name: str, known: list[str]) -> str:
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(f"no {what} named like {name!r}; there are: {', '.join(sorted(known)) or 'none'}")
    raise UsageError(f"{name!r} names {len(matches)} {what}s: {', '.join(sorted(matches))}; be more specific")


# ---------------------------------------------------------------------------- AWS


def replay_from_archive(target: Target, window: Window, rule: str | None) -> str:
    """Start an EventBridge replay; returns the line to print (the replay's name and state)."""
    if not target.bus_name and not target.bus_arn:
        raise TargetError("replay needs the bus and its archive: --stack (outputs EventBusArn, EventArchiveArn)")
    events = boto3.client("events")
    bus_arn = target.bus_arn or events.describe_event_bus(Name=str(target.bus_name))["Arn"]
    bus_name = target.bus_name or bus_arn.rsplit("/", 1)[-1]
    archive_arn = target.archive_arn or _archive_of(events, bus_arn)
    destination: dict[str, Any] = {"Arn": bus_arn}
    if rule:
        rules: dict[str, str] = {}
        for page in _rule_pages(events, bus_name):
            rules.update({item["Name"]: item["Arn"] for item in page.get("Rules", [])})
        chosen = _one([name for name in rules if rule in name], "rule", rule, list(rules))
        destination["FilterArns"] = [rules[chosen]]
    name = f"voicebus-{datetime.now(UTC):%Y%m%dT%H%M%S}-{(rule or 'all')}"[:64]
    name = "".join(char if char.isalnum() or char in "-_." else "-" for char in name)
    answer = events.start_replay(
        ReplayName=name,
        EventSourceArn=archive_arn,
        EventStartTime=window.since,
        EventEndTime=window.until,
        Destination=destination,  # type: ignore[arg-type]
    )
    scope = f" to rule {destination['FilterArns'][0].rsplit('/', 1)[-1]}" if rule else " to every rule"
    return f"replay {name}: {answer.get('State', '?')}{scope} (`aws events describe-replay --replay-name {name}`)"


def _archive_of(events: Any, bus_arn: str) -> str:
    archives = events.list_archives(EventSourceArn=bus_arn).get("Archives", [])
    if not archives:
        raise CliError(f"the bus {bus_arn} has no archive to replay from (stack output EventArchiveArn)")
    name = archives[0]["ArchiveName"]
    return str(events.describe_archive(ArchiveName=name)["ArchiveArn"])


def _rule_pages(events: Any, bus_name: str) -> list[dict[str, Any]]:
    pages, token = [], None
    while True:
        page = events.list_rules(EventBusName=bus_name, **({"NextToken": token} if token else {}))
        pages.append(page)
        token = page.get("NextToken")
        if not token:
            return pages


# ---------------------------------------------------------------------------- local


def recorded_events(path: Path, window: Window) -> list[dict[str, Any]]:
    """The events the local bus recorded within the window, in the order they were put."""
    if not path.exists():
        raise CliError(f"the local bus has recorded nothing yet ({path} not found)")
    found = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            raise CliError(f"{path}:{number}: not a JSON line") from None
        if isinstance(event, dict) and window.holds(event):
            found.append(event)
    return found


def rule_pattern(key: str) -> dict[str, Any]:
    """The pattern of rule `<FunctionLogicalId>/<EventName>` in template.yaml."""
    from voicebus_cli.local.template import load_template, resources_with_globals

    logical, _, event_name = key.partition("/")
    resource = resources_with_globals(load_template()).get(logical, {})
    event = resource.get("Properties", {}).get("Events", {}).get(event_name)
    if not isinstance(event, dict) or "Pattern" not in event.get("Properties", {}):
        raise CliError(f"template.yaml has no EventBridge rule {key}")
    pattern: dict[str, Any] = event["Properties"]["Pattern"]
    return pattern


def replay_locally(target: Target, window: Window, rule: str | None) -> str:
    if target.bus_record_file is None:
        raise CliError("the local stack records no bus events (no BusRecordFile in local.json): restart `make local`")
    events = recorded_events(target.bus_record_file, window)
    if rule:
        return _send_to_rule(target, events, rule)
    if not target.bus_name:
        raise CliError("local.json names no EventBusName: restart `make local`")
    client = boto3.client("events")
    failed = 0
    for start in range(0, len(events), 10):
        entries: Any = [
            {
                "EventBusName": target.bus_name,
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": json.dumps(event["detail"]),
                "Time": parse_time(str(event["time"]), "time"),
            }
            for event in events[start : start + 10]
        ]
        failed += client.put_events(Entries=entries).get("FailedEntryCount", 0)
    if failed:
        put = len(events) - failed
        raise CliError(f"put {put} of {len(events)} event(s) back on {target.bus_name}; {failed} refused")
    return f"replayed {len(events)} event(s) onto the bus {target.bus_name}"


def _send_to_rule(target: Target, events: list[dict[str, Any]], rule: str) -> str:
    from moto.events.models import EventPattern

    key = _one([key for key in target.rule_queues if rule in key], "rule", rule, list(target.rule_queues))
    pattern = EventPattern.load(json.dumps(rule_pattern(key)))
    matching = [event for event in events if pattern.matches_event(event)]  # type: ignore[arg-type]
    sqs = boto3.client("sqs")
    for event in matching:
        sqs.send_message(QueueUrl=target.rule_queues[key], MessageBody=json.dumps(event))
    return f"replayed {len(matching)} of {len(events)} event(s) in the window to rule {key}"


def replay(target: Target, window: Window, rule: str | None) -> str:
    return replay_locally(target, window, rule) if target.local else replay_from_archive(target, window, rule)
