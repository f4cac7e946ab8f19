"""TensorDock v2 client: flows over the generated OpenAPI client (gpu_providers/tensordock/
_generated, made by ``python -m codegen tensordock`` from specs/tensordock/openapi.yaml).

Only TensorDock's v2 API (https://dashboard.tensordock.com/api/v2, bearer token) is supported.
The legacy v0 marketplace API (form-encoded ``api_key``/``api_token``) is not: TensorDock no
longer maintains it. TensorDock publishes no OpenAPI document; ours is written from its
documentation and marks what is inferred.
"""

from __future__ import annotations

import base64
import logging
import uuid
from typing import Any

from .._core import MAPPING_ERRORS, Created, Flow, ProviderCore, RateLimitSpec, check_id
from .._credentials import TENSORDOCK
from .._openapi import AsyncOpenAPIProvider, Endpoint, HTTPAnswer, OpenAPIProvider, json_at
from .._startup import boot_script, check_public_key
from ..errors import (
    CapacityError,
    InvalidRequestError,
    ProviderError,
    UnexpectedResponseError,
    UnsupportedFeatureError,
)
from ..gpus import GPUSpec
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

#: The OS image of a launch without ``image`` (the docs' example).
DEFAULT_IMAGE = "ubuntu2404"
#: Where the first-boot script (env, startup_script) is written before it runs.
BOOT_SCRIPT_PATH = "/var/lib/gpu-providers/boot.sh"


class _TensorDockCore(ProviderCore):
    name = "tensordock"
    display_name = "TensorDock"
    default_base_url = "https://dashboard.tensordock.com/api/v2"
    docs_url = "https://dashboard.tensordock.com/api/docs"
    credentials = TENSORDOCK
    extra = "tensordock"
    generated_package = "gpu_providers.tensordock._generated"
    features = frozenset(
        {
            ProviderFeature.STOP_START,
            ProviderFeature.PRICES_BEFORE_LAUNCH,
            ProviderFeature.CAPACITY_BY_REGION,
            ProviderFeature.CUSTOM_IMAGES,  # TensorDock's OS images by name (ubuntu2404, ...)
            # cloud_init.runcmd runs our first-boot script: env and the startup script
            ProviderFeature.STARTUP_SCRIPT,
            ProviderFeature.ENVIRONMENT,
            ProviderFeature.SSH_PUBLIC_KEY,  # the create body's own ssh_key field
            ProviderFeature.LABELS,  # in the VM name (TensorDock has no tags)
        }
    )
    label_transport = LabelTransport.NAME
    # No keyless_operations: the v2 docs give every call a bearer token; only the legacy v0
    # hostnode listing is known to answer without one (FACTS.md).
    rate_limit = RateLimitSpec(
        requests_per_second=100 / 60,
        burst=5,
        documented=True,
        source="TensorDock API v2 docs: 100 requests/minute per organization (this client "
        "shares the budget per API token; tokens of one organization share it upstream)",
    )
    notes = (
        "TensorDock API v2 only; the legacy v0 marketplace API is not supported.",
        "Regions are TensorDock location ids (GPUOffer.region); a launch also takes a "
        "location's city, state/province or country and picks the cheapest location there.",
        "A VM is priced from parts: GPUs + vCPUs + RAM + storage. Offers are priced for "
        f"{mapping.VCPUS_PER_GPU} vCPUs and {mapping.RAM_GB_PER_GPU} GB RAM per GPU (within "
        f"the location's limits) and {mapping.MIN_STORAGE_GB} GB storage (or disk_gb), the "
        "configuration launches ask for; GPUOffer.price_breakdown has the parts.",
        "Launches are location-based with a dedicated IP (SSH on port 22); hostnode offers "
        "are listed for comparison but not launched.",
        "An SSH public key is required (ssh_public_key); registered key names are not used.",
        "env and startup_script travel in cloud-init runcmd as one first-boot script; env is "
        "appended to /etc/environment, which every user on the VM can read.",
        "No spot capacity: nothing is preempted. Stopped VMs still bill for storage.",
        "Labels are encoded in the VM name (TensorDock documents no name length limit).",
        "Offers need an API token: v2 documents no keyless catalog.",
    )

    def _provider_gpu_name(self, spec: GPUSpec) -> str | None:
        return mapping.V0_NAMES.get(spec.name)

    def _error_from_body(self, status_code: int, body: Any, operation: str) -> ProviderError:
        return mapping.classify(status_code, body, operation)

    def _httpx_options(self) -> dict[str, Any]:
        options = super()._httpx_options()
        options["headers"] = {**options["headers"], "Accept": "application/json"}
        return options

    # -- checks before any call -------------------------------------------------------------

    def _check_launch(self, request: LaunchRequest) -> str:
        """Refuse what TensorDock cannot take; returns the SSH key to install."""
        if request.spot or request.bid_price is not None:
            raise UnsupportedFeatureError("TensorDock v2 has no spot VMs", provider=self.name)
        self._unsupported(
            request,
            file_systems=bool(request.file_systems),
            min_cuda_version=request.min_cuda_version is not None,
        )
        if request.ssh_key_names:
            raise UnsupportedFeatureError(
                "TensorDock launches take the key itself: pass ssh_public_key, not ssh_key_names",
                provider=self.name,
            )
        if request.ssh_public_key is None:
            raise InvalidRequestError(
                "TensorDock requires an SSH key for every VM: pass ssh_public_key",
                provider=self.name,
            )
        if request.disk_gb is not None and request.disk_gb < mapping.MIN_STORAGE_GB:
            raise InvalidRequestError(
                f"TensorDock VMs need at least {mapping.MIN_STORAGE_GB} GB of storage",
                provider=self.name,
            )
        self.translate_gpu_type(request.gpu_type)  # a GPU TensorDock never offers: fail now
        return check_public_key(self.name, request.ssh_public_key)

    def _runcmd(self, request: LaunchRequest) -> list[str] | None:
        """cloud-init ``runcmd`` that writes and runs our first-boot script (None without
        env or startup_script). Base64 keeps the script out of any shell quoting."""
        script = boot_script(self.name, script=request.startup_script, env=request.env)
        if script is None:
            return None
        encoded = base64.b64encode(script.encode()).decode()
        folder = BOOT_SCRIPT_PATH.rsplit("/", 1)[0]
        return [
            f"umask 077 && mkdir -p {folder} && printf '%s' '{encoded}' | base64 -d > "
            f"{BOOT_SCRIPT_PATH} && chmod 700 {BOOT_SCRIPT_PATH} && {BOOT_SCRIPT_PATH}"
        ]

    def _choose(
        self, request: LaunchRequest, offers: list[GPUOffer], names: dict[str, set[str]]
    ) -> GPUOffer:
        wanted = self.translate_region(request.region).lower() if request.region else None
        where = None
        if wanted is not None:
            where = {lid for lid, known in names.items() if wanted in known}
            if not where:
                raise InvalidRequestError(
                    f"TensorDock has no location named {request.region!r} (use a location id, "
                    "city, state/province or country)",
                    provider=self.name,
                )
        sized = [
            o
            for o in offers
            if o.gpu_type == request.gpu_type
            and o.gpu_count == request.gpu_count
            and (where is None or o.region in where)
        ]
        ready = [o for o in sized if o.available]
        if not ready:
            place = f"in {request.region}" if request.region else "in any location"
            raise CapacityError(
                f"no TensorDock location has {request.gpu_count}x {request.gpu_type} {place} "
                "right now",
                provider=self.name,
            )
        unknown = float("inf")
        return min(ready, key=lambda o: (o.hourly_price or unknown, o.region or ""))

    # -- flows ----------------------------------------------------------------------------

    def _flow_locations(self) -> Flow[list[Any]]:
        from ._generated.api.locations import list_locations

        answer: HTTPAnswer = yield Endpoint(module=list_locations, operation="list_locations")
        return list(answer.parsed.data.locations)

    def _flow_offers(self, filters: GPUFilters) -> Flow[list[GPUOffer]]:
        from ._generated.api.hostnodes import list_hostnodes

        locations = yield from self._flow_locations()
        answer: HTTPAnswer = yield Endpoint(module=list_hostnodes, operation="list_hostnodes")
        return mapping.location_offers(locations) + mapping.hostnode_offers(
            answer.parsed.data.hostnodes
        )

    def _flow_launch(self, request: LaunchRequest) -> Flow[GPUInstance]:
        from ._generated.api.instances import create_instance, get_instance
        from ._generated.models import (
            CloudInit,
            CreateAttributes,
            CreateAttributesType,
            CreateData,
            CreateDataType,
            CreateInstanceRequest,
            CreateResources,
            CreateResourcesGpus,
            GpuRequest,
        )

        ssh_key = self._check_launch(request)
        runcmd = self._runcmd(request)
        name = request.name or f"gpu-{uuid.uuid4().hex[:8]}"
        locations = yield from self._flow_locations()
        offers = mapping.location_offers(locations, storage_gb=request.disk_gb)
        offer = self._choose(request, offers, mapping.location_names(locations))
        # location_offers always sets the configuration it priced
        assert offer.vcpus is not None
        assert offer.ram_gb is not None
        assert offer.disk_gb is not None
        gpus = CreateResourcesGpus()
        gpus.additional_properties = {offer.provider_gpu_type: GpuRequest(count=offer.gpu_count)}
        attributes = CreateAttributes(
            name=name,
            type_=CreateAttributesType.VIRTUALMACHINE,
            image=request.image or DEFAULT_IMAGE,
            resources=CreateResources(
                vcpu_count=int(offer.vcpus),
                ram_gb=int(offer.ram_gb),
                storage_gb=int(offer.disk_gb),
                gpus=gpus,
            ),
            location_id=offer.region or "",
            use_dedicated_ip=True,
            ssh_key=ssh_key,
        )
        if runcmd is not None:
            attributes.cloud_init = CloudInit(runcmd=runcmd)
        body = CreateInstanceRequest(
            data=CreateData(type_=CreateDataType.VIRTUALMACHINE, attributes=attributes)
        )
        answer: HTTPAnswer = yield Endpoint(
            module=create_instance,
            operation="launch",
            arguments={"body": body},
            kind="launch",
            submits_work=True,
            created_id=json_at("data", "id"),
        )
        instance_id = answer.created_id
        if instance_id is None:
            raise UnexpectedResponseError(
                "launch: TensorDock's answer has no instance id", provider=self.name
            )
        yield Created(instance_id=instance_id)
        try:
            created = answer.parsed.data
            told = (
                mapping.text(created.name, "data.name", "launch"),
                mapping.text(created.status, "data.status", "launch"),
            )
        except (ProviderError, *MAPPING_ERRORS) as exc:
            # The VM exists and bills; only the rest of its answer is unreadable.
            logger.info("launch %s: the answer does not read (%s)", instance_id, exc)
            told = (None, None)
        pending = GPUInstance(
            provider=self.name,
            instance_id=instance_id,
            name=told[0] or name,
            state=InstanceState.PENDING,
            provider_state=told[1],
            gpu_type=offer.gpu_type,
            gpu_count=offer.gpu_count,
            region=offer.region,
            hourly_price=offer.hourly_price,
        )
        try:
            fetched: HTTPAnswer = yield Endpoint(
                module=get_instance, operation="get_instance", arguments={"id": instance_id}
            )
            fields = mapping.fields_of(fetched.parsed, instance_id, "get_instance")
        except ProviderError as exc:
            # The VM exists and bills whatever this read says: report it as pending.
            logger.info("launch %s: reading it back failed (%s)", instance_id, exc)
            return pending
        instance = mapping.instance_from(fields, region=offer.region)
        return instance.model_copy(
            update={
                "name": instance.name or pending.name,
                "gpu_type": instance.gpu_type or offer.gpu_type,
                "gpu_count": instance.gpu_count or offer.gpu_count,
                "hourly_price": instance.hourly_price
                if instance.hourly_price is not None
                else offer.hourly_price,
            }
        )

    def _flow_terminate(self, instance_id: str) -> Flow[None]:
        from ._generated.api.instances import delete_instance

        yield Endpoint(module=delete_instance, operation="terminate", arguments={"id": instance_id})

    def _flow_status(self, instance_id: str) -> Flow[InstanceStatus]:
        from ._generated.api.instances import get_instance

        answer: HTTPAnswer = yield Endpoint(
            module=get_instance, operation="get_instance", arguments={"id": instance_id}
        )
        return mapping.status_from(mapping.fields_of(answer.parsed, instance_id, "get_instance"))

    def _flow_list(self, name_prefix: str | None) -> Flow[list[GPUInstance]]:
        from ._generated.api.instances import list_instances

        answer: HTTPAnswer = yield Endpoint(module=list_instances, operation="list_instances")
        instances = [
            mapping.instance_from(mapping.fields_of(item, None, "list_instances"))
            for item in mapping.list_items(answer.parsed.data)
        ]
        if name_prefix:
            instances = [i for i in instances if (i.name or "").startswith(name_prefix)]
        return instances

    def _flow_power(self, instance_id: str, start: bool) -> Flow[InstanceStatus]:
        from ._generated.api.instances import start_instance, stop_instance

        check_id(self.name, instance_id)
        module, operation = (start_instance, "start") if start else (stop_instance, "stop")
        answer: HTTPAnswer = yield Endpoint(
            module=module, operation=operation, arguments={"id": instance_id}
        )
        return mapping.action_status(answer.parsed.data, instance_id, operation)


class TensorDockProvider(_TensorDockCore, OpenAPIProvider):
    """TensorDock v2, blocking. Create with ``create_provider("tensordock", api_key=...)``."""

    def start_instance(self, instance_id: str) -> InstanceStatus:
        """Start a stopped VM (its GPU may be gone if it was released on stop)."""
        return self._run(self._flow_power(instance_id, start=True))

    def stop_instance(self, instance_id: str) -> InstanceStatus:
        """Stop a VM (its storage is kept and still billed)."""
        return self._run(self._flow_power(instance_id, start=False))


class AsyncTensorDockProvider(_TensorDockCore, AsyncOpenAPIProvider):
    """TensorDock v2, async. Create with ``create_async_provider("tensordock", api_key=...)``."""

    async def start_instance(self, instance_id: str) -> InstanceStatus:
        """Start a stopped VM (its GPU may be gone if it was released on stop)."""
        return await self._run(self._flow_power(instance_id, start=True))

    async def stop_instance(self, instance_id: str) -> InstanceStatus:
        """Stop a VM (its storage is kept and still billed)."""
        return await self._run(self._flow_power(instance_id, start=False))
