"""The TensorDock cassette scenarios: what ``record`` records and ``test_cassettes`` replays.

Each scenario is a script of client calls (``tests/providers/paperspace/harness.py``) plus the
documented organization that answers it. ``live`` says whether ``record --live`` may re-record
it against the real API: ``"yes"`` (reads, missing ids, a revoked token), ``"billed"``
(creates a VM, billed until the script deletes it; needs ``--allow-launch`` too), ``"no"``
(TensorDock cannot be made to answer that way on demand, or the documented organization's
instances are needed; those cassettes stay documented).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Literal

from gpu_providers import GPUFilters, LaunchRequest
from tests.providers.paperspace.harness import Call, Failed, Script

from . import documented as D

#: The API token of the documented recordings and of the replays (never in a cassette).
RECORDING_KEY = "SENTINEL-tensordock-recording-token-5e2a"
#: The VM the launch scenarios create (a live re-recording uses this name too).
LAUNCH_NAME = "skypilot-sdk-cassette"
#: A public key only ever used as test data.
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILasVMYHcO3cCm1TE6DL/Fz2RVcWi9CRoP6oUYk1UMvU sdk"
#: Boot-time setup of the startup-script scenario: illustrative values, nothing secret (a
#: cassette keeps request bodies, and the first-boot script is one).
STARTUP_SCRIPT = "#!/bin/bash\npip install -q vllm\n"
STARTUP_ENV = {"MODEL_NAME": "llama-3-8b"}

Steps = Generator[Call, Any, None]


@dataclass(frozen=True)
class Scenario:
    """A named script and the documented organization that answers it."""

    name: str
    description: str
    script: Script
    responder: Callable[[], D.DocumentedTensorDock] = D.DocumentedTensorDock
    api_key: str = RECORDING_KEY
    live: Literal["yes", "billed", "no"] = "no"
    #: Client options other than the key, clock and sleep.
    options: dict[str, Any] = field(default_factory=lambda: {"max_retries": 2})


def _offers() -> Steps:
    yield Call("list_available_gpus")
    yield Call("list_available_gpus", (GPUFilters(available_only=False),))
    yield Call("get_normalized_pricing", ("RTX4090",))


def _list_instances() -> Steps:
    yield Call("list_instances")
    yield Call("list_instances", ("sky-",))


def _instance_states() -> Steps:
    instances = yield Call("list_instances")
    if isinstance(instances, Failed):
        return
    for instance in instances:
        yield Call("get_instance_status", (instance.instance_id,))


def _launch_cheapest() -> Steps:
    request = LaunchRequest(gpu_type="RTX4090", name=LAUNCH_NAME, ssh_public_key=PUBLIC_KEY)
    launched = yield Call("launch_instance", (request,))
    if isinstance(launched, Failed):
        return
    yield Call("get_instance_status", (launched.instance_id,))
    yield Call("terminate_instance", (launched.instance_id,))


def _launch_in_country() -> Steps:
    request = LaunchRequest(
        gpu_type="H100",
        gpu_count=2,
        name=LAUNCH_NAME,
        region="Germany",
        image="ubuntu2204",
        disk_gb=200,
        ssh_public_key=PUBLIC_KEY,
        startup_script=STARTUP_SCRIPT,
        env=STARTUP_ENV,
    )
    launched = yield Call("launch_instance", (request,))
    if isinstance(launched, Failed):
        return
    yield Call("terminate_instance", (launched.instance_id,))


def _launch_no_capacity() -> Steps:
    request = LaunchRequest(
        gpu_type="H100", name=LAUNCH_NAME, region="Dallas", ssh_public_key=PUBLIC_KEY
    )
    launched = yield Call("launch_instance", (request,))
    if not isinstance(launched, Failed):  # live, capacity may exist: clean up
        yield Call("terminate_instance", (launched.instance_id,))


def _launch_refused(gpu_type: str = "RTX4090") -> Callable[[], Steps]:
    def script() -> Steps:
        request = LaunchRequest(gpu_type=gpu_type, name=LAUNCH_NAME, ssh_public_key=PUBLIC_KEY)
        yield Call("launch_instance", (request,))

    return script


def _stop_start() -> Steps:
    yield Call("stop_instance", (D.ID_RUNNING,))
    yield Call("get_instance_status", (D.ID_RUNNING,))
    yield Call("start_instance", (D.ID_RUNNING,))


def _missing_instance() -> Steps:
    yield Call("get_instance_status", (D.ID_MISSING,))
    yield Call("terminate_instance", (D.ID_MISSING,))
    yield Call("stop_instance", (D.ID_MISSING,))


def _terminate_twice() -> Steps:
    yield Call("terminate_instance", (D.ID_STOPPED,))
    yield Call("terminate_instance", (D.ID_STOPPED,))
    yield Call("get_instance_status", (D.ID_STOPPED,))


def _unauthorized() -> Steps:
    yield Call("list_instances")
    yield Call("list_available_gpus")


def _rate_limited() -> Steps:
    yield Call("list_instances")


def _bad_gateway() -> Steps:
    yield Call("get_instance_status", (D.ID_RUNNING,))
    request = LaunchRequest(gpu_type="RTX4090", name=LAUNCH_NAME, ssh_public_key=PUBLIC_KEY)
    yield Call("launch_instance", (request,))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "offers",
            "locations and hostnodes priced GPU+vCPU+RAM+storage; all offers; RTX4090 pricing",
            _offers,
            live="yes",
        ),
        Scenario(
            "list_instances",
            "GET /instances ({data: {instances}}), then by name prefix",
            _list_instances,
            live="yes",
        ),
        Scenario(
            "list_instances_attributes",
            "GET /instances in the other documented wrapper (data.attributes.instances)",
            _list_instances,
            responder=lambda: D.DocumentedTensorDock(list_form="attributes"),
        ),
        Scenario(
            "instance_states",
            "list, then get each: running, starting, Stopped (wrapped), StoppedDisassociated, "
            "running behind a port forward (wrapped)",
            _instance_states,
        ),
        Scenario(
            "launch_cheapest",
            "launch 1x RTX4090 anywhere: locations, create in the cheapest (Dallas), read back, "
            "status, delete",
            _launch_cheapest,
            live="billed",
        ),
        Scenario(
            "launch_in_country",
            "launch 2x H100 in Germany with 200 GB, an image, env and a startup script, delete",
            _launch_in_country,
            live="billed",
        ),
        Scenario(
            "launch_no_capacity",
            "H100 in Dallas: the location lists none available, no create request",
            _launch_no_capacity,
        ),
        Scenario(
            "launch_capacity_refused",
            "create answered 400 'Not enough GPUs available' (the location list was stale)",
            _launch_refused(),
            responder=lambda: D.DocumentedTensorDock(
                inject={
                    ("POST", "/instances"): [
                        D.error(400, "Bad Request", "Not enough GPUs available at this location")
                    ]
                }
            ),
        ),
        Scenario(
            "launch_low_balance",
            "create refused: the organization's balance is under the documented $1 minimum",
            _launch_refused(),
            responder=lambda: D.DocumentedTensorDock(balance=0.5),
        ),
        Scenario(
            "stop_start",
            "stop (stopping), get (Stopped), start (starting)",
            _stop_start,
        ),
        Scenario(
            "missing_instance",
            "get, delete and stop of a missing id: 404 with the API's body; delete is idempotent",
            _missing_instance,
            live="yes",
        ),
        Scenario(
            "terminate_twice",
            "delete an instance, delete it again (404 = success), get it (404)",
            _terminate_twice,
        ),
        Scenario(
            "unauthorized",
            "a revoked token: 401 on every call",
            _unauthorized,
            api_key=D.REVOKED_KEY,
            live="yes",
        ),
        Scenario(
            "rate_limited",
            "429 without Retry-After, then the retried list succeeds",
            _rate_limited,
            responder=lambda: D.DocumentedTensorDock(
                inject={("GET", "/instances"): [D.rate_limited()]}
            ),
        ),
        Scenario(
            "bad_gateway",
            "502 HTML on a get (retried), then on create (not replayed: maybe submitted)",
            _bad_gateway,
            responder=lambda: D.DocumentedTensorDock(
                inject={
                    ("GET", "/instances/{id}"): [D.bad_gateway()],
                    ("POST", "/instances"): [D.bad_gateway()],
                }
            ),
        ),
    )
}
