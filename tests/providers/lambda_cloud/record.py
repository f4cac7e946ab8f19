"""Record the Lambda Cloud cassettes (cassettes/lambda/<scenario>.yaml).

Usage (from the repository root)::

    python -m tests.providers.lambda_cloud.record                 # documented responses
    python -m tests.providers.lambda_cloud.record instance_types  # only some scenarios
    LAMBDA_API_KEY=... python -m tests.providers.lambda_cloud.record --live
    LAMBDA_API_KEY=... python -m tests.providers.lambda_cloud.record --live --allow-billed-launch

By default every scenario of ``scenarios.py`` runs through ``create_provider("lambda", ...)``
against ``documented.DocumentedLambda`` (answers written from the vendor's OpenAPI 1.8.3
schemas, through ``httpx.MockTransport``), under vcrpy with ``record_mode="all"``; no network.

``--live`` runs the scenarios marked live against the real API at https://cloud.lambda.ai and
**needs a Lambda Cloud API key** in ``LAMBDA_API_KEY``. Scenarios the real API cannot be made
to answer on demand (429, no capacity, quota, instances in every state) keep their documented
cassettes. The ``launch`` scenario **creates a real, billed instance** (the cheapest 1x A10 with
capacity) and then terminates it; it runs only with ``--allow-billed-launch``, and the account
must have an SSH key named ``skypilot-sdk-cassettes``. Live cassettes contain your account's
data (instance names, IPs, SSH key names and public keys): review them before committing.

Secrets are filtered before anything is written (tests/providers/cassettes.py): the
Authorization header, key-like query parameters and access tokens in bodies. The recorder
refuses to keep a cassette in which ``find_secrets`` still finds something, and it rewrites
cassettes/lambda/PROVENANCE.md to say how each cassette was made.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from gpu_providers import create_provider
from tests.providers.cassettes import CASSETTES, find_secrets, load_interactions, provider_vcr

from . import documented as D
from .scenarios import LAUNCH_NAME, RECORDING_KEY, SCENARIOS, Outcome, Scenario, run_sync

API = "lambda"
DIRECTORY = CASSETTES / API
COMMAND = "python -m tests.providers.lambda_cloud.record"


def _no_sleep(seconds: float) -> None:
    return None


def _client(scenario: Scenario, *, live: bool, api_key: str | None) -> Any:
    if live:
        key = D.REVOKED_KEY if scenario.api_key == D.REVOKED_KEY else api_key
        return create_provider("lambda", api_key=key)
    transport = httpx.MockTransport(scenario.responder())
    return create_provider("lambda", api_key=scenario.api_key, transport=transport)


def record_one(
    scenario: Scenario,
    *,
    live: bool = False,
    api_key: str | None = None,
    directory: Path = DIRECTORY,
) -> list[Outcome]:
    """Record one scenario into <directory>/<name>.yaml; returns its outcomes."""
    directory.mkdir(parents=True, exist_ok=True)
    path = (directory / f"{scenario.name}.yaml").resolve()
    backup = path.read_bytes() if path.exists() else None
    path.unlink(missing_ok=True)

    def restore() -> None:
        path.unlink(missing_ok=True)
        if backup is not None:
            path.write_bytes(backup)

    client = _client(scenario, live=live, api_key=api_key)
    try:
        with provider_vcr(API, "all").use_cassette(str(path)):
            outcomes = run_sync(client, scenario)
    except BaseException:
        restore()  # keep the previous cassette rather than half a recording
        raise
    finally:
        client.close()
        if live and scenario.live == "billed":
            _terminate_leftovers(api_key)
    problems = find_secrets(path, known=[k for k in (api_key, RECORDING_KEY) if k])
    if problems:
        restore()
        raise SystemExit(f"{path.name}: not written, secrets left: {problems}")
    return outcomes


def _terminate_leftovers(api_key: str | None) -> None:
    """Terminate every instance the launch scenario may have left running (it bills)."""
    with create_provider("lambda", api_key=api_key) as client:
        for item in client.list_instances(name_prefix=LAUNCH_NAME):
            if item.state.value not in ("terminating", "terminated"):
                print(f"terminating leftover {item.instance_id} ({item.name})", file=sys.stderr)
                client.terminate_instance(item.instance_id)


def is_documented(path: Path) -> bool:
    """Whether a cassette was built from documented responses (every answer says so)."""
    interactions = load_interactions(path)
    return bool(interactions) and all(
        D.DOCUMENTED_HEADER in (i["response"].get("headers") or {}) for i in interactions
    )


def provenance_text(directory: Path = DIRECTORY) -> str:
    """The text of PROVENANCE.md for the cassettes in ``directory`` as they are now."""
    rows = []
    origins = []
    for name, scenario in SCENARIOS.items():
        path = directory / f"{name}.yaml"
        if not path.exists():
            origin = "missing"
        elif is_documented(path):
            origin = "documented (spec 1.8.3)"
        else:
            origin = "live API"
        origins.append(origin)
        live = {"yes": "yes", "billed": "billed, opt-in", "no": "no"}[scenario.live]
        rows.append(f"| `{name}.yaml` | {origin} | {live} | {scenario.description} |")
    table = "\n".join(rows)
    if all(o.startswith("documented") for o in origins):
        lead = "These cassettes were"
    else:
        lead = "The cassettes marked *documented* in the table below were"
    return f"""# Lambda Cloud cassettes: provenance

{lead} **not recorded from a live Lambda Cloud account**: we cannot reach
the vendor's API from here. They were built from the vendor's documented responses: the answers of
`tests/providers/lambda_cloud/documented.py`, written by hand from the schemas of Lambda's
official OpenAPI document, "Lambda Cloud API" version **1.8.3** (OpenAPI 3.1.0; a copy is in
`../shared/reference/lambda/openapi-1.8.3.json`, see FACTS.md there): the `{{"data": ...}}` and
`{{"error": {{code, message, suggestion}}}}` envelopes, field names and types as the component
schemas (`InstanceTypes`, `Instance`, `SSHKey`, `ApiError*`) define them, error codes as the
schemas' `const` values. The values (prices, specs, ids, names, IPs, region descriptions) are
illustrative, not quotes. The client really ran each scenario (`create_provider("lambda", ...)`
over `httpx.MockTransport`) and vcrpy recorded the exchanges; every documented answer carries
the header `{D.DOCUMENTED_HEADER}: {D.DOCUMENTED_VALUE}`.

Deliberate departures from the spec (also the allow-list of tests/providers/lambda_cloud/
test_contract.py):

- region `{D.UNKNOWN_REGION}` is not in the closed `PublicRegionCode` enum of 1.8.3: it stands for
  a region Lambda adds later, which the client must tolerate;
- `rate_limited.yaml` has an HTTP 429 with `Retry-After: 2` and a plain-text body: the spec
  documents no 429 (Lambda's docs state the limits; SkyPilot treats 429 as throttling), and we
  do not invent an error code for it.

Secrets: the Authorization header and key-like query parameters are dropped and access tokens
in bodies (`jupyter_token`, `private_key`) are replaced by `REDACTED` before writing
(tests/providers/cassettes.py); `test_cassettes.py` scans every cassette.

## Re-recording

    {COMMAND}                # documented responses again (offline)
    LAMBDA_API_KEY=... {COMMAND} --live
    LAMBDA_API_KEY=... {COMMAND} --live --allow-billed-launch

`--live` needs a Lambda Cloud API key and re-records the scenarios marked live below against
https://cloud.lambda.ai; the others keep their documented cassettes. `--allow-billed-launch`
also runs `launch`, which **creates a real, billed instance** (cheapest 1x A10 with capacity)
and terminates it; the account needs an SSH key named `{D.SSH_KEY_NAME}`. Live cassettes hold
your account's data: review them before committing. This file is rewritten by the recorder.

| cassette | built from | live re-record | scenario |
|---|---|---|---|
{table}
"""


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    """Record all (or the named) scenarios."""
    parser = argparse.ArgumentParser(
        prog=COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenarios", nargs="*", help="default: all")
    parser.add_argument("--live", action="store_true", help="use the real API (LAMBDA_API_KEY)")
    parser.add_argument(
        "--out",
        type=Path,
        default=DIRECTORY,
        help="where to write the cassettes (default: cassettes/lambda; the replay tests read "
        "only that folder, so --out lets you review a live recording first)",
    )
    parser.add_argument(
        "--allow-billed-launch",
        action="store_true",
        help="with --live: also run the launch scenario (creates a real, billed instance)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {sorted(SCENARIOS)}")
    if args.allow_billed_launch and not args.live:
        parser.error("--allow-billed-launch only makes sense with --live")
    api_key = os.environ.get("LAMBDA_API_KEY", "").strip() or None
    if args.live and api_key is None:
        parser.error("--live needs a Lambda Cloud API key in LAMBDA_API_KEY")
    for name in args.scenarios or list(SCENARIOS):
        scenario = SCENARIOS[name]
        if args.live and scenario.live == "no":
            out(f"{name}: kept (the live API cannot be made to answer this on demand)")
            continue
        if args.live and scenario.live == "billed" and not args.allow_billed_launch:
            out(f"{name}: kept (creates a billed instance: pass --allow-billed-launch)")
            continue
        outcomes = record_one(scenario, live=args.live, api_key=api_key, directory=args.out)
        out(f"{name}: {len(outcomes)} steps -> {args.out / f'{name}.yaml'}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "PROVENANCE.md").write_text(provenance_text(args.out), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
