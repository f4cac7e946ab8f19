"""Check what a user gets from ``pip install skypilot-sdk`` (no extras).

scripts/test.sh installs the package into a throwaway virtualenv and runs this file with that
venv's Python, from outside the checkout. It checks that both packages import from the
installed copy, that the GraphQL stack (the ``runpod`` extra) is absent, that asking for RunPod
names the extra to install, and the metadata a user sees (version, license).

Usage: <venv>/bin/python scripts/check_plain_install.py
"""

from __future__ import annotations

import importlib.util
import sys
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "skypilot-sdk"
INSTALL_RUNPOD = "pip install 'skypilot-sdk[runpod]'"


def check() -> list[str]:
    """The problems found (empty when the plain install is right)."""
    problems: list[str] = []

    import gpu_providers
    import skypilot_client
    from gpu_providers import create_async_provider, create_provider
    from gpu_providers.errors import MissingDependencyError
    from skypilot_client import SkyPilotClient

    if not callable(SkyPilotClient):
        problems.append("skypilot_client.SkyPilotClient is not a class")
    for package in (skypilot_client, gpu_providers):
        location = Path(package.__file__ or "").resolve()
        if "site-packages" not in location.parts:  # the checkout would prove nothing
            problems.append(f"{package.__name__} imported from {location}, not the install")
        if not (location.parent / "py.typed").is_file():
            problems.append(f"{package.__name__} is installed without py.typed")

    for module in ("gql", "graphql"):
        if importlib.util.find_spec(module) is not None:
            problems.append(f"{module} is installed without the runpod extra")

    for factory in (create_provider, create_async_provider):
        try:
            factory("runpod", api_key="x")
        except MissingDependencyError as exc:
            if INSTALL_RUNPOD not in str(exc):
                problems.append(f"{factory.__name__}: the error does not say {INSTALL_RUNPOD}")
        else:
            problems.append(f"{factory.__name__}('runpod') worked without gql")

    problems += _check_ledger()
    problems += _check_metrics()

    dist = metadata.distribution(DISTRIBUTION)
    if dist.version != skypilot_client.__version__:
        problems.append(f"version {dist.version} != skypilot_client {skypilot_client.__version__}")
    if dist.metadata["License-Expression"] != "Apache-2.0":
        problems.append(f"License-Expression is {dist.metadata['License-Expression']!r}")
    if not any(file.name == "LICENSE" for file in dist.files or ()):
        problems.append("the LICENSE file is not installed")
    problems += _check_command_line()
    return problems


def _check_command_line() -> list[str]:
    """issue 9: the ``gpu-providers`` console script is installed and starts without extras;
    providers whose extra is missing are skipped, not failed."""
    import json
    import subprocess

    script = Path(sys.executable).parent / "gpu-providers"
    if not script.is_file():
        return ["the gpu-providers console script is not installed"]
    problems = []
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    if done.returncode != 0 or "offers" not in done.stdout:
        problems.append(f"gpu-providers --help exited {done.returncode}")
    env = {"HOME": str(Path(sys.executable).parent), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [str(script), "offers", "--json", "--timeout", "5"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    try:
        skipped = {s["provider"] for s in json.loads(done.stdout)["skipped"]}
    except (ValueError, KeyError, TypeError):
        skipped = set()
    if not {"runpod"} <= skipped:
        problems.append(f"gpu-providers offers without extras: {done.stdout or done.stderr}")
    return problems


def _check_ledger() -> list[str]:
    """The SQLite ledger works with no extra; the PostgreSQL one names its extra."""
    import tempfile

    from skypilot_client.ledger import LedgerError, open_ledger

    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, open_ledger(Path(tmp) / "l.sqlite3") as ledger:
        ledger.record_request("plain-install", "launch")
        if [r.request_id for r in ledger.list_pending()] != ["plain-install"]:
            problems.append("the SQLite ledger did not keep a request")
    if importlib.util.find_spec("psycopg") is not None:
        problems.append("psycopg is installed without the postgres extra")
    try:
        open_ledger("postgresql://127.0.0.1:1/db")
    except LedgerError as exc:
        if "skypilot-sdk[postgres]" not in str(exc):
            problems.append("the PostgreSQL ledger error does not name the postgres extra")
    else:
        problems.append("the PostgreSQL ledger opened without psycopg")
    return problems


def _check_metrics() -> list[str]:
    """Without the prometheus extra, nothing imports prometheus_client and the metrics
    hooks name the extra (issue 10)."""
    from gpu_providers.metrics import ProviderMetrics
    from skypilot_client.metrics import SkyPilotMetrics

    problems: list[str] = []
    if importlib.util.find_spec("prometheus_client") is not None:
        return ["prometheus_client is installed without the prometheus extra"]
    for hook in (SkyPilotMetrics, ProviderMetrics):
        try:
            hook()
        except (ImportError, ValueError) as exc:  # MissingDependencyError, ConfigurationError
            if "skypilot-sdk[prometheus]" not in str(exc):
                problems.append(f"{hook.__name__}: the error does not name the prometheus extra")
        else:
            problems.append(f"{hook.__name__} worked without prometheus_client")
    return problems


def main() -> int:
    """Print each problem; exit 1 if there is any."""
    problems = check()
    for problem in problems:
        print(f"plain install: {problem}", file=sys.stderr)
    if not problems:
        print("plain install: ok (no GraphQL stack; runpod names its extra)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
