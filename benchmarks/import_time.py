"""Import cost of ``skypilot_client`` against the official SkyPilot SDK, in fresh processes.

Each statement runs ``--runs`` times, each time in a new interpreter, interleaved so that a
busy machine slows every statement alike. Two numbers per run:

* ``import``: wall time of the statement itself, measured inside the child process with
  ``time.perf_counter()`` (what your program pays when it imports the client);
* ``process``: wall time of the whole ``python -c ...`` child (interpreter start included),
  measured by this script.

The official SDK (``from sky.client import sdk``) runs with the python of the SkyPilot 0.14.1
venv of ``scripts/local_server.py`` (``--sky-python`` overrides it). Bytecode caches are
warmed by one uncounted run of every statement first (``PYTHONDONTWRITEBYTECODE`` is not passed
on, so the checkout's are written like pip writes the installed packages').

Target: ``from sky.client import sdk`` takes 10x (or more) the time of
``from skypilot_client import SkyPilotClient, AsyncSkyPilotClient`` and of
``from skypilot_client import SkyPilotClient, LaunchRequest``. A ``floor`` row times what the
second cannot avoid while ``LaunchRequest`` is a pydantic model: httpx, pydantic's
``BaseModel`` machinery and ``SecretStr``; its ratio is the best that statement can reach.

    python -m benchmarks.import_time [--runs 9] [--sky-python PATH] [--check]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from scripts.local_server import default_venv_dir

REPO_ROOT = Path(__file__).resolve().parent.parent


TARGET_RATIO = 10.0

_FLOOR = "import httpx; from pydantic import BaseModel, SecretStr"

# The child times only the statement; the parent times the whole process.
_CHILD = """\
import time as _t
_s = _t.perf_counter()
{statement}
print(_t.perf_counter() - _s)
"""


@dataclass
class Case:
    """One statement run by one interpreter."""

    label: str
    python: str
    statement: str
    imports: list[float] = field(default_factory=list)
    processes: list[float] = field(default_factory=list)

    def run_once(self, env: dict[str, str]) -> tuple[float, float]:
        started = time.perf_counter()
        completed = subprocess.run(
            [self.python, "-c", _CHILD.format(statement=self.statement)],
            cwd=REPO_ROOT,  # the checkout's skypilot_client, even when not installed
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        process = time.perf_counter() - started
        if completed.returncode != 0:
            raise SystemExit(
                f"{self.label}: `{self.statement}` failed with {self.python}:\n{completed.stderr}"
            )
        return float(completed.stdout.strip().splitlines()[-1]), process

    @property
    def import_median(self) -> float:
        return statistics.median(self.imports)

    @property
    def process_median(self) -> float:
        return statistics.median(self.processes)


def child_env() -> dict[str, str]:
    """The caller's environment without what would change what gets imported, or how.

    ``PYTHONDONTWRITEBYTECODE`` goes too: with it, the warm-up run writes no bytecode cache for
    this checkout, so every counted run would compile ``skypilot_client`` from source while
    the installed packages (httpx, pydantic, the official SDK) load pip's compiled caches.
    """
    env = dict(os.environ)
    for name in (
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONPROFILEIMPORTTIME",
        "PYTHONDONTWRITEBYTECODE",
    ):
        env.pop(name, None)
    env["SKYPILOT_DISABLE_USAGE_COLLECTION"] = "1"
    return env


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="fresh processes per statement")
    parser.add_argument(
        "--python", default=sys.executable, help="python with skypilot_client (default: this)"
    )
    parser.add_argument(
        "--sky-python",
        type=Path,
        default=None,
        help="python with skypilot 0.14.1 (default: the venv of scripts/local_server.py)",
    )
    parser.add_argument(
        "--check", action="store_true", help=f"exit 1 when the ratio is below {TARGET_RATIO:g}x"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be 1 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sky_python = args.sky_python or default_venv_dir() / "bin" / "python"
    if not Path(sky_python).exists():
        print(
            f"error: {sky_python} does not exist; run `python -m scripts.local_server install` "
            "or pass --sky-python",
            file=sys.stderr,
        )
        return 2
    ours = str(args.python)
    cases = [
        Case("baseline: httpx + pydantic", ours, "import httpx, pydantic"),
        Case("skypilot_client (package)", ours, "import skypilot_client"),
        Case(
            "skypilot_client (both clients)",
            ours,
            "from skypilot_client import SkyPilotClient, AsyncSkyPilotClient",
        ),
        Case(
            "skypilot_client (client + model)",
            ours,
            "from skypilot_client import SkyPilotClient, LaunchRequest",
        ),
        # What no LaunchRequest built on pydantic can avoid: httpx for the client, pydantic's
        # BaseModel machinery, and SecretStr (pydantic.types) for its credentials.
        Case("floor: httpx + BaseModel, SecretStr", ours, _FLOOR),
        Case("official SDK", str(sky_python), "from sky.client import sdk"),
    ]
    env = child_env()
    for case in cases:  # warm the bytecode caches; not counted
        case.run_once(env)
    for _ in range(args.runs):
        for case in cases:
            imported, process = case.run_once(env)
            case.imports.append(imported)
            case.processes.append(process)

    print(f"Import time, median of {args.runs} fresh processes (interleaved)\n")
    width = max(len(case.label) for case in cases)
    print(f"{'':<{width}}  {'import':>8}  {'process':>8}  statement")
    for case in cases:
        print(
            f"{case.label:<{width}}  {case.import_median * 1000:>6.0f}ms  "
            f"{case.process_median * 1000:>6.0f}ms  {case.statement}"
        )
    print(f"\nour python: {ours}\nsky python: {sky_python}\n")

    baseline, package, clients, launch, floor, sdk = cases
    ratio_clients = sdk.import_median / clients.import_median
    ratio_launch = sdk.import_median / launch.import_median
    ratio_floor = sdk.import_median / floor.import_median
    ratio_package = sdk.import_median / package.import_median
    ratio_process = sdk.process_median / clients.process_median
    print(f"official SDK / skypilot_client (both clients), import:  {ratio_clients:6.2f}x")
    print(f"official SDK / skypilot_client (client + model), import: {ratio_launch:5.2f}x")
    print(f"official SDK / floor for client + model, import:         {ratio_floor:5.2f}x")
    print(f"official SDK / skypilot_client (package), import:       {ratio_package:6.2f}x")
    print(f"official SDK / skypilot_client (both clients), process: {ratio_process:6.2f}x")
    print(
        "skypilot_client (both clients) - httpx + pydantic:       "
        f"{(clients.import_median - baseline.import_median) * 1000:5.0f} ms of our own"
    )
    print(
        "skypilot_client (client + model) - floor:                "
        f"{(launch.import_median - floor.import_median) * 1000:5.0f} ms of our own"
    )
    met = min(ratio_clients, ratio_launch) >= TARGET_RATIO
    verdict = "MET" if met else "MISSED"
    print(
        f"\ntarget: >= {TARGET_RATIO:g}x for both clients and for client + LaunchRequest "
        f"-> {verdict}"
    )
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
