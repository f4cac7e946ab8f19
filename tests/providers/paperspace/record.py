"""Record the Paperspace cassettes: ``python -m tests.providers.paperspace.record``.

Without options every scenario of ``scenarios.py`` runs against ``DocumentedPaperspace`` (the
vendor's documented schemas, see documented.py and cassettes/paperspace/PROVENANCE.md) and is
written to ``cassettes/paperspace/<scenario>.yaml``.

``--live`` re-records against https://api.paperspace.com/v1 with the key in
``PAPERSPACE_API_KEY``: only the scenarios marked ``live="yes"`` (reads, missing ids, a
revoked key), plus ``live="billed"`` ones (they create machines, billed until the script
deletes them) when ``--allow-launch`` is given too. The other cassettes stay documented.
Authorization headers and api_key query parameters are filtered out of every cassette.
"""

from __future__ import annotations

from gpu_providers.paperspace import PaperspaceProvider

from .documented import BASE_URL
from .harness import Recorder
from .scenarios import RECORDING_KEY, SCENARIOS

RECORDER = Recorder(
    provider="paperspace",
    provider_class=PaperspaceProvider,
    base_url=BASE_URL,
    key_env="PAPERSPACE_API_KEY",
    scenarios=SCENARIOS,
    recording_key=RECORDING_KEY,
    creates="machines",
)


def main(argv: list[str] | None = None) -> int:
    """Record the cassettes (see the module docstring)."""
    return RECORDER.main(argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
