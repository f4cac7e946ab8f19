"""Paperspace answers written from the vendor's documented schemas (no live account needed).

``DocumentedPaperspace`` is an ``httpx.MockTransport`` handler for the Core API v1 endpoints
our client uses. Every body follows the vendor's OpenAPI 3.0.3 document
(``../shared/reference/paperspace/openapi.json``): field names, types, required fields and
enums of ``Machine``, the ``{event, data}`` envelope, ``{hasMore, nextPage, items}`` pages,
``{available}``, OS templates with ``availableMachineTypes``, and the error envelope
``{message, code}`` (FACTS.md: codes are not enumerated upstream).

The *values* are ours: ids, names, timestamps, which types are available where, and the usage
rates (taken from the hand-made price tables FACTS.md cites, H100 made up). What Paperspace
does not document and we therefore chose (each listed in PROVENANCE.md):

* the error ``code`` strings and messages (the capacity message is worded so that a reader
  recognises it; Paperspace documents no capacity code);
* 429 with ``Retry-After`` (no rate limit is documented; SkyPilot treats 429 as throttling);
* a 502 from the gateway with an HTML page (what any CDN in front of an API sends);
* ``nextPage``: ``null`` on the last machines page and *missing* on the last OS-templates
  page (the description says null, the schema says string: FACTS.md "Pagination").

Every answer carries ``x-documented-response: paperspace-openapi-1`` so a cassette built from
these answers says so in every interaction (a live re-recording does not have the header).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import httpx

BASE_URL = "https://api.paperspace.com/v1"
API_PREFIX = "/v1"
DOCUMENTED_HEADER = "x-documented-response"
DOCUMENTED_VALUE = "paperspace-openapi-1"

#: Keys starting with this are refused with 401.
REVOKED_KEY = "revoked-paperspace-key-0000"

T0 = "2026-11-23T09:00:00.000Z"
T1 = "2026-11-23T10:30:00.000Z"

# Machine ids look like Paperspace's ("ps" + 6 lowercase alphanumerics).
ID_OFF = "psoff0a1"
ID_PROVISIONING = "psprv0b2"
ID_READY = "psrdy0c3"
ID_SERVICEREADY = "pssvc0d4"
ID_TRAIN = "pstrn0e5"
ID_MISSING = "psnone00"
#: Ids handed out by create, in order.
NEW_IDS = ("psnew0f6", "psnew0g7", "psnew0h8")
#: Ids handed out by startupScripts-create, in order.
NEW_SCRIPT_IDS = ("scr0a1b2", "scr0c3d4", "scr0e5f6")

#: Hourly usage rates (USD). FACTS.md: cloudypad's hand-made tables (2024); H100 is ours.
USAGE_RATES: dict[str, float] = {
    "P4000": 0.51,
    "RTX4000": 0.56,
    "RTX5000": 0.82,
    "A4000": 0.76,
    "A5000": 1.38,
    "A6000": 1.89,
    "V100-32G": 2.30,
    "A100": 3.09,
    "A100-80G": 3.18,
    "H100": 5.95,
    "H100x8": 47.60,
    "A6000x2": 3.78,
    "C5": 0.08,
}

#: machine type -> regions where machineAvailability-list says available.
AVAILABLE_IN: dict[str, tuple[str, ...]] = {
    "A6000": ("ca1", "ams1"),
    "A6000x2": ("ny2",),
    "A4000": ("ny2", "ca1", "ams1"),
    "H100": ("ny2",),
    "H100x8": (),
    "A100-80G": ("ny2",),
    "P4000": ("ny2", "ca1"),
    "RTX4000": ("ny2",),
}

#: OS templates (id, name, os label, default size, [(machine type, isAvailable)]).
TEMPLATES: tuple[tuple[str, str, str, int | None, tuple[tuple[str, bool], ...]], ...] = (
    (
        "tvimtol9",
        "ML-in-a-Box Ubuntu 22.04",
        "Ubuntu 22.04",
        100,
        (
            ("H100", True),
            ("H100x8", True),
            ("A100-80G", True),
            ("A6000", True),
            ("A6000x2", True),
            ("A4000", True),
            ("P4000", False),
        ),
    ),
    (
        "tkni3aa4",
        "Ubuntu 22.04 Server",
        "Ubuntu 22.04",
        50,
        (("A6000", True), ("A4000", True), ("RTX4000", True), ("P4000", True), ("C5", True)),
    ),
    (
        "t0nspur5",
        "Windows 10 (Server 2016)",
        "Windows 10",
        None,
        (("P4000", True), ("RTX5000", False), ("V100-32G", False)),
    ),
)

#: Page size of every list endpoint here (the real API may also return fewer than `limit`).
PAGE_SIZE = 2


def machine(
    machine_id: str,
    name: str,
    state: str,
    machine_type: str,
    region: str,
    *,
    public_ip: str | None = None,
    accelerators: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``Machine`` with every required field of the vendor schema (and nothing else)."""
    gpus = _gpus_of(machine_type)
    return {
        "id": machine_id,
        "name": name,
        "state": state,
        "os": "Ubuntu 22.04",
        "machineType": machine_type,
        "agentType": "LinuxHost",
        "cpus": 8 * max(gpus, 1),
        "ram": 48 * 1024**3 * max(gpus, 1),
        "storageTotal": 100 * 1024**3,
        "storageUsed": 12 * 1024**3,
        "accelerators": accelerators,
        "region": region,
        "privateIp": "10.64.12.7" if state != "provisioning" else None,
        "networkId": None,
        "publicIp": public_ip,
        "publicIpType": "dynamic",
        "autoShutdownEnabled": False,
        "autoShutdownTimeout": None,
        "autoShutdownForce": None,
        "autoSnapshotEnabled": False,
        "autoSnapshotFrequency": None,
        "autoSnapshotSaveCount": None,
        "updatesPending": False,
        "restorePointEnabled": False,
        "restorePointFrequency": None,
        "restorePointSnapshotId": None,
        "usageRate": USAGE_RATES.get(machine_type, 1.0),
        "storageRate": 0.0,
        "dtCreated": T0,
        "dtModified": T1,
        "dtDeleted": None,
        "reservation": None,
    }


def _gpus_of(machine_type: str) -> int:
    base, _, count = machine_type.partition("x")
    return int(count) if count.isdigit() else (0 if base.startswith("C") else 1)


def event(name: str, machine_id: str, event_id: str) -> dict[str, Any]:
    """A ``MachineEvent`` (an asynchronous operation that has just been queued)."""
    return {
        "id": event_id,
        "name": name,
        "state": "new",
        "machineId": machine_id,
        "dtCreated": T1,
        "dtStarted": None,
        "dtFinished": None,
        "error": None,
    }


def initial_machines() -> list[dict[str, Any]]:
    """The documented account: one machine in each state the client maps, plus one more."""
    return [
        machine(ID_READY, "sky-ready-1", "ready", "A6000", "ny2", public_ip="203.0.113.10"),
        machine(ID_SERVICEREADY, "sky-svc-1", "serviceready", "A4000", "ca1", public_ip=None),
        machine(ID_PROVISIONING, "sky-prov-1", "provisioning", "H100", "ny2"),
        machine(ID_OFF, "notebook-old", "off", "P4000", "ams1"),
        machine(
            ID_TRAIN,
            "train-8x",
            "ready",
            "H100x8",
            "ny2",
            public_ip="203.0.113.20",
            accelerators=[{"name": "H100", "memory": 80, "count": 8}],
        ),
    ]


def os_templates() -> list[dict[str, Any]]:
    """``OsTemplate`` items."""
    return [
        {
            "id": template_id,
            "name": name,
            "agentType": "LinuxHost" if "Windows" not in name else "WindowsDesktop",
            "operatingSystemLabel": label,
            "defaultSizeGb": size,
            "availableMachineTypes": [
                {"machineTypeLabel": m, "isAvailable": ok} for m, ok in machine_types
            ],
            "dtCreated": T0,
        }
        for template_id, name, label, size, machine_types in TEMPLATES
    ]


def error_body(message: str, code: str) -> dict[str, Any]:
    """The vendor's error envelope."""
    return {"message": message, "code": code}


BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


def rate_limited(retry_after: str = "2") -> httpx.Response:
    """429 with ``Retry-After`` and the error envelope."""
    return httpx.Response(
        429,
        json=error_body("Too many requests, slow down", "TOO_MANY_REQUESTS"),
        headers={"Retry-After": retry_after},
    )


def bad_gateway() -> httpx.Response:
    """502 from the gateway in front of the API: an HTML page, not the error envelope."""
    return httpx.Response(
        502, text=BAD_GATEWAY_HTML, headers={"content-type": "text/html; charset=utf-8"}
    )


class DocumentedPaperspace:
    """An ``httpx.MockTransport`` handler answering like Paperspace's Core API v1.

    Args:
        inject: Answers sent (once each, in order) before the normal handling of a route;
            keys are ``(METHOD, route)`` with the route templated like the spec
            (``("GET", "/machines/{id}")``). A value may be an ``httpx`` exception to raise.

    It keeps the account's machines: create adds one (state ``provisioning``), stop/start
    change the state, delete removes it. ``requests`` holds every request received.
    """

    def __init__(self, *, inject: Mapping[tuple[str, str], list[Any]] | None = None) -> None:
        self.machines: dict[str, dict[str, Any]] = {m["id"]: m for m in initial_machines()}
        self.requests: list[httpx.Request] = []
        self._inject = {key: list(values) for key, values in (inject or {}).items()}
        self._new_ids = list(NEW_IDS)
        self._events = 0
        #: Startup scripts by id (the request bodies as sent, ``script`` included).
        self.startup_scripts: dict[str, dict[str, Any]] = {}
        self._new_script_ids = list(NEW_SCRIPT_IDS)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self._handle(request)
        response.headers[DOCUMENTED_HEADER] = DOCUMENTED_VALUE
        return response

    # -- routing ----------------------------------------------------------------------------

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if not path.startswith(API_PREFIX + "/"):
            return self._error(404, f"Cannot {request.method} {path}", "NOT_FOUND")
        parts = [unquote(p) for p in path[len(API_PREFIX) + 1 :].split("/")]
        method = request.method
        route, machine_id = self._route(parts)
        queued = self._inject.get((method, route))
        if queued:
            answer = queued.pop(0)
            if isinstance(answer, Exception):
                raise answer
            assert isinstance(answer, httpx.Response)
            return answer
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[len("Bearer ") :].startswith(REVOKED_KEY):
            return self._error(401, "You are not authorized to perform this action", "UNAUTHORIZED")
        handler = {
            ("GET", "/machines"): self._list_machines,
            ("POST", "/machines"): self._create,
            ("GET", "/machines/{id}"): self._get,
            ("DELETE", "/machines/{id}"): self._delete,
            ("PATCH", "/machines/{id}/start"): self._start,
            ("PATCH", "/machines/{id}/stop"): self._stop,
            ("GET", "/machine-availability"): self._availability,
            ("GET", "/os-templates"): self._templates,
            ("POST", "/startup-scripts"): self._create_script,
            ("DELETE", "/startup-scripts/{id}"): self._delete_script,
        }.get((method, route))
        if handler is None:
            return self._error(404, f"Cannot {method} {path}", "NOT_FOUND")
        return handler(request, machine_id)

    @staticmethod
    def _route(parts: list[str]) -> tuple[str, str | None]:
        if parts[0] == "startup-scripts" and len(parts) == 2:
            return "/startup-scripts/{id}", parts[1]
        if parts[0] == "machines" and len(parts) == 2:
            return "/machines/{id}", parts[1]
        if parts[0] == "machines" and len(parts) == 3:
            return f"/machines/{{id}}/{parts[2]}", parts[1]
        return "/" + "/".join(parts), None

    @staticmethod
    def _json(body: Any) -> httpx.Response:
        return httpx.Response(200, json=body)

    @staticmethod
    def _error(status: int, message: str, code: str) -> httpx.Response:
        return httpx.Response(status, json=error_body(message, code))

    def _missing(self, machine_id: str | None) -> httpx.Response:
        return self._error(404, f"Machine {machine_id} not found", "NOT_FOUND")

    def _next_event(self, name: str, machine_id: str) -> dict[str, Any]:
        self._events += 1
        return event(name, machine_id, f"evt{self._events:05d}")

    # -- handlers ---------------------------------------------------------------------------

    @staticmethod
    def _page(items: list[dict[str, Any]], after: str | None, omit_last: bool) -> dict[str, Any]:
        start = int(after.removeprefix("cursor-")) if after else 0
        chunk = items[start : start + PAGE_SIZE]
        has_more = start + PAGE_SIZE < len(items)
        page: dict[str, Any] = {"hasMore": has_more, "items": chunk}
        if has_more:
            page["nextPage"] = f"cursor-{start + PAGE_SIZE}"
        elif not omit_last:
            page["nextPage"] = None
        return page

    def _list_machines(self, request: httpx.Request, _: str | None) -> httpx.Response:
        items = list(self.machines.values())
        name = request.url.params.get("name")
        if name:
            items = [m for m in items if m["name"] == name]
        return self._json(self._page(items, request.url.params.get("after"), omit_last=False))

    def _templates(self, request: httpx.Request, _: str | None) -> httpx.Response:
        after = request.url.params.get("after")
        return self._json(self._page(os_templates(), after, omit_last=True))

    def _availability(self, request: httpx.Request, _: str | None) -> httpx.Response:
        machine_type = request.url.params.get("machineType")
        region = request.url.params.get("region")
        if not machine_type or not region:
            return self._error(400, "machineType and region are required", "BAD_REQUEST")
        return self._json({"available": region in AVAILABLE_IN.get(machine_type, ())})

    def _create(self, request: httpx.Request, _: str | None) -> httpx.Response:
        body = json.loads(request.content)
        missing = [
            k for k in ("name", "machineType", "templateId", "diskSize", "region") if k not in body
        ]
        if missing:
            return self._error(400, f"Missing required fields: {', '.join(missing)}", "BAD_REQUEST")
        machine_type, region = body["machineType"], body["region"]
        if region not in AVAILABLE_IN.get(machine_type, ()):
            return self._error(
                400,
                f"There is not enough capacity for machine type {machine_type} in region "
                f"{region} right now. Please try another region or machine type.",
                "BAD_REQUEST",
            )
        script_id = body.get("startupScriptId")
        if script_id is not None and script_id not in self.startup_scripts:
            return self._error(400, f"Startup script {script_id} not found", "BAD_REQUEST")
        machine_id = self._new_ids.pop(0)
        created = machine(machine_id, body["name"], "provisioning", machine_type, region)
        self.machines[machine_id] = created
        if script_id is not None:
            self.startup_scripts[script_id]["assignedMachineIds"].append(machine_id)
        return self._json({"event": self._next_event("create", machine_id), "data": created})

    def _get(self, _: httpx.Request, machine_id: str | None) -> httpx.Response:
        if machine_id not in self.machines:
            return self._missing(machine_id)
        return self._json(self.machines[machine_id])

    def _delete(self, _: httpx.Request, machine_id: str | None) -> httpx.Response:
        if machine_id not in self.machines:
            return self._missing(machine_id)
        gone = self.machines.pop(machine_id)
        return self._json({"event": self._next_event("deactivate", machine_id), "data": gone})

    def _power(self, machine_id: str | None, name: str, state: str) -> httpx.Response:
        if machine_id not in self.machines:
            return self._missing(machine_id)
        changed = dict(self.machines[machine_id], state=state, dtModified=T1)
        self.machines[machine_id] = changed
        return self._json({"event": self._next_event(name, machine_id), "data": changed})

    def _start(self, request: httpx.Request, machine_id: str | None) -> httpx.Response:
        if request.content:
            # FACTS.md quirk: start/stop take no body; a JSON body makes the API fail.
            return self._error(400, "start takes no request body", "BAD_REQUEST")
        return self._power(machine_id, "start", "starting")

    def _stop(self, request: httpx.Request, machine_id: str | None) -> httpx.Response:
        if request.content:
            return self._error(400, "stop takes no request body", "BAD_REQUEST")
        return self._power(machine_id, "stop", "stopping")

    # -- startup scripts (startupScripts-create / -delete) -----------------------------------

    def _script_view(self, script_id: str) -> dict[str, Any]:
        """The documented ``StartupScript`` answer (it does not echo the script's text)."""
        stored = self.startup_scripts[script_id]
        return {
            "id": script_id,
            "name": stored["name"],
            "description": None,
            "isEnabled": True,
            "isRunOnce": stored["isRunOnce"],
            "assignedMachineIds": list(stored["assignedMachineIds"]),
            "dtCreated": T1,
            "dtDeleted": None,
        }

    def _create_script(self, request: httpx.Request, _: str | None) -> httpx.Response:
        body = json.loads(request.content)
        if not body.get("name") or not isinstance(body.get("script"), str):
            return self._error(400, "name and script are required", "BAD_REQUEST")
        script_id = self._new_script_ids.pop(0)
        self.startup_scripts[script_id] = {
            "name": body["name"],
            "script": body["script"],
            "isRunOnce": bool(body.get("isRunOnce", False)),
            "assignedMachineIds": [],
        }
        return self._json(self._script_view(script_id))

    def _delete_script(self, _: httpx.Request, script_id: str | None) -> httpx.Response:
        if script_id not in self.startup_scripts:
            return self._error(404, f"Startup script {script_id} not found", "NOT_FOUND")
        view = self._script_view(script_id)
        del self.startup_scripts[script_id]
        return self._json(view)
