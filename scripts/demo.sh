#!/usr/bin/env bash
# The main job: start a real local SkyPilot API server (offline) and drive it with the client.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh >/dev/null
exec .venv/bin/python -m scripts.demo "$@"
