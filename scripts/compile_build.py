"""Byte-compile `sam build`'s artifacts for python3.13, as Lambda will find them.

`sam build` unpacks wheels without compiling them, and Lambda's code directories
(/var/task, /opt) are read-only: without .pyc files every cold start compiles every
module it imports. Each function folder is compiled as it will sit under /var/task
and each layer folder as under /opt, so tracebacks name the paths Lambda runs.

The .pyc files are checked-hash: SAM resets file times when it zips code or copies it
into an image, which would make timestamp-based .pyc stale (and silently ignored);
a hash-based one stays valid as long as the source bytes do.

Run by `make build` after `sam build`: `python scripts/compile_build.py [BUILD_DIR]`.
"""

from __future__ import annotations

import compileall
import py_compile
import sys
from pathlib import Path

import yaml

LAMBDA_PYTHON = (3, 13)
FUNCTION_ROOT = "/var/task"
LAYER_ROOT = "/opt"


class _CfnLoader(yaml.SafeLoader):
    """Reads the built template's short-form tags (!Ref, !If...) as plain values: only paths are needed."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def artifact_roots(build_dir: Path) -> dict[Path, str]:
    """Each function's and layer's build folder -> the directory Lambda unpacks it into."""
    template = yaml.load((build_dir / "template.yaml").read_text(), Loader=_CfnLoader)  # noqa: S506
    roots: dict[Path, str] = {}
    for resource in template["Resources"].values():
        properties = resource.get("Properties") or {}
        if resource["Type"] == "AWS::Serverless::Function" and isinstance(properties.get("CodeUri"), str):
            roots[build_dir / properties["CodeUri"]] = FUNCTION_ROOT
        elif resource["Type"] == "AWS::Serverless::LayerVersion" and isinstance(properties.get("ContentUri"), str):
            roots[build_dir / properties["ContentUri"]] = LAYER_ROOT
    return roots


def compile_artifacts(build_dir: Path) -> bool:
    """Compile every artifact folder; False if any source failed to compile."""
    roots = artifact_roots(build_dir)
    if not roots:
        raise SystemExit(f"compile_build: no function or layer folders in {build_dir}/template.yaml")
    ok = True
    for folder, prefix in sorted(roots.items()):
        ok &= bool(
            compileall.compile_dir(
                folder,
                quiet=1,
                force=True,
                stripdir=str(folder),
                prependdir=prefix,
                invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
                workers=0,
            )
        )
    return ok


def main(argv: list[str]) -> int:
    if sys.version_info[:2] != LAMBDA_PYTHON:
        print(f"compile_build: needs python{'.'.join(map(str, LAMBDA_PYTHON))} (Lambda's), not {sys.version}")
        return 2
    build_dir = Path(argv[0]) if argv else Path(".aws-sam/build")
    return 0 if compile_artifacts(build_dir) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
