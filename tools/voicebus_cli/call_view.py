"""`voicebus call ID`: everything voicebus knows about one call, as text or one JSON document.

The document (`--json`) has one key per question an operator asks:
  call       status, parties, ids and lifecycle times (the STATE item, less its lanes)
  flow       where the IVR is: flow, step, attempt, status, a rejected command if any
  lanes      the media features' and client_state's latest values
  commands   each command sent to Telnyx and the answer (`CallStore.commands`)
  archive    recordings (S3 URIs, versions, sizes, SHA-256) and the live transcript's link
  timeline   every event, in order
"""

from __future__ import annotations

import json
from typing import Any

import boto3

from voicebus.calls.store import CallStore
from voicebus_cli.cli_errors import CliError
from voicebus_cli.operations import Target, TargetError

_PARTY_FIELDS = ("from_number", "to_number", "direction", "connection_id", "call_session_id", "call_leg_id")


class UnknownCallError(CliError):
    """No STATE item for the call id in the table."""


def call_document(store: CallStore, call_control_id: str) -> dict[str, Any]:
    record = store.get_call(call_control_id)
    if record is None:
        raise UnknownCallError(f"no call {call_control_id} in the calls table")
    dumped = record.model_dump(mode="json", exclude_none=True)
    call = {name: value for name, value in dumped.items() if name not in {"features", "recordings", "transcript"}}
    call.pop("client_state", None)
    return {
        "call": call,
        "flow": store.lanes(call_control_id, "flow").get("flow"),
        "lanes": {"client_state": dumped.get("client_state"), **dumped.get("features", {})},
        "commands": store.commands(call_control_id),
        "archive": {"recordings": dumped.get("recordings", []), "transcript": dumped.get("transcript")},
        "timeline": [entry.model_dump(mode="json") for entry in store.timeline(call_control_id)],
    }


def show_call(target: Target, call_control_id: str, *, as_json: bool) -> int:
    """Print the call; UnknownCallError (exit 1) when the table has no such call."""
    if not target.table_name:
        raise TargetError("call needs the calls table: --stack, --local, or --table")
    document = call_document(CallStore(boto3.client("dynamodb"), target.table_name), call_control_id)
    if as_json:
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print("\n".join(render(call_control_id, document)))
    return 0


def render(call_control_id: str, document: dict[str, Any]) -> list[str]:
    """The document for people: a section per key, one line per fact."""
    call = document["call"]
    status = call.get("status") or {}
    lines = [f"call {call_control_id}", f"  status      {_status(status)}"]
    lines += [f"  {name:<11} {call[name]}" for name in _PARTY_FIELDS if call.get(name)]
    lines += [f"  {name:<11} {call[name]}" for name in ("initiated_at", "answered_at", "ended_at") if call.get(name)]
    flow = document["flow"]
    lines.append("\nflow")
    if flow:
        lines.append(f"  {flow.get('flow')}/{flow.get('step')}  attempt {flow.get('attempt')}  {flow.get('status')}")
        rejected = flow.get("rejected")
        if rejected:
            lines.append(f"  rejected    {rejected.get('action')} at {rejected.get('step')}: {rejected.get('reason')}")
    else:
        lines.append("  (no IVR flow on this call)")
    lanes = {name: lane for name, lane in document["lanes"].items() if lane}
    if lanes:
        lines.append("\nlanes")
        lines += [f"  {name:<18} {_lane(lane)}" for name, lane in sorted(lanes.items())]
    lines.append("\ncommands sent")
    for command in document["commands"] or []:
        answer = command.get("outcome", "?") + (f": {command['reason']}" if command.get("reason") else "")
        where = command.get("step") or command.get("request_id") or command.get("source", "")
        lines.append(f"  {command.get('occurred_at', '')}  {command.get('action', ''):<28} {where:<16} {answer}")
    if not document["commands"]:
        lines.append("  (none)")
    lines += _archive_lines(document["archive"])
    lines.append("\ntimeline")
    lines += [f"  {e['occurred_at']}  {e['event_type']:<40} {e['event_id']}" for e in document["timeline"]]
    return lines


def _status(status: dict[str, Any]) -> str:
    if not status:
        return "unknown"
    cause = status.get("hangup_cause")
    return f"{status.get('value')} at {status.get('at')}" + (f" ({cause})" if cause else "")


def _lane(lane: dict[str, Any]) -> str:
    shown = {k: v for k, v in lane.items() if k not in {"at", "event_id", "event_type", "rank", "raw"}}
    return f"{json.dumps(shown, sort_keys=True)}  ({lane.get('event_type')} at {lane.get('at')})"


def _archive_lines(archive: dict[str, Any]) -> list[str]:
    lines = ["\narchive"]
    for recording in archive["recordings"]:
        lines.append(f"  recording {recording.get('recording_id')}  {recording.get('status')}")
        for fmt, where in sorted((recording.get("archive") or {}).items()):
            lines.append(f"    {fmt:<5} {_object(where)}")
        if recording.get("transcript"):
            lines.append(f"    text  {_object(recording['transcript'])}")
    transcript = archive.get("transcript")
    if transcript:
        lines.append(f"  live transcript  {transcript.get('json')}  {transcript.get('text')}")
    if len(lines) == 1:
        lines.append("  (nothing archived)")
    return lines


def _object(where: dict[str, Any]) -> str:
    version = f"  version {where['version_id']}" if where.get("version_id") else ""
    return f"{where.get('s3_uri')}{version}  {where.get('size')} bytes  sha256 {where.get('sha256')}"
