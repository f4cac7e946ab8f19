"""Record the RunPod cassettes: ``python -m tests.providers.runpod.record``.

Without options every scenario of ``scenarios.py`` runs against ``DocumentedRunPod`` (our
schema, executed over values written from FACTS.md; see documented.py and
cassettes/runpod/PROVENANCE.md) and is written to ``cassettes/runpod/<scenario>.yaml``.

``--live`` re-records against https://api.runpod.io/graphql with the key in
``RUNPOD_API_KEY``: only the scenarios marked ``live="yes"``, plus the ``live="billed"`` ones
(they create pods, billed until the script terminates them) with ``--allow-launch`` too.
Authorization headers and api_key query parameters are filtered out of every cassette.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from gpu_providers.runpod import RunPodProvider

from ..cassettes import CASSETTES, provider_vcr
from ..paperspace.harness import FakeTime, run_sync
from .documented import GRAPHQL_URL
from .scenarios import RECORDING_KEY, SCENARIOS, Scenario

DIRECTORY = CASSETTES / "runpod"
KEY_ENV = "RUNPOD_API_KEY"


def record(scenario: Scenario, *, live_key: str | None) -> int:
    """Record one scenario; returns the number of interactions written."""
    path = DIRECTORY / f"{scenario.name}.yaml"
    path.unlink(missing_ok=True)
    options: dict[str, Any] = dict(scenario.options)
    if live_key is None:
        options.update(FakeTime().sync_options())
        options["transport"] = scenario.responder().transport()
        api_key = scenario.api_key
    else:
        # The real key, except for scenarios about a revoked key.
        api_key = live_key if scenario.api_key == RECORDING_KEY else scenario.api_key
    with (
        provider_vcr("runpod", "all").use_cassette(path.name) as cassette,
        RunPodProvider(api_key=api_key, base_url=GRAPHQL_URL, **options) as client,
    ):
        run_sync(client, scenario.script)
    return len(cassette)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help="default: all (that the mode allows)")
    parser.add_argument(
        "--live", action="store_true", help=f"record against the real API ({KEY_ENV})"
    )
    parser.add_argument(
        "--allow-launch",
        action="store_true",
        help="with --live: also run scenarios that create (billed) pods",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    if args.allow_launch and not args.live:
        parser.error("--allow-launch only makes sense with --live")
    live_key = None
    if args.live:
        live_key = os.environ.get(KEY_ENV, "").strip()
        if not live_key:
            parser.error(f"--live needs the API key in {KEY_ENV}")
    allowed = {"yes", "billed"} if args.allow_launch else {"yes"}
    DIRECTORY.mkdir(parents=True, exist_ok=True)
    for name in args.scenarios or list(SCENARIOS):
        scenario = SCENARIOS[name]
        if args.live and scenario.live not in allowed:
            reason = (
                "creates pods: add --allow-launch"
                if scenario.live == "billed"
                else "cannot be provoked live; stays documented"
            )
            print(f"skip {name}: {reason}", file=sys.stderr)
            continue
        count = record(scenario, live_key=live_key)
        origin = "live" if args.live else "documented"
        print(f"{name}: {count} interactions ({origin}) -> cassettes/runpod/{name}.yaml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
