"""A create answer we cannot read still names what it made (DESIGN rule 9), for every
provider on the OpenAPI wire (Lambda, Paperspace, TensorDock, Vast.ai, RunPod REST), sync and
async, over each provider's documented responder:

- a 2xx create answer that the generated parser or our mapping cannot read, or with a 2xx
  status the generated client does not model, but whose raw body holds the id where the
  vendor puts it (``Endpoint.created_id``): the launch returns the instance with that id
  (``PENDING`` when nothing else could be read about it), never an error without it;
- a 2xx create answer without a usable id: ``maybe_submitted=True``, not retryable, no id.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gpu_providers import InstanceState, LaunchRequest
from gpu_providers._openapi import json_at
from gpu_providers.errors import ProviderError
from tests.providers import test_wire_faults as W
from tests.providers.vastai import documented as VD

Body = dict[str, Any]

CASES: dict[str, W.Case] = {
    **W.CASES,
    "vastai": W.Case(
        "vastai",
        {},
        VD.DocumentedVast,
        LaunchRequest(gpu_type="RTX4090", name="lostid"),
        lambda r: r.method == "PUT" and r.url.path.startswith("/api/v0/asks/"),
        VD.ID_LAUNCHED,
        lambda d: d.instances,
    ),
}


def key(case: W.Case) -> str:
    """The case's name in ``CASES`` (RunPod REST's provider is "runpod")."""
    return next(name for name, known in CASES.items() if known is case)


#: The read-back a launch makes after its create (providers without one return the create's
#: answer).
READ_BACKS: dict[str, Callable[[httpx.Request], bool]] = {
    **W.READ_BACKS,
    "vastai": lambda r: (r.method, r.url.path) == ("GET", f"/api/v0/instances/{VD.ID_LAUNCHED}/"),
}


def _set(*path: str, value: Any) -> Callable[[Body], None]:
    def change(body: Body) -> None:
        for key in path[:-1]:
            body = body[key]
        body[path[-1]] = value

    return change


def _drop(*path: str) -> Callable[[Body], None]:
    def change(body: Body) -> None:
        for key in path[:-1]:
            body = body[key]
        del body[path[-1]]

    return change


#: A change to the documented create answer that the generated parser or our mapping cannot
#: read, leaving the id where the vendor puts it (None: no such body exists for that parser,
#: the undocumented-status case covers the provider).
UNREADABLE: dict[str, Callable[[Body], None] | None] = {
    "lambda": None,  # the parser reads any data.instance_ids list; nothing else is read
    "paperspace": _drop("event"),  # MachineWithEvent requires it: the parser fails
    "tensordock": _set("data", "name", value=42),  # our mapping reads a name as text
    "runpod-rest": _set("cost", value="a lot"),  # Pod.cost is a number
    "vastai": None,  # the parser reads any object; the flow reads the raw body
}

#: A change that leaves no usable id.
NO_ID: dict[str, Callable[[Body], None]] = {
    "lambda": _set("data", "instance_ids", value=[]),
    "paperspace": _drop("data", "id"),
    "tensordock": _set("data", "id", value=None),
    "runpod-rest": _drop("id"),
    "vastai": _drop("new_contract"),
}

PROVIDERS = pytest.mark.parametrize("case", sorted(CASES), indirect=True)
MODES = pytest.mark.parametrize("mode", ["sync", "async"])


@pytest.fixture
def case(request: pytest.FixtureRequest) -> W.Case:
    return CASES[str(request.param)]


class Responder:
    """The documented answers, with the create's answer changed (and its status replaced
    when ``status`` is given); the read-back answers 503 when ``read_back_fails``."""

    def __init__(
        self,
        case: W.Case,
        change: Callable[[Body], None] | None,
        *,
        status: int | None = None,
        raw: bytes | None = None,
        read_back_fails: bool = False,
    ) -> None:
        self.case, self.documented = case, case.documented()
        self.change, self.status, self.raw = change, status, raw
        self.read_back_fails = read_back_fails
        self.creates = 0
        self.read_backs: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        reads_back = READ_BACKS.get(key(self.case))
        if reads_back is not None and reads_back(request):
            self.read_backs.append(request)
            if self.read_back_fails:
                return httpx.Response(503, text="busy")
        answer: httpx.Response = self.documented(request)
        if not self.case.is_create(request):
            return answer
        self.creates += 1
        assert 200 <= answer.status_code < 300, answer.text  # the instance was made
        status = self.status or answer.status_code
        if self.raw is not None:
            return httpx.Response(status, content=self.raw)
        body = json.loads(answer.content)
        if self.change is not None:
            self.change(body)
        return httpx.Response(status, json=body)


def launch(case: W.Case, mode: str, responder: Responder) -> Any:
    return W.run(case, mode, responder, "launch_instance", case.launch, max_retries=3)


def _made(case: W.Case, responder: Responder) -> None:
    assert responder.creates == 1  # never replayed
    assert case.new_id in case.existing(responder.documented)


# -- the id is read ------------------------------------------------------------------------------


UNREADABLE_ANSWERS = [
    *[(name, "unreadable") for name in sorted(CASES) if UNREADABLE[name] is not None],
    *[(name, "undocumented-2xx") for name in sorted(CASES)],
]


@pytest.mark.parametrize(("case", "answer"), UNREADABLE_ANSWERS, indirect=["case"])
@MODES
def test_a_create_answer_we_cannot_read_still_names_the_instance(
    case: W.Case, mode: str, answer: str
) -> None:
    if answer == "unreadable":
        responder = Responder(case, UNREADABLE[key(case)])
    else:  # the documented body with a 2xx the generated client does not model
        responder = Responder(case, None, status=202)
    instance = launch(case, mode, responder)
    assert instance.instance_id == case.new_id
    assert instance.name == case.launch.name
    if key(case) in READ_BACKS:  # the read-back of that id did the rest
        assert responder.read_backs
        assert all(case.new_id in r.url.path for r in responder.read_backs)
    _made(case, responder)


@PROVIDERS
@MODES
def test_an_unreadable_create_answer_whose_read_back_fails_returns_it_pending(
    case: W.Case, mode: str
) -> None:
    responder = Responder(case, UNREADABLE[key(case)], status=202, read_back_fails=True)
    instance = launch(case, mode, responder)
    assert (instance.instance_id, instance.state) == (case.new_id, InstanceState.PENDING)
    assert instance.name == case.launch.name
    assert instance.gpu_type == case.launch.gpu_type
    assert instance.provider == case.provider
    _made(case, responder)


# -- no id -----------------------------------------------------------------------------------------


def _maybe_submitted_without_id(case: W.Case, mode: str, responder: Responder) -> None:
    with pytest.raises(ProviderError) as info:
        launch(case, mode, responder)
    error = info.value
    assert (error.maybe_submitted, error.is_retryable, error.instance_id) == (True, False, None)
    assert "list instances" in error.message
    assert not responder.read_backs
    _made(case, responder)


@PROVIDERS
@MODES
def test_a_create_answer_without_an_id_is_maybe_submitted(case: W.Case, mode: str) -> None:
    _maybe_submitted_without_id(case, mode, Responder(case, NO_ID[key(case)]))


@PROVIDERS
@MODES
def test_an_unreadable_create_answer_without_an_id_is_maybe_submitted(
    case: W.Case, mode: str
) -> None:
    # Both faults at once: off schema (or an undocumented status) and no id.
    unreadable = UNREADABLE[key(case)]

    def change(body: Body) -> None:
        if unreadable is not None:
            unreadable(body)
        NO_ID[key(case)](body)

    _maybe_submitted_without_id(case, mode, Responder(case, change, status=202))


@PROVIDERS
@MODES
@pytest.mark.parametrize(
    "raw", [b"<html>Created</html>", b"", b"[1, 2]"], ids=["html", "empty", "list"]
)
def test_a_create_answer_that_is_not_an_object_is_maybe_submitted(
    case: W.Case, mode: str, raw: bytes
) -> None:
    _maybe_submitted_without_id(case, mode, Responder(case, None, raw=raw))


# -- json_at ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "path", "expected"),
    [
        ({"data": {"id": "m-1"}}, ("data", "id"), "m-1"),
        ({"data": {"instance_ids": ["i-1"]}}, ("data", "instance_ids", 0), "i-1"),
        ({"data": {"instance_ids": []}}, ("data", "instance_ids", 0), None),
        ({"data": {"instance_ids": "i-1"}}, ("data", "instance_ids", 0), None),
        ({"data": {"id": 7}}, ("data", "id"), None),
        ({"data": {"id": "  "}}, ("data", "id"), None),
        ({"data": None}, ("data", "id"), None),
        (["data"], ("data",), None),
        (None, ("id",), None),
        ({"id": True}, ("id",), None),
    ],
)
def test_json_at_reads_only_a_non_empty_string(
    body: Any, path: tuple[str | int, ...], expected: str | None
) -> None:
    assert json_at(*path)(body) == expected


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (["i-1"], "i-1"),
        ([], None),
        (["i-1", "i-2"], None),
        ([""], None),
        ([7], None),
        ("i-1", None),
    ],
)
def test_lambda_reads_the_one_id_of_a_launch(ids: Any, expected: str | None) -> None:
    # One instance was asked for: two ids, or a string (whose first letter is no id), are off
    # the schema and name nothing.
    from gpu_providers.lambda_cloud import _mapping

    assert _mapping.created_id({"data": {"instance_ids": ids}}) == expected
