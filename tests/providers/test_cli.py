"""The ``gpu-providers`` command line, end to end: ``python -m gpu_providers`` runs as a
subprocess against loopback fakes (the documented responders served over HTTP on
127.0.0.1, ``tests/providers/loopback.py``). Checked: exit codes, the parsed ``--json``
output, and that no key appears in any output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gpu_providers import cli
from tests.providers.lambda_cloud import documented as LD
from tests.providers.loopback import LoopbackServer
from tests.providers.paperspace import documented as PD
from tests.providers.runpod import documented as RD
from tests.providers.tensordock import documented as TD
from tests.providers.vastai import documented as VD

ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "LAMBDA_API_KEY": "SENTINEL-cli-lambda-key-1f2e",
    "PAPERSPACE_API_KEY": "SENTINEL-cli-paperspace-key-3d4c",
    "RUNPOD_API_KEY": "SENTINEL-cli-runpod-key-5b6a",
    "TENSORDOCK_API_TOKEN": "SENTINEL-cli-tensordock-token-7c8d",
    "VAST_API_KEY": "SENTINEL-cli-vastai-key-9e0f",
}


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Fleet:
    """Loopback fakes of every provider and a runner of the command line."""

    home: Path
    lam: LD.DocumentedLambda
    pap: PD.DocumentedPaperspace
    run: RD.DocumentedRunPod
    tdk: TD.DocumentedTensorDock
    vast: VD.DocumentedVast
    servers: dict[str, LoopbackServer]
    env: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)

    def endpoints(self) -> list[str]:
        return [
            f"--endpoint=lambda={self.servers['lambda'].url}",
            f"--endpoint=paperspace={self.servers['paperspace'].url}/v1",
            f"--endpoint=runpod={self.servers['runpod'].url}/graphql",
            f"--endpoint=tensordock={self.servers['tensordock'].url}{TD.API_PREFIX}",
            f"--endpoint=vastai={self.servers['vastai'].url}",
        ]

    def requests(self) -> list[Any]:
        """Every request any of the fakes received."""
        fakes = (self.lam, self.pap, self.run, self.tdk, self.vast)
        return [request for fake in fakes for request in fake.requests]

    def __call__(self, *args: str, stdin: str | None = None, endpoints: bool = True) -> Result:
        argv = [*args, *self.endpoints()] if endpoints else list(args)
        env = {k: v for k, v in os.environ.items() if k not in KEYS}
        env.update({"HOME": str(self.home), **self.env})
        done = subprocess.run(
            [sys.executable, "-m", "gpu_providers", *argv],
            cwd=ROOT,
            env=env,
            input=stdin if stdin is not None else "",  # never a terminal
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.outputs += [done.stdout, done.stderr]
        return Result(done.returncode, done.stdout, done.stderr)

    def assert_no_secret(self) -> None:
        for text in self.outputs:
            for key in (*KEYS.values(), LD.REVOKED_KEY, TD.REVOKED_KEY, VD.REVOKED_KEY):
                assert key not in text


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    lam = LD.DocumentedLambda()
    lam.ssh_keys.append({"id": "1" * 32, "name": "laptop", "public_key": "ssh-ed25519 A"})
    pap, run, tdk = PD.DocumentedPaperspace(), RD.DocumentedRunPod(), TD.DocumentedTensorDock()
    vast = VD.DocumentedVast()
    servers = {
        "lambda": LoopbackServer(lam),
        "paperspace": LoopbackServer(pap),
        "runpod": LoopbackServer(run),
        "tensordock": LoopbackServer(tdk),
        "vastai": LoopbackServer(vast),
    }
    for server in servers.values():
        server.__enter__()
    runner = Fleet(tmp_path, lam, pap, run, tdk, vast, servers, env=dict(KEYS))
    try:
        yield runner
        runner.assert_no_secret()
    finally:
        for server in servers.values():
            server.__exit__(None, None, None)


def test_help_starts_fast_and_imports_no_provider_code() -> None:
    best = min(_timed([sys.executable, "-m", "gpu_providers", "--help"]) for _ in range(3))
    assert best < 0.5, f"--help took {best:.2f}s"
    probe = "import sys, gpu_providers.cli; print(sorted(m for m in sys.modules if m in " + (
        "('pydantic', 'httpx', 'gpu_providers.types', 'gpu_providers._core')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def _timed(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "offers" in done.stdout and "exit codes" in done.stdout
    return time.perf_counter() - started


def test_the_console_script_is_declared() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'gpu-providers = "gpu_providers.cli:run"' in text
    assert callable(cli.run)


def test_offers_json_lists_every_provider_cheapest_first(fleet: Fleet) -> None:
    result = fleet("offers", "--gpu", "H100", "--json")
    assert result.code == cli.EXIT_OK, result.err
    found = result.json()
    assert found["answered"] == ["lambda", "paperspace", "runpod", "tensordock", "vastai"]
    assert found["failures"] == [] and found["skipped"] == []
    prices = [o["price_per_gpu_hour"] for o in found["offers"] if o["price_per_gpu_hour"]]
    assert prices == sorted(prices) and len(prices) >= 5
    assert {o["offer"]["provider"] for o in found["offers"]} == set(found["answered"])
    assert {o["offer"]["gpu_type"] for o in found["offers"]} == {"H100"}


def test_offers_with_count_and_max_price(fleet: Fleet) -> None:
    result = fleet("offers", "--gpu", "H100", "--count", "8", "--max-price", "3", "--json")
    assert result.code == cli.EXIT_OK, result.err
    offers = result.json()["offers"]
    assert offers
    assert all(o["offer"]["gpu_count"] == 8 and o["price_per_gpu_hour"] <= 3 for o in offers)
    assert all(not o["offer"]["spot"] for o in offers)
    spot = fleet("offers", "--gpu", "H100", "--spot", "--provider", "runpod", "--json")
    assert spot.code == cli.EXIT_OK
    assert spot.json()["offers"] and all(o["offer"]["spot"] for o in spot.json()["offers"])


def test_runpod_rest_is_chosen_with_runpod_api(fleet: Fleet) -> None:
    from tests.providers.runpod import documented_rest as RR

    rest = RR.DocumentedRunPodRest()
    with LoopbackServer(rest) as server:
        result = fleet(
            "offers",
            "--gpu",
            "H100",
            "--provider",
            "runpod",
            "--runpod-api",
            "rest",
            "--json",
            f"--endpoint=runpod={server.url}",
            endpoints=False,
        )
    assert result.code == cli.EXIT_OK, result.err
    assert result.json()["answered"] == ["runpod"] and result.json()["offers"]
    assert rest.requests and all(r.url.path.startswith("/v2/") for r in rest.requests)
    assert fleet.run.requests == []  # the GraphQL fake was never asked
    usage = fleet("offers", "--runpod-api", "soap", endpoints=False)
    assert usage.code == cli.EXIT_USAGE and "soap" in usage.err


def test_offers_table_and_a_partial_failure(fleet: Fleet) -> None:
    fleet.env["LAMBDA_API_KEY"] = LD.REVOKED_KEY
    result = fleet("offers", "--gpu", "H100")
    assert result.code == cli.EXIT_PARTIAL
    header = result.out.splitlines()[0].split()
    assert header[:4] == ["PROVIDER", "GPU", "N", "$/GPU-H"]
    assert "lambda: failed (AuthenticationError)" in result.err
    as_json = fleet("offers", "--gpu", "H100", "--json")
    assert as_json.code == cli.EXIT_PARTIAL
    assert [f["provider"] for f in as_json.json()["failures"]] == ["lambda"]


def test_without_keys_only_public_catalogs_and_every_failure_is_exit_1(fleet: Fleet) -> None:
    fleet.env = {}
    result = fleet("offers", "--json")
    # RunPod's and Vast.ai's catalogs are public; Vast.ai's responder answers without a key,
    # RunPod's documented one wants a key: it fails beside Vast.ai's answer.
    assert result.code == cli.EXIT_PARTIAL
    found = result.json()
    assert [s["provider"] for s in found["skipped"]] == ["lambda", "paperspace", "tensordock"]
    assert [f["provider"] for f in found["failures"]] == ["runpod"]
    assert found["answered"] == ["vastai"] and found["offers"]
    assert fleet.lam.requests == [] and fleet.pap.requests == [] and fleet.tdk.requests == []
    assert fleet.run.requests and "authorization" not in fleet.run.requests[-1].headers
    assert fleet.vast.requests and all(
        "authorization" not in r.headers for r in fleet.vast.requests
    )
    # Nobody answering is exit 1.
    alone = fleet("offers", "--provider", "runpod", "--json")
    assert alone.code == cli.EXIT_FAILED
    assert [f["provider"] for f in alone.json()["failures"]] == ["runpod"]


@pytest.mark.parametrize(
    "args",
    [
        ("offers", "--count", "0"),
        ("offers", "--gpu", "H1000"),
        ("offers", "--provider", "coreweave"),
        ("instances", "--label", "Team=ml"),
        ("launch", "--provider", "runpod"),
        ("launch", "--provider", "runpod", "--gpu", "H100", "--label", "bad label"),
        ("orphans", "--known-file", "/nonexistent/ids.txt"),
        ("orphans", "--terminate"),  # not a terminal, and no --yes
        ("wait", "--provider", "runpod"),
        (),
    ],
)
def test_usage_errors_exit_2_before_anything_is_sent(fleet: Fleet, args: tuple[str, ...]) -> None:
    result = fleet(*args)
    assert result.code == cli.EXIT_USAGE, (result.out, result.err)
    assert "error" in result.err
    assert fleet.requests() == []


def test_instances_by_label(fleet: Fleet) -> None:
    result = fleet("instances", "--label", "team=ml", "--json")
    assert result.code == cli.EXIT_OK, result.err
    found = result.json()
    assert [(i["provider"], i["instance_id"]) for i in found["instances"]] == [
        ("lambda", LD.ID_ACTIVE)
    ]
    table = fleet("instances", "--provider", "runpod")
    assert table.code == cli.EXIT_OK
    assert RD.ID_READY in table.out and "STATE" in table.out.splitlines()[0]


def test_launch_find_as_orphan_and_terminate(fleet: Fleet, tmp_path: Path) -> None:
    launched = fleet(
        "launch", "--provider", "runpod", "--gpu", "H100", "--name", "job", "--label", "run=7",
        "--json",
    )  # fmt: skip
    assert launched.code == cli.EXIT_OK, launched.err
    pod = launched.json()
    assert pod["name"] == "job"
    assert pod["labels"] == {"managed-by": "gpu-providers", "run": "7"}

    orphans = fleet("orphans", "--json")
    assert orphans.code == cli.EXIT_OK, orphans.err
    assert [o["instance"]["instance_id"] for o in orphans.json()["orphans"]] == [pod["instance_id"]]

    known = tmp_path / "ids.txt"
    known.write_text(f"# what my jobs know\nrunpod:{pod['instance_id']}\n", encoding="utf-8")
    none = fleet("orphans", "--known-file", str(known))
    assert none.code == cli.EXIT_OK and "no orphans" in none.out

    gone = fleet("orphans", "--terminate", "--yes", "--json")
    assert gone.code == cli.EXIT_OK, gone.err
    outcomes = gone.json()["terminated"]["outcomes"]
    assert [(o["instance_id"], o["action"], o["gone"]) for o in outcomes] == [
        (pod["instance_id"], "terminated", True)
    ]
    assert pod["instance_id"] not in fleet.run.pods


def test_orphans_left_running_exit_6(fleet: Fleet) -> None:
    # Lambda's instance tagged team=ml is still "terminating" after the call: not proven gone.
    result = fleet("orphans", "--label", "team=ml", "--provider", "lambda", "--terminate", "--yes")
    assert result.code == cli.EXIT_NOT_GONE, result.err
    assert "terminating" in result.out and LD.ID_ACTIVE in result.out


def test_a_launch_that_may_have_happened_exits_4(fleet: Fleet) -> None:
    fleet.run._inject["PodFindAndDeployOnDemand"] = [RD.bad_gateway()]
    result = fleet("launch", "--provider", "runpod", "--gpu", "H100", "--json")
    assert result.code == cli.EXIT_MAYBE_LAUNCHED
    assert "may have created an instance" in result.err


def test_terminate_and_wait(fleet: Fleet) -> None:
    ready = fleet("wait", "--provider", "runpod", RD.ID_READY, "--json")
    assert ready.code == cli.EXIT_OK, ready.err
    assert ready.json()["ready"] is True and ready.json()["public_ip"] == RD.POD_PUBLIC_IP
    booting = fleet("wait", "--provider", "runpod", RD.ID_BOOTING, "--for", "0.2")
    assert booting.code == cli.EXIT_NOT_READY
    stopped = fleet("wait", "--provider", "runpod", RD.ID_EXITED)
    assert stopped.code == cli.EXIT_NOT_READY and "InstanceNotReadyError" in stopped.err

    done = fleet("terminate", "--provider", "runpod", RD.ID_EXITED, "--json")
    assert done.code == cli.EXIT_OK, done.err
    assert done.json()["results"] == [{"instance_id": RD.ID_EXITED, "ok": True, "error": None}]
    assert RD.ID_EXITED not in fleet.run.pods


def test_a_missing_key_for_one_provider_commands_exits_1(fleet: Fleet) -> None:
    fleet.env.pop("RUNPOD_API_KEY")
    result = fleet("terminate", "--provider", "runpod", "abc")
    assert result.code == cli.EXIT_FAILED
    assert "MissingCredentialsError" in result.err and "RUNPOD_API_KEY" in result.err


def _documented_commands(path: Path, heading: str) -> list[list[str]]:
    """The ``gpu-providers`` lines of the bash block under ``heading`` (comments dropped)."""
    text = path.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    block = section[section.index("```bash") + len("```bash") : section.index("```\n", 8)]
    return [
        line.split("#", 1)[0].split()[1:]
        for line in block.splitlines()
        if line.startswith("gpu-providers ")
    ]


def test_the_readme_commands_run(fleet: Fleet, tmp_path: Path) -> None:
    commands = _documented_commands(ROOT / "README.md", "## GPU providers from the command line")
    assert len(commands) == 4
    known = tmp_path / "ids.txt"
    known.write_text(f"{LD.ID_ACTIVE}\n", encoding="utf-8")
    for argv in commands:
        result = fleet(*[str(known) if a == "ids.txt" else a for a in argv])
        assert result.code == cli.EXIT_OK, (argv, result.err)
        if "--json" in argv:
            assert result.json()["offers"]


def test_the_guide_commands_parse(fleet: Fleet) -> None:
    commands = _documented_commands(ROOT / "docs" / "providers.md", "## The command line")
    assert len(commands) == 8
    for argv in commands:
        cli.parser().parse_args([a.replace("<ID>", "abc") for a in argv])


def test_the_progress_line_shows_who_is_still_asked_only_when_enabled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gpu_providers._fanout import Progress

    line = cli._ProgressLine(enabled=True)
    for event in (
        Progress("lambda", "started"),
        Progress("runpod", "started"),
        Progress("lambda", "done"),
        Progress("runpod", "failed", "deadline"),
    ):
        line(event)
    line.close()
    err = capsys.readouterr().err
    assert "asking providers 0/2: lambda, runpod" in err
    assert "asking providers 1/2: runpod" in err
    assert err.endswith("\r\033[K")
    quiet = cli._ProgressLine(enabled=False)
    quiet(Progress("lambda", "started"))
    quiet.close()
    assert capsys.readouterr().err == ""


def test_launch_refusals_locally_exit_2_and_by_the_vendor_exit_1(fleet: Fleet) -> None:
    local = fleet("launch", "--provider", "lambda", "--gpu", "A10")  # no registered SSH key
    assert local.code == cli.EXIT_USAGE and "InvalidRequestError" in local.err
    assert not any(r.method == "POST" for r in fleet.lam.requests)
    fleet.lam.launch_outcome = "insufficient-capacity"
    vendor = fleet("launch", "--provider", "lambda", "--gpu", "A10", "--ssh-key-name", "laptop")
    assert vendor.code == cli.EXIT_FAILED and "CapacityError" in vendor.err
    fleet.lam.launch_outcome = "ok"
    done = fleet(
        "launch", "--provider", "lambda", "--gpu", "A10", "--ssh-key-name", "laptop", "--json"
    )
    assert done.code == cli.EXIT_OK, done.err
    assert done.json()["labels"] == {"managed-by": "gpu-providers"}


def test_tables_align_columns_and_right_align_numbers() -> None:
    text = cli.table(("NAME", "$/H"), [("a", 47.6), ("longer", 0.05), ("c", None)])
    assert text.splitlines() == [
        "NAME       $/H",
        "a        47.60",
        "longer  0.0500",
        "c            -",
    ]


@pytest.mark.parametrize("provider", ["tensordock", "vastai"])
def test_labels_in_the_name_end_to_end(fleet: Fleet, tmp_path: Path, provider: str) -> None:
    from tests.providers.tensordock.scenarios import PUBLIC_KEY

    key: list[str] = []
    if provider == "tensordock":  # TensorDock takes the key itself; Vast.ai the account's
        key_file = tmp_path / "id.pub"
        key_file.write_text(PUBLIC_KEY + "\n", encoding="utf-8")
        key = ["--ssh-public-key-file", str(key_file)]
    launched = fleet(
        "launch", "--provider", provider, "--gpu", "RTX4090", "--name", "job",
        "--label", "run=8", *key, "--json",
    )  # fmt: skip
    assert launched.code == cli.EXIT_OK, launched.err
    vm = launched.json()
    assert (vm["name"], vm["labels"]) == ("job", {"managed-by": "gpu-providers", "run": "8"})
    stored = (fleet.tdk if provider == "tensordock" else fleet.vast).instances[vm["instance_id"]]
    assert stored["name" if provider == "tensordock" else "label"] == (
        "job.gpl.managed-by_gpu-providers.run_8"
    )

    found = fleet("instances", "--provider", provider, "--label", "run=8", "--json")
    assert found.code == cli.EXIT_OK, found.err
    assert [i["instance_id"] for i in found.json()["instances"]] == [vm["instance_id"]]

    orphans = fleet("orphans", "--provider", provider, "--json")
    assert orphans.code == cli.EXIT_OK, orphans.err
    (orphan,) = orphans.json()["orphans"]
    assert orphan["instance"]["instance_id"] == vm["instance_id"]
    assert orphan["instance"]["hourly_price"]
    if provider == "tensordock":  # a rate but no creation time: no age, no cost so far
        assert orphan["age_seconds"] is None and orphan["cost_so_far"] is None
    else:  # Vast.ai's start_date gives the age, and with dph_total a cost so far
        assert orphan["age_seconds"] is not None and orphan["cost_so_far"] is not None
