"""What `sam local` needs of template.yaml, samconfig.toml and the local override (scripts/samlocal)."""

from __future__ import annotations

import importlib.util
import tomllib
from types import ModuleType
from typing import Any

from voicebus_cli.local.provision import function_environment
from voicebus_cli.local.template import Stack, load_template, resources_with_globals
from voicebus_cli.testkey import ROOT

TEMPLATE = load_template()
FUNCTIONS = {
    name: resource["Properties"]
    for name, resource in resources_with_globals(TEMPLATE).items()
    if resource["Type"] == "AWS::Serverless::Function"
}


def samlocal_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("samlocal_build", ROOT / "scripts" / "samlocal" / "build.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def variables(properties: dict[str, Any]) -> dict[str, Any]:
    return dict(properties.get("Environment", {}).get("Variables", {}))


def test_every_function_declares_the_variables_env_vars_points_elsewhere() -> None:
    """`sam local --env-vars` sets only what the template declares: empty in AWS, where it means unset."""
    for name, properties in FUNCTIONS.items():
        declared = variables(properties)
        assert declared.get("AWS_ENDPOINT_URL") == "", name
        if "TELNYX_API_KEY_SECRET_ARN" in declared:
            assert declared.get("TELNYX_BASE_URL") == "", name


def test_the_local_stack_treats_the_empty_pointers_as_unset() -> None:
    """An empty AWS_ENDPOINT_URL from the template must not hide moto's from the local functions."""
    declared = {"AWS_ENDPOINT_URL": "", "POWERTOOLS_SERVICE_NAME": "x"}
    template = {"Globals": {"Function": {"Environment": {"Variables": declared}}}, "Resources": {}}
    props = {"Environment": {"Variables": {"TELNYX_BASE_URL": "", "FLOW_SALES_NUMBER": ""}}}

    env = function_environment(Stack(template, "unit"), props)

    assert env == {"POWERTOOLS_SERVICE_NAME": "x", "FLOW_SALES_NUMBER": ""}


def test_local_commands_use_the_image_on_this_machine() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())["default"]
    for command in ("local_invoke", "local_start_api", "local_start_lambda"):
        assert config[command]["parameters"]["skip_pull_image"] is True, command


def test_the_local_override_changes_only_the_architecture_and_paths() -> None:
    build = samlocal_build()
    local = build.local_template(TEMPLATE, "x86_64", None)

    assert local["Globals"]["Function"]["Architectures"] == ["x86_64"]
    assert local["Globals"]["Function"]["Timeout"] == TEMPLATE["Globals"]["Function"]["Timeout"]
    for name, resource in local["Resources"].items():
        original = TEMPLATE["Resources"][name]
        properties, before = resource.get("Properties", {}), original.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            assert properties["CompatibleArchitectures"] == ["x86_64"]
            assert str(ROOT / before["ContentUri"]) == properties["ContentUri"]
        elif resource["Type"] == "AWS::Serverless::Function":
            assert str(ROOT / before["CodeUri"]) == properties["CodeUri"]
            assert properties.get("Timeout") == before.get("Timeout"), name
            assert {k: v for k, v in properties.items() if k != "CodeUri"} == {
                k: v for k, v in before.items() if k != "CodeUri"
            }
        elif resource["Type"] != "AWS::Serverless::Application":
            assert resource == original, name


def test_emulated_runs_get_a_timeout_floor_and_keep_longer_timeouts() -> None:
    build = samlocal_build()
    local = build.local_template(TEMPLATE, "arm64", 600)

    assert local["Globals"]["Function"]["Timeout"] == 600
    timeouts = {
        name: r["Properties"].get("Timeout")
        for name, r in local["Resources"].items()
        if "Timeout" in r.get("Properties", {})
    }
    assert timeouts
    assert all(value >= 600 for value in timeouts.values())
    assert timeouts.get("RecordingFunction") == max(
        600, TEMPLATE["Resources"]["RecordingFunction"]["Properties"]["Timeout"]
    )
