"""Cold start of every function: module import (Lambda's init phase) in a fresh process, as a multiple of the floor.

The floor is what any function pays: `import boto3`, PyNaCl and one client. Floor
and function runs alternate, each in a fresh process, and each function run is
divided by the floor run just before it, so a machine that slows down or speeds up
during the bench moves both; the bench prints the min and median of those ratios,
never an absolute time (absolute times here say little about Lambda's), and each
function's target with a verdict on the median. Each run is timed in the child's
CPU time (time.process_time): on a shared 2-core machine, wall time mostly measures
the other processes; imports read files from the page cache, so CPU is nearly all of init.

What is imported: by default (`--artifacts`, when .aws-sam/build exists) the built
artifacts, laid out as Lambda does: sys.path starts with the function's build folder
(/var/task), then each of its layers' `python` folders (/opt/python), and the modules
are read from the build's checked-hash .pyc (scripts/compile_build.py, run by `make
build`); boto3 comes from this environment, as the runtime provides it. The floor
takes PyNaCl from the voicebus layer's build too. Native extensions in the build are
for Lambda's arm64: on another machine the same modules are loaded from this
environment's build of them (the versions uv.lock pins). `--source` imports from the source
tree instead (layers/voicebus, functions/<name>), where `--bytecode` gives the
children a private bytecode cache and one unmeasured warm-up run per script. The
header states which, and the share of imported modules that had a .pyc on disk.

Each function's environment comes from template.yaml (resource names are
placeholders; nothing is called over the network during init). The last column
says whether the init imported the telnyx SDK: only the recording path should,
and only when a download link has expired, never at init.

`--importtime FUNCTION` prints the imports costing FUNCTION's init most
(`-X importtime`, cumulative), in the same layout, instead of the table.

Run: `.venv/bin/python bench/cold_starts.py [--runs N] [--source [--bytecode]] [--importtime FUNCTION]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from functools import cache, cached_property
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "voicebus"), str(ROOT / "tools")]

from voicebus_cli.local.provision import function_environment  # noqa: E402
from voicebus_cli.local.template import Stack, load_template, resources_with_globals  # noqa: E402
from voicebus_cli.testkey import load_test_key  # noqa: E402

BUILD_DIR = ROOT / ".aws-sam" / "build"
SOURCE_LAYERS = {"VoicebusLayer": ROOT / "layers" / "voicebus", "TelnyxSdkLayer": ROOT / "layers" / "telnyx-sdk"}
FLOOR_LAYER = "VoicebusLayer"  # where the floor's PyNaCl comes from
# Targets on the median ratio: the ingress answers Telnyx synchronously; every other function <= 2x.
TARGETS = {"IngressFunction": 1.5}
DEFAULT_TARGET = 2.0
REPORT = """  # braces doubled: formatted as part of INIT and FLOOR
import json, os, sys, time
elapsed = time.process_time() - start
modules = [m for m in list(sys.modules.values()) if getattr(m, "__cached__", None) and getattr(m, "__file__", "")]
json.dump({{"seconds": elapsed, "telnyx": "telnyx" in sys.modules,
           "compiled": sum(os.path.exists(m.__cached__) for m in modules), "modules": len(modules)}}, sys.stderr)
"""
# Before the clock starts: native extensions built for Lambda's arm64 are loaded from this
# machine's build of them instead (the same module names, from this environment).
NATIVE = """
import importlib.util, sys
class HostNative:
    native = {native!r}
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        file = cls.native.get(name)
        return importlib.util.spec_from_file_location(name, file) if file else None
sys.meta_path.insert(0, HostNative)
"""
INIT = (
    NATIVE
    + """
import sys, time
start = time.process_time()
sys.path[:0] = {path!r}
import {module}
"""
    + REPORT
)
FLOOR = (
    NATIVE
    + """
import sys, time
start = time.process_time()
sys.path[:0] = {path!r}
import boto3
import nacl.signing
boto3.client("dynamodb")
{extra}
"""
    + REPORT
)
# What a single import adds on top of the floor: why the hot paths avoid pydantic and the SDK.
EXTRA_IMPORTS = {"pydantic": "import pydantic", "telnyx SDK": "import telnyx", "urllib3": "import urllib3"}


@dataclass(frozen=True)
class Run:
    seconds: float
    telnyx: bool
    compiled: int
    modules: int


@dataclass
class Bench:
    env: dict[str, str]
    runs: int
    warm_up: bool
    compiled: int = 0
    modules: int = 0

    def run(self, script: str, cwd: Path = ROOT) -> Run:
        # -P: the working directory is not put on sys.path (Lambda's sys.path starts with /var/task).
        done = subprocess.run(
            [sys.executable, "-P", "-c", script], capture_output=True, text=True, env=self.env, check=False, cwd=cwd
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(last)
        report = json.loads(done.stderr.strip().splitlines()[-1])
        return Run(report["seconds"], report["telnyx"], report["compiled"], report["modules"])

    def ratios(self, script: str, floor: str, cwd: Path = ROOT) -> tuple[list[float], bool]:
        """Floor, script, floor, script...: each script run over the floor run just before it."""
        if self.warm_up:
            self.run(floor)
            self.run(script, cwd)
        ratios, telnyx = [], False
        for _ in range(self.runs):
            base = self.run(floor)
            measured = self.run(script, cwd)
            ratios.append(measured.seconds / base.seconds)
            telnyx = telnyx or measured.telnyx
            self.compiled += measured.compiled
            self.modules += measured.modules
        return ratios, telnyx


def _elf_machine(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[18:20], "little")


@cache
def host_natives(paths: tuple[str, ...]) -> dict[str, str]:
    """Extension modules under `paths` this machine cannot load (arm64 on x86) -> this environment's build of each."""
    host = _elf_machine(Path(os.path.realpath(sys.executable)))
    site = Path(sysconfig.get_paths()["purelib"])
    found: dict[str, str] = {}
    for base in map(Path, paths):
        for extension in base.rglob("*.so"):
            if _elf_machine(extension) == host:
                continue
            relative, stem = extension.relative_to(base).parent, extension.name.split(".")[0]
            candidates = (site / relative / f"{stem}{suffix}" for suffix in EXTENSION_SUFFIXES)
            if (own := next((c for c in candidates if c.exists()), None)) is not None:
                found.setdefault(".".join([*relative.parts, stem]), str(own))
    return found


@dataclass(frozen=True)
class Layout:
    """Where a function's code and layers are read from: the build (as /var/task, /opt/python) or the source tree."""

    artifacts: bool

    @cached_property
    def template(self) -> dict[str, Any]:
        return load_template(BUILD_DIR / "template.yaml") if self.artifacts else load_template()

    def layer_dir(self, logical: str) -> Path:
        if self.artifacts:
            return BUILD_DIR / str(self.template["Resources"][logical]["Properties"]["ContentUri"]) / "python"
        return SOURCE_LAYERS[logical]

    def search_path(self, logical: str) -> list[str]:
        """sys.path's head for a function: its code, then its layers in the template's order.

        Lambda merges layers into one /opt (a later layer's files replacing an earlier's); kept
        apart here, a package both layers carry comes from the first, as tests/build reads them.
        """
        props = resources_with_globals(self.template)[logical]["Properties"]
        code = BUILD_DIR / props["CodeUri"] if self.artifacts else ROOT / props["CodeUri"]
        layers = [self.layer_dir(layer["Ref"]) for layer in props.get("Layers", []) if isinstance(layer, dict)]
        return [str(code), *map(str, layers)]

    def floor_path(self) -> list[str]:
        return [str(self.layer_dir(FLOOR_LAYER))] if self.artifacts else []

    def init_script(self, logical: str, handler: str) -> str:
        path = self.search_path(logical)
        return INIT.format(native=host_natives(tuple(path)), path=path, module=handler.rsplit(".", 1)[0])

    def floor_script(self, extra: str = "") -> str:
        path = self.floor_path()
        return FLOOR.format(native=host_natives(tuple(path)), path=path, extra=extra)


def placeholder_stack() -> Stack:
    stack = Stack(
        load_template(),
        "bench",
        parameters={
            "TelnyxPublicKey": load_test_key().public_key_b64,
            "TelnyxApiKeySecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench",
        },
    )
    for logical in stack.resources:
        stack.physical[logical] = f"bench-{logical}"
        stack.attributes[logical] = {"Arn": f"arn:aws:local:us-east-1:123456789012:{logical}", "QueueName": logical}
    return stack


def row(name: str, ratios: list[float], target: float | None, note: str) -> str:
    median = statistics.median(ratios)
    judged = f"{f'<= {target:g}':>8}  {'PASS' if median <= target else 'FAIL':<7}" if target else f"{'':>8}  {'':<7}"
    return f"{name:<28}{min(ratios):>8.2f}{median:>9.2f}{judged}  {note}"


def import_time(script: str, env: dict[str, str], cwd: Path, top: int = 20) -> str:
    """The `top` imports with the largest cumulative time in one run of `script` (-X importtime)."""
    done = subprocess.run(
        [sys.executable, "-P", "-X", "importtime", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=cwd,
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, cumulative, name = line.split(":", 1)[1].split("|")
        rows.append((int(cumulative), int(own), name.rstrip()))
    rows.sort(reverse=True)
    lines = [f"{'cumulative us':>14}{'self us':>10}  module"]
    lines += [f"{cumulative:>14}{own:>10}  {name}" for cumulative, own, name in rows[:top]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="floor/function pairs per row (default 5)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--artifacts",
        dest="artifacts",
        action="store_true",
        default=(BUILD_DIR / "template.yaml").exists(),
        help="import the built artifacts as Lambda lays them out (default when .aws-sam/build exists)",
    )
    where.add_argument("--source", dest="artifacts", action="store_false", help="import from the source tree")
    parser.add_argument(
        "--bytecode", action="store_true", help="--source only: children read bytecode from a private cache"
    )
    parser.add_argument("--function", action="append", metavar="FUNCTION", help="bench only FUNCTION (repeatable)")
    parser.add_argument("--importtime", metavar="FUNCTION", help="print FUNCTION's costliest imports instead")
    args = parser.parse_args()
    if args.artifacts and not (BUILD_DIR / "template.yaml").exists():
        parser.error("no .aws-sam/build: run `make build` first, or pass --source")
    if args.artifacts and args.bytecode:
        parser.error("--bytecode applies to --source; the artifacts carry their own bytecode")

    base = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        # Set locally instead of the secret: init must not call Secrets Manager here.
        "TELNYX_API_KEY": "KEY_bench",
    }
    layout = Layout(args.artifacts)
    stack = placeholder_stack()
    functions = {
        logical: resource["Properties"]
        for logical, resource in stack.resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    with tempfile.TemporaryDirectory(prefix="voicebus-pycache-") as pycache:
        if args.artifacts:
            # Never written, so every run reads what `make build` compiled (as Lambda's read-only /var/task, /opt).
            base["PYTHONDONTWRITEBYTECODE"] = "1"
            mode = "bytecode: the build's checked-hash .pyc (scripts/compile_build.py), none written"
        elif args.bytecode:
            base["PYTHONPYCACHEPREFIX"] = pycache
            mode = f"bytecode: a private cache ({pycache}), written by one unmeasured warm-up run per script"
        elif os.environ.get("PYTHONDONTWRITEBYTECODE"):
            base["PYTHONDONTWRITEBYTECODE"] = os.environ["PYTHONDONTWRITEBYTECODE"]
            mode = "bytecode: PYTHONDONTWRITEBYTECODE is set: only .pyc files already on disk are read, none written"
        else:
            mode = "bytecode: written to __pycache__ by the first run and read by the later ones"
        floor = layout.floor_script()

        if args.importtime:
            if args.importtime not in functions:
                parser.error(f"--importtime: no function {args.importtime} (one of {', '.join(functions)})")
            script = layout.init_script(args.importtime, functions[args.importtime]["Handler"])
            env = {**base, **function_environment(stack, functions[args.importtime])}
            print(f"{args.importtime}: costliest imports at init (-X importtime, one run; {mode})")
            print(import_time(script, env, Path(layout.search_path(args.importtime)[0])))
            return 0

        bench = Bench(base, args.runs, warm_up=args.bytecode)
        code = "the source tree"
        if args.artifacts:
            code = f"the built artifacts ({BUILD_DIR.relative_to(ROOT)}) as /var/task + /opt/python"
        print(f"cold start: module import in a fresh process over the floor's, {args.runs} alternating pairs per row")
        print(f"python {sys.version.split()[0]}; code: {code}")
        print(mode)
        print(f"{'function':<28}{'min x':>8}{'median x':>9}{'target':>8}  {'median':<7}  telnyx SDK at init")
        for logical, props in functions.items():
            if args.function and logical not in args.function:
                continue
            script = layout.init_script(logical, props["Handler"])
            bench.env = {**base, **function_environment(stack, props)}
            target = TARGETS.get(logical, DEFAULT_TARGET)
            try:
                ratios, telnyx = bench.ratios(script, floor, cwd=Path(layout.search_path(logical)[0]))
            except RuntimeError as error:
                print(f"{logical:<28}{'-':>8}{'-':>9}{f'<= {target:g}':>8}  {'FAIL':<7}  init failed: {error}")
                continue
            print(row(logical, ratios, target, "imported" if telnyx else "-"))
        bench.env = base
        print(f"\n{'one import on top of the floor':<28}{'min x':>8}{'median x':>9}")
        for name, statement in EXTRA_IMPORTS.items():
            ratios, _ = bench.ratios(layout.floor_script(statement), floor)
            print(row(name, ratios, None, ""))
        share = bench.compiled / bench.modules if bench.modules else 0.0
        print(f"\nmodules imported with a .pyc on disk: {share:.0%} of {bench.modules} over the measured runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
