"""Lambda Cloud answers written from the vendor's documented schemas (no live account).

``DocumentedLambda`` is an ``httpx.MockTransport`` handler that answers the endpoints our
client uses the way Lambda Cloud API 1.8.3 documents them (``../shared/reference/lambda/
openapi-1.8.3.json``): the success envelope ``{"data": ...}``, the error envelope
``{"error": {"code", "message", "suggestion"}}``, field names and types exactly as the
vendor's component schemas (``InstanceTypes``, ``Instance``, ``SSHKey``, ``ApiError*``).

The *values* (prices, specs, ids, names, region descriptions) are ours and only illustrative:
they are not quotes from Lambda. Two deliberate departures from the spec, each also listed
in ``test_contract.py``:

* the region ``us-east-9`` (not in the closed ``PublicRegionCode`` enum of 1.8.3) stands for a
  region Lambda adds later, which our client must tolerate;
* HTTP 429 is not documented by the spec (FACTS.md: it documents no 429); ``throttle=`` makes
  the responder send it with a ``Retry-After`` header and a plain-text body, because we do not
  know the body Lambda sends and will not invent an error code for it.

Every answer carries ``x-documented-response: lambda-openapi-1.8.3`` so a cassette built from
these answers says so in every interaction (a live re-recording does not have the header).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

API = "/api/v1"
BASE_URL = "https://cloud.lambda.ai"
DOCUMENTED_HEADER = "x-documented-response"
DOCUMENTED_VALUE = "lambda-openapi-1.8.3"

#: A key the responder treats as invalid (401 global/invalid-api-key on every endpoint).
REVOKED_KEY = "revoked-lambda-key-0000"
#: The name of the SSH key registered in the documented account (and, for a live launch
#: re-recording, the key the account must have).
SSH_KEY_NAME = "skypilot-sdk-cassettes"
#: A public key only ever used as test data (its private half was deleted when made).
PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILasVMYHcO3cCm1TE6DL/Fz2RVcWi9CRoP6oUYk1UMvU "
    "skypilot-sdk-cassettes"
)

# Instance ids are 32 hex digits, like the vendor's examples.
ID_ACTIVE = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
ID_BOOTING = "1b2c3d4e5f6041829304b5c6d7e8f90a"
ID_UNHEALTHY = "2c3d4e5f60714293a415c6d7e8f90a1b"
ID_TERMINATED = "3d4e5f6071824304b526d7e8f90a1b2c"
ID_LAUNCHED = "4e5f60718293441526a7e8f90a1b2c3d"
ID_MISSING = "00000000000000000000000000000000"
SSH_KEY_ID = "9f8e7d6c5b4a49382716a5b4c3d2e1f0"
SSH_KEY_ID_ADDED = "8e7d6c5b4a3949281706f5e4d3c2b1a0"

#: The region our documented catalog uses that Lambda's 1.8.3 enum does not list.
UNKNOWN_REGION = "us-east-9"

REGIONS: dict[str, str] = {
    "us-east-1": "Virginia, USA",
    "us-east-3": "Washington DC, USA",
    "us-west-1": "California, USA",
    "us-west-2": "Arizona, USA",
    "us-west-3": "Utah, USA",
    "us-south-1": "Texas, USA",
    UNKNOWN_REGION: "A region added after API 1.8.3",
}


def region(name: str) -> dict[str, str]:
    """A ``Region`` object."""
    return {"name": name, "description": REGIONS[name]}


def instance_type(
    name: str,
    description: str,
    gpu_description: str,
    cents: int,
    vcpus: int,
    memory_gib: int,
    storage_gib: int,
    gpus: int,
) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "gpu_description": gpu_description,
        "price_cents_per_hour": cents,
        "specs": {
            "vcpus": vcpus,
            "memory_gib": memory_gib,
            "storage_gib": storage_gib,
            "gpus": gpus,
        },
    }


#: ``InstanceType`` objects of the documented catalog, by name.
INSTANCE_TYPES: dict[str, dict[str, Any]] = {
    t["name"]: t
    for t in (
        instance_type(
            "gpu_1x_a10", "1x A10 (24 GB PCIe)", "A10 (24 GB PCIe)", 75, 30, 200, 1400, 1
        ),
        instance_type(
            "gpu_1x_a100_sxm4", "1x A100 (40 GB SXM4)", "A100 (40 GB SXM4)", 129, 30, 200, 512, 1
        ),
        instance_type(
            "gpu_8x_a100_80gb_sxm4",
            "8x A100 (80 GB SXM4)",
            "A100 (80 GB SXM4)",
            1432,
            240,
            1800,
            19500,
            8,
        ),
        instance_type(
            "gpu_1x_h100_pcie", "1x H100 (80 GB PCIe)", "H100 (80 GB PCIe)", 249, 26, 200, 1000, 1
        ),
        instance_type(
            "gpu_8x_h100_sxm5",
            "8x H100 (80 GB SXM5)",
            "H100 (80 GB SXM5)",
            2392,
            208,
            1800,
            24780,
            8,
        ),
        instance_type("gpu_1x_gh200", "1x GH200 (96 GB)", "GH200 (96 GB)", 149, 64, 432, 4096, 1),
        instance_type("cpu_4x_general", "4x vCPU (general purpose)", "N/A", 9, 4, 16, 100, 0),
    )
}

#: Where each type has capacity; an empty list means no capacity anywhere right now.
CAPACITY: dict[str, list[str]] = {
    "gpu_1x_a10": ["us-east-1", "us-west-1"],
    "gpu_1x_a100_sxm4": [UNKNOWN_REGION],
    "gpu_8x_a100_80gb_sxm4": ["us-west-2"],
    "gpu_1x_h100_pcie": ["us-west-3", UNKNOWN_REGION],
    "gpu_8x_h100_sxm5": [],
    "gpu_1x_gh200": ["us-east-3"],
    "cpu_4x_general": ["us-south-1"],
}


def instance_types_data() -> dict[str, Any]:
    """The ``data`` of ``GET /instance-types``: an ``InstanceTypes`` map keyed by type name."""
    return {
        name: {
            "instance_type": copy.deepcopy(itype),
            "regions_with_capacity_available": [region(r) for r in CAPACITY[name]],
        }
        for name, itype in INSTANCE_TYPES.items()
    }


_REASONS = {
    "vm-has-not-launched": "The instance has not launched yet.",
    "vm-is-terminating": "The instance is terminating.",
}


def _actions(status: str) -> dict[str, Any]:
    """``InstanceActionAvailability`` for an instance in ``status``."""

    def unavailable(code: str) -> dict[str, Any]:
        return {"available": False, "reason_code": code, "reason_description": _REASONS[code]}

    if status == "booting":
        off = unavailable("vm-has-not-launched")
        return {
            "migrate": off,
            "rebuild": off,
            "restart": off,
            "cold_reboot": off,
            "terminate": {"available": True},
        }
    if status in ("terminating", "terminated", "preempted"):
        gone = unavailable("vm-is-terminating")
        return {k: gone for k in ("migrate", "rebuild", "restart", "cold_reboot", "terminate")}
    on = {"available": True}
    return {k: on for k in ("migrate", "rebuild", "restart", "cold_reboot", "terminate")}


def instance(
    instance_id: str,
    *,
    status: str,
    type_name: str,
    region_name: str,
    name: str | None = None,
    ip: str | None = None,
    tags: dict[str, str] | None = None,
    ssh_key_names: list[str] | None = None,
) -> dict[str, Any]:
    """An ``Instance`` object (``ip`` and friends are absent while it boots)."""
    body: dict[str, Any] = {"id": instance_id}
    if name is not None:
        body["name"] = name
    if ip is not None:
        body["ip"] = ip
        body["private_ip"] = "10.19.60.24"
        body["hostname"] = f"{ip.replace('.', '-')}.lambda.test"
        body["jupyter_token"] = "53968f128c4a4489b688c2c0a181d083"
        body["jupyter_url"] = f"https://jupyter-{instance_id}.lambda.test"
    body["status"] = status
    body["ssh_key_names"] = list(ssh_key_names or [SSH_KEY_NAME])
    body["file_system_names"] = []
    body["region"] = region(region_name)
    body["instance_type"] = copy.deepcopy(INSTANCE_TYPES[type_name])
    body["actions"] = _actions(status)
    if tags:
        body["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
    return body


def account_instances() -> dict[str, dict[str, Any]]:
    """The instances of the documented account, by id."""
    items = [
        instance(
            ID_ACTIVE,
            status="active",
            type_name="gpu_8x_a100_80gb_sxm4",
            region_name="us-west-2",
            name="train-a100-01",
            ip="198.51.100.7",
            tags={"team": "ml", "job": "pretrain"},
        ),
        instance(
            ID_BOOTING,
            status="booting",
            type_name="gpu_1x_h100_pcie",
            region_name="us-west-3",
            name="train-h100-02",
        ),
        instance(
            ID_UNHEALTHY,
            status="unhealthy",
            type_name="gpu_1x_a10",
            region_name="us-east-1",
            name="eval-a10-01",
            ip="198.51.100.9",
        ),
        instance(
            ID_TERMINATED,
            status="terminated",
            type_name="gpu_1x_a100_sxm4",
            region_name=UNKNOWN_REGION,
            name="old-notebook",
            ip="198.51.100.11",
        ),
    ]
    return {i["id"]: i for i in items}


def error(code: str, message: str, suggestion: str | None = None) -> dict[str, Any]:
    """The error envelope ``{"error": {code, message, suggestion?}}``."""
    detail: dict[str, Any] = {"code": code, "message": message}
    if suggestion is not None:
        detail["suggestion"] = suggestion
    return {"error": detail}


# The documented error bodies (codes pinned by the ApiError* schemas' ``const``).
UNAUTHORIZED = error(
    "global/invalid-api-key",
    "API key was invalid, expired, or deleted.",
    "Check your API key or create a new one, then try again.",
)
INSTANCE_NOT_FOUND = error("global/object-does-not-exist", "Specified instance does not exist.")
INSUFFICIENT_CAPACITY = error(
    "instance-operations/launch/insufficient-capacity",
    "Not enough capacity to fulfill launch request.",
)
QUOTA_EXCEEDED = error(
    "global/quota-exceeded", "Quota exceeded.", "Contact Support to increase your quota."
)

LaunchOutcome = Literal["ok", "insufficient-capacity", "quota-exceeded", "unauthorized"]


class UnexpectedRouteError(AssertionError):
    """The client called something the documented responder does not answer (a test bug)."""


_INSTANCE_PATH = re.compile(rf"^{API}/instances/(?P<id>[^/]+)$")
_SSH_KEY_PATH = re.compile(rf"^{API}/ssh-keys/(?P<id>[^/]+)$")


@dataclass
class DocumentedLambda:
    """An ``httpx.MockTransport`` handler answering like Lambda Cloud API 1.8.3 documents.

    Args:
        launch_outcome: What ``POST /instance-operations/launch`` answers.
        throttle: Answer this many requests (the first ones) with HTTP 429.
        retry_after: The ``Retry-After`` header of those 429 answers.
        instances: The account's instances (default: ``account_instances()``).
    """

    launch_outcome: LaunchOutcome = "ok"
    throttle: int = 0
    retry_after: str = "2"
    instances: dict[str, dict[str, Any]] = field(default_factory=account_instances)
    ssh_keys: list[dict[str, str]] = field(
        default_factory=lambda: [
            {"id": SSH_KEY_ID, "name": SSH_KEY_NAME, "public_key": PUBLIC_KEY},
        ]
    )
    #: Every request received, in order.
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if self.throttle > 0:
            self.throttle -= 1
            return httpx.Response(
                429,
                text="Too Many Requests",
                headers={"Retry-After": self.retry_after, DOCUMENTED_HEADER: DOCUMENTED_VALUE},
            )
        if request.headers.get("authorization") in (None, f"Bearer {REVOKED_KEY}"):
            return _answer(401, UNAUTHORIZED)
        status, body = self._route(request)
        return _answer(status, body)

    def _route(self, request: httpx.Request) -> tuple[int, Any]:
        method, path = request.method, request.url.path
        if method == "GET" and path == f"{API}/instance-types":
            return 200, {"data": instance_types_data()}
        if method == "POST" and path == f"{API}/instance-operations/launch":
            return self._launch(_json(request))
        if method == "GET" and path == f"{API}/instances":
            return 200, {"data": [copy.deepcopy(i) for i in self.instances.values()]}
        if method == "GET" and (match := _INSTANCE_PATH.match(path)):
            found = self.instances.get(match["id"])
            return (200, {"data": copy.deepcopy(found)}) if found else (404, INSTANCE_NOT_FOUND)
        if method == "POST" and path == f"{API}/instance-operations/terminate":
            return self._terminate(_json(request)["instance_ids"])
        if method == "POST" and path == f"{API}/instance-operations/restart":
            return self._restart(_json(request)["instance_ids"])
        if method == "GET" and path == f"{API}/ssh-keys":
            return 200, {"data": copy.deepcopy(self.ssh_keys)}
        if method == "POST" and path == f"{API}/ssh-keys":
            return self._add_key(_json(request))
        if method == "DELETE" and (match := _SSH_KEY_PATH.match(path)):
            return self._delete_key(match["id"])
        raise UnexpectedRouteError(f"no documented answer for {method} {path}")

    def _launch(self, body: dict[str, Any]) -> tuple[int, Any]:
        if self.launch_outcome == "unauthorized":
            return 401, UNAUTHORIZED
        if self.launch_outcome == "insufficient-capacity":
            return 400, INSUFFICIENT_CAPACITY
        if self.launch_outcome == "quota-exceeded":
            return 400, QUOTA_EXCEEDED
        type_name = body["instance_type_name"]
        if type_name not in INSTANCE_TYPES:
            return 404, error(
                "global/object-does-not-exist",
                f"Instance type {type_name!r} does not exist.",
                "Choose an instance type from /instance-types.",
            )
        known = {k["name"] for k in self.ssh_keys}
        missing = [k for k in body["ssh_key_names"] if k not in known]
        if missing:
            return 404, error(
                "global/object-does-not-exist",
                f"SSH key {missing[0]!r} does not exist.",
                "Add the SSH key first.",
            )
        if body["region_name"] not in CAPACITY[type_name]:
            return 400, INSUFFICIENT_CAPACITY
        tags = {t["key"]: t["value"] for t in body.get("tags", [])}
        self.instances[ID_LAUNCHED] = instance(
            ID_LAUNCHED,
            status="booting",
            type_name=type_name,
            region_name=body["region_name"],
            name=body.get("name"),
            tags=tags or None,
            ssh_key_names=body["ssh_key_names"],
        )
        return 200, {"data": {"instance_ids": [ID_LAUNCHED]}}

    def _terminate(self, ids: list[str]) -> tuple[int, Any]:
        if any(i not in self.instances or _gone(self.instances[i]) for i in ids):
            return 404, INSTANCE_NOT_FOUND
        done = []
        for instance_id in ids:
            item = self.instances[instance_id]
            item["status"] = "terminating"
            item["actions"] = _actions("terminating")
            done.append(copy.deepcopy(item))
        return 200, {"data": {"terminated_instances": done}}

    def _restart(self, ids: list[str]) -> tuple[int, Any]:
        if any(i not in self.instances or _gone(self.instances[i]) for i in ids):
            return 404, INSTANCE_NOT_FOUND
        restarted = [copy.deepcopy(self.instances[i]) for i in ids]
        return 200, {"data": {"restarted_instances": restarted}}

    def _add_key(self, body: dict[str, Any]) -> tuple[int, Any]:
        name = body["name"]
        if any(k["name"] == name for k in self.ssh_keys):
            return 400, error(
                "global/invalid-parameters",
                f"An SSH key named {name!r} already exists.",
                "Choose another name.",
            )
        key = {"id": SSH_KEY_ID_ADDED, "name": name, "public_key": body["public_key"]}
        self.ssh_keys.append(key)
        return 200, {"data": dict(key)}

    def _delete_key(self, key_id: str) -> tuple[int, Any]:
        kept = [k for k in self.ssh_keys if k["id"] != key_id]
        if len(kept) == len(self.ssh_keys):
            return 400, error("global/invalid-parameters", f"SSH key {key_id!r} does not exist.")
        self.ssh_keys = kept
        return 200, {"data": {}}

    def count(self, method: str, path: str) -> int:
        """How many requests of ``method`` to ``path`` (relative to /api/v1) arrived."""
        return sum(1 for r in self.requests if r.method == method and r.url.path == API + path)


def _gone(item: dict[str, Any]) -> bool:
    return item["status"] in ("terminated", "preempted")


def _json(request: httpx.Request) -> dict[str, Any]:
    body = json.loads(request.content)
    if not isinstance(body, dict):
        raise UnexpectedRouteError(f"{request.method} {request.url.path}: body is not an object")
    return body


def _answer(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body, headers={DOCUMENTED_HEADER: DOCUMENTED_VALUE})


def transport(responder: DocumentedLambda | None = None) -> httpx.MockTransport:
    """A transport that answers from ``responder`` (a fresh ``DocumentedLambda`` by default)."""
    return httpx.MockTransport(responder or DocumentedLambda())
