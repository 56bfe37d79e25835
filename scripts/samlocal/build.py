"""`sam build` of template.yaml for one architecture, for `sam local` on this machine.

The local override, and all of it (README, "sam local"): the functions' and layers'
architecture (x86_64 runs natively here; arm64, as the template declares, runs under
qemu), and, with `--min-timeout`, a floor under every function's timeout (emulated cold
starts take minutes). Everything else is template.yaml as it is. The copy is written as
JSON with absolute paths, built into `.aws-sam/samlocal/<arch>/build` and byte-compiled
as `make build` does (scripts/compile_build.py).

    python scripts/samlocal/build.py x86_64|arm64 [--min-timeout SECONDS]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "scripts")]

from compile_build import compile_artifacts  # type: ignore[import-not-found]  # noqa: E402

from voicebus_cli.local.template import load_template  # noqa: E402

ARCHITECTURES = ("x86_64", "arm64")
SAM = ROOT / ".tools" / "sam" / "bin" / "sam"
PATH_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::Application": "Location",
}


def build_dir(arch: str) -> Path:
    return ROOT / ".aws-sam" / "samlocal" / arch


def local_template(template: dict[str, Any], arch: str, min_timeout: int | None) -> dict[str, Any]:
    """template.yaml for `sam local` on `arch`: only the architecture (and a timeout floor) change."""
    local = copy.deepcopy(template)
    function_globals = local["Globals"]["Function"]
    function_globals["Architectures"] = [arch]
    if min_timeout is not None:
        function_globals["Timeout"] = max(int(function_globals.get("Timeout", 3)), min_timeout)
    for resource in local["Resources"].values():
        properties = resource.get("Properties", {})
        path_property = PATH_PROPERTIES.get(resource["Type"])
        if path_property and isinstance(properties.get(path_property), str):
            properties[path_property] = str(ROOT / properties[path_property])
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            properties["CompatibleArchitectures"] = [arch]
            if "BuildArchitecture" in resource.get("Metadata", {}):
                resource["Metadata"]["BuildArchitecture"] = arch
        if resource["Type"] == "AWS::Serverless::Function":
            if "Architectures" in properties:
                properties["Architectures"] = [arch]
            if min_timeout is not None and "Timeout" in properties:
                properties["Timeout"] = max(int(properties["Timeout"]), min_timeout)
    return local


def build(arch: str, min_timeout: int | None) -> Path:
    """Write the local template, `sam build` it (cached) and compile it; the build folder."""
    out = build_dir(arch)
    out.mkdir(parents=True, exist_ok=True)
    template_file = out / "template.json"
    template_file.write_text(json.dumps(local_template(load_template(), arch, min_timeout), indent=1))
    command = [
        str(SAM), "build", "--template-file", str(template_file), "--build-dir", str(out / "build"),
        "--cache-dir", str(out / "cache"), "--cached", "--parallel",
    ]  # fmt: skip
    # sam build needs a python3.13 with pip first on PATH (as the Makefile sets it).
    path = os.pathsep.join([str(ROOT / ".tools" / "bin"), os.environ.get("PATH", "")])
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": path}
    log = out / "sam-build.log"
    with log.open("w") as output:
        done = subprocess.run(command, check=False, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)  # noqa: S603
    if done.returncode != 0:
        raise SystemExit(f"samlocal build: sam build exited {done.returncode}:\n{log.read_text()[-4000:]}")
    if not compile_artifacts(out / "build"):
        raise SystemExit(f"samlocal build: a source in {out / 'build'} does not compile")
    return out / "build"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch", choices=ARCHITECTURES)
    parser.add_argument("--min-timeout", type=int, default=None, help="floor under every function's Timeout")
    args = parser.parse_args(argv)
    print(f"samlocal build: {build(args.arch, args.min_timeout)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
