"""`voicebus test-flows`: every scenario against the flow engine in process, and which branches none covers.

Scenarios run against the flows in `functions/call_control/flows/` with the example
environment of `check-flows` (the template parameters' defaults). A mismatch prints
a diff; then the branch report: every way out of every step of the flows
(`next`, a menu key, `on_exhausted`, a menu's retry, a failure or time-limit branch,
and where a step's unset `on_error` / `on_failure` / `on_timeout` lead by default:
the flow's `on_error`, else the built-in apology and hang-up) that no scenario took.
Run on the shipped scenarios directory, an uncovered branch fails the run, so a new
branch ships with the scenario that proves it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from voicebus.flows.loader import FlowCatalog, FlowLoadError, load_flows
from voicebus.flows.models import APOLOGY_STEP, HANGUP_STEP, Flow
from voicebus.flows.steps import AnswerStep, FlowStep, GatherStep, MenuStep
from voicebus_cli.flows import FLOWS_DIR, example_environment
from voicebus_cli.scenario_run import InProcessFlows, ScenarioResult, Transition
from voicebus_cli.scenarios import SCENARIOS_DIR, LoadedScenario, ScenarioError, load_scenario, scenario_files

RETRY = "retry"
FAILURE_FIELDS = ("on_failure", "on_error", "on_timeout")


@dataclass(frozen=True, order=True)
class Branch:
    """A way out of a step: the field that names it and the step it leads to."""

    flow: str
    step: str
    field: str
    target: str

    def describe(self) -> str:
        return f"{self.flow}/{self.step} {self.field} -> {self.target}"


def _step_branches(flow: Flow, name: str) -> Iterator[Branch]:
    step = flow.steps[name]
    explicit = list(step.targets())
    for field, target in explicit:
        yield Branch(flow.name, name, field, target)
    if int(getattr(step, "max_attempts", 1) or 1) > 1:
        yield Branch(flow.name, name, RETRY, name)
    given = {field for field, _ in explicit}
    for target, fields in _default_failures(flow, step, given).items():
        yield Branch(flow.name, name, f"{'/'.join(fields)} (default)", target)


def _default_failures(flow: Flow, step: FlowStep, given: set[str]) -> dict[str, list[str]]:
    """Where the failure fields the step has but leaves unset lead, as the engine takes them.

    A failure goes to the flow's `on_error`, else the apology; an answer that never comes,
    to a hang-up; a menu's or gather's time limit is no input (their retry or `on_no_input`).
    """
    fields = type(step).model_fields
    targets: dict[str, list[str]] = {}
    for field in FAILURE_FIELDS:
        if field not in fields or field in given:
            continue
        target = flow.failure_branch(step)
        if field == "on_timeout":
            if step.timeout_secs_for() is None or isinstance(step, MenuStep | GatherStep):
                continue
            if isinstance(step, AnswerStep):
                target = HANGUP_STEP
        targets.setdefault(target, []).append(field)
    return targets


def branches(catalog: Iterable[Flow]) -> list[Branch]:
    """Every branch of every step of these flows, the default failure branches and the built-in apology's."""
    found = [branch for flow in catalog for name in flow.steps for branch in _step_branches(flow, name)]
    for flow in catalog:
        if any(branch.flow == flow.name and branch.target == APOLOGY_STEP for branch in found):
            found.append(Branch(flow.name, APOLOGY_STEP, "next", HANGUP_STEP))
    return sorted(found)


def uncovered(all_branches: Sequence[Branch], taken: Iterable[Transition]) -> list[Branch]:
    """The branches no transition took (a step's fields that lead to the same step count as one)."""
    seen = {(move.flow, move.source, move.target) for move in taken}
    return [branch for branch in all_branches if (branch.flow, branch.step, branch.target) not in seen]


def run_scenarios(paths: Sequence[LoadedScenario], catalog: FlowCatalog) -> list[ScenarioResult]:
    flows = InProcessFlows(catalog)
    return [flows.run(loaded) for loaded in paths]


def run_test_flows(
    path: Path | None = None,
    *,
    flows_dir: Path = FLOWS_DIR,
    environ: Mapping[str, str] | None = None,
    require_coverage: bool | None = None,
    out: TextIO | None = None,
) -> int:
    """Run the scenarios under `path` (default: the shipped ones); 0 when all pass (and, for those, cover all)."""
    out = out or sys.stdout
    target = path or SCENARIOS_DIR
    if require_coverage is None:
        require_coverage = path is None
    started = time.perf_counter()
    try:
        catalog = load_flows(flows_dir, example_environment() if environ is None else environ)
        loaded = [load_scenario(file) for file in scenario_files(target)]
    except (FlowLoadError, ScenarioError) as error:
        print(f"test-flows: {error}", file=out)
        return 1
    if not loaded:
        print(f"test-flows: no scenario files under {target}", file=out)
        return 1
    results = run_scenarios(loaded, catalog)
    for result in results:
        mark = "ok  " if result.ok else "FAIL"
        summary = f"{result.webhooks} webhooks, {result.commands} commands"
        print(f"{mark} {result.scenario.label}: {result.scenario.scenario.description} ({summary})", file=out)
        for failure in result.failures:
            print("       " + failure.replace("\n", "\n         "), file=out)
    every = branches(catalog)
    missing = uncovered(every, (move for result in results for move in result.transitions))
    required = "" if require_coverage or not missing else " (the shipped scenarios must cover all; these need not)"
    print(f"\nbranches: {len(every) - len(missing)} of {len(every)} covered{required}", file=out)
    for branch in missing:
        print(f"  not covered: {branch.describe()}", file=out)
    failed = sum(not result.ok for result in results)
    elapsed = (time.perf_counter() - started) * 1000
    print(f"{len(results)} scenarios, {failed} failed, in {elapsed:.0f} ms", file=out)
    return 1 if failed or (require_coverage and missing) else 0
