"""Vast.ai answers written from the vendor's documented responses (no live account).

``DocumentedVast`` is an ``httpx.MockTransport`` handler that answers the endpoints our
client uses the way the vendor's OpenAPI 3.1 document (``../shared/reference/vastai/
openapi.yaml``) and FACTS.md describe them: ``{"offers": [...]}`` with the offer fields of the
spec's example, ``{"success": true, "new_contract": N}``, ``{"instances": Instance}`` (plural
key, one object), the v1 page ``{success, instances_found, total_instances, next_token,
instances}``, and the error bodies ``{"success": false, "error": code, "msg": text}``.

The offer search evaluates the query language (``{field: {op: value}}``, ops eq, neq, gt,
lt, gte, lte, in, notin; ``verified`` as ``verification == "verified"``), so what the client
asks for decides what it gets. Values (ids, prices, hosts) are ours and illustrative.

Departures we had to make up, because the vendor documents no body for them (also listed
in PROVENANCE.md and the contract test):

* ``{"instances": null}`` for an id the account does not have (dstack's client reads it so);
* a create refused with ``invalid_price`` that still names a ``new_contract`` (the instance is
  made, stopped; dstack handles this case, the spec does not document it);
* a create refused for credit: the body of the spec's ``insufficient_balance`` error
  (transferCredit) on HTTP 402;
* the 429 of offer search as plain text ``API requests too frequent`` (FACTS.md), without
  ``Retry-After``.

Every answer carries ``x-documented-response: vastai-openapi-1.0.0`` so a cassette built from
these answers says so in every interaction.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

BASE_URL = "https://console.vast.ai"
DOCUMENTED_HEADER = "x-documented-response"
DOCUMENTED_VALUE = "vastai-openapi-1.0.0"

#: A key the responder treats as invalid (401 auth_error; search: the spec's 404).
REVOKED_KEY = "revoked-vast-key-0000"

OFFER_4090 = 4000101
OFFER_4090X2 = 4000102
OFFER_H100 = 4000103
OFFER_H100_UNVERIFIED = 4000104
OFFER_A100_80 = 4000105
OFFER_A100_40 = 4000106
OFFER_UNKNOWN_GPU = 4000107
OFFER_RENTED = 4000108

ID_RUNNING = "12000101"
ID_LOADING = "12000102"
ID_PROVISIONING = "12000103"
ID_EXITED = "12000104"
ID_OUTBID = "12000105"
ID_STOPPED = "12000106"
ID_LAUNCHED = "12000200"
ID_MISSING = "99999999"

INVALID_KEY = {"success": False, "error": "auth_error", "msg": "Invalid user key"}
NOT_FOUND = {"success": False, "error": "not_found", "msg": "Instance not found"}
NO_SUCH_INSTANCE = {"success": False, "error": "no_such_instance", "msg": "No such instance"}


def offer(
    offer_id: int,
    *,
    gpu_name: str,
    num_gpus: int,
    gpu_ram: int,
    geolocation: str,
    dph_base: float,
    min_bid: float,
    reliability: float,
    verification: str = "verified",
    rented: bool = False,
    storage_cost: float = 0.15,
) -> dict[str, Any]:
    """An offer with the fields of the spec's searchOffers example (values ours)."""
    return {
        "id": offer_id,
        "ask_contract_id": offer_id,
        "bundle_id": offer_id * 10,
        "machine_id": offer_id - 4000000,
        "host_id": 700 + offer_id % 100,
        "num_gpus": num_gpus,
        "gpu_name": gpu_name,
        "gpu_ram": gpu_ram,
        "gpu_total_ram": gpu_ram * num_gpus,
        "gpu_frac": 1.0,
        "gpu_arch": "nvidia",
        "compute_cap": 890,
        "cuda_max_good": 12.4,
        "driver_version": "550.54.14",
        "cpu_name": "AMD EPYC 7543 32-Core Processor",
        "cpu_cores": 64,
        "cpu_cores_effective": 16.0 * num_gpus,
        "cpu_ram": 257000,
        "disk_space": 500.0,
        "disk_bw": 2400.0,
        "inet_up": 900.0,
        "inet_down": 950.0,
        "inet_up_cost": 0.004,
        "inet_down_cost": 0.002,
        "dph_base": dph_base,
        "min_bid": min_bid,
        "storage_cost": storage_cost,
        "reliability": reliability,
        "reliability2": reliability,
        "verification": verification,
        "rentable": True,
        "rented": rented,
        "is_bid": False,
        "geolocation": geolocation,
        "hosting_type": 0,
        "static_ip": True,
        "public_ipaddr": f"203.0.113.{offer_id % 100}",
        "direct_port_count": 100,
        "dlperf": 60.5,
        "total_flops": 82.6 * num_gpus,
        "score": 250.0,
        "start_date": 1893450000.5,
        "end_date": 1896000000,
        "duration": 2550000.0,
        "vms_enabled": False,
        "external": False,
    }


def catalog() -> list[dict[str, Any]]:
    """Every offer of the documented marketplace."""
    return [
        offer(OFFER_4090, gpu_name="RTX 4090", num_gpus=1, gpu_ram=24564,
              geolocation="Oslo, NO", dph_base=0.35, min_bid=0.2, reliability=0.995),
        offer(OFFER_4090X2, gpu_name="RTX 4090", num_gpus=2, gpu_ram=24564,
              geolocation="Austin, US", dph_base=0.66, min_bid=0.4, reliability=0.981),
        offer(OFFER_H100, gpu_name="H100 SXM", num_gpus=1, gpu_ram=81559,
              geolocation="Frankfurt, DE", dph_base=1.9, min_bid=1.1, reliability=0.999),
        offer(OFFER_H100_UNVERIFIED, gpu_name="H100 PCIE", num_gpus=1, gpu_ram=81559,
              geolocation="Quebec, CA", dph_base=1.6, min_bid=0.9, reliability=0.93,
              verification="unverified"),
        offer(OFFER_A100_80, gpu_name="A100 SXM4", num_gpus=1, gpu_ram=81920,
              geolocation="Kansas City, US", dph_base=1.1, min_bid=0.6, reliability=0.99),
        offer(OFFER_A100_40, gpu_name="A100 PCIE", num_gpus=1, gpu_ram=40960,
              geolocation="Tokyo, JP", dph_base=0.7, min_bid=0.45, reliability=0.97),
        # The GPU of the spec's own example: no canonical name, so the client skips it.
        offer(OFFER_UNKNOWN_GPU, gpu_name="Imaginary RTX 9999", num_gpus=4, gpu_ram=24576,
              geolocation="Atlantis, AT", dph_base=0.12, min_bid=0.11, reliability=0.9999),
        offer(OFFER_RENTED, gpu_name="RTX 3090", num_gpus=1, gpu_ram=24576,
              geolocation="Oslo, NO", dph_base=0.2, min_bid=0.1, reliability=0.99,
              rented=True),
    ]  # fmt: skip


def instance(
    instance_id: str,
    *,
    actual_status: str | None,
    label: str | None,
    offer_id: int = OFFER_4090,
    intended_status: str = "running",
    is_bid: bool = False,
    status_msg: str | None = None,
) -> dict[str, Any]:
    """An ``Instance`` with fields of the spec's component (values ours)."""
    source = next(o for o in catalog() if o["id"] == offer_id)
    running = actual_status == "running"
    body: dict[str, Any] = {
        "id": int(instance_id),
        "actual_status": actual_status,
        "intended_status": intended_status,
        "cur_state": "running" if intended_status == "running" else "stopped",
        "next_state": intended_status,
        "label": label,
        "template_id": None,
        "template_hash_id": None,
        "image_uuid": "vastai/base-image:@vastai-automatic-tag",
        "image_args": [],
        "image_runtype": "ssh",
        "extra_env": [],
        "jupyter_token": "df77e27085bd4b3bd5d9024bdefb9e6df614b27adb0689e9d8f066fce5e01f0c",
        "status_msg": status_msg,
        "local_ipaddrs": "10.0.0.5 172.17.0.2",
        "ssh_idx": "4",
        "machine_id": source["machine_id"],
        "bundle_id": source["bundle_id"],
        "start_date": 1893456000.25,
        "end_date": 1896000000.0,
        "uptime_mins": 42.0 if running else None,
        "cpu_cores": 64,
        "cpu_cores_effective": source["cpu_cores_effective"],
        "cpu_ram": 257000,
        "gpu_name": source["gpu_name"],
        "gpu_arch": "nvidia",
        "gpu_totalram": source["gpu_ram"],
        "gpu_ram": source["gpu_ram"],
        "num_gpus": source["num_gpus"],
        "disk_space": 10.0,
        "public_ipaddr": source["public_ipaddr"],
        "geolocation": source["geolocation"],
        "verification": "verified",
        "min_bid": source["min_bid"],
        "is_bid": is_bid,
        "dph_base": source["min_bid"] if is_bid else source["dph_base"],
        "dph_total": round((source["min_bid"] if is_bid else source["dph_base"]) + 0.0021, 4),
        "storage_cost": 0.15,
        "storage_total_cost": 0.0021,
        "reliability2": source["reliability"],
    }
    if actual_status in ("running", "loading"):
        body["ssh_host"] = "ssh4.vast.ai"
        body["ssh_port"] = 10000 + int(instance_id) % 1000
    return body


def account_instances() -> dict[str, dict[str, Any]]:
    """The documented account's instances, by id."""
    items = [
        instance(ID_RUNNING, actual_status="running", label="train-4090-01"),
        instance(ID_LOADING, actual_status="loading", label="train-h100-02", offer_id=OFFER_H100),
        instance(ID_PROVISIONING, actual_status=None, label=None, offer_id=OFFER_A100_80),
        instance(
            ID_EXITED,
            actual_status="exited",
            label="eval-a100-01",
            offer_id=OFFER_A100_40,
            status_msg="Error response from daemon: OCI runtime create failed",
        ),
        instance(ID_OUTBID, actual_status="stopped", label="spot-4090", is_bid=True),
        instance(
            ID_STOPPED,
            actual_status="stopped",
            label="paused-4090",
            offer_id=OFFER_4090X2,
            intended_status="stopped",
        ),
    ]
    return {str(i["id"]): i for i in items}


# -- the query language ---------------------------------------------------------------------------


def _value(item: dict[str, Any], key: str) -> Any:
    if key == "verified":
        return item.get("verification") == "verified"
    if key == "geolocation":  # filtered by country code, the last two letters
        return str(item.get("geolocation", ""))[-2:]
    return item.get(key)


def _holds(actual: Any, op: str, expected: Any) -> bool:
    if op == "eq":
        return bool(actual == expected)
    if op == "neq":
        return bool(actual != expected)
    if op == "in":
        return actual in expected
    if op == "notin":
        return actual not in expected
    if actual is None:
        return False
    checks = {
        "gt": lambda: actual > expected,
        "lt": lambda: actual < expected,
        "gte": lambda: actual >= expected,
        "lte": lambda: actual <= expected,
    }
    return bool(checks[op]())


NON_FILTERS = frozenset({"order", "type", "limit", "allocated_storage"})


def matches(item: dict[str, Any], query: dict[str, Any]) -> bool:
    """Whether an offer passes every ``{field: {op: value}}`` filter of ``query``."""
    for key, condition in query.items():
        if key in NON_FILTERS:
            continue
        if not isinstance(condition, dict):
            raise UnexpectedRouteError(f"filter {key!r} is not an object of operators")
        for op, expected in condition.items():
            if not _holds(_value(item, key), op, expected):
                return False
    return True


class UnexpectedRouteError(AssertionError):
    """The client called something the documented responder does not answer (a test bug)."""


LaunchOutcome = Literal[
    "ok", "gone-404", "gone-410", "unauthorized", "no-credit", "created-stopped", "junk"
]
_INSTANCE = re.compile(r"^/api/v0/instances/(?P<id>\d+)/$")
_ASK = re.compile(r"^/api/v0/asks/(?P<id>\d+)/$")


@dataclass
class DocumentedVast:
    """An ``httpx.MockTransport`` handler answering like Vast.ai documents.

    Args:
        launch_outcome: What ``PUT /asks/{id}/`` answers.
        throttle: Answer this many requests (the first ones) with HTTP 429 (no Retry-After).
        page_size: Instances per v1 page (at most the client's ``limit``), to walk the cursor.
        instances: The account's instances (default: ``account_instances()``).
    """

    launch_outcome: LaunchOutcome = "ok"
    throttle: int = 0
    page_size: int = 25
    instances: dict[str, dict[str, Any]] = field(default_factory=account_instances)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if "api_key" in request.url.params:
            raise UnexpectedRouteError("the client sent the key as a query parameter")
        if self.throttle > 0:
            self.throttle -= 1
            if request.url.path == "/api/v0/bundles/":
                return _answer(429, "API requests too frequent")
            return _answer(429, {"detail": "API requests too frequent endpoint threshold=2.0"})
        auth = request.headers.get("authorization")
        search = request.method == "POST" and request.url.path == "/api/v0/bundles/"
        if auth == f"Bearer {REVOKED_KEY}":
            return _answer(404 if search else 401, INVALID_KEY)
        if auth is None and not search:  # offer search is the one anonymous call
            return _answer(401, INVALID_KEY)
        status, body = self._route(request)
        return _answer(status, body)

    def _route(self, request: httpx.Request) -> tuple[int, Any]:
        method, path = request.method, request.url.path
        if method == "POST" and path == "/api/v0/bundles/":
            return self._search(_json(request))
        if method == "PUT" and (match := _ASK.match(path)):
            return self._create(int(match["id"]), _json(request))
        if method == "GET" and path == "/api/v1/instances/":
            return self._page(request.url.params)
        if (match := _INSTANCE.match(path)) is None:
            raise UnexpectedRouteError(f"no documented answer for {method} {path}")
        instance_id = match["id"]
        found = self.instances.get(instance_id)
        if method == "GET":
            return 200, {"instances": copy.deepcopy(found)}
        if method == "PUT":
            if found is None:
                return 404, NOT_FOUND
            body = _json(request)
            if "state" in body:
                found["intended_status"] = found["next_state"] = body["state"]
                found["actual_status"] = "loading" if body["state"] == "running" else "stopped"
            if "label" in body:
                found["label"] = body["label"]
            return 200, {"success": True}
        if method == "DELETE":
            if found is None:
                return 404, NOT_FOUND
            del self.instances[instance_id]
            return 200, {"success": True, "msg": "Instance destroyed successfully"}
        raise UnexpectedRouteError(f"no documented answer for {method} {path}")

    def _search(self, query: dict[str, Any]) -> tuple[int, Any]:
        kind = query.get("type", "ondemand")
        disk = float(query.get("allocated_storage", 8))
        found = []
        for item in catalog():
            if not matches(item, query):
                continue
            storage = round(item["storage_cost"] * disk / 720, 6)
            item["storage_total_cost"] = storage
            base = item["min_bid"] if kind == "bid" else item["dph_base"]
            item["dph_total"] = round(base + storage, 6)
            item["search"] = {
                "gpuCostPerHour": base,
                "diskHour": storage,
                "totalHour": item["dph_total"],
                "discountTotalHour": 0,
                "discountedTotalPerHour": item["dph_total"],
            }
            found.append(item)
        for key, direction in reversed(query.get("order", [])):

            def by(item: dict[str, Any], key: str = key) -> Any:
                return item.get(key) or 0

            found.sort(key=by, reverse=direction == "desc")
        return 200, {"offers": found[: int(query.get("limit", 64))]}

    def _create(self, offer_id: int, body: dict[str, Any]) -> tuple[int, Any]:
        ask = next((o for o in catalog() if o["id"] == offer_id), None)
        outcome = self.launch_outcome
        if outcome == "unauthorized":
            return 401, INVALID_KEY
        if outcome == "no-credit":
            return 402, {
                "success": False,
                "error": "insufficient_balance",
                "msg": "Insufficient credit",
            }
        if ask is None or outcome == "gone-404":
            return 404, {
                "success": False,
                "error": "invalid_args",
                "msg": f"error 404/3603: no_such_ask Instance type by id {offer_id} is not "
                "available.",
                "ask_id": offer_id,
            }
        if outcome == "gone-410":
            return 410, {
                "success": False,
                "error": "no_such_ask",
                "msg": f"error 410/3907: no_such_ask Instance type {offer_id} is no longer "
                "available.",
                "ask_id": offer_id,
            }
        if outcome == "junk":
            return 200, {"success": True}
        label = body.get("label")
        is_bid = "price" in body
        made = instance(
            ID_LAUNCHED,
            actual_status=None,
            label=label,
            offer_id=offer_id,
            is_bid=is_bid,
            intended_status="stopped" if outcome == "created-stopped" else "running",
        )
        self.instances[ID_LAUNCHED] = made
        if outcome == "created-stopped":
            made["actual_status"] = "stopped"
            return 400, {
                "success": False,
                "error": "invalid_price",
                "msg": "error 400/3412: bid price is below the minimum for this machine",
                "new_contract": int(ID_LAUNCHED),
            }
        return 200, {"success": True, "new_contract": int(ID_LAUNCHED)}

    def _page(self, params: httpx.QueryParams) -> tuple[int, Any]:
        ids = sorted(self.instances, key=int)
        start = 0
        if "after_token" in params:
            token = params["after_token"]
            if not token.startswith("after-") or token[6:] not in self.instances:
                return 400, {"error": "invalid_token", "msg": "Invalid after_token"}
            start = ids.index(token[6:]) + 1
        limit = min(int(params.get("limit", 25)), 25, self.page_size)
        page = ids[start : start + limit]
        more = start + limit < len(ids)
        return 200, {
            "success": True,
            "instances_found": len(page),
            "total_instances": len(ids),
            "label_counts": {},
            "next_token": f"after-{page[-1]}" if more and page else None,
            "instances": [copy.deepcopy(self.instances[i]) for i in page],
        }

    def count(self, method: str, path: str) -> int:
        """How many requests of ``method`` to ``path`` arrived."""
        return sum(1 for r in self.requests if r.method == method and r.url.path == path)


def _json(request: httpx.Request) -> dict[str, Any]:
    body = json.loads(request.content)
    if not isinstance(body, dict):
        raise UnexpectedRouteError(f"{request.method} {request.url.path}: body is not an object")
    return body


def _answer(status: int, body: Any) -> httpx.Response:
    headers = {DOCUMENTED_HEADER: DOCUMENTED_VALUE}
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


def transport(responder: DocumentedVast | None = None) -> httpx.MockTransport:
    """A transport that answers from ``responder`` (a fresh ``DocumentedVast`` by default)."""
    return httpx.MockTransport(responder or DocumentedVast())
