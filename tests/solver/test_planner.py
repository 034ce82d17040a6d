"""`skyplan.plan`: SkyPilot's placement semantics, as a table of small catalogs and tasks.

Each case is a tiny catalog (rows from `make_offer`), a task in SkyPilot YAML and the offer the
planner must choose. Failures are specified by the reasons `NoFeasiblePlacement` carries.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

import skyplan
from skyplan.catalog import schema
from tests.solver.factories import gpu_offer, make_catalog, make_offer, make_task

# -- shared rows ---------------------------------------------------------------------------------

A100_AWS = gpu_offer(
    "A100", 1, instance_type="p4de.1g", vcpus=12, memory_gib=96, price=3.0, spot_price=0.9
)
A100_GCP = gpu_offer(
    "A100",
    1,
    cloud="gcp",
    region="us-central1",
    zone="us-central1-a",
    instance_type="a2-highgpu-1g",
    vcpus=12,
    memory_gib=85,
    price=3.5,
    spot_price=1.2,
)
T4_AWS = gpu_offer(
    "T4", 1, instance_type="g4dn.xlarge", vcpus=4, memory_gib=16, price=0.526, spot_price=0.2
)
T4_GCP = gpu_offer(
    "T4",
    1,
    cloud="gcp",
    region="us-central1",
    zone="us-central1-a",
    instance_type="n1-highmem-4",
    vcpus=4,
    memory_gib=26,
    price=0.6,
    gpu_attached=True,
)
CPU_AWS = make_offer()  # m6i.2xlarge, 8 vCPUs, 32 GiB, $0.384/h, us-east-1
GPU_WORLD = (A100_AWS, A100_GCP, T4_AWS, T4_GCP, CPU_AWS)


def cpu(cloud: str, region: str, instance_type: str, price: float, **kw: Any) -> dict[str, Any]:
    return make_offer(cloud=cloud, region=region, instance_type=instance_type, price=price, **kw)


# -- the table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    rows: tuple[dict[str, Any], ...]
    task: str
    expect: dict[str, Any] = field(default_factory=dict)


def case(case_id: str, rows: tuple[dict[str, Any], ...], task: str, **expect: Any) -> Any:
    return pytest.param(Case(rows, task, expect), id=case_id)


CHOICES = [
    # where: the cheapest offer anywhere wins
    case(
        "cheapest-wins-across-clouds",
        (
            CPU_AWS,
            cpu("gcp", "us-central1", "n4-standard-8", 0.30),
            cpu("azure", "eastus", "Standard_D8s_v5", 0.35),
        ),
        "resources: {}",
        cloud="gcp",
        instance_type="n4-standard-8",
        hourly_cost=0.30,
    ),
    case(
        "cheapest-wins-across-regions",
        (
            CPU_AWS,
            cpu("aws", "us-west-2", "m6i.2xlarge", 0.35),
            cpu("aws", "eu-west-1", "m6i.2xlarge", 0.42),
        ),
        "resources: {}",
        cloud="aws",
        region="us-west-2",
        hourly_cost=0.35,
    ),
    # what: accelerator sets, lists and ordered blocks
    case(
        "any-of-accelerators-takes-the-cheaper",
        GPU_WORLD,
        "resources:\n  accelerators: {A100: 1, T4: 1}\n",
        instance_type="g4dn.xlarge",
        accelerators={"T4": 1.0},
        hourly_cost=0.526,
    ),
    case(
        "ordered-list-prefers-the-first-even-when-dearer",
        GPU_WORLD,
        "resources:\n  accelerators: [A100:1, T4:1]\n",
        instance_type="p4de.1g",
        accelerators={"A100": 1.0},
        hourly_cost=3.0,
    ),
    case(
        "ordered-list-falls-back-when-the-first-is-absent",
        (T4_AWS, T4_GCP, CPU_AWS),
        "resources:\n  accelerators: [A100:1, T4:1]\n",
        instance_type="g4dn.xlarge",
        accelerators={"T4": 1.0},
    ),
    case(
        "ordered-list-falls-back-when-the-first-does-not-fit-the-pin",
        (A100_GCP, T4_AWS, CPU_AWS),
        "resources:\n  infra: aws\n  accelerators: [A100:1, T4:1]\n",
        instance_type="g4dn.xlarge",
        cloud="aws",
    ),
    case(
        "ordered-blocks-prefer-the-first",
        GPU_WORLD,
        "resources:\n  ordered:\n    - accelerators: A100:1\n    - accelerators: T4:1\n",
        instance_type="p4de.1g",
        accelerators={"A100": 1.0},
    ),
    case(
        "ordered-blocks-fall-back",
        GPU_WORLD,
        "resources:\n  ordered:\n    - {infra: azure, accelerators: A100:1}\n"
        "    - {infra: gcp, accelerators: T4:1}\n",
        cloud="gcp",
        instance_type="n1-highmem-4",
        accelerators={"T4": 1.0},
    ),
    case(
        "any-of-blocks-take-the-cheapest-across-clouds",
        GPU_WORLD,
        "resources:\n  accelerators: A100:1\n  any_of:\n    - infra: gcp\n    - infra: aws\n",
        cloud="aws",
        instance_type="p4de.1g",
        hourly_cost=3.0,
    ),
    # spot
    case(
        "any-of-spot-or-on-demand-takes-spot-when-cheaper",
        GPU_WORLD,
        "resources:\n  accelerators: A100:1\n  any_of:\n    - use_spot: true\n"
        "    - use_spot: false\n",
        instance_type="p4de.1g",
        spot=True,
        hourly_cost=0.9,
    ),
    case(
        "any-of-spot-or-on-demand-takes-on-demand-without-spot",
        (A100_AWS | {schema.SPOT_PRICE: None}, T4_AWS),
        "resources:\n  accelerators: A100:1\n  any_of:\n    - use_spot: true\n"
        "    - use_spot: false\n",
        instance_type="p4de.1g",
        spot=False,
        hourly_cost=3.0,
    ),
    case(
        "use-spot-prices-by-spot-price",
        (
            CPU_AWS | {schema.SPOT_PRICE: 0.12},
            cpu("aws", "us-west-2", "m6i.2xlarge", 0.30, spot_price=0.15),
        ),
        "resources:\n  use_spot: true\n",
        region="us-east-1",
        spot=True,
        hourly_cost=0.12,
    ),
    case(
        "use-spot-skips-rows-without-spot",
        (CPU_AWS, cpu("aws", "us-west-2", "m6i.2xlarge", 0.50, spot_price=0.40)),
        "resources:\n  use_spot: true\n",
        region="us-west-2",
        spot=True,
        hourly_cost=0.40,
    ),
    # infra pins
    case(
        "cloud-pin-restricts",
        (CPU_AWS, cpu("gcp", "us-central1", "n4-standard-8", 0.50)),
        "resources:\n  infra: gcp\n",
        cloud="gcp",
        hourly_cost=0.50,
    ),
    case(
        "legacy-cloud-field-restricts",
        (CPU_AWS, cpu("gcp", "us-central1", "n4-standard-8", 0.50)),
        "resources:\n  cloud: GCP\n",
        cloud="gcp",
    ),
    case(
        "region-glob-restricts",
        (
            CPU_AWS,
            cpu("aws", "eu-west-1", "m6i.2xlarge", 0.45),
            cpu("aws", "eu-central-1", "m6i.2xlarge", 0.44),
            cpu("aws", "ap-south-1", "m6i.2xlarge", 0.30),
        ),
        "resources:\n  infra: aws/eu-*\n",
        region="eu-central-1",
        hourly_cost=0.44,
    ),
    case(
        "region-pin-restricts",
        (CPU_AWS, cpu("aws", "eu-west-1", "m6i.2xlarge", 0.45)),
        "resources:\n  infra: aws/eu-west-1\n",
        region="eu-west-1",
    ),
    case(
        "zone-pin-restricts",
        (
            CPU_AWS | {schema.ZONE: "use1-az1"},
            CPU_AWS | {schema.ZONE: "use1-az2", schema.PRICE: 0.5},
        ),
        "resources:\n  infra: aws/us-east-1/use1-az2\n",
        zone="use1-az2",
        hourly_cost=0.5,
    ),
    case(
        "legacy-region-and-zone-fields-restrict",
        (
            CPU_AWS | {schema.ZONE: "use1-az1"},
            CPU_AWS | {schema.ZONE: "use1-az2", schema.PRICE: 0.5},
        ),
        "resources:\n  cloud: aws\n  region: us-east-1\n  zone: use1-az2\n",
        zone="use1-az2",
    ),
    # how many
    case(
        "num-nodes-multiplies-the-hourly-cost",
        (CPU_AWS,),
        "num_nodes: 3\nresources: {}\n",
        num_nodes=3,
        hourly_cost=pytest.approx(3 * 0.384),
    ),
    case(
        "num-nodes-multiplies-the-spot-cost",
        (A100_AWS,),
        "num_nodes: 2\nresources: {accelerators: A100, use_spot: true}\n",
        num_nodes=2,
        spot=True,
        hourly_cost=pytest.approx(1.8),
    ),
    # instance type pins
    case(
        "instance-type-pin-reports-its-gpus",
        (
            CPU_AWS,
            gpu_offer(
                "A100", 8, instance_type="p4d.24xlarge", vcpus=96, memory_gib=1152, price=32.77
            ),
        ),
        "resources:\n  instance_type: p4d.24xlarge\n",
        instance_type="p4d.24xlarge",
        accelerators={"A100": 8.0},
        hourly_cost=32.77,
    ),
    case(
        "instance-type-pin-may-name-a-non-default-family",
        (CPU_AWS, cpu("aws", "us-east-1", "t3.large", 0.08, vcpus=2, memory_gib=8)),
        "resources:\n  instance_type: t3.large\n",
        instance_type="t3.large",
        vcpus=2.0,
    ),
    # CPU-only defaults
    case(
        "cpu-only-default-needs-8-vcpus",
        (CPU_AWS, cpu("aws", "us-east-1", "m6i.xlarge", 0.192, vcpus=4, memory_gib=16)),
        "resources: {}",
        instance_type="m6i.2xlarge",
    ),
    case(
        "cpu-only-default-needs-4-gib-per-vcpu",
        (CPU_AWS, cpu("aws", "us-east-1", "c6i.2xlarge", 0.34, vcpus=8, memory_gib=16)),
        "resources: {}",
        instance_type="m6i.2xlarge",
    ),
    case(
        "cpu-only-default-skips-a-cheaper-t3",
        (CPU_AWS, cpu("aws", "us-east-1", "t3.2xlarge", 0.33)),
        "resources: {}",
        instance_type="m6i.2xlarge",
    ),
    case(
        "cpu-only-default-skips-gpu-rows",
        (CPU_AWS, gpu_offer("T4", 1, instance_type="m6i.gpu", vcpus=8, memory_gib=32, price=0.2)),
        "resources: {}",
        instance_type="m6i.2xlarge",
        accelerators=None,
    ),
    case(
        "cpu-only-any-family-on-an-unlisted-cloud",
        (CPU_AWS, cpu("lambda", "us-east-1", "cpu_8x_32gb", 0.2)),
        "resources: {}",
        cloud="lambda",
        instance_type="cpu_8x_32gb",
    ),
    case(
        "explicit-cpus-replace-the-vcpu-default",
        (CPU_AWS, cpu("aws", "us-east-1", "m6i.large", 0.096, vcpus=2, memory_gib=8)),
        "resources:\n  cpus: 2\n",
        instance_type="m6i.large",
    ),
    case(
        "explicit-cpus-at-least",
        (
            CPU_AWS,
            cpu("aws", "us-east-1", "m6i.large", 0.096, vcpus=2, memory_gib=8),
            cpu("aws", "us-east-1", "m6i.4xlarge", 0.768, vcpus=16, memory_gib=64),
        ),
        "resources:\n  cpus: 4+\n",
        instance_type="m6i.2xlarge",
    ),
    case(
        "explicit-memory-replaces-both-defaults",
        (CPU_AWS, cpu("aws", "us-east-1", "r6i.large", 0.126, vcpus=2, memory_gib=16)),
        "resources:\n  memory: 16+\n",
        instance_type="r6i.large",
    ),
    # GCP GPUs attached to n1 hosts
    case(
        "attached-t4-default-host-needs-4-vcpus-per-gpu",
        (
            T4_GCP,
            T4_GCP
            | {
                schema.INSTANCE_TYPE: "n1-highmem-2",
                schema.VCPUS: 2.0,
                schema.MEMORY_GIB: 13.0,
                schema.PRICE: 0.45,
            },
        ),
        "resources:\n  accelerators: T4:1\n",
        instance_type="n1-highmem-4",
    ),
    case(
        "attached-t4-default-host-is-high-memory",
        (
            T4_GCP,
            T4_GCP
            | {schema.INSTANCE_TYPE: "n1-standard-4", schema.MEMORY_GIB: 15.0, schema.PRICE: 0.54},
        ),
        "resources:\n  accelerators: T4:1\n",
        instance_type="n1-highmem-4",
    ),
    case(
        "attached-t4-default-scales-with-the-gpu-count",
        (
            T4_GCP | {schema.ACCELERATOR_COUNT: 2.0, schema.PRICE: 0.9},
            T4_GCP
            | {
                schema.INSTANCE_TYPE: "n1-highmem-8",
                schema.VCPUS: 8.0,
                schema.MEMORY_GIB: 52.0,
                schema.ACCELERATOR_COUNT: 2.0,
                schema.PRICE: 1.1,
            },
        ),
        "resources:\n  accelerators: T4:2\n",
        instance_type="n1-highmem-8",
    ),
    case(
        "attached-v100-default-host-needs-8-vcpus-per-gpu",
        (
            T4_GCP | {schema.ACCELERATOR: "V100", schema.PRICE: 2.0},
            T4_GCP
            | {
                schema.ACCELERATOR: "V100",
                schema.INSTANCE_TYPE: "n1-highmem-8",
                schema.VCPUS: 8.0,
                schema.MEMORY_GIB: 52.0,
                schema.PRICE: 2.3,
            },
        ),
        "resources:\n  accelerators: V100:1\n",
        instance_type="n1-highmem-8",
    ),
    case(
        "attached-gpu-host-may-be-small-when-cpus-are-set",
        (
            T4_GCP,
            T4_GCP
            | {
                schema.INSTANCE_TYPE: "n1-standard-2",
                schema.VCPUS: 2.0,
                schema.MEMORY_GIB: 7.5,
                schema.PRICE: 0.45,
            },
        ),
        "resources:\n  accelerators: T4:1\n  cpus: 2+\n",
        instance_type="n1-standard-2",
    ),
    case(
        "built-in-gpus-ignore-the-attached-host-default",
        (T4_GCP, T4_AWS | {schema.MEMORY_GIB: 8.0, schema.VCPUS: 2.0, schema.PRICE: 0.3}),
        "resources:\n  accelerators: T4:1\n",
        cloud="aws",
        hourly_cost=0.3,
    ),
    # names
    case(
        "accelerator-names-are-case-insensitive",
        GPU_WORLD,
        "resources:\n  accelerators: a100\n",
        accelerators={"A100": 1.0},
        instance_type="p4de.1g",
    ),
    case(
        "gpus-alias-for-accelerators",
        GPU_WORLD,
        "resources:\n  gpus: t4:1\n",
        accelerators={"T4": 1.0},
        instance_type="g4dn.xlarge",
    ),
    # price cap and capacity
    case(
        "max-hourly-cost-admits-cheap-enough-offers",
        GPU_WORLD,
        "resources:\n  accelerators: {A100: 1, T4: 1}\n  max_hourly_cost: 1.0\n",
        accelerators={"T4": 1.0},
    ),
    case(
        "null-capacity-is-unlimited",
        (CPU_AWS,),
        "num_nodes: 3\nresources: {}\n",
        num_nodes=3,
    ),
    case(
        "a-small-pool-cannot-take-the-job",
        (
            CPU_AWS | {schema.CAPACITY: 2, schema.PRICE: 0.1},
            cpu("aws", "us-west-2", "m6i.2xlarge", 0.5, capacity=3),
        ),
        "num_nodes: 3\nresources: {}\n",
        region="us-west-2",
        hourly_cost=pytest.approx(1.5),
    ),
    case(
        "a-pool-of-exactly-the-size-fits",
        (
            CPU_AWS | {schema.CAPACITY: 3, schema.PRICE: 0.1},
            cpu("aws", "us-west-2", "m6i.2xlarge", 0.5),
        ),
        "num_nodes: 3\nresources: {}\n",
        region="us-east-1",
    ),
    # ties
    case(
        "ties-break-by-cloud",
        (cpu("gcp", "a-region", "n4-standard-8", 0.3), cpu("aws", "z-region", "m6i.2xlarge", 0.3)),
        "resources: {}",
        cloud="aws",
    ),
    case(
        "ties-break-by-region",
        (cpu("aws", "us-west-2", "m6i.2xlarge", 0.3), cpu("aws", "eu-west-1", "m6i.2xlarge", 0.3)),
        "resources: {}",
        region="eu-west-1",
    ),
    case(
        "ties-break-by-zone",
        (CPU_AWS | {schema.ZONE: "use1-az4"}, CPU_AWS | {schema.ZONE: "use1-az1"}),
        "resources: {}",
        zone="use1-az1",
    ),
]


@pytest.mark.parametrize("spec", CHOICES)
def test_chooses(spec: Case) -> None:
    plan = skyplan.plan(make_task(spec.task), catalog=make_catalog(*spec.rows))
    choice = plan.placements[0].choice
    got = {name: getattr(choice, name) for name in spec.expect}
    assert got == spec.expect


# -- default CPU families ------------------------------------------------------------------------

FAMILIES = [
    ("aws", "m6i.2xlarge", True),
    ("aws", "c6i.2xlarge", True),
    ("aws", "r6i.2xlarge", True),
    ("aws", "t3.2xlarge", False),
    ("aws", "m5.2xlarge", False),
    ("aws", "m7i.2xlarge", False),
    ("gcp", "n4-standard-8", True),
    ("gcp", "n4-highmem-8", True),
    ("gcp", "n2-standard-8", False),
    ("gcp", "e2-standard-8", False),
    ("azure", "Standard_D8s_v5", True),
    ("azure", "Standard_E8s_v5", True),
    ("azure", "Standard_F8s_v2", True),
    ("azure", "Standard_D8as_v5", False),
    ("azure", "Standard_B8ms", False),
    ("lambda", "anything-goes", True),
    ("kubernetes", "8CPU--32GB", True),
]


@pytest.mark.parametrize(
    ("cloud", "instance_type", "accepted"),
    FAMILIES,
    ids=[f"{c}-{t}-{'default' if ok else 'not-default'}" for c, t, ok in FAMILIES],
)
def test_cpu_only_tasks_use_default_families(
    cloud: str, instance_type: str, accepted: bool
) -> None:
    candidate = cpu(cloud, "r1", instance_type, 0.1)
    fallback = cpu("aws", "us-east-1", "m6i.2xlarge", 9.0)
    plan = skyplan.plan(make_task("resources: {}"), catalog=make_catalog(candidate, fallback))
    chose = plan.placements[0].choice.instance_type
    assert chose == (instance_type if accepted else "m6i.2xlarge")


# -- infeasible requests -------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    rows: tuple[dict[str, Any], ...]
    task: str
    mentions: tuple[str, ...]


def failure(case_id: str, rows: tuple[dict[str, Any], ...], task: str, *mentions: str) -> Any:
    return pytest.param(Failure(rows, task, mentions), id=case_id)


FAILURES = [
    failure(
        "unknown-accelerator-suggests-a-name",
        GPU_WORLD,
        "resources:\n  accelerators: A1000\n",
        "did you mean",
        "A100",
    ),
    failure(
        "fractional-gpu-needs-whole-devices",
        GPU_WORLD,
        "resources:\n  accelerators: T4:0.5\n",
        "whole devices",
    ),
    failure(
        "absent-cloud-is-named",
        GPU_WORLD,
        "resources:\n  infra: oci\n",
        "the catalog has no offers on oci",
    ),
    failure(
        "absent-count-lists-the-counts-offered",
        GPU_WORLD,
        "resources:\n  accelerators: A100:3\n",
        "A100",
        "1 per node",
    ),
    failure(
        "spot-only-request-without-spot-rows",
        (CPU_AWS,),
        "resources:\n  use_spot: true\n",
        "a spot offering",
        "on-demand",
    ),
    failure(
        "price-cap-below-every-offer",
        GPU_WORLD,
        "resources:\n  accelerators: A100:1\n  max_hourly_cost: 1.0\n",
        "max_hourly_cost",
        "$3/h",
    ),
    failure(
        "price-cap-counts-every-node",
        (CPU_AWS,),
        "num_nodes: 3\nresources:\n  max_hourly_cost: 1.0\n",
        "max_hourly_cost",
    ),
    failure(
        "pools-too-small",
        (CPU_AWS | {schema.CAPACITY: 2},),
        "num_nodes: 3\nresources: {}\n",
        "capacity for 3 node(s)",
        "room for 2",
    ),
    failure(
        "cpu-only-on-gpu-only-catalog",
        (A100_AWS,),
        "resources: {}\n",
        "set accelerators",
    ),
    failure(
        "every-ordered-option-is-reported",
        (CPU_AWS,),
        "resources:\n  accelerators: [A100:1, T4:1]\n",
        "A100",
        "T4",
    ),
]


@pytest.mark.parametrize("spec", FAILURES)
def test_infeasible_requests_explain_themselves(spec: Failure) -> None:
    with pytest.raises(skyplan.NoFeasiblePlacement) as raised:
        skyplan.plan(make_task(spec.task), catalog=make_catalog(*spec.rows))
    err = raised.value
    assert err.reasons, "a NoFeasiblePlacement carries at least one reason"
    text = str(err)
    for mention in spec.mentions:
        assert mention in text


def test_unknown_accelerator_reason_carries_the_suggestion() -> None:
    with pytest.raises(skyplan.NoFeasiblePlacement) as raised:
        skyplan.plan(
            make_task("resources: {accelerators: a1000}"), catalog=make_catalog(*GPU_WORLD)
        )
    hints = [r.would_fit or "" for r in raised.value.reasons]
    assert any("did you mean" in h and "A100" in h for h in hints)


def test_region_without_the_gpu_says_where_it_is_offered() -> None:
    catalog = make_catalog(
        A100_AWS,
        A100_AWS | {schema.REGION: "us-west-2", schema.PRICE: 3.1},
        cpu("aws", "eu-west-1", "m6i.2xlarge", 0.4),
    )
    task = make_task("resources:\n  infra: aws/eu-west-1\n  accelerators: A100:1\n")
    with pytest.raises(skyplan.NoFeasiblePlacement) as raised:
        skyplan.plan(task, catalog=catalog)
    (reason,) = raised.value.reasons
    assert reason.would_fit is not None
    assert "offered" in reason.would_fit
    assert "us-east-1" in reason.would_fit
    assert "us-west-2" in reason.would_fit


def test_absent_region_lists_only_regions_where_the_request_would_fit() -> None:
    """The region hint names regions offering what was asked (an A100), not every region."""
    catalog = make_catalog(
        A100_AWS,
        cpu("aws", "eu-west-1", "m6i.2xlarge", 0.4),
    )
    task = make_task("resources:\n  infra: aws/ap-south-1\n  accelerators: A100:1\n")
    with pytest.raises(skyplan.NoFeasiblePlacement) as raised:
        skyplan.plan(task, catalog=catalog)
    (reason,) = raised.value.reasons
    assert reason.would_fit is not None
    assert "offered in" in reason.would_fit
    assert "us-east-1" in reason.would_fit
    assert "eu-west-1" not in reason.would_fit


def test_the_rejection_names_the_filter_that_removed_the_last_offer() -> None:
    task = make_task("resources:\n  infra: gcp\n  accelerators: A100:1\n  cpus: 64+\n")
    with pytest.raises(skyplan.NoFeasiblePlacement) as raised:
        skyplan.plan(task, catalog=make_catalog(*GPU_WORLD))
    (reason,) = raised.value.reasons
    assert reason.requirement == "cpus 64+"
    assert reason.removed == 1
    assert reason.remaining == 0
    assert reason.would_fit == "vCPU counts offered there: 12"


def test_no_feasible_placement_is_a_placement_error_exiting_1() -> None:
    with pytest.raises(skyplan.PlacementError) as raised:
        skyplan.plan(make_task("resources: {infra: oci}"), catalog=make_catalog(CPU_AWS))
    assert raised.value.exit_code == 1


# -- determinism and alternatives ----------------------------------------------------------------

TIES = (
    cpu("gcp", "us-central1", "n4-standard-8", 0.3, zone="us-central1-b"),
    cpu("gcp", "us-central1", "n4-standard-8", 0.3, zone="us-central1-a"),
    cpu("aws", "us-west-2", "m6i.2xlarge", 0.3, zone="usw2-az1"),
    cpu("aws", "us-east-1", "m6i.2xlarge", 0.3, zone="use1-az2"),
    cpu("aws", "us-east-1", "m6i.2xlarge", 0.3, zone="use1-az1"),
    cpu("azure", "eastus", "Standard_D8s_v5", 0.3),
)


def test_ties_break_alphabetically_by_cloud_region_zone() -> None:
    choice = skyplan.plan(make_task("resources: {}"), catalog=make_catalog(*TIES)).placements[0]
    assert (choice.choice.cloud, choice.choice.region, choice.choice.zone) == (
        "aws",
        "us-east-1",
        "use1-az1",
    )


@pytest.mark.parametrize("seed", range(5), ids=lambda s: f"shuffle-{s}")
def test_plans_do_not_depend_on_row_order(seed: int) -> None:
    rows = list(TIES) + list(GPU_WORLD)
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    task = make_task("resources: {}")
    assert skyplan.plan(task, catalog=make_catalog(*shuffled)) == skyplan.plan(
        task, catalog=make_catalog(*rows)
    )


@pytest.mark.parametrize(
    "other",
    [
        pytest.param({schema.SOURCE: "another-price-list"}, id="differing-source"),
        pytest.param(
            {schema.ACCELERATOR: "P4", schema.ACCELERATOR_COUNT: 1.0, schema.GPU_ATTACHED: True},
            id="differing-attached-gpu",
        ),
    ],
)
def test_full_ties_do_not_depend_on_row_order(other: dict[str, Any]) -> None:
    """Two rows equal on cost, cloud, region, zone and instance type still give one plan,
    whichever comes first (e.g. two price lists of one offer, or one host with either GPU)."""
    first = cpu("gcp", "us-central1", "n1-highmem-8", 0.5, zone="us-central1-a")
    second = first | other
    task = make_task("resources:\n  instance_type: n1-highmem-8\n")
    forward = skyplan.plan(task, catalog=make_catalog(first, second))
    backward = skyplan.plan(task, catalog=make_catalog(second, first))
    assert forward == backward


def test_two_calls_give_equal_plans() -> None:
    catalog = make_catalog(*TIES, *GPU_WORLD)
    task = make_task("resources:\n  accelerators: {A100: 1, T4: 1}\n")
    assert skyplan.plan(task, catalog=catalog) == skyplan.plan(task, catalog=catalog)


ALTERNATIVE_ROWS = (
    cpu("aws", "us-east-1", "m6i.2xlarge", 0.30),
    cpu("aws", "us-west-2", "m6i.2xlarge", 0.31),  # same shape as the winner: not repeated
    cpu("aws", "us-east-1", "c6i.4xlarge", 0.60, vcpus=16, memory_gib=64),
    cpu("aws", "us-east-1", "r6i.2xlarge", 0.50, memory_gib=64),
    cpu("aws", "us-east-1", "m6i.4xlarge", 0.70, vcpus=16, memory_gib=64),
    cpu("aws", "us-east-1", "m6i.8xlarge", 1.40, vcpus=32, memory_gib=128),
    cpu("gcp", "us-central1", "n4-standard-8", 2.00),
    cpu("azure", "eastus", "Standard_D8s_v5", 3.00),
)


def _alternatives(limit: int) -> tuple[skyplan.Offer, tuple[skyplan.Offer, ...]]:
    plan = skyplan.plan(
        make_task("resources: {}"), catalog=make_catalog(*ALTERNATIVE_ROWS), alternatives=limit
    )
    placement = plan.placements[0]
    return placement.choice, placement.alternatives


@pytest.mark.parametrize("limit", [2, 3, 4, 8], ids=lambda n: f"limit-{n}")
def test_alternatives_include_every_clouds_best(limit: int) -> None:
    _, alternatives = _alternatives(limit)
    best = {(a.cloud, a.instance_type) for a in alternatives}
    assert ("gcp", "n4-standard-8") in best
    assert ("azure", "Standard_D8s_v5") in best


@pytest.mark.parametrize("limit", [2, 3, 4, 8], ids=lambda n: f"limit-{n}")
def test_alternatives_respect_the_limit(limit: int) -> None:
    """At most `limit` runner-ups while the limit leaves room for every other cloud's best
    (here: gcp and azure; the winner already stands for aws)."""
    _, alternatives = _alternatives(limit)
    assert len(alternatives) == min(limit, 6)


@pytest.mark.parametrize("limit", [2, 3, 8], ids=lambda n: f"limit-{n}")
def test_alternatives_never_repeat_the_winner_or_its_shape(limit: int) -> None:
    winner, alternatives = _alternatives(limit)
    assert winner not in alternatives
    shape = (winner.cloud, winner.instance_type, winner.spot)
    assert shape not in {(a.cloud, a.instance_type, a.spot) for a in alternatives}


def test_alternatives_are_ranked_by_cost() -> None:
    winner, alternatives = _alternatives(8)
    costs = [a.hourly_cost for a in alternatives]
    assert costs == sorted(costs)
    assert all(winner.hourly_cost <= c for c in costs)


def test_alternatives_include_the_other_pricing_of_an_any_of() -> None:
    task = make_task(
        "resources:\n  accelerators: A100:1\n  any_of:\n    - use_spot: true\n"
        "    - use_spot: false\n"
    )
    placement = skyplan.plan(task, catalog=make_catalog(A100_AWS)).placements[0]
    assert placement.choice.spot is True
    assert [(a.instance_type, a.spot) for a in placement.alternatives] == [("p4de.1g", False)]


# -- the explanation -----------------------------------------------------------------------------

STEP_TASKS = [
    pytest.param("resources: {}", id="cpu-only"),
    pytest.param("resources: {accelerators: {A100: 1, T4: 1}}", id="any-of-gpus"),
    pytest.param("resources: {infra: aws/us-*, accelerators: T4, use_spot: true}", id="pinned"),
    pytest.param("num_nodes: 2\nresources: {cpus: 4+, memory: 16+}\n", id="explicit-shape"),
]


@pytest.mark.parametrize("task", STEP_TASKS)
def test_steps_narrow_monotonically(task: str) -> None:
    catalog = make_catalog(*GPU_WORLD, *TIES, *ALTERNATIVE_ROWS)
    placement = skyplan.plan(make_task(task), catalog=catalog).placements[0]
    steps = placement.steps
    assert steps, "a placement explains how the candidates were narrowed"
    assert steps[0].before == len(catalog)
    for step in steps:
        assert 0 < step.after <= step.before
        assert step.removed == step.before - step.after
    for earlier, later in itertools.pairwise(steps):
        assert later.before == earlier.after
    names = [s.name for s in steps]
    assert names == [f.name for f in skyplan.solver.DEFAULT_FILTERS if f.name in names]


# -- output shape --------------------------------------------------------------------------------

OFFER_KEYS = {
    "cloud",
    "region",
    "zone",
    "instance_type",
    "accelerators",
    "spot",
    "num_nodes",
    "hourly_cost",
    "vcpus",
    "memory_gib",
}


def test_plan_to_json_shape() -> None:
    task = make_task("name: train\nnum_nodes: 2\nresources: {accelerators: {A100: 1, T4: 1}}\n")
    plan = skyplan.plan(task, catalog=make_catalog(*GPU_WORLD))
    data = plan.to_json()
    assert set(data) == {"placements", "hourly_cost"}
    (placement,) = data["placements"]  # type: ignore[misc]
    assert set(placement) == OFFER_KEYS | {
        "task",
        "alternatives",
        "option",
        "filters",
        "notes",
        "rules",
        "preferences_applied",
        "decided_by",
    }
    assert placement["task"] == "train"
    assert placement["accelerators"] == {"T4": 1}
    assert isinstance(placement["accelerators"]["T4"], int)
    assert placement["num_nodes"] == 2
    assert placement["hourly_cost"] == pytest.approx(1.052)
    assert data["hourly_cost"] == pytest.approx(1.052)
    for alternative in placement["alternatives"]:
        assert set(alternative) == OFFER_KEYS
    for step in placement["filters"]:
        assert set(step) == {"name", "requirement", "before", "after", "rule"}
    assert json.loads(json.dumps(data)) == data


def test_pipeline_gets_one_placement_per_task_and_sums_the_cost() -> None:
    pipeline = make_task(
        "name: pipe\n---\n"
        "name: prep\nresources: {}\n---\n"
        "name: train\nnum_nodes: 2\nresources: {accelerators: A100}\n---\n"
        "name: serve\nresources: {accelerators: T4}\n"
    )
    plan = skyplan.plan(pipeline, catalog=make_catalog(*GPU_WORLD))
    assert [p.task for p in plan.placements] == ["prep", "train", "serve"]
    assert [p.choice.instance_type for p in plan.placements] == [
        "m6i.2xlarge",
        "p4de.1g",
        "g4dn.xlarge",
    ]
    assert plan.hourly_cost == pytest.approx(0.384 + 2 * 3.0 + 0.526)
    assert plan.hourly_cost == pytest.approx(sum(p.choice.hourly_cost for p in plan.placements))


def test_an_infeasible_pipeline_task_is_named() -> None:
    pipeline = make_task(
        "name: prep\nresources: {}\n---\nname: train\nresources: {accelerators: H100:8}\n"
    )
    with pytest.raises(skyplan.NoFeasiblePlacement) as raised:
        skyplan.plan(pipeline, catalog=make_catalog(*GPU_WORLD))
    assert raised.value.task == "train"
    assert "task 'train'" in str(raised.value)


def test_a_single_task_object_can_be_planned() -> None:
    (task,) = make_task("resources: {accelerators: T4}").tasks
    plan = skyplan.plan(task, catalog=make_catalog(*GPU_WORLD))
    assert plan.placements[0].choice.instance_type == "g4dn.xlarge"


def test_the_offer_carries_the_source() -> None:
    plan = skyplan.plan(make_task("resources: {}"), catalog=make_catalog(CPU_AWS))
    assert plan.placements[0].choice.source == "test"


# -- purity --------------------------------------------------------------------------------------

PURITY_TASKS = [
    pytest.param("resources: {}", id="feasible"),
    pytest.param("resources: {accelerators: [H100:8, A100:1]}", id="ordered-fallback"),
    pytest.param("resources: {accelerators: A100:3}", id="infeasible"),
]


@pytest.mark.parametrize("task", PURITY_TASKS)
def test_plan_does_not_touch_the_catalog(task: str) -> None:
    catalog = make_catalog(*GPU_WORLD, *TIES)
    before = catalog.frame.clone()
    outcomes = []
    for _ in range(2):
        try:
            outcomes.append(skyplan.plan(make_task(task), catalog=catalog))
        except skyplan.NoFeasiblePlacement as exc:
            outcomes.append(str(exc))
    assert catalog.frame.equals(before)
    assert catalog.frame.columns == list(schema.NAMES)
    assert outcomes[0] == outcomes[1]


def test_network_tier_best_keeps_to_clouds_with_a_fast_interconnect() -> None:
    azure_h100 = gpu_offer(
        "H100", 2, cloud="azure", region="eastus", instance_type="NC80", price=14.0
    )
    gcp_h100 = gpu_offer(
        "H100", 2, cloud="gcp", region="us-central1", instance_type="a3-2g", price=22.0
    )
    catalog = make_catalog(azure_h100, gcp_h100)
    plain = make_task("resources: {accelerators: H100:2}")
    best = make_task("resources: {accelerators: H100:2, network_tier: best}")
    assert skyplan.plan(plain, catalog=catalog).placements[0].choice.cloud == "azure"
    placement = skyplan.plan(best, catalog=catalog).placements[0]
    assert placement.choice.cloud == "gcp"
    assert any(s.name == "network-tier" and s.removed == 1 for s in placement.steps)


def test_network_tier_best_on_a_cloud_without_it_says_where_it_is_offered() -> None:
    catalog = make_catalog(gpu_offer("H100", 2, cloud="azure", region="eastus", price=14.0))
    with pytest.raises(skyplan.NoFeasiblePlacement) as info:
        skyplan.plan(
            make_task("resources: {accelerators: H100:2, network_tier: best}"), catalog=catalog
        )
    assert "network_tier best" in str(info.value)
    assert "offered without it on azure" in str(info.value)
