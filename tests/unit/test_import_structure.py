"""Importing a few names loads only what they need, and the models validate exactly as before.

``from skypilot_client import SkyPilotClient, LaunchRequest`` (the statement of
``benchmarks/import_time.py``) defines the request models without the result models; every
model builds its pydantic schema on first use. These tests hold the import structure in place
and prove that the first use right after that import validates, and fails, as the fully
imported package does (the expected errors were recorded before the models were split).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest

import skypilot_client
from skypilot_client import models

REPO_ROOT = Path(__file__).resolve().parents[2]
STATEMENT = "from skypilot_client import SkyPilotClient, LaunchRequest"


def run_fresh(code: str) -> Any:
    """Run ``code`` in a new interpreter (this checkout's package) and decode its JSON output."""
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout)


def loaded_after(statement: str) -> set[str]:
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    return set(run_fresh(code))


def test_the_package_alone_loads_neither_httpx_nor_pydantic() -> None:
    loaded = loaded_after("import skypilot_client")
    assert not {"httpx", "pydantic", "skypilot_client._client"} & loaded


def test_the_clients_load_no_model() -> None:
    loaded = loaded_after("from skypilot_client import SkyPilotClient, AsyncSkyPilotClient")
    assert "pydantic.main" not in loaded  # pydantic's BaseModel machinery loads with a model
    assert not {m for m in loaded if m.startswith("skypilot_client") and "models" in m}


def test_launch_request_loads_the_request_models_only() -> None:
    loaded = loaded_after(STATEMENT)
    assert "skypilot_client._request_models" in loaded
    # result models, managed jobs, the async client and uploads load when first used
    for module in (
        "skypilot_client.models",
        "skypilot_client.models_managed_jobs",
        "skypilot_client._async_client",
        "skypilot_client.resources.uploads",
        "skypilot_client.resources.managed_jobs",
        "tenacity",
        "yaml",
    ):
        assert module not in loaded, module


def test_each_model_is_one_class_under_both_names() -> None:
    for name in models.__all__:
        assert getattr(skypilot_client, name) is getattr(models, name), name


# What each bad (or good) LaunchRequest gives; recorded from the package before the split.
_NAME_RULE = (
    "SkyPilot names start with a letter, end with a letter or digit, and contain only "
    "letters, digits, '-', '_' and '.'"
)
EXPECTED: list[list[Any]] = [
    [
        "bad name",
        "LaunchRequest",
        [
            [
                "value_error",
                ["cluster_name"],
                f"Value error, invalid cluster name 'bad name': {_NAME_RULE}",
            ]
        ],
    ],
    [
        "negative idle",
        "LaunchRequest",
        [
            [
                "greater_than_equal",
                ["idle_minutes_to_stop"],
                "Input should be greater than or equal to 0",
            ]
        ],
    ],
    [
        "unknown field",
        "LaunchRequest",
        [["extra_forbidden", ["gpus"], "Extra inputs are not permitted"]],
    ],
    [
        "task type",
        "LaunchRequest",
        [
            ["string_type", ["task", "str"], "Input should be a valid string"],
            ["dict_type", ["task", "dict[str,any]"], "Input should be a valid dictionary"],
        ],
    ],
    [
        "envs type",
        "LaunchRequest",
        [["string_type", ["envs", "A"], "Input should be a valid string"]],
    ],
    [
        "credentials type",
        "LaunchRequest",
        [
            [
                "model_type",
                ["credentials", "aws"],
                "Input should be a valid dictionary or instance of AWSCredentials",
            ]
        ],
    ],
    [
        "callback type",
        "LaunchRequest",
        [["callable_type", ["on_upload_progress"], "Input should be callable"]],
    ],
    ["frozen", "LaunchRequest", [["frozen_instance", ["down"], "Instance is frozen"]]],
    [
        "valid",
        "ok",
        "LaunchRequest(cluster_name='ok', task={'run': 'x'}, retry_until_up=False, "
        "detach=True, idle_minutes_to_stop=5, down=False, dryrun=False, envs={'A': '1'}, "
        "credentials=None, on_upload_progress=None)",
    ],
    [
        "secret kept out of repr",
        "ok",
        "CloudCredentials(aws=AWSCredentials(access_key_id=SecretStr('**********'), "
        "secret_access_key=SecretStr('**********'), session_token=None, region=None), "
        "gcp=None, azure=None, extra_env={})",
    ],
]

# The probes, as source: run here and in a fresh interpreter right after STATEMENT.
PROBES = """
def probes(LaunchRequest):
    import pydantic
    from skypilot_client import AWSCredentials, CloudCredentials

    def frozen():
        LaunchRequest(cluster_name="ok", task="run: x").down = True

    def aws():
        key = AWSCredentials(access_key_id="AKIAEXAMPLE", secret_access_key="s3cr3t")
        return CloudCredentials(aws=key)

    cases = [
        ("bad name", lambda: LaunchRequest(cluster_name="bad name", task="run: x")),
        (
            "negative idle",
            lambda: LaunchRequest(cluster_name="ok", task="run: x", idle_minutes_to_stop=-1),
        ),
        ("unknown field", lambda: LaunchRequest(cluster_name="ok", task="run: x", gpus=8)),
        ("task type", lambda: LaunchRequest(cluster_name="ok", task=5)),
        ("envs type", lambda: LaunchRequest(cluster_name="ok", task="run: x", envs={"A": 1})),
        (
            "credentials type",
            lambda: LaunchRequest(cluster_name="ok", task="run: x", credentials={"aws": 1}),
        ),
        (
            "callback type",
            lambda: LaunchRequest(cluster_name="ok", task="run: x", on_upload_progress=3),
        ),
        ("frozen", frozen),
        (
            "valid",
            lambda: LaunchRequest(
                cluster_name="ok", task={"run": "x"}, envs={"A": "1"}, idle_minutes_to_stop=5
            ),
        ),
        ("secret kept out of repr", aws),
    ]
    out = []
    for label, build in cases:
        try:
            value = build()
        except pydantic.ValidationError as exc:
            errors = [[e["type"], list(e["loc"]), e["msg"]] for e in exc.errors()]
            out.append([label, exc.title, errors])
        except Exception as exc:
            out.append([label, type(exc).__name__, str(exc)])
        else:
            out.append([label, "ok", repr(value)])
    return out
"""


def _probes() -> Callable[[type[pydantic.BaseModel]], list[list[Any]]]:
    namespace: dict[str, Any] = {}
    exec(PROBES, namespace)  # noqa: S102 (our own source, shared with the fresh interpreter)
    probes: Callable[[type[pydantic.BaseModel]], list[list[Any]]] = namespace["probes"]
    return probes


def test_first_use_right_after_the_import_validates_as_before() -> None:
    code = f"{STATEMENT}\n{PROBES}\nimport json\nprint(json.dumps(probes(LaunchRequest)))"
    assert run_fresh(code) == EXPECTED


def test_fully_imported_package_validates_the_same() -> None:
    assert _probes()(models.LaunchRequest) == EXPECTED


def test_a_bad_launch_request_is_a_validation_error_and_a_value_error() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        skypilot_client.LaunchRequest(cluster_name="bad name", task="run: x")
    assert isinstance(caught.value, ValueError)


def test_other_request_models_still_validate() -> None:
    with pytest.raises(pydantic.ValidationError, match="give exactly one of command= or task="):
        models.ExecuteRequest(cluster_name="ok", command="ls", task="run: x")
    with pytest.raises(pydantic.ValidationError, match="greater than or equal to 1"):
        models.LogsRequest(cluster_name="ok", job_id=0)
    with pytest.raises(pydantic.ValidationError, match="greater than 0"):
        models.EstimateCostRequest(task="run: x", hours=0)
    event = models.ProgressEvent.model_validate(
        {"phase": "uploading", "percent": 50, "request_id": ""}
    )
    assert event.phase is models.LaunchPhase.UPLOADING
