"""The sans-IO protocol core: headers, bodies, records, streams."""

from __future__ import annotations

import json

import pytest

from skypilot_client import RequestState
from skypilot_client._protocol import (
    LogLine,
    LogStreamParser,
    SpinnerUpdate,
    base_headers,
    clean_output,
    decode_record,
    request_body,
    strip_ansi,
    user_identity,
    version_problem,
)


def test_version_headers_on_every_call() -> None:
    headers = base_headers()
    assert headers["X-SkyPilot-API-Version"] == "62"
    assert headers["X-SkyPilot-Version"] == "0.14.1"


def test_body_carries_identity_workspace_and_keeps_required_nulls() -> None:
    body = request_body(
        {"cluster_name": "c", "job_ids": None, "purge": None},
        identity={"SKYPILOT_USER_ID": "abcd1234", "SKYPILOT_USER": "me"},
        extra_env={"AWS_ACCESS_KEY_ID": "k", "SKYPILOT_USER_ID": "spoofed"},
        workspace="team-a",
    )
    assert body["env_vars"] == {
        "AWS_ACCESS_KEY_ID": "k",
        "SKYPILOT_USER_ID": "abcd1234",
        "SKYPILOT_USER": "me",
    }
    assert body["job_ids"] is None  # the server requires the key
    assert "purge" not in body
    assert body["override_skypilot_config"] == {"active_workspace": "team-a"}


def test_user_identity_is_stable_and_well_formed() -> None:
    first, second = user_identity(), user_identity()
    assert first == second
    assert len(first["SKYPILOT_USER_ID"]) == 8
    int(first["SKYPILOT_USER_ID"], 16)


def test_record_is_decoded_twice_and_pickles_dropped() -> None:
    record = {
        "request_id": "r1",
        "name": "sky.launch",
        "status": "SUCCEEDED",
        "entrypoint": "gASV...",
        "request_body": "gASV...",
        "created_at": 1795433897.31,
        "return_value": json.dumps({"job_id": 3, "handle": "gAROLg=="}),
        "error": "null",
        "pid": 7,
        "brand_new_field": 1,
    }
    status, value, error = decode_record(record)
    assert value == {"job_id": 3, "handle": "gAROLg=="}
    assert status.return_value == {"job_id": 3}
    assert error is None
    assert status.status == RequestState.SUCCEEDED and status.status.is_terminal
    dumped = status.model_dump_json()
    assert "gASV" not in dumped and "gAROLg" not in dumped
    assert status.created_at is not None and status.created_at.year == 2026


def test_unknown_request_state_is_tolerated() -> None:
    status, _, _ = decode_record({"request_id": "r", "name": "sky.x", "status": "QUANTUM"})
    assert status.status == RequestState.UNKNOWN


def test_strip_ansi() -> None:
    text = "\x1b[33mCluster 'c' does not exist.\x1b[0m Run: \x1b[1msky check\x1b[0m"
    assert strip_ansi(text) == "Cluster 'c' does not exist. Run: sky check"


def test_stream_parser_splits_payloads_and_lines_across_chunks() -> None:
    stream = (
        '<sky-payload>"<rich_init>[bold cyan]Optimizing[/]</rich_init>"</sky-payload>\n'
        "Considered resources (1 node):\n"
        '<sky-payload>"<heartbeat></heartbeat>"</sky-payload>\n'
        "Waiting for 'sky.launch' request to be scheduled: abc" + " " * 40 + "\n"
        '<sky-payload>"<rich_update>[dim]Launching[/dim]</rich_update>"</sky-payload>\n'
        "last line without newline"
    )
    parser = LogStreamParser()
    events: list[LogLine | SpinnerUpdate] = []
    for start in range(0, len(stream), 5):
        events.extend(parser.feed(stream[start : start + 5]))
    events.extend(parser.close())
    assert events == [
        SpinnerUpdate("rich_init", "Optimizing"),
        LogLine("Considered resources (1 node):"),
        LogLine("Waiting for 'sky.launch' request to be scheduled: abc"),
        SpinnerUpdate("rich_update", "Launching"),
        LogLine("last line without newline"),
    ]


def test_clean_output_drops_ansi_and_progress_redraws() -> None:
    assert clean_output(["\x1b[32mok\x1b[0m", "1%\r50%\r100%"]) == "ok\n100%\n"
    assert clean_output([]) == ""


@pytest.mark.parametrize(
    ("server", "problem"), [(None, True), (23, True), (24, False), (62, False), (999, False)]
)
def test_version_gate(server: int | None, problem: bool) -> None:
    error = version_problem(server, operation="launch", min_version=24)
    assert (error is not None) == problem
    if error is not None:
        assert "launch" in error.message and "Upgrade the server" in error.message


def test_clean_output_keeps_lines_that_end_in_carriage_return() -> None:
    assert clean_output(["table row\r", "b"]) == "table row\nb\n"
