"""`place_replicas`: a service's replicas placed as SkyServe's SpotHedge places them.

A base of on-demand replicas, the rest on spot spread over distinct failure domains (zones or
regions), over enough regions and clouds, within each pool's capacity, at the least total $/h.
The tables below are tiny hand-made catalogs with the exact placement each request must get, or
the reason it cannot be placed. The properties check every plan on random small instances
against a brute force over all multisets of replica assignments.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import skyplan
from skyplan.catalog import schema
from skyplan.solver.spread import ReplicaPlan, SpotDomain, place_replicas
from tests.solver.factories import gpu_offer, make_catalog

# -- the world: three spot zones in us-east-1, one in us-west-2, one on GCP ----------------------


def a10g(
    cloud: str, region: str, zone: str | None, price: float | None, spot: float | None, **kw: Any
) -> dict[str, Any]:
    instance = "g5.xlarge" if cloud == "aws" else "g2-standard-4"
    return gpu_offer(
        "A10G",
        1,
        cloud=cloud,
        region=region,
        zone=zone,
        instance_type=kw.pop("instance_type", instance),
        vcpus=4,
        memory_gib=16,
        price=price,
        spot_price=spot,
        **kw,
    )


EAST_A = a10g("aws", "us-east-1", "us-east-1a", 1.00, 0.30)
EAST_B = a10g("aws", "us-east-1", "us-east-1b", 1.00, 0.32)
EAST_C = a10g("aws", "us-east-1", "us-east-1c", 1.00, 0.35)
WEST_A = a10g("aws", "us-west-2", "us-west-2a", 1.10, 0.40)
GCP_A = a10g("gcp", "us-central1", "us-central1-a", 1.20, 0.50)
WORLD = (EAST_A, EAST_B, EAST_C, WEST_A, GCP_A)
#: An on-prem pool: cheap, on demand only, room for two nodes.
LAB = a10g("kubernetes", "lab", None, 0.50, None, instance_type="a10g-node", capacity=2)


def service(use_spot: bool | None = None, **replica_policy: Any) -> skyplan.Task:
    resources: dict[str, Any] = {"accelerators": "A10G:1"}
    if use_spot is not None:
        resources["use_spot"] = use_spot
    spec: dict[str, Any] = {"readiness_probe": "/health"}
    if replica_policy:
        spec["replica_policy"] = replica_policy
    return skyplan.Task.model_validate({"name": "svc", "resources": resources, "service": spec})


def where(offer: skyplan.Offer) -> str:
    kind = "spot" if offer.spot else "on-demand"
    return f"{kind} {'/'.join(p for p in (offer.cloud, offer.region, offer.zone) if p)}"


# -- placements ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    rows: tuple[dict[str, Any], ...]
    task: skyplan.Task
    kwargs: dict[str, Any]
    expect: list[str]
    cost: float


def case(
    case_id: str,
    expect: list[str],
    cost: float,
    *,
    rows: tuple[dict[str, Any], ...] = WORLD,
    task: skyplan.Task | None = None,
    **kwargs: Any,
) -> Any:
    return pytest.param(Case(rows, task or service(), kwargs, expect, cost), id=case_id)


PLACEMENTS = [
    case(
        "spot-replicas-go-to-distinct-zones",
        [
            "spot aws/us-east-1/us-east-1a",
            "spot aws/us-east-1/us-east-1b",
            "spot aws/us-east-1/us-east-1c",
        ],
        0.97,
        replicas=3,
    ),
    case(
        "the-base-runs-on-demand",
        [
            "on-demand aws/us-east-1/us-east-1a",
            "spot aws/us-east-1/us-east-1a",
            "spot aws/us-east-1/us-east-1b",
        ],
        1.62,
        replicas=3,
        base_on_demand=1,
    ),
    case(
        "the-base-comes-from-the-replica-policy",
        [
            "on-demand aws/us-east-1/us-east-1a",
            "on-demand aws/us-east-1/us-east-1a",
            "spot aws/us-east-1/us-east-1a",
        ],
        2.30,
        task=service(min_replicas=3, base_ondemand_fallback_replicas=2),
    ),
    case(
        "overprovisioned-replicas-are-placed-too",
        [
            "spot aws/us-east-1/us-east-1a",
            "spot aws/us-east-1/us-east-1b",
            "spot aws/us-east-1/us-east-1c",
        ],
        0.97,
        task=service(min_replicas=2, num_overprovision=1),
    ),
    case(
        "an-explicit-count-overrides-the-service",
        ["spot aws/us-east-1/us-east-1a"],
        0.30,
        task=service(min_replicas=2, num_overprovision=1),
        replicas=1,
    ),
    case(
        "two-spot-replicas-per-zone-pack-the-cheapest-zone",
        [
            "spot aws/us-east-1/us-east-1a",
            "spot aws/us-east-1/us-east-1a",
            "spot aws/us-east-1/us-east-1b",
        ],
        0.92,
        replicas=3,
        max_spot_per_domain=2,
    ),
    case(
        "region-domains-put-spot-replicas-in-distinct-regions",
        ["spot aws/us-east-1/us-east-1a", "spot aws/us-west-2/us-west-2a"],
        0.70,
        replicas=2,
        spot_domain="region",
    ),
    case(
        "min-regions-takes-a-pricier-second-region",
        [
            "spot aws/us-east-1/us-east-1a",
            "spot aws/us-east-1/us-east-1b",
            "spot aws/us-west-2/us-west-2a",
        ],
        1.02,
        replicas=3,
        min_regions=2,
    ),
    case(
        "min-clouds-takes-a-second-cloud",
        ["spot aws/us-east-1/us-east-1a", "spot gcp/us-central1/us-central1-a"],
        0.80,
        replicas=2,
        min_clouds=2,
    ),
    case(
        "replicas-beyond-the-spot-zones-run-on-demand",
        [
            "on-demand aws/us-east-1/us-east-1a",
            "spot aws/us-east-1/us-east-1a",
            "spot aws/us-east-1/us-east-1b",
            "spot aws/us-east-1/us-east-1c",
            "spot aws/us-west-2/us-west-2a",
            "spot gcp/us-central1/us-central1-a",
        ],
        2.87,
        replicas=6,
    ),
    case(
        "use-spot-false-pins-every-replica-on-demand",
        ["on-demand aws/us-east-1/us-east-1a", "on-demand aws/us-east-1/us-east-1a"],
        2.00,
        task=service(use_spot=False),
        replicas=2,
    ),
    case(
        "use-spot-true-keeps-only-the-base-on-demand",
        [
            "on-demand aws/us-east-1/us-east-1a",
            "spot aws/us-east-1/us-east-1a",
            "spot aws/us-east-1/us-east-1b",
        ],
        1.62,
        task=service(use_spot=True, min_replicas=3, base_ondemand_fallback_replicas=1),
    ),
    case(
        "a-spot-pinned-service-without-a-base-is-all-spot",
        ["spot aws/us-east-1/us-east-1a", "spot aws/us-east-1/us-east-1b"],
        0.62,
        task=service(use_spot=True),
        replicas=2,
    ),
    case(
        "a-pool-holds-only-its-capacity",
        [
            "on-demand kubernetes/lab",
            "on-demand kubernetes/lab",
            "on-demand aws/us-east-1/us-east-1a",
        ],
        2.00,
        rows=(*WORLD, LAB),
        task=service(use_spot=False),
        replicas=3,
    ),
    case(
        "capacity-is-shared-by-spot-and-on-demand",
        ["on-demand kubernetes/lab", "spot aws/us-east-1/us-east-1a"],
        0.80,
        rows=(EAST_A, LAB | {schema.SPOT_PRICE: 0.20, schema.CAPACITY: 1}),
        replicas=2,
        base_on_demand=1,
    ),
    case(
        "equal-prices-go-to-the-first-zone",
        ["spot aws/us-east-1/us-east-1a", "spot aws/us-east-1/us-east-1b"],
        0.60,
        rows=(EAST_B | {schema.SPOT_PRICE: 0.30}, EAST_A),
        replicas=2,
    ),
    case(
        "equal-prices-go-to-the-first-regions",
        ["on-demand aws/us-east-1/us-east-1a", "on-demand aws/us-west-1"],
        2.00,
        rows=(WEST_A | {schema.PRICE: 1.00}, a10g("aws", "us-west-1", None, 1.0, None), EAST_A),
        task=service(use_spot=False),
        replicas=2,
        min_regions=2,
    ),
]


@pytest.mark.parametrize("spec", PLACEMENTS)
def test_placements(spec: Case) -> None:
    plan = place_replicas(spec.task, make_catalog(*spec.rows), **spec.kwargs)
    assert [where(o) for o in plan.replicas] == spec.expect
    assert plan.hourly_cost == pytest.approx(spec.cost)
    assert plan.status == "OPTIMAL"
    assert plan.gap == 0.0
    assert plan.on_demand == sum(not o.spot for o in plan.replicas)
    assert plan.spot == sum(o.spot for o in plan.replicas)


def test_the_plan_summarises_regions_clouds_and_domains() -> None:
    plan = place_replicas(
        service(), make_catalog(*WORLD), replicas=4, min_clouds=2, base_on_demand=1
    )
    assert [where(o) for o in plan.replicas] == [
        "on-demand aws/us-east-1/us-east-1a",
        "spot aws/us-east-1/us-east-1a",
        "spot aws/us-east-1/us-east-1b",
        "spot gcp/us-central1/us-central1-a",
    ]
    assert plan.regions == ("aws/us-east-1", "gcp/us-central1")
    assert plan.clouds == ("aws", "gcp")
    assert plan.domains == (
        "aws/us-east-1/us-east-1a",
        "aws/us-east-1/us-east-1b",
        "gcp/us-central1/us-central1-a",
    )
    assert plan.task == "svc"
    assert plan.to_json()["hourly_cost"] == 2.12
    replicas = plan.to_json()["replicas"]
    assert isinstance(replicas, list)
    assert [r["spot"] for r in replicas] == [False, True, True, True]


def test_each_replica_costs_all_its_nodes_and_a_pool_holds_whole_replicas() -> None:
    task = service(use_spot=False).model_copy(update={"num_nodes": 2})
    lab = LAB | {schema.CAPACITY: 5}  # five nodes: two 2-node replicas
    plan = place_replicas(task, make_catalog(EAST_A, lab), replicas=3)
    assert [where(o) for o in plan.replicas] == [
        "on-demand kubernetes/lab",
        "on-demand kubernetes/lab",
        "on-demand aws/us-east-1/us-east-1a",
    ]
    assert [o.num_nodes for o in plan.replicas] == [2, 2, 2]
    assert plan.hourly_cost == pytest.approx(2 * 0.5 * 2 + 2 * 1.0)


def test_a_policy_narrows_the_offers(tmp_path: Path) -> None:
    (tmp_path / "p.policy").write_text(
        'deny "no spot in us-east-1" region == "us-east-1" and spot\n'
    )
    policy = skyplan.load_policy([tmp_path / "p.policy"])
    plan = place_replicas(service(), make_catalog(*WORLD), replicas=2, policy=policy)
    assert [where(o) for o in plan.replicas] == [
        "spot aws/us-west-2/us-west-2a",
        "spot gcp/us-central1/us-central1-a",
    ]


def test_any_of_alternatives_stay_alternatives() -> None:
    """Both kinds are searched over every `any_of` entry, not only the first."""
    t4 = gpu_offer(
        "T4", 1, instance_type="g4dn.xlarge", zone="us-east-1d", price=0.5, spot_price=0.1
    )
    task = skyplan.Task.model_validate(
        {"resources": {"any_of": [{"accelerators": "A10G:1"}, {"accelerators": "T4:1"}]}}
    )
    plan = place_replicas(task, make_catalog(*WORLD, t4), replicas=2)
    assert [where(o) for o in plan.replicas] == [
        "spot aws/us-east-1/us-east-1d",
        "spot aws/us-east-1/us-east-1a",
    ]


# -- infeasible requests -------------------------------------------------------------------------


@dataclass(frozen=True)
class Infeasible:
    rows: tuple[dict[str, Any], ...]
    task: skyplan.Task
    kwargs: dict[str, Any]
    reason: str


def infeasible(
    case_id: str,
    reason: str,
    *,
    rows: tuple[dict[str, Any], ...] = WORLD,
    task: skyplan.Task | None = None,
    **kwargs: Any,
) -> Any:
    return pytest.param(Infeasible(rows, task or service(), kwargs, reason), id=case_id)


SPOT_ONLY = tuple(row | {schema.PRICE: None} for row in WORLD)
ON_DEMAND_ONLY = tuple(row | {schema.SPOT_PRICE: None} for row in WORLD)

INFEASIBLE = [
    infeasible(
        "more-spot-replicas-than-spot-zones",
        "only 5 spot zones but 6 spot replicas need distinct zones; raise max_spot_per_domain",
        task=service(use_spot=True),
        replicas=6,
    ),
    infeasible(
        "more-spot-replicas-than-spot-regions",
        "only 3 spot regions but 4 spot replicas need distinct regions",
        task=service(use_spot=True),
        replicas=4,
        spot_domain="region",
    ),
    infeasible(
        "more-spot-replicas-than-two-per-zone-hold",
        "the 2 spot zones hold at most 4 spot replicas (2 per zone, pool capacity) but 5 must "
        "run on spot",
        rows=(EAST_A, EAST_B),
        task=service(use_spot=True),
        replicas=5,
        max_spot_per_domain=2,
    ),
    infeasible(
        "a-base-without-on-demand-offers",
        "1 replica must run on demand (base_on_demand) but no on-demand offer fits the task",
        rows=SPOT_ONLY,
        replicas=3,
        base_on_demand=1,
    ),
    infeasible(
        "a-base-beyond-the-on-demand-capacity",
        "2 replicas must run on demand (base_on_demand) but the on-demand offers hold only 1 "
        "(pool capacity); lower base_on_demand",
        rows=(*SPOT_ONLY, LAB | {schema.CAPACITY: 1}),
        replicas=3,
        base_on_demand=2,
    ),
    infeasible(
        "an-on-demand-pinned-service-beyond-the-on-demand-capacity",
        "3 replicas must run on demand (use_spot: false) but the on-demand offers hold only 2 "
        "(pool capacity); unset use_spot",
        rows=(*SPOT_ONLY, LAB),
        task=service(use_spot=False),
        replicas=3,
    ),
    infeasible(
        "a-spot-pinned-service-without-spot-offers",
        "2 replicas must run on spot (use_spot: true) but no spot offer fits the task",
        rows=ON_DEMAND_ONLY,
        task=service(use_spot=True, min_replicas=3, base_ondemand_fallback_replicas=1),
    ),
    infeasible(
        "more-replicas-than-pools-and-spot-zones-hold",
        "at most 2 of the 3 replicas fit: 1 on demand (pool capacity) and 1 on spot (1 zone, "
        "at most 1 per zone)",
        rows=(EAST_A | {schema.PRICE: None}, LAB | {schema.CAPACITY: 1}),
        replicas=3,
    ),
    infeasible(
        "more-regions-than-the-offers-span",
        "min_regions=4 but the offers that fit span only 3 regions "
        "(aws/us-east-1, aws/us-west-2, gcp/us-central1)",
        replicas=4,
        min_regions=4,
    ),
    infeasible(
        "more-regions-than-replicas",
        "min_regions=3 needs at least 3 replicas, but 2 are placed",
        replicas=2,
        min_regions=3,
    ),
    infeasible(
        "more-clouds-than-the-offers-span",
        "min_clouds=3 but the offers that fit span only 2 clouds (aws, gcp)",
        replicas=3,
        min_clouds=3,
    ),
    infeasible(
        "requirements-that-conflict-only-together",
        "3 replicas cannot be placed under these requirements together: at most 1 spot "
        "replica(s) per zone; pool capacity",
        rows=(EAST_A | {schema.PRICE: None}, LAB | {schema.SPOT_PRICE: 0.2, schema.CAPACITY: 1}),
        replicas=3,
        base_on_demand=1,
    ),
    infeasible(
        "a-task-no-offer-fits",
        "no offer in the catalog meets every requirement",
        task=service().model_copy(update={"resources": skyplan.Resources(accelerators="H100:1")}),
    ),
]


@pytest.mark.parametrize("spec", INFEASIBLE)
def test_infeasible_requests_say_why(spec: Infeasible) -> None:
    with pytest.raises(skyplan.NoFeasiblePlacement) as caught:
        place_replicas(spec.task, make_catalog(*spec.rows), **spec.kwargs)
    assert spec.reason in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"replicas": 0}, "replicas must be at least 1", id="no-replicas"),
        pytest.param({"min_regions": 0}, "min_regions must be at least 1", id="no-regions"),
        pytest.param({"min_clouds": 0}, "min_clouds must be at least 1", id="no-clouds"),
        pytest.param(
            {"max_spot_per_domain": 0}, "max_spot_per_domain must be at least 1", id="no-spot"
        ),
        pytest.param({"base_on_demand": -1}, "base_on_demand must be between", id="negative-base"),
        pytest.param(
            {"replicas": 2, "base_on_demand": 3}, "base_on_demand must be between", id="big-base"
        ),
        pytest.param({"spot_domain": "cloud"}, "spot_domain must be", id="unknown-domain"),
        pytest.param({"time_limit_s": 0}, "time_limit_s must be positive", id="no-time"),
    ],
)
def test_arguments_out_of_range_are_value_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        place_replicas(service(), make_catalog(*WORLD), **kwargs)


# -- purity and determinism ----------------------------------------------------------------------


def _same(plan: ReplicaPlan) -> ReplicaPlan:
    return plan.model_copy(update={"wall_s": 0.0})


def test_inputs_are_untouched_and_equal_inputs_give_equal_plans() -> None:
    task = service(min_replicas=4, base_ondemand_fallback_replicas=1)
    catalog = make_catalog(*WORLD, LAB)
    frame, before = catalog.frame.clone(), task.model_copy(deep=True)
    first = place_replicas(task, catalog, min_regions=2)
    second = place_replicas(task, catalog, min_regions=2)
    assert _same(first) == _same(second)
    assert catalog.frame.equals(frame)
    assert task == before


def test_importing_the_module_does_not_load_ortools() -> None:
    code = "import sys, skyplan.solver.spread; print('ortools' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- properties: the brute force -----------------------------------------------------------------

CLOUDS = ("aws", "gcp")
REGIONS = ("r1", "r2")
ZONES = (None, "z1", "z2")


def cents() -> st.SearchStrategy[float]:
    return st.integers(min_value=1, max_value=300).map(lambda n: n / 100)


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for index in range(draw(st.integers(min_value=1, max_value=6))):
        price = draw(st.one_of(st.none(), cents()))
        spot = draw(cents()) if price is None else draw(st.one_of(st.none(), cents()))
        region = draw(st.sampled_from(REGIONS))
        zone = draw(st.sampled_from(ZONES))
        out.append(
            a10g(
                draw(st.sampled_from(CLOUDS)),
                region,
                None if zone is None else f"{region}-{zone}",
                price,
                spot,
                instance_type=f"t{index}",  # every row its own pool and its own tie-break
                capacity=draw(st.one_of(st.none(), st.integers(min_value=1, max_value=4))),
            )
        )
    return out


@dataclass(frozen=True)
class Instance:
    rows: list[dict[str, Any]]
    use_spot: bool | None
    num_nodes: int
    replicas: int
    base: int | None
    min_regions: int
    min_clouds: int
    spot_domain: SpotDomain
    per_domain: int

    def task(self) -> skyplan.Task:
        return service(self.use_spot).model_copy(update={"num_nodes": self.num_nodes})

    def plan(self, rows: list[dict[str, Any]] | None = None) -> ReplicaPlan:
        return place_replicas(
            self.task(),
            make_catalog(*(self.rows if rows is None else rows)),
            replicas=self.replicas,
            base_on_demand=self.base,
            min_regions=self.min_regions,
            min_clouds=self.min_clouds,
            spot_domain=self.spot_domain,
            max_spot_per_domain=self.per_domain,
        )


@st.composite
def instances(draw: st.DrawFn) -> Instance:
    replicas = draw(st.integers(min_value=1, max_value=5))
    return Instance(
        rows=draw(rows()),
        use_spot=draw(st.sampled_from((None, None, True, False))),
        num_nodes=draw(st.integers(min_value=1, max_value=2)),
        replicas=replicas,
        base=draw(st.one_of(st.none(), st.integers(min_value=0, max_value=replicas))),
        min_regions=draw(st.integers(min_value=1, max_value=3)),
        min_clouds=draw(st.integers(min_value=1, max_value=2)),
        spot_domain=draw(st.sampled_from(("zone", "region"))),
        per_domain=draw(st.integers(min_value=1, max_value=2)),
    )


@dataclass(frozen=True)
class Choice:
    """One replica's place in the reference: a catalog row and a kind."""

    row: int
    spot: bool
    micros: int  # $/h for all nodes, in micro-dollars (exact for cent prices)
    key: tuple[Any, ...]  # the documented tie-break order


def choices(inst: Instance) -> list[Choice]:
    out = []
    for index, row in enumerate(inst.rows):
        capacity = row[schema.CAPACITY]
        if capacity is not None and capacity < inst.num_nodes:
            continue
        for spot in (False, True):
            price = row[schema.SPOT_PRICE if spot else schema.PRICE]
            if price is None:
                continue
            micros = round(price * inst.num_nodes * 1_000_000)
            zone = row[schema.ZONE]
            key = (
                micros,
                row[schema.CLOUD],
                row[schema.REGION],
                zone is None,
                zone or "",
                row[schema.INSTANCE_TYPE],
                spot,
            )
            out.append(Choice(index, spot, micros, key))
    return out


def violations(inst: Instance, picked: list[Choice]) -> list[str]:
    """Every constraint the multiset `picked` breaks, re-stated from the docstring."""
    base = inst.base if inst.base is not None else 0
    od_min, od_max = {
        None: (base, inst.replicas),
        True: (base, base),
        False: (inst.replicas, inst.replicas),
    }[inst.use_spot]
    out = []
    if len(picked) != inst.replicas:
        out.append("count")
    on_demand = sum(not p.spot for p in picked)
    if not od_min <= on_demand <= od_max:
        out.append("on-demand mix")
    domains: dict[tuple[Any, ...], int] = {}
    for p in picked:
        if p.spot:
            row = inst.rows[p.row]
            domain: tuple[Any, ...] = (row[schema.CLOUD], row[schema.REGION])
            if inst.spot_domain == "zone":
                domain += (row[schema.ZONE],)
            domains[domain] = domains.get(domain, 0) + 1
    if any(n > inst.per_domain for n in domains.values()):
        out.append("spread")
    for index, row in enumerate(inst.rows):
        used = sum(p.row == index for p in picked) * inst.num_nodes
        if row[schema.CAPACITY] is not None and used > row[schema.CAPACITY]:
            out.append("capacity")
    rows_used = [inst.rows[p.row] for p in picked]
    if len({(r[schema.CLOUD], r[schema.REGION]) for r in rows_used}) < inst.min_regions:
        out.append("regions")
    if len({r[schema.CLOUD] for r in rows_used}) < inst.min_clouds:
        out.append("clouds")
    return out


def brute_force(inst: Instance) -> list[Choice] | None:
    """The cheapest valid multiset; among equals the least sorted list of tie-break keys."""
    options = choices(inst)
    best: tuple[int, list[tuple[Any, ...]]] | None = None
    found = None
    for combo in itertools.combinations_with_replacement(range(len(options)), inst.replicas):
        picked = [options[i] for i in combo]
        if violations(inst, picked):
            continue
        rank = (sum(p.micros for p in picked), sorted(p.key for p in picked))
        if best is None or rank < best:
            best, found = rank, picked
    return found


def picked_of(inst: Instance, plan: ReplicaPlan) -> list[Choice]:
    by_place = {(inst.rows[c.row][schema.INSTANCE_TYPE], c.spot): c for c in choices(inst)}
    return [by_place[o.instance_type, o.spot] for o in plan.replicas]


@settings(max_examples=200, deadline=None)
@given(inst=instances())
def test_cp_sat_agrees_with_the_brute_force(inst: Instance) -> None:
    expected = brute_force(inst)
    try:
        plan = inst.plan()
    except skyplan.NoFeasiblePlacement:
        assert expected is None, "a feasible request was refused"
        return
    assert expected is not None, "an infeasible request was placed"
    picked = picked_of(inst, plan)
    # every returned plan meets every constraint ...
    assert violations(inst, picked) == []
    assert plan.status == "OPTIMAL"
    # ... costs what the cheapest valid assignment costs ...
    assert plan.hourly_cost == pytest.approx(sum(p.micros for p in expected) / 1e6, abs=1e-6)
    # ... and breaks ties as documented
    assert sorted(p.key for p in picked) == sorted(p.key for p in expected)
    # the summary matches the replicas
    assert plan.on_demand + plan.spot == inst.replicas == len(plan.replicas)
    assert plan.regions == tuple(sorted({f"{o.cloud}/{o.region}" for o in plan.replicas}))
    assert plan.clouds == tuple(sorted({o.cloud for o in plan.replicas}))


@settings(max_examples=60, deadline=None)
@given(inst=instances())
def test_the_plan_ignores_row_order(inst: Instance) -> None:
    def outcome(rows: list[dict[str, Any]]) -> object:
        try:
            return _same(inst.plan(rows))
        except skyplan.NoFeasiblePlacement as exc:
            return exc.summary

    assert outcome(inst.rows) == outcome(inst.rows[::-1])
