"""Server requests: look one up, list them, wait for one, cancel it, stream its log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import _constants as constants
from .._base_client import BaseClient, HttpClientT
from .._deadline import Deadline
from .._effects import Call, Flow, Wait
from .._protocol import RequestOutcome, decode_record, expect_list
from ..errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:  # pydantic models load on first use, not at import
    from ..models import RequestStatus


class RequestFlows(BaseClient[HttpClientT]):
    """Flows of ``get_request``, ``list_requests``, ``wait_for_request``, ``cancel_request``
    and the ``/api/stream`` call behind ``stream_request_logs`` and progress."""

    def _stream_call(
        self,
        request_id: str | None,
        *,
        follow: bool,
        tail: int | None,
        deadline: Deadline | None = None,
    ) -> Call:
        params: dict[str, Any] = {"format": "console", "follow": str(follow).lower()}
        if request_id is not None:
            params["request_id"] = request_id
        if tail is not None:
            params["tail"] = tail
        return Call(
            "GET",
            "/api/stream",
            "stream",
            params=params,
            read_timeout=constants.STREAM_READ_TIMEOUT,
            deadline=deadline,
        )

    def _flow_get_request(
        self, request_id: str, deadline: Deadline | None = None
    ) -> Flow[RequestStatus]:
        request_id = self._request_id(request_id)
        reply = yield Call(
            "GET",
            "/api/status",
            "get_request",
            params={"request_ids": request_id, "all_status": "true"},
            deadline=deadline,
        )
        items = expect_list(reply.data, operation="get_request", where="/api/status answer")
        if not items:
            error = NotFoundError(
                f"Request {request_id!r} not found", status_code=404, request_id=request_id
            )
            raise self._lost_or_unknown(request_id, error)
        return decode_record(items[0], operation="get_request", where="/api/status[0]")[0]

    def _flow_list_requests(
        self, *, cluster_name: str | None, all_status: bool, limit: int | None
    ) -> Flow[list[RequestStatus]]:
        params: dict[str, Any] = {"all_status": str(all_status).lower()}
        if cluster_name is not None:
            params["cluster_name"] = self._cluster_name(cluster_name)
        if limit is not None:
            if limit < 1:
                raise InvalidInputError("limit must be 1 or more")
            params["limit"] = limit
        reply = yield Call("GET", "/api/status", "list_requests", params=params)
        items = expect_list(reply.data, operation="list_requests", where="/api/status answer")
        return [
            decode_record(item, operation="list_requests", where=f"/api/status[{i}]")[0]
            for i, item in enumerate(items)
        ]

    def _flow_wait_for_request(self, request_id: str, deadline: Deadline) -> Flow[RequestStatus]:
        outcome: RequestOutcome = yield Wait(self._request_id(request_id), deadline, "wait")
        return outcome.status

    def _flow_cancel_request(self, request_id: str) -> Flow[list[str]]:
        call = self._submit(
            "/api/cancel",
            {"request_ids": [self._request_id(request_id)]},
            operation="cancel_request",
            submits_work=False,
        )
        outcome = yield from self._submit_and_wait(call, self._status_deadline())
        rid = outcome.status.request_id
        where = "return_value"
        ids = expect_list(
            outcome.return_value, operation="cancel_request", where=where, request_id=rid
        )
        return [str(v) for v in ids]

    def _flow_attach(self, request_id: str, operation: str) -> Flow[str]:
        """Check that ``request_id`` names a request of ``operation`` the server knows."""
        expected = {"launch": "sky.launch", "start": "sky.start"}.get(operation)
        if expected is None:
            raise InvalidInputError(f"cannot attach to {operation!r}: use 'launch' or 'start'")
        status = yield from self._flow_get_request(request_id)
        if status.name != expected:
            raise InvalidInputError(
                f"request {status.request_id!r} is a {status.name!r} request, not {expected!r}"
            )
        return status.request_id
