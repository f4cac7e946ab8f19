"""Record the TensorDock cassettes: ``python -m tests.providers.tensordock.record``.

Without options every scenario of ``scenarios.py`` runs against ``DocumentedTensorDock`` (the
documented responses, see documented.py and cassettes/tensordock/PROVENANCE.md) and is written
to ``cassettes/tensordock/<scenario>.yaml``.

``--live`` re-records against https://dashboard.tensordock.com/api/v2 with the token in
``TENSORDOCK_API_TOKEN``: only the scenarios marked ``live="yes"`` (reads, missing ids, a
revoked token), plus ``live="billed"`` ones (they create VMs, billed until the script deletes
them) when ``--allow-launch`` is given too. The other cassettes stay documented.
Authorization headers are filtered out of every cassette.
"""

from __future__ import annotations

from gpu_providers.tensordock import TensorDockProvider
from tests.providers.paperspace.harness import Recorder

from .documented import BASE_URL
from .scenarios import RECORDING_KEY, SCENARIOS

RECORDER = Recorder(
    provider="tensordock",
    provider_class=TensorDockProvider,
    base_url=BASE_URL,
    key_env="TENSORDOCK_API_TOKEN",
    scenarios=SCENARIOS,
    recording_key=RECORDING_KEY,
    creates="VMs",
)


def main(argv: list[str] | None = None) -> int:
    """Record the cassettes (see the module docstring)."""
    return RECORDER.main(argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
