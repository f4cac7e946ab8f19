#!/usr/bin/env bash
# Set up a fresh machine for the demo and the tests (idempotent, cheap on a second run):
#   - Debian packages the real SkyPilot server needs offline (rsync);
#   - PostgreSQL server binaries for the ledger tests;
#   - .venv with this package and its dev tools;
#   - the SkyPilot 0.14.1 server in its own venv (never a dependency of our package).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"

if ! command -v rsync >/dev/null 2>&1; then
  echo "==> installing rsync (the SkyPilot server's dry-run launch needs it)"
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rsync >/dev/null
fi

# -- PostgreSQL server binaries for the ledger tests (they start a throwaway server of their own:
# initdb + pg_ctl in a temp dir; no system cluster is created or started).
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null 2>&1; then
  echo "==> installing PostgreSQL (the ledger tests run a real throwaway server)"
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/skypilot-sdk.conf >/dev/null
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
echo "==> installing skypilot-sdk with its dev tools into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,codegen]'

echo "==> ensuring the SkyPilot 0.14.1 server venv (first run downloads it, ~1 min)"
.venv/bin/python -m scripts.local_server install
