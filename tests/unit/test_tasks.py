"""Task YAML handling and cost estimation (no server)."""

from __future__ import annotations

import pytest
import yaml

from skypilot_client import AcceleratorOffer
from skypilot_client._tasks import (
    cheapest,
    load_task,
    offers_from_list_accelerators,
    prepare_launch_task,
    resource_spec,
)
from skypilot_client.errors import InvalidInputError, MalformedResponseError

# Row shape of /list_accelerators: [cloud, type, name, count, cpus, dev_mem, mem, price,
# spot_price, region] (PROTOCOL.md section 6).
ROWS = {
    "H100": [
        ["Hyperbolic", "1x-H100", "H100", 1.0, 28, 80.0, 271, 1.99, 1.29, "us-central-1"],
        ["Hyperbolic", "8x-H100", "H100", 8.0, 224, 80.0, 2170, 15.92, None, "us-central-1"],
        ["OtherCloud", "h100.1", "H100", 1.0, 16, 80.0, 128, 2.49, 0.99, "eu-west-1"],
    ],
    "A100": [["Hyperbolic", "1x-A100", "A100", 1.0, 24, 40.0, 192, 1.29, None, "us-central-1"]],
}
OFFERS = offers_from_list_accelerators(ROWS)


def test_offers_parse_rows() -> None:
    assert len(OFFERS) == 4
    assert OFFERS[0] == AcceleratorOffer(
        accelerator="H100",
        cloud="Hyperbolic",
        instance_type="1x-H100",
        accelerator_count=1.0,
        cpu_count=28,
        device_memory_gib=80.0,
        memory_gib=271,
        price=1.99,
        spot_price=1.29,
        region="us-central-1",
    )
    assert offers_from_list_accelerators({}) == []


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"X": [["short row"]]}, "return_value['X'][0]"),
        ({"Y": "junk"}, "return_value['Y']"),
        ({"H100": [[None, "t", "H100", 1, 2, 3, 4, 1.0, None, "r"]]}, "[0].cloud"),
        (["H100"], "return_value"),
    ],
)
def test_offers_rows_we_cannot_read_are_malformed(value: object, field: str) -> None:
    with pytest.raises(MalformedResponseError) as info:
        offers_from_list_accelerators(value)
    assert field in (info.value.field or "")


@pytest.mark.parametrize(
    ("task", "spot", "expected"),
    [
        ("resources:\n  accelerators: H100:1\n", None, ("1x-H100", 1.99)),
        ("resources:\n  accelerators: H100:1\n  use_spot: true\n", None, ("h100.1", 0.99)),
        ("resources:\n  accelerators: {H100: 8}\n", None, ("8x-H100", 15.92)),
        ("resources:\n  infra: hyperbolic\n  accelerators: H100\n", True, ("1x-H100", 1.29)),
        ("resources:\n  accelerators: h100:1\n  region: eu-west-1\n", None, ("h100.1", 2.49)),
        ("num_nodes: 3\nresources:\n  accelerators: A100:1\n", None, ("1x-A100", 3.87)),
        ("resources:\n  instance_type: 8x-H100\n", None, ("8x-H100", 15.92)),
        ("resources:\n  accelerators: [A100:1, H100:1]\n", None, ("1x-A100", 1.29)),
    ],
)
def test_cheapest_matching_offer(task: str, spot: bool | None, expected: tuple[str, float]) -> None:
    estimate = cheapest(resource_spec(task, spot=spot), OFFERS, hours=10)
    assert (estimate.instance_type, estimate.cost_per_hour) == expected
    assert estimate.estimated_cost == pytest.approx(expected[1] * 10)
    assert estimate.currency == "USD"


@pytest.mark.parametrize(
    "task",
    [
        "resources:\n  accelerators: H100:2\n",  # no 2x offer
        "resources:\n  accelerators: A100:1\n  use_spot: true\n",  # no spot price
        "resources:\n  infra: nowhere\n  accelerators: H100:1\n",
    ],
)
def test_no_matching_offer_is_a_clear_error(task: str) -> None:
    with pytest.raises(InvalidInputError, match=r"no .* price"):
        cheapest(resource_spec(task, spot=None), OFFERS, hours=1)


def test_launch_task_gets_envs_and_autostop() -> None:
    text = prepare_launch_task(
        "envs:\n  A: '1'\nresources:\n  accelerators: H100:1\nrun: echo $A\n",
        envs={"B": "2"},
        idle_minutes_to_stop=15,
        down=True,
    )
    data = yaml.safe_load(text)
    assert data["envs"] == {"A": "1", "B": "2"}
    assert data["resources"]["autostop"] == {"idle_minutes": 15, "down": True}
    assert data["resources"]["accelerators"] == "H100:1"


def test_chain_dag_header_is_accepted() -> None:
    assert load_task("name: null\n---\nrun: echo hi\n") == {"run": "echo hi"}


def test_mapping_task_is_not_mutated() -> None:
    original = {"run": "x", "resources": {"cpus": 2}}
    prepare_launch_task(original, envs={"A": "b"}, idle_minutes_to_stop=5, down=False)
    assert original == {"run": "x", "resources": {"cpus": 2}}
