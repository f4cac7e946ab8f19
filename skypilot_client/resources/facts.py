"""Facts about the server's account: which clouds are enabled (``check``) and what the
clusters cost (``cost_report``)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .._base_client import HttpClientT
from .._effects import Collect, Collected, Flow
from .._protocol import clean_output, expect_dict, expect_list, malformed
from ..errors import InvalidInputError
from .requests import RequestFlows

if TYPE_CHECKING:  # pydantic models load on first use, not at import
    from ..models import CloudCheck, ClusterCost

# "  AWS: disabled" in the check report, the reason on the indented lines after it.
_DISABLED = re.compile(r"^\s{1,3}(?P<cloud>[^\s:][^:]*): disabled\s*$")


def disabled_clouds(report: str) -> dict[str, str]:
    """Cloud -> reason, read from the human-readable report of ``POST /check``."""
    disabled: dict[str, str] = {}
    cloud: str | None = None
    reason: list[str] = []
    for line in [*report.splitlines(), ""]:
        if cloud is not None and line.startswith("    "):
            reason.append(line.strip())
            continue
        if cloud is not None:
            disabled[cloud] = "\n".join(reason)
            cloud, reason = None, []
        if match := _DISABLED.match(line):
            cloud = match["cloud"].strip()
    return disabled


class FactFlows(RequestFlows[HttpClientT]):
    """Flows of ``check`` and ``cost_report``."""

    def _flow_check(self, clouds: list[str] | None, workspace: str | None) -> Flow[CloudCheck]:
        from ..models import CloudCheck

        if clouds is not None:
            if isinstance(clouds, str) or not all(isinstance(c, str) and c for c in clouds):
                raise InvalidInputError("clouds must be a list of cloud names, or None")
            clouds = list(clouds)
        ws = workspace if workspace is not None else self._workspace
        fields = {"clouds": clouds, "verbose": False, "workspace": ws}
        call = self._submit("/check", fields, operation="check", submits_work=False)
        deadline = self._status_deadline()
        outcome = yield from self._submit_and_wait(call, deadline)
        rid = outcome.status.request_id
        where = "return_value"
        value = expect_dict(outcome.return_value, operation="check", where=where, request_id=rid)
        enabled: dict[str, dict[str, list[str]]] = {}
        for ws_name, by_cloud in value.items():
            at = f"{where}[{ws_name!r}]"
            by_cloud = expect_dict(by_cloud, operation="check", where=at, request_id=rid)
            enabled[ws_name] = {}
            for cloud, caps in by_cloud.items():
                at_cloud = f"{at}[{cloud!r}]"
                caps = expect_list(caps, operation="check", where=at_cloud, request_id=rid)
                if not all(isinstance(c, str) for c in caps):
                    problem = "expected a list of capability names"
                    raise malformed("check", at_cloud, problem, request_id=rid)
                enabled[ws_name][cloud] = caps
        # The reasons a cloud is disabled are only in the request's log (human text).
        log_call = self._stream_call(rid, follow=False, tail=None, deadline=deadline)
        collected: Collected = yield Collect(log_call)
        report = clean_output(collected.lines)
        return CloudCheck(enabled=enabled, disabled=disabled_clouds(report), report=report)

    def _flow_cost_report(self, days: int | None) -> Flow[list[ClusterCost]]:
        from ..models import ClusterCost

        if days is not None and (not isinstance(days, int) or isinstance(days, bool) or days < 1):
            raise InvalidInputError("days must be 1 or more (or None for the server's default)")
        fields: dict[str, Any] = {"days": days} if days is not None else {}
        call = self._submit("/cost_report", fields, operation="cost_report", submits_work=False)
        outcome = yield from self._submit_and_wait(call, self._status_deadline())
        return [cost for _, cost in self._records(outcome, ClusterCost, "cost_report")]
