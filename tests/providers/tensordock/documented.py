"""TensorDock v2 answers written from the documented responses (no live account needed).

``DocumentedTensorDock`` is an ``httpx.MockTransport`` handler for the v2 endpoints our client
uses. Shapes come from ``../shared/reference/tensordock/FACTS.md`` (TensorDock's API docs and
the terraform provider's client), as described by our own ``specs/tensordock/openapi.yaml``:

* ``GET /locations`` -> ``{"data": {"locations": [...]}}`` and ``GET /hostnodes`` ->
  ``{"data": {"hostnodes": [...]}}`` with the documented fields;
* ``POST /instances`` -> ``{"data": {"type": "virtualmachine", "id", "name", "status":
  "running"}}`` (the docs' example status);
* ``GET /instances/{id}``: the docs' **bare** object for most ids and the ``{"data": ...}``
  wrapper for ``WRAPPED_IDS`` (the terraform client accepts both: spec I2);
* ``GET /instances``: ``{"data": {"instances": [...]}}``, or the getting-started page's
  ``{"data": {"type": "list", "id": "instances", "attributes": {"instances": [...]}}}`` with
  ``list_form="attributes"`` (spec I3);
* start/stop -> ``{"data": {"type": "instance", "id", "attributes": {"status"}}}``; delete ->
  ``{"data": {"type": "success", "attributes": {"message": "Instance deleted successfully"}}}``.

The *values* are ours (ids, cities, prices, names). What TensorDock does not document and we
therefore chose (PROVENANCE.md lists it): every error body (the JSON:API ``errors`` form of
the derived spec, spec I1) and its wording, 429 without ``Retry-After``, the 502 page.

Every answer carries ``x-documented-response: tensordock-docs-v2`` so a cassette built from
these answers says so in every interaction (a live re-recording does not have the header).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

BASE_URL = "https://dashboard.tensordock.com/api/v2"
API_PREFIX = "/api/v2"
DOCUMENTED_HEADER = "x-documented-response"
DOCUMENTED_VALUE = "tensordock-docs-v2"

#: Tokens starting with this are refused with 401.
REVOKED_KEY = "revoked-tensordock-token-0000"

LOC_DALLAS = "5c2d1e4a-0b7e-4d6c-9a51-3f0e8d7c6b01"
LOC_FRANKFURT = "8e4f2a1b-6c3d-4e5f-8a9b-0c1d2e3f4a02"
LOC_TORONTO = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c03"
NODE_DALLAS = "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b11"
NODE_FRANKFURT = "1e2d3c4b-5a6f-4e7d-8c9b-0a1f2e3d4c12"

ID_RUNNING = "3f6c1b2a-9d8e-4f70-8a1b-2c3d4e5f6a21"
ID_STARTING = "4a7d2c3b-0e9f-4a81-9b2c-3d4e5f6a7b22"
ID_STOPPED = "5b8e3d4c-1f0a-4b92-8c3d-4e5f6a7b8c23"
ID_DISASSOCIATED = "6c9f4e5d-2a1b-4ca3-9d4e-5f6a7b8c9d24"
ID_PORTS = "7d0a5f6e-3b2c-4db4-8e5f-6a7b8c9d0e25"
ID_MISSING = "00000000-0000-4000-8000-000000000000"
#: GET /instances/{id} answers these wrapped in {"data": ...} (the other documented form).
WRAPPED_IDS = frozenset({ID_STOPPED, ID_PORTS})
#: Ids handed out by create, in order.
NEW_IDS = (
    "9e1b7a8c-5d4e-4f06-9a7b-8c9d0e1f2a31",
    "9e1b7a8c-5d4e-4f06-9a7b-8c9d0e1f2a32",
    "9e1b7a8c-5d4e-4f06-9a7b-8c9d0e1f2a33",
)
#: The dedicated IP create assigns.
NEW_IP = "203.0.113.50"

PRICING = {"per_vcpu_hr": 0.003, "per_gb_ram_hr": 0.002, "per_gb_storage_hr": 0.00005}
PRICING_EU = {"per_vcpu_hr": 0.004, "per_gb_ram_hr": 0.0025, "per_gb_storage_hr": 0.00006}
NETWORK = {
    "dedicated_ip_available": True,
    "port_forwarding_available": True,
    "network_storage_available": False,
}


def location_gpu(
    v0_name: str,
    display: str,
    max_count: int,
    price: float,
    pricing: Mapping[str, float] = PRICING,
    *,
    max_vcpus: int = 64,
    max_ram_gb: int = 256,
) -> dict[str, Any]:
    """A location's GPU entry with every documented field."""
    return {
        "v0Name": v0_name,
        "displayName": display,
        "max_count": max_count,
        "price_per_hr": price,
        "resources": {"max_vcpus": max_vcpus, "max_ram_gb": max_ram_gb, "max_storage_gb": 4000},
        "pricing": dict(pricing),
        "network_features": dict(NETWORK),
    }


def locations() -> list[dict[str, Any]]:
    """The documented ``GET /locations`` list."""
    return [
        {
            "id": LOC_DALLAS,
            "city": "Dallas",
            "stateprovince": "Texas",
            "country": "United States",
            "tier": 3,
            "gpus": [
                location_gpu("geforcertx4090-pcie-24gb", "GeForce RTX 4090 PCIe 24GB", 2, 0.35),
                location_gpu("h100-sxm5-80gb", "H100 SXM5 80GB", 0, 2.25),
            ],
        },
        {
            "id": LOC_FRANKFURT,
            "city": "Frankfurt",
            "stateprovince": "Hesse",
            "country": "Germany",
            "tier": 4,
            "gpus": [
                location_gpu("h100-sxm5-80gb", "H100 SXM5 80GB", 2, 2.45, PRICING_EU),
                location_gpu("rtxa6000-pcie-48gb", "RTX A6000 PCIe 48GB", 1, 0.45, PRICING_EU),
                # A GPU our table does not know: never offered under a wrong name.
                location_gpu("mi300x-oam-192gb", "Instinct MI300X 192GB", 8, 3.10, PRICING_EU),
            ],
        },
        {
            "id": LOC_TORONTO,
            "city": "Toronto",
            "stateprovince": "Ontario",
            "country": "Canada",
            "tier": 3,
            "gpus": [
                location_gpu("a100-pcie-80gb", "A100 PCIe 80GB", 1, 1.20),
                location_gpu("geforcertx4090-pcie-24gb", "GeForce RTX 4090 PCIe 24GB", 1, 0.37),
            ],
        },
    ]


def hostnodes() -> list[dict[str, Any]]:
    """The documented ``GET /hostnodes`` list."""

    def node(
        node_id: str, location_id: str, city: str, country: str, gpus: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return {
            "id": node_id,
            "location_id": location_id,
            "engine": "kvm",
            "uptime_percentage": 99.7,
            "available_resources": {
                "gpus": gpus,
                "vcpu_count": 32,
                "ram_gb": 128,
                "storage_gb": 2000,
                "max_vcpus_per_gpu": 8,
                "max_ram_per_gpu": 32,
                "max_vcpus": 32,
                "max_ram_gb": 128,
                "max_storage_gb": 2000,
                "available_ports": [20000, 20001, 20002],
                "has_public_ip_available": True,
            },
            "pricing": dict(PRICING),
            "location": {
                "uuid": location_id,
                "city": city,
                "stateprovince": "",
                "country": country,
                "has_network_storage": False,
                "network_speed_gbps": 10,
                "network_speed_upload_gbps": 10,
                "organization": "host-org-1",
                "organizationName": "Example Host",
                "tier": 3,
            },
        }

    return [
        node(
            NODE_DALLAS,
            LOC_DALLAS,
            "Dallas",
            "United States",
            [{"v0Name": "geforcertx4090-pcie-24gb", "availableCount": 2, "price_per_hr": 0.35}],
        ),
        node(
            NODE_FRANKFURT,
            LOC_FRANKFURT,
            "Frankfurt",
            "Germany",
            [{"v0Name": "h100-sxm5-80gb", "availableCount": 0, "price_per_hr": 2.45}],
        ),
    ]


def instance(
    instance_id: str,
    name: str,
    status: str,
    v0_name: str,
    gpus: int,
    *,
    ip: str | None = None,
    rate: float | None = None,
    port_forwards: list[dict[str, int]] | None = None,
) -> dict[str, Any]:
    """An instance as ``GET /instances/{id}`` documents it (bare form)."""
    return {
        "type": "instance",
        "id": instance_id,
        "name": name,
        "status": status,
        "ipAddress": ip,
        "portForwards": port_forwards or [],
        "resources": {
            "vcpu_count": 4 * gpus,
            "ram_gb": 16 * gpus,
            "storage_gb": 100,
            "gpus": {v0_name: {"count": gpus, "v0Name": v0_name}},
        },
        "rateHourly": rate,
    }


def initial_instances() -> list[dict[str, Any]]:
    """The documented organization: an instance in each status the client maps."""
    return [
        instance(
            ID_RUNNING, "sky-run-1", "running", "geforcertx4090-pcie-24gb", 1,
            ip="203.0.113.10", rate=0.4,
        ),
        instance(ID_STARTING, "sky-boot-1", "starting", "h100-sxm5-80gb", 2, rate=5.1),
        instance(ID_STOPPED, "notebook", "Stopped", "rtxa6000-pcie-48gb", 1, rate=0.01),
        instance(
            ID_DISASSOCIATED, "old-box", "StoppedDisassociated", "a100-pcie-80gb", 1, rate=0.005
        ),
        instance(
            ID_PORTS, "sky-ports-1", "running", "geforcertx4090-pcie-24gb", 1,
            ip="198.51.100.7", rate=0.4,
            port_forwards=[{"internal_port": 22, "external_port": 20001}],
        ),
    ]  # fmt: skip


def list_item(stored: dict[str, Any]) -> dict[str, Any]:
    """A ``GET /instances`` item: ``{type, id, attributes: {...}}``."""
    attributes = {k: v for k, v in stored.items() if k not in ("type", "id")}
    return {"type": "virtualmachine", "id": stored["id"], "attributes": attributes}


def error_body(status: int, title: str, detail: str) -> dict[str, Any]:
    """An error body in the JSON:API form (TensorDock documents none: spec I1, inferred)."""
    return {"errors": [{"status": str(status), "title": title, "detail": detail}]}


def error(status: int, title: str, detail: str) -> httpx.Response:
    return httpx.Response(status, json=error_body(status, title, detail))


BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


def rate_limited() -> httpx.Response:
    """429 (documented) without Retry-After (header names are not documented)."""
    return error(429, "Too Many Requests", "Rate limit of 100 requests per minute exceeded")


def bad_gateway() -> httpx.Response:
    """502 from a gateway: an HTML page, not the API's JSON."""
    return httpx.Response(
        502, text=BAD_GATEWAY_HTML, headers={"content-type": "text/html; charset=utf-8"}
    )


class DocumentedTensorDock:
    """An ``httpx.MockTransport`` handler answering like TensorDock's v2 API.

    Args:
        inject: Answers sent (once each, in order) before the normal handling of a route;
            keys are ``(METHOD, route)`` with the route templated like the spec
            (``("GET", "/instances/{id}")``). A value may be an ``httpx`` exception to raise.
        list_form: ``"instances"`` (``data.instances``) or ``"attributes"``
            (``data.attributes.instances``).
        balance: The organization's balance in USD; create refuses below $1 (the docs' rule).

    Create adds an instance (``running``, with a dedicated IP), stop/start change its status,
    delete removes it. ``requests`` holds every request received.
    """

    def __init__(
        self,
        *,
        inject: Mapping[tuple[str, str], list[Any]] | None = None,
        list_form: str = "instances",
        balance: float = 25.0,
    ) -> None:
        self.instances: dict[str, dict[str, Any]] = {i["id"]: i for i in initial_instances()}
        self.requests: list[httpx.Request] = []
        self.list_form = list_form
        self.balance = balance
        self._inject = {key: list(values) for key, values in (inject or {}).items()}
        self._new_ids = list(NEW_IDS)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def count(self, method: str, route: str) -> int:
        """How many requests hit ``method route`` (route as in ``inject``)."""
        return sum(1 for r in self.requests if r.method == method and self._route(r)[0] == route)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self._handle(request)
        response.headers[DOCUMENTED_HEADER] = DOCUMENTED_VALUE
        return response

    @staticmethod
    def _route(request: httpx.Request) -> tuple[str, str | None]:
        parts = request.url.path[len(API_PREFIX) + 1 :].split("/")
        if parts[0] == "instances" and len(parts) == 2:
            return "/instances/{id}", parts[1]
        if parts[0] == "instances" and len(parts) == 3:
            return f"/instances/{{id}}/{parts[2]}", parts[1]
        return "/" + "/".join(parts), None

    def _handle(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.startswith(API_PREFIX + "/"):
            return httpx.Response(404, text="Not Found")
        route, instance_id = self._route(request)
        queued = self._inject.get((request.method, route))
        if queued:
            answer = queued.pop(0)
            if isinstance(answer, Exception):
                raise answer
            assert isinstance(answer, httpx.Response)
            return answer
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[len("Bearer ") :].startswith(REVOKED_KEY):
            return error(401, "Unauthorized", "Invalid or missing API token")
        handler = {
            ("GET", "/locations"): self._locations,
            ("GET", "/hostnodes"): self._hostnodes,
            ("GET", "/instances"): self._list,
            ("POST", "/instances"): self._create,
            ("GET", "/instances/{id}"): self._get,
            ("DELETE", "/instances/{id}"): self._delete,
            ("POST", "/instances/{id}/start"): self._start,
            ("POST", "/instances/{id}/stop"): self._stop,
        }.get((request.method, route))
        if handler is None:
            return error(404, "Not Found", f"No route {request.method} {request.url.path}")
        return handler(request, instance_id)

    @staticmethod
    def _json(body: Any, status: int = 200) -> httpx.Response:
        return httpx.Response(status, json=body)

    @staticmethod
    def _missing(instance_id: str | None) -> httpx.Response:
        return error(404, "Not Found", f"Instance {instance_id} not found")

    def _locations(self, _: httpx.Request, __: str | None) -> httpx.Response:
        return self._json({"data": {"locations": locations()}})

    def _hostnodes(self, _: httpx.Request, __: str | None) -> httpx.Response:
        return self._json({"data": {"hostnodes": hostnodes()}})

    def _list(self, _: httpx.Request, __: str | None) -> httpx.Response:
        items = [list_item(i) for i in self.instances.values()]
        if self.list_form == "attributes":
            data: dict[str, Any] = {
                "type": "list",
                "id": "instances",
                "attributes": {"instances": items},
            }
        else:
            data = {"instances": items}
        return self._json({"data": data})

    def _create(self, request: httpx.Request, _: str | None) -> httpx.Response:
        body = json.loads(request.content)
        data = body.get("data") or {}
        attributes = data.get("attributes") or {}
        resources = attributes.get("resources") or {}
        problems = []
        if data.get("type") != "virtualmachine":
            problems.append("data.type must be virtualmachine")
        for field in ("name", "image", "resources"):
            if field not in attributes:
                problems.append(f"{field} is required")
        if ("ssh_key" in attributes) == ("ssh_key_id" in attributes):
            problems.append("exactly one of ssh_key and ssh_key_id is required")
        if ("location_id" in attributes) == ("hostnode_id" in attributes):
            problems.append("exactly one of location_id and hostnode_id is required")
        if resources.get("storage_gb", 0) < 100:
            problems.append("storage_gb must be at least 100")
        gpus = resources.get("gpus") or {}
        if not isinstance(gpus, dict) or not gpus:
            problems.append("at least one GPU is required for a location-based deployment")
        if problems:
            return error(400, "Bad Request", "; ".join(problems))
        if self.balance < 1:
            return error(
                400, "Bad Request", "Insufficient balance: a minimum balance of $1 is required"
            )
        ((v0_name, wanted),) = gpus.items()
        location = next((x for x in locations() if x["id"] == attributes["location_id"]), None)
        if location is None:
            return error(404, "Not Found", "Location not found")
        stock = {g["v0Name"]: g for g in location["gpus"]}
        if v0_name not in stock or stock[v0_name]["max_count"] < wanted["count"]:
            return error(
                400, "Bad Request", f"Not enough GPUs available: {v0_name} x{wanted['count']}"
            )
        instance_id = self._new_ids.pop(0)
        gpu = stock[v0_name]
        unit = gpu["pricing"]
        rate = round(
            wanted["count"] * gpu["price_per_hr"]
            + resources["vcpu_count"] * unit["per_vcpu_hr"]
            + resources["ram_gb"] * unit["per_gb_ram_hr"]
            + resources["storage_gb"] * unit["per_gb_storage_hr"],
            6,
        )
        stored = instance(
            instance_id, attributes["name"], "running", v0_name, wanted["count"],
            ip=NEW_IP, rate=rate,
        )  # fmt: skip
        stored["resources"].update(
            vcpu_count=resources["vcpu_count"],
            ram_gb=resources["ram_gb"],
            storage_gb=resources["storage_gb"],
        )
        self.instances[instance_id] = stored
        created = {
            "type": "virtualmachine",
            "id": instance_id,
            "name": attributes["name"],
            "status": "running",
        }
        return self._json({"data": created})

    def _get(self, _: httpx.Request, instance_id: str | None) -> httpx.Response:
        if instance_id not in self.instances:
            return self._missing(instance_id)
        stored = self.instances[instance_id]
        return self._json({"data": stored} if instance_id in WRAPPED_IDS else stored)

    def _delete(self, _: httpx.Request, instance_id: str | None) -> httpx.Response:
        if self.instances.pop(instance_id or "", None) is None:
            return self._missing(instance_id)
        done = {"type": "success", "attributes": {"message": "Instance deleted successfully"}}
        return self._json({"data": done})

    def _power(self, instance_id: str | None, answered: str, stored: str) -> httpx.Response:
        if instance_id not in self.instances:
            return self._missing(instance_id)
        self.instances[instance_id]["status"] = stored
        return self._json(
            {"data": {"type": "instance", "id": instance_id, "attributes": {"status": answered}}}
        )

    def _start(self, _: httpx.Request, instance_id: str | None) -> httpx.Response:
        return self._power(instance_id, "starting", "running")

    def _stop(self, _: httpx.Request, instance_id: str | None) -> httpx.Response:
        return self._power(instance_id, "stopping", "Stopped")
