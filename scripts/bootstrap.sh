#!/usr/bin/env bash
# Sets up everything `make` needs on a fresh machine, idempotently:
#   .venv           the project (runtime + dev dependencies, from uv.lock)
#   .tools/uv       uv itself
#   .tools/sam      aws-sam-cli and cfn-lint, kept apart: their pins clash with moto's
#   .tools/checkov  checkov, likewise (it pins old pydantic and aws-sam-cli)
# Lambda runs python3.13, so everything here does too.
set -euo pipefail
cd "$(dirname "$0")/.."

SAM_CLI_VERSION="1.170.0"
CHECKOV_VERSION="3.3.30"

find_python313() {
    # The real interpreter, never our own .tools/bin link to it (which may already be on PATH).
    local found
    if found="$(command -v python3.13 2>/dev/null)" && "$found" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
        found="$("$found" -c 'import os, sys; print(os.path.realpath(sys.executable))')"
        case "$found" in
            "$PWD"/*) ;;  # a venv of ours: keep looking
            *) echo "$found"; return ;;
        esac
    fi
    if command -v pyenv >/dev/null 2>&1; then
        local root candidate
        root="$(pyenv root)"
        for candidate in "$root"/versions/3.13*/bin/python3.13; do
            if [ -x "$candidate" ]; then
                echo "$candidate"
                return
            fi
        done
    fi
    return 1
}

if ! PY313="$(find_python313)"; then
    cat >&2 <<'MSG'
voicebus needs Python 3.13 (the Lambda runtime it targets), found neither on PATH
nor in pyenv. Install it, for example:
    pyenv install 3.13        (then run make again)
or your OS package manager's python3.13 with its venv module.
MSG
    exit 1
fi

if [ ! -x .tools/uv/bin/uv ]; then
    echo "bootstrap: installing uv with $PY313"
    "$PY313" -m venv .tools/uv
    .tools/uv/bin/pip install --quiet --disable-pip-version-check uv
fi
UV=.tools/uv/bin/uv

# Earlier bootstraps put the packages on the path with a .pth file and wrote a shell
# wrapper as .venv/bin/voicebus; the editable install below replaces both.
if [ -d .venv/lib ]; then
    find .venv/lib -path '*/site-packages/voicebus-dev.pth' -delete
fi
if [ -f .venv/bin/voicebus ] && grep -q 'exec "$(dirname "$0")/python" -m voicebus_cli' .venv/bin/voicebus; then
    rm -f .venv/bin/voicebus
fi

# The project itself is installed editable (hatchling, see pyproject.toml): the layer
# package and the developer CLI import from the working tree, and `voicebus` is the
# console script from [project.scripts].
echo "bootstrap: syncing .venv from uv.lock"
UV_PROJECT_ENVIRONMENT=.venv "$UV" sync --quiet --python "$PY313" --locked

if [ ! -x .tools/sam/bin/sam ] || ! .tools/sam/bin/sam --version | grep -q "$SAM_CLI_VERSION"; then
    echo "bootstrap: installing aws-sam-cli $SAM_CLI_VERSION into .tools/sam"
    "$UV" venv --quiet --python "$PY313" .tools/sam
    "$UV" pip install --quiet --python .tools/sam/bin/python "aws-sam-cli==$SAM_CLI_VERSION"
fi

if [ ! -x .tools/checkov/bin/checkov ] || ! .tools/checkov/bin/checkov --version | grep -q "$CHECKOV_VERSION"; then
    echo "bootstrap: installing checkov $CHECKOV_VERSION into .tools/checkov"
    "$UV" venv --quiet --python "$PY313" .tools/checkov
    "$UV" pip install --quiet --python .tools/checkov/bin/python "checkov==$CHECKOV_VERSION"
fi

# `sam build` looks for python3.13 (with pip) on PATH; the Makefile puts .tools/bin first.
mkdir -p .tools/bin
ln -sf "$PY313" .tools/bin/python3.13
