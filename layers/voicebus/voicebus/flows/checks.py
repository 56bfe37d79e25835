"""Checks across a whole flow that a live call would otherwise find out the hard way.

`Flow.problems()` (run when a flow loads) refuses a `next` or branch to a missing
step and a loop of steps that move on at once. These checks look at the flow as a
graph and at what it sends on every visit, for `voicebus check-flows`:

- unreachable steps: nothing leads to them from the entry, so they are dead text
  that someone will one day edit believing it runs;
- loops with no exit: steps from which no step that ends the flow (a hang-up, a
  transfer, or a step with nowhere to go, where the call rests until it hangs up)
  can be reached, so the caller goes round forever;
- commands that break the spec: every attempt of every step is built as the engine
  builds it (a menu's retry prompt and computed `maximum_digits` included) and
  checked against the spec's request schema and its stated limits, and the largest
  client_state the flow can carry must fit;
- `${...}` names that nothing sets: a `${vars.x}` that no step of the flow sets,
  or a placeholder the loader does not know.

Each problem names the step and the field, like the loader's.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, JsonValue

from voicebus.calls.client_state import ClientStateError, encode
from voicebus.commands.validation import CallCommand, InvalidCommandError
from voicebus.flows.envelope import wrap
from voicebus.flows.models import Flow, FlowProblem
from voicebus.flows.position import FlowState
from voicebus.flows.steps import FlowStep, StepKind, params_field

TEMPLATE = re.compile(r"\$\{(?P<name>[^}]*)\}")
"""What remains of `${...}` once the loader has put in the `${FLOW_*}` values."""
VARIABLE = re.compile(r"^vars\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")
LONG_CALL_CONTROL_ID = "v3:" + "x" * 125
"""Telnyx's call_control_ids are shorter; the envelope carries the caller's."""
DIGITS_VARIABLE = "digits"
"""Set by every menu and gather: the keys the caller pressed."""


def check_flow(flow: Flow) -> list[FlowProblem]:
    """Every problem found, in a stable order: reachability, exits, commands, names."""
    problems: list[FlowProblem] = []
    reachable = reachable_steps(flow)
    problems.extend(_unreachable(flow, reachable))
    problems.extend(_loops_without_exit(flow, reachable))
    problems.extend(_commands(flow))
    problems.extend(_names(flow))
    return problems


# ---------------------------------------------------------------------------
# The graph


def _targets(step: FlowStep, flow: Flow) -> list[tuple[str, str]]:
    """(field, target) for every existing step this one can lead to."""
    return [(field, target) for field, target in step.targets() if target in flow.steps]


def reachable_steps(flow: Flow) -> set[str]:
    """The steps a call can get to from the entry."""
    if flow.entry not in flow.steps:
        return set()
    seen = {flow.entry}
    queue = deque([flow.entry])
    while queue:
        for _, target in _targets(flow.steps[queue.popleft()], flow):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def _unreachable(flow: Flow, reachable: set[str]) -> Iterator[FlowProblem]:
    for name in flow.steps:
        if name not in reachable:
            yield FlowProblem(f"unreachable: no step leads here from the entry {flow.entry!r}", name)


def is_exit(step: FlowStep, flow: Flow) -> bool:
    """A step where the flow ends: it hands the call over, or has nowhere to go and rests until the hang-up."""
    return step.kind is StepKind.FINAL or not _targets(step, flow)


def _loops_without_exit(flow: Flow, reachable: set[str]) -> Iterator[FlowProblem]:
    """Reachable steps from which no exit can be reached, reported once per loop, at its first step."""
    leads_out = {name for name in reachable if is_exit(flow.steps[name], flow)}
    changed = True
    while changed:  # backwards: a step leads out when one of its targets does
        changed = False
        for name in reachable - leads_out:
            if any(target in leads_out for _, target in _targets(flow.steps[name], flow)):
                leads_out.add(name)
                changed = True
    trapped = [name for name in flow.steps if name in reachable and name not in leads_out]
    reported: set[str] = set()
    loops: set[frozenset[str]] = set()
    for name in trapped:
        if name in reported:
            continue
        walked, loop = _loop_from(flow, name, set(trapped))
        reported.update(walked)
        if frozenset(loop) in loops:
            continue  # another way into a loop reported already
        loops.add(frozenset(loop))
        path = " -> ".join([*loop, loop[0]])
        message = f"{path} loops with no exit: no step on it leads to a hang-up, a transfer or a step that ends"
        yield FlowProblem(message, loop[0], "next")


def _loop_from(flow: Flow, start: str, trapped: set[str]) -> tuple[list[str], list[str]]:
    """The steps a walk from `start` through trapped steps passes, and the cycle it falls into."""
    path: list[str] = []
    current = start
    while current not in path:
        path.append(current)
        current = next(target for _, target in _targets(flow.steps[current], flow) if target in trapped)
    return path, path[path.index(current) :]


# ---------------------------------------------------------------------------
# What each step sends


def _attempts(step: FlowStep) -> range:
    """The visits whose command may differ: a step with `max_attempts` sends a retry from the second."""
    return range(1, int(getattr(step, "max_attempts", 1) or 1) + 1)


def largest_client_state(flow: Flow) -> dict[str, JsonValue]:
    """The largest client_state the flow's commands can carry (before your own value in it).

    The envelope with the longest step name, every `set_client_state` value and a long call_control_id.
    """
    data: dict[str, JsonValue] = {}
    for step in flow.steps.values():
        values = getattr(step, "values", None)
        if isinstance(values, Mapping):
            data.update(values)
    longest = max(flow.steps, key=len)
    attempts = max(len(_attempts(step)) for step in flow.steps.values())
    state = FlowState(flow=flow.name, step=longest, attempt=attempts, seq=999_999, data=data)
    return wrap(state.position(), call=LONG_CALL_CONTROL_ID, app=None)


def _commands(flow: Flow) -> Iterator[FlowProblem]:
    carried = largest_client_state(flow)
    try:
        encode(carried)
    except ClientStateError as exc:
        yield FlowProblem(f"the flow's client_state is too large: {exc}", None, "steps")
    for name, step in flow.steps.items():
        command = getattr(step, "command", None)
        if not callable(command) or any("${vars." in text for _, text in _strings(step, ())):
            continue  # a step with variables is checked again, filled in, when it is sent
        refused: set[str] = set()
        for attempt in _attempts(step):
            try:
                command(attempt, carried)
            except InvalidCommandError as exc:
                for problem in exc.problems:
                    described = f"attempt {attempt}: {problem.message}" if attempt > 1 else problem.message
                    if described not in refused:
                        refused.add(described)
                        yield FlowProblem(described, name, params_field(problem.field))


# ---------------------------------------------------------------------------
# ${...} names


def set_variables(flow: Flow) -> set[str]:
    """The flow variables some step sets: an invoke's `sets`, a gather's `save_as`, the digits of a menu."""
    names: set[str] = set()
    for step in flow.steps.values():
        sets = getattr(step, "sets", None)
        if isinstance(sets, list):
            names.update(str(name) for name in sets)
        save_as = getattr(step, "save_as", None)
        if isinstance(save_as, str):
            names.add(save_as)
        if getattr(step, "branches", None) is not None and getattr(step, "action", "").startswith("gather"):
            names.add(DIGITS_VARIABLE)
    return names


def _strings(value: Any, location: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """(dotted field, text) for every string inside a step's fields."""
    if isinstance(value, BaseModel):
        for key in type(value).model_fields:
            yield from _strings(getattr(value, key), (*location, key))
    elif isinstance(value, CallCommand):
        yield from _strings(dict(value.params), location)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, (*location, str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, (*location, str(index)))
    elif isinstance(value, str):
        yield ".".join(location), value


def _names(flow: Flow) -> Iterator[FlowProblem]:
    known = set_variables(flow)
    shown = ", ".join(sorted(known)) or "none"
    for name, step in flow.steps.items():
        for field, text in _strings(step, ()):
            for match in TEMPLATE.finditer(text):
                placeholder = match.group("name")
                variable = VARIABLE.match(placeholder)
                if variable is None:
                    message = f"${{{placeholder}}}: not a flow variable (${{vars.name}}) or a FLOW_* setting"
                    yield FlowProblem(message, name, field or None)
                elif variable.group("name") not in known:
                    message = f"${{{placeholder}}}: no step of the flow sets {variable.group('name')!r} (set: {shown})"
                    yield FlowProblem(message, name, field or None)
