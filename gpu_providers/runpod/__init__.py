"""RunPod provider, two backends: GraphQL (the default; generated client in _generated/,
executed by gql) and REST API v2 (``api="rest"``; generated OpenAPI client in
rest/_generated/).

RunPod has announced the retirement of its GraphQL API in early 2027.
"""

from ._client import AsyncRunPodProvider, RunPodProvider

__all__ = ["AsyncRunPodProvider", "RunPodProvider"]
