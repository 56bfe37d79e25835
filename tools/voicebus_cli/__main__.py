"""voicebus: the developer and operator commands (`voicebus COMMAND --help` for each).

Exit codes: 0 success, 1 the operation failed, 2 usage error. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import metadata
from pathlib import Path

from voicebus_cli.cli_errors import FAILED, SUCCESS, USAGE, describe, quiet_broken_pipe
from voicebus_cli.operations import Target, TargetError, configure_aws, resolve_target
from voicebus_cli.testkey import ROOT

RESIGNED_DIR = ROOT / ".voicebus" / "events" / "webhooks"


def version() -> str:
    try:
        return metadata.version("voicebus")
    except metadata.PackageNotFoundError:  # run from a checkout that was never `uv sync`ed
        return "unknown (not installed)"


def _sign(args: argparse.Namespace) -> int:
    """Sign a JSON file as Telnyx would, with the test key: headers, a curl command, or the request sent."""
    from voicebus_cli.signing import run_sign

    return run_sign(args.file, args.url, args.send)


def _resign_events(args: argparse.Namespace) -> int:
    """Write freshly signed copies of events/webhooks/*.json; the committed samples are left as they are."""
    from voicebus_cli.testkey import load_test_key
    from voicebus_cli.webhooks import resign_event, webhook_event_files

    key = load_test_key()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = webhook_event_files()
    for path in files:
        event = json.loads(path.read_text())
        (out / path.name).write_text(json.dumps(resign_event(event, key.signing_key), indent=2) + "\n")
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"re-signed {len(files)} events into {shown}/ (valid for 300 s), e.g.")
    print(f"  sam local invoke IngressFunction -e {shown}/call.answered.json --env-vars events/env.json")
    return SUCCESS


def _derive_bus_events(args: argparse.Namespace) -> int:
    """Write events/bus/<event_type>.json from events/webhooks: what each rule hands its function."""
    from voicebus_cli.webhooks import BUS_EVENTS_DIR, bus_event, raw_body, webhook_event_files

    BUS_EVENTS_DIR.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in webhook_event_files():
        if path.name.endswith(".base64-body.json"):
            continue
        event = bus_event(raw_body(json.loads(path.read_text())))
        (BUS_EVENTS_DIR / path.name).write_text(json.dumps(event, indent=2) + "\n")
        count += 1
    print(f"wrote {count} EventBridge events to {BUS_EVENTS_DIR}")
    return SUCCESS


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
    """Hand dead-lettered events back to the targets that failed them, after a fix."""
    from voicebus_cli.redrive import Selection, print_redrive, redrive

    selection = Selection(rule=args.rule, function=args.function)
    target = _target(args)
    target.parking_queue_url = args.parking_queue_url or target.parking_queue_url
    dead_letter_queues = list(target.queue_urls)  # where a redriven event comes back when it fails again
    if args.parked:  # after a fix: the parked events, each with a fresh allowance of redrives
        if not target.parking_queue_url:
            raise TargetError("--parked needs the parking queue: --stack, --local or --parking-queue-url")
        target.queue_urls = [target.parking_queue_url]
    report = redrive(
        target,
        dry_run=args.dry_run,
        selection=selection,
        limit=args.max,
        to_bus=args.to_bus,
        max_redrives=args.max_redrives,
        wait_seconds=args.wait,
        watch_queue_urls=dead_letter_queues,
    )
    print_redrive(report, args.dry_run)
    return SUCCESS if report.succeeded else FAILED


def _replay(args: argparse.Namespace) -> int:
    """Deliver the bus's events of a time window again: from the archive in AWS, the bus record locally."""
    from voicebus_cli.replay import Window, parse_time, replay

    window = Window(parse_time(args.since, "--since"), parse_time(args.until, "--until"))
    print(replay(_target(args), window, args.rule))
    return SUCCESS


def _call(args: argparse.Namespace) -> int:
    """Print a call: status, parties, IVR position, commands sent, archive and timeline."""
    from voicebus_cli.call_view import show_call

    return show_call(_target(args), args.call_control_id, as_json=args.json)


def _check_flows(args: argparse.Namespace) -> int:
    """Load and validate every IVR flow bundled with the call-control function."""
    from voicebus_cli.flows import check_flows

    return check_flows()


def _test_flows(args: argparse.Namespace) -> int:
    """Play every flow scenario against the flow engine in process; report branches no scenario covers."""
    from voicebus_cli.scenarios_cli import run_test_flows

    return run_test_flows(Path(args.path) if args.path else None)


def _play(args: argparse.Namespace) -> int:
    """Play one scenario through the running `make local` stack and print the commands Telnyx received."""
    from voicebus_cli.play import play_local

    return play_local(Path(args.scenario))


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


def _aws_options() -> argparse.ArgumentParser:
    """--region / --profile, accepted before or after the command name."""
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("AWS")
    group.add_argument("--region", default=argparse.SUPPRESS, help="AWS region (else AWS_REGION or the profile's)")
    group.add_argument("--profile", default=argparse.SUPPRESS, help="AWS named profile (else AWS_PROFILE)")
    return options


def _where(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stack", help="a deployed stack's name (reads its outputs)")
    where.add_argument("--local", action="store_true", help="the stack `make local` runs (.voicebus/local.json)")


def build_parser() -> argparse.ArgumentParser:
    aws = _aws_options()
    parser = argparse.ArgumentParser(
        prog="voicebus", description=__doc__, parents=[aws], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"voicebus {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, run: object, *, uses_aws: bool = False) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary, parents=[aws] if uses_aws else [])
        sub.set_defaults(run=run)
        return sub

    sign = command("sign", "sign a JSON body with the test key, as Telnyx would", _sign)
    sign.add_argument("file", help="the webhook body (JSON)")
    sign.add_argument("--url", help="print a curl command (shell-quoted) that POSTs the signed file to this URL")
    sign.add_argument("--send", action="store_true", help="POST it to --url now and print the status and answer")

    resign = command("resign-events", "write freshly signed copies of events/webhooks/*.json", _resign_events)
    resign.add_argument("--out", default=str(RESIGNED_DIR), help="where the copies go (default: %(default)s)")
    command("derive-bus-events", "write events/bus/*.json from events/webhooks", _derive_bus_events)

    redrive = command(
        "redrive", "hand dead-lettered events back to the targets that failed them", _redrive, uses_aws=True
    )
    _where(redrive)
    redrive.add_argument("--queue-url", action="append", help="a dead-letter queue URL (repeatable)")
    redrive.add_argument("--rule", help="only dead letters of the rule whose name contains RULE")
    redrive.add_argument("--function", help="only dead letters of the function whose name contains FUNCTION")
    redrive.add_argument("--to-bus", action="store_true", help="put them back on the bus instead (every rule again)")
    redrive.add_argument("--bus", help="the event bus name, for --to-bus (instead of --stack/--local)")
    redrive.add_argument("--dry-run", action="store_true", help="list them and why they failed; change nothing")
    redrive.add_argument("--max", type=int, default=1000, help="at most this many messages per queue")
    redrive.add_argument(
        "--max-redrives",
        type=int,
        default=3,
        help="park an event that is back after this many redrives (default: %(default)s)",
    )
    redrive.add_argument("--parked", action="store_true", help="redrive the parked events instead (after a fix)")
    redrive.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="then watch the dead-letter queues this long: a redriven event back there failed again (exit 1)",
    )
    redrive.add_argument("--parking-queue-url", help="where to park (instead of --stack/--local)")
    redrive.add_argument("--table", help="the calls table, which counts redrives (instead of --stack/--local)")

    replay = command("replay", "deliver the bus's events of a time window again", _replay, uses_aws=True)
    _where(replay)
    replay.add_argument("--since", required=True, help="ISO 8601 start, inclusive (UTC when no zone)")
    replay.add_argument("--until", required=True, help="ISO 8601 end, exclusive")
    replay.add_argument("--rule", help="only to the rule whose name contains RULE")
    replay.add_argument("--bus", help="the event bus name (instead of --stack/--local)")

    call = command("call", "print a call: state, IVR position, commands, archive, timeline", _call, uses_aws=True)
    call.add_argument("call_control_id")
    _where(call)
    call.add_argument("--table", help="the calls table name (instead of --stack/--local)")
    call.add_argument("--json", action="store_true", help="one JSON document (for jq)")

    command("check-flows", "validate the bundled IVR flows", _check_flows)
    test_flows = command("test-flows", "play the flow scenarios against the flow engine, in process", _test_flows)
    test_flows.add_argument("path", nargs="?", help="a scenario file or folder (default: the shipped scenarios)")
    play = command("play", "play a flow scenario through the running `make local` stack", _play)
    play.add_argument("scenario", help="the scenario file (YAML)")
    play.add_argument("--local", action="store_true", required=True, help="through `make local` (the only target)")
    schemas = command(
        "command-schemas",
        "generate layers/voicebus/voicebus/commands/schemas.json from the OpenAPI spec",
        _command_schemas,
    )
    schemas.add_argument("--check", action="store_true", help="exit 1 when the committed file is out of date")
    command("local", "keep the local stack running for your own experiments", _local)
    command("demo", "run the local stack and play a call through it", _demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (argparse's own exits are returned too)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error argparse already printed
        return done.code if isinstance(done.code, int) else USAGE
    try:
        configure_aws(getattr(args, "region", None), getattr(args, "profile", None))
        return int(args.run(args))
    except BrokenPipeError:
        quiet_broken_pipe()
        return SUCCESS
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        known = describe(error)
        if known is None:
            raise
        message, code = known
        print(f"voicebus {args.command}: {message}", file=sys.stderr)
        return code


def run() -> None:
    """The console script: `voicebus ...`."""
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        quiet_broken_pipe()
    sys.exit(code)


if __name__ == "__main__":
    run()
