"""Lambda Cloud client: flows over the generated OpenAPI client (gpu_providers/lambda_cloud/
_generated, made by ``python -m codegen lambda`` from specs/lambda/openapi.yaml)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from .._core import Created, Flow, ProviderCore, RateLimitSpec, check_id
from .._credentials import LAMBDA
from .._openapi import AsyncOpenAPIProvider, Endpoint, HTTPAnswer, OpenAPIProvider
from .._startup import boot_script
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

#: The login user of Lambda's Ubuntu-based images (Lambda docs: "ssh ubuntu@<instance IP>").
LOGIN_USER = "ubuntu"
logger = logging.getLogger("gpu_providers")
#: InstanceLaunchRequest.user_data "cannot exceed 1MB" (Lambda Cloud API 1.8.3); we count
#: 1 MB as 10**6 bytes of UTF-8 to stay on the safe side of either reading.
USER_DATA_MAX_BYTES = 1_000_000
#: The generic region names gpu_providers understands (ProviderCore.translate_region); those
#: Lambda has no region for are refused instead of being sent as a region code.
GENERIC_REGIONS = frozenset(
    {"us-east", "us-west", "us-south", "us-central", "eu-west", "eu-central", "europe", "asia",
     "australia"}
)  # fmt: skip
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


class _LambdaCore(ProviderCore):
    name = "lambda"
    display_name = "Lambda Cloud"
    default_base_url = "https://cloud.lambda.ai"
    docs_url = "https://cloud.lambda.ai/api/v1/docs"
    credentials = LAMBDA
    extra = "lambda"
    generated_package = "gpu_providers.lambda_cloud._generated"
    features = frozenset(
        {
            ProviderFeature.RESTART,
            ProviderFeature.SSH_KEY_MANAGEMENT,
            ProviderFeature.FILE_SYSTEMS,
            ProviderFeature.INSTANCE_TAGS,
            ProviderFeature.CUSTOM_IMAGES,
            ProviderFeature.PRICES_BEFORE_LAUNCH,
            ProviderFeature.CAPACITY_BY_REGION,
            # cloud-init user_data: the script, and env written to /etc/environment by it
            ProviderFeature.STARTUP_SCRIPT,
            ProviderFeature.ENVIRONMENT,
            # an extra key, installed by the same first-boot script (one registered key is
            # still required by the launch API)
            ProviderFeature.SSH_PUBLIC_KEY,
            ProviderFeature.LABELS,  # as Lambda tags
        }
    )
    label_transport = LabelTransport.TAGS
    rate_limit = RateLimitSpec(
        requests_per_second=1.0,
        launch_min_interval=12.0,
        documented=True,
        source="Lambda Cloud API 1.8.3: about 1 request/s; launch 1 per 12 s",
    )
    known_regions = (
        "us-east-1", "us-east-2", "us-east-3", "us-west-1", "us-west-2", "us-west-3",
        "us-south-1", "us-south-2", "us-south-3", "us-midwest-1", "us-midwest-2",
        "europe-central-1", "asia-south-1", "asia-northeast-1", "asia-northeast-2",
        "australia-east-1", "me-west-1",
    )  # fmt: skip
    region_aliases: ClassVar[Mapping[str, str]] = {
        "us-east": "us-east-1",
        "us-west": "us-west-1",
        "us-south": "us-south-1",
        "us-central": "us-midwest-1",
        "eu-central": "europe-central-1",
        "europe": "europe-central-1",
        "asia": "asia-northeast-1",
        "australia": "australia-east-1",
    }
    notes = (
        "No spot capacity and no stop/start: instances run (and bill) until terminated.",
        "startup_script and env travel as cloud-init user_data (at most 1 MB); env is "
        "appended to /etc/environment, which every user on the instance can read.",
    )

    def _provider_gpu_name(self, spec: GPUSpec) -> str | None:
        return spec.lambda_cloud

    def _error_from_body(self, status_code: int, body: Any, operation: str) -> ProviderError:
        return mapping.classify(status_code, body, operation)

    def translate_region(self, standard: str) -> str:
        """A generic region (``us-east``) or a Lambda region code -> the Lambda code that
        offers (``GPUOffer.region``) and launches use; a generic region Lambda has no
        region in is refused."""
        code = super().translate_region(standard)
        if code.lower() in GENERIC_REGIONS:
            raise InvalidRequestError(
                f"Lambda has no region in {code}; generic regions it serves: "
                f"{', '.join(sorted(self.region_aliases))}",
                provider=self.name,
            )
        return code

    def _user_data(self, request: LaunchRequest) -> str | None:
        """cloud-init user data for ``startup_script``, ``env`` and ``ssh_public_key`` (None
        without any).

        Lambda has no environment field and takes only registered keys, so ``env`` goes into
        /etc/environment and an extra public key into the login user's authorized_keys
        through the same first-boot script (gpu_providers/_startup.py); a script alone is
        sent as it is (with ``#!/bin/bash`` added when it has no ``#!`` line).
        """
        user_data = boot_script(
            self.name,
            script=request.startup_script,
            env=request.env,
            public_key=request.ssh_public_key,
            user=LOGIN_USER if request.ssh_public_key else None,
        )
        if user_data is not None and len(user_data.encode()) > USER_DATA_MAX_BYTES:
            raise InvalidRequestError(
                "startup_script and env make a cloud-init user_data larger than Lambda's 1 MB",
                provider=self.name,
            )
        return user_data

    # -- flows ----------------------------------------------------------------------------

    def _flow_offers(self, filters: GPUFilters) -> Flow[list[GPUOffer]]:
        from ._generated.api.instances import list_instance_types

        answer: HTTPAnswer = yield Endpoint(
            module=list_instance_types, operation="list_instance_types"
        )
        return mapping.offers_from_types(answer.parsed.data.additional_properties.values())

    def _choose_offer(self, request: LaunchRequest, offers: list[GPUOffer]) -> GPUOffer:
        region = self.translate_region(request.region) if request.region else None
        sized = [
            o for o in offers if o.gpu_type == request.gpu_type and o.gpu_count == request.gpu_count
        ]
        if not sized:
            raise InvalidRequestError(
                f"Lambda has no instance type with {request.gpu_count}x {request.gpu_type}",
                provider=self.name,
            )
        ready = [o for o in sized if o.available and (region is None or o.region == region)]
        if not ready:
            where = f"in {region}" if region else "in any region"
            raise CapacityError(
                f"no capacity for {request.gpu_count}x {request.gpu_type} {where} right now",
                provider=self.name,
            )
        return min(ready, key=lambda o: (o.hourly_price or 0, o.region or ""))

    def _flow_launch(self, request: LaunchRequest) -> Flow[GPUInstance]:
        from ._generated.api.instances import get_instance, launch_instance
        from ._generated.models import (
            ImageSpecificationFamily,
            ImageSpecificationID,
            InstanceLaunchRequest,
            RequestedTagEntry,
        )

        self.translate_gpu_type(request.gpu_type)  # a GPU Lambda never offers: fail now
        if request.spot or request.bid_price is not None:
            raise UnsupportedFeatureError("Lambda has no spot instances", provider=self.name)
        mapping.check_tags(request.labels)
        self._unsupported(request, min_cuda_version=request.min_cuda_version is not None)
        user_data = self._user_data(request)
        if request.disk_gb is not None:
            raise UnsupportedFeatureError(
                "Lambda instance types have a fixed disk; leave disk_gb unset", provider=self.name
            )
        if len(request.ssh_key_names) != 1:
            raise InvalidRequestError(
                "Lambda launches need exactly one registered SSH key: ssh_key_names=['name'] "
                "(register a public key first with add_ssh_key; ssh_public_key adds another "
                "at first boot)",
                provider=self.name,
            )
        offers = yield from self._flow_offers(GPUFilters())
        offer = self._choose_offer(request, offers)
        assert offer.region is not None  # available offers always have a region
        body = InstanceLaunchRequest(
            region_name=offer.region,
            instance_type_name=offer.offer_id,
            ssh_key_names=list(request.ssh_key_names),
        )
        if request.name:
            body.name = request.name
        if request.image:
            image_id = _UUID.match(request.image)
            body.image = (
                ImageSpecificationID(id=request.image)
                if image_id
                else ImageSpecificationFamily(family=request.image)
            )
        if request.labels:
            body.tags = [RequestedTagEntry(key=k, value=v) for k, v in request.labels.items()]
        if request.file_systems:
            body.file_system_names = list(request.file_systems)
        if user_data is not None:
            body.user_data = user_data
        answer: HTTPAnswer = yield Endpoint(
            module=launch_instance,
            operation="launch",
            arguments={"body": body},
            kind="launch",
            submits_work=True,
            created_id=mapping.created_id,
        )
        # The id from the raw answer (whatever else it holds): the read-back does the rest.
        instance_id = answer.created_id
        if instance_id is None:
            raise UnexpectedResponseError(
                "launch: Lambda's answer has no usable instance_ids (one id expected)",
                provider=self.name,
            )
        yield Created(instance_id=instance_id)
        try:
            fetched: HTTPAnswer = yield Endpoint(
                module=get_instance, operation="get_instance", arguments={"id": instance_id}
            )
        except ProviderError as exc:
            # The instance exists and bills whatever this read says (not visible yet, 503,
            # rate limited): report it as pending rather than fail the launch.
            logger.info("launch %s: reading it back failed (%s)", instance_id, exc)
            return GPUInstance(
                provider=self.name,
                instance_id=instance_id,
                name=request.name,
                state=InstanceState.PENDING,
                gpu_type=offer.gpu_type,
                gpu_count=offer.gpu_count,
                region=offer.region,
                hourly_price=offer.hourly_price,
                labels=dict(request.labels),
            )
        return mapping.instance_from_api(fetched.parsed.data)

    def _flow_terminate(self, instance_id: str) -> Flow[None]:
        from ._generated.api.instances import terminate_instance
        from ._generated.models import InstanceTerminateRequest

        body = InstanceTerminateRequest(instance_ids=[instance_id])
        yield Endpoint(module=terminate_instance, operation="terminate", arguments={"body": body})

    def _flow_status(self, instance_id: str) -> Flow[InstanceStatus]:
        from ._generated.api.instances import get_instance

        answer: HTTPAnswer = yield Endpoint(
            module=get_instance, operation="get_instance", arguments={"id": instance_id}
        )
        return mapping.status_from_api(answer.parsed.data)

    def _flow_list(self, name_prefix: str | None) -> Flow[list[GPUInstance]]:
        from ._generated.api.instances import list_instances

        answer: HTTPAnswer = yield Endpoint(module=list_instances, operation="list_instances")
        instances = [mapping.instance_from_api(i) for i in answer.parsed.data]
        if name_prefix:
            instances = [i for i in instances if (i.name or "").startswith(name_prefix)]
        return instances

    def _flow_restart(self, instance_id: str) -> Flow[GPUInstance]:
        from ._generated.api.instances import restart_instance
        from ._generated.models import InstanceRestartRequest

        check_id(self.name, instance_id)
        body = InstanceRestartRequest(instance_ids=[instance_id])
        answer: HTTPAnswer = yield Endpoint(
            module=restart_instance, operation="restart", arguments={"body": body}
        )
        restarted = answer.parsed.data.restarted_instances
        return mapping.instance_from_api(restarted[0])

    def _flow_list_ssh_keys(self) -> Flow[list[mapping.SSHKey]]:
        from ._generated.api.ssh_keys import list_ssh_keys

        answer: HTTPAnswer = yield Endpoint(module=list_ssh_keys, operation="list_ssh_keys")
        return [
            mapping.SSHKey(id=k.id, name=k.name, public_key=k.public_key)
            for k in answer.parsed.data
        ]

    def _flow_add_ssh_key(self, name: str, public_key: str) -> Flow[mapping.SSHKey]:
        from ._generated.api.ssh_keys import add_ssh_key
        from ._generated.models import AddSSHKeyRequest

        if not name.strip() or not public_key.strip():
            raise InvalidRequestError("name and public_key are required", provider=self.name)
        body = AddSSHKeyRequest(name=name, public_key=public_key)
        answer: HTTPAnswer = yield Endpoint(
            module=add_ssh_key, operation="add_ssh_key", arguments={"body": body}
        )
        key = answer.parsed.data
        return mapping.SSHKey(id=key.id, name=key.name, public_key=key.public_key)

    def _flow_delete_ssh_key(self, key_id: str) -> Flow[None]:
        from ._generated.api.ssh_keys import delete_ssh_key

        check_id(self.name, key_id)
        yield Endpoint(module=delete_ssh_key, operation="delete_ssh_key", arguments={"id": key_id})


class LambdaProvider(_LambdaCore, OpenAPIProvider):
    """Lambda Cloud, blocking. Create with ``create_provider("lambda", api_key=...)``."""

    def restart_instance(self, instance_id: str) -> GPUInstance:
        """Restart an instance (Lambda has no stop/start)."""
        return self._run(self._flow_restart(instance_id))

    def list_ssh_keys(self) -> list[mapping.SSHKey]:
        """SSH keys registered with the account."""
        return self._run(self._flow_list_ssh_keys())

    def add_ssh_key(self, name: str, public_key: str) -> mapping.SSHKey:
        """Register a public key under ``name``."""
        return self._run(self._flow_add_ssh_key(name, public_key))

    def delete_ssh_key(self, key_id: str) -> None:
        """Delete a registered SSH key."""
        self._run(self._flow_delete_ssh_key(key_id))


class AsyncLambdaProvider(_LambdaCore, AsyncOpenAPIProvider):
    """Lambda Cloud, async. Create with ``create_async_provider("lambda", api_key=...)``."""

    async def restart_instance(self, instance_id: str) -> GPUInstance:
        """Restart an instance (Lambda has no stop/start)."""
        return await self._run(self._flow_restart(instance_id))

    async def list_ssh_keys(self) -> list[mapping.SSHKey]:
        """SSH keys registered with the account."""
        return await self._run(self._flow_list_ssh_keys())

    async def add_ssh_key(self, name: str, public_key: str) -> mapping.SSHKey:
        """Register a public key under ``name``."""
        return await self._run(self._flow_add_ssh_key(name, public_key))

    async def delete_ssh_key(self, key_id: str) -> None:
        """Delete a registered SSH key."""
        await self._run(self._flow_delete_ssh_key(key_id))
