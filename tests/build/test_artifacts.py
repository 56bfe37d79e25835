"""What `sam build` produced is what Lambda (python3.13, arm64) can run.

`make test` runs `make build` (`sam build`, no container, then scripts/compile_build.py)
before pytest; these tests read .aws-sam/build.
"""

from __future__ import annotations

import ast
import importlib.util
import marshal
import sys
from dataclasses import dataclass, field
from importlib.metadata import Distribution, PathDistribution
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from voicebus_cli.local.template import load_template, resources_with_globals
from voicebus_cli.testkey import ROOT

pytestmark = pytest.mark.build

BUILD_DIR = ROOT / ".aws-sam" / "build"
ELF_MACHINE_AARCH64 = 183
# Lambda's python3.13 reads __pycache__/<name>.cpython-313.pyc; flags 0b11 = hash-based, checked against the source.
LAMBDA_CACHE_TAG = "cpython-313"
CHECKED_HASH_FLAGS = 0b11
# Where Lambda unpacks a function's code and a layer's content.
FUNCTION_ROOT, LAYER_ROOT = "/var/task", "/opt"
# What the Lambda python3.13 runtime itself provides.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"}
RUNTIME_DISTRIBUTIONS = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six"}
LAMBDA_MARKERS: dict[str, str] = {
    **{name: str(value) for name, value in default_environment().items()},
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "aarch64",
    "python_version": "3.13",
    "python_full_version": "3.13.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "extra": "",
}


@pytest.fixture(scope="module")
def built_template() -> dict[str, Any]:
    template_file = BUILD_DIR / "template.yaml"
    assert template_file.exists(), "no .aws-sam/build: run `make build` (make test does) before these tests"
    return load_template(template_file)


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each function's properties with Globals applied (Handler, Layers, ... as SAM deploys them)."""
    return {
        name: resource["Properties"]
        for name, resource in resources_with_globals(template).items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def _layer_dirs(template: dict[str, Any], properties: dict[str, Any]) -> list[Path]:
    layers = properties.get("Layers", [])  # Globals' layers first, then the function's own (as SAM appends them)
    dirs = []
    for layer in layers:
        logical = layer["Ref"] if isinstance(layer, dict) else None
        if logical is None:
            continue  # a public layer by ARN: provides its own packages
        content = template["Resources"][logical]["Properties"]["ContentUri"]
        dirs.append(BUILD_DIR / content / "python")
    return dirs


def _artifact_roots(template: dict[str, Any]) -> dict[Path, str]:
    """Each function's and layer's build folder -> the directory Lambda unpacks it into."""
    roots: dict[Path, str] = {}
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            roots[BUILD_DIR / properties["CodeUri"]] = FUNCTION_ROOT
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            roots[BUILD_DIR / properties["ContentUri"]] = LAYER_ROOT
    return roots


def _bytecode_problem(source: Path, folder: Path, root: str) -> str | None:
    """Why Lambda would compile `source` at import instead of reading its .pyc (None: it reads it)."""
    cached = source.parent / "__pycache__" / f"{source.stem}.{LAMBDA_CACHE_TAG}.pyc"
    if not cached.exists():
        return "no .pyc"
    data = cached.read_bytes()
    if data[:4] != importlib.util.MAGIC_NUMBER:
        return "another Python's magic number"
    if int.from_bytes(data[4:8], "little") != CHECKED_HASH_FLAGS:
        return "not checked-hash (a timestamp .pyc goes stale when SAM resets file times)"
    if data[8:16] != importlib.util.source_hash(source.read_bytes()):
        return "stale: the source changed after compiling"
    expected = f"{root}/{source.relative_to(folder).as_posix()}"
    recorded = marshal.loads(data[16:]).co_filename  # noqa: S302 - our own build output
    if recorded != expected:
        return f"compiled as {recorded}, runs as {expected}"
    return None


def _search_path(template: dict[str, Any], properties: dict[str, Any]) -> list[Path]:
    return [BUILD_DIR / properties["CodeUri"], *_layer_dirs(template, properties)]


def _find_module(name: str, search_path: list[Path]) -> Path | None:
    for base in search_path:
        for candidate in (base / name / "__init__.py", base / f"{name}.py"):
            if candidate.exists():
                return candidate
        if (base / name).is_dir() or any(base.glob(f"{name}.*.so")) or any(base.glob(f"{name}.so")):
            return base / name
    return None


@dataclass
class _Module:
    """One source file's imports: those run on import, and those deferred into a top-level def or class.

    A deferred (function-level) import runs only when its function does: the layer defers
    `import telnyx` to the one path that needs the SDK. Such an import counts for a function's
    tree only when the name enclosing it is used: imported by name from elsewhere, or referenced
    by another used name of the same module (the handler's own module: all of it).
    """

    eager: list[ast.Import | ast.ImportFrom] = field(default_factory=list)
    deferred: dict[str, list[ast.Import | ast.ImportFrom]] = field(default_factory=dict)
    references: dict[str, set[str]] = field(default_factory=dict)


def _parse(source: Path) -> _Module:
    tree = ast.parse(source.read_text())
    module = _Module()
    type_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in ast.walk(node)
    }

    def imports_in(nodes: list[ast.AST]) -> list[ast.Import | ast.ImportFrom]:
        found: list[ast.Import | ast.ImportFrom] = []
        for top in nodes:
            for node in ast.walk(top):
                if id(node) in type_only or not isinstance(node, ast.Import | ast.ImportFrom):
                    continue
                found.append(node)
        return found

    functions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
    in_functions = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, functions)
        for child in ast.walk(node)
        if child is not node
    }
    for statement in tree.body:
        names: list[str] = []
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names = [statement.name]
        elif isinstance(statement, ast.Assign | ast.AnnAssign):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            names = [target.id for target in targets if isinstance(target, ast.Name)]
        every = imports_in([statement])
        module.eager += [node for node in every if id(node) not in in_functions]
        for name in names:
            module.deferred[name] = [node for node in every if id(node) in in_functions]
            module.references[name] = {node.id for node in ast.walk(statement) if isinstance(node, ast.Name)}
    return module


def _imported(node: ast.Import | ast.ImportFrom) -> list[tuple[str, set[str] | None]]:
    """(module, names it takes from it; None = the whole module) for one import statement."""
    if isinstance(node, ast.Import):
        return [(alias.name, None) for alias in node.names]
    if not node.module or node.level != 0:
        return []
    return [(node.module, {alias.name for alias in node.names})]


def _third_party_imports(entry: Path, search_path: list[Path], first_party: set[str]) -> set[str]:
    """Top-level third-party modules reachable from `entry` through first-party modules' used names."""
    parsed: dict[Path, _Module] = {}
    used: set[tuple[Path, str]] = set()
    third_party: set[str] = set()
    pending: list[tuple[Path, set[str] | None]] = [(entry, None)]
    while pending:
        source, names = pending.pop()
        first_visit = source not in parsed
        module = parsed.setdefault(source, _parse(source))
        statements = list(module.eager) if first_visit else []
        wanted = set(module.references) if names is None else set(names)
        while wanted:
            name = wanted.pop()
            if (source, name) in used or name not in module.references:
                continue
            used.add((source, name))
            statements += module.deferred[name]
            wanted |= module.references[name] & set(module.references)
        for statement in statements:
            for dotted, taken in _imported(statement):
                top = dotted.split(".")[0]
                if top in sys.stdlib_module_names or top == "__future__":
                    continue
                if top not in first_party:
                    third_party.add(top)
                    continue
                # `from voicebus.x import y`: y may be a name of voicebus/x.py or the module voicebus/x/y.py.
                target = _module_file(dotted, search_path)
                if target is not None:
                    pending.append((target, taken))
                for name in taken or set():
                    submodule = _module_file(f"{dotted}.{name}", search_path)
                    if submodule is not None:
                        pending.append((submodule, None))
    return third_party


def _module_file(dotted: str, search_path: list[Path]) -> Path | None:
    relative = Path(*dotted.split("."))
    for base in search_path:
        for candidate in (base / relative / "__init__.py", base.joinpath(*relative.parts[:-1], f"{relative.name}.py")):
            if candidate.exists():
                return candidate
    return None


def test_every_native_extension_is_built_for_arm64_linux() -> None:
    extensions = sorted(BUILD_DIR.rglob("*.so"))
    assert extensions, "expected PyNaCl's and pydantic-core's extensions in the build"
    names = {path.name.split(".")[0] for path in extensions}
    assert {"_sodium", "_pydantic_core"} <= names
    wrong = []
    for path in extensions:
        header = path.read_bytes()[:20]
        is_elf_aarch64 = header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == ELF_MACHINE_AARCH64
        if not is_elf_aarch64:
            wrong.append(str(path.relative_to(BUILD_DIR)))
    assert wrong == []


def test_every_module_in_the_artifacts_has_current_checked_hash_bytecode_at_its_lambda_path(
    built_template: dict[str, Any],
) -> None:
    """Lambda's code directories are read-only: a module without a valid .pyc is compiled on every cold start."""
    roots = _artifact_roots(built_template)
    assert set(roots.values()) == {FUNCTION_ROOT, LAYER_ROOT}
    problems: dict[str, str] = {}
    checked = 0
    for folder, root in roots.items():
        for source in folder.rglob("*.py"):
            problem = _bytecode_problem(source, folder, root)
            if problem is not None:
                problems[str(source.relative_to(BUILD_DIR))] = problem
            checked += 1
    assert checked > len(roots), "expected every function's and layer's sources in the build"
    assert problems == {}, (
        f"{len(problems)} of {checked} sources (run `make build`): {dict(list(problems.items())[:5])}"
    )


def test_each_function_tree_holds_every_package_it_imports(built_template: dict[str, Any]) -> None:
    missing: dict[str, set[str]] = {}
    checked = 0
    for name, properties in _functions(built_template).items():
        search_path = _search_path(built_template, properties)
        handler_module = properties["Handler"].rsplit(".", 1)[0]
        entry = search_path[0] / f"{handler_module}.py"
        assert entry.exists(), f"{name}: no {entry}"
        first_party = {"voicebus", handler_module}
        needed = _third_party_imports(entry, search_path, first_party) - RUNTIME_PROVIDED
        absent = {module for module in needed if _find_module(module, search_path) is None}
        if absent:
            missing[name] = absent
        checked += 1
    assert checked >= 1
    assert missing == {}


def test_every_bundled_distribution_has_its_dependencies(built_template: dict[str, Any]) -> None:
    broken: dict[str, list[str]] = {}
    for name, properties in _functions(built_template).items():
        search_path = _search_path(built_template, properties)
        distributions: list[Distribution] = [
            PathDistribution(info) for base in search_path for info in base.glob("*.dist-info")
        ]
        present = {canonicalize_name(dist.metadata["Name"]) for dist in distributions} | RUNTIME_DISTRIBUTIONS
        for dist in distributions:
            for text in dist.requires or []:
                requirement = Requirement(text)
                if requirement.marker and not requirement.marker.evaluate(LAMBDA_MARKERS):
                    continue
                if canonicalize_name(requirement.name) not in present:
                    broken.setdefault(name, []).append(f"{dist.metadata['Name']} needs {requirement.name}")
    assert broken == {}


def test_the_deferred_sdk_import_counts_only_where_its_path_is_used(built_template: dict[str, Any]) -> None:
    """Guards the scan: the telnyx SDK is needed by the recording function (link refresh), not by the senders."""
    needs_sdk = set()
    for name, properties in _functions(built_template).items():
        search_path = _search_path(built_template, properties)
        entry = search_path[0] / f"{properties['Handler'].rsplit('.', 1)[0]}.py"
        if "telnyx" in _third_party_imports(entry, search_path, {"voicebus", entry.stem}):
            needs_sdk.add(name)
    assert needs_sdk == {"RecordingFunction"}


def test_layers_of_one_function_bundle_the_same_version_of_what_they_share(built_template: dict[str, Any]) -> None:
    """Layers unpack into the same /opt/python and the later one wins: a shared package must not differ.

    The telnyx SDK layer once bundled pydantic-core 2.50.5 beside the voicebus layer's pydantic 2.14.3,
    which refuses any pydantic-core but its own: the recording function would have failed at init.
    """
    clashes: dict[str, list[str]] = {}
    for name, properties in _functions(built_template).items():
        versions: dict[str, set[str]] = {}
        for base in _search_path(built_template, properties)[1:]:  # the layers, after the function's own code
            for info in base.glob("*.dist-info"):
                metadata = PathDistribution(info).metadata
                versions.setdefault(canonicalize_name(metadata["Name"]), set()).add(metadata["Version"])
        clashes.update({f"{name}: {package}": sorted(found) for package, found in versions.items() if len(found) > 1})
    assert clashes == {}
