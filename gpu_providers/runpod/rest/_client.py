"""RunPod over its REST API v2: flows over the generated OpenAPI client
(gpu_providers/runpod/rest/_generated, made by ``python -m codegen runpod-rest`` from
specs/runpod-rest/openapi.yaml).

Selected with ``create_provider("runpod", api="rest")`` (or ``RunPodProvider(api="rest")``).
The classes subclass the GraphQL ones, so ``isinstance(client, RunPodProvider)`` holds for
both backends and the RunPod facts (GPU ids, regions, start command, environment) are shared;
the REST wire comes first in the method order, and every flow of the GraphQL backend is
replaced here (see ``tests/providers/runpod/test_backends.py``).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from ..._core import MAPPING_ERRORS, Created, Flow, RateLimitSpec, check_id
from ..._openapi import AsyncOpenAPIProvider, Endpoint, HTTPAnswer, OpenAPIProvider, json_at
from ...errors import (
    CapacityError,
    InvalidRequestError,
    ProviderError,
    UnexpectedResponseError,
    UnsupportedFeatureError,
)
from ...labels import LabelTransport
from ...types import (
    GPUFilters,
    GPUInstance,
    GPUOffer,
    InstanceState,
    InstanceStatus,
    LaunchRequest,
    ProviderFeature,
)
from .. import _mapping as shared
from .._client import (
    DEFAULT_DISK_GB,
    DEFAULT_IMAGE,
    DEFAULT_MIN_CUDA_VERSION,
    AsyncRunPodProvider,
    RunPodProvider,
    _RunPodCore,
)
from . import _mapping as mapping

logger = logging.getLogger("gpu_providers")

#: REST v2 requires a pod name (``CreatePodRequest.name``, minLength 1).
DEFAULT_NAME = "gpu-providers"
#: The clouds a launch may pick from, cheapest available first.
CLOUDS = (shared.SECURE, shared.COMMUNITY)


class _RunPodRestCore(_RunPodCore):
    api = "rest"
    default_base_url = "https://api.runpod.io"
    docs_url = "https://docs.runpod.io/api-reference-v2"
    generated_package = "gpu_providers.runpod.rest._generated"
    features = frozenset(
        {
            ProviderFeature.STOP_START,
            ProviderFeature.CUSTOM_IMAGES,
            ProviderFeature.PRICES_BEFORE_LAUNCH,
            ProviderFeature.STARTUP_SCRIPT,
            ProviderFeature.ENVIRONMENT,
            ProviderFeature.SSH_PUBLIC_KEY,
            ProviderFeature.LABELS,  # in the pod name, as on GraphQL
        }
    )
    label_transport = LabelTransport.NAME
    #: REST v2 wants a bearer token for every operation, the catalog included (the
    #: document's global security; no operation overrides it): no anonymous client.
    keyless_operations: ClassVar[frozenset[str]] = frozenset()
    rate_limit = RateLimitSpec(
        requests_per_second=0.8,
        burst=10,
        documented=True,
        source=(
            "RunPod REST v2 RateLimit-Policy example: 60/minute, 3000/hour, 50000/day per "
            "user; 0.8 requests/s stays under the hourly quota (api.runpod.io/v2 openapi.json)"
        ),
    )
    notes: ClassVar[tuple[str, ...]] = (
        "REST API v2 backend (api='rest'): RunPod's successor of the GraphQL API, which it "
        "retires in early 2027.",
        "REST v2 has no spot (interruptible) pods: spot launches are refused; use "
        "api='graphql' for spot while it lasts.",
        "Pods carry a name (required by REST v2; 'gpu-providers' when the request has none) "
        "but no tags: labels are encoded in the name, as on GraphQL.",
        "The catalog needs an API key on REST v2 (no anonymous=True; GraphQL's is public).",
        "ssh_public_key is sent as the pod's PUBLIC_KEY and SSH_PUBLIC_KEY environment "
        "variables; RunPod's docs say a pod-level key overrides the account's keys.",
        "startup_script becomes the container's args (the start command), as on GraphQL.",
        "Ready means RUNNING with port 22 mapped to a public IP and port.",
        "A region is a data center id (sent as dataCenterIds) or a country code (the data "
        "centers of that country the catalog reports in stock are sent).",
        "Every launch asks for hosts with CUDA >= min_cuda_version (default 12.4) and for the "
        "cloud (SECURE or COMMUNITY) of the cheapest offer in stock.",
    )

    def _error_from_body(self, status_code: int, body: Any, operation: str) -> ProviderError:
        return mapping.classify(status_code, body, operation)

    # -- flows ----------------------------------------------------------------------------

    def _flow_catalog(self, cloud: str, gpu_count: int, region: str | None, cuda: str) -> Flow[Any]:
        """GET /v2/catalog/gpus with pod availability for one cloud, count and placement."""
        from ._generated.api.catalog import list_gpu_types
        from ._generated.models import CatalogInclude, GpuCloudFilter, Product

        # Lists go out as repeated parameters (the generator's form style); upstream wants
        # comma-separated values: with one value each, both read the same.
        arguments: dict[str, Any] = {
            "include": [CatalogInclude.AVAILABILITY],
            "product": [Product.POD],
            "count": gpu_count,
            "cloud": GpuCloudFilter(cloud),
            "min_cuda_version": cuda,
        }
        if region is not None and "-" not in region:  # a country code
            arguments["country_codes"] = [region]
        answer: HTTPAnswer = yield Endpoint(
            module=list_gpu_types, operation="list_gpu_types", arguments=arguments
        )
        return answer.parsed.gpus

    def _flow_priced_rest(
        self, gpu_count: int, region: str | None, cuda: str
    ) -> Flow[tuple[list[tuple[str, GPUOffer]], dict[str, list[Any]]]]:
        """(cloud, offer) pairs of both clouds, and the catalog answers they came from."""
        priced: list[tuple[str, GPUOffer]] = []
        catalogs: dict[str, list[Any]] = {}
        for cloud in CLOUDS:
            gpus = yield from self._flow_catalog(cloud, gpu_count, region, cuda)
            catalogs[cloud] = gpus
            priced += mapping.offers_from_catalog(gpus, cloud, gpu_count, region)
        return priced, catalogs

    def _flow_offers(self, filters: GPUFilters) -> Flow[list[GPUOffer]]:
        offers: list[GPUOffer] = []
        regions: list[str | None] = [*filters.regions] if filters.regions else [None]
        for code in regions:
            priced, _ = yield from self._flow_priced_rest(
                filters.min_gpu_count, code, DEFAULT_MIN_CUDA_VERSION
            )
            offers += [offer for _, offer in priced]
        return offers

    def _flow_launch(self, request: LaunchRequest) -> Flow[GPUInstance]:
        from ._generated.api.pods import create_pod
        from ._generated.models import (
            BaseContainerConfigEnv,
            Cloud,
            CreateGpuConfig,
            CreatePodRequest,
            Pod,
        )

        if request.spot:
            raise UnsupportedFeatureError(
                "RunPod's REST API v2 has no spot (interruptible) pods; launch on-demand, or "
                "use api='graphql' for spot",
                provider=self.name,
            )
        self._unsupported(request, file_systems=bool(request.file_systems))
        if request.ssh_key_names:
            raise InvalidRequestError(
                "RunPod installs the account's SSH keys; pass ssh_public_key to use another "
                "(ssh_key_names is not used by RunPod)",
                provider=self.name,
            )
        gpu_id = self.translate_gpu_type(request.gpu_type)
        region = self.translate_region(request.region) if request.region else None
        cuda = request.min_cuda_version or DEFAULT_MIN_CUDA_VERSION
        try:
            env = shared.pod_env(request)
            args = shared.start_command(request.startup_script) if request.startup_script else None
        except ValueError as exc:  # our own message: never the script or a value
            raise InvalidRequestError(str(exc), provider=self.name) from None
        # createPod places one GPU type and does not search: RunPod's own advice is to read
        # the catalog first and create where it reports stock (the cheapest cloud here).
        priced, catalogs = yield from self._flow_priced_rest(request.gpu_count, region, cuda)
        best = shared.cheapest(priced, gpu_id, spot=False)
        where = f" in {region}" if region else ""
        if best is None:
            raise CapacityError(
                f"RunPod's catalog reports no {request.gpu_count}x {request.gpu_type}{where} "
                "in stock right now",
                provider=self.name,
            )
        cloud = best[0]
        data_centers: list[str] | None = None
        if region is not None and "-" in region:
            data_centers = [region]
        elif region is not None:  # a country: its data centers with stock
            gpu = next(g for g in catalogs[cloud] if g.id == gpu_id)
            data_centers = mapping.data_centers_with_stock(gpu)
            if not data_centers:
                raise CapacityError(
                    f"no data center{where} has {request.gpu_type} in stock", provider=self.name
                )
        body = CreatePodRequest(
            name=request.name or DEFAULT_NAME,
            image=request.image or DEFAULT_IMAGE,
            disk=request.disk_gb or DEFAULT_DISK_GB,
            ports=["22/tcp"],
            start_ssh=True,
            cloud=Cloud(cloud),
            gpu=CreateGpuConfig(id=gpu_id, count=request.gpu_count, min_cuda_version=cuda),
        )
        if data_centers is not None:
            body.data_center_ids = data_centers
        if env:
            variables = BaseContainerConfigEnv()
            variables.additional_properties = dict(env)
            body.env = variables
        if args is not None:
            body.args = args
        answer: HTTPAnswer = yield Endpoint(
            module=create_pod,
            operation="launch",
            arguments={"body": body},
            kind="launch",
            submits_work=True,
            created_id=json_at("id"),
        )
        # The id first (spec D6): once it is known, nothing below may lose it.
        pod_id = answer.created_id
        if pod_id is None:
            raise UnexpectedResponseError(
                "launch: RunPod's 201 answer names no pod id", provider=self.name
            )
        yield Created(instance_id=pod_id)
        try:
            return mapping.instance_from_pod(Pod.from_dict(answer.json()))
        except MAPPING_ERRORS as exc:
            logger.info("launch %s: the answer does not parse as a Pod (%s)", pod_id, exc)
            return GPUInstance(
                provider=self.name,
                instance_id=pod_id,
                name=body.name,
                state=InstanceState.PENDING,
                gpu_type=best[1].gpu_type,
                gpu_count=request.gpu_count,
                region=data_centers[0] if data_centers and len(data_centers) == 1 else None,
                hourly_price=best[1].hourly_price,
            )

    def _flow_pod(self, instance_id: str) -> Flow[Any]:
        from ._generated.api.pods import get_pod

        answer: HTTPAnswer = yield Endpoint(
            module=get_pod, operation="get_instance", arguments={"id": instance_id}
        )
        return answer.parsed

    def _flow_status(self, instance_id: str) -> Flow[InstanceStatus]:
        pod = yield from self._flow_pod(instance_id)
        return mapping.status_from_pod(pod)

    def _flow_list(self, name_prefix: str | None) -> Flow[list[GPUInstance]]:
        from ._generated.api.pods import list_pods

        answer: HTTPAnswer = yield Endpoint(module=list_pods, operation="list_pods")
        pods = [mapping.instance_from_pod(p) for p in answer.parsed.pods]
        if name_prefix:
            pods = [p for p in pods if (p.name or "").startswith(name_prefix)]
        return pods

    def _flow_terminate(self, instance_id: str) -> Flow[None]:
        from ._generated.api.pods import delete_pod

        # 204; a 404 with RunPod's problem body is its proof that the pod is gone.
        yield Endpoint(module=delete_pod, operation="terminate", arguments={"id": instance_id})

    def _flow_action(self, instance_id: str, action: str) -> Flow[InstanceStatus]:
        from ._generated.api.pods import pod_action
        from ._generated.models import PodAction, PodActionRequest

        check_id(self.name, instance_id)
        operation = "stop" if action == "stop" else "resume"
        answer: HTTPAnswer = yield Endpoint(
            module=pod_action,
            operation=operation,
            arguments={"id": instance_id, "body": PodActionRequest(action=PodAction(action))},
        )
        if answer.parsed is None:  # the action answers the updated pod with 200
            raise UnexpectedResponseError(
                f"{operation}: HTTP {answer.status_code} without the pod", provider=self.name
            )
        return mapping.status_from_pod(answer.parsed)

    # GraphQL-only flows of the shared core (gpuTypes.lowestPrice, spot bids): not REST v2.
    def _flow_priced(
        self,
        gpu_count: int,
        region: str | None,
        min_cuda_version: str,
        gpu_type_id: str | None = None,
    ) -> Flow[list[tuple[str, GPUOffer]]]:
        raise NotImplementedError("GraphQL flow: the REST backend prices with _flow_priced_rest")

    def _flow_resume_bid(self, pod: Any, gpu_count: int) -> Flow[float]:
        raise NotImplementedError("GraphQL flow: REST v2 has no spot bids")

    def _flow_stop(self, instance_id: str) -> Flow[InstanceStatus]:
        status = yield from self._flow_action(instance_id, "stop")
        return status

    def _flow_resume(self, instance_id: str) -> Flow[InstanceStatus]:
        status = yield from self._flow_action(instance_id, "start")
        return status


class RunPodRestProvider(_RunPodRestCore, OpenAPIProvider, RunPodProvider):
    """RunPod over REST API v2, blocking: ``create_provider("runpod", api="rest")``."""

    def start_instance(self, instance_id: str) -> InstanceStatus:
        """Start a stopped pod (``{"action": "start"}``)."""
        return self._run(self._flow_resume(instance_id))


class AsyncRunPodRestProvider(_RunPodRestCore, AsyncOpenAPIProvider, AsyncRunPodProvider):
    """RunPod over REST API v2, async: ``create_async_provider("runpod", api="rest")``."""

    async def start_instance(self, instance_id: str) -> InstanceStatus:
        """Start a stopped pod (``{"action": "start"}``)."""
        return await self._run(self._flow_resume(instance_id))
