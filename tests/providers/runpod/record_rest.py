"""Record the RunPod REST v2 cassettes: ``python -m tests.providers.runpod.record_rest``.

Without options every scenario of ``scenarios_rest.py`` runs against ``DocumentedRunPodRest``
(answers written from RunPod's REST v2 OpenAPI document; see documented_rest.py and
cassettes/runpod/rest/PROVENANCE.md) and is written to ``cassettes/runpod/rest/<name>.yaml``.

``--live`` re-records against https://api.runpod.io (``/v2/...``) with the key in
``RUNPOD_API_KEY``: only the scenarios marked ``live="yes"``, plus the ``live="billed"`` ones
(they create pods, billed until the script terminates them) with ``--allow-launch`` too.
Authorization headers are filtered out of every cassette.
"""

from __future__ import annotations

from functools import partial

from gpu_providers.runpod import RunPodProvider

from ..paperspace.harness import Recorder
from .documented_rest import API
from .scenarios_rest import RECORDING_KEY, SCENARIOS

RECORDER = Recorder(
    provider="runpod/rest",
    provider_class=partial(RunPodProvider, api="rest"),
    base_url=API,
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
