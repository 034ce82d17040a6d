"""Policies in the planner: what conditions select, and what rules, preferences, quotas and
budgets do to a placement.

The first half checks `to_polars` (through `condition`) against `evaluate_row`, the row-by-row
reference, over random small catalogs and random conditions built directly as `model.policy`
trees: both must select exactly the same rows, a missing value making a comparison false. The
second half plans tiny catalogs under policies written in the policy language (or built as
model objects) and specifies the placement, its verdicts and steps, and the failure reasons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import skyplan
import skyplan.dsl
from skyplan.catalog import schema
from skyplan.errors import InputError, NoFeasiblePlacement
from skyplan.model import Placement, RequestContext
from skyplan.model import policy as m
from skyplan.solver import plan
from skyplan.solver.policy import COST, SPOT, condition, evaluate_row, to_polars
from tests.solver.factories import gpu_offer, make_catalog, make_frame, make_offer, make_task

# -- the Polars compilation agrees with the row-by-row reference ---------------------------------

CLOUDS = ("aws", "gcp", "kubernetes", "azure")
REGIONS = ("us-east-1", "eu-west-1", "europe-north1", "us-central1", "ap-south-1")
ACCELERATORS = ("A100", "H100", "T4")
TEAMS = ("ml", "interns", "infra")
LABEL_KEYS = ("env", "data")
LABEL_VALUES = ("prod", "dev", "eu")
NUMERIC_FIELDS = ("count", "gpus", "vcpus", "memory", "price")
STRING_FIELDS = {"cloud": CLOUDS, "region": REGIONS, "accelerator": ACCELERATORS}
NUMBERS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 1.5, 64.0, 256.0, 3.0)


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Any]:
    accelerator = draw(st.sampled_from((None, *ACCELERATORS)))
    return make_offer(
        cloud=draw(st.sampled_from(CLOUDS)),
        region=draw(st.sampled_from(REGIONS)),
        accelerator=accelerator,
        accelerator_count=None if accelerator is None else draw(st.sampled_from((1, 2, 4, 8))),
        vcpus=draw(st.sampled_from((2, 4, 8, 32, 96))),
        memory_gib=draw(st.sampled_from((4, 16, 32, 256, 1024))),
        price=draw(st.sampled_from((0.1, 0.5, 1.0, 2.0, 3.0, 8.0, 32.0))),
        spot_price=draw(st.sampled_from((None, 0.05, 0.4, 1.0, 2.0))),
    )


@st.composite
def contexts(draw: st.DrawFn) -> RequestContext:
    labels = draw(st.dictionaries(st.sampled_from(LABEL_KEYS), st.sampled_from(LABEL_VALUES)))
    return RequestContext(
        team=draw(st.sampled_from((None, *TEAMS))),
        user=draw(st.sampled_from((None, "ada"))),
        kind=draw(st.sampled_from(("task", "service", "job"))),
        labels=labels,
        num_nodes=draw(st.integers(1, 3)),
    )


def _lit(value: Any) -> m.Literal_:
    return m.Literal_(value=value)


glob_patterns = st.text(alphabet="eus-1*?.[]+()^$", min_size=0, max_size=6) | st.sampled_from(
    ("eu-*", "us-*", "*-1", "us-east-?", "*", "a?s", "gcp", "europe-*")
)


@st.composite
def numeric_conditions(draw: st.DrawFn) -> m.Expr:
    item: m.Expr = m.FieldRef(name=draw(st.sampled_from(NUMERIC_FIELDS)))
    if draw(st.integers(0, 5)) == 0:
        item = m.RequestRef(path=("num_nodes",))
    if draw(st.booleans()):
        options = tuple(draw(st.lists(st.sampled_from(NUMBERS), max_size=4, unique=True)))
        return m.InSet(item=item, options=options, negate=draw(st.booleans()))
    op = draw(st.sampled_from(("==", "!=", "<", "<=", ">", ">=")))
    other = _lit(draw(st.sampled_from(NUMBERS)))
    if draw(st.booleans()):
        return m.Compare(op=op, left=item, right=other)
    return m.Compare(op=op, left=other, right=item)


@st.composite
def string_conditions(draw: st.DrawFn) -> m.Expr:
    kind = draw(st.sampled_from(("field", "team", "label")))
    if kind == "field":
        name = draw(st.sampled_from(sorted(STRING_FIELDS)))
        item: m.Expr = m.FieldRef(name=name)
        values: tuple[str, ...] = (*STRING_FIELDS[name], "nope")
    elif kind == "team":
        item, values = m.RequestRef(path=("team",)), (*TEAMS, "nope")
    else:
        item = m.RequestRef(path=("labels", draw(st.sampled_from(LABEL_KEYS))))
        values = (*LABEL_VALUES, "nope")
    how = draw(st.sampled_from(("compare", "in", "match", "call", "fields")))
    if how == "compare":
        op = draw(st.sampled_from(("==", "!=")))
        return m.Compare(op=op, left=item, right=_lit(draw(st.sampled_from(values))))
    if how == "in":
        options = tuple(draw(st.lists(st.sampled_from(values), max_size=3, unique=True)))
        return m.InSet(item=item, options=options, negate=draw(st.booleans()))
    if how == "match":
        found = draw(st.lists(glob_patterns, min_size=1, max_size=3))
        return m.Match(item=item, patterns=tuple(found))
    if how == "call":
        name = draw(st.sampled_from(("starts_with", "ends_with")))
        return m.Call(name=name, args=(item, _lit(draw(st.sampled_from(("e", "us", "1", "A1"))))))
    other = m.FieldRef(name=draw(st.sampled_from(sorted(STRING_FIELDS))))
    return m.Compare(op=draw(st.sampled_from(("==", "!="))), left=item, right=other)


@st.composite
def spot_conditions(draw: st.DrawFn) -> m.Expr:
    spot = m.FieldRef(name="spot")
    if draw(st.booleans()):
        return spot
    return m.Compare(
        op=draw(st.sampled_from(("==", "!="))), left=spot, right=_lit(draw(st.booleans()))
    )


leaves = st.one_of(numeric_conditions(), string_conditions(), spot_conditions())


def _combine(inner: st.SearchStrategy[m.Expr]) -> st.SearchStrategy[m.Expr]:
    return st.one_of(
        inner.map(lambda e: m.Not(arg=e)),
        st.builds(
            lambda op, args: m.BoolOp(op=op, args=tuple(args)),
            st.sampled_from(("and", "or")),
            st.lists(inner, min_size=1, max_size=3),
        ),
    )


conditions = st.recursive(leaves, _combine, max_leaves=6)


def candidate_frame(offers: list[dict[str, Any]], spot: bool, num_nodes: int) -> pl.DataFrame:
    """The frame the planner evaluates conditions over: the catalog plus `cost` and `_spot`."""
    price = schema.SPOT_PRICE if spot else schema.PRICE
    return make_frame(*offers).with_columns(
        (pl.col(price) * num_nodes).alias(COST), pl.lit(spot).alias(SPOT)
    )


def selected_by_polars(expr: m.Expr, frame: pl.DataFrame, ctx: RequestContext) -> list[bool]:
    return frame.with_columns(condition(expr, ctx).alias("_mask"))["_mask"].to_list()


def selected_by_reference(expr: m.Expr, frame: pl.DataFrame, ctx: RequestContext) -> list[bool]:
    return [bool(evaluate_row(expr, row, ctx)) for row in frame.to_dicts()]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offers=st.lists(rows(), min_size=1, max_size=8),
    spot=st.booleans(),
    ctx=contexts(),
    expr=conditions,
)
@example(
    offers=[make_offer()],
    spot=False,
    ctx=RequestContext(num_nodes=2),
    expr=m.InSet(item=m.RequestRef(path=("num_nodes",)), options=(1.0, 2.0)),
).via("a whole-number request field in a set of numbers")
@example(
    offers=[make_offer()],
    spot=False,
    ctx=RequestContext(),
    expr=m.Call(name="starts_with", args=(m.RequestRef(path=("team",)), _lit("m"))),
).via("a function of a missing request field")
def test_polars_selects_exactly_the_rows_the_reference_selects(
    offers: list[dict[str, Any]], spot: bool, ctx: RequestContext, expr: m.Expr
) -> None:
    frame = candidate_frame(offers, spot, ctx.num_nodes)
    assert selected_by_polars(expr, frame, ctx) == selected_by_reference(expr, frame, ctx)


def _frame() -> pl.DataFrame:
    offers = [
        gpu_offer("A100", 8, price=20.0, spot_price=None),
        make_offer(region="eu-west-1", price=1.0, spot_price=0.3),
    ]
    return candidate_frame(offers, spot=True, num_nodes=2)


GPU_ROW, CPU_ROW = 0, 1


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        pytest.param(
            m.Compare(op="<", left=m.FieldRef(name="price"), right=_lit(5.0)),
            [False, True],
            id="no-spot-price-is-missing-so-false",
        ),
        pytest.param(
            m.Not(arg=m.Compare(op="<", left=m.FieldRef(name="price"), right=_lit(5.0))),
            [True, False],
            id="not-of-missing-is-true",
        ),
        pytest.param(
            m.Compare(op="!=", left=m.FieldRef(name="accelerator"), right=_lit("A100")),
            [False, False],
            id="no-accelerator-is-missing-so-not-equal-is-false",
        ),
        pytest.param(
            m.InSet(item=m.FieldRef(name="accelerator"), options=("A100",), negate=True),
            [False, False],
            id="not-in-of-missing-is-false",
        ),
        pytest.param(
            m.Compare(op="==", left=m.FieldRef(name="count"), right=_lit(0.0)),
            [False, True],
            id="count-of-a-cpu-node-is-zero",
        ),
        pytest.param(
            m.Compare(op="==", left=m.FieldRef(name="gpus"), right=_lit(16.0)),
            [True, False],
            id="gpus-count-every-node",
        ),
        pytest.param(
            m.Compare(op="==", left=m.FieldRef(name="price"), right=_lit(0.6)),
            [False, True],
            id="price-is-for-all-nodes",
        ),
        pytest.param(m.FieldRef(name="spot"), [True, True], id="spot-is-the-pricing"),
        pytest.param(
            m.Compare(op="==", left=m.RequestRef(path=("team",)), right=_lit("ml")),
            [True, True],
            id="request-only-applies-to-every-row",
        ),
        pytest.param(
            m.Compare(op="!=", left=m.RequestRef(path=("labels", "absent")), right=_lit("x")),
            [False, False],
            id="absent-label-is-missing",
        ),
        pytest.param(
            m.InSet(item=m.RequestRef(path=("num_nodes",)), options=(2.0, 4.0)),
            [True, True],
            id="num-nodes-in-a-number-set",
        ),
        pytest.param(
            m.Call(name="starts_with", args=(m.RequestRef(path=("user",)), _lit("a"))),
            [False, False],
            id="function-of-a-missing-request-field-is-false",
        ),
        pytest.param(
            m.Call(name="starts_with", args=(m.FieldRef(name="accelerator"), _lit("A1"))),
            [True, False],
            id="function-of-a-missing-candidate-field-is-false",
        ),
        pytest.param(
            m.Match(item=m.FieldRef(name="region"), patterns=("eu-*", "ap-*")),
            [False, True],
            id="glob",
        ),
        pytest.param(
            m.Match(item=m.FieldRef(name="region"), patterns=("us-east-1.",)),
            [False, False],
            id="glob-dot-is-literal",
        ),
        pytest.param(
            m.Match(item=m.FieldRef(name="region"), patterns=("east",)),
            [False, False],
            id="glob-is-anchored",
        ),
    ],
)
def test_conditions_select_rows(expr: m.Expr, expected: list[bool]) -> None:
    frame = _frame()
    ctx = RequestContext(team="ml", num_nodes=2)
    assert selected_by_polars(expr, frame, ctx) == expected
    assert selected_by_reference(expr, frame, ctx) == expected


def test_to_polars_keeps_missing_values_missing() -> None:
    frame = _frame()
    ctx = RequestContext(num_nodes=2)
    expr = m.Compare(op="<", left=m.FieldRef(name="price"), right=_lit(5.0))
    assert frame.select(to_polars(expr, ctx).alias("x"))["x"].to_list() == [None, True]
    assert evaluate_row(expr, frame.to_dicts()[GPU_ROW], ctx) is None


def test_evaluate_row_needs_a_candidate_for_candidate_fields() -> None:
    with pytest.raises(ValueError, match="needs a candidate"):
        evaluate_row(m.FieldRef(name="cloud"), None, RequestContext())


# -- policies in the planner ----------------------------------------------------------------------

A100_EU = gpu_offer("A100", 8, region="eu-west-1", instance_type="p4d.eu", price=20.0)
A100_US = gpu_offer("A100", 8, instance_type="p4d.us", price=21.0, spot_price=6.0)
A100_GCP = gpu_offer(
    "A100", 8, cloud="gcp", region="us-central1", instance_type="a2-ultragpu-8g", price=22.0
)
A100_K8S = gpu_offer(
    "A100", 8, cloud="kubernetes", region="onprem", instance_type="a100-node", price=23.0
)
H100_US = gpu_offer("H100", 8, instance_type="p5.48xlarge", price=30.0)
CATALOG = make_catalog(A100_EU, A100_US, A100_GCP, A100_K8S, H100_US)
A100_TASK = "resources: {accelerators: A100:8}"
ML = RequestContext(team="ml")


@pytest.fixture
def policy_file(tmp_path: Path):
    def write(text: str) -> m.Policy:
        path = tmp_path / "policy.policy"
        path.write_text(text, encoding="utf-8")
        loaded = skyplan.dsl.load([path])
        assert loaded.errors == [], [d.render() for d in loaded.errors]
        assert loaded.policy is not None
        return loaded.policy

    return write


def place(
    policy: m.Policy | None,
    task: str = A100_TASK,
    context: RequestContext | None = ML,
    **kw: Any,
) -> Placement:
    return plan(make_task(task), catalog=CATALOG, policy=policy, context=context, **kw).placements[
        0
    ]


def where(placement: Placement) -> tuple[str, str]:
    return placement.choice.cloud, placement.choice.region


def verdict(placement: Placement, name: str):
    (found,) = [v for v in placement.verdicts if v.name == name]
    return found


def test_without_a_policy_the_cheapest_offer_wins() -> None:
    placement = place(None)
    assert where(placement) == ("aws", "eu-west-1")
    assert placement.verdicts == ()


def test_a_deny_rule_removes_offers_and_says_how_many(policy_file) -> None:
    placement = place(policy_file('deny "no eu" region ~ "eu-*"'))
    assert where(placement) == ("aws", "us-east-1")
    v = verdict(placement, "no eu")
    assert (v.kind, v.level, v.applies, v.removed) == ("deny", "hard", True, 1)
    (step,) = [s for s in placement.steps if s.rule == "no eu"]
    assert (step.before - step.after, step.removed) == (1, 1)
    assert '"no eu"' in step.requirement


def test_a_require_rule_keeps_only_matching_offers(policy_file) -> None:
    placement = place(policy_file('require "gcp only" cloud == "gcp"'))
    assert where(placement) == ("gcp", "us-central1")
    v = verdict(placement, "gcp only")
    assert (v.kind, v.removed) == ("require", 3)


def test_rules_built_as_model_objects_work_the_same() -> None:
    rule = m.Rule(
        name="no eu",
        effect="deny",
        condition=m.Match(item=m.FieldRef(name="region"), patterns=("eu-*",)),
    )
    placement = place(m.Policy(rules=(rule,)))
    assert where(placement) == ("aws", "us-east-1")
    assert verdict(placement, "no eu").removed == 1


@pytest.mark.parametrize(
    ("team", "applies", "expected", "removed"),
    [
        pytest.param("interns", True, ("gcp", "us-central1"), 2, id="rule-applies"),
        pytest.param("ml", False, ("aws", "eu-west-1"), 0, id="rule-inactive"),
        pytest.param(None, False, ("aws", "eu-west-1"), 0, id="no-team-is-not-interns"),
    ],
)
def test_a_when_clause_decides_whether_a_rule_applies(
    policy_file, team: str | None, applies: bool, expected: tuple[str, str], removed: int
) -> None:
    policy = policy_file('deny "no aws for interns" when task.team == "interns": cloud == "aws"')
    placement = place(policy, context=RequestContext(team=team))
    assert where(placement) == expected
    v = verdict(placement, "no aws for interns")
    assert (v.applies, v.removed) == (applies, removed)
    if not applies:
        assert v.note == "its 'when' does not hold for this request"
        assert all(s.rule != "no aws for interns" for s in placement.steps)


def test_when_clauses_see_the_task_kind_and_labels(policy_file) -> None:
    policy = policy_file(
        'deny "no spot for prod services"'
        ' when task.kind == service and task.labels.env == "prod": spot'
    )
    spot_task = "resources:\n  accelerators: A100:8\n  use_spot: true\n  labels: {env: prod}\n"
    with pytest.raises(NoFeasiblePlacement):
        place(policy, spot_task, context=RequestContext(team="ml", kind="service"))
    batch = place(policy, spot_task, context=RequestContext(team="ml"))
    assert batch.choice.spot
    assert verdict(batch, "no spot for prod services").applies is False


def test_an_advisory_rule_never_filters_but_notes_a_violation(policy_file) -> None:
    policy = policy_file(
        'require "gcp preferred" cloud == "gcp" level advisory\n'
        'deny "no on-prem" cloud == "kubernetes" level advisory\n'
    )
    placement = place(policy)
    assert where(placement) == ("aws", "eu-west-1")
    violated = verdict(placement, "gcp preferred")
    assert (violated.level, violated.removed) == ("advisory", 0)
    assert violated.note == "advisory: the choice violates it"
    assert verdict(placement, "no on-prem").note == "the choice satisfies it"
    assert any("gcp preferred" in note for note in placement.notes)
    assert not any("no on-prem" in note for note in placement.notes)
    assert all(s.rule not in ("gcp preferred", "no on-prem") for s in placement.steps)


def test_a_soft_rule_filters_unless_overridden_with_a_reason(policy_file) -> None:
    policy = policy_file('deny "no aws" cloud == "aws" level soft')
    enforced = place(policy)
    assert where(enforced) == ("gcp", "us-central1")
    assert verdict(enforced, "no aws").removed == 2
    overridden = place(policy, overrides={"no aws": "reserved capacity"})
    assert where(overridden) == ("aws", "eu-west-1")
    v = verdict(overridden, "no aws")
    assert (v.level, v.removed, v.note) == ("soft", 0, "overridden: reserved capacity")
    assert all(s.rule != "no aws" for s in overridden.steps)


def test_a_hard_rule_cannot_be_overridden(policy_file) -> None:
    policy = policy_file('deny "no aws" cloud == "aws"')
    try:
        placement = place(policy, overrides={"no aws": "please"})
    except InputError:
        return  # refusing the override outright is fine; loosening the rule is not
    assert where(placement) == ("gcp", "us-central1")
    assert verdict(placement, "no aws").note is None


@pytest.mark.parametrize(
    ("text", "winner", "cost"),
    [
        pytest.param(
            'prefer "on-prem first" cloud == "kubernetes" bonus $4/h',
            ("kubernetes", "onprem"),
            23.0,
            id="money-bonus-wins",
        ),
        pytest.param(
            'prefer "gcp discount" cloud == "gcp" bonus 10%',
            ("gcp", "us-central1"),
            22.0,
            id="percent-bonus-wins",
        ),
    ],
)
def test_a_preference_re_ranks_and_is_named_as_the_decider(
    policy_file, text: str, winner: tuple[str, str], cost: float
) -> None:
    policy = policy_file(text)
    placement = place(policy)
    (name,) = [p.name for p in policy.preferences]
    assert where(placement) == winner
    assert placement.choice.hourly_cost == cost  # the real cost, not the score
    assert placement.decided_by == (name,)
    assert name in placement.preferred
    assert placement.cheapest is not None
    assert (placement.cheapest.region, placement.cheapest.hourly_cost) == ("eu-west-1", 20.0)
    assert verdict(placement, name).note == "applies to the choice"


def test_a_preference_too_small_to_matter_decides_nothing(policy_file) -> None:
    placement = place(policy_file('prefer "on-prem first" cloud == "kubernetes" bonus $1/h'))
    assert where(placement) == ("aws", "eu-west-1")
    assert placement.decided_by == ()
    assert placement.cheapest is None
    assert verdict(placement, "on-prem first").note == "does not apply to the choice"


def test_a_preference_that_does_not_apply_to_the_request_is_inactive(policy_file) -> None:
    policy = policy_file(
        'prefer "on-prem for interns" when task.team == "interns": cloud == "kubernetes" bonus $9/h'
    )
    placement = place(policy)
    assert where(placement) == ("aws", "eu-west-1")
    assert verdict(placement, "on-prem for interns").applies is False
    assert where(place(policy, context=RequestContext(team="interns"))) == ("kubernetes", "onprem")


QUOTA = 'quota "team GPUs" sum(gpus) <= 8 per task.team'
TWO_NODES = "num_nodes: 2\nresources: {accelerators: A100:8}"


def test_a_quota_rejects_a_request_larger_than_the_limit(policy_file) -> None:
    policy = policy_file(QUOTA)
    assert verdict(place(policy), "team GPUs").removed == 0
    with pytest.raises(NoFeasiblePlacement) as caught:
        place(policy, TWO_NODES)
    (reason,) = caught.value.reasons
    assert reason.rule == "team GPUs"
    assert '"team GPUs"' in reason.requirement
    assert "team=ml" in reason.requirement
    assert "team GPUs" in str(caught.value)


@pytest.mark.parametrize(
    ("usage", "fits"),
    [
        pytest.param({}, True, id="nothing-used"),
        pytest.param({"team GPUs/team=ml": 4.0}, False, id="own-team-usage-counts"),
        pytest.param({"team GPUs/team=infra": 4.0}, True, id="other-team-usage-does-not"),
        pytest.param({"other quota/team=ml": 4.0}, True, id="other-quota-usage-does-not"),
    ],
)
def test_quota_usage_counts_for_the_same_group(
    policy_file, usage: dict[str, float], fits: bool
) -> None:
    policy = policy_file(QUOTA)
    if fits:
        place(policy, usage=usage)
    else:
        with pytest.raises(NoFeasiblePlacement) as caught:
            place(policy, usage=usage)
        assert "4 used" in caught.value.reasons[0].requirement


def test_a_quota_whose_when_does_not_hold_is_inactive(policy_file) -> None:
    policy = policy_file(
        'quota "intern GPUs" when task.team == "interns": sum(gpus) <= 8 per task.team'
    )
    placement = place(policy, TWO_NODES)
    assert verdict(placement, "intern GPUs").applies is False
    with pytest.raises(NoFeasiblePlacement):
        place(policy, TWO_NODES, context=RequestContext(team="interns"))


def test_a_soft_quota_can_be_overridden(policy_file) -> None:
    policy = policy_file(QUOTA + " level soft")
    with pytest.raises(NoFeasiblePlacement):
        place(policy, TWO_NODES)
    placement = place(policy, TWO_NODES, overrides={"team GPUs": "launch week"})
    assert verdict(placement, "team GPUs").note == "overridden: launch week"


def test_an_advisory_quota_never_rejects(policy_file) -> None:
    place(policy_file(QUOTA + " level advisory"), TWO_NODES)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(QUOTA + " level advisory", id="quota"),
        pytest.param(
            'budget "team GPUs" hourly_cost <= $1/h per task.team level advisory', id="budget"
        ),
    ],
)
def test_an_exceeded_advisory_limit_is_reported_like_an_advisory_rule(
    policy_file, text: str
) -> None:
    placement = place(policy_file(text), TWO_NODES)
    v = verdict(placement, "team GPUs")
    assert (v.level, v.removed) == ("advisory", 0)
    assert v.note is not None
    assert any("team GPUs" in note for note in placement.notes)


def test_a_quota_built_as_a_model_object() -> None:
    quota = m.Quota(name="nodes", metric="nodes", limit=1, per=("team",))
    policy = m.Policy(quotas=(quota,))
    place(policy)
    with pytest.raises(NoFeasiblePlacement):
        place(policy, TWO_NODES)


@pytest.mark.parametrize(
    ("limit", "usage", "winner"),
    [
        pytest.param("$25/h", {}, ("aws", "eu-west-1"), id="under-the-limit"),
        pytest.param("$22/h", {"team spend/team=ml": 1.5}, ("aws", "eu-west-1"), id="just-fits"),
        pytest.param("$20/h", {}, ("aws", "eu-west-1"), id="limit-is-inclusive"),
        pytest.param("$19.99/h", {}, None, id="over-the-limit"),
        pytest.param("$22/h", {"team spend/team=ml": 2.5}, None, id="usage-pushes-it-over"),
    ],
)
def test_a_budget_bounds_the_hourly_cost_of_a_group(
    policy_file, limit: str, usage: dict[str, float], winner: tuple[str, str] | None
) -> None:
    policy = policy_file(f'budget "team spend" hourly_cost <= {limit} per task.team')
    if winner is not None:
        assert where(place(policy, usage=usage)) == winner
        return
    with pytest.raises(NoFeasiblePlacement) as caught:
        place(policy, usage=usage)
    assert caught.value.reasons[0].rule == "team spend"


def test_a_budget_counts_every_node(policy_file) -> None:
    policy = policy_file('budget "team spend" hourly_cost <= $30/h per task.team')
    place(policy)
    with pytest.raises(NoFeasiblePlacement):
        place(policy, TWO_NODES)  # 2 x $20/h


def test_no_feasible_placement_names_the_denying_rule(policy_file) -> None:
    policy = policy_file('deny "no A100" accelerator == "A100"')
    with pytest.raises(NoFeasiblePlacement) as caught:
        place(policy)
    (reason,) = caught.value.reasons
    assert reason.rule == "no A100"
    assert reason.requirement == 'deny "no A100" (hard)'
    assert reason.removed == 4
    assert 'deny "no A100"' in str(caught.value)


def test_rules_combine_and_each_reports_its_own_removals(policy_file) -> None:
    policy = policy_file(
        'deny "no eu" region ~ "eu-*"\n'
        'deny "no on-prem" cloud == "kubernetes"\n'
        'prefer "gcp" cloud == "gcp" bonus $2/h\n'
    )
    placement = place(policy)
    assert where(placement) == ("gcp", "us-central1")
    assert verdict(placement, "no eu").removed == 1
    assert verdict(placement, "no on-prem").removed == 1
    assert placement.decided_by == ("gcp",)
    assert placement.cheapest is not None
    assert placement.cheapest.region == "us-east-1"


def test_the_example_policy_end_to_end(tmp_path: Path) -> None:
    (tmp_path / "base.policy").write_text('deny "no H100 spot" accelerator == "H100" and spot\n')
    (tmp_path / "ml.policy").write_text(
        'policy "ml-platform" version 1\n'
        'import "base.policy"\n'
        'let eu = region ~ ["eu-*", "europe-*"]\n'
        "let big = accelerator in {H100, H200, A100-80GB}\n"
        'require "eu data stays in the eu" when task.labels.data == "eu": eu\n'
        'deny "no big GPUs for interns" when task.team == "interns": big level hard\n'
        'prefer "on-prem first" cloud == "k8s" bonus $2/h\n'
        'quota "team GPUs" sum(gpus) <= 64 per task.team\n'
        'budget "team spend" hourly_cost <= $40/h per task.team\n'
    )
    loaded = skyplan.dsl.load([tmp_path / "ml.policy"])
    assert loaded.errors == []
    policy = loaded.policy
    assert policy is not None
    eu = place(policy, context=RequestContext(team="ml", labels={"data": "eu"}))
    assert where(eu) == ("aws", "eu-west-1")
    anywhere = place(policy)
    assert where(anywhere) == ("aws", "eu-west-1")
    h100 = "resources: {accelerators: H100:8}"
    assert place(policy, h100).choice.accelerators == {"H100": 8.0}
    with pytest.raises(NoFeasiblePlacement) as caught:
        place(policy, h100, context=RequestContext(team="interns"))
    assert caught.value.reasons[0].rule == "no big GPUs for interns"


def test_a_rule_on_the_node_count_filters_instead_of_crashing(policy_file) -> None:
    policy = policy_file('deny "no 2-node jobs" task.num_nodes in {2, 4}')
    place(policy)
    with pytest.raises(NoFeasiblePlacement) as caught:
        place(policy, TWO_NODES)
    assert caught.value.reasons[0].rule == "no 2-node jobs"


def test_a_function_of_a_missing_request_field_is_false(policy_file) -> None:
    policy = policy_file('require "ml teams only" starts_with(task.team, "ml")')
    assert where(place(policy)) == ("aws", "eu-west-1")
    with pytest.raises(NoFeasiblePlacement) as caught:
        place(policy, context=RequestContext())
    assert caught.value.reasons[0].rule == "ml teams only"
