"""Provider tests never sleep for real and never share account state across tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gpu_providers import _core
from tests.providers.timekeeping import NoSleepClock


@pytest.fixture(autouse=True)
def _isolated_accounts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_core, "SYSTEM_CLOCK", NoSleepClock())
    with _core._accounts_lock:
        saved = dict(_core._accounts)
        _core._accounts.clear()
    yield
    with _core._accounts_lock:
        _core._accounts.clear()
        _core._accounts.update(saved)
