"""Least privilege read from a template: each function's grants against what its code calls.

`TemplateSecurity(template)` reads template.yaml, or a copy with your own function
added: a function is judged by its policies and the modules its handler imports,
never by its name, so the same checks hold for the bundle's functions and yours.
"""

from __future__ import annotations

import ast
from functools import cached_property
from pathlib import Path
from typing import Any

import botocore
import botocore.session
from aws_lambda_powertools.utilities.idempotency.persistence import dynamodb as idempotency_persistence

from voicebus_cli.local.template import resources_with_globals
from voicebus_cli.testkey import ROOT

LAYER = ROOT / "layers" / "voicebus"
# SAM policy templates whose actions are broader than any function's code needs.
BROAD_TEMPLATES = {"DynamoDBCrudPolicy", "DynamoDBWritePolicy", "S3CrudPolicy", "S3FullAccessPolicy"}


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = document.get("Statement", [])
    return found if isinstance(found, list) else [found]


def branches(item: Any) -> list[Any]:
    """An item, or both branches of a conditional (`!If`) one, less AWS::NoValue."""
    if isinstance(item, dict) and "Fn::If" in item:
        return [branch for branch in item["Fn::If"][1:] if branch != {"Ref": "AWS::NoValue"}]
    return [item]


def actions(statement: dict[str, Any]) -> list[str]:
    found = statement["Action"]
    return found if isinstance(found, list) else [found]


def one_resource(target: Any) -> bool:
    """A Ref / GetAtt / Sub naming exactly one resource or parameter, or an `!If` choosing between two such."""
    if not isinstance(target, dict) or len(target) != 1:
        return False
    [(function, argument)] = target.items()
    if function == "Fn::Sub":  # pseudo parameters (${AWS::Region}) name no resource
        return isinstance(argument, str) and argument.count("${") - argument.count("${AWS::") == 1
    if function == "Fn::Split":  # a parameter that lists exact ARNs (InvokableFunctionArns)
        return isinstance(argument, list) and len(argument) == 2 and one_resource(argument[1])
    if function == "Fn::If":
        return all(one_resource(branch) for branch in argument[1:])
    return function in {"Ref", "Fn::GetAtt"}


def _dynamodb_operations() -> dict[str, str]:
    """snake_case method name -> IAM action, for every DynamoDB API operation."""
    model = botocore.session.get_session().get_service_model("dynamodb")
    return {botocore.xform_name(operation): f"dynamodb:{operation}" for operation in model.operation_names}


def calls_in(sources: list[Path]) -> tuple[set[str], bool]:
    """The DynamoDB actions `sources` call (directly or through a paginator), and whether they query an index."""
    operations = _dynamodb_operations()
    found: set[str] = set()
    uses_index = False
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            method = node.func.attr
            if method == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                method = str(node.args[0].value)
            if method in operations:
                found.add(operations[method])
            uses_index |= any(keyword.arg == "IndexName" for keyword in node.keywords)
    return found, uses_index


# The calls table is the only table voicebus's own code touches; the idempotency table is Powertools'.
CALL_STORE_ACTIONS, CALL_STORE_QUERIES_AN_INDEX = calls_in(sorted((LAYER / "voicebus").rglob("*.py")))
IDEMPOTENCY_ACTIONS, _ = calls_in([Path(idempotency_persistence.__file__)])


class TemplateSecurity:
    """A template's functions, their grants and their code's needs."""

    def __init__(self, template: dict[str, Any]) -> None:
        self.template = template
        self.resources: dict[str, dict[str, Any]] = template["Resources"]

    @cached_property
    def functions(self) -> dict[str, dict[str, Any]]:
        return {
            name: resource
            for name, resource in resources_with_globals(self.template).items()
            if resource["Type"] == "AWS::Serverless::Function"
        }

    def policies(self, name: str) -> list[dict[str, Any]]:
        """A function's policies; a `!Ref` to a managed policy of the template stands for its document."""
        found = []
        for policy in self.functions[name]["Properties"].get("Policies", []):
            for branch in branches(policy):
                managed = self.resources.get(branch.get("Ref", "")) if isinstance(branch, dict) else None
                if managed is not None and managed["Type"] == "AWS::IAM::ManagedPolicy":
                    branch = managed["Properties"]["PolicyDocument"]
                found.append(branch)
        return found

    def function_statements(self, name: str) -> list[dict[str, Any]]:
        return [
            statement
            for policy in self.policies(name)
            if "Statement" in policy
            for item in statements(policy)
            for statement in branches(item)
        ]

    def imports(self, name: str) -> set[str]:
        """Every module the function's handler imports, following voicebus's own modules (the layer)."""
        properties = self.functions[name]["Properties"]
        entry = ROOT / properties["CodeUri"] / f"{properties['Handler'].rsplit('.', 1)[0]}.py"
        seen: set[str] = set()
        pending = [entry]
        while pending:
            tree = ast.parse(pending.pop().read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
                else:
                    continue
                for module in names:
                    if module in seen:
                        continue
                    seen.add(module)
                    if module.split(".")[0] == "voicebus":
                        path = LAYER.joinpath(*module.split("."))
                        source = next((p for p in (path / "__init__.py", path.with_suffix(".py")) if p.exists()), None)
                        if source is not None:
                            pending.append(source)
        return seen

    def granted(self, name: str) -> dict[str, set[str]]:
        """DynamoDB actions granted to the function, by resource (table logical id, `<table>/index`)."""
        granted: dict[str, set[str]] = {}
        for statement in self.function_statements(name):
            dynamodb = {action for action in actions(statement) if action.startswith("dynamodb:")}
            if not dynamodb:
                continue
            target = statement["Resource"]
            if "Fn::GetAtt" in target:
                key = target["Fn::GetAtt"][0]
            else:
                text = target["Fn::Sub"]
                key = text[2 : text.index(".")] + "/index" if "/index/" in text else text
            granted.setdefault(key, set()).update(dynamodb)
        return granted

    def needed(self, name: str) -> dict[str, set[str]]:
        imports = self.imports(name)
        needed: dict[str, set[str]] = {}
        if "voicebus.calls.store" in imports:
            needed["CallsTable"] = CALL_STORE_ACTIONS
            if CALL_STORE_QUERIES_AN_INDEX:
                needed["CallsTable/index"] = {"dynamodb:Query"}
        if any(module.startswith("aws_lambda_powertools.utilities.idempotency") for module in imports):
            needed["IdempotencyTable"] = IDEMPOTENCY_ACTIONS
        return needed

    # ------------------------------------------------------------ checks, per function
    def check_policies_are_scoped_to_one_resource_each(self, name: str) -> None:
        for policy in self.policies(name):
            assert isinstance(policy, dict), f"{name}: managed policy by name {policy!r}"
            if "Statement" in policy:
                # Statements only where no SAM template fits (DynamoDB and S3: the exact actions the code calls).
                for item in statements(policy):
                    for statement in branches(item):
                        assert all("*" not in action for action in actions(statement)), f"{name}: {statement}"
                        assert one_resource(statement["Resource"]), f"{name}: {statement['Resource']!r}"
                continue
            [(template_name, arguments)] = policy.items()
            assert template_name.endswith("Policy"), f"{name}: {template_name} is not a SAM policy template"
            assert template_name not in BROAD_TEMPLATES, f"{name}: {template_name} grants more than the code calls"
            assert isinstance(arguments, dict)
            assert len(arguments) == 1, f"{name}: {template_name} must name exactly one resource"
            [target] = arguments.values()
            assert one_resource(target), f"{name}: {template_name} must reference one resource, not {target!r}"

    def check_dynamodb_grants_are_what_the_code_calls(self, name: str) -> None:
        granted, needed = self.granted(name), self.needed(name)
        for table, granted_actions in granted.items():
            unused = granted_actions - needed.get(table, set())
            assert not unused, f"{name}: {sorted(unused)} on {table}, which its code never calls"
        assert granted == needed, f"{name}: missing { ({t: a - granted.get(t, set()) for t, a in needed.items()}) }"

    def check_only_archivers_write_the_archive(self, name: str) -> None:
        writes_archive = any(
            "s3:PutObject" in actions(statement) and "ArchiveBucket" in str(statement["Resource"])
            for statement in self.function_statements(name)
        )
        assert writes_archive == any(module.startswith("voicebus.archive.") for module in self.imports(name)), name

    def check_no_api_key_in_the_environment(self, name: str) -> None:
        variables = self.functions[name]["Properties"].get("Environment", {}).get("Variables", {})
        assert "TELNYX_API_KEY" not in variables, f"{name} puts the API key in its environment"

    def check_not_traced(self, name: str) -> None:
        assert self.functions[name]["Properties"].get("Tracing", "PassThrough") != "Active", name

    # ------------------------------------------------------------ checks, whole template
    def check_no_statement_allows_a_wildcard_action(self) -> None:
        for name, resource in self.resources.items():
            properties = resource.get("Properties", {})
            for key in ("PolicyDocument", "AssumeRolePolicyDocument"):
                for item in statements(properties.get(key, {})):
                    for statement in branches(item):
                        if statement.get("Effect") != "Allow":
                            continue
                        assert all("*" not in action for action in actions(statement)), f"{name}: {statement}"

    def check_every_function(self, name: str) -> None:
        self.check_policies_are_scoped_to_one_resource_each(name)
        self.check_dynamodb_grants_are_what_the_code_calls(name)
        self.check_only_archivers_write_the_archive(name)
        self.check_no_api_key_in_the_environment(name)
        self.check_not_traced(name)


def guarded_functions() -> frozenset[str]:
    """template.yaml's functions whose code keeps Powertools idempotency records (read from their imports).

    They promise each event is processed once per function; the others (record-only
    families) may process a redelivery again, harmlessly.
    """
    from voicebus_cli.local.template import load_template

    security = TemplateSecurity(load_template())
    return frozenset(name for name in security.functions if "IdempotencyTable" in security.needed(name))
