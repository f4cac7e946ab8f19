"""RunPod over its REST API v2 (generated OpenAPI client in _generated/).

Use ``create_provider("runpod", api="rest")``; the classes are also reachable as
``RunPodProvider(api="rest")`` / ``AsyncRunPodProvider(api="rest")``.
"""

from ._client import AsyncRunPodRestProvider, RunPodRestProvider

__all__ = ["AsyncRunPodRestProvider", "RunPodRestProvider"]
