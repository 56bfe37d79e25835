"""The `sam local` tier: the functions in the Lambda runtime's container, against moto.

Run by `make sam-local` (scripts/samlocal/run.sh), which starts a Docker engine, builds
the Python 3.13 Lambda base image where it cannot be pulled, runs scripts/samlocal/build.py
for the architecture and sets VOICEBUS_SAM_LOCAL_ARCH. Without that variable (a plain
`pytest`), this folder is not collected.

moto, the Telnyx API stand-in and the recording storage stand-in listen on the Docker
bridge's gateway (172.17.0.1 by default), where the functions' containers reach them; the
functions are pointed at them by the `--env-vars` file (AWS_ENDPOINT_URL, TELNYX_BASE_URL),
and read the Telnyx API key from a Secrets Manager secret in moto, as in AWS.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from tests.samlocal.sam import ROOT, SamLocal
from voicebus_cli.local.moto_server import LOCAL_CREDENTIALS, MotoServer
from voicebus_cli.local.provision import ProvisionedStack, provision
from voicebus_cli.local.storage import StorageServer
from voicebus_cli.local.telnyx_api import TelnyxApiStandIn
from voicebus_cli.local.template import Stack, load_template
from voicebus_cli.testkey import TestKeyPair, load_test_key

ARCH = os.environ.get("VOICEBUS_SAM_LOCAL_ARCH", "")
EMULATED = ARCH == "arm64" and os.uname().machine != "aarch64"
"""arm64 on an x86_64 host runs under qemu: minutes per cold start, so only a few functions."""

if not ARCH:
    collect_ignore_glob = ["test_*.py"]
elif EMULATED:
    collect_ignore = ["test_start_lambda.py"]  # every sample to every function: native runs only

INVOKE_TIMEOUT = float(os.environ.get("VOICEBUS_SAM_LOCAL_INVOKE_TIMEOUT", "900" if EMULATED else "300"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "samlocal: runs functions through `sam local` (make sam-local)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/samlocal/" in item.nodeid:
            item.add_marker(pytest.mark.samlocal)
            # A module's first test also starts its server and cold containers (minutes under emulation).
            item.add_marker(pytest.mark.timeout(3 * INVOKE_TIMEOUT))


def bridge_gateway() -> str:
    """Where containers on Docker's default bridge reach this host."""
    configured = os.environ.get("VOICEBUS_SAM_LOCAL_HOST")
    if configured:
        return configured
    done = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip() or "172.17.0.1"


@pytest.fixture(scope="session")
def host() -> str:
    return bridge_gateway()


@pytest.fixture(scope="session")
def test_key() -> TestKeyPair:
    return load_test_key()


@pytest.fixture(scope="session")
def local_aws(host: str) -> Iterator[MotoServer]:
    """moto on the bridge gateway; this process's boto3 clients use it too."""
    with MotoServer(host=host) as server, pytest.MonkeyPatch.context() as patch:
        for name, value in server.environment().items():
            patch.setenv(name, value)
        yield server


@pytest.fixture(scope="session")
def telnyx(host: str) -> Iterator[TelnyxApiStandIn]:
    with TelnyxApiStandIn(host=host) as api:
        yield api


@pytest.fixture(scope="session")
def storage(host: str) -> Iterator[StorageServer]:
    with StorageServer(host=host) as server:
        yield server


@pytest.fixture(scope="session")
def build_dir() -> Path:
    build = ROOT / ".aws-sam" / "samlocal" / ARCH / "build"
    if not (build / "template.yaml").is_file():
        pytest.fail(f"no {build}: run `make sam-local` (or scripts/samlocal/build.py {ARCH})")
    return build


@dataclass(frozen=True)
class LocalStack:
    """A stack provisioned in moto from template.yaml, and `sam local` pointed at it."""

    stack: ProvisionedStack
    sam: SamLocal

    def ref(self, logical_id: str) -> str:
        return self.stack.ref(logical_id)


@pytest.fixture(scope="session")
def new_stack(
    host: str,
    local_aws: MotoServer,
    telnyx: TelnyxApiStandIn,
    test_key: TestKeyPair,
    build_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[], LocalStack]:
    """Provision a fresh stack under a unique name and write its `--env-vars` file."""
    # `make` runs on several threads at once (test_invoke.py), and pytest creates its base
    # folder lazily without a lock: two threads could each create one, and the later
    # `mktemp` then refuses its own path ("is not a normalized and relative path").
    tmp_path_factory.getbasetemp()

    def make() -> LocalStack:
        name = f"s{uuid.uuid4().hex[:10]}"
        secret = boto3.client("secretsmanager").create_secret(
            Name=f"{name}/telnyx-api-key", SecretString=telnyx.api_key
        )
        parameters = {"TelnyxPublicKey": test_key.public_key_b64, "TelnyxApiKeySecretArn": secret["ARN"]}
        stack = provision(Stack(load_template(), name, parameters=parameters))
        # Only variables a function declares reach it: each is declared empty in template.yaml.
        pointers = {
            "AWS_ENDPOINT_URL": local_aws.endpoint_url,
            "TELNYX_BASE_URL": telnyx.base_url,
            "RECORDING_HTTP_HOSTS": host,  # the storage stand-in serves plain http
        }
        env_vars = {logical: {**function.environment, **pointers} for logical, function in stack.functions.items()}
        env_file = tmp_path_factory.mktemp(name) / "env.json"
        env_file.write_text(json.dumps(env_vars, indent=1))
        sam = SamLocal(build_dir / "template.yaml", env_file, LOCAL_CREDENTIALS, INVOKE_TIMEOUT)
        return LocalStack(stack, sam)

    return make
