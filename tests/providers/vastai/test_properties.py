"""Property tests: every answer the spec allows is handled, and nothing else escapes untyped.

* Spec-valid 200 bodies (generated from the response schemas of specs/vastai/openapi.yaml,
  whose kept properties have the upstream types: tests/contract/test_specs_match_vendor.py)
  give a valid result: any type-valid Instance maps to an instance or a status, any page
  of instances to a list, any offer objects to offers (the ones we cannot read are skipped).
* Random JSON, documented payloads cut short and error statuses give a result or a
  ``gpu_providers.errors.ProviderError``, never a bare KeyError, TypeError, ValueError, ...

The sync and the async client must end the same way. Generation is derandomized and the
database is off, so runs are reproducible and leave no files behind.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpu_providers import GPUFilters, create_async_provider, create_provider
from gpu_providers.errors import ProviderError
from gpu_providers.types import GPUInstance, GPUOffer, InstanceStatus
from tests.providers.timekeeping import isolated

from . import documented as D

SPEC = Path(__file__).resolve().parents[3] / "specs" / "vastai" / "openapi.yaml"
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


# -- values valid for a schema ----------------------------------------------------------------


def _spec() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    return data


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = _spec()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


_SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "integer": st.integers(min_value=-(2**53), max_value=2**53),
    "number": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**9), 10**9),
    "string": st.text(max_size=16),
}


def valid(schema: dict[str, Any], *, required: frozenset[str] = frozenset()) -> Any:
    """A strategy for JSON values valid for ``schema`` (the constructs our spec uses).

    Object properties are each present or absent (the spec requires none); ``required``
    names the ones always present.
    """
    schema = _resolve(schema)
    if "anyOf" in schema:
        return st.one_of([valid(s) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kinds = schema.get("type", "object")
    if isinstance(kinds, list):
        return st.one_of([valid({**schema, "type": k}) for k in kinds])
    if kinds == "array":
        return st.lists(valid(schema.get("items", {})), max_size=3)
    if kinds == "object":
        properties = schema.get("properties", {})
        if not properties:
            return st.dictionaries(st.text(max_size=8), JSON, max_size=3)
        return st.fixed_dictionaries(
            {k: valid(v) for k, v in properties.items() if k in required},
            optional={k: valid(v) for k, v in properties.items() if k not in required},
        )
    return _SCALARS[kinds]


INSTANCE = valid({"$ref": "#/components/schemas/Instance"}, required=frozenset({"id"})).filter(
    lambda i: isinstance(i["id"], int)
)
#: Offers: free-form upstream; the documented fields with values of any JSON type, around
#: an integer id (an offer without one cannot be rented).
OFFER_FIELDS = sorted(D.catalog()[0])
OFFER = st.builds(
    lambda fields, offer_id: {**fields, "id": offer_id},
    st.dictionaries(st.sampled_from(OFFER_FIELDS), JSON, max_size=12),
    st.integers(min_value=1, max_value=2**40),
)


# -- running both clients ---------------------------------------------------------------------


def _serve(answers: list[tuple[int, bytes]]) -> httpx.MockTransport:
    """Answer in order; the last answer repeats."""
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        status, content = queue.pop(0) if len(queue) > 1 else queue[0]
        return httpx.Response(status, content=content, headers={"content-type": "application/json"})

    return httpx.MockTransport(handler)


@dataclass(frozen=True)
class Call:
    method: str
    args: tuple[Any, ...]
    valid: Callable[[Any], bool]


CALLS = {
    "offers": Call(
        "list_available_gpus",
        (GPUFilters(spot=False, available_only=False),),
        lambda r: isinstance(r, list) and all(isinstance(o, GPUOffer) for o in r),
    ),
    "instance": Call(
        "get_instance_status", (D.ID_RUNNING,), lambda r: isinstance(r, InstanceStatus)
    ),
    "instances": Call(
        "list_instances",
        (),
        lambda r: isinstance(r, list) and all(isinstance(i, GPUInstance) for i in r),
    ),
    "terminate": Call("terminate_instance", (D.ID_RUNNING,), lambda r: r is None),
    "stop": Call("stop_instance", (D.ID_RUNNING,), lambda r: isinstance(r, GPUInstance)),
}


def _outcome(call: Call, run: Callable[[], Any]) -> str:
    try:
        result = run()
    except ProviderError as exc:
        return type(exc).__name__
    assert call.valid(result), f"invalid result {result!r}"
    return "ok"


def check(name: str, answers: list[tuple[int, bytes]]) -> str:
    """Serve ``answers`` to the sync and the async client; both must end the same way."""
    call = CALLS[name]
    options: dict[str, Any] = {"api_key": "k", "max_retries": 0}
    with isolated(create_provider("vastai", transport=_serve(answers), **options)) as client:
        sync = _outcome(call, lambda: getattr(client, call.method)(*call.args))

    async def run_async() -> Any:
        async with isolated(
            create_async_provider("vastai", transport=_serve(answers), **options)
        ) as aclient:
            return await getattr(aclient, call.method)(*call.args)

    async_ = _outcome(call, lambda: asyncio.run(run_async()))
    assert sync == async_
    return sync


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


# -- spec-valid answers give results ------------------------------------------------------------


@SETTINGS
@given(st.lists(OFFER, max_size=4))
def test_any_offer_objects_give_offers(offers: list[dict[str, Any]]) -> None:
    assert check("offers", [(200, _json({"offers": offers}))]) == "ok"


@SETTINGS
@given(INSTANCE)
def test_any_spec_valid_instance_gives_a_status(instance: dict[str, Any]) -> None:
    instance = {**instance, "id": int(D.ID_RUNNING)}  # the one asked for
    assert check("instance", [(200, _json({"instances": instance}))]) == "ok"
    other = {**instance, "id": int(D.ID_RUNNING) + 1}
    assert check("instance", [(200, _json({"instances": other}))]) == "UnexpectedResponseError"


@SETTINGS
@given(st.lists(INSTANCE, max_size=3), st.lists(INSTANCE, max_size=3), st.text(min_size=1))
def test_any_spec_valid_pages_give_instances(
    first: list[dict[str, Any]], second: list[dict[str, Any]], token: str
) -> None:
    pages = [
        (200, _json({"success": True, "next_token": token, "instances": first})),
        (200, _json({"success": True, "next_token": None, "instances": second})),
    ]
    assert check("instances", pages) == "ok"


@SETTINGS
@given(valid({"type": "object", "properties": {"msg": {"type": "string"}}}))
def test_a_destroy_with_success_true_is_done(extra: dict[str, Any]) -> None:
    assert check("terminate", [(200, _json({**extra, "success": True}))]) == "ok"


@SETTINGS
@given(INSTANCE)
def test_a_stop_then_any_instance_gives_an_instance(instance: dict[str, Any]) -> None:
    instance = {**instance, "id": int(D.ID_RUNNING)}
    answers = [(200, _json({"success": True})), (200, _json({"instances": instance}))]
    assert check("stop", answers) == "ok"


# -- anything else gives a typed error or a result ----------------------------------------------

DOCUMENTED: dict[str, Callable[[], Any]] = {
    "offers": lambda: {"offers": D.catalog()},
    "instance": lambda: {"instances": D.account_instances()[D.ID_RUNNING]},
    "instances": lambda: {
        "success": True,
        "next_token": None,
        "instances": list(D.account_instances().values()),
    },
    "terminate": lambda: {"success": True, "msg": "Instance destroyed successfully"},
    "stop": lambda: {"success": True},
}
NAMES = sorted(CALLS)


def test_documented_payloads_give_valid_results() -> None:
    for name in NAMES:
        answers = [(200, _json(DOCUMENTED[name]()))]
        if name == "stop":
            answers.append((200, _json(DOCUMENTED["instance"]())))
        assert check(name, answers) == "ok", name


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_random_json_gives_a_typed_error_or_a_result(name: str, data: st.DataObject) -> None:
    check(name, [(200, _json(data.draw(JSON)))])


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_error_statuses_give_a_typed_error(name: str, data: st.DataObject) -> None:
    status = data.draw(st.sampled_from([400, 401, 402, 403, 404, 410, 411, 429, 500, 502, 503]))
    body = data.draw(
        JSON
        | st.fixed_dictionaries(
            {"success": st.just(False), "error": st.text(max_size=20), "msg": st.text()}
        )
        | st.text().map(lambda t: {"detail": t})
    )
    assert check(name, [(status, _json(body))]) != "ok"


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_truncated_documented_text_gives_a_typed_error(name: str, data: st.DataObject) -> None:
    text = _json(DOCUMENTED[name]())
    cut = text[: data.draw(st.integers(min_value=0, max_value=len(text) - 1))]
    assert check(name, [(200, cut)]) != "ok"


def test_a_bare_404_is_never_read_as_gone() -> None:
    for body in (b"<html>404</html>", b'{"detail": "Not Found"}', b""):
        assert check("terminate", [(404, body)]) == "UnexpectedResponseError"
    assert check("terminate", [(404, _json(D.NOT_FOUND))]) == "ok"  # Vast.ai's own not_found
    assert check("terminate", [(200, _json(D.NO_SUCH_INSTANCE))]) == "ok"  # dstack's reading


CREATE_ANSWER = valid({"$ref": "#/components/schemas/CreateInstanceResponse"})


@SETTINGS
@given(CREATE_ANSWER, INSTANCE)
def test_any_spec_valid_create_answer_is_a_launch_or_a_maybe_rented_error(
    answer: dict[str, Any], instance: dict[str, Any]
) -> None:
    """A create answer the spec allows either names the new instance (success true and a
    positive new_contract) or is an error that says the launch may have rented something."""
    from gpu_providers import LaunchRequest

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v0/bundles/":
            return httpx.Response(200, json={"offers": D.catalog()[:1]})
        if request.method == "PUT":
            return httpx.Response(200, json=answer)
        return httpx.Response(200, json={"instances": instance})

    made = isinstance(answer.get("new_contract"), int) and answer["new_contract"] > 0
    expected = made and answer.get("success") is True
    options: dict[str, Any] = {"api_key": "k", "transport": httpx.MockTransport(handler)}
    request = LaunchRequest(gpu_type="RTX4090")
    with isolated(create_provider("vastai", **options)) as client:
        if expected:
            launched = client.launch_instance(request)
            assert launched.instance_id == str(answer["new_contract"])
            return
        with pytest.raises(ProviderError) as caught:
            client.launch_instance(request)
    assert caught.value.maybe_submitted and not caught.value.is_retryable
    assert caught.value.instance_id == (str(answer["new_contract"]) if made else None)
