"""The layers' requirements.txt (what `sam build` bundles) pin what uv.lock tests with."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from voicebus_cli.testkey import ROOT

REQUIREMENT_FILES = sorted((ROOT / "layers").glob("*/requirements.txt")) + sorted(
    (ROOT / "functions").glob("*/requirements.txt")
)


def _locked_versions() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {canonicalize_name(package["name"]): package["version"] for package in lock["package"]}


@pytest.mark.parametrize("path", REQUIREMENT_FILES, ids=[str(p.relative_to(ROOT)) for p in REQUIREMENT_FILES])
def test_bundled_pins_match_the_lock(path: Path) -> None:
    locked = _locked_versions()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        pinned = {spec.version for spec in requirement.specifier if spec.operator == "=="}
        assert pinned, f"{path.name}: {line} must pin an exact version (==)"
        assert pinned == {locked[canonicalize_name(requirement.name)]}, f"{line} differs from uv.lock"


def test_boto3_is_left_to_the_lambda_runtime() -> None:
    for path in REQUIREMENT_FILES:
        names = {Requirement(line).name for line in path.read_text().splitlines() if line and line[0].isalpha()}
        assert "boto3" not in names, f"{path}: the python3.13 runtime provides boto3"
