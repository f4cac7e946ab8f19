"""Demo: drive a real local SkyPilot API server with skypilot_client.

Starts SkyPilot 0.14.1 offline on loopback (own venv, isolated HOME, a small hand-written
catalog, the Hyperbolic cloud enabled by a key file), then walks through what a platform
team does with the client, and stops the server at the end.

    bash scripts/demo.sh              # or: python -m scripts.demo [--url URL]

With ``--url`` it talks to a server you already run instead of starting one.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from scripts.local_server import LocalSkyPilotServer
from skypilot_client import (
    EstimateCostRequest,
    LaunchRequest,
    ProgressEvent,
    SkyPilotClient,
    errors,
)

GPU_TASKS = {
    "1x H100": "resources:\n  accelerators: H100:1\n",
    "8x H100": "resources:\n  accelerators: H100:8\n",
    "1x A100": "resources:\n  accelerators: A100:1\n",
    "1x H100 spot": "resources:\n  accelerators: H100:1\n  use_spot: true\n",
    "2 nodes x 1x A100": "num_nodes: 2\nresources:\n  accelerators: A100:1\n",
}
TRAIN_TASK = """\
name: train
resources:
  infra: hyperbolic
  accelerators: H100:1
run: python train.py
"""


def heading(text: str) -> None:
    """Print a section heading."""
    print(f"\n== {text}")


def progress_bar(event: ProgressEvent) -> None:
    """Draw one progress event as a bar."""
    filled = event.percent // 5
    bar = "#" * filled + "-" * (20 - filled)
    print(f"   [{bar}] {event.percent:3d}% {event.phase.value:<14} {event.message[:60]}")


@contextlib.contextmanager
def server_url(url: str | None) -> Iterator[str]:
    """The given URL, or a freshly started local server's."""
    if url:
        yield url
        return
    print("Starting a local SkyPilot 0.14.1 API server (offline, isolated HOME)...")
    with LocalSkyPilotServer() as server:
        print(f"Server up at {server.base_url}")
        yield server.base_url
    print("\nServer stopped.")


def run(client: SkyPilotClient) -> None:
    """The walkthrough."""
    heading("Health and versions")
    health = client.health()
    print(f"   status={health.status} version={health.version} api_version={health.api_version}")

    heading("Enabled clouds")
    print("  ", ", ".join(client.enabled_clouds()) or "(none)")

    heading("Cost estimates for GPU tasks (8 hours)")
    print(f"   {'task':<20} {'cloud':<11} {'instance type':<18} {'$/hour':>8} {'8h total':>9}")
    for label, task in GPU_TASKS.items():
        try:
            est = client.estimate_cost(EstimateCostRequest(task=task, hours=8))
        except errors.InvalidInputError as exc:
            print(f"   {label:<20} no price: {exc}")
            continue
        print(
            f"   {label:<20} {est.cloud:<11} {est.instance_type:<18} "
            f"{est.cost_per_hour:>8.2f} {est.estimated_cost:>9.2f} {est.currency}"
        )

    heading("Dry-run launch (plans the launch, provisions nothing)")
    handle = client.launch(LaunchRequest(cluster_name="demo-dry", task=TRAIN_TASK, dryrun=True))
    result = handle.result(on_progress=progress_bar)
    print(f"   dry run ok: request {result.request_id}")

    heading("A real launch (fails offline: there is no cloud to reach)")
    handle = client.launch(LaunchRequest(cluster_name="demo-train", task=TRAIN_TASK))
    try:
        handle.result(on_progress=progress_bar)
    except errors.RequestFailedError as exc:
        print(f"   {type(exc).__name__} (server type {exc.error_type}):")
        print(f"   {exc.message[:200]}")

    heading("Cluster status")
    for cluster in client.list_clusters().clusters:
        print(f"   {cluster.name:<14} {cluster.status.value:<8} {cluster.resources_str or ''}")
    print("   cleaning up the INIT record the failed launch left behind (purge)")
    client.terminate("demo-train", purge=True)
    print(f"   clusters now: {client.list_clusters().total}")

    heading("Terminate a cluster that does not exist")
    try:
        client.terminate("no-such-cluster")
    except errors.ClusterNotFoundError as exc:
        print(f"   ClusterNotFoundError: {exc.message} (is_not_found={exc.is_not_found})")


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="use this running server instead of starting one")
    args = parser.parse_args()
    with server_url(args.url) as url, SkyPilotClient(url) as client:
        run(client)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
