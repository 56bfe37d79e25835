"""`python -m voicebus_cli <command>`: the developer commands behind the Makefile."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from voicebus.config import ConfigurationError
from voicebus.ingress.signature import sign
from voicebus_cli.operations import Target, TargetError, print_redrive, redrive, resolve_target, show_call
from voicebus_cli.testkey import load_test_key
from voicebus_cli.webhooks import BUS_EVENTS_DIR, bus_event, raw_body, resign_event, webhook_event_files


def _sign(args: argparse.Namespace) -> int:
    """Sign a JSON file as Telnyx would, with the test key, and print headers or a curl command."""
    key = load_test_key()
    body = Path(args.file).read_bytes()
    json.loads(body)  # refuse files that are not JSON before signing them
    headers = sign(body, key.signing_key, int(time.time()))
    if args.url:
        parts = [f"curl -sS -X POST {args.url}", "-H 'content-type: application/json'"]
        parts += [f"-H '{name}: {value}'" for name, value in headers.items()]
        parts.append(f"--data-binary @{args.file}")
        print(" \\\n  ".join(parts))
    else:
        print(json.dumps(headers, indent=2))
    return 0


def _resign_events(args: argparse.Namespace) -> int:
    """Give events/webhooks/*.json a fresh timestamp and signature (the body is untouched)."""
    key = load_test_key()
    files = webhook_event_files()
    for path in files:
        event = json.loads(path.read_text())
        path.write_text(json.dumps(resign_event(event, key.signing_key), indent=2) + "\n")
    print(f"re-signed {len(files)} events in {files[0].parent if files else 'events/webhooks'}; valid for 300 s")
    return 0


def _derive_bus_events(args: argparse.Namespace) -> int:
    """Write events/bus/<event_type>.json from events/webhooks: what each rule hands its function."""
    BUS_EVENTS_DIR.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in webhook_event_files():
        if path.name.endswith(".base64-body.json"):
            continue
        event = bus_event(raw_body(json.loads(path.read_text())))
        (BUS_EVENTS_DIR / path.name).write_text(json.dumps(event, indent=2) + "\n")
        count += 1
    print(f"wrote {count} EventBridge events to {BUS_EVENTS_DIR}")
    return 0


def _target(args: argparse.Namespace) -> Target:
    target = resolve_target(
        stack=args.stack,
        local=args.local,
        bus=getattr(args, "bus", None),
        table=getattr(args, "table", None),
        queue_urls=getattr(args, "queue_url", None),
    )
    target.apply()
    return target


def _redrive(args: argparse.Namespace) -> int:
    """Move dead-lettered events back onto the bus, after a fix."""
    report = redrive(_target(args), dry_run=args.dry_run, limit=args.max)
    print_redrive(report, args.dry_run)
    return 1 if report.failed else 0


def _call(args: argparse.Namespace) -> int:
    """Print a call's state and timeline from DynamoDB."""
    return show_call(_target(args), args.call_control_id)


def _where(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stack", help="a deployed stack's name (reads its outputs)")
    where.add_argument("--local", action="store_true", help="the stack `make local` runs")


def _check_flows(args: argparse.Namespace) -> int:
    """Load and validate every IVR flow bundled with the call-control function."""
    from voicebus_cli.flows import check_flows

    return check_flows()


def _command_schemas(args: argparse.Namespace) -> int:
    """Write (or with --check, compare) the command schemas generated from the vendored OpenAPI spec."""
    from voicebus_cli.command_schemas import command_schemas

    return command_schemas(check=args.check)


def _local(args: argparse.Namespace) -> int:
    from voicebus_cli.local.run import run_local

    return run_local()


def _demo(args: argparse.Namespace) -> int:
    from voicebus_cli.demo import run_demo

    return run_demo()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voicebus", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sign_parser = commands.add_parser("sign", help="sign a JSON body with the test key, as Telnyx would")
    sign_parser.add_argument("file")
    sign_parser.add_argument("--url", help="print a curl command that POSTs the signed file to this URL")
    sign_parser.set_defaults(run=_sign)
    commands.add_parser("resign-events", help="re-sign events/webhooks/*.json with the current time").set_defaults(
        run=_resign_events
    )
    commands.add_parser("derive-bus-events", help="write events/bus/*.json from events/webhooks").set_defaults(
        run=_derive_bus_events
    )
    redrive_parser = commands.add_parser("redrive", help="move dead-lettered events back onto the bus")
    _where(redrive_parser)
    redrive_parser.add_argument("--bus", help="the event bus name (instead of --stack/--local)")
    redrive_parser.add_argument("--queue-url", action="append", help="a dead-letter queue URL (repeatable)")
    redrive_parser.add_argument("--dry-run", action="store_true", help="list what would be redriven, change nothing")
    redrive_parser.add_argument("--max", type=int, default=1000, help="at most this many messages per queue")
    redrive_parser.set_defaults(run=_redrive)
    call_parser = commands.add_parser("call", help="print a call's state and timeline")
    call_parser.add_argument("call_control_id")
    _where(call_parser)
    call_parser.add_argument("--table", help="the calls table name (instead of --stack/--local)")
    call_parser.set_defaults(run=_call)
    commands.add_parser("check-flows", help="validate the bundled IVR flows").set_defaults(run=_check_flows)
    schemas_parser = commands.add_parser(
        "command-schemas", help="generate layers/voicebus/voicebus/commands/schemas.json from the OpenAPI spec"
    )
    schemas_parser.add_argument("--check", action="store_true", help="exit 1 when the committed file is out of date")
    schemas_parser.set_defaults(run=_command_schemas)
    commands.add_parser("local", help="keep the local stack running for your own experiments").set_defaults(run=_local)
    commands.add_parser("demo", help="run the local stack and play a call through it").set_defaults(run=_demo)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (TargetError, ConfigurationError) as error:
        print(f"voicebus {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
