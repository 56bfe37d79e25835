"""`check-flows`: load every IVR flow as the call-control function would, with example values.

Then `voicebus.flows.checks` refuses what loading alone lets through and a live
call would stumble on: unreachable steps, loops with no exit, commands (every
attempt, as the engine builds them) that break the spec, `${...}` names nothing sets.

The example values of the `${FLOW_*}` placeholders are the defaults of the
template parameters that CallControlFunction's environment refers to, so the
check needs no deployment and follows the template when it changes.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from voicebus.flows.checks import check_flow
from voicebus.flows.loader import FLOW_FILE_PATTERN, FlowCatalog, FlowLoadError, flow_files, load_flow
from voicebus.flows.models import Flow, FlowProblem
from voicebus_cli.local.template import Stack, TemplateError, load_template
from voicebus_cli.testkey import ROOT

FLOWS_DIR = ROOT / "functions" / "call_control" / "flows"
FLOW_FUNCTION = "CallControlFunction"


def example_environment(function: str = FLOW_FUNCTION) -> dict[str, str]:
    """The function's `FLOW_*` variables, each given its template parameter's default."""
    template = load_template()
    stack = Stack(template, "check-flows")
    variables = template["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {})
    values: dict[str, str] = {}
    for name, value in variables.items():
        if not name.startswith("FLOW_"):
            continue
        try:
            values[name] = str(stack.resolve(value))
        except TemplateError:
            continue  # no default: the flows must not need it, and loading will say so if they do
    return values


def summary(path: Path, flow: Flow, *, default: bool) -> str:
    """One line: file, flow, entry, steps and which calls it takes."""
    matches = [f"calls to {number}" for number in flow.match.to]
    matches += [f"calls on connection {connection}" for connection in flow.match.connection_id]
    if default:
        matches.append("every other call (default)")
    return f"{path.name}: flow {flow.name!r}, {len(flow.steps)} steps from {flow.entry!r}, takes {', '.join(matches)}"


def check_flows(
    directory: Path = FLOWS_DIR,
    environ: Mapping[str, str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Validate every flow in `directory`; a summary line per flow, or the error. Exit status: 0 when all load.

    `environ` defaults to the example environment from template.yaml.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    env = example_environment() if environ is None else environ
    try:
        flows = [(path, load_flow(path, env)) for path in flow_files(directory)]
        if not flows:
            raise FlowLoadError(directory, [FlowProblem(f"no {FLOW_FILE_PATTERN} flow files")])
        catalog = FlowCatalog(flows, origin=directory)
        for path, flow in flows:
            problems = check_flow(flow)
            if problems:
                raise FlowLoadError(path, problems)
    except FlowLoadError as exc:
        print(f"check-flows: {exc}", file=err)
        return 1
    for path, flow in flows:
        print(summary(path, flow, default=flow.name == catalog.default.name), file=out)
    print(f"{len(catalog)} flows OK in {directory}", file=out)
    return 0
