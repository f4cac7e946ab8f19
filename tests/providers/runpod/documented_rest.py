"""RunPod REST v2 answers written from the vendor's document (no live account needed).

``DocumentedRunPodRest`` is an ``httpx.MockTransport`` handler for the part of
``https://api.runpod.io/v2`` the SDK uses. Shapes, status codes and error bodies follow the
official REST v2 OpenAPI document (``../shared/reference/runpod/rest-v2-openapi.json``,
2.0.0 of 2026-08-18): its ``Pod`` and ``GpuType`` examples (``pytorch-training``, SSH
``proxy``/``direct``, ``runtime.ports`` with ``private``/``public``/``ip``), the statuses
PROVISIONING -> STARTING -> RUNNING and EXITED, ``actions`` per status, ``runtime`` null unless
RUNNING, ``cost`` 0.0 when EXITED, 201 for createPod, 204 for deletePod, 200 with the pod for
start/stop, 409 for an action the status does not allow, and RFC 9457 problem bodies
``{title, status, detail}`` with the documented examples ("missing bearer token", "resource
not found", "rate limit exceeded for the minute window" with ``Retry-After``).

Ours (listed in cassettes/runpod/rest/PROVENANCE.md): every value (ids, names, prices, stock,
IPs); the ``detail`` texts the document does not give (an invalid key, no capacity, the 402
balance, the 409 conflict); how fast a new pod comes up; the 502 HTML page.

Every answer carries ``x-documented-response: runpod-rest-v2-openapi``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

from . import documented as G

API = "https://api.runpod.io"
DOCUMENTED_HEADER = "x-documented-response"
DOCUMENTED_VALUE = "runpod-rest-v2-openapi"
PROBLEM = "application/problem+json"
#: The documented RateLimit-Policy example (sent with every authenticated answer).
POLICY = '"minute";q=60;w=60, "hour";q=3000;w=3600, "day";q=50000;w=86400'

REVOKED_KEY = G.REVOKED_KEY
ID_READY, ID_BOOTING, ID_EXITED, ID_MISSING = G.ID_READY, G.ID_BOOTING, G.ID_EXITED, G.ID_MISSING
#: A pod in RunPod's ERROR status.
ID_ERROR = "err0rc0nt41n3r"
NEW_IDS = G.NEW_IDS
POD_PUBLIC_IP = G.POD_PUBLIC_IP

#: RunPod's data centers of the catalog: id -> (name, country).
DATA_CENTERS = {
    "US-TX-3": ("US Texas 3", "US"),
    "US-KS-2": ("US Kansas 2", "US"),
    "CA-MTL-1": ("CA Montreal 1", "CA"),
    "EU-RO-1": ("EU Romania 1", "RO"),
}


def gpu(
    gpu_id: str,
    name: str,
    manufacturer: str,
    memory: int,
    *,
    secure: float,
    community: float,
    stock: Mapping[str, Mapping[str, str]],
    max_count: int = 8,
    pool: str | None = None,
) -> dict[str, Any]:
    """A catalog entry; ``stock`` is cloud -> data center -> AvailabilityLevel (per GPU type,
    before the request's count and countries are applied)."""
    return {
        "id": gpu_id,
        "name": name,
        "pool": pool,
        "manufacturer": manufacturer,
        "memory": memory,
        "secure": secure > 0,
        "community": community > 0,
        "price": {"secure": secure, "community": community},
        "maxCount": {
            "secure": max_count if secure > 0 else 0,
            "community": max_count if community > 0 else 0,
        },
        "_stock": {cloud: dict(levels) for cloud, levels in stock.items()},
    }


def catalog() -> list[dict[str, Any]]:
    """In stock in both clouds, one cloud only, out of stock, and a GPU we do not know."""
    return [
        gpu(G.H100, "H100 SXM", "NVIDIA", 80, secure=2.99, community=2.69, pool="HOPPER_141",
            stock={"SECURE": {"US-TX-3": "HIGH", "US-KS-2": "MEDIUM"},
                   "COMMUNITY": {"US-KS-2": "LOW"}}),
        gpu(G.A100_SXM, "A100 SXM", "NVIDIA", 80, secure=1.89, community=1.49,
            stock={"SECURE": {"US-TX-3": "LOW"}, "COMMUNITY": {}}),
        gpu(G.A100_80, "A100 PCIe", "NVIDIA", 80, secure=1.64, community=1.19,
            stock={"SECURE": {"CA-MTL-1": "MEDIUM", "US-KS-2": "LOW"},
                   "COMMUNITY": {"US-TX-3": "HIGH"}}),
        gpu(G.RTX4090, "RTX 4090", "NVIDIA", 24, secure=0.69, community=0.34, pool="ADA_24",
            stock={"SECURE": {"EU-RO-1": "NONE"}, "COMMUNITY": {"EU-RO-1": "NONE"}}),
        gpu(G.MI300X, "MI300X", "AMD", 192, secure=2.49, community=0.0,
            stock={"SECURE": {"US-TX-3": "LOW"}, "COMMUNITY": {}}),
    ]  # fmt: skip


_RANK = {"NONE": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3}


def _catalog_view(
    entry: Mapping[str, Any], query: Mapping[str, list[str]]
) -> dict[str, Any] | None:
    """A ``GpuType`` as listGpuTypes answers it for the query (None: dropped from the list)."""
    shown = {k: copy.deepcopy(v) for k, v in entry.items() if not k.startswith("_")}
    if "AVAILABILITY" not in ",".join(query.get("include", [])):
        return shown
    cloud = (query.get("cloud") or ["SECURE"])[0]  # upstream default: SECURE
    count = int((query.get("count") or ["1"])[0])
    countries = set(",".join(query.get("countryCodes", [])).split(",")) - {""}
    field = cloud.lower()
    levels = entry["_stock"].get(cloud, {})
    centers = [
        {"id": dc, "name": DATA_CENTERS[dc][0], "availability": level}
        for dc, level in levels.items()
        if not countries or DATA_CENTERS[dc][1] in countries
    ]
    if countries and not centers:
        return None  # "a GPU type with no data center in those countries drops out"
    if not entry[field] or count > entry["maxCount"][field]:
        centers = [dict(c, availability="NONE") for c in centers]
    best = max((_RANK[c["availability"]] for c in centers), default=0)
    shown["availability"] = next(k for k, v in _RANK.items() if v == best)
    shown["dataCenters"] = centers
    shown["cudaVersions"] = [
        {"version": "12.4", "available": best > 0},
        {"version": "12.8", "available": best > 0},
    ]
    return shown


def ssh(pod_id: str, port: int | None) -> dict[str, Any]:
    """``PodSsh``: the proxy always, the direct endpoint once port 22 is mapped."""
    return {
        "proxy": {
            "host": "ssh.runpod.io",
            "port": 22,
            "username": f"{pod_id}-64411eb2",
            "command": f"ssh {pod_id}-64411eb2@ssh.runpod.io",
        },
        "direct": None
        if port is None
        else {
            "host": POD_PUBLIC_IP,
            "port": port,
            "username": "root",
            "command": f"ssh root@{POD_PUBLIC_IP} -p {port}",
        },
    }


def runtime(public_port: int | None) -> dict[str, Any]:
    """``PodRuntime``: the container is up; SSH on a public port (None: not mapped yet)."""
    ports = [{"private": 8888, "public": 60011, "type": "http", "ip": "100.65.13.7"}]
    if public_port is not None:
        ports.insert(0, {"private": 22, "public": public_port, "type": "tcp", "ip": POD_PUBLIC_IP})
    return {
        "uptime": 412,
        "gpus": [{"util": 0, "memoryUtil": 1}],
        "cpu": {"util": 2},
        "memory": {"util": 3},
        "ports": ports,
    }


ACTIONS = {
    "PROVISIONING": ["stop", "terminate"],
    "STARTING": ["stop", "terminate"],
    "RUNNING": ["stop", "restart", "terminate"],
    "EXITED": ["start", "terminate"],
    "ERROR": ["start", "terminate"],
}


def pod(
    pod_id: str,
    name: str,
    status: str,
    gpu_id: str,
    *,
    count: int = 1,
    price: float,
    cloud: str = "SECURE",
    data_center: str | None = "US-TX-3",
    ssh_port: int | None = None,
    image: str = "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
) -> dict[str, Any]:
    """A ``Pod`` with every field the REST v2 document requires."""
    running = status == "RUNNING"
    return {
        "id": pod_id,
        "name": name,
        "image": image,
        "args": "",
        "disk": 50,
        "ports": ["22/tcp"],
        "env": {},
        "registry": None,
        "status": status,
        "actions": list(ACTIONS.get(status, [])),
        "mounts": {},
        "gpu": {"id": gpu_id, "count": count},
        "cloud": cloud,
        "dataCenterId": data_center,
        "cudaVersion": "12.8" if data_center else None,
        "ssh": ssh(pod_id, ssh_port if running else None),
        "template": None,
        "cost": round(price * count, 4) if status not in ("EXITED", "TERMINATED") else 0.0,
        "locked": False,
        "globalNetworking": {"enabled": False},
        "runtime": runtime(ssh_port) if running and ssh_port is not None else None,
        "createdAt": "2026-11-23T09:00:00Z",
        "startedAt": "2026-11-23T09:02:00Z" if running else None,
    }


def initial_pods() -> list[dict[str, Any]]:
    return [
        pod(ID_READY, "sky-train-1", "RUNNING", G.H100, price=2.99, ssh_port=10341),
        pod(ID_BOOTING, "sky-boot-1", "STARTING", G.H100, price=2.99),
        pod(ID_EXITED, "notebook-old", "EXITED", G.RTX4090, price=0.69),
        pod(ID_ERROR, "sky-broken-1", "ERROR", G.A100_80, price=1.64, data_center="CA-MTL-1"),
    ]


BAD_GATEWAY_HTML = G.BAD_GATEWAY_HTML


def problem(status: int, title: str, detail: str, **headers: str) -> httpx.Response:
    """An RFC 9457 problem answer."""
    body = {"title": title, "status": status, "detail": detail}
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"content-type": PROBLEM, **headers}
    )


def rate_limited(retry_after: str = "2") -> httpx.Response:
    """The documented 429 (body of the ``rateLimited`` example, ``Retry-After`` seconds)."""
    return problem(
        429,
        "Too Many Requests",
        "rate limit exceeded for the minute window",
        **{"Retry-After": retry_after, "RateLimit": '"minute";r=0;t=2', "RateLimit-Policy": POLICY},
    )


def bad_gateway() -> httpx.Response:
    return httpx.Response(
        502, text=BAD_GATEWAY_HTML, headers={"content-type": "text/html; charset=utf-8"}
    )


def no_balance() -> httpx.Response:
    """createPod's 402 ("Insufficient balance" in the operation's table; detail is ours)."""
    return problem(402, "Payment Required", "insufficient balance to deploy this pod")


def no_capacity() -> httpx.Response:
    """createPod's 400 for a GPU and data center that could not be placed (detail is ours:
    the document says capacity has "only a human-readable detail")."""
    return problem(
        400, "Bad Request", "no machine with the requested GPU is available in these data centers"
    )


_ROUTES = (
    ("GET", re.compile(r"^/v2/pods$"), "listPods"),
    ("POST", re.compile(r"^/v2/pods$"), "createPod"),
    ("GET", re.compile(r"^/v2/pods/(?P<id>[^/]+)$"), "getPod"),
    ("DELETE", re.compile(r"^/v2/pods/(?P<id>[^/]+)$"), "deletePod"),
    ("POST", re.compile(r"^/v2/pods/(?P<id>[^/]+)/action$"), "podAction"),
    ("GET", re.compile(r"^/v2/catalog/gpus$"), "listGpuTypes"),
)


def _route(request: httpx.Request) -> tuple[str, str | None] | None:
    """(operationId, pod id in the path) of a request, or None."""
    for method, pattern, operation in _ROUTES:
        match = pattern.match(request.url.path)
        if match and request.method == method:
            return operation, match.groupdict().get("id")
    return None


class DocumentedRunPodRest:
    """An ``httpx.MockTransport`` handler answering like RunPod's REST API v2.

    Args:
        inject: Answers (``httpx.Response`` or an exception to raise) sent once each, in
            order, before normal handling, keyed by operationId (``createPod``, ``getPod``,
            ...).

    It keeps the account's pods: a launch adds one in PROVISIONING that is STARTING at the
    first ``getPod``, RUNNING without the SSH port at the second and with it from the third;
    stop, start and delete change or remove them. ``requests`` holds every request and
    ``calls`` their (operationId, path id, JSON body).
    """

    def __init__(self, *, inject: Mapping[str, list[Any]] | None = None) -> None:
        self.pods: dict[str, dict[str, Any]] = {p["id"]: p for p in initial_pods()}
        self.catalog = {g["id"]: g for g in catalog()}
        self.requests: list[httpx.Request] = []
        self.calls: list[tuple[str, str | None, Any]] = []
        self._inject = {key: list(values) for key, values in (inject or {}).items()}
        self._new_ids = list(NEW_IDS)
        self._gets: dict[str, int] = {}

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def sent(self, operation: str) -> list[Any]:
        """The JSON bodies (or path ids, for bodiless calls) of every ``operation`` call."""
        return [
            body if body is not None else pid for op, pid, body in self.calls if op == operation
        ]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self._handle(request)
        response.headers[DOCUMENTED_HEADER] = DOCUMENTED_VALUE
        return response

    def _handle(self, request: httpx.Request) -> httpx.Response:
        routed = _route(request)
        if routed is None:
            return httpx.Response(404, text="404 page not found")  # not RunPod's problem body
        operation, pod_id = routed
        body = json.loads(request.content) if request.content else None
        self.calls.append((operation, pod_id, body))
        queued = self._inject.get(operation)
        if queued:
            answer = queued.pop(0)
            if isinstance(answer, Exception):
                raise answer
            assert isinstance(answer, httpx.Response)
            return answer
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return problem(401, "Unauthorized", "missing bearer token")
        if auth.removeprefix("Bearer ").startswith(REVOKED_KEY):
            return problem(401, "Unauthorized", "invalid bearer token")
        response = getattr(self, f"_{operation}")(request, pod_id, body)
        assert isinstance(response, httpx.Response)
        response.headers["RateLimit-Policy"] = POLICY
        return response

    # -- operations -------------------------------------------------------------------------

    def _listGpuTypes(self, request: httpx.Request, _: Any, __: Any) -> httpx.Response:
        query: dict[str, list[str]] = {}
        for key, value in request.url.params.multi_items():
            query.setdefault(key, []).append(value)
        shown = [_catalog_view(g, query) for g in self.catalog.values()]
        return httpx.Response(200, json={"gpus": [g for g in shown if g is not None]})

    def _view(self, pod_id: str) -> dict[str, Any]:
        current = self.pods[pod_id]
        looks = self._gets[pod_id] = self._gets.get(pod_id, 0) + 1
        if pod_id in NEW_IDS and current["status"] in ("PROVISIONING", "STARTING", "RUNNING"):
            if looks == 1:
                current.update(status="STARTING", actions=ACTIONS["STARTING"])
            else:
                port = 10400 + NEW_IDS.index(pod_id) if looks >= 3 else None
                current.update(
                    status="RUNNING",
                    actions=ACTIONS["RUNNING"],
                    runtime=runtime(port),
                    ssh=ssh(pod_id, port),
                    startedAt="2026-11-23T09:02:00Z",
                )
        return copy.deepcopy(current)

    def _missing(self) -> httpx.Response:
        return problem(404, "Not Found", "resource not found")

    def _getPod(self, _: httpx.Request, pod_id: str, __: Any) -> httpx.Response:
        if pod_id not in self.pods:
            return self._missing()
        return httpx.Response(200, json=self._view(pod_id))

    def _listPods(self, *_: Any) -> httpx.Response:
        return httpx.Response(200, json={"pods": [copy.deepcopy(p) for p in self.pods.values()]})

    def _createPod(self, _: httpx.Request, __: Any, body: Any) -> httpx.Response:
        if not isinstance(body, dict) or not body.get("name") or "gpu" not in body:
            return problem(422, "Unprocessable Entity", "Request validation failed.")
        entry = self.catalog.get(body["gpu"]["id"])
        if entry is None:
            return problem(400, "Bad Request", "unknown GPU type")
        cloud = body.get("cloud", "SECURE")
        count = body["gpu"].get("count", 1)
        levels = entry["_stock"].get(cloud, {})
        wanted = body.get("dataCenterIds") or list(levels)
        places = [dc for dc in wanted if levels.get(dc, "NONE") != "NONE"]
        if not places or count > entry["maxCount"][cloud.lower()]:
            return no_capacity()
        pod_id = self._new_ids.pop(0)
        price = entry["price"][cloud.lower()]
        created = pod(
            pod_id, body["name"], "PROVISIONING", entry["id"], count=count, price=price,
            cloud=cloud, data_center=places[0], image=body.get("image", ""),
        )  # fmt: skip
        created.update(
            args=body.get("args", ""),
            disk=body.get("disk", 50),
            ports=body.get("ports", []),
            env=body.get("env", {}),
        )
        self.pods[pod_id] = created
        return httpx.Response(201, json=copy.deepcopy(created))

    def _deletePod(self, _: httpx.Request, pod_id: str, __: Any) -> httpx.Response:
        if self.pods.pop(pod_id, None) is None:
            return self._missing()
        return httpx.Response(204)

    def _podAction(self, _: httpx.Request, pod_id: str, body: Any) -> httpx.Response:
        if pod_id not in self.pods:
            return self._missing()
        current = self.pods[pod_id]
        action = body.get("action") if isinstance(body, dict) else None
        if action not in ("start", "stop", "restart", "terminate"):
            return problem(422, "Unprocessable Entity", "Request validation failed.")
        if action not in current["actions"]:
            return problem(
                409, "Conflict", f"action {action} is not valid for a pod in {current['status']}"
            )
        if action == "terminate":
            del self.pods[pod_id]
            return httpx.Response(204)
        if action == "stop":
            current.update(status="EXITED", runtime=None, cost=0.0, startedAt=None)
            current["ssh"]["direct"] = None
        elif action == "start":
            self._gets[pod_id] = 0  # comes up again like a new pod
            current.update(status="STARTING", runtime=None)
            if pod_id not in NEW_IDS:  # old pods: straight back up on the next read
                current.update(status="RUNNING", runtime=runtime(10341))
                current["ssh"] = ssh(pod_id, 10341)
            entry = self.catalog[current["gpu"]["id"]]
            current["cost"] = round(
                entry["price"][current["cloud"].lower()] * current["gpu"]["count"], 4
            )
            current["startedAt"] = "2026-11-23T12:00:00Z"
        current["actions"] = list(ACTIONS.get(current["status"], []))
        return httpx.Response(200, json=copy.deepcopy(current))
