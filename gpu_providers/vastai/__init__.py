"""Vast.ai provider (generated wire client in _generated/)."""

from ._client import AsyncVastAIProvider, VastAIProvider

__all__ = ["AsyncVastAIProvider", "VastAIProvider"]
