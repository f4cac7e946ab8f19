"""Paperspace client: flows over the generated OpenAPI client (gpu_providers/paperspace/
_generated, made by ``python -m codegen paperspace`` from specs/paperspace/openapi.yaml)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from .._core import MAPPING_ERRORS, Created, Flow, ProviderCore, RateLimitSpec, check_id
from .._credentials import PAPERSPACE
from .._openapi import AsyncOpenAPIProvider, Endpoint, HTTPAnswer, OpenAPIProvider, json_at
from .._startup import boot_script
from ..errors import (
    CapacityError,
    InvalidRequestError,
    ProviderError,
    UnexpectedResponseError,
    UnsupportedFeatureError,
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

DEFAULT_DISK_GB = 100  # one of the sizes Paperspace lists; LaunchRequest.disk_gb overrides it
REGIONS = ("ny2", "ca1", "ams1")
#: The login user of Paperspace's Linux templates: SkyPilot appends its key to
#: /home/paperspace/.ssh/authorized_keys in a startup script (sky/provision/paperspace/
#: utils.py @ 005261080a6b8102f3d95ff2147a855250f40272, set_sky_key_script).
DEFAULT_USER = "paperspace"
#: Machine types created with ``enableNvlink: true``: SkyPilot's NVLINK_INSTANCES
#: (sky/provision/paperspace/constants.py @ a6558be6381fafa2dd2ba8ef12248e8257b24066).
NVLINK_MACHINE_TYPES = frozenset({"H100x8", "A100-80Gx8"})
#: Prefix of the startup scripts launches create (one per launch, named after the machine).
SCRIPT_PREFIX = "gpu-providers-"
#: The generic region names gpu_providers understands; those Paperspace has no region in
#: are refused instead of being sent as a region code.
GENERIC_REGIONS = frozenset(
    {"us-east", "us-west", "us-south", "us-central", "eu-west", "eu-central", "europe", "asia",
     "australia"}
)  # fmt: skip


class _PaperspaceCore(ProviderCore):
    name = "paperspace"
    display_name = "Paperspace"
    default_base_url = "https://api.paperspace.com/v1"
    docs_url = "https://docs.digitalocean.com/products/paperspace"
    credentials = PAPERSPACE
    extra = "paperspace"
    generated_package = "gpu_providers.paperspace._generated"
    features = frozenset(
        {
            ProviderFeature.STOP_START,
            ProviderFeature.IDLE_DETECTION,
            ProviderFeature.CUSTOM_IMAGES,
            ProviderFeature.CAPACITY_BY_REGION,
            # one startup script per launch (startupScripts-create + startupScriptId)
            ProviderFeature.STARTUP_SCRIPT,
            ProviderFeature.ENVIRONMENT,
            ProviderFeature.SSH_PUBLIC_KEY,
            ProviderFeature.LABELS,  # in the machine name
        }
    )
    #: Machines take no tags: labels are encoded in the machine name (gpu_providers.labels).
    label_transport = LabelTransport.NAME
    rate_limit = RateLimitSpec(
        requests_per_second=2.0,
        burst=2,
        source="Paperspace documents no limits; 2 requests/s is our own polite default",
    )
    known_regions = REGIONS
    region_aliases: ClassVar[Mapping[str, str]] = {
        "us-east": "ny2",
        "us-west": "ca1",
        "eu-west": "ams1",
        "europe": "ams1",
    }
    notes = (
        "The API exposes no price list: offers carry no price, and a machine's usage rate is "
        "known only after it is created (GPUInstance.hourly_price).",
        "Machines take no tags: labels are encoded in the machine name "
        "(gpu_providers.labels). ssh_public_key, env and startup_script travel in a startup "
        "script created for the launch (gpu-providers-<machine name>); it stays in the team's "
        "account after a successful launch (the machine runs it at first boot); env is "
        "appended to /etc/environment, which every user on the machine can read.",
        "No spot machines: nothing is ever preempted.",
    )

    def _provider_gpu_name(self, spec: GPUSpec) -> str | None:
        return spec.paperspace

    def _error_from_body(self, status_code: int, body: Any, operation: str) -> ProviderError:
        return mapping.classify(status_code, body, operation)

    def translate_region(self, standard: str) -> str:
        """A generic region (``us-east``) or a Paperspace region code (``ny2``) -> the code
        launches and ``is_available`` use; a generic region Paperspace has no region in is
        refused."""
        code = super().translate_region(standard)
        if code.lower() in GENERIC_REGIONS:
            raise InvalidRequestError(
                f"Paperspace has no region in {code}; generic regions it serves: "
                f"{', '.join(sorted(self.region_aliases))}",
                provider=self.name,
            )
        return code

    # -- flows ----------------------------------------------------------------------------

    def _flow_pages(self, module: Any, operation: str) -> Flow[list[Any]]:
        """Every item of a paginated list (``hasMore`` / ``nextPage`` / ``after``)."""
        items: list[Any] = []
        seen: set[str] = set()
        after: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": 120}
            if after:
                kwargs["after"] = after
            answer: HTTPAnswer = yield Endpoint(
                module=module, operation=operation, arguments=kwargs
            )
            items.extend(answer.parsed.items)
            after = answer.parsed.next_page or None
            if not answer.parsed.has_more or not after:
                return items
            if after in seen:
                raise UnexpectedResponseError(
                    f"{operation}: the API repeated a page cursor", provider=self.name
                )
            seen.add(after)

    def _flow_templates(self) -> Flow[list[Any]]:
        from ._generated.api.os_templates import os_templates_list

        templates = yield from self._flow_pages(os_templates_list, "list_os_templates")
        return templates

    def _flow_offers(self, filters: GPUFilters) -> Flow[list[GPUOffer]]:
        templates = yield from self._flow_templates()
        return mapping.offers_from_templates(templates)

    def _flow_available_in(self, label: str, region: str) -> Flow[bool]:
        from ._generated.api.machine_availability import machine_availability_list

        answer: HTTPAnswer = yield Endpoint(
            module=machine_availability_list,
            operation="machine_availability",
            arguments={"machine_type": label, "region": region},
        )
        return bool(answer.parsed.available)

    def _label(self, gpu_type: str, gpu_count: int) -> str:
        if isinstance(gpu_count, bool) or not isinstance(gpu_count, int) or gpu_count < 1:
            raise InvalidRequestError("gpu_count must be 1 or more", provider=self.name)
        try:
            spec = gpu_spec(gpu_type)
        except ValueError as exc:
            raise InvalidRequestError(str(exc), provider=self.name) from None
        label = mapping.machine_type(spec, gpu_count)
        if label is None:
            raise InvalidRequestError(f"Paperspace does not offer {gpu_type}", provider=self.name)
        return label

    def _flow_is_available(self, gpu_type: str, gpu_count: int, region: str) -> Flow[bool]:
        label = self._label(gpu_type, gpu_count)
        available = yield from self._flow_available_in(label, self.translate_region(region))
        return available

    def _flow_pick_template(self, label: str) -> Flow[str]:
        templates = yield from self._flow_templates()
        usable = [
            t
            for t in templates
            if any(
                m.machine_type_label == label and m.is_available for m in t.available_machine_types
            )
        ]
        if not usable:
            raise CapacityError(f"no OS template offers {label} right now", provider=self.name)

        def rank(template: Any) -> tuple[int, str]:
            name = template.name.lower()
            return (0 if "ml-in-a-box" in name else 1 if "ubuntu" in name else 2, template.name)

        return str(min(usable, key=rank).id)

    def _flow_launch(self, request: LaunchRequest) -> Flow[GPUInstance]:
        from ._generated.api.machine import machines_create
        from ._generated.models import MachineCreateRequest, MachineCreateRequestPublicIpType

        if request.spot or request.bid_price is not None:
            raise UnsupportedFeatureError("Paperspace has no spot machines", provider=self.name)
        self._unsupported(
            request,
            file_systems=bool(request.file_systems),
            min_cuda_version=request.min_cuda_version is not None,
        )
        if request.ssh_key_names:
            raise UnsupportedFeatureError(
                "Paperspace has no named SSH keys at creation; pass ssh_public_key instead",
                provider=self.name,
            )
        label = self._label(request.gpu_type, request.gpu_count)
        script = boot_script(
            self.name,
            script=request.startup_script,
            env=request.env,
            public_key=request.ssh_public_key,
            user=DEFAULT_USER,
        )
        if request.region:
            region = self.translate_region(request.region)
        else:
            region = ""
            for candidate in REGIONS:
                if (yield from self._flow_available_in(label, candidate)):
                    region = candidate
                    break
            if not region:
                raise CapacityError(f"no region has {label} available now", provider=self.name)
        template = request.image or (yield from self._flow_pick_template(label))
        body = MachineCreateRequest(
            name=request.name or f"gpu-{uuid.uuid4().hex[:8]}",
            machine_type=label,
            template_id=template,
            disk_size=request.disk_gb or DEFAULT_DISK_GB,
            region=region,
            # A public address, so the machine is reachable over SSH (SkyPilot does the same).
            public_ip_type=MachineCreateRequestPublicIpType.DYNAMIC,
            start_on_create=True,
        )
        if label in NVLINK_MACHINE_TYPES:
            body.enable_nvlink = True
        script_id: str | None = None
        if script is not None:
            script_id = yield from self._flow_create_script(SCRIPT_PREFIX + body.name, script)
            body.startup_script_id = script_id
        try:
            answer: HTTPAnswer = yield Endpoint(
                module=machines_create,
                operation="launch",
                arguments={"body": body},
                kind="launch",
                submits_work=True,
                created_id=json_at("data", "id"),
            )
        except ProviderError as exc:
            if script_id is not None:
                yield from self._flow_discard_script(script_id, exc)
            raise
        except GeneratorExit:  # cancelled: no effect can run any more, say what is left
            if script_id is not None:
                logger.warning(
                    "launch cancelled; its startup script %s may be left in the account",
                    script_id,
                    extra={"startup_script_id": script_id},
                )
            raise
        machine_id = answer.created_id
        if machine_id is None:
            raise UnexpectedResponseError(
                "launch: Paperspace's answer names no machine id", provider=self.name
            )
        yield Created(instance_id=machine_id)
        try:
            return mapping.instance_from_api(answer.parsed.data)
        except (ProviderError, *MAPPING_ERRORS) as exc:
            # The machine exists and bills; only the rest of its answer is unreadable.
            logger.info("launch %s: the answer does not read as a Machine (%s)", machine_id, exc)
            return GPUInstance(
                provider=self.name,
                instance_id=machine_id,
                name=body.name,
                state=InstanceState.PENDING,
                gpu_type=gpu_spec(request.gpu_type).name,
                gpu_count=request.gpu_count,
                region=region,
            )

    def _flow_create_script(self, name: str, script: str) -> Flow[str]:
        """A run-once startup script for one launch; its id."""
        from ._generated.api.startup_scripts import startup_scripts_create
        from ._generated.models import StartupScriptCreateRequest

        answer: HTTPAnswer = yield Endpoint(
            module=startup_scripts_create,
            operation="create_startup_script",
            arguments={
                "body": StartupScriptCreateRequest(name=name, script=script, is_run_once=True)
            },
        )
        return str(answer.parsed.id)

    def _flow_discard_script(self, script_id: str, cause: ProviderError) -> Flow[None]:
        """After a failed machine create: delete its startup script unless the machine may
        exist anyway (then it may still need the script at first boot). A failure here is
        logged and never replaces ``cause``."""
        from ._generated.api.startup_scripts import startup_scripts_delete

        if cause.maybe_submitted:
            logger.warning(
                "launch may have created a machine; its startup script %s is kept",
                script_id,
                extra={"startup_script_id": script_id},
            )
            return
        try:
            yield Endpoint(
                module=startup_scripts_delete,
                operation="delete_startup_script",
                arguments={"id": script_id},
            )
        except ProviderError as exc:
            logger.warning(
                "launch failed (%s); deleting its startup script %s failed too (%s): delete it "
                "in the Paperspace console",
                type(cause).__name__,
                script_id,
                type(exc).__name__,
                extra={"startup_script_id": script_id},
            )

    def _flow_terminate(self, instance_id: str) -> Flow[None]:
        from ._generated.api.machine import machines_delete

        yield Endpoint(module=machines_delete, operation="terminate", arguments={"id": instance_id})

    def _flow_get(self, instance_id: str) -> Flow[Any]:
        from ._generated.api.machine import machines_get

        answer: HTTPAnswer = yield Endpoint(
            module=machines_get, operation="get_machine", arguments={"id": instance_id}
        )
        return answer.parsed

    def _flow_status(self, instance_id: str) -> Flow[InstanceStatus]:
        machine = yield from self._flow_get(instance_id)
        return mapping.status_from_api(machine)

    def _flow_list(self, name_prefix: str | None) -> Flow[list[GPUInstance]]:
        from ._generated.api.machine import machines_list

        machines = yield from self._flow_pages(machines_list, "list_machines")
        instances = [mapping.instance_from_api(m) for m in machines]
        if name_prefix:
            instances = [i for i in instances if (i.name or "").startswith(name_prefix)]
        return instances

    def _flow_power(self, instance_id: str, start: bool) -> Flow[GPUInstance]:
        from ._generated.api.machine import machines_start, machines_stop

        check_id(self.name, instance_id)
        module, operation = (machines_start, "start") if start else (machines_stop, "stop")
        answer: HTTPAnswer = yield Endpoint(
            module=module, operation=operation, arguments={"id": instance_id}
        )
        return mapping.instance_from_api(answer.parsed.data)


class PaperspaceProvider(_PaperspaceCore, OpenAPIProvider):
    """Paperspace, blocking. Create with ``create_provider("paperspace", api_key=...)``."""

    def start_instance(self, instance_id: str) -> GPUInstance:
        """Start a stopped machine."""
        return self._run(self._flow_power(instance_id, start=True))

    def stop_instance(self, instance_id: str) -> GPUInstance:
        """Stop a machine (its disk is kept and still billed)."""
        return self._run(self._flow_power(instance_id, start=False))

    def is_available(self, gpu_type: str, gpu_count: int, region: str) -> bool:
        """Whether Paperspace can create that machine type in ``region`` now."""
        return self._run(self._flow_is_available(gpu_type, gpu_count, region))


class AsyncPaperspaceProvider(_PaperspaceCore, AsyncOpenAPIProvider):
    """Paperspace, async. Create with ``create_async_provider("paperspace", api_key=...)``."""

    async def start_instance(self, instance_id: str) -> GPUInstance:
        """Start a stopped machine."""
        return await self._run(self._flow_power(instance_id, start=True))

    async def stop_instance(self, instance_id: str) -> GPUInstance:
        """Stop a machine (its disk is kept and still billed)."""
        return await self._run(self._flow_power(instance_id, start=False))

    async def is_available(self, gpu_type: str, gpu_count: int, region: str) -> bool:
        """Whether Paperspace can create that machine type in ``region`` now."""
        return await self._run(self._flow_is_available(gpu_type, gpu_count, region))
