"""TensorDock provider, API v2 only (generated wire client in _generated/).

The legacy v0 marketplace API is not supported.
"""

from ._client import AsyncTensorDockProvider, TensorDockProvider

__all__ = ["AsyncTensorDockProvider", "TensorDockProvider"]
