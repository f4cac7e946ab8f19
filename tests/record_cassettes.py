"""Record the SkyPilot cassettes from a real local server: ``python -m tests.record_cassettes``.

Starts SkyPilot 0.14.1 offline (scripts/local_server.py), runs every scenario of
tests/scenarios.py with the sync client and writes cassettes/skypilot/<scenario>.yaml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scripts.local_server import LocalSkyPilotServer
from skypilot_client import SkyPilotClient
from tests.scenarios import CASSETTES, SCENARIOS, make_vcr, run_sync

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    """Record all (or the named) scenarios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenarios", nargs="*", help="default: all")
    args = parser.parse_args()
    names = args.scenarios or list(SCENARIOS)
    CASSETTES.mkdir(parents=True, exist_ok=True)
    recorder = make_vcr("all")
    with LocalSkyPilotServer() as server:
        for name in names:
            path = CASSETTES / f"{name}.yaml"
            path.unlink(missing_ok=True)
            with recorder.use_cassette(path.name), SkyPilotClient(server.base_url) as client:
                outcomes = run_sync(client, name)
            print(f"{name}: {len(outcomes)} steps -> {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
