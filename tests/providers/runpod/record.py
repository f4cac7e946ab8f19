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

from gpu_providers.runpod import RunPodProvider

from ..paperspace.harness import Recorder
from .documented import GRAPHQL_URL
from .scenarios import RECORDING_KEY, SCENARIOS

RECORDER = Recorder(
    provider="runpod",
    provider_class=RunPodProvider,
    base_url=GRAPHQL_URL,
    key_env="RUNPOD_API_KEY",
    scenarios=SCENARIOS,
    recording_key=RECORDING_KEY,
    creates="pods",
)


def main(argv: list[str] | None = None) -> int:
    """Record the cassettes (see the module docstring)."""
    return RECORDER.main(argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
