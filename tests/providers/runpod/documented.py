"""RunPod GraphQL answers written from the documented facts (no live account needed).

``DocumentedRunPod`` is an ``httpx.MockTransport`` handler for ``POST /graphql``. It answers
by *executing* the request with graphql-core against ``specs/runpod/schema.graphql`` (the
contract: RunPod publishes no SDL, FACTS.md) over the account data below, so every answer has
exactly the shape of the request's selection, variables are coerced like a GraphQL server
does, and an error raised while resolving becomes a GraphQL error with ``message`` and
``path`` sent with **HTTP 200**, as RunPod does (FACTS.md "GraphQL transport and auth").

From ``../shared/reference/runpod/FACTS.md``: GPU type ids (``"NVIDIA H100 80GB HBM3"``, ...),
``lowestPrice`` semantics (``uninterruptablePrice`` = on-demand, ``minimumBidPrice`` = spot,
USD/hour per GPU, ``stockStatus`` null when there is no stock), ``runtime`` null until the
container is up, the SSH port entry (privatePort 22, isIpPublic), ``desiredStatus`` values,
``podTerminate`` returning null, and the error messages ``There are no longer any instances
available with the requested specifications`` (spot capacity) and ``pod not found to
terminate``.

Ours (listed in PROVENANCE.md): all values (ids, names, prices, stock, IPs, data centers);
what a missing pod gives (``pod: null``; FACTS.md: undocumented); the 401 and 429 bodies
(plain text: RunPod documents neither); 429's ``Retry-After``; the 502 HTML page;
``podFindAndDeployOnDemand`` answering null when no machine matches.

Every answer carries ``x-documented-response: runpod-graphql-facts``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from graphql import GraphQLError, GraphQLSchema, build_schema, graphql_sync

GRAPHQL_URL = "https://api.runpod.io/graphql"
DOCUMENTED_HEADER = "x-documented-response"
DOCUMENTED_VALUE = "runpod-graphql-facts"
SCHEMA_FILE = Path(__file__).resolve().parents[3] / "specs" / "runpod" / "schema.graphql"

#: Keys starting with this are refused with 401.
REVOKED_KEY = "revoked-runpod-key-0000"
USER_ID = "user_2fJq9cS1xWbPzR"

NO_INSTANCES = "There are no longer any instances available with the requested specifications"
NOT_FOUND_TO_TERMINATE = "pod not found to terminate"

H100 = "NVIDIA H100 80GB HBM3"
A100_SXM = "NVIDIA A100-SXM4-80GB"
A100_80 = "NVIDIA A100 80GB PCIe"
RTX4090 = "NVIDIA GeForce RTX 4090"
L4 = "NVIDIA L4"
MI300X = "AMD Instinct MI300X OAM"  # a real RunPod GPU that our GPU table does not know

# Pod ids look like RunPod's (14 lowercase alphanumerics).
ID_READY = "k4t9z2m7q1x8w3"
ID_BOOTING = "b0ot1ng2c0nt4r"
ID_EXITED = "e8x1t3d5n0tb00"
ID_SPOT = "s9p0t7a1b2c3d4"
#: A spot pod RunPod exited (interrupted): lastStatusChange "Exited by Runpod: ...".
ID_PREEMPTED = "pr33mpt3d0x1aa"
ID_MISSING = "n0n3x1st3nt000"
#: Ids handed out by the launch mutations, in order.
NEW_IDS = ("n3wp0d1aaaaaaa", "n3wp0d2bbbbbbb")

POD_PUBLIC_IP = "203.0.113.50"


def country_of(data_center: str) -> str:
    """The country of a RunPod data center id (US-TX-3 -> US, EU-RO-1 -> RO, EUR-IS-1 -> IS)."""
    first, second = data_center.split("-")[:2]
    return first if first in ("US", "CA") else second


def gpu_type(
    gpu_id: str,
    display: str,
    manufacturer: str,
    memory: int,
    *,
    secure: float | None,
    community: float | None,
    spot: float | None,
    stock: str | None,
    country: str | None,
    max_count: int = 8,
    offered: bool = True,
) -> dict[str, Any]:
    """A ``GpuType``; ``lowestPrice`` is computed for the requested input: gpuCount, the cloud
    (secureCloud true/false; unset: both), and a placement (countryCode or dataCenterId).
    Spot in the secure cloud costs 20% more than in the community cloud (``spot``)."""
    secure_spot = round(spot * 1.2, 2) if spot is not None and secure is not None else None
    community_spot = spot if community is not None else None

    def lowest_price(_: Any, input: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        given = input or {}
        count = given.get("gpuCount") or 1
        cloud = given.get("secureCloud")
        if cloud is None:
            prices = [p for p in (secure, community) if p is not None]
            on_demand = min(prices) if prices else None
            bid = min((p for p in (secure_spot, community_spot) if p is not None), default=None)
        else:
            on_demand = secure if cloud else community
            bid = secure_spot if cloud else community_spot
        wanted = given.get("countryCode") or (
            country_of(given["dataCenterId"]) if given.get("dataCenterId") else None
        )
        if not offered or count > max_count or on_demand is None:
            return None  # nothing matches this placement
        if wanted is not None and wanted != country:
            return None
        return {
            "gpuName": display,
            "gpuTypeId": gpu_id,
            "minimumBidPrice": bid,
            "uninterruptablePrice": on_demand,
            "minVcpu": 8.0 * count,
            "minMemory": 62.0 * count,
            "minDisk": 0.0,
            "minDownload": 850.0,
            "minUpload": 800.0,
            "stockStatus": stock,
            "rentalPercentage": 0.82 if stock else 1.0,
            "rentedCount": 82 if stock else 40,
            "totalCount": 100 if stock else 40,
            "countryCode": country,
            "supportPublicIp": True,
        }

    return {
        "id": gpu_id,
        "displayName": display,
        "manufacturer": manufacturer,
        "memoryInGb": memory,
        "cudaCores": 0 if manufacturer == "AMD" else 16896,
        "secureCloud": secure is not None,
        "communityCloud": community is not None,
        "maxGpuCount": max_count,
        "maxGpuCountSecureCloud": max_count if secure is not None else 0,
        "maxGpuCountCommunityCloud": max_count if community is not None else 0,
        "minPodGpuCount": 1,
        "securePrice": secure,
        "communityPrice": community,
        "secureSpotPrice": secure_spot,
        "communitySpotPrice": community_spot,
        "lowestPrice": lowest_price,
    }


def gpu_types() -> list[dict[str, Any]]:
    """The catalog: in stock, out of stock, no offer, and a GPU we do not know."""
    return [
        gpu_type(H100, "H100 SXM", "Nvidia", 80, secure=2.99, community=2.69, spot=1.75,
             stock="High", country="US"),
        gpu_type(A100_SXM, "A100 SXM", "Nvidia", 80, secure=1.89, community=1.49, spot=1.05,
             stock="Low", country="US"),
        gpu_type(A100_80, "A100 PCIe", "Nvidia", 80, secure=1.64, community=1.19, spot=0.82,
             stock="Medium", country="CA"),
        gpu_type(RTX4090, "RTX 4090", "Nvidia", 24, secure=0.69, community=0.34, spot=0.29,
             stock=None, country=None),
        gpu_type(L4, "L4", "Nvidia", 24, secure=0.43, community=None, spot=0.22, stock=None,
             country=None, offered=False),
        gpu_type(MI300X, "MI300X", "AMD", 192, secure=2.49, community=None, spot=1.49,
             stock="Low", country="US"),
    ]  # fmt: skip


def _ports(public_port: int | None) -> list[dict[str, Any]]:
    ssh = {
        "ip": POD_PUBLIC_IP,
        "isIpPublic": True,
        "privatePort": 22,
        "publicPort": public_port,
        "type": "tcp",
    }
    return [
        *([ssh] if public_port is not None else []),
        {
            "ip": "100.65.13.7",
            "isIpPublic": False,
            "privatePort": 8888,
            "publicPort": 60011,
            "type": "http",
        },
    ]


def runtime(public_port: int | None = 10341) -> dict[str, Any]:
    """A ``PodRuntime``: the container is up, SSH on ``POD_PUBLIC_IP:public_port`` (None: port
    22 not mapped yet, only the private HTTP port listed)."""
    return {
        "uptimeInSeconds": 412,
        "ports": _ports(public_port),
        "gpus": [{"gpuUtilPercent": 0.0, "memoryUtilPercent": 1.0}],
        "container": {"cpuPercent": 2.0, "memoryPercent": 3.0},
    }


def pod(
    pod_id: str,
    name: str,
    status: str,
    gpu_id: str,
    *,
    count: int = 1,
    cost: float,
    pod_type: str = "RESERVED",
    data_center: str = "US-TX-3",
    up: bool = False,
    image: str = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04",
) -> dict[str, Any]:
    """A ``Pod`` with every field of ``specs/runpod/schema.graphql``."""
    return {
        "id": pod_id,
        "name": name,
        "imageName": image,
        "desiredStatus": status,
        "lastStatusChange": "Rented by User: Mon Nov 23 2026 09:00:00 GMT+0000",
        "lastStartedAt": "2026-11-23T09:00:00.000Z",
        "podType": pod_type,
        "costPerHr": cost,
        "adjustedCostPerHr": cost,
        "gpuCount": count,
        "vcpuCount": 16.0 * count,
        "memoryInGb": 125.0 * count,
        "containerDiskInGb": 50,
        "volumeInGb": 0.0,
        "volumeMountPath": "/workspace",
        "ports": "22/tcp",
        "uptimeSeconds": 412 if up else 0,
        "machineId": f"m-{pod_id[:6]}",
        "templateId": None,
        "networkVolumeId": None,
        "locked": False,
        "machine": {
            "podHostId": f"{pod_id}-64410f2a",
            "gpuDisplayName": gpu_id.removeprefix("NVIDIA ").removeprefix("GeForce "),
            "gpuTypeId": gpu_id,
            "dataCenterId": data_center,
            "location": data_center.split("-")[0],
            "secureCloud": True,
            "supportPublicIp": True,
        },
        "runtime": runtime() if up else None,
    }


def initial_pods() -> list[dict[str, Any]]:
    return [
        pod(ID_READY, "sky-train-1", "RUNNING", H100, cost=2.99, up=True),
        pod(ID_BOOTING, "sky-boot-1", "RUNNING", H100, cost=2.99),
        pod(ID_EXITED, "notebook-old", "EXITED", RTX4090, cost=0.69),
        pod(ID_SPOT, "sky-spot-1", "RUNNING", A100_80, count=2, cost=1.64,
            pod_type="INTERRUPTABLE", data_center="CA-MTL-1", up=True),
        dict(pod(ID_PREEMPTED, "sky-spot-2", "EXITED", H100, cost=1.75,
                 pod_type="INTERRUPTABLE"),
             lastStatusChange="Exited by Runpod: Mon Nov 23 2026 11:00:00 GMT+0000"),
    ]  # fmt: skip


#: Where a launch pinned to a country lands.
_DATA_CENTER_IN = {"US": "US-TX-3", "CA": "CA-MTL-1", "RO": "EU-RO-1"}


BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


def rate_limited(retry_after: str = "2") -> httpx.Response:
    """429 with ``Retry-After`` and a plain-text body (RunPod documents neither)."""
    return httpx.Response(
        429,
        text="Too Many Requests",
        headers={"Retry-After": retry_after, "content-type": "text/plain"},
    )


def bad_gateway() -> httpx.Response:
    return httpx.Response(
        502, text=BAD_GATEWAY_HTML, headers={"content-type": "text/html; charset=utf-8"}
    )


def unauthorized() -> httpx.Response:
    return httpx.Response(401, text="Unauthorized", headers={"content-type": "text/plain"})


@cache
def schema() -> GraphQLSchema:
    """Our contract, specs/runpod/schema.graphql."""
    return build_schema(SCHEMA_FILE.read_text(encoding="utf-8"))


class DocumentedRunPod:
    """An ``httpx.MockTransport`` handler answering like RunPod's GraphQL API.

    Args:
        inject: Answers (``httpx.Response`` or an exception to raise) sent once each, in
            order, before normal handling, keyed by the request's ``operationName``.

    It keeps the account's pods: a launch adds one whose container comes up at the second
    ``GetPod``; stop, resume and terminate change or remove them. ``requests`` holds every
    request and ``operations`` their parsed JSON bodies.
    """

    def __init__(self, *, inject: Mapping[str, list[Any]] | None = None) -> None:
        self.pods: dict[str, dict[str, Any]] = {p["id"]: p for p in initial_pods()}
        self.catalog = {g["id"]: g for g in gpu_types()}
        self.requests: list[httpx.Request] = []
        self.operations: list[dict[str, Any]] = []
        self._inject = {key: list(values) for key, values in (inject or {}).items()}
        self._new_ids = list(NEW_IDS)
        self._gets: dict[str, int] = {}

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self._handle(request)
        response.headers[DOCUMENTED_HEADER] = DOCUMENTED_VALUE
        return response

    def _handle(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or request.url.path != "/graphql":
            return httpx.Response(404, text="Not Found")
        try:
            body = json.loads(request.content)
        except ValueError:
            return httpx.Response(400, json={"errors": [{"message": "POST body is not JSON"}]})
        self.operations.append(body)
        queued = self._inject.get(str(body.get("operationName")))
        if queued:
            answer = queued.pop(0)
            if isinstance(answer, Exception):
                raise answer
            assert isinstance(answer, httpx.Response)
            return answer
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ").startswith(REVOKED_KEY):
            return unauthorized()
        result = graphql_sync(
            schema(),
            body["query"],
            root_value=self._root(),
            variable_values=body.get("variables"),
            operation_name=body.get("operationName"),
        )
        if result.data is None and result.errors:
            # the document or its variables do not validate: nothing was executed
            return httpx.Response(400, json=result.formatted)
        return httpx.Response(200, json=result.formatted)

    # -- resolvers --------------------------------------------------------------------------

    def _root(self) -> dict[str, Callable[..., Any]]:
        return {
            "gpuTypes": self._gpu_types,
            "pod": self._pod,
            "myself": self._myself,
            "podFindAndDeployOnDemand": self._deploy_on_demand,
            "podRentInterruptable": self._rent_interruptable,
            "podStop": self._stop,
            "podResume": self._resume,
            "podBidResume": self._bid_resume,
            "podTerminate": self._terminate,
        }

    def _gpu_types(self, _: Any, input: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        wanted = None
        if input:
            wanted = {i for i in [input.get("id"), *(input.get("ids") or [])] if i}
        return [g for g in self.catalog.values() if not wanted or g["id"] in wanted]

    def _view(self, pod_id: str) -> dict[str, Any]:
        """A pod as GetPod sees it: a new pod has no runtime at the first look, a runtime
        without the SSH port mapping at the second, and SSH on a public port from the third
        (FACTS.md "Readiness": runtime is null until the container is up)."""
        current = self.pods[pod_id]
        looks = self._gets[pod_id] = self._gets.get(pod_id, 0) + 1
        if pod_id in NEW_IDS and current["desiredStatus"] == "RUNNING" and looks >= 2:
            current["runtime"] = runtime(10400 + NEW_IDS.index(pod_id) if looks >= 3 else None)
            current["uptimeSeconds"] = 35
        return copy.deepcopy(current)

    def _pod(self, _: Any, input: Mapping[str, Any]) -> dict[str, Any] | None:
        pod_id = input["podId"]
        return self._view(pod_id) if pod_id in self.pods else None

    def _myself(self, _: Any) -> dict[str, Any]:
        return {"id": USER_ID, "pods": [copy.deepcopy(p) for p in self.pods.values()]}

    def _offer(self, spec: Mapping[str, Any]) -> dict[str, Any] | None:
        """The cheapest offer matching a deploy input (GPU, count, cloud type, placement)."""
        gpu = self.catalog.get(spec.get("gpuTypeId") or "")
        if gpu is None:
            return None
        cloud = {"SECURE": True, "COMMUNITY": False}.get(spec.get("cloudType") or "ALL")
        wanted = {
            "gpuCount": spec.get("gpuCount") or 1,
            "secureCloud": cloud,
            "countryCode": spec.get("countryCode"),
            "dataCenterId": spec.get("dataCenterId"),
        }
        lowest: dict[str, Any] | None = gpu["lowestPrice"](None, wanted)
        return lowest

    def _launch(self, spec: Mapping[str, Any], cost: float, pod_type: str) -> dict[str, Any]:
        pod_id = self._new_ids.pop(0)
        count = spec.get("gpuCount") or 1
        created = pod(
            pod_id,
            spec.get("name") or pod_id,
            "RUNNING",
            spec["gpuTypeId"],
            count=count,
            cost=round(cost * count, 4),
            pod_type=pod_type,
            data_center=spec.get("dataCenterId")
            or _DATA_CENTER_IN.get(spec.get("countryCode") or "US", "US-TX-3"),
            image=spec.get("imageName") or "runpod/base:0.6.2",
        )
        created["machine"]["secureCloud"] = spec.get("cloudType") != "COMMUNITY"
        created["containerDiskInGb"] = spec.get("containerDiskInGb") or 50
        created["ports"] = spec.get("ports")
        self.pods[pod_id] = created
        return copy.deepcopy(created)

    def _deploy_on_demand(self, _: Any, input: Mapping[str, Any]) -> dict[str, Any] | None:
        offer = self._offer(input)
        if offer is None or offer["stockStatus"] is None:
            return None  # no machine matches: the mutation answers null
        return self._launch(input, offer["uninterruptablePrice"], "RESERVED")

    def _rent_interruptable(self, _: Any, input: Mapping[str, Any]) -> dict[str, Any]:
        offer = self._offer(input)
        bid = input["bidPerGpu"]
        if offer is None or offer["stockStatus"] is None or bid < offer["minimumBidPrice"]:
            raise GraphQLError(NO_INSTANCES)
        return self._launch(input, bid, "INTERRUPTABLE")

    def _stop(self, _: Any, input: Mapping[str, Any]) -> dict[str, Any]:
        pod_id = input["podId"]
        if pod_id not in self.pods:
            raise GraphQLError("pod not found")
        self.pods[pod_id].update(
            desiredStatus="EXITED",
            runtime=None,
            uptimeSeconds=0,
            lastStatusChange="Exited by User: Mon Nov 23 2026 10:00:00 GMT+0000",
        )
        return copy.deepcopy(self.pods[pod_id])

    def _resume(self, _: Any, input: Mapping[str, Any]) -> dict[str, Any]:
        pod_id = input["podId"]
        if pod_id not in self.pods:
            raise GraphQLError("pod not found")
        self.pods[pod_id].update(desiredStatus="RUNNING", runtime=None)
        return copy.deepcopy(self.pods[pod_id])

    def _bid_resume(self, _: Any, input: Mapping[str, Any]) -> dict[str, Any]:
        """Resume a spot pod: refused (the documented capacity message) under the minimum bid
        of its GPU type in its cloud."""
        pod_id = input["podId"]
        if pod_id not in self.pods:
            raise GraphQLError("pod not found")
        current = self.pods[pod_id]
        gpu = self.catalog[current["machine"]["gpuTypeId"]]
        lowest = gpu["lowestPrice"](
            None,
            {
                "gpuCount": input.get("gpuCount") or 1,
                "secureCloud": current["machine"]["secureCloud"],
            },
        )
        if lowest is None or input["bidPerGpu"] < (lowest["minimumBidPrice"] or 0):
            raise GraphQLError(NO_INSTANCES)
        current.update(desiredStatus="RUNNING", runtime=None, costPerHr=input["bidPerGpu"])
        return copy.deepcopy(current)

    def _terminate(self, _: Any, input: Mapping[str, Any]) -> None:
        if self.pods.pop(input["podId"], None) is None:
            raise GraphQLError(NOT_FOUND_TO_TERMINATE)
