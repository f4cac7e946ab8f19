"""Provider-neutral test harness shared by the Paperspace and RunPod tests.

* ``Call`` scripts: a scenario is a generator that yields ``Call``s (a client method and its
  arguments) and receives each call's result (or ``Failed``). The same script drives the
  sync and the async client, so a scenario is also a sync/async parity check; a script may
  use an earlier result (the id of the machine it just launched, every listed instance).
* ``FakeTime``: an injected clock and sleep (sync and async) that never really sleeps and
  records every wait (attached to a client with ``attach_sync``/``attach_async``).
* cassette helpers over the shared ``tests/providers/cassettes.py`` (the vcrpy configuration
  of every provider's recorder and replay tests, and the secret scanner).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gpu_providers.errors import ProviderError
from tests.providers.cassettes import CASSETTES, ROOT, load_interactions
from tests.providers.timekeeping import attach

__all__ = ["CASSETTES", "ROOT"]

#: The vendors' documents, outside the repository (see DESIGN.md "References").
REFERENCE = ROOT.parent / "shared" / "reference"

Outcome = dict[str, Any]
C = TypeVar("C")


@dataclass(frozen=True)
class Call:
    """One call of a client method."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    """What a script receives when its call raised a ``ProviderError``."""

    error: ProviderError


Script = Callable[[], Generator[Call, Any, None]]


class FakeTime:
    """A clock that only moves when the client sleeps; every sleep is recorded."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def attach_sync(self, client: C) -> C:
        """Run a sync client on this time."""
        return attach(client, self.clock, self.sleep)

    def attach_async(self, client: C) -> C:
        """Run an async client on this time."""
        return attach(client, self.clock, self.async_sleep)


def jsonable(value: Any) -> Any:
    """Results as plain JSON data (pydantic models dumped with enums as values)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def error_outcome(call: Call, exc: ProviderError) -> Outcome:
    """What the tests compare about an error."""
    return {
        "call": call.method,
        "args": jsonable(call.args),
        "error": type(exc).__name__,
        "status_code": exc.status_code,
        "code": exc.code,
        "maybe_submitted": exc.maybe_submitted,
        "retry_after": exc.retry_after,
    }


def ok_outcome(call: Call, result: Any) -> Outcome:
    return {"call": call.method, "args": jsonable(call.args), "result": jsonable(result)}


def run_sync(client: Any, script: Script) -> list[Outcome]:
    """Run ``script`` against a blocking client; ``ProviderError``s become outcomes."""
    outcomes: list[Outcome] = []
    steps = script()
    reply: Any = None
    while True:
        try:
            call = steps.send(reply)
        except StopIteration:
            return outcomes
        try:
            result = getattr(client, call.method)(*call.args, **call.kwargs)
        except ProviderError as exc:
            outcomes.append(error_outcome(call, exc))
            reply = Failed(exc)
        else:
            outcomes.append(ok_outcome(call, result))
            reply = result


async def run_async(client: Any, script: Script) -> list[Outcome]:
    """Run ``script`` against an async client (the same calls, awaited)."""
    outcomes: list[Outcome] = []
    steps = script()
    reply: Any = None
    while True:
        try:
            call = steps.send(reply)
        except StopIteration:
            return outcomes
        try:
            result = await getattr(client, call.method)(*call.args, **call.kwargs)
        except ProviderError as exc:
            outcomes.append(error_outcome(call, exc))
            reply = Failed(exc)
        else:
            outcomes.append(ok_outcome(call, result))
            reply = result


def drive(
    kind: str,
    classes: tuple[type[Any], type[Any]],
    method: str,
    *args: Any,
    time: FakeTime | None = None,
    **options: Any,
) -> Any:
    """Call ``method`` on a fresh sync (``kind="sync"``) or async client and return its result.

    ``classes`` is (sync class, async class); ``options`` go to the constructor, with the
    injected clock and sleep of ``time``.
    """
    time = time or FakeTime()
    sync_class, async_class = classes
    if kind == "sync":
        with time.attach_sync(sync_class(**options)) as client:
            return getattr(client, method)(*args)

    async def run() -> Any:
        async with time.attach_async(async_class(**options)) as client:
            return await getattr(client, method)(*args)

    return asyncio.run(run())


def results(outcomes: list[Outcome], method: str) -> list[Any]:
    """The results (or error outcomes) of every call of ``method``, in order."""
    return [o.get("result", o) for o in outcomes if o["call"] == method]


# -- cassettes (vcr configuration and secret scanning: tests/providers/cassettes.py) -----------


def iter_exchanges(path: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(request, response) pairs of a cassette."""
    for interaction in load_interactions(path):
        yield interaction["request"], interaction["response"]


def header(headers: Mapping[str, Any], name: str) -> str | None:
    """A header of a cassette request/response (case-insensitive; vcr stores lists)."""
    for key, value in headers.items():
        if key.lower() == name.lower():
            return str(value[0] if isinstance(value, list) else value)
    return None


@dataclass(frozen=True)
class Recorder:
    """Writes one provider's cassettes (the ``record.py`` modules are thin front ends).

    By default every scenario runs against its documented responder; ``--live`` re-records the
    scenarios marked ``live="yes"`` (plus ``"billed"`` ones with ``--allow-launch``) against
    the real API with the key from ``key_env``.
    """

    provider: str
    provider_class: Any
    base_url: str
    key_env: str
    scenarios: Mapping[str, Any]
    recording_key: str
    creates: str  # what a billed scenario creates ("machines", "pods")

    @property
    def directory(self) -> Path:
        return CASSETTES / self.provider

    def record(self, scenario: Any, *, live_key: str | None) -> int:
        """Record one scenario; returns the number of interactions written."""
        from ..cassettes import provider_vcr

        path = self.directory / f"{scenario.name}.yaml"
        path.unlink(missing_ok=True)
        options: dict[str, Any] = dict(scenario.options)
        if live_key is None:
            options["transport"] = scenario.responder().transport()
            api_key = scenario.api_key
        else:
            # The real key, except for scenarios about a revoked key.
            api_key = live_key if scenario.api_key == self.recording_key else scenario.api_key
        with (
            provider_vcr(self.provider, "all").use_cassette(path.name) as cassette,
            self.provider_class(api_key=api_key, base_url=self.base_url, **options) as client,
        ):
            run_sync(client, scenario.script)
        return len(cassette)

    def main(self, argv: list[str] | None, description: str) -> int:
        """The command line of ``python -m tests.providers.<provider>.record``."""
        parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
        parser.add_argument("scenarios", nargs="*", help="default: all (that the mode allows)")
        parser.add_argument(
            "--live", action="store_true", help=f"record against the real API ({self.key_env})"
        )
        parser.add_argument(
            "--allow-launch",
            action="store_true",
            help=f"with --live: also run scenarios that create (billed) {self.creates}",
        )
        args = parser.parse_args(argv)
        unknown = sorted(set(args.scenarios) - set(self.scenarios))
        if unknown:
            parser.error(f"unknown scenarios: {', '.join(unknown)}")
        if args.allow_launch and not args.live:
            parser.error("--allow-launch only makes sense with --live")
        live_key = None
        if args.live:
            live_key = os.environ.get(self.key_env, "").strip()
            if not live_key:
                parser.error(f"--live needs the API key in {self.key_env}")
        allowed = {"yes", "billed"} if args.allow_launch else {"yes"}
        self.directory.mkdir(parents=True, exist_ok=True)
        for name in args.scenarios or list(self.scenarios):
            scenario = self.scenarios[name]
            if args.live and scenario.live not in allowed:
                reason = (
                    f"creates {self.creates}: add --allow-launch"
                    if scenario.live == "billed"
                    else "cannot be provoked live; stays documented"
                )
                print(f"skip {name}: {reason}", file=sys.stderr)
                continue
            count = self.record(scenario, live_key=live_key)
            origin = "live" if args.live else "documented"
            print(
                f"{name}: {count} interactions ({origin}) -> cassettes/{self.provider}/{name}.yaml"
            )
        return 0
