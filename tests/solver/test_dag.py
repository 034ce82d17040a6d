"""`plan_pipeline`: a pipeline's tasks placed jointly, egress between stages included.

The specification, as tables of tiny catalogs: where egress changes the answer (chains, a
diamond, a long runtime, the time objective), what the egress model charges per link, and what
the plan reports. Then properties over random small DAGs, checked against a brute force over
every combination of offers written out here from the definition:

    cost = Σ $/h × runtime + Σ over edges i→j of (i's outputs GB) × $/GB of the link
    time = latest finish, a task starting when every input has arrived (transfer = GB·8/Gbit/s)

Costs agree to 1e-6 $; times are compared in whole milliseconds, as the solver compares them.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import skyplan
from skyplan.catalog import schema
from skyplan.errors import InputError, NoFeasiblePlacement
from skyplan.model import policy as m
from skyplan.solver import dag_search
from skyplan.solver.dag import (
    EgressModel,
    PipelinePlan,
    pipeline_candidates,
    plan_pipeline,
)
from tests.conftest import REPO
from tests.solver.factories import gpu_offer, make_catalog, make_offer, make_task


def gpu(acc: str, cloud: str, region: str, price: float, **kw: Any) -> dict[str, Any]:
    return gpu_offer(
        acc,
        1,
        cloud=cloud,
        region=region,
        instance_type=f"{acc}-{cloud}-{region}",
        price=price,
        **kw,
    )


def pipeline(*tasks: tuple[str, str, float | None]) -> skyplan.Dag:
    """A pipeline file: (name, accelerator, outputs GB or None) per task, in order."""
    docs = ["name: pipe\n"]
    for name, acc, gb in tasks:
        outputs = f"outputs:\n  s3://bucket/{name}: {gb}\n" if gb is not None else ""
        docs.append(f"name: {name}\nresources:\n  accelerators: {acc}:1\n{outputs}")
    return make_task("---\n".join(docs))


def where(plan: PipelinePlan) -> tuple[str, ...]:
    return tuple(f"{s.offer.cloud}/{s.offer.region}" for s in plan.steps)


# -- the egress model ----------------------------------------------------------------------------


def at(place: str) -> tuple[str, str]:
    cloud, region = place.split("/")
    return cloud, region


# source, target, link kind, $/GB, Gbit/s
LINKS = [
    ("aws/us-east-1", "aws/us-east-1", "same-region", 0.0, 10.0, "same-region-is-free"),
    ("aws/us-east-1", "aws/eu-west-1", "inter-region", 0.02, 5.0, "aws-inter-region"),
    ("gcp/us-central1", "gcp/us-east1", "inter-region", 0.02, 5.0, "gcp-inter-region"),
    ("azure/eastus", "azure/westus", "inter-region", 0.02, 5.0, "azure-inter-region"),
    ("aws/us-east-1", "gcp/us-central1", "inter-cloud", 0.09, 1.0, "aws-internet"),
    ("gcp/us-central1", "aws/us-east-1", "inter-cloud", 0.12, 1.0, "gcp-internet-source-pays"),
    ("azure/eastus", "aws/us-east-1", "inter-cloud", 0.087, 1.0, "azure-internet"),
    ("lambda/us-tx-1", "aws/us-east-1", "inter-cloud", 0.09, 1.0, "other-cloud-default"),
    ("lambda/us-tx-1", "lambda/us-west-1", "inter-region", 0.02, 5.0, "other-cloud-regions"),
]


@pytest.mark.parametrize(
    ("source", "target", "kind", "usd_per_gb", "gbps"),
    [pytest.param(*row[:5], id=row[5]) for row in LINKS],
)
def test_the_default_egress_model_prices_each_link(
    source: str, target: str, kind: str, usd_per_gb: float, gbps: float
) -> None:
    link = EgressModel().link(at(source), at(target))
    assert (link.kind, link.usd_per_gb, link.gbps) == (kind, usd_per_gb, gbps)


def test_a_link_moves_gigabytes_at_its_bandwidth() -> None:
    link = EgressModel().link(("aws", "us-east-1"), ("gcp", "us-central1"))
    assert link.hours(450) == pytest.approx(1.0)  # 450 GB · 8 / 1 Gbit/s = 3,600 s


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"internet_usd_per_gb": {"aws": -0.01}}, id="negative-price"),
        pytest.param({"default_inter_region_usd_per_gb": math.nan}, id="nan-price"),
        pytest.param({"inter_cloud_gbps": 0.0}, id="zero-bandwidth"),
    ],
)
def test_the_egress_model_rejects_impossible_numbers(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        EgressModel(**kwargs)


# -- where egress changes the answer -------------------------------------------------------------

T4_AWS = gpu("T4", "aws", "us-east-1", 0.50)
A100_AWS = gpu("A100", "aws", "us-east-1", 3.50)
A100_GCP = gpu("A100", "gcp", "us-central1", 3.00)


@dataclass(frozen=True)
class Case:
    rows: tuple[dict[str, Any], ...]
    dag: skyplan.Dag
    where: tuple[str, ...]
    total: float
    edges: tuple[tuple[int, int], ...] | None = None
    runtime: dict[str, float] = field(default_factory=dict)


def case(case_id: str, **kw: Any) -> Any:
    return pytest.param(Case(**kw), id=case_id)


DIAMOND_ROWS = (
    T4_AWS,
    gpu("L4", "aws", "us-east-1", 1.20),
    gpu("L4", "gcp", "us-central1", 0.50),
    gpu("V100", "aws", "us-east-1", 2.00),
    gpu("V100", "azure", "eastus", 1.00),
    gpu("A100", "aws", "us-east-1", 2.50),
    gpu("A100", "gcp", "us-central1", 2.00),
)
DIAMOND = pipeline(
    ("src", "T4", 300), ("left", "L4", 1), ("right", "V100", 1), ("sink", "A100", None)
)
DIAMOND_EDGES = [(0, 1), (0, 2), (1, 3), (2, 3)]

CASES = [
    case(
        "big-outputs-keep-the-consumer-on-the-producers-cloud",
        # moving train to gcp saves $0.50/h but sends 1,000 GB out of AWS ($90)
        rows=(T4_AWS, A100_AWS, A100_GCP),
        dag=pipeline(("prep", "T4", 1000), ("train", "A100", None)),
        where=("aws/us-east-1", "aws/us-east-1"),
        total=0.50 + 3.50,
    ),
    case(
        "small-outputs-let-the-consumer-take-the-cheaper-cloud",
        rows=(T4_AWS, A100_AWS, A100_GCP),
        dag=pipeline(("prep", "T4", 1), ("train", "A100", None)),
        where=("aws/us-east-1", "gcp/us-central1"),
        total=0.50 + 3.00 + 1 * 0.09,
    ),
    case(
        "no-outputs-no-egress-each-task-takes-its-cheapest",
        rows=(T4_AWS, A100_AWS, A100_GCP),
        dag=pipeline(("prep", "T4", None), ("train", "A100", None)),
        where=("aws/us-east-1", "gcp/us-central1"),
        total=0.50 + 3.00,
    ),
    case(
        "another-region-of-the-same-cloud-beats-another-cloud",
        rows=(
            T4_AWS,
            A100_AWS,
            gpu("A100", "aws", "us-west-2", 3.00),
            gpu("A100", "gcp", "us-central1", 2.90),
        ),
        dag=pipeline(("prep", "T4", 10), ("train", "A100", None)),
        where=("aws/us-east-1", "aws/us-west-2"),
        total=0.50 + 3.00 + 10 * 0.02,
    ),
    case(
        "the-producer-moves-to-where-its-consumer-must-run",
        rows=(
            gpu("T4", "aws", "us-east-1", 0.40),
            gpu("T4", "gcp", "us-central1", 0.60),
            gpu("A100", "gcp", "us-central1", 2.00),
        ),
        dag=pipeline(("prep", "T4", 100), ("train", "A100", None)),
        where=("gcp/us-central1", "gcp/us-central1"),
        total=0.60 + 2.00,
    ),
    case(
        "the-middle-of-a-chain-stays-with-its-data",
        # L4 is $0.30/h cheaper on GCP, but 200 GB would cross clouds twice ($18 + $24)
        rows=(
            T4_AWS,
            gpu("L4", "aws", "us-east-1", 1.00),
            gpu("L4", "gcp", "us-central1", 0.70),
            gpu("A100", "aws", "us-east-1", 3.00),
        ),
        dag=pipeline(("prep", "T4", 200), ("tune", "L4", 200), ("eval", "A100", None)),
        where=("aws/us-east-1", "aws/us-east-1", "aws/us-east-1"),
        total=0.50 + 1.00 + 3.00,
    ),
    case(
        "diamond-the-branches-follow-the-source-the-sink-takes-the-cheap-cloud",
        # the branches save $0.70 and $1.00 off AWS but would pull 300 GB each out of it
        rows=DIAMOND_ROWS,
        dag=DIAMOND,
        edges=tuple(DIAMOND_EDGES),
        where=("aws/us-east-1", "aws/us-east-1", "aws/us-east-1", "gcp/us-central1"),
        total=0.50 + 1.20 + 2.00 + 2.00 + 2 * 1 * 0.09,
    ),
    case(
        "a-long-run-makes-compute-outweigh-egress",
        rows=(T4_AWS, A100_AWS, A100_GCP),
        dag=pipeline(("prep", "T4", 1000), ("train", "A100", None)),
        runtime={"train": 200.0},
        where=("aws/us-east-1", "gcp/us-central1"),
        total=0.50 + 3.00 * 200 + 1000 * 0.09,
    ),
    case(
        "edges-given-explicitly-replace-the-chain",
        # prep feeds nobody: train is free to take the cheaper cloud
        rows=(T4_AWS, A100_AWS, A100_GCP),
        dag=pipeline(("prep", "T4", 1000), ("train", "A100", None)),
        edges=(),
        where=("aws/us-east-1", "gcp/us-central1"),
        total=0.50 + 3.00,
    ),
]


@pytest.mark.parametrize("solver", ["auto", "cp-sat"])
@pytest.mark.parametrize("spec", CASES)
def test_egress_shapes_the_cost_optimal_plan(spec: Case, solver: Any) -> None:
    plan = plan_pipeline(
        spec.dag,
        make_catalog(*spec.rows),
        edges=spec.edges,
        runtime_hours=spec.runtime,
        solver=solver,
    )
    assert where(plan) == spec.where
    assert plan.total_cost == pytest.approx(spec.total, abs=1e-9)
    assert plan.status == "OPTIMAL"
    assert plan.gap == 0.0


@pytest.mark.parametrize(
    ("edges", "solver"),
    [
        pytest.param(None, "dp", id="chain-by-dynamic-programming"),
        pytest.param(((0, 1), (0, 2)), "dp", id="fan-out-tree-by-dynamic-programming"),
        pytest.param(((0, 2), (1, 2)), "dp", id="fan-in-tree-by-dynamic-programming"),
        pytest.param(((0, 1), (1, 2), (0, 2)), "cp-sat", id="undirected-cycle-by-cp-sat"),
    ],
)
def test_the_solver_is_the_dp_wherever_it_is_exact(
    edges: tuple[tuple[int, int], ...] | None, solver: str
) -> None:
    rows = (T4_AWS, gpu("L4", "aws", "us-east-1", 1.0), A100_AWS)
    dag = pipeline(("a", "T4", 5), ("b", "L4", 5), ("c", "A100", None))
    assert plan_pipeline(dag, make_catalog(*rows), edges=edges).solver == solver


# -- the time objective ---------------------------------------------------------------------------

FAR_CHEAP = (
    T4_AWS,
    gpu("A100", "gcp", "us-central1", 1.00),
    gpu("A100", "aws", "us-east-1", 100.0),
)


def test_time_prefers_the_fast_link_where_cost_takes_the_cheap_one() -> None:
    # 900 GB: 0.2 h within a region (10 Gbit/s), 2 h to another cloud (1 Gbit/s)
    dag = pipeline(("prep", "T4", 900), ("train", "A100", None))
    catalog = make_catalog(*FAR_CHEAP)
    cheap = plan_pipeline(dag, catalog, objective="cost")
    fast = plan_pipeline(dag, catalog, objective="time")
    assert where(cheap) == ("aws/us-east-1", "gcp/us-central1")
    assert cheap.total_cost == pytest.approx(0.50 + 1.00 + 900 * 0.09)
    assert cheap.makespan_hours == pytest.approx(1 + 2 + 1)
    assert where(fast) == ("aws/us-east-1", "aws/us-east-1")
    assert fast.makespan_hours == pytest.approx(1 + 0.2 + 1)
    assert fast.total_cost == pytest.approx(0.50 + 100.0)


def test_time_ties_are_broken_by_cost() -> None:
    rows = (
        gpu("T4", "aws", "us-east-1", 0.50),
        gpu("T4", "aws", "us-west-2", 0.60),
        gpu("A100", "aws", "us-east-1", 3.00),
        gpu("A100", "aws", "us-west-2", 2.50),
    )
    dag = pipeline(("prep", "T4", 100), ("train", "A100", None))
    plan = plan_pipeline(dag, make_catalog(*rows), objective="time")
    assert where(plan) == ("aws/us-west-2", "aws/us-west-2")
    assert plan.total_cost == pytest.approx(0.60 + 2.50)


def test_a_task_starts_when_its_last_input_arrives() -> None:
    rows = (
        T4_AWS,
        gpu("L4", "aws", "us-east-1", 1.0),
        gpu("V100", "gcp", "us-central1", 1.0),
        gpu("A100", "aws", "us-east-1", 3.0),
    )
    dag = pipeline(("src", "T4", 450), ("a", "L4", 450), ("b", "V100", 450), ("sink", "A100", None))
    plan = plan_pipeline(
        dag,
        make_catalog(*rows),
        edges=[(0, 1), (0, 2), (1, 3), (2, 3)],
        runtime_hours={"src": 1.0, "a": 2.0, "b": 0.5, "sink": 1.0},
    )
    start = {s.task: s.start_hours for s in plan.steps}
    # a: 1 + 0.1 (same region) → finishes 3.1, then 0.1 to sink; b: 1 + 1 (to gcp) + 0.5 = 2.5,
    # then 1 h back to aws: the sink waits for b's data until 3.5
    assert start == pytest.approx({"src": 0.0, "a": 1.1, "b": 2.0, "sink": 3.5})
    assert plan.makespan_hours == pytest.approx(4.5)


# -- what the plan reports ------------------------------------------------------------------------


def test_the_plan_adds_up() -> None:
    dag = pipeline(("prep", "T4", 1), ("train", "A100", None))
    plan = plan_pipeline(dag, make_catalog(T4_AWS, A100_AWS, A100_GCP), runtime_hours={"prep": 2.0})
    prep, train = plan.steps
    assert (prep.task, prep.index, prep.runtime_hours, train.runtime_hours) == ("prep", 0, 2.0, 1.0)
    assert prep.cost == pytest.approx(prep.offer.hourly_cost * 2.0)
    (edge,) = plan.transfers
    assert (edge.source, edge.target, edge.gb, edge.kind) == (0, 1, 1.0, "inter-cloud")
    assert edge.cost == pytest.approx(0.09)
    assert edge.hours == pytest.approx(8 / 1 / 3600)
    assert plan.compute_cost == pytest.approx(prep.cost + train.cost)
    assert plan.egress_cost == pytest.approx(edge.cost)
    assert plan.total_cost == pytest.approx(plan.compute_cost + plan.egress_cost)
    assert plan.makespan_hours == pytest.approx(2.0 + edge.hours + 1.0)
    assert (plan.candidates, plan.feasible) == ((1, 2), (1, 2))
    assert plan.offers == (prep.offer, train.offer)
    assert plan.wall_seconds > 0


def test_the_json_shape() -> None:
    dag = pipeline(("prep", "T4", 1), ("train", "A100", None))
    out = plan_pipeline(dag, make_catalog(T4_AWS, A100_AWS, A100_GCP)).to_json()
    assert set(out) == {
        "objective",
        "tasks",
        "edges",
        "compute_cost",
        "egress_cost",
        "total_cost",
        "makespan_hours",
        "solver",
        "status",
        "gap",
    }
    assert [t["task"] for t in out["tasks"]] == ["prep", "train"]
    assert out["edges"] == [
        {
            "from": 0,
            "to": 1,
            "gb": 1.0,
            "link": "inter-cloud",
            "usd_per_gb": 0.09,
            "cost": 0.09,
            "hours": round(8 / 3600, 6),
        }
    ]


def test_policy_rules_apply_to_every_task() -> None:
    no_gcp = m.Rule(
        name="no gcp",
        effect="deny",
        condition=m.Compare(op="==", left=m.FieldRef(name="cloud"), right=m.Literal_(value="gcp")),
    )
    dag = pipeline(("prep", "T4", None), ("train", "A100", None))
    catalog = make_catalog(T4_AWS, A100_AWS, A100_GCP)
    plan = plan_pipeline(dag, catalog, policy=m.Policy(rules=(no_gcp,)))
    assert where(plan) == ("aws/us-east-1", "aws/us-east-1")


# -- candidates -----------------------------------------------------------------------------------

MANY_REGIONS = (
    *(
        gpu("A100", "aws", f"region-{r}", 3.0 + r / 100, zone=f"region-{r}{z}")
        for r in range(6)
        for z in "ab"
    ),
    T4_AWS,
)


def test_pruning_keeps_the_cheapest_and_the_cheapest_of_every_region() -> None:
    dag = pipeline(("prep", "T4", None), ("train", "A100", None))
    _, kept = pipeline_candidates(dag, make_catalog(*MANY_REGIONS), candidates_per_task=3)
    # the 3 cheapest (two zones of region-0, then region-1) + the first of regions 2..5
    assert [(o.region, o.zone) for o in kept] == [
        ("region-0", "region-0a"),
        ("region-0", "region-0b"),
        ("region-1", "region-1a"),
        ("region-2", "region-2a"),
        ("region-3", "region-3a"),
        ("region-4", "region-4a"),
        ("region-5", "region-5a"),
    ]


@pytest.mark.parametrize("limit", [0, 1, 3, 1000])
def test_pruning_never_changes_the_optimum(limit: int) -> None:
    rows = (
        *MANY_REGIONS,
        gpu("T4", "aws", "region-5", 0.55),
        gpu("T4", "gcp", "us-central1", 0.10),
    )
    dag = pipeline(("prep", "T4", 50), ("train", "A100", None))
    plan = plan_pipeline(dag, make_catalog(*rows), candidates_per_task=limit)
    reference = plan_pipeline(dag, make_catalog(*rows), candidates_per_task=10_000)
    assert plan.total_cost == pytest.approx(reference.total_cost)
    assert plan.feasible == (3, 12)


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml", "label"),
    [
        pytest.param(
            "name: a\nresources: {accelerators: T4:1}\n---\nname: b\n"
            "resources: {accelerators: H100:8}\n",
            "b",
            id="named",
        ),
        pytest.param(
            "resources: {accelerators: T4:1}\n---\nresources: {accelerators: T4:8}\n",
            "#1",
            id="unnamed-by-index",
        ),
    ],
)
def test_a_task_nothing_fits_raises_naming_it(yaml: str, label: str) -> None:
    catalog = make_catalog(T4_AWS, A100_AWS)
    with pytest.raises(NoFeasiblePlacement) as err:
        plan_pipeline(make_task(yaml), catalog)
    assert err.value.task == label
    assert repr(label) in str(err.value)
    assert err.value.reasons  # why, as the single-task planner says it


TWO = pipeline(("prep", "T4", 1), ("train", "A100", None))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"edges": [(0, 2)]}, "numbered 0..1", id="edge-out-of-range"),
        pytest.param({"edges": [(1, 1)]}, "cannot feed itself", id="self-loop"),
        pytest.param({"edges": [(0, 1), (0, 1)]}, "twice", id="duplicate-edge"),
        pytest.param({"edges": [(0, 1), (1, 0)]}, "cycle", id="cycle"),
        pytest.param({"runtime_hours": {"trian": 2.0}}, "did you mean 'train'", id="typo"),
        pytest.param({"runtime_hours": {"train": -1.0}}, "non-negative", id="negative-runtime"),
        pytest.param({"objective": "speed"}, "objective", id="bad-objective"),
        pytest.param({"solver": "cplex"}, "solver", id="bad-solver"),
        pytest.param({"candidates_per_task": -1}, "candidates_per_task", id="bad-limit"),
        pytest.param(
            {"edges": [], "objective": "time", "solver": "dp"},
            "use 'cp-sat'",
            id="dp-for-time-needs-one-chain",
        ),
    ],
)
def test_bad_options_are_input_errors(kwargs: dict[str, Any], message: str) -> None:
    catalog = make_catalog(T4_AWS, A100_AWS)
    with pytest.raises(InputError, match=message):
        plan_pipeline(TWO, catalog, **kwargs)


def test_the_dp_is_refused_where_it_would_not_be_exact() -> None:
    dag = pipeline(("a", "T4", 1), ("b", "A100", 1), ("c", "T4", None))
    with pytest.raises(InputError, match="use 'cp-sat'"):
        plan_pipeline(
            dag, make_catalog(T4_AWS, A100_AWS), edges=[(0, 1), (1, 2), (0, 2)], solver="dp"
        )


# -- determinism and purity -----------------------------------------------------------------------


@pytest.mark.parametrize("objective", ["cost", "time"])
@pytest.mark.parametrize("edges", [None, DIAMOND_EDGES], ids=["chain", "diamond"])
def test_equal_inputs_give_equal_plans_whatever_the_row_order(
    objective: Any, edges: list[tuple[int, int]] | None
) -> None:
    ties = (*DIAMOND_ROWS, gpu("A100", "gcp", "us-east1", 2.00), gpu("L4", "gcp", "us-east1", 0.5))
    first = plan_pipeline(DIAMOND, make_catalog(*ties), edges=edges, objective=objective)
    again = plan_pipeline(DIAMOND, make_catalog(*ties), edges=edges, objective=objective)
    reversed_rows = plan_pipeline(
        DIAMOND, make_catalog(*reversed(ties)), edges=edges, objective=objective
    )
    assert first == again == reversed_rows


def test_inputs_are_untouched() -> None:
    catalog = make_catalog(*DIAMOND_ROWS)
    frame = catalog.frame.clone()
    dag_before = DIAMOND.model_dump()
    edges = list(DIAMOND_EDGES)
    runtimes = {"src": 2.0}
    egress = EgressModel()
    egress_before = EgressModel()
    plan_pipeline(DIAMOND, catalog, edges=edges, runtime_hours=runtimes, egress=egress)
    assert catalog.frame.equals(frame)
    assert DIAMOND.model_dump() == dag_before
    assert edges == DIAMOND_EDGES
    assert runtimes == {"src": 2.0}
    assert egress == egress_before


def test_ortools_is_imported_only_when_cp_sat_runs() -> None:
    code = "import sys, skyplan.solver.dag; print('ortools' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "False"


# -- properties against a brute force -------------------------------------------------------------

ACCELERATORS = ("T4", "L4", "A100", "V100", "H100")
REGIONS = {
    "aws": ("us-east-1", "eu-west-1"),
    "gcp": ("us-central1", "europe-west4"),
    "azure": ("eastus",),
}
LOCATIONS = [(cloud, region) for cloud, regions in REGIONS.items() for region in regions]
MODELS = (
    EgressModel(),
    # bandwidths out of the usual order, and a free internet: no shortcut may assume otherwise
    EgressModel(
        internet_usd_per_gb={"aws": 0.0, "gcp": 0.05},
        inter_region_usd_per_gb={"aws": 0.11},
        same_region_gbps=2.0,
        inter_region_gbps=10.0,
        inter_cloud_gbps=5.0,
    ),
)


@dataclass(frozen=True)
class Instance:
    rows: tuple[tuple[dict[str, Any], ...], ...]  # per task: the offers it may take
    outputs: tuple[int | None, ...]
    runtimes: tuple[float, ...]
    edges: tuple[tuple[int, int], ...]
    egress: EgressModel

    def dag(self) -> skyplan.Dag:
        return pipeline(*((f"t{i}", ACCELERATORS[i], gb) for i, gb in enumerate(self.outputs)))

    def catalog(self) -> skyplan.Catalog:
        return make_catalog(*(row for rows in self.rows for row in rows))


@st.composite
def instances(draw: st.DrawFn) -> Instance:
    n = draw(st.integers(2, 5))
    rows = []
    for t in range(n):
        k = draw(st.integers(2, 5))
        places = draw(st.lists(st.sampled_from(LOCATIONS), min_size=k, max_size=k))
        prices = draw(st.lists(st.integers(1, 400), min_size=k, max_size=k))  # cents per hour
        rows.append(
            tuple(
                gpu_offer(
                    ACCELERATORS[t],
                    1,
                    cloud=cloud,
                    region=region,
                    instance_type=f"{ACCELERATORS[t]}-{j}",
                    price=cents / 100,
                )
                for j, ((cloud, region), cents) in enumerate(zip(places, prices, strict=True))
            )
        )
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    chain = [(i, i + 1) for i in range(n - 1)]
    edges = draw(st.one_of(st.just(chain), st.lists(st.sampled_from(pairs), unique=True)))
    return Instance(
        rows=tuple(rows),
        outputs=tuple(
            draw(st.lists(st.one_of(st.none(), st.integers(0, 500)), min_size=n, max_size=n))
        ),
        runtimes=tuple(
            draw(st.lists(st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.75]), min_size=n, max_size=n))
        ),
        edges=tuple(sorted(edges)),
        egress=draw(st.sampled_from(MODELS)),
    )


def brute_force(inst: Instance) -> list[tuple[int, float]]:
    """(makespan ms, cost $) of every combination of offers."""
    n = len(inst.rows)
    runtime_ms = [round(h * 3_600_000) for h in inst.runtimes]
    out = []
    for combo in itertools.product(*inst.rows):
        cost = sum(row[schema.PRICE] * h for row, h in zip(combo, inst.runtimes, strict=True))
        finish = [0] * n
        arrivals: list[list[int]] = [[] for _ in range(n)]
        for t in range(n):  # edges go from lower to higher index: index order is topological
            finish[t] = max(arrivals[t], default=0) + runtime_ms[t]
            for i, j in inst.edges:
                if i != t:
                    continue
                gb = inst.outputs[i] or 0
                a, b = combo[i], combo[j]
                link = inst.egress.link(
                    (a[schema.CLOUD], a[schema.REGION]), (b[schema.CLOUD], b[schema.REGION])
                )
                cost += gb * link.usd_per_gb
                arrivals[j].append(finish[t] + round(gb * 8 * 1000 / link.gbps))
        out.append((max(finish), cost))
    return out


@pytest.mark.parametrize("solver", ["auto", "cp-sat"])
@pytest.mark.parametrize("objective", ["cost", "time"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inst=instances())
def test_the_plan_is_as_good_as_every_combination(
    objective: Any, solver: Any, inst: Instance
) -> None:
    plan = plan_pipeline(
        inst.dag(),
        inst.catalog(),
        objective=objective,
        runtime_hours={f"t{i}": h for i, h in enumerate(inst.runtimes)},
        edges=inst.edges,
        egress=inst.egress,
        solver=solver,
    )
    assert_optimal(plan, inst, objective)


def assert_optimal(plan: PipelinePlan, inst: Instance, objective: str) -> None:
    everything = brute_force(inst)
    if objective == "cost":
        assert plan.total_cost == pytest.approx(min(c for _, c in everything), abs=1e-6)
    else:
        fastest = min(ms for ms, _ in everything)
        assert round(plan.makespan_hours * 3_600_000) == fastest
        cheapest = min(c for ms, c in everything if ms == fastest)
        assert plan.total_cost == pytest.approx(cheapest, abs=1e-6)
    assert plan.status == "OPTIMAL"
    # and the plan is one of the combinations, reported as the definition says
    for step, rows in zip(plan.steps, inst.rows, strict=True):
        assert (step.offer.cloud, step.offer.region, step.offer.hourly_cost) in {
            (r[schema.CLOUD], r[schema.REGION], r[schema.PRICE]) for r in rows
        }
    assert plan.total_cost == pytest.approx(plan.compute_cost + plan.egress_cost)


@pytest.mark.parametrize("objective", ["cost", "time"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inst=instances())
def test_cp_sat_does_not_depend_on_its_hint(objective: Any, inst: Instance) -> None:
    """CP-SAT starts from a heuristic plan; the first offer of every task must do as well."""
    with mock.patch.object(dag_search, "_hint", lambda problem: [0] * len(problem.options)):
        plan = plan_pipeline(
            inst.dag(),
            inst.catalog(),
            objective=objective,
            runtime_hours={f"t{i}": h for i, h in enumerate(inst.runtimes)},
            edges=inst.edges,
            egress=inst.egress,
            solver="cp-sat",
        )
    assert_optimal(plan, inst, objective)


# -- the shared synthetic catalog -----------------------------------------------------------------


@pytest.mark.shared
def test_a_diamond_over_the_synthetic_catalog_is_solved_to_optimality(
    synthetic_catalog: skyplan.Catalog,
) -> None:
    yaml = "".join(
        f"---\nname: t{i}\nresources:\n  {res}\noutputs:\n  s3://b/t{i}: {gb}\n"
        for i, (res, gb) in enumerate(
            [
                ("accelerators: T4:1", 300),
                ("accelerators: A100:8", 100),
                ("accelerators: L4:1", 50),
                ("cpus: 8+", 10),
            ]
        )
    )
    dag = make_task("name: diamond\n" + yaml)
    diamond = plan_pipeline(dag, synthetic_catalog, edges=[(0, 1), (0, 2), (1, 3), (2, 3)])
    assert (diamond.solver, diamond.status, diamond.gap) == ("cp-sat", "OPTIMAL", 0.0)
    by_dp = plan_pipeline(dag, synthetic_catalog)
    by_cp_sat = plan_pipeline(dag, synthetic_catalog, solver="cp-sat")
    assert by_dp.solver == "dp"
    assert by_cp_sat.total_cost == pytest.approx(by_dp.total_cost, abs=1e-6)
    # each task's own cheapest offer (1 h each) bounds the joint plan's compute from below
    independent = skyplan.plan(dag, catalog=synthetic_catalog)
    assert by_dp.compute_cost >= independent.hourly_cost - 1e-9


def test_cpu_only_tasks_take_the_planners_default_request() -> None:
    rows = (
        make_offer(),  # aws m6i.2xlarge, $0.384/h
        make_offer(cloud="gcp", region="us-central1", instance_type="n4-standard-8", price=0.30),
        make_offer(
            cloud="gcp",
            region="us-central1",
            instance_type="n4-standard-2",
            price=0.08,
            vcpus=2,
            memory_gib=8,
        ),  # too small for the default 8+ vCPUs
    )
    dag = make_task("name: p\n---\nname: a\noutputs: {s3://x: 1000}\n---\nname: b\n")
    plan = plan_pipeline(dag, make_catalog(*rows))
    assert [s.offer.instance_type for s in plan.steps] == ["n4-standard-8", "n4-standard-8"]
    assert plan.egress_cost == 0.0
