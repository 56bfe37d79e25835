"""Reading flow files: YAML, `${FLOW_*}` placeholders from the environment, errors that say where.

Flows are read once per container (the call-control function builds its runner
at import). Every problem names the file, and the step, field or variable when
there is one, so a broken flow fails the deployment's cold start, or
`python -m voicebus_cli check-flows`, with a message that says what to fix.

Placeholders: `${FLOW_SALES_NUMBER}` is replaced by that variable, and
`${FLOW_X:-default}` by the variable or, when unset or empty, the default. Only
variables named `FLOW_*` are read, so a flow cannot speak a secret from the
function's environment. Placeholders are replaced inside string values after
the YAML is parsed, so a value can never change the file's structure.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from voicebus.commands.validation import InvalidCommandError
from voicebus.errors import PermanentError
from voicebus.flows.models import DEFAULT_FLOW, Flow, FlowProblem
from voicebus.flows.steps import STEP_TYPES, params_field

FLOW_FILE_PATTERN = "*.yaml"
VARIABLE_PREFIX = "FLOW_"
PLACEHOLDER = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_MAX_MESSAGE = 240
_MAX_SHOWN_INPUT = 60


class FlowLoadError(PermanentError, ValueError):
    """A flow file (or the set of them) cannot be used; the message names the file and what is wrong."""

    def __init__(self, path: Path | str, problems: Sequence[FlowProblem]) -> None:
        self.path = Path(path)
        self.problems = tuple(problems)
        details = "; ".join(problem.describe() for problem in self.problems)
        super().__init__(f"{self.path}: {details}")

    @property
    def variables(self) -> tuple[str, ...]:
        """The environment variables the flow needs and does not have."""
        return tuple(problem.variable for problem in self.problems if problem.variable is not None)


# libyaml's parser when PyYAML has it (its wheels do): the same documents, parsed in a
# seventh of the pure-Python parser's time, which every cold start of call control pays.
if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader
else:
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):
    """SafeLoader that refuses a key given twice: PyYAML would silently keep the last (a lost step)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"found the key {key!r} twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# ---------------------------------------------------------------------------
# One file


def load_flow(path: Path, environ: Mapping[str, str] | None = None) -> Flow:
    """The validated flow in `path`; raises FlowLoadError listing every problem found."""
    environ = os.environ if environ is None else environ
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise FlowLoadError(path, [FlowProblem(f"not valid YAML: {_one_line(str(exc))}")]) from None
    except OSError as exc:
        raise FlowLoadError(path, [FlowProblem(f"cannot be read: {exc.strerror or exc}")]) from None
    if not isinstance(document, dict):
        raise FlowLoadError(path, [FlowProblem("must be a mapping with name, entry and steps")])

    substituted, missing = _substitute(document, environ)
    if missing:
        raise FlowLoadError(path, missing)
    try:
        flow = Flow.model_validate(substituted)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise FlowLoadError(path, [problem for error in errors for problem in _problems(error, substituted)]) from None
    problems = flow.problems()
    if problems:
        raise FlowLoadError(path, problems)
    return flow


def _substitute(document: dict[str, Any], environ: Mapping[str, str]) -> tuple[dict[str, Any], list[FlowProblem]]:
    """The document with placeholders replaced, and a problem for each variable that is not set."""
    problems: list[FlowProblem] = []

    def replace(value: Any, location: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            return {key: replace(item, (*location, str(key))) for key, item in value.items()}
        if isinstance(value, list):
            return [replace(item, (*location, str(index))) for index, item in enumerate(value)]
        if not isinstance(value, str):
            return value

        def variable(match: re.Match[str]) -> str:
            name, default = match.group("name"), match.group("default")
            if not name.startswith(VARIABLE_PREFIX):
                problems.append(_located(f"${{{name}}}: only {VARIABLE_PREFIX}* variables can be used", location))
                return match.group(0)
            found = environ.get(name, "")
            if found:
                return found
            if default is not None:
                return default
            problems.append(_located(f"${{{name}}} is not set in the environment", location, variable=name))
            return match.group(0)

        return PLACEHOLDER.sub(variable, value)

    return replace(document, ()), problems


def _located(message: str, location: tuple[str, ...], *, variable: str | None = None) -> FlowProblem:
    if len(location) >= 2 and location[0] == "steps":
        return FlowProblem(message, location[1], ".".join(location[2:]) or None, variable)
    return FlowProblem(message, None, ".".join(location) or None, variable)


def _problems(error: ErrorDetails, document: Mapping[str, Any]) -> list[FlowProblem]:
    """A pydantic error as (step, field, message), without the union's type tag in the field path.

    A step's params refused by `parse_command` give one problem per field, located under `params`.
    """
    location = [str(part) for part in error["loc"]]
    step: str | None = None
    if len(location) >= 2 and location[0] == "steps":
        step = location[1]
        location = location[2:]
        raw_step = document.get("steps", {}).get(step)
        step_type = raw_step.get("type") if isinstance(raw_step, dict) else None
        if location and location[0] == step_type:
            location = location[1:]
    field = ".".join(location) or None
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, InvalidCommandError):
        return [FlowProblem(_one_line(p.message), step, params_field(p.field)) for p in cause.problems]
    if error["type"] == "union_tag_invalid":
        tag = error["ctx"].get("tag") if "ctx" in error else None
        close = difflib.get_close_matches(str(tag), STEP_TYPES, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known types: {', '.join(STEP_TYPES)}"
        return [FlowProblem(f"unknown step type {tag!r}; {hint}", step, "type")]
    if error["type"] == "union_tag_not_found":
        return [FlowProblem(f"Field required; one of: {', '.join(STEP_TYPES)}", step, "type")]
    message = _one_line(error["msg"])
    if error["type"] not in ("missing", "extra_forbidden"):
        message += f" (got {_one_line(repr(error['input']), _MAX_SHOWN_INPUT)})"
    return [FlowProblem(message, step, field)]


def _one_line(text: str, limit: int = _MAX_MESSAGE) -> str:
    """Long enum lists and inputs cut short: an error is read on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# ---------------------------------------------------------------------------
# A directory of them


class FlowCatalog:
    """The container's flows, and which one a new call starts: by called number, else connection, else `main`."""

    def __init__(self, flows: Iterable[tuple[Path, Flow]], *, origin: Path, default: str = DEFAULT_FLOW) -> None:
        """`origin` (the flows' directory) is what errors about the set as a whole name."""
        self.flows: dict[str, Flow] = {}
        self.sources: dict[str, Path] = {}
        self._by_number: dict[str, str] = {}
        self._by_connection: dict[str, str] = {}
        for path, flow in flows:
            if flow.name in self.flows:
                other = self.sources[flow.name]
                raise FlowLoadError(path, [FlowProblem(f"{other.name} already defines a flow named {flow.name!r}")])
            self.flows[flow.name] = flow
            self.sources[flow.name] = path
            self._index(path, flow, "to", flow.match.to, self._by_number)
            self._index(path, flow, "connection_id", flow.match.connection_id, self._by_connection)
            if flow.name != default and not (flow.match.to or flow.match.connection_id):
                message = f"flow {flow.name!r} matches no call: give it match.to or match.connection_id"
                raise FlowLoadError(path, [FlowProblem(message, field="match")])
        if default not in self.flows:
            names = ", ".join(sorted(self.flows)) or "none"
            problem = FlowProblem(f"no flow named {default!r}, the default for unmatched calls (flows: {names})")
            raise FlowLoadError(origin, [problem])
        self.default = self.flows[default]

    def _index(self, path: Path, flow: Flow, field: str, values: Iterable[str], index: dict[str, str]) -> None:
        for value in values:
            taken = index.get(value)
            if taken is not None and taken != flow.name:
                message = f"{value!r} is already matched by flow {taken!r} ({self.sources[taken].name})"
                raise FlowLoadError(path, [FlowProblem(message, field=f"match.{field}")])
            index[value] = flow.name

    def get(self, name: str) -> Flow | None:
        return self.flows.get(name)

    def choose(self, to: str | None, connection_id: str | None) -> Flow:
        """The flow a new incoming call runs."""
        name = self._by_number.get(to or "") or self._by_connection.get(connection_id or "")
        return self.flows[name] if name else self.default

    def __iter__(self) -> Iterator[Flow]:
        return iter(self.flows.values())

    def __len__(self) -> int:
        return len(self.flows)


def flow_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(FLOW_FILE_PATTERN))


def load_flows(directory: Path, environ: Mapping[str, str] | None = None) -> FlowCatalog:
    """Every `*.yaml` flow in `directory`; raises FlowLoadError at the first file that cannot be used."""
    paths = flow_files(directory)
    if not paths:
        raise FlowLoadError(directory, [FlowProblem(f"no {FLOW_FILE_PATTERN} flow files")])
    return FlowCatalog(((path, load_flow(path, environ)) for path in paths), origin=directory)
