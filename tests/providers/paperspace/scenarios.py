"""The Paperspace cassette scenarios: what ``record`` records and ``test_cassettes`` replays.

Each scenario is a script of client calls (see ``harness``) plus the documented account that
answers it. ``live`` says whether ``record --live`` may re-record it against the real API:
``"yes"`` (reads, and calls on ids that do not exist), ``"billed"`` (creates a machine, billed
until the script deletes it; needs ``--allow-launch`` too), ``"no"`` (Paperspace cannot be
made to answer that way on demand: 429, 502, a 400 for capacity, an account with machines in
every state; those cassettes stay documented).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Literal

from gpu_providers import GPUFilters, LaunchRequest

from . import documented as D
from .harness import Call, Failed, Script

#: The API key of the documented recordings and of the replays (never in a cassette).
RECORDING_KEY = "SENTINEL-paperspace-recording-key-8c1f"
#: The machine the launch scenarios create (a live re-recording uses this name too).
LAUNCH_NAME = "skypilot-sdk-cassette"
#: An id that exists nowhere (valid shape).
MISSING_ID = D.ID_MISSING
#: A public key only ever used as test data.
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILasVMYHcO3cCm1TE6DL/Fz2RVcWi9CRoP6oUYk1UMvU sdk"

Steps = Generator[Call, Any, None]


@dataclass(frozen=True)
class Scenario:
    """A named script and the documented account that answers it."""

    name: str
    description: str
    script: Script
    responder: Callable[[], D.DocumentedPaperspace] = D.DocumentedPaperspace
    api_key: str = RECORDING_KEY
    live: Literal["yes", "billed", "no"] = "no"
    #: Client options other than the key, clock and sleep.
    options: dict[str, Any] = field(default_factory=lambda: {"max_retries": 2})


def _list_machines() -> Steps:
    yield Call("list_instances")
    yield Call("list_instances", ("sky-",))


def _machine_states() -> Steps:
    machines = yield Call("list_instances")
    if isinstance(machines, Failed):
        return
    for instance in machines:
        yield Call("get_instance_status", (instance.instance_id,))


def _offers() -> Steps:
    yield Call("list_available_gpus")
    yield Call("list_available_gpus", (GPUFilters(available_only=False),))
    yield Call("get_normalized_pricing", ("A6000",))


def _availability() -> Steps:
    yield Call("is_available", ("A6000", 1, "us-west"))
    yield Call("is_available", ("A6000", 1, "ny2"))
    yield Call("is_available", ("H100", 8, "ny2"))


def _launch_pick_region() -> Steps:
    request = LaunchRequest(gpu_type="A6000", name=LAUNCH_NAME)
    launched = yield Call("launch_instance", (request,))
    if isinstance(launched, Failed):
        return
    yield Call("get_instance_status", (launched.instance_id,))
    yield Call("terminate_instance", (launched.instance_id,))


def _launch_in_region() -> Steps:
    request = LaunchRequest(
        gpu_type="A100-80GB", name=LAUNCH_NAME, region="us-east", image="tvimtol9", disk_gb=250
    )
    launched = yield Call("launch_instance", (request,))
    if isinstance(launched, Failed):
        return
    yield Call("terminate_instance", (launched.instance_id,))


def _launch_no_capacity_anywhere() -> Steps:
    request = LaunchRequest(gpu_type="H100", gpu_count=8, name=LAUNCH_NAME)
    launched = yield Call("launch_instance", (request,))
    if not isinstance(launched, Failed):  # live, capacity may exist: clean up
        yield Call("terminate_instance", (launched.instance_id,))


def _launch_capacity_400() -> Steps:
    request = LaunchRequest(
        gpu_type="H100", gpu_count=8, name=LAUNCH_NAME, region="ny2", image="tvimtol9"
    )
    yield Call("launch_instance", (request,))


#: Boot-time setup of the startup-script scenarios: illustrative values, nothing secret (a
#: cassette keeps request bodies, and the startup script is one).
STARTUP_SCRIPT = "#!/bin/bash\npip install -q vllm\n"
STARTUP_ENV = {"MODEL_NAME": "llama-3-8b", "GREETING": "it's a test"}


def _launch_with_startup_script() -> Steps:
    request = LaunchRequest(
        gpu_type="A6000",
        name=LAUNCH_NAME,
        region="us-west",
        image="tkni3aa4",
        startup_script=STARTUP_SCRIPT,
        env=STARTUP_ENV,
        ssh_public_key=PUBLIC_KEY,
    )
    launched = yield Call("launch_instance", (request,))
    if isinstance(launched, Failed):
        return
    yield Call("get_instance_status", (launched.instance_id,))
    yield Call("terminate_instance", (launched.instance_id,))


def _launch_startup_script_refused() -> Steps:
    request = LaunchRequest(
        gpu_type="H100",
        gpu_count=8,
        name=LAUNCH_NAME,
        region="ny2",
        image="tvimtol9",
        ssh_public_key=PUBLIC_KEY,
    )
    yield Call("launch_instance", (request,))


def _stop_start() -> Steps:
    yield Call("stop_instance", (D.ID_READY,))
    yield Call("start_instance", (D.ID_OFF,))


def _missing_machine() -> Steps:
    yield Call("get_instance_status", (MISSING_ID,))
    yield Call("terminate_instance", (MISSING_ID,))
    yield Call("stop_instance", (MISSING_ID,))


def _terminate_twice() -> Steps:
    yield Call("terminate_instance", (D.ID_OFF,))
    yield Call("terminate_instance", (D.ID_OFF,))
    yield Call("get_instance_status", (D.ID_OFF,))


def _unauthorized() -> Steps:
    yield Call("list_instances")
    yield Call("get_instance_status", (MISSING_ID,))


def _rate_limited() -> Steps:
    yield Call("list_instances")


def _bad_gateway() -> Steps:
    yield Call("get_instance_status", (D.ID_READY,))
    yield Call(
        "launch_instance",
        (LaunchRequest(gpu_type="A6000", name=LAUNCH_NAME, region="ca1", image="tkni3aa4"),),
    )


def _live_lifecycle() -> Steps:
    request = LaunchRequest(gpu_type="A4000", name=LAUNCH_NAME, region="ny2")
    launched = yield Call("launch_instance", (request,))
    if isinstance(launched, Failed):
        return
    yield Call("get_instance_status", (launched.instance_id,))
    yield Call("terminate_instance", (launched.instance_id,))
    yield Call("terminate_instance", (launched.instance_id,))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "list_machines",
            "machines-list over three pages (nextPage null on the last), then by name prefix",
            _list_machines,
            live="yes",
        ),
        Scenario(
            "machine_states",
            "list, then get each machine: ready, serviceready, provisioning, off",
            _machine_states,
        ),
        Scenario(
            "offers",
            "offers from osTemplates-list (two pages, nextPage missing on the last); pricing",
            _offers,
            live="yes",
        ),
        Scenario(
            "availability",
            "machineAvailability-list for a generic region, a code, and an 8-GPU type",
            _availability,
            live="yes",
        ),
        Scenario(
            "launch_pick_region",
            "launch without region: availability ny2 (no), ca1 (yes), templates, create, get, "
            "delete",
            _launch_pick_region,
        ),
        Scenario(
            "launch_in_region",
            "launch in us-east (ny2) with a template id and a 250 GB disk, then delete",
            _launch_in_region,
        ),
        Scenario(
            "launch_no_capacity_anywhere",
            "launch 8x H100 without region: no region available, no create request",
            _launch_no_capacity_anywhere,
            # Live, 8x H100 may well be available: then this really creates a machine.
            live="billed",
        ),
        Scenario(
            "launch_capacity_400",
            "create answered 400 with a capacity message",
            _launch_capacity_400,
        ),
        Scenario(
            "launch_with_startup_script",
            "launch in us-west (ca1) with a startup script, env and an SSH key: "
            "startupScripts-create, create with startupScriptId, get, delete",
            _launch_with_startup_script,
        ),
        Scenario(
            "launch_startup_script_refused",
            "8x H100 (NVLink) with an SSH key: script created, create refused (capacity 400), "
            "script deleted",
            _launch_startup_script_refused,
        ),
        Scenario(
            "stop_start",
            "machines-stop and machines-start (PATCH, no body)",
            _stop_start,
        ),
        Scenario(
            "missing_machine",
            "get, delete and stop of a missing machine: 404; delete is idempotent",
            _missing_machine,
            live="yes",
        ),
        Scenario(
            "terminate_twice",
            "delete a machine, delete it again (404 = success), get it (404)",
            _terminate_twice,
        ),
        Scenario(
            "unauthorized",
            "a revoked key: 401 on every call",
            _unauthorized,
            api_key=D.REVOKED_KEY,
            live="yes",
        ),
        Scenario(
            "rate_limited",
            "429 with Retry-After: 2, then the retried list succeeds",
            _rate_limited,
            responder=lambda: D.DocumentedPaperspace(
                inject={("GET", "/machines"): [D.rate_limited("2")]}
            ),
        ),
        Scenario(
            "bad_gateway",
            "502 HTML on a get (retried), then on create (not replayed: maybe submitted)",
            _bad_gateway,
            responder=lambda: D.DocumentedPaperspace(
                inject={
                    ("GET", "/machines/{id}"): [D.bad_gateway()],
                    ("POST", "/machines"): [D.bad_gateway()],
                }
            ),
        ),
        Scenario(
            "live_lifecycle",
            "launch 1x A4000 in ny2, get, delete, delete again",
            _live_lifecycle,
            responder=lambda: D.DocumentedPaperspace(),
            live="billed",
        ),
    )
}
