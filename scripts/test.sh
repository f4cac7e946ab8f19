#!/usr/bin/env bash
# The test command: lint, types, the generated clients, the plain install (no extras), unit
# tests, and the integration suite against a real local SkyPilot 0.14.1 API server (started by
# the tests themselves).
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
echo "==> the plain install users get (pip install ., no extras) in a throwaway venv"
plain="$(mktemp -d)"
trap 'rm -rf "$plain"' EXIT
# Built from a copy: an in-tree build reuses build/, whose stale files would land in the wheel.
rsync -a --exclude .git --exclude .hypothesis --filter=':- .gitignore' ./ "$plain/src/"
.venv/bin/python -m venv "$plain/venv"
"$plain/venv/bin/python" -m pip install -q --disable-pip-version-check "$plain/src"
"$plain/venv/bin/python" scripts/check_plain_install.py
rm -rf "$plain"
echo "==> pytest (unit, cassettes, docs, integration against a real server)"
.venv/bin/python -m pytest "$@"
