"""RunPod <-> normalized types and GraphQL error classification (no I/O)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any

from ..errors import (
    AuthenticationError,
    CapacityError,
    InstanceNotFoundError,
    InvalidRequestError,
    ProviderError,
    ProviderServerError,
    QuotaExceededError,
    RateLimitError,
    error_for_status,
)
from ..gpus import GPU_TABLE, GPUSpec
from ..types import GPUInstance, GPUOffer, InstanceState, InstanceStatus, LaunchRequest

PROVIDER = "runpod"

#: RunPod's two clouds (CloudTypeEnum without ALL): which one an offer is priced in.
SECURE, COMMUNITY = "SECURE", "COMMUNITY"

_BY_ID: dict[str, GPUSpec] = {gpu_id: spec for spec in GPU_TABLE for gpu_id in spec.runpod}

# RunPod's GraphQL errors carry a message and sometimes extensions.code; no codes are
# documented for capacity, so these known messages (FACTS.md, runpod-python, runpodctl,
# dstack, SkyPilot) are matched. A message matched nowhere is a server error, never "your
# request was bad": retried for reads, maybe-submitted for launches.
_NOT_FOUND = re.compile(r"pod not found|not found to terminate|could not find pod", re.I)
_CAPACITY = re.compile(
    r"does not have the resources|no longer any instances available|insufficient resources|"
    r"no (gpus?|instances?|machines?) (currently )?available|"
    r"not enough free gpus on the host machine",
    re.I,
)
_AUTH = re.compile(r"unauthori[sz]ed|api key|authentication", re.I)
_QUOTA = re.compile(r"balance|quota|spend limit|insufficient funds", re.I)
_THROTTLED = re.compile(r"rate limit|too many requests|throttl", re.I)
_INTERNAL = re.compile(r"something went wrong|internal server error", re.I)
_INVALID = re.compile(
    r"cannot query field|unknown argument|got invalid value|was not provided|"
    r"expected type|syntax error|is not defined by type",
    re.I,
)
_INVALID_CODES = frozenset({"GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT", "GRAPHQL_PARSE_FAILED"})
_THROTTLED_CODES = frozenset({"TOO_MANY_REQUESTS", "RATE_LIMITED", "THROTTLED"})


def canonical_of(gpu_type_id: str | None) -> GPUSpec | None:
    """The canonical GPU of a RunPod GPU type id."""
    return _BY_ID.get(gpu_type_id or "")


def classify_graphql(errors: list[Any], operation: str) -> ProviderError:
    """The error for a GraphQL ``errors`` list (usually sent with HTTP 200)."""
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    message = str(first.get("message") or "GraphQL error")
    extensions = first.get("extensions")
    code = extensions.get("code") if isinstance(extensions, dict) else None
    code = str(code) if code is not None else None
    upper = (code or "").upper()
    text = f"{operation}: {message}"
    cls: type[ProviderError]
    if _NOT_FOUND.search(message) or (code or "").lower().endswith("not found"):
        cls = InstanceNotFoundError
    elif _CAPACITY.search(message):
        cls = CapacityError
    elif upper in ("UNAUTHENTICATED", "FORBIDDEN") or _AUTH.search(message):
        cls = AuthenticationError
    elif _QUOTA.search(message):
        cls = QuotaExceededError
    elif upper in _THROTTLED_CODES or _THROTTLED.search(message):
        cls = RateLimitError
    elif upper == "INTERNAL_SERVER_ERROR" or _INTERNAL.search(message):
        cls = ProviderServerError
    elif upper in _INVALID_CODES or _INVALID.search(message):
        cls = InvalidRequestError
    else:
        cls = ProviderServerError  # unknown: assume the provider's side, never "bad request"
    return cls(text, provider=PROVIDER, code=code, body=errors)


def classify_status(status_code: int, body: Any, operation: str) -> ProviderError:
    """The error for a non-2xx HTTP answer of the GraphQL endpoint (its JSON body kept:
    RunPod explains variable-validation failures in a GraphQL ``errors`` list with 400)."""
    errors = body.get("errors") if isinstance(body, dict) else None
    detail = None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        detail = errors[0].get("message")
    text = f"{operation}: HTTP {status_code}" + (f": {detail}" if detail else "")
    kwargs: dict[str, Any] = {"provider": PROVIDER, "status_code": status_code, "body": body}
    if status_code in (401, 403):
        return AuthenticationError(text, **kwargs)
    if status_code == 429:
        return RateLimitError(text, **kwargs)
    if status_code in (404, 405, 410):
        # The endpoint itself is missing (RunPod retires GraphQL in 2027): never "no such pod".
        return ProviderError(
            f"{text}: the GraphQL endpoint is not there (retired or moved?)", **kwargs
        )
    if status_code == 400 and isinstance(errors, list) and errors:
        error = classify_graphql(errors, operation)
        if isinstance(error, ProviderServerError):  # unknown, but HTTP says it was ours
            error = InvalidRequestError(error.message, provider=PROVIDER, body=body)
        error.status_code = status_code
        return error
    return error_for_status(status_code, text, provider=PROVIDER, body=body)


# -- regions ----------------------------------------------------------------------------------
#
# One region notion for offers, launches and instances: a region is either a RunPod data center
# id ("US-TX-3", "EU-RO-1", "EUR-IS-1": launch sends it as dataCenterId, and instances report
# machine.dataCenterId) or an ISO country code ("US", "CA": launch sends it as countryCode, and
# offers report lowestPrice.countryCode). dstack does the same (backends/runpod/compute.py
# _is_secure_cloud: "Secure cloud regions are datacenter IDs ..., community cloud regions are
# country codes"), and gpuhunt queries lowestPrice by dataCenterId or countryCode.

_DATA_CENTER = re.compile(r"^[A-Z]{2,3}-[A-Z]{2,3}-\d+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def region_code(region: str) -> str | None:
    """A RunPod data center id or country code in RunPod's spelling (upper case: dstack notes
    that lower-case regions are accepted but break RunPod), or None if it is neither."""
    code = region.strip().upper()
    return code if _DATA_CENTER.match(code) or _COUNTRY.match(code) else None


def placement(region: str | None) -> dict[str, str]:
    """The placement fields of a deploy or lowestPrice input for a region code."""
    if region is None:
        return {}
    if _DATA_CENTER.match(region):
        return {"dataCenterId": region}
    return {"countryCode": region}


# -- offers -----------------------------------------------------------------------------------
#
# Prices RunPod bills per GPU-hour, per cloud (secure or community) and kind (on-demand or
# spot). The current price for the placement asked is lowestPrice (uninterruptablePrice for
# on-demand, minimumBidPrice for spot), asked once per cloud with secureCloud true/false, as
# gpuhunt's providers/runpod.py does; when lowestPrice has no price, the GPU type's list price
# of that cloud (securePrice, communityPrice, secureSpotPrice, communitySpotPrice). Every offer
# says which field it was priced from (GPUOffer.price_source), and a launch asks for the
# cloud of the offer it was priced from (cloudType SECURE or COMMUNITY).

_LIST_PRICE = {
    (SECURE, False): "securePrice",
    (COMMUNITY, False): "communityPrice",
    (SECURE, True): "secureSpotPrice",
    (COMMUNITY, True): "communitySpotPrice",
}


def priced_offers(
    gpu_types: Iterable[Any], gpu_count: int, region: str | None = None
) -> list[tuple[str, GPUOffer]]:
    """(cloud, offer) for every cloud and kind with a positive price, from ``gpuTypes`` with
    ``secureLowestPrice`` and ``communityLowestPrice``; ``region`` is the placement the
    lowestPrice inputs were restricted to (None: the offer's own countryCode)."""
    found: list[tuple[str, GPUOffer]] = []
    for gpu in gpu_types:
        spec = canonical_of(gpu.id) if gpu is not None else None
        if gpu is None or spec is None:
            continue
        for cloud, lowest in (
            (SECURE, gpu.secure_lowest_price),
            (COMMUNITY, gpu.community_lowest_price),
        ):
            if lowest is None:  # nothing of this cloud matches the placement
                continue
            flag = "true" if cloud == SECURE else "false"
            for spot in (False, True):
                field = "minimumBidPrice" if spot else "uninterruptablePrice"
                price = lowest.minimum_bid_price if spot else lowest.uninterruptable_price
                source = f"gpuTypes.lowestPrice(secureCloud: {flag}).{field}"
                if price is None:
                    field = _LIST_PRICE[cloud, spot]
                    price = getattr(gpu, _SNAKE[field])
                    source = f"gpuTypes.{field}"
                if price is None or price <= 0:
                    continue
                offer = GPUOffer(
                    provider=PROVIDER,
                    offer_id=gpu.id,
                    gpu_type=spec.name,
                    provider_gpu_type=gpu.display_name or gpu.id,
                    gpu_count=gpu_count,
                    gpu_memory_gb=gpu.memory_in_gb or spec.memory_gb,
                    vcpus=lowest.min_vcpu,
                    ram_gb=lowest.min_memory,
                    region=region or lowest.country_code,
                    hourly_price=round(price * gpu_count, 4),
                    price_per_gpu=price,
                    spot=spot,
                    available=lowest.stock_status is not None,
                    price_source=source,
                )
                found.append((cloud, offer))
    return found


_SNAKE = {
    "securePrice": "secure_price",
    "communityPrice": "community_price",
    "secureSpotPrice": "secure_spot_price",
    "communitySpotPrice": "community_spot_price",
}


def offers_from_gpu_types(
    gpu_types: Iterable[Any], gpu_count: int, region: str | None = None
) -> list[GPUOffer]:
    """On-demand and spot offers, per cloud, for ``gpu_count`` GPUs (see ``priced_offers``)."""
    return [offer for _, offer in priced_offers(gpu_types, gpu_count, region)]


def cheapest(
    priced: Iterable[tuple[str, GPUOffer]], gpu_type_id: str, spot: bool
) -> tuple[str, GPUOffer] | None:
    """The cheapest available (cloud, offer) of a GPU type and kind, or None."""
    matching = [
        (cloud, offer)
        for cloud, offer in priced
        if offer.offer_id == gpu_type_id and offer.spot == spot and offer.available
    ]
    return min(matching, key=lambda pair: pair[1].price_per_gpu or 0.0, default=None)


# -- startup work -----------------------------------------------------------------------------

#: The longest single argument Linux passes to a program (MAX_ARG_STRLEN, 32 pages): the start
#: command runs as one ``bash -c`` argument, so the encoded script must fit in it.
MAX_START_COMMAND = 131_072

#: Where the container keeps the script and its output (only its user can read them).
_DIR = "~/.gpu-providers"

# What runs after the script was started: the image's own start command when it is one of
# RunPod's images (runpod/containers container-template/start.sh, installed as /start.sh and
# the images' CMD: it installs $PUBLIC_KEY, starts sshd and nginx, runs /post_start.sh, then
# sleeps), else the same SSH setup done here, then a sleep that keeps the container alive.
_KEEP_SSH = (
    "if [ -x /start.sh ]; then exec /start.sh; fi; "
    'if [ -n "$PUBLIC_KEY" ]; then mkdir -p ~/.ssh; '
    'echo "$PUBLIC_KEY" >> ~/.ssh/authorized_keys; chmod 700 -R ~/.ssh; fi; '
    "(service ssh start || (mkdir -p /run/sshd; /usr/sbin/sshd)) >/dev/null 2>&1; "
    "exec sleep infinity"
)


def start_command(script: str) -> str:
    """RunPod's container start command (``dockerArgs``) that runs ``script``.

    RunPod runs ``dockerArgs`` in place of the image's start command (Docker CMD), as
    SkyPilot's sky/provision/runpod/utils.py ``launch`` does with ``bash -c '...'``. The
    script travels base64-encoded (SkyPilot does the same "to deal with the tricky quoting
    issues"), so any content survives the quoting; it is decoded to a file, started in the
    background (output in ~/.gpu-providers/startup.log; both files readable only by the
    container's user), and the command then goes on with the image's SSH start
    (``_KEEP_SSH``).

    Trade-offs: replacing the start command is the only way GraphQL offers to run work at
    start; the script runs beside SSH start-up rather than before it, and again at every
    container start (resume, restart), since the command is the container's. Images whose
    own start command is not /start.sh lose it: their script must start their services.
    The base64 text is not encryption: RunPod stores the command with the pod (the SDK never
    reads it back).
    """
    encoded = base64.b64encode(script.encode("utf-8")).decode("ascii")
    command = (
        f"(umask 077; mkdir -p {_DIR}; echo {encoded} | base64 -d > {_DIR}/startup.sh; "
        f": > {_DIR}/startup.log); "
        f"nohup bash {_DIR}/startup.sh >> {_DIR}/startup.log 2>&1 & " + _KEEP_SSH
    )
    if len(command) > MAX_START_COMMAND:
        raise ValueError(
            f"startup_script is too long for RunPod's start command ({len(script)} characters;"
            f" at most about {MAX_START_COMMAND * 3 // 4 - 1024} fit)"
        )
    return f"bash -c '{command}'"


def pod_env(request: LaunchRequest) -> list[tuple[str, str]]:
    """The pod's environment: ``request.env``, plus the ``ssh_public_key`` twice.

    RunPod's docs (runpod/docs pods/configuration/override-public-keys.mdx) say RunPod injects
    the account's public keys and that a pod-level key given as ``SSH_PUBLIC_KEY`` overrides
    them; RunPod's images install ``$PUBLIC_KEY`` (runpod/containers
    container-template/start.sh), the variable RunPod fills from the account's keys. Both
    are set, so with ``ssh_public_key`` that key, and only it, can log in.
    """
    env = list(request.env.items())
    if request.ssh_public_key:
        taken = sorted(_SSH_KEY_VARIABLES & set(request.env))
        if taken:
            raise ValueError(f"give the SSH key either as ssh_public_key or as env {taken[0]}")
        env += [(name, request.ssh_public_key) for name in ("PUBLIC_KEY", "SSH_PUBLIC_KEY")]
    return env


_SSH_KEY_VARIABLES = frozenset({"PUBLIC_KEY", "SSH_PUBLIC_KEY"})


def _ssh(pod: Any) -> tuple[str | None, int | None]:
    """The public SSH endpoint: the runtime port entry with privatePort 22, isIpPublic and a
    public port (FACTS.md "Readiness"; dstack's update_provisioning_data reads the same)."""
    ports = pod.runtime.ports if pod.runtime is not None and pod.runtime.ports else []
    for port in ports:
        if (
            port is not None
            and port.private_port == 22
            and port.is_ip_public
            and port.ip
            and port.public_port
        ):
            return port.ip, port.public_port
    return None, None


def is_interruptible(pod: Any) -> bool:
    """A spot pod (PodType INTERRUPTABLE or BID)."""
    return (pod.pod_type or "").upper() in ("INTERRUPTABLE", "BID")


# RunPod records why a pod last changed state in lastStatusChange ("Rented by User: <date>",
# "Exited by User: <date>", "Exited by Runpod: <date>"). No public client documents how a spot
# interruption reads; our rule: an interruptible pod that is EXITED because RunPod (not its
# user) exited it, or whose reason names an outbid/interruption, was preempted. An EXITED spot
# pod without such a reason (stopped by its user, or no reason reported) is STOPPED.
_PREEMPTED_REASON = re.compile(r"by runpod|outbid|interrupt|preempt", re.I)


def _state(pod: Any) -> InstanceState:
    status = (pod.desired_status or "").upper()
    if status == "RUNNING":
        return InstanceState.RUNNING if pod.runtime is not None else InstanceState.PENDING
    reason = pod.last_status_change or ""
    if status == "EXITED" and is_interruptible(pod) and _PREEMPTED_REASON.search(reason):
        return InstanceState.PREEMPTED
    return {
        "CREATED": InstanceState.PENDING,
        "RESTARTING": InstanceState.PENDING,
        "EXITED": InstanceState.STOPPED,
        "PAUSED": InstanceState.STOPPED,
        "TERMINATED": InstanceState.TERMINATED,
        "DEAD": InstanceState.FAILED,
    }.get(status, InstanceState.UNKNOWN)


def instance_from_api(pod: Any) -> GPUInstance:
    """A ``GPUInstance`` from a RunPod ``Pod``."""
    spec = canonical_of(pod.machine.gpu_type_id if pod.machine else None)
    ip, port = _ssh(pod)
    return GPUInstance(
        provider=PROVIDER,
        instance_id=pod.id,
        name=pod.name,
        state=_state(pod),
        provider_state=pod.desired_status,
        gpu_type=spec.name if spec else None,
        gpu_count=pod.gpu_count,
        region=pod.machine.data_center_id if pod.machine else None,
        hourly_price=pod.cost_per_hr,
        public_ip=ip,
        ssh_port=port,
        spot=is_interruptible(pod),
    )


def status_from_api(pod: Any) -> InstanceStatus:
    """An ``InstanceStatus``: ready once the container is up (``runtime``) *and* port 22 is
    mapped to a public address and port (``runtime`` alone comes before the port mapping)."""
    ip, port = _ssh(pod)
    state = _state(pod)
    ready = state == InstanceState.RUNNING and ip is not None and port is not None
    message = None
    if state == InstanceState.PENDING:
        message = "container starting (no runtime yet)"
    elif state == InstanceState.RUNNING and not ready:
        message = "container up; SSH port 22 not yet mapped to a public address"
    elif state == InstanceState.PREEMPTED:
        message = f"spot pod interrupted by RunPod ({pod.last_status_change})"
    return InstanceStatus(
        instance_id=pod.id,
        state=state,
        provider_state=pod.desired_status,
        ready=ready,
        public_ip=ip if ready else None,
        ssh_port=port if ready else None,
        message=message,
    )
