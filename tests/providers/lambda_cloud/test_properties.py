"""Property tests: whatever Lambda answers, the client returns a valid result or raises a
``gpu_providers.errors.ProviderError`` subclass, never a bare KeyError, TypeError,
AttributeError, IndexError or ValueError.

Each read endpoint is served random JSON, documented payloads cut short (as text, or with
keys removed) and documented payloads with one part replaced by a value of another shape.
The sync and the async client must end the same way. Generation is derandomized and the
database is off, so runs are reproducible and leave no files behind.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gpu_providers import create_async_provider, create_provider
from gpu_providers.errors import ProviderError
from gpu_providers.lambda_cloud._mapping import SSHKey
from gpu_providers.types import GPUInstance, GPUOffer, InstanceStatus
from tests.providers.timekeeping import isolated

from . import documented as D

SETTINGS = settings(
    max_examples=50,
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


def _is_key_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(k, SSHKey) and all(isinstance(v, str) for v in (k.id, k.name, k.public_key))
        for k in value
    )


@dataclass(frozen=True)
class ReadEndpoint:
    """A read endpoint, the client call that reaches it, and what a valid result is."""

    name: str
    method: str
    args: tuple[Any, ...]
    documented: Callable[[], Any]
    valid: Callable[[Any], bool]


ENDPOINTS: dict[str, ReadEndpoint] = {
    e.name: e
    for e in (
        ReadEndpoint(
            "instance-types",
            "list_available_gpus",
            (),
            lambda: {"data": D.instance_types_data()},
            lambda r: isinstance(r, list) and all(isinstance(o, GPUOffer) for o in r),
        ),
        ReadEndpoint(
            "instances",
            "list_instances",
            (),
            lambda: {"data": list(D.account_instances().values())},
            lambda r: isinstance(r, list) and all(isinstance(i, GPUInstance) for i in r),
        ),
        ReadEndpoint(
            "instance",
            "get_instance_status",
            (D.ID_ACTIVE,),
            lambda: {"data": D.account_instances()[D.ID_ACTIVE]},
            lambda r: isinstance(r, InstanceStatus),
        ),
        ReadEndpoint(
            "ssh-keys",
            "list_ssh_keys",
            (),
            lambda: {"data": [{"id": D.SSH_KEY_ID, "name": "k", "public_key": D.PUBLIC_KEY}]},
            _is_key_list,
        ),
    )
}


def _serve(status: int, content: bytes) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers={"content-type": "application/json"})

    return httpx.MockTransport(handler)


def _no_sleep(seconds: float) -> None:
    return None


async def _no_asleep(seconds: float) -> None:
    return None


def _outcome(endpoint: ReadEndpoint, call: Callable[[], Any]) -> str:
    """``"ok"`` or the ProviderError class name; anything else fails the test."""
    try:
        result = call()
    except ProviderError as exc:
        return type(exc).__name__
    assert endpoint.valid(result), f"invalid result {result!r}"
    return "ok"


def check(endpoint: ReadEndpoint, content: bytes, status: int = 200) -> str:
    """Serve ``content`` to the sync and the async client; both must end the same way."""
    options: dict[str, Any] = {"api_key": "k", "max_retries": 0}
    client = isolated(create_provider("lambda", transport=_serve(status, content), **options))
    with client:
        sync = _outcome(endpoint, lambda: getattr(client, endpoint.method)(*endpoint.args))

    async def run_async() -> Any:
        async with isolated(
            create_async_provider("lambda", transport=_serve(status, content), **options)
        ) as aclient:
            return await getattr(aclient, endpoint.method)(*endpoint.args)

    async_ = _outcome(endpoint, lambda: asyncio.run(run_async()))
    assert sync == async_
    return sync


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in a JSON value (the root excluded)."""
    found: list[tuple[Any, ...]] = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    copied = copy.deepcopy(value)
    parent = copied
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = new
    return copied


def _delete(value: Any, path: tuple[Any, ...]) -> Any:
    copied = copy.deepcopy(value)
    parent = copied
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    return copied


@st.composite
def truncated_text(draw: st.DrawFn, endpoint: ReadEndpoint) -> bytes:
    text = json.dumps(endpoint.documented()).encode()
    return text[: draw(st.integers(min_value=0, max_value=len(text) - 1))]


@st.composite
def without_keys(draw: st.DrawFn, endpoint: ReadEndpoint) -> bytes:
    payload = endpoint.documented()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        candidates = [p for p in _paths(payload) if isinstance(p[-1], str)]
        if not candidates:
            break
        payload = _delete(payload, draw(st.sampled_from(candidates)))
    return json.dumps(payload).encode()


@st.composite
def one_part_replaced(draw: st.DrawFn, endpoint: ReadEndpoint) -> bytes:
    payload = endpoint.documented()
    path = draw(st.sampled_from(_paths(payload)))
    return json.dumps(_replace(payload, path, draw(JSON))).encode()


NAMES = sorted(ENDPOINTS)


def test_documented_payloads_give_valid_results() -> None:
    for endpoint in ENDPOINTS.values():
        assert check(endpoint, json.dumps(endpoint.documented()).encode()) == "ok"


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_random_json_gives_a_typed_error_or_a_result(name: str, data: st.DataObject) -> None:
    body = data.draw(JSON)
    check(ENDPOINTS[name], json.dumps(body).encode())
    check(ENDPOINTS[name], json.dumps({"data": body}).encode())


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_error_statuses_give_a_typed_error(name: str, data: st.DataObject) -> None:
    status = data.draw(st.sampled_from([400, 401, 403, 404, 409, 429, 500, 502, 503]))
    body = data.draw(JSON | st.builds(D.error, st.text(max_size=20), st.text(max_size=20)))
    assert check(ENDPOINTS[name], json.dumps(body).encode(), status) != "ok"


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_truncated_documented_text_gives_a_typed_error(name: str, data: st.DataObject) -> None:
    assert check(ENDPOINTS[name], data.draw(truncated_text(ENDPOINTS[name]))) != "ok"


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_documented_payloads_missing_keys(name: str, data: st.DataObject) -> None:
    check(ENDPOINTS[name], data.draw(without_keys(ENDPOINTS[name])))


# One documented payload with one part replaced by another JSON value: the generated models
# do not check field types, and the mapping code then fails with raw exceptions. Each
# ``example`` is a case found this way, so these tests fail deterministically until fixed.

_TYPES = {"data": D.instance_types_data()}
_INSTANCE = D.account_instances()[D.ID_ACTIVE]
_A10_PRICE = ("data", "gpu_1x_a10", "instance_type", "price_cents_per_hour")
_BUG = (
    "BUG the flows map parsed answers outside the parse-error guard of _base._invoke: "
    "{}; see the report"
)


@SETTINGS
@example(json.dumps(_replace(_TYPES, _A10_PRICE, "75")).encode())
@given(one_part_replaced(ENDPOINTS["instance-types"]))
def test_instance_types_with_a_part_replaced(content: bytes) -> None:
    check(ENDPOINTS["instance-types"], content)


@SETTINGS
@example(json.dumps({"data": [_replace(_INSTANCE, ("status",), [])]}).encode())
@given(one_part_replaced(ENDPOINTS["instances"]))
def test_instances_with_a_part_replaced(content: bytes) -> None:
    check(ENDPOINTS["instances"], content)


@SETTINGS
@example(json.dumps({"data": _replace(_INSTANCE, ("id",), 7)}).encode())
@given(one_part_replaced(ENDPOINTS["instance"]))
def test_instance_with_a_part_replaced(content: bytes) -> None:
    check(ENDPOINTS["instance"], content)


@SETTINGS
@example(json.dumps({"data": [{"id": 1, "name": None, "public_key": 3}]}).encode())
@given(one_part_replaced(ENDPOINTS["ssh-keys"]))
def test_ssh_keys_with_a_part_replaced(content: bytes) -> None:
    check(ENDPOINTS["ssh-keys"], content)
