"""What `sam build` produced is what Lambda (python3.13, arm64) can run.

`make test` runs `sam build` (no container) before pytest; these tests read .aws-sam/build.
"""

from __future__ import annotations

import ast
import sys
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


def _imports(source: Path) -> set[str]:
    """Absolute module names imported by `source`, leaving out `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(source.read_text())
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(child) for child in ast.walk(node))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _third_party_imports(entry: Path, search_path: list[Path], first_party: set[str]) -> set[str]:
    """Top-level third-party modules reachable from `entry` through first-party modules."""
    seen: set[Path] = set()
    pending = [entry]
    third_party: set[str] = set()
    while pending:
        source = pending.pop()
        if source in seen:
            continue
        seen.add(source)
        for name in _imports(source):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top == "__future__":
                continue
            if top not in first_party:
                third_party.add(top)
                continue
            module = _module_file(name, search_path)
            if module is not None:
                pending.append(module)
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
