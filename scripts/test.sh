#!/usr/bin/env bash
# The test command: lint, types, unit tests, and the integration suite against a real
# local SkyPilot 0.14.1 API server (started by the tests themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy --strict"
.venv/bin/mypy
echo "==> generated clients match specs/ (python -m codegen --check)"
.venv/bin/python -m codegen --check
echo "==> pytest (unit, cassettes, docs, integration against a real server)"
.venv/bin/python -m pytest "$@"
