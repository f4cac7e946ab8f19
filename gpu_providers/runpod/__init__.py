"""RunPod provider (generated GraphQL client in _generated/, executed by gql).

RunPod has announced the retirement of its GraphQL API in early 2027.
"""

from ._client import AsyncRunPodProvider, RunPodProvider

__all__ = ["AsyncRunPodProvider", "RunPodProvider"]
