"""Vast.ai client: flows over the generated OpenAPI client (gpu_providers/vastai/_generated,
made by ``python -m codegen vastai`` from specs/vastai/openapi.yaml).

Vast.ai is a marketplace: an *offer* (ask) is one host's GPUs at a price, and a launch rents
one offer (``PUT /asks/{offer id}/``). Offer search works without a key; everything else
needs one, sent only as ``Authorization: Bearer`` (never the legacy ``api_key`` query).
"""

from __future__ import annotations

import base64
import gzip
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from .._core import MAPPING_ERRORS, Created, Flow, ProviderCore, RateLimitSpec, check_id
from .._credentials import VASTAI
from .._openapi import AsyncOpenAPIProvider, Endpoint, HTTPAnswer, OpenAPIProvider
from .._startup import check_env, shell_script
from ..errors import (
    CapacityError,
    InstanceNotFoundError,
    InvalidRequestError,
    MissingCredentialsError,
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

#: The image createInstance defaults to (the spec's `image` default).
DEFAULT_IMAGE = "vastai/base-image:@vastai-automatic-tag"
#: Disk in GB when the request names none (the vendor CLI's `--disk` default); offers are
#: priced for this much storage.
DEFAULT_DISK_GB = 10
#: createInstance `onstart` is at most 4048 characters (the spec's "Key Quirks").
ONSTART_MAX = 4048
#: Where the startup script is unpacked in the container (root only).
SCRIPT_PATH = "/root/.gpu-providers/startup.sh"
#: Pages of showInstances (25 each) before we stop trusting the cursor.
MAX_PAGES = 400
US_ALIASES = ("us", "us-east", "us-west", "us-central", "us-south")


def onstart_command(script: str) -> str:
    """The caller's script as an ``onstart`` command: gzip + base64 (the spec's advice for
    long scripts), unpacked to a root-only file and run with its own ``#!`` line."""
    packed = base64.b64encode(
        gzip.compress(shell_script(mapping.PROVIDER, script).encode(), mtime=0)
    )
    folder = SCRIPT_PATH.rsplit("/", 1)[0]
    command = (
        f"mkdir -p -m 700 {folder} && echo {packed.decode()} | base64 -d | gunzip > "
        f"{SCRIPT_PATH} && chmod 700 {SCRIPT_PATH} && {SCRIPT_PATH}"
    )
    if len(command) > ONSTART_MAX:
        raise InvalidRequestError(
            f"startup_script is too long for Vast.ai: compressed it needs {len(command)} of "
            f"the {ONSTART_MAX} characters onstart allows",
            provider=mapping.PROVIDER,
        )
    return command


class _VastCore(ProviderCore):
    name = "vastai"
    display_name = "Vast.ai"
    default_base_url = "https://console.vast.ai"
    docs_url = "https://docs.vast.ai/api-reference"
    credentials = VASTAI
    extra = "vastai"
    generated_package = "gpu_providers.vastai._generated"
    features = frozenset(
        {
            ProviderFeature.SPOT_INSTANCES,
            ProviderFeature.STOP_START,
            ProviderFeature.CUSTOM_IMAGES,
            ProviderFeature.PRICES_BEFORE_LAUNCH,
            ProviderFeature.STARTUP_SCRIPT,
            ProviderFeature.ENVIRONMENT,
            ProviderFeature.LABELS,  # in the instance label, Vast.ai's free-text name
            ProviderFeature.PUBLIC_CATALOG,  # offer search: anonymous=True
        }
    )
    # Vast.ai's `label` is one free-text string (at most 1024 characters), the instance's
    # name here: no key=value tags, so labels are encoded in it like a name.
    label_transport = LabelTransport.NAME
    keyless_operations = frozenset({"search_offers"})  # POST /api/v0/bundles/ needs no key
    # Limits are per endpoint, a minimum interval between calls (429 examples of the spec:
    # create 4.5, show 2.0, destroy 3.0, list 1.0), and 429s carry no Retry-After.
    rate_limit = RateLimitSpec(
        requests_per_second=0.5,
        burst=2,
        launch_min_interval=4.5,
        source="Vast.ai documents per-endpoint minimum intervals (its 429 answers: create "
        "4.5 s, show 2 s, destroy 3 s, list 1 s) and sends no Retry-After; ours is one "
        "request per 2 s with a burst of 2, and one launch per 4.5 s",
    )
    region_aliases: ClassVar[Mapping[str, str]] = dict.fromkeys(US_ALIASES, "US")
    notes = (
        "A marketplace: each offer is one host's GPUs. Prices are compute (dph_base on "
        "demand, min_bid interruptible) plus storage for the disk asked for "
        f"(default {DEFAULT_DISK_GB} GB); bandwidth is billed per GB "
        "(GPUOffer.upload_price_per_gb / download_price_per_gb).",
        "Offer search works without an API key (anonymous=True); launching and everything "
        "else needs one.",
        "Labels are encoded in the instance label (Vast.ai's name; at most 1024 characters, "
        "which every encoding fits); label_instance replaces it, labels included.",
        "Regions are country codes (US, DE, ...). Offers come from verified hosts unless "
        "GPUFilters(verified_only=False).",
        "SSH goes through Vast.ai's proxy as root: GPUInstance.public_ip is the proxy host "
        "(sshN.vast.ai) and ssh_port its port; the account's registered SSH keys are "
        "installed.",
        "Instances that are exited, unknown or offline never run again (FAILED): destroy "
        "them. An interruptible instance stopped while meant to run was outbid (PREEMPTED).",
    )

    def _require_key(self) -> None:
        """An anonymous client refuses what needs a key before anything is sent (a launch
        would otherwise search offers first)."""
        if self._anonymous:
            raise MissingCredentialsError(
                f"{self.display_name} needs an API key for this: pass api_key=... or set "
                f"{self.credentials.env_var} (this client was created with anonymous=True; "
                "only offer search works without one)",
                provider=self.name,
            )

    # -- static facts -------------------------------------------------------------------------

    def _provider_gpu_name(self, spec: GPUSpec) -> str | None:
        names = mapping.vast_names(spec.name)
        return names[0] if names else None

    def translate_region(self, standard: str) -> str:
        """A country code (``US``, ``DE``) or ``us-east``/``us-west``/... (``US``)."""
        code = super().translate_region(standard)
        if len(code) == 2 and code.isalpha():
            return code.upper()
        raise InvalidRequestError(
            f"Vast.ai regions are two-letter country codes (US, DE, ...), not {standard!r}",
            provider=self.name,
        )

    def _error_from_body(self, status_code: int, body: Any, operation: str) -> ProviderError:
        error = mapping.classify(status_code, body, operation)
        created = mapping.created_id(None, body) if operation == "launch" else None
        if created is not None:
            # Vast.ai can refuse a create AND make the instance (stopped, e.g. a bid below
            # the host's minimum; dstack destroys it): it exists and bills.
            self._maybe_submitted(error, created)
        return error

    def _instance_id(self, instance_id: str) -> int:
        check_id(self.name, instance_id)
        if not instance_id.strip().isdigit():
            raise InvalidRequestError(
                f"Vast.ai instance ids are numbers, not {instance_id!r}", provider=self.name
            )
        return int(instance_id)

    # -- offers -------------------------------------------------------------------------------

    def _flow_search(
        self,
        filters: GPUFilters,
        *,
        spot: bool,
        disk_gb: float,
        min_cuda: str | None = None,
        gpu_count: int | None = None,
    ) -> Flow[list[GPUOffer]]:
        from ._generated.api.search import search_offers
        from ._generated.models import OfferQuery

        regions = [self.translate_region(r) for r in filters.regions or []]
        query = mapping.search_query(
            filters,
            spot=spot,
            disk_gb=disk_gb,
            regions=regions,
            min_cuda=min_cuda,
            gpu_count=gpu_count,
        )
        if query.get("gpu_name") == {"in": []}:
            return []  # none of the GPU types exists at Vast.ai
        answer: HTTPAnswer = yield Endpoint(
            module=search_offers,
            operation="search_offers",
            arguments={"body": OfferQuery.from_dict(query)},
        )
        items = [item.additional_properties for item in answer.parsed.offers]
        return mapping.offers_from_api(items, spot=spot, disk_gb=disk_gb)

    def _flow_available(self, filters: GPUFilters | None) -> Flow[list[GPUOffer]]:
        # Regions as country codes on both sides: the query and the local filter.
        if filters is not None and filters.regions:
            codes = [self.translate_region(r) for r in filters.regions]
            filters = filters.model_copy(update={"regions": codes})
        offers = yield from super()._flow_available(filters)
        return offers

    def _flow_offers(self, filters: GPUFilters) -> Flow[list[GPUOffer]]:
        kinds = [False, True] if filters.spot is None else [filters.spot]
        offers: list[GPUOffer] = []
        for spot in kinds:
            offers += yield from self._flow_search(filters, spot=spot, disk_gb=DEFAULT_DISK_GB)
        return offers

    # -- launch -------------------------------------------------------------------------------

    def _check_launch(self, request: LaunchRequest) -> None:
        """Everything a launch can refuse before any request."""
        self.translate_gpu_type(request.gpu_type)
        self._unsupported(request, file_systems=bool(request.file_systems))
        if request.ssh_key_names or request.ssh_public_key:
            raise UnsupportedFeatureError(
                "Vast.ai installs every SSH key registered with the account (vastai create "
                "ssh-key); leave ssh_key_names and ssh_public_key unset",
                provider=self.name,
            )
        check_env(self.name, request.env)
        if request.region:
            self.translate_region(request.region)

    def _choose(self, request: LaunchRequest, offers: list[GPUOffer]) -> GPUOffer:
        usable = [o for o in offers if o.available and o.hourly_price is not None]
        if request.spot and request.bid_price is not None:
            limit = request.bid_price * request.gpu_count  # our bid is per GPU, Vast's per offer
            usable = [
                o
                for o in usable
                if (compute := mapping.compute_price(o)) is not None and compute <= limit
            ]
        if not usable:
            kind = "interruptible" if request.spot else "on-demand"
            within = "at or below your bid " if request.bid_price is not None else ""
            raise CapacityError(
                f"no {kind} offer {within}for {request.gpu_count}x {request.gpu_type} right now",
                provider=self.name,
            )
        return min(usable, key=lambda o: (o.hourly_price or 0, o.offer_id))

    def _create_body(self, request: LaunchRequest, offer: GPUOffer, disk_gb: int) -> Any:
        from ._generated.models import (
            CreateInstanceRequest,
            CreateInstanceRequestEnv,
            CreateInstanceRequestRuntype,
        )

        body = CreateInstanceRequest(
            image=request.image or DEFAULT_IMAGE,
            disk=float(disk_gb),
            runtype=CreateInstanceRequestRuntype.SSH,
            # Fail with 410 instead of leaving a stopped (billed) instance behind.
            cancel_unavail=True,
        )
        if request.name:
            body.label = request.name
        if request.env:
            body.env = CreateInstanceRequestEnv.from_dict(dict(request.env))  # V2: an object
        if request.startup_script is not None:
            body.onstart = onstart_command(request.startup_script)
        if request.spot:
            bid = (
                request.bid_price * request.gpu_count
                if request.bid_price is not None
                else mapping.compute_price(offer)
            )
            body.price = round(float(bid or 0), 6)
        return body

    def _flow_launch(self, request: LaunchRequest) -> Flow[GPUInstance]:
        from ._generated.api.instances import create_instance

        self._require_key()
        self._check_launch(request)
        disk_gb = request.disk_gb or DEFAULT_DISK_GB
        if request.startup_script is not None:
            onstart_command(request.startup_script)  # too long: refuse before searching
        filters = GPUFilters(
            gpu_types=[request.gpu_type],
            regions=[request.region] if request.region else None,
            spot=request.spot,
        )
        offers = yield from self._flow_search(
            filters,
            spot=request.spot,
            disk_gb=disk_gb,
            min_cuda=request.min_cuda_version,
            gpu_count=request.gpu_count,
        )
        offer = self._choose(request, offers)
        body = self._create_body(request, offer, disk_gb)
        try:
            answer: HTTPAnswer = yield Endpoint(
                module=create_instance,
                operation="launch",
                arguments={"id": int(offer.offer_id), "body": body},
                kind="launch",
                submits_work=True,
                created_id=lambda raw: mapping.created_id(None, raw),
            )
        except ProviderError as exc:
            if exc.instance_id is not None:  # refused, yet created (stopped): destroy it
                yield Created(instance_id=exc.instance_id)
                yield from self._flow_destroy_refused(exc)
            raise
        # Both from the raw answer: an undocumented 2xx status has no parsed model.
        instance_id, reply = answer.created_id, answer.json()
        if instance_id is None or not isinstance(reply, dict) or reply.get("success") is not True:
            error = UnexpectedResponseError(
                "launch: Vast.ai's answer has no new_contract with success true",
                provider=self.name,
                instance_id=instance_id,
            )
            if instance_id is not None:  # "failed", yet it names the instance: destroy it
                self._maybe_submitted(error, instance_id)
                yield Created(instance_id=instance_id)
                yield from self._flow_destroy_refused(error)
            raise error
        yield Created(instance_id=instance_id)
        try:
            instance = yield from self._flow_get(instance_id)
            if instance is not None:
                return mapping.instance_from_api(instance)
        except (ProviderError, *MAPPING_ERRORS) as exc:
            # It exists and bills whatever this read says (failed, unreadable, about another
            # id): report it pending with what the create told us.
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
            spot=request.spot,
        )

    def _flow_destroy_refused(self, refusal: ProviderError) -> Flow[None]:
        """Destroy an instance a refused create made anyway; the refusal says how it went."""
        instance_id = refusal.instance_id
        assert instance_id is not None
        try:
            yield from self._flow_terminate(instance_id)
        except ProviderError as exc:
            refusal.message += f"; destroying it failed ({type(exc).__name__}): destroy it"
            return
        refusal.message += "; it was destroyed"

    # -- instances ----------------------------------------------------------------------------

    def _flow_get(self, instance_id: str) -> Flow[Any]:
        """The Instance, or None when Vast.ai answers ``{"instances": null}`` (V3)."""
        from ._generated.api.instances import show_instance

        answer: HTTPAnswer = yield Endpoint(
            module=show_instance,
            operation="get_instance",
            arguments={"id": self._instance_id(instance_id)},
        )
        instance = answer.parsed.instances
        if instance is None:
            return None
        if type(instance).__name__ == "Unset":
            raise UnexpectedResponseError(
                "get_instance: Vast.ai's answer has no `instances`", provider=self.name
            )
        if mapping.instance_id_of(instance) != str(self._instance_id(instance_id)):
            raise UnexpectedResponseError(
                f"get_instance: Vast.ai answered about another instance than {instance_id}",
                provider=self.name,
            )
        return instance

    def _flow_status(self, instance_id: str) -> Flow[InstanceStatus]:
        self._require_key()
        instance = yield from self._flow_get(instance_id)
        if instance is None:
            raise InstanceNotFoundError(
                f"get_instance: Vast.ai has no instance {instance_id} in this account",
                provider=self.name,
                instance_id=instance_id,
            )
        return mapping.status_from_api(instance)

    def _flow_terminate(self, instance_id: str) -> Flow[None]:
        from ._generated.api.instances import destroy_instance

        self._require_key()
        answer: HTTPAnswer = yield Endpoint(
            module=destroy_instance,
            operation="terminate",
            arguments={"id": self._instance_id(instance_id)},
        )
        body = answer.json()
        if isinstance(body, dict) and body.get("success") is False:
            # dstack: a 200 with success false and no_such_instance means already gone.
            raise mapping.classify(answer.status_code, body, "terminate")
        if not isinstance(body, dict) or body.get("success") is not True:
            raise UnexpectedResponseError(
                "terminate: Vast.ai's answer has no success true", provider=self.name
            )

    def _flow_list(self, name_prefix: str | None) -> Flow[list[GPUInstance]]:
        from ._generated.api.instances import show_instances

        self._require_key()
        found: list[GPUInstance] = []
        seen: set[str] = set()
        token: str | None = None
        for _ in range(MAX_PAGES):
            arguments: dict[str, Any] = {"limit": 25}
            if token is not None:
                arguments["after_token"] = token
            answer: HTTPAnswer = yield Endpoint(
                module=show_instances, operation="list_instances", arguments=arguments
            )
            found += [mapping.instance_from_api(i) for i in answer.parsed.instances]
            token = answer.parsed.next_token
            if token is None or type(token).__name__ == "Unset":
                return mapping.filter_by_prefix(found, name_prefix)
            if not isinstance(token, str) or not token or token in seen:
                raise UnexpectedResponseError(
                    "list_instances: Vast.ai repeated or sent an unusable next_token",
                    provider=self.name,
                )
            seen.add(token)
        raise UnexpectedResponseError(
            f"list_instances: more than {MAX_PAGES} pages", provider=self.name
        )

    def _flow_manage(self, instance_id: str, operation: str, body: Any) -> Flow[None]:
        from ._generated.api.instances import manage_instance

        self._require_key()
        answer: HTTPAnswer = yield Endpoint(
            module=manage_instance,
            operation=operation,
            arguments={"id": self._instance_id(instance_id), "body": body},
        )
        reply = answer.json()
        if isinstance(reply, dict) and reply.get("success") is False:
            raise mapping.classify(answer.status_code, reply, operation)
        if answer.parsed.success is not True:
            raise UnexpectedResponseError(
                f"{operation}: Vast.ai's answer has no success true", provider=self.name
            )

    def _flow_power(self, instance_id: str, start: bool) -> Flow[GPUInstance]:
        from ._generated.models import ManageInstanceRequest, ManageInstanceRequestState

        self._require_key()
        self._instance_id(instance_id)
        state = ManageInstanceRequestState.RUNNING if start else ManageInstanceRequestState.STOPPED
        operation = "start" if start else "stop"
        yield from self._flow_manage(instance_id, operation, ManageInstanceRequest(state=state))
        instance = yield from self._flow_get(instance_id)
        if instance is None:
            raise InstanceNotFoundError(
                f"{operation}: Vast.ai has no instance {instance_id} in this account",
                provider=self.name,
                instance_id=instance_id,
            )
        return mapping.instance_from_api(instance)

    def _flow_label(self, instance_id: str, label: str) -> Flow[None]:
        from ._generated.models import ManageInstanceRequest

        self._require_key()
        self._instance_id(instance_id)
        if not isinstance(label, str) or len(label) > 1024:
            raise InvalidRequestError(
                "label must be a string of at most 1024 characters", provider=self.name
            )
        yield from self._flow_manage(instance_id, "label", ManageInstanceRequest(label=label))


class VastAIProvider(_VastCore, OpenAPIProvider):
    """Vast.ai, blocking. Create with ``create_provider("vastai", api_key=...)``."""

    def start_instance(self, instance_id: str) -> GPUInstance:
        """Start a stopped instance (its host may have been rented out meanwhile)."""
        return self._run(self._flow_power(instance_id, start=True))

    def stop_instance(self, instance_id: str) -> GPUInstance:
        """Stop an instance (its disk is kept and still billed)."""
        return self._run(self._flow_power(instance_id, start=False))

    def label_instance(self, instance_id: str, label: str) -> None:
        """Set an instance's label (its ``name`` here; at most 1024 characters)."""
        self._run(self._flow_label(instance_id, label))


class AsyncVastAIProvider(_VastCore, AsyncOpenAPIProvider):
    """Vast.ai, async. Create with ``create_async_provider("vastai", api_key=...)``."""

    async def start_instance(self, instance_id: str) -> GPUInstance:
        """Start a stopped instance (its host may have been rented out meanwhile)."""
        return await self._run(self._flow_power(instance_id, start=True))

    async def stop_instance(self, instance_id: str) -> GPUInstance:
        """Stop an instance (its disk is kept and still billed)."""
        return await self._run(self._flow_power(instance_id, start=False))

    async def label_instance(self, instance_id: str, label: str) -> None:
        """Set an instance's label (its ``name`` here; at most 1024 characters)."""
        await self._run(self._flow_label(instance_id, label))
