"""Properties of `plan()` over random small catalogs, checked against a brute force.

The reference below re-states SkyPilot's rules row by row in plain Python (no Polars): a row
fits a request when it is on the pinned cloud, carries exactly the requested accelerators (none
for a CPU-only task), meets cpus/memory (or SkyPilot's defaults: 8+ vCPUs and 4 GiB per vCPU in
the default families for CPU-only tasks; 4 vCPUs per T4 and 6.5 GiB per vCPU on hosts with
attached GPUs), has a price for the requested pricing, stays under max_hourly_cost for all
nodes, and belongs to a pool with room for every node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import skyplan
from skyplan.catalog import schema
from tests.solver.factories import make_catalog, make_offer

CLOUDS = ("aws", "gcp", "lambda")
REGIONS = ("us-east-1", "eu-west-1")
ZONES = (None, "z1", "z2")
INSTANCE_TYPES = {
    "aws": ("m6i.2xlarge", "c6i.4xlarge", "r6i.large", "t3.2xlarge", "p4d.24xlarge"),
    "gcp": ("n4-standard-8", "n4-highmem-4", "n1-highmem-4", "e2-standard-8", "a2-highgpu-1g"),
    "lambda": ("cpu_8x", "gpu_1x_a100"),
}
ACCELERATORS = ("A100", "T4")
COUNTS = (1.0, 2.0, 4.0, 8.0)
VCPUS = (2.0, 4.0, 8.0, 16.0, 32.0)
MEMORY = (4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 208.0)

#: Written out independently of skyplan.solver.filters.CPU_DEFAULT_FAMILIES.
DEFAULT_FAMILY_PREFIXES = {
    "aws": ("m6i.", "c6i.", "r6i."),
    "gcp": ("n4-standard-", "n4-highmem-", "n4-highcpu-"),
}
ATTACHED_VCPUS_PER_GPU = {"T4": 4}  # of the accelerators generated here
HIGHMEM_GIB_PER_VCPU = 6.5


def prices() -> st.SearchStrategy[float]:
    return st.integers(min_value=1, max_value=4000).map(lambda cents: cents / 100)


@st.composite
def offers(draw: st.DrawFn) -> dict[str, Any]:
    cloud = draw(st.sampled_from(CLOUDS))
    gpu = draw(st.booleans())
    price = draw(st.one_of(prices(), prices(), prices(), st.none()))
    spot = draw(st.one_of(st.none(), prices()))
    if price is None and spot is None:
        spot = draw(prices())
    return make_offer(
        cloud=cloud,
        region=draw(st.sampled_from(REGIONS)),
        zone=draw(st.sampled_from(ZONES)),
        instance_type=draw(st.sampled_from(INSTANCE_TYPES[cloud])),
        accelerator=draw(st.sampled_from(ACCELERATORS)) if gpu else None,
        accelerator_count=draw(st.sampled_from(COUNTS)) if gpu else None,
        vcpus=draw(st.sampled_from(VCPUS)),
        memory_gib=draw(st.sampled_from(MEMORY)),
        price=price,
        spot_price=spot,
        capacity=draw(st.one_of(st.none(), st.integers(min_value=1, max_value=4))),
        gpu_attached=gpu and draw(st.booleans()),
    )


@dataclass(frozen=True)
class Req:
    accelerator: str | None
    count: float
    cpus: tuple[float, bool] | None  # (count, at_least)
    memory: tuple[float, str] | None  # (gib, mode)
    use_spot: bool
    num_nodes: int
    cloud: str | None
    max_hourly_cost: float | None

    def task(self) -> skyplan.Task:
        resources: dict[str, Any] = {"use_spot": self.use_spot}
        if self.accelerator is not None:
            resources["accelerators"] = f"{self.accelerator}:{self.count:g}"
        if self.cpus is not None:
            count, plus = self.cpus
            resources["cpus"] = f"{count:g}{'+' if plus else ''}"
        if self.memory is not None:
            gib, mode = self.memory
            resources["memory"] = f"{gib:g}" + {"exact": "", "at_least": "+", "per_cpu": "x"}[mode]
        if self.cloud is not None:
            resources["infra"] = self.cloud
        if self.max_hourly_cost is not None:
            resources["max_hourly_cost"] = self.max_hourly_cost
        return skyplan.Task.model_validate({"num_nodes": self.num_nodes, "resources": resources})


@st.composite
def requests(draw: st.DrawFn) -> Req:
    accelerator = draw(st.one_of(st.none(), st.sampled_from(ACCELERATORS)))
    if accelerator is not None and draw(st.booleans()):
        accelerator = accelerator.lower()  # names are matched case-insensitively
    mode = draw(st.sampled_from(("exact", "at_least", "per_cpu")))
    gib = draw(st.sampled_from((2.0, 4.0) if mode == "per_cpu" else (8.0, 16.0, 32.0, 64.0)))
    return Req(
        accelerator=accelerator,
        count=draw(st.sampled_from(COUNTS)),
        cpus=draw(st.one_of(st.none(), st.tuples(st.sampled_from(VCPUS[:4]), st.booleans()))),
        memory=draw(st.one_of(st.none(), st.just((gib, mode)))),
        use_spot=draw(st.booleans()),
        num_nodes=draw(st.integers(min_value=1, max_value=4)),
        cloud=draw(st.one_of(st.none(), st.sampled_from((*CLOUDS, "azure")))),
        max_hourly_cost=draw(st.one_of(st.none(), st.integers(1, 100).map(float))),
    )


# -- the reference -------------------------------------------------------------------------------


def _vcpus_ok(row: dict[str, Any], req: Req) -> bool:
    vcpus = row[schema.VCPUS]
    if req.cpus is not None:
        count, at_least = req.cpus
        return vcpus >= count if at_least else vcpus == count
    if req.accelerator is None:
        return req.memory is not None or vcpus >= 8
    per_gpu = ATTACHED_VCPUS_PER_GPU.get(req.accelerator.upper())
    if per_gpu is not None and req.memory is None and row[schema.GPU_ATTACHED]:
        return vcpus >= per_gpu * req.count
    return True


def _memory_ok(row: dict[str, Any], req: Req) -> bool:
    memory, vcpus = row[schema.MEMORY_GIB], row[schema.VCPUS]
    if req.memory is not None:
        gib, mode = req.memory
        return {
            "exact": memory == gib,
            "at_least": memory >= gib,
            "per_cpu": memory >= gib * vcpus,
        }[mode]
    if req.accelerator is None:
        return memory >= 4 * vcpus
    attached_default = req.accelerator.upper() in ATTACHED_VCPUS_PER_GPU and req.cpus is None
    if attached_default and row[schema.GPU_ATTACHED]:
        return memory >= HIGHMEM_GIB_PER_VCPU * vcpus
    return True


def _family_ok(row: dict[str, Any], req: Req) -> bool:
    if req.accelerator is not None:
        return True
    prefixes = DEFAULT_FAMILY_PREFIXES.get(row[schema.CLOUD])
    return prefixes is None or row[schema.INSTANCE_TYPE].startswith(prefixes)


def cost(row: dict[str, Any], req: Req) -> float | None:
    price = row[schema.SPOT_PRICE] if req.use_spot else row[schema.PRICE]
    return None if price is None else price * req.num_nodes


def fits(row: dict[str, Any], req: Req) -> bool:
    if req.cloud is not None and row[schema.CLOUD] != req.cloud:
        return False
    if req.accelerator is None:
        if row[schema.ACCELERATOR] is not None:
            return False
    elif (
        row[schema.ACCELERATOR] is None
        or row[schema.ACCELERATOR].lower() != req.accelerator.lower()
        or row[schema.ACCELERATOR_COUNT] != req.count
    ):
        return False
    if not (_vcpus_ok(row, req) and _memory_ok(row, req) and _family_ok(row, req)):
        return False
    total = cost(row, req)
    if total is None:
        return False
    if req.max_hourly_cost is not None and total > req.max_hourly_cost:
        return False
    capacity = row[schema.CAPACITY]
    return capacity is None or capacity >= req.num_nodes


def _matches_offer(row: dict[str, Any], offer: skyplan.Offer, req: Req) -> bool:
    accelerators = (
        None
        if row[schema.ACCELERATOR] is None
        else {row[schema.ACCELERATOR]: row[schema.ACCELERATOR_COUNT]}
    )
    return (
        row[schema.CLOUD] == offer.cloud
        and row[schema.REGION] == offer.region
        and row[schema.ZONE] == offer.zone
        and row[schema.INSTANCE_TYPE] == offer.instance_type
        and accelerators == offer.accelerators
        and row[schema.VCPUS] == offer.vcpus
        and row[schema.MEMORY_GIB] == offer.memory_gib
        and cost(row, req) == offer.hourly_cost
    )


def _tie_key(cloud: str, region: str, zone: str | None, instance_type: str) -> tuple[Any, ...]:
    return (cloud, region, zone is None, zone or "", instance_type)


@st.composite
def aimed_requests(draw: st.DrawFn, rows: list[dict[str, Any]]) -> Req:
    """A request shaped after one of `rows`, so that many requests have a fitting row."""
    row = draw(st.sampled_from(rows))
    req = draw(requests())
    accelerator, count = row[schema.ACCELERATOR], row[schema.ACCELERATOR_COUNT]
    vcpus, memory = row[schema.VCPUS], row[schema.MEMORY_GIB]
    capacity = row[schema.CAPACITY] or 4
    if accelerator is not None and draw(st.booleans()):
        accelerator = accelerator.lower()
    return Req(
        accelerator=accelerator,
        count=count or 1.0,
        cpus=draw(st.sampled_from((None, (vcpus, False), (vcpus / 2, True)))),
        memory=draw(st.sampled_from((None, (memory, "exact"), (memory / 2, "at_least")))),
        use_spot=row[schema.PRICE] is None or (row[schema.SPOT_PRICE] is not None and req.use_spot),
        num_nodes=min(req.num_nodes, capacity),
        cloud=draw(st.sampled_from((None, row[schema.CLOUD]))),
        max_hourly_cost=draw(st.sampled_from((None, 1000.0, req.max_hourly_cost))),
    )


@st.composite
def variants(draw: st.DrawFn, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One of `rows` elsewhere and at another price: the same shape competing with itself."""
    row = draw(st.sampled_from(rows))
    price = draw(st.one_of(prices(), st.just(row[schema.PRICE])))
    return (
        row
        | {
            schema.REGION: draw(st.sampled_from(REGIONS)),
            schema.ZONE: draw(st.sampled_from(ZONES)),
            schema.PRICE: price,
            schema.SPOT_PRICE: draw(
                st.one_of(st.none(), prices(), st.just(row[schema.SPOT_PRICE]))
            ),
            schema.CAPACITY: draw(st.one_of(st.none(), st.integers(min_value=1, max_value=4))),
        }
        | ({schema.SPOT_PRICE: draw(prices())} if price is None else {})
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[dict[str, Any]], Req]:
    """A small random catalog and a request: random, or aimed at one of its rows."""
    rows = draw(st.lists(offers(), min_size=1, max_size=30))
    rows += draw(st.lists(variants(rows), max_size=10))
    req = draw(st.one_of(requests(), aimed_requests(rows), aimed_requests(rows)))
    return rows, req


# -- the properties ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios())
def test_plan_agrees_with_the_brute_force(scenario: tuple[list[dict[str, Any]], Req]) -> None:
    rows, req = scenario
    feasible = [row for row in rows if fits(row, req)]
    catalog = make_catalog(*rows)
    try:
        plan = skyplan.plan(req.task(), catalog=catalog)
    except skyplan.NoFeasiblePlacement:
        # (c) an infeasible request has no fitting row
        assert feasible == []
        return
    choice = plan.placements[0].choice
    assert feasible, "plan() placed a request no row fits"
    # (a) the choice is a row of the catalog that meets every requirement
    assert choice.spot is req.use_spot
    assert choice.num_nodes == req.num_nodes
    assert any(_matches_offer(row, choice, req) for row in feasible)
    # (b) and nothing fitting is cheaper
    best = min(cost(row, req) or 0.0 for row in feasible)
    assert choice.hourly_cost == best
    # ties go to the alphabetically first cloud, region, zone and instance type
    tied = [
        _tie_key(r[schema.CLOUD], r[schema.REGION], r[schema.ZONE], r[schema.INSTANCE_TYPE])
        for r in feasible
        if cost(r, req) == best
    ]
    assert _tie_key(choice.cloud, choice.region, choice.zone, choice.instance_type) == min(tied)


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios())
def test_alternatives_fit_too_and_never_beat_the_choice(
    scenario: tuple[list[dict[str, Any]], Req],
) -> None:
    rows, req = scenario
    feasible = [row for row in rows if fits(row, req)]
    try:
        placement = skyplan.plan(req.task(), catalog=make_catalog(*rows)).placements[0]
    except skyplan.NoFeasiblePlacement:
        return
    for alternative in placement.alternatives:
        assert any(_matches_offer(row, alternative, req) for row in feasible)
        assert alternative.hourly_cost >= placement.choice.hourly_cost
        assert alternative != placement.choice


def _keys(offer: skyplan.Offer) -> tuple[Any, ...]:
    return (
        offer.hourly_cost,
        offer.spot,
        offer.cloud,
        offer.region,
        offer.zone,
        offer.instance_type,
    )


@settings(max_examples=100, deadline=None)
@given(scenario=scenarios())
def test_plan_ignores_row_order(scenario: tuple[list[dict[str, Any]], Req]) -> None:
    """The chosen place and price (and the alternatives') do not depend on the row order.

    (Rows equal on every ranking key may still differ elsewhere, e.g. in `source`; that case
    is specified by test_planner.py::test_full_ties_do_not_depend_on_row_order.)
    """

    def outcome(catalog_rows: list[dict[str, Any]]) -> object:
        try:
            placement = skyplan.plan(req.task(), catalog=make_catalog(*catalog_rows))
        except skyplan.NoFeasiblePlacement as exc:
            return type(exc)
        p = placement.placements[0]
        return _keys(p.choice), [_keys(a) for a in p.alternatives]

    rows, req = scenario
    assert outcome(rows) == outcome(rows[::-1])


@pytest.mark.parametrize(
    ("row", "req", "expected"),
    [
        pytest.param(
            make_offer(),
            Req(None, 1, None, None, False, 1, None, None),
            True,
            id="default-cpu-row-fits-the-default-request",
        ),
        pytest.param(
            make_offer(instance_type="t3.2xlarge"),
            Req(None, 1, None, None, False, 1, None, None),
            False,
            id="t3-is-not-a-default-family",
        ),
        pytest.param(
            make_offer(
                cloud="gcp",
                instance_type="n1-standard-4",
                accelerator="T4",
                accelerator_count=1,
                vcpus=4,
                memory_gib=15,
                gpu_attached=True,
            ),
            Req("T4", 1, None, None, False, 1, None, None),
            False,
            id="attached-t4-needs-a-high-memory-host",
        ),
        pytest.param(
            make_offer(capacity=2),
            Req(None, 1, None, None, False, 3, None, None),
            False,
            id="capacity-must-hold-every-node",
        ),
    ],
)
def test_the_reference_itself(row: dict[str, Any], req: Req, expected: bool) -> None:
    assert fits(row, req) is expected
