"""Lambda Cloud provider (generated wire client in _generated/)."""

from ._client import AsyncLambdaProvider, LambdaProvider

__all__ = ["AsyncLambdaProvider", "LambdaProvider"]
