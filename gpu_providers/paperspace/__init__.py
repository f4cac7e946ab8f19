"""Paperspace provider (generated wire client in _generated/)."""

from ._client import AsyncPaperspaceProvider, PaperspaceProvider

__all__ = ["AsyncPaperspaceProvider", "PaperspaceProvider"]
