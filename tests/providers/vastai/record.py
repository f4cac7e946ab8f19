"""Record the Vast.ai cassettes (cassettes/vastai/<scenario>.yaml).

Usage (from the repository root)::

    python -m tests.providers.vastai.record                 # documented responses
    python -m tests.providers.vastai.record offers          # only some scenarios
    VAST_API_KEY=... python -m tests.providers.vastai.record --live
    VAST_API_KEY=... python -m tests.providers.vastai.record --live --allow-billed-launch

By default every scenario of ``scenarios.py`` runs through ``create_provider("vastai", ...)``
against ``documented.DocumentedVast`` (answers written from the vendor's OpenAPI document,
through ``httpx.MockTransport``), under vcrpy with ``record_mode="all"``; no network.

``--live`` runs the scenarios marked live against https://console.vast.ai and **needs a Vast.ai
API key** in ``VAST_API_KEY`` (the anonymous scenario runs without it). Scenarios the real API
cannot be made to answer on demand keep their documented cassettes. ``launch`` and
``launch_spot`` **rent real, billed instances** (the cheapest RTX 4090 offers) and destroy them;
they run only with ``--allow-billed-launch``, and every instance labelled
``skypilot-sdk-cassette`` is destroyed afterwards. Live cassettes contain your account's data
(instance ids, labels, hosts): review them before committing.

Secrets are filtered before anything is written (tests/providers/cassettes.py); the recorder
refuses to keep a cassette in which ``find_secrets`` still finds something, and it rewrites
cassettes/vastai/PROVENANCE.md to say how each cassette was made.
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

API = "vastai"
DIRECTORY = CASSETTES / API
COMMAND = "python -m tests.providers.vastai.record"
#: Where no vendor key file exists (anonymous clients must not find the developer's key).
NO_HOME = Path("/nonexistent-home-for-anonymous-clients")


def client_options(scenario: Scenario, api_key: str | None) -> dict[str, Any]:
    """Constructor options: the key, or an anonymous client (no environment, no key file)."""
    if scenario.api_key is None:
        return {"anonymous": True, "env": {}, "home": NO_HOME}
    return {"api_key": api_key}


def _client(scenario: Scenario, *, live: bool, api_key: str | None) -> Any:
    if live:
        key = D.REVOKED_KEY if scenario.api_key == D.REVOKED_KEY else api_key
        return create_provider(API, **client_options(scenario, key))
    transport = httpx.MockTransport(scenario.responder())
    return create_provider(API, transport=transport, **client_options(scenario, scenario.api_key))


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
            _destroy_leftovers(api_key)
    problems = find_secrets(path, known=[k for k in (api_key, RECORDING_KEY) if k])
    if problems:
        restore()
        raise SystemExit(f"{path.name}: not written, secrets left: {problems}")
    return outcomes


def _destroy_leftovers(api_key: str | None) -> None:
    """Destroy every instance a launch scenario may have left (it bills)."""
    with create_provider(API, api_key=api_key) as client:
        for item in client.list_instances(name_prefix=LAUNCH_NAME):
            print(f"destroying leftover {item.instance_id} ({item.name})", file=sys.stderr)
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
            origin = "documented (spec 1.0.0)"
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
    return f"""# Vast.ai cassettes: provenance

{lead} **not recorded from a live Vast.ai account**: we cannot reach the
vendor's API from here. They were built from the vendor's documented responses: the answers of
`tests/providers/vastai/documented.py`, written by hand from Vast.ai's official OpenAPI 3.1
document "Vast.ai API" 1.0.0 (GitHub vast-ai/docs `api-reference/openapi.yaml`, last changed
2026-07-22; a copy is in `../shared/reference/vastai/openapi.yaml`, see FACTS.md there): offers
with the fields of the searchOffers example, `{{"success": true, "new_contract": N}}`,
`{{"instances": Instance}}`, the v1 page with `next_token`, and error bodies
`{{"success": false, "error": code, "msg": text}}` with the spec's codes (`auth_error`,
`no_such_ask`, `not_found`, `invalid_price`, `insufficient_balance`). The offer search
evaluates the query language, so what the client asks for decides what it gets. Values (ids,
prices, hosts) are illustrative, not quotes. The client really ran each scenario
(`create_provider("vastai", ...)` over `httpx.MockTransport`) and vcrpy recorded the
exchanges; every documented answer carries the header
`{D.DOCUMENTED_HEADER}: {D.DOCUMENTED_VALUE}`.

Answers we had to construct because the vendor documents no body for them (also the
allow-list of tests/providers/vastai/test_contract.py):

- `{{"instances": null}}` for an id the account does not have (dstack's client reads it so);
- `launch_created_stopped.yaml`: a create refused with `invalid_price` that still names a
  `new_contract` (Vast.ai makes the instance stopped; dstack handles this; undocumented);
- `launch_no_credit.yaml`: HTTP 402 with the body of the spec's `insufficient_balance` error
  (documented for transferCredit, not for createInstance);
- `rate_limited.yaml`: 429 as plain text `API requests too frequent` (offer search documents
  no 429) and as `{{"detail": ...}}` (documented), both without `Retry-After`, as FACTS.md says.

Secrets: the Authorization header and key-like query parameters are dropped and access
tokens in bodies (`jupyter_token`) are replaced by `REDACTED` before writing
(tests/providers/cassettes.py); `test_cassettes.py` scans every cassette.

## Re-recording

    {COMMAND}                # documented responses again (offline)
    VAST_API_KEY=... {COMMAND} --live
    VAST_API_KEY=... {COMMAND} --live --allow-billed-launch

`--live` needs a Vast.ai API key and re-records the scenarios marked live below against
https://console.vast.ai; the others keep their documented cassettes. `--allow-billed-launch`
also runs the launch scenarios, which **rent real, billed instances** (the cheapest RTX 4090
offers) and destroy them. Live cassettes hold your account's data: review them before
committing. This file is rewritten by the recorder.

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
    parser.add_argument("--live", action="store_true", help="use the real API (VAST_API_KEY)")
    parser.add_argument(
        "--out",
        type=Path,
        default=DIRECTORY,
        help="where to write the cassettes (default: cassettes/vastai; the replay tests read "
        "only that folder, so --out lets you review a live recording first)",
    )
    parser.add_argument(
        "--allow-billed-launch",
        action="store_true",
        help="with --live: also run the launch scenarios (rent real, billed instances)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {sorted(SCENARIOS)}")
    if args.allow_billed_launch and not args.live:
        parser.error("--allow-billed-launch only makes sense with --live")
    api_key = os.environ.get("VAST_API_KEY", "").strip() or None
    if args.live and api_key is None:
        parser.error("--live needs a Vast.ai API key in VAST_API_KEY")
    for name in args.scenarios or list(SCENARIOS):
        scenario = SCENARIOS[name]
        if args.live and scenario.live == "no":
            out(f"{name}: kept (the live API cannot be made to answer this on demand)")
            continue
        if args.live and scenario.live == "billed" and not args.allow_billed_launch:
            out(f"{name}: kept (rents a billed instance: pass --allow-billed-launch)")
            continue
        outcomes = record_one(scenario, live=args.live, api_key=api_key, directory=args.out)
        out(f"{name}: {len(outcomes)} steps -> {args.out / f'{name}.yaml'}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "PROVENANCE.md").write_text(provenance_text(args.out), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
