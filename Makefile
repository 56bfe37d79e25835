# Thin wrappers: every target first runs scripts/bootstrap.sh, which sets up
# .venv and .tools on a fresh machine (python3.13 from PATH or pyenv).
SHELL := /bin/bash
export SAM_CLI_TELEMETRY := 0
# sam build needs a python3.13 with pip first on PATH (the venv, made by uv, has no pip).
export PATH := $(CURDIR)/.tools/bin:$(PATH)
PY := .venv/bin/python
SAM := .tools/sam/bin/sam
# sam and cfn-lint validate offline; a region only names the partition's rules.
REGION := us-east-1

.PHONY: setup demo local test lint typecheck validate build unit integration bench resign clean sam-local

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(PY) -m voicebus_cli demo

# The local stack kept running (Ctrl-C stops it): webhook URL, test key and a curl example are printed.
local: setup
	$(PY) -m voicebus_cli local

test: setup lint typecheck validate build
	$(PY) -m voicebus_cli test-flows
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: setup
	$(PY) -m mypy layers/voicebus functions tools tests bench

validate: setup
	$(SAM) validate --lint --region $(REGION)
	.tools/sam/bin/cfn-lint template.yaml schemas/registry.yaml examples/call-summary/template.yaml
	.tools/checkov/bin/checkov --config-file .checkov.yaml --file template.yaml --framework cloudformation --compact --quiet --skip-download

# /var/task and /opt are read-only on Lambda: the artifacts ship checked-hash bytecode
# (scripts/compile_build.py), or every cold start compiles every module it imports.
build: setup
	$(PY) -m voicebus_cli check-flows
	$(PY) -m voicebus_cli command-schemas --check
	$(PY) -m voicebus_cli.event_schemas --check
	$(SAM) build
	$(PY) scripts/compile_build.py .aws-sam/build

# Every function in the Lambda runtime's container through `sam local invoke`, `start-lambda` and
# `start-api` (signed curl) against moto, on x86_64 and, under qemu, arm64 (README "sam local").
# Needs root on Debian/Ubuntu when no Docker engine runs (it installs and starts one).
sam-local: setup
	bash scripts/samlocal/run.sh

unit: setup
	$(PY) -m pytest tests/unit

bench: setup
	$(PY) bench/ingress_cost.py
	$(PY) bench/cold_starts.py
	$(PY) bench/archive.py
	$(PY) bench/cost.py
	$(PY) bench/reaction.py
	$(PY) bench/load.py

# Freshly signed copies of events/webhooks/*.json in .voicebus/events/webhooks/ (valid for
# 300 s); the committed samples are never rewritten.
resign: setup
	$(PY) -m voicebus_cli resign-events

clean:
	rm -rf .venv .tools .aws-sam .pytest_cache .mypy_cache .ruff_cache
