"""Clusters: launch, status, stop/start/terminate, autostop, and what one would cost
(accelerator offers of the enabled clouds)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._base_client import HttpClientT
from .._deadline import Deadline
from .._effects import Call, Flow, Wait
from .._protocol import RequestOutcome, expect_dict, expect_list, malformed, parse_answer
from .._tasks import cheapest, offers_from_list_accelerators, prepare_launch_task, resource_spec
from ..errors import ClusterNotFoundError, InvalidInputError, RequestLostError
from .jobs import JobFlows

if TYPE_CHECKING:  # pydantic models load on first use, not at import
    from ..models import (
        AcceleratorOffer,
        ClusterList,
        ClusterStatus,
        CostEstimate,
        EstimateCostRequest,
        LaunchRequest,
        LaunchResult,
    )


class ClusterFlows(JobFlows[HttpClientT]):
    """Flows of the cluster operations; a launch with ``detach=False`` also waits for its job
    (hence built on ``JobFlows``)."""

    def _launch_call(self, request: LaunchRequest) -> Call:
        task = prepare_launch_task(
            request.task,
            envs=request.envs,
            idle_minutes_to_stop=request.idle_minutes_to_stop,
            down=request.down,
        )
        fields = {
            "task": task,
            "cluster_name": request.cluster_name,
            "retry_until_up": request.retry_until_up,
            "dryrun": request.dryrun,
        }
        return self._submit(
            "/launch",
            fields,
            operation="launch",
            submits_work=True,
            credentials=request.credentials,
            cluster_name=request.cluster_name,
        )

    def _flow_finish_wait(self, request_id: str, deadline: Deadline) -> Flow[None]:
        yield Wait(request_id, deadline, "start")

    def _flow_launch_result(
        self, request: LaunchRequest, request_id: str, deadline: Deadline
    ) -> Flow[LaunchResult]:
        """The launch's result; with ``detach=False`` also its job's, all by one deadline."""
        from ..models import LaunchResult, LogsRequest

        secrets = self._secrets_of(request.credentials)
        outcome: RequestOutcome = yield Wait(request_id, deadline, "launch", secrets)
        value = expect_dict(
            outcome.return_value, operation="launch", where="return_value", request_id=request_id
        )
        result = parse_answer(
            LaunchResult,
            {
                "request_id": request_id,
                "cluster_name": request.cluster_name,
                "job_id": value.get("job_id"),
                "dryrun": request.dryrun,
            },
            operation="launch",
            where="return_value",
            request_id=request_id,
        )
        if not request.detach and result.job_id is not None and not request.dryrun:
            logs = yield from self._flow_logs(
                LogsRequest(cluster_name=request.cluster_name, job_id=result.job_id), deadline
            )
            result = result.model_copy(update={"exit_code": logs.exit_code, "output": logs.output})
        return result

    def _status_call(self, names: list[str] | None, *, refresh: bool, all_users: bool) -> Call:
        fields = {
            "cluster_names": names,
            "refresh": "AUTO" if refresh else "NONE",
            "all_users": all_users,
            "include_credentials": False,  # the server default returns SSH private keys
            "include_handle": False,
        }
        return self._submit("/status", fields, operation="status", submits_work=False)

    def _flow_list_clusters(self, *, refresh: bool, all_users: bool) -> Flow[ClusterList]:
        from ..models import ClusterList, ClusterStatus

        call = self._status_call(None, refresh=refresh, all_users=all_users)
        outcome = yield from self._submit_and_wait(call, self._status_deadline())
        clusters = [c for _, c in self._records(outcome, ClusterStatus, "status")]
        return ClusterList(clusters=clusters)

    def _flow_get_status(self, name: str, *, refresh: bool, all_users: bool) -> Flow[ClusterStatus]:
        from ..models import ClusterStatus

        call = self._status_call([self._cluster_name(name)], refresh=refresh, all_users=all_users)
        outcome = yield from self._submit_and_wait(call, self._status_deadline())
        for _, cluster in self._records(outcome, ClusterStatus, "status"):
            if cluster.name == name:
                return cluster
        raise ClusterNotFoundError(
            f"Cluster {name!r} does not exist.",
            request_id=outcome.status.request_id,
            cluster_name=name,
            error_type="ClusterDoesNotExist",
        )

    def _flow_reconcile(self, lost: RequestLostError, deadline: Deadline) -> Flow[None]:
        """After a lost launch: read its cluster's status and say what exists.

        A server that just restarted is slow to answer its first requests: the read may use
        what is left of the caller's wait, and at least the usual status timeout.
        """
        from ..models import ClusterState, ClusterStatus

        name = lost.cluster_name
        if name is None:
            return
        call = self._status_call([name], refresh=False, all_users=True)
        seconds = max(deadline.remaining(), self._settings.status_timeout)
        outcome = yield from self._submit_and_wait(call, Deadline.after(seconds))
        found = None
        for _, cluster in self._records(outcome, ClusterStatus, "status"):
            if cluster.name == name:
                found = cluster
        lost.reconciled = True
        lost.cluster_status = found
        if found is None:
            lost.message += (
                f". Reconciled: the server has no cluster {name!r}: most likely nothing was "
                "provisioned (the cloud's console is the final word)"
            )
        elif found.status == ClusterState.UP:
            lost.message += (
                f". Reconciled: cluster {name!r} is UP (it was launched and is billing): use "
                "it, or terminate it"
            )
        elif found.status == ClusterState.INIT:
            lost.message += (
                f". Reconciled: cluster {name!r} is INIT (provisioning was interrupted or is "
                "half-done, and may be billing): launch again under the same name to finish "
                "it, or terminate it"
            )
        else:
            lost.message += f". Reconciled: cluster {name!r} is {found.status.value}"

    def _flow_cluster_op(
        self, path: str, operation: str, fields: dict[str, Any], deadline: Deadline
    ) -> Flow[None]:
        name = self._cluster_name(fields["cluster_name"])
        call = self._submit(path, fields, operation=operation, submits_work=True, cluster_name=name)
        yield from self._submit_and_wait(call, deadline)

    def _start_call(
        self,
        name: str,
        *,
        idle_minutes_to_stop: int | None,
        down: bool,
        retry_until_up: bool,
        force: bool,
    ) -> Call:
        fields: dict[str, Any] = {
            "cluster_name": self._cluster_name(name),
            "retry_until_up": retry_until_up,
            "down": down,
            "force": force,
        }
        if idle_minutes_to_stop is not None:
            if idle_minutes_to_stop < 0:
                raise InvalidInputError("idle_minutes_to_stop must be 0 or more")
            fields["idle_minutes_to_autostop"] = idle_minutes_to_stop
        return self._submit(
            "/start", fields, operation="start", submits_work=True, cluster_name=name
        )

    def _autostop_fields(self, name: str, idle_minutes: int | None, down: bool) -> dict[str, Any]:
        if idle_minutes is not None and (isinstance(idle_minutes, bool) or idle_minutes < 0):
            raise InvalidInputError("idle_minutes must be 0 or more (None cancels autostop)")
        return {
            "cluster_name": self._cluster_name(name),
            "idle_minutes": -1 if idle_minutes is None else idle_minutes,
            "down": down,
        }

    def _flow_list_accelerators(
        self,
        *,
        name_filter: str | None,
        clouds: list[str] | None,
        region_filter: str | None,
        quantity_filter: int | None,
        gpus_only: bool,
        all_regions: bool,
    ) -> Flow[list[AcceleratorOffer]]:
        if quantity_filter is not None and quantity_filter < 1:
            raise InvalidInputError("quantity_filter must be 1 or more")
        fields = {
            "gpus_only": gpus_only,
            "name_filter": name_filter,
            "region_filter": region_filter,
            "quantity_filter": quantity_filter,
            "clouds": clouds,
            "all_regions": all_regions,
            "require_price": True,
            "case_sensitive": False,
        }
        call = self._submit(
            "/list_accelerators", fields, operation="list_accelerators", submits_work=False
        )
        outcome = yield from self._submit_and_wait(call, self._status_deadline())
        return offers_from_list_accelerators(
            outcome.return_value,
            operation="list_accelerators",
            request_id=outcome.status.request_id,
        )

    def _flow_enabled_clouds(self, workspace: str | None) -> Flow[list[str]]:
        yield from self._require_version("enabled_clouds")
        params: dict[str, Any] = {"expand": "false"}
        ws = workspace if workspace is not None else self._workspace
        if ws is not None:
            params["workspace"] = ws
        call = Call("GET", "/enabled_clouds", "enabled_clouds", params=params)
        reply = yield call
        outcome: RequestOutcome = yield Wait(
            self._submitted_id(call, reply), self._status_deadline(), "enabled_clouds"
        )
        rid = outcome.status.request_id
        where = "return_value"
        clouds = expect_list(
            outcome.return_value, operation="enabled_clouds", where=where, request_id=rid
        )
        return [str(c) for c in clouds]

    def _flow_estimate_cost(self, request: EstimateCostRequest) -> Flow[CostEstimate]:
        spec = resource_spec(request.task, spot=request.spot)
        if spec.cloud:
            clouds = [spec.cloud]
        else:
            clouds = yield from self._flow_enabled_clouds(None)
            if not clouds:
                raise InvalidInputError(
                    "estimate_cost: the task names no cloud and the server has none enabled"
                )
        offers = yield from self._flow_list_accelerators(
            name_filter=spec.accelerator,
            clouds=clouds,
            region_filter=spec.region,
            quantity_filter=None,
            gpus_only=spec.accelerator is not None,
            all_regions=True,
        )
        return cheapest(spec, offers, request.hours)

    def _flow_endpoints(self, name: str, port: int | None) -> Flow[dict[int, str]]:
        if port is not None and (
            not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535
        ):
            raise InvalidInputError(f"port must be an integer from 1 to 65535, got {port!r}")
        call = self._submit(
            "/endpoints",
            {"cluster": self._cluster_name(name), "port": port},
            operation="endpoints",
            submits_work=False,
            cluster_name=name,
        )
        outcome = yield from self._submit_and_wait(call, self._status_deadline())
        rid = outcome.status.request_id
        where = "return_value"
        value = expect_dict(
            outcome.return_value, operation="endpoints", where=where, request_id=rid
        )
        urls: dict[int, str] = {}
        for key, url in value.items():
            if not (isinstance(key, str) and key.isdigit()) or not isinstance(url, str):
                problem = "expected {port: endpoint URL}"
                raise malformed("endpoints", f"{where}[{key!r}]", problem, request_id=rid)
            urls[int(key)] = url
        return urls

    def _flow_attached_launch_result(
        self, request_id: str, deadline: Deadline, *, dryrun: bool
    ) -> Flow[LaunchResult]:
        """The result of a launch submitted earlier (maybe by another process)."""
        from ..models import LaunchResult

        outcome: RequestOutcome = yield Wait(request_id, deadline, "launch")
        value = expect_dict(
            outcome.return_value, operation="launch", where="return_value", request_id=request_id
        )
        return parse_answer(
            LaunchResult,
            {
                "request_id": request_id,
                "cluster_name": outcome.status.cluster_name,
                "job_id": value.get("job_id"),
                "dryrun": dryrun,
            },
            operation="launch",
            where="return_value",
            request_id=request_id,
        )
