"""RunPod client: flows over the generated GraphQL client (gpu_providers/runpod/_generated,
made by ``python -m codegen runpod`` from specs/runpod/), executed by gql with the schema
loaded, variables only.

RunPod has announced the retirement of its GraphQL API in early 2027 (REST v2 replaces it).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from pydantic import SecretStr

from .._core import Created, Flow, NothingCreated, ProviderCore, RateLimitSpec, check_id
from .._credentials import RUNPOD
from .._graphql import AsyncGraphQLProvider, GraphQLCall, GraphQLProvider
from ..errors import (
    CapacityError,
    InstanceNotFoundError,
    InvalidRequestError,
    ProviderError,
    UnexpectedResponseError,
)
from ..gpus import GPUSpec, gpu_spec
from ..labels import LabelTransport
from ..types import (
    GPUFilters,
    GPUInstance,
    GPUOffer,
    InstanceState,
    InstanceStatus,
    LaunchRequest,
    ProviderFeature,
)
from . import _mapping as mapping

logger = logging.getLogger("gpu_providers")

# Used when a LaunchRequest names no image (RunPod requires one).
DEFAULT_IMAGE = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"
#: The CUDA version of DEFAULT_IMAGE: the host driver must support at least this, so it is
#: sent as minCudaVersion on every deploy and price lookup unless the request names another
#: (dstack sends a floor the same way: backends/runpod/api_client.py, minCudaVersion).
DEFAULT_MIN_CUDA_VERSION = "12.4"
DEFAULT_DISK_GB = 50

#: Generic regions -> RunPod country codes, where one country is the whole answer. Europe and
#: Asia have data centers in several countries: name one (``EU-RO-1``, ``EU-SE-1``, ...) or a
#: country code (``RO``, ``SE``, ``NL``, ...).
REGION_ALIASES = {
    "us": "US",
    "us-east": "US",
    "us-west": "US",
    "us-central": "US",
    "us-south": "US",
    "ca": "CA",
    "ca-central": "CA",
    "ca-east": "CA",
    "ap-northeast": "JP",
    "jp": "JP",
    "ap-southeast-2": "AU",
    "oc": "AU",
    "au": "AU",
}

#: RunPod's data centers as the REST v1 spec enumerates them (rest-v1-openapi.json,
#: dataCenterId; runpod/docs api-reference/openapi.json @ 01242f85, 2026-07-20).
DATA_CENTERS = (
    "AP-JP-1", "CA-MTL-1", "CA-MTL-2", "CA-MTL-3", "EU-CZ-1", "EU-FR-1", "EU-NL-1", "EU-RO-1",
    "EU-SE-1", "EUR-IS-1", "EUR-IS-2", "EUR-IS-3", "EUR-NO-1", "OC-AU-1", "US-CA-2", "US-DE-1",
    "US-GA-1", "US-GA-2", "US-IL-1", "US-KS-2", "US-KS-3", "US-NC-1", "US-TX-1", "US-TX-3",
    "US-TX-4", "US-WA-1",
)  # fmt: skip


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
            ProviderFeature.STARTUP_SCRIPT,
            ProviderFeature.ENVIRONMENT,
            ProviderFeature.SSH_PUBLIC_KEY,
            ProviderFeature.LABELS,  # in the pod name
            ProviderFeature.PUBLIC_CATALOG,
        }
    )
    #: Pods take no tags: labels are encoded in the pod name (gpu_providers.labels).
    label_transport = LabelTransport.NAME
    #: gpuTypes (prices and stock) answers without a key (FACTS.md: gpuhunt sends none).
    keyless_operations = frozenset({"list_gpu_types"})
    region_aliases = REGION_ALIASES
    known_regions = DATA_CENTERS
    rate_limit = RateLimitSpec(
        requests_per_second=5.0,
        burst=5,
        source="RunPod documents no GraphQL rate limit; 5 requests/s is our own default",
    )
    notes: ClassVar[tuple[str, ...]] = (
        "RunPod has announced the retirement of its GraphQL API in early 2027; "
        "api='rest' selects the REST API v2 backend (no spot there).",
        "ssh_public_key is sent as the pod's PUBLIC_KEY and SSH_PUBLIC_KEY environment "
        "variables. RunPod's docs say a pod-level key overrides the public keys of the "
        "account's settings: with ssh_public_key set, only that key can log in.",
        "startup_script becomes the pod's start command (dockerArgs): it runs in the "
        "background at every container start, beside RunPod's /start.sh (SSH), and replaces "
        "the image's own start command when that is not /start.sh.",
        "Ready means the container is up and port 22 is mapped to a public IP and port.",
        "A region is a RunPod data center id (US-TX-3, EU-RO-1: sent as dataCenterId) or a "
        "country code (US, CA: sent as countryCode); offers report the country code.",
        "Every launch asks for hosts with CUDA >= min_cuda_version (default 12.4, the CUDA "
        "of the default image) and for the cloud (SECURE or COMMUNITY) of the cheapest offer.",
        "A spot pod that RunPod exited (lastStatusChange 'Exited by Runpod') is PREEMPTED; "
        "start_instance resumes spot pods with podBidResume at the current minimum bid.",
    )

    def _provider_gpu_name(self, spec: GPUSpec) -> str | None:
        return spec.runpod[0] if spec.runpod else None

    def _error_from_graphql(self, errors: list[Any], operation: str) -> ProviderError:
        return mapping.classify_graphql(errors, operation)

    def _error_from_body(self, status_code: int, body: Any, operation: str) -> ProviderError:
        return mapping.classify_status(status_code, body, operation)

    def translate_region(self, standard: str) -> str:
        """A generic region (``us-east``), a RunPod data center id (``EU-RO-1``) or a country
        code (``US``) -> what a launch sends (data center id or country code)."""
        key = standard.strip()
        if not key:
            raise InvalidRequestError("region must not be empty", provider=self.name)
        code = self.region_aliases.get(key.lower()) or mapping.region_code(key)
        if code is None:
            raise InvalidRequestError(
                f"{standard!r} is not a RunPod region: use a data center id (EU-RO-1, "
                "US-TX-3, ...), a country code (US, RO, ...) or us-east/us-west/ca-central",
                provider=self.name,
            )
        return code

    # -- flows ----------------------------------------------------------------------------

    def _flow_priced(
        self,
        gpu_count: int,
        region: str | None,
        min_cuda_version: str,
        gpu_type_id: str | None = None,
    ) -> Flow[list[tuple[str, GPUOffer]]]:
        """(cloud, offer) pairs from one gpuTypes query: lowestPrice per cloud for this
        placement, on hosts with a public IP and at least ``min_cuda_version``."""
        from ._generated.input_types import GpuLowestPriceInput, GpuTypeFilter

        def lowest(secure: bool) -> GpuLowestPriceInput:
            fields: dict[str, Any] = {
                "gpuCount": gpu_count,
                "secureCloud": secure,
                "supportPublicIp": True,
                "minCudaVersion": min_cuda_version,
                **mapping.placement(region),
            }
            return GpuLowestPriceInput.model_validate(fields)

        variables: dict[str, Any] = {"secure_input": lowest(True), "community_input": lowest(False)}
        if gpu_type_id is not None:
            variables["filter_"] = GpuTypeFilter(id=gpu_type_id)
        result = yield GraphQLCall(
            method="gpu_types", operation="list_gpu_types", variables=variables
        )
        return mapping.priced_offers(result.gpu_types or [], gpu_count, region)

    def _flow_available(self, filters: GPUFilters | None) -> Flow[list[GPUOffer]]:
        # Offers carry region codes (data center id or country code): filter by those.
        if filters is not None and filters.regions:
            codes = [self.translate_region(r) for r in filters.regions]
            filters = filters.model_copy(update={"regions": codes})
        offers = yield from super()._flow_available(filters)
        return offers

    def _flow_offers(self, filters: GPUFilters) -> Flow[list[GPUOffer]]:
        offers: list[GPUOffer] = []
        regions: list[str | None] = [*filters.regions] if filters.regions else [None]
        for code in regions:
            priced = yield from self._flow_priced(
                filters.min_gpu_count, code, DEFAULT_MIN_CUDA_VERSION
            )
            offers += [offer for _, offer in priced]
        return offers

    def _flow_launch(self, request: LaunchRequest) -> Flow[GPUInstance]:
        from ._generated.enums import CloudTypeEnum
        from ._generated.input_types import (
            EnvironmentVariableInput,
            PodFindAndDeployOnDemandInput,
            PodRentInterruptableInput,
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
            env = mapping.pod_env(request)
            docker_args = (
                mapping.start_command(request.startup_script) if request.startup_script else None
            )
        except ValueError as exc:  # our own message: never the script or a value
            raise InvalidRequestError(str(exc), provider=self.name) from None
        # Price the launch first: its cloud (and, for spot without a bid, its bid) is the
        # cloud of the cheapest available offer of this kind; with none, RunPod picks (ALL).
        priced = yield from self._flow_priced(request.gpu_count, region, cuda, gpu_id)
        best = mapping.cheapest(priced, gpu_id, request.spot)
        fields: dict[str, Any] = {
            "cloudType": CloudTypeEnum(best[0]) if best else CloudTypeEnum.ALL,
            "gpuTypeId": gpu_id,
            "gpuCount": request.gpu_count,
            "name": request.name,
            "imageName": request.image or DEFAULT_IMAGE,
            "containerDiskInGb": request.disk_gb or DEFAULT_DISK_GB,
            "ports": "22/tcp",
            "startSsh": True,
            "supportPublicIp": True,
            "minCudaVersion": cuda,
            **mapping.placement(region),
        }
        if env:
            fields["env"] = [EnvironmentVariableInput(key=k, value=v) for k, v in env]
        if docker_args is not None:
            fields["dockerArgs"] = docker_args
        if request.spot:
            bid = request.bid_price
            if bid is None:  # bid the current minimum of the cheapest cloud
                if best is None or best[1].price_per_gpu is None:
                    raise CapacityError(
                        f"no spot capacity for {request.gpu_type} right now", provider=self.name
                    )
                bid = best[1].price_per_gpu
            method, field_name = "pod_rent_interruptable", "podRentInterruptable"
            deploy: Any = PodRentInterruptableInput(bidPerGpu=bid, **fields)
        else:
            method, field_name = "pod_find_and_deploy_on_demand", "podFindAndDeployOnDemand"
            deploy = PodFindAndDeployOnDemandInput(**fields)
        try:
            result = yield GraphQLCall(
                method=method,
                operation="launch",
                variables={"input": deploy},
                kind="launch",
                submits_work=True,
                created_id=(field_name, "id"),
            )
        except ProviderError as exc:
            if not (exc.maybe_submitted and exc.instance_id):
                raise
            # The pod was made; only its answer is off schema (the id was read from the raw
            # answer): it comes back pending, as a failed read-back does elsewhere.
            yield Created(instance_id=exc.instance_id)
            logger.info("launch %s: the answer does not parse as a Pod (%s)", exc.instance_id, exc)
            return GPUInstance(
                provider=self.name,
                instance_id=exc.instance_id,
                name=request.name,
                state=InstanceState.PENDING,
                gpu_type=gpu_spec(request.gpu_type).name,
                gpu_count=request.gpu_count,
                region=mapping.placement(region).get("dataCenterId"),
                spot=request.spot,
            )
        pod = getattr(result, method)
        if pod is None:  # RunPod's answer when no machine fits: nothing was created
            yield NothingCreated()
            raise CapacityError(
                f"RunPod found no machine for {request.gpu_count}x {request.gpu_type}",
                provider=self.name,
            )
        yield Created(instance_id=pod.id)
        return mapping.instance_from_api(pod)

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
        return mapping.status_from_api(pod)

    def _flow_list(self, name_prefix: str | None) -> Flow[list[GPUInstance]]:
        result = yield GraphQLCall(method="my_pods", operation="list_pods")
        if result.myself is None:
            raise UnexpectedResponseError("myself is null", provider=self.name)
        pods = [mapping.instance_from_api(p) for p in result.myself.pods or [] if p is not None]
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
        from ._generated.input_types import PodBidResumeInput, PodResumeInput

        check_id(self.name, instance_id)
        pod = yield from self._flow_pod(instance_id)
        count = pod.gpu_count or 1
        if mapping.is_interruptible(pod):
            # Spot pods resume with a bid (podBidResume): the Pod type reports no bid of its
            # own, so the current minimum bid of its GPU type and cloud.
            bid = yield from self._flow_resume_bid(pod, count)
            spot = PodBidResumeInput(podId=instance_id, bidPerGpu=bid, gpuCount=count)
            yield GraphQLCall(
                method="pod_bid_resume", operation="resume", variables={"input": spot}
            )
        else:
            resume = PodResumeInput(podId=instance_id, gpuCount=count)
            yield GraphQLCall(method="pod_resume", operation="resume", variables={"input": resume})
        status = yield from self._flow_status(instance_id)
        return status

    def _flow_resume_bid(self, pod: Any, gpu_count: int) -> Flow[float]:
        gpu_id = pod.machine.gpu_type_id if pod.machine else None
        if not gpu_id:
            raise UnexpectedResponseError(
                f"pod {pod.id}: no machine.gpuTypeId to price the spot resume", provider=self.name
            )
        priced = yield from self._flow_priced(gpu_count, None, DEFAULT_MIN_CUDA_VERSION, gpu_id)
        secure = pod.machine.secure_cloud
        clouds = (
            {mapping.SECURE, mapping.COMMUNITY}
            if secure is None
            else {mapping.SECURE if secure else mapping.COMMUNITY}
        )
        bids = [
            o.price_per_gpu
            for cloud, o in priced
            if cloud in clouds and o.spot and o.offer_id == gpu_id and o.price_per_gpu
        ]
        if not bids:
            raise CapacityError(
                f"no spot price for {gpu_id} right now: cannot bid to resume pod {pod.id}",
                provider=self.name,
            )
        return max(bids)  # the pod's own cloud; unknown cloud: never under either minimum


#: The RunPod APIs a client can speak: ``api="graphql"`` (the default until RunPod retires
#: it, announced for early 2027) or ``api="rest"`` (REST API v2, GA since 2026-08-18).
APIS = ("graphql", "rest")


def _chosen_api(api: object) -> str:
    """The backend asked for, checked before anything else happens (no network call)."""
    key = api.strip().lower() if isinstance(api, str) else None
    if key not in APIS:
        raise InvalidRequestError(
            f"unknown RunPod api {api!r}: choose 'graphql' (the default) or 'rest' "
            "(RunPod's REST API v2)",
            provider="runpod",
        )
    return key


class RunPodProvider(_RunPodCore, GraphQLProvider):
    """RunPod, blocking. Create with ``create_provider("runpod", api_key=...)``.

    ``api="rest"`` (``create_provider("runpod", api="rest")``) gives a client of RunPod's
    REST API v2 instead (``gpu_providers.runpod.rest.RunPodRestProvider``, a subclass);
    ``api="graphql"`` is the default.
    """

    #: Which RunPod API this client speaks.
    api: str = "graphql"

    def __new__(cls, *args: Any, api: str | None = None, **options: Any) -> RunPodProvider:
        if api is not None and _chosen_api(api) == "rest" and cls is RunPodProvider:
            from .rest import RunPodRestProvider

            return super().__new__(RunPodRestProvider)
        return super().__new__(cls)

    def __init__(
        self, api_key: str | SecretStr | None = None, *, api: str | None = None, **options: Any
    ) -> None:
        """Create a client; ``api`` picks the backend (``"graphql"``, the default, or
        ``"rest"``); the other options are those of every provider client (``base_url``,
        ``timeout``, ``max_retries``, ...)."""
        if api is not None and _chosen_api(api) != self.api:
            raise InvalidRequestError(
                f"{type(self).__name__} speaks RunPod's {self.api} API, not {api!r}",
                provider=self.name,
            )
        super().__init__(api_key, **options)

    def stop_instance(self, instance_id: str) -> InstanceStatus:
        """Stop a pod (its volume is kept)."""
        return self._run(self._flow_stop(instance_id))

    def start_instance(self, instance_id: str) -> InstanceStatus:
        """Resume a stopped pod (spot pods with podBidResume at the current minimum bid)."""
        return self._run(self._flow_resume(instance_id))


class AsyncRunPodProvider(_RunPodCore, AsyncGraphQLProvider):
    """RunPod, async. Create with ``create_async_provider("runpod", api_key=...)``.

    ``api="rest"`` gives a client of RunPod's REST API v2 instead
    (``gpu_providers.runpod.rest.AsyncRunPodRestProvider``, a subclass).
    """

    #: Which RunPod API this client speaks.
    api: str = "graphql"

    def __new__(cls, *args: Any, api: str | None = None, **options: Any) -> AsyncRunPodProvider:
        if api is not None and _chosen_api(api) == "rest" and cls is AsyncRunPodProvider:
            from .rest import AsyncRunPodRestProvider

            return super().__new__(AsyncRunPodRestProvider)
        return super().__new__(cls)

    def __init__(
        self, api_key: str | SecretStr | None = None, *, api: str | None = None, **options: Any
    ) -> None:
        """Create a client; ``api`` picks the backend (``"graphql"``, the default, or
        ``"rest"``)."""
        if api is not None and _chosen_api(api) != self.api:
            raise InvalidRequestError(
                f"{type(self).__name__} speaks RunPod's {self.api} API, not {api!r}",
                provider=self.name,
            )
        super().__init__(api_key, **options)

    async def stop_instance(self, instance_id: str) -> InstanceStatus:
        """Stop a pod (its volume is kept)."""
        return await self._run(self._flow_stop(instance_id))

    async def start_instance(self, instance_id: str) -> InstanceStatus:
        """Resume a stopped pod (spot pods with podBidResume at the current minimum bid)."""
        return await self._run(self._flow_resume(instance_id))
