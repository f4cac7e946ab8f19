"""RunPod client: flows over the generated GraphQL client (gpu_providers/runpod/_generated,
made by ``python -m codegen runpod`` from specs/runpod/), executed by gql with the schema
loaded, variables only.

RunPod has announced the retirement of its GraphQL API in early 2027 (REST v2 replaces it).
"""

from __future__ import annotations

from typing import Any

from .._core import Created, Flow, NothingCreated, ProviderCore, RateLimitSpec, check_id
from .._credentials import RUNPOD
from .._graphql import AsyncGraphQLProvider, GraphQLCall, GraphQLProvider
from ..errors import (
    CapacityError,
    InstanceNotFoundError,
    InvalidRequestError,
    ProviderError,
    UnexpectedResponseError,
    UnsupportedFeatureError,
)
from ..gpus import GPUSpec
from ..types import (
    GPUFilters,
    GPUInstance,
    GPUOffer,
    InstanceStatus,
    LaunchRequest,
    ProviderFeature,
)
from . import _mapping as M

# Used when a LaunchRequest names no image (RunPod requires one).
DEFAULT_IMAGE = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"
DEFAULT_DISK_GB = 50


class _RunPodCore(ProviderCore):
    name = "runpod"
    display_name = "RunPod"
    default_base_url = "https://api.runpod.io/graphql"
    docs_url = "https://docs.runpod.io"
    credentials = RUNPOD
    extra = "runpod"
    generated_client = "gpu_providers.runpod._generated.client:RunPodClient"
    generated_async_client = "gpu_providers.runpod._generated.async_client:AsyncRunPodClient"
    features = frozenset(
        {
            ProviderFeature.SPOT_INSTANCES,
            ProviderFeature.STOP_START,
            ProviderFeature.CUSTOM_IMAGES,
            ProviderFeature.PRICES_BEFORE_LAUNCH,
        }
    )
    rate_limit = RateLimitSpec(
        requests_per_second=5.0,
        burst=5,
        source="RunPod documents no GraphQL rate limit; 5 requests/s is our own default",
    )
    notes = (
        "RunPod has announced the retirement of its GraphQL API in early 2027; this client "
        "will move to RunPod's REST API v2.",
        "Pods get the account's SSH keys; ssh_public_key adds one more (PUBLIC_KEY env).",
    )

    def _provider_gpu_name(self, spec: GPUSpec) -> str | None:
        return spec.runpod[0] if spec.runpod else None

    def _error_from_graphql(self, errors: list[Any], operation: str) -> ProviderError:
        return M.classify_graphql(errors, operation)

    def _error_from_body(self, status_code: int, body: Any, operation: str) -> ProviderError:
        return M.classify_status(status_code, body, operation)

    # -- flows ----------------------------------------------------------------------------

    def _flow_offers(self, filters: GPUFilters) -> Flow[list[GPUOffer]]:
        from ._generated.input_types import GpuLowestPriceInput

        count = filters.min_gpu_count
        result = yield GraphQLCall(
            method="gpu_types",
            operation="list_gpu_types",
            variables={"lowest_price_input": GpuLowestPriceInput(gpuCount=count)},
        )
        return M.offers_from_gpu_types(result.gpu_types or [], count)

    def _flow_launch(self, request: LaunchRequest) -> Flow[GPUInstance]:
        from ._generated.enums import CloudTypeEnum
        from ._generated.input_types import (
            EnvironmentVariableInput,
            PodFindAndDeployOnDemandInput,
            PodRentInterruptableInput,
        )

        if request.labels:
            raise UnsupportedFeatureError("RunPod pods take no labels", provider=self.name)
        self._unsupported(request, file_systems=bool(request.file_systems))
        if request.ssh_key_names:
            raise InvalidRequestError(
                "RunPod installs the account's SSH keys; pass ssh_public_key to add another "
                "(ssh_key_names is not used by RunPod)",
                provider=self.name,
            )
        gpu_id = self.translate_gpu_type(request.gpu_type)
        fields: dict[str, Any] = {
            "cloudType": CloudTypeEnum.ALL,
            "gpuTypeId": gpu_id,
            "gpuCount": request.gpu_count,
            "name": request.name,
            "imageName": request.image or DEFAULT_IMAGE,
            "containerDiskInGb": request.disk_gb or DEFAULT_DISK_GB,
            "ports": "22/tcp",
            "startSsh": True,
            "supportPublicIp": True,
            "dataCenterId": self.translate_region(request.region) if request.region else None,
        }
        if request.ssh_public_key:
            fields["env"] = [
                EnvironmentVariableInput(key="PUBLIC_KEY", value=request.ssh_public_key)
            ]
        if request.spot:
            bid = request.bid_price
            if bid is None:  # bid the current minimum for this GPU type
                offers = yield from self._flow_offers(GPUFilters(min_gpu_count=request.gpu_count))
                bids = [o.price_per_gpu for o in offers if o.spot and o.offer_id == gpu_id]
                if not bids or bids[0] is None:
                    raise CapacityError(
                        f"no spot capacity for {request.gpu_type} right now", provider=self.name
                    )
                bid = bids[0]
            spot_input = PodRentInterruptableInput(bidPerGpu=bid, **fields)
            result = yield GraphQLCall(
                method="pod_rent_interruptable",
                operation="launch",
                variables={"input": spot_input},
                kind="launch",
                submits_work=True,
            )
            pod = result.pod_rent_interruptable
        else:
            on_demand = PodFindAndDeployOnDemandInput(**fields)
            result = yield GraphQLCall(
                method="pod_find_and_deploy_on_demand",
                operation="launch",
                variables={"input": on_demand},
                kind="launch",
                submits_work=True,
            )
            pod = result.pod_find_and_deploy_on_demand
        if pod is None:  # RunPod's answer when no machine fits: nothing was created
            yield NothingCreated()
            raise CapacityError(
                f"RunPod found no machine for {request.gpu_count}x {request.gpu_type}",
                provider=self.name,
            )
        yield Created(instance_id=pod.id)
        return M.instance_from_api(pod)

    def _flow_pod(self, instance_id: str) -> Flow[Any]:
        from ._generated.input_types import PodFilter

        result = yield GraphQLCall(
            method="get_pod", operation="get_pod", variables={"input": PodFilter(podId=instance_id)}
        )
        if result.pod is None:
            raise InstanceNotFoundError(f"pod {instance_id!r} not found", provider=self.name)
        return result.pod

    def _flow_status(self, instance_id: str) -> Flow[InstanceStatus]:
        pod = yield from self._flow_pod(instance_id)
        return M.status_from_api(pod)

    def _flow_list(self, name_prefix: str | None) -> Flow[list[GPUInstance]]:
        result = yield GraphQLCall(method="my_pods", operation="list_pods")
        if result.myself is None:
            raise UnexpectedResponseError("myself is null", provider=self.name)
        pods = [M.instance_from_api(p) for p in result.myself.pods or [] if p is not None]
        if name_prefix:
            pods = [p for p in pods if (p.name or "").startswith(name_prefix)]
        return pods

    def _flow_terminate(self, instance_id: str) -> Flow[None]:
        from ._generated.input_types import PodTerminateInput

        yield GraphQLCall(
            method="pod_terminate",
            operation="terminate",
            variables={"input": PodTerminateInput(podId=instance_id)},
        )

    def _flow_stop(self, instance_id: str) -> Flow[InstanceStatus]:
        from ._generated.input_types import PodStopInput

        check_id(self.name, instance_id)
        yield GraphQLCall(
            method="pod_stop",
            operation="stop",
            variables={"input": PodStopInput(podId=instance_id)},
        )
        status = yield from self._flow_status(instance_id)
        return status

    def _flow_resume(self, instance_id: str) -> Flow[InstanceStatus]:
        from ._generated.input_types import PodResumeInput

        check_id(self.name, instance_id)
        pod = yield from self._flow_pod(instance_id)
        resume = PodResumeInput(podId=instance_id, gpuCount=pod.gpu_count or 1)
        yield GraphQLCall(method="pod_resume", operation="resume", variables={"input": resume})
        status = yield from self._flow_status(instance_id)
        return status


class RunPodProvider(_RunPodCore, GraphQLProvider):
    """RunPod, blocking. Create with ``create_provider("runpod", api_key=...)``."""

    def stop_instance(self, instance_id: str) -> InstanceStatus:
        """Stop a pod (its volume is kept)."""
        return self._run(self._flow_stop(instance_id))

    def start_instance(self, instance_id: str) -> InstanceStatus:
        """Resume a stopped pod."""
        return self._run(self._flow_resume(instance_id))


class AsyncRunPodProvider(_RunPodCore, AsyncGraphQLProvider):
    """RunPod, async. Create with ``create_async_provider("runpod", api_key=...)``."""

    async def stop_instance(self, instance_id: str) -> InstanceStatus:
        """Stop a pod (its volume is kept)."""
        return await self._run(self._flow_stop(instance_id))

    async def start_instance(self, instance_id: str) -> InstanceStatus:
        """Resume a stopped pod."""
        return await self._run(self._flow_resume(instance_id))
