#!/usr/bin/env bash
# `make sam-local`: the functions in the Lambda runtime's container, through `sam local`, against moto.
# For each architecture: the Python 3.13 Lambda base image (pulled, or a stand-in built by
# image.sh), `sam build` of the template for that architecture (build.py), then the pytest
# tier tests/samlocal. Starts a Docker engine when none runs, and stops only what it started.
#   SAM_LOCAL_ARCHS                 default "x86_64 arm64" (arm64 runs under qemu on an x86_64 host)
#   SAM_LOCAL_EMULATED_MIN_TIMEOUT  floor under every function's Timeout when emulated, default 600 s
#   SAM_LOCAL_KEEP_ENGINE=1         leave a Docker engine this script started running
set -euo pipefail
cd "$(dirname "$0")/../.."
ARCHS="${SAM_LOCAL_ARCHS:-x86_64 arm64}"
PY=.venv/bin/python

bash scripts/samlocal/engine.sh start
if [ "${SAM_LOCAL_KEEP_ENGINE:-}" != 1 ]; then
    trap 'bash scripts/samlocal/engine.sh stop' EXIT
fi
host="$(uname -m)"
for arch in $ARCHS; do
    started=$SECONDS
    timeout_args=()
    if [ "$arch" != "$host" ] && ! { [ "$arch" = arm64 ] && [ "$host" = aarch64 ]; }; then
        timeout_args=(--min-timeout "${SAM_LOCAL_EMULATED_MIN_TIMEOUT:-600}")
    fi
    bash scripts/samlocal/image.sh "$arch"
    "$PY" scripts/samlocal/build.py "$arch" "${timeout_args[@]}"
    VOICEBUS_SAM_LOCAL_ARCH="$arch" "$PY" -m pytest tests/samlocal -p no:cacheprovider -q --durations=5
    echo "sam-local: $arch passed in $((SECONDS - started)) s"
done
