"""Policy tests: `given` a request, `expect` a placement (optionally where), a denial by a named
rule, or a cost bound. Each test plans the request under the policy; a rule counts as covered
when it removed offers, blocked the request, or decided the winner in some test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from skyplan.catalog import Catalog
from skyplan.errors import NoFeasiblePlacement
from skyplan.model import Offer, Placement, Policy, RequestContext, Resources, Task
from skyplan.model.policy import PolicyTest, Scalar
from skyplan.solver import place
from skyplan.solver.policy import COST, SPOT, evaluate_row

#: `given` keys that describe who asks; the rest describe the resources.
_CONTEXT_KEYS = ("name", "kind", "user", "team", "num_nodes")
_RESOURCE_KEYS = ("accelerators", "cpus", "memory", "infra", "use_spot", "instance_type")

CatalogFor = Callable[[PolicyTest], Catalog]


@dataclass
class TestResult:
    name: str
    file: str | None
    line: int | None
    passed: bool
    failures: list[str] = field(default_factory=list)
    fired: set[str] = field(default_factory=set)
    outcome: str = ""


@dataclass
class TestReport:
    results: list[TestResult]
    rules: tuple[str, ...]

    @property
    def covered(self) -> set[str]:
        return {name for r in self.results for name in r.fired} & set(self.rules)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def coverage(self) -> float:
        return len(self.covered) / len(self.rules) if self.rules else 1.0


def request_of(test: PolicyTest) -> tuple[Task, RequestContext]:
    """The task and context a test's `given` describes; ValueError when it is invalid."""
    given: dict[str, Scalar] = dict(test.given)
    labels = {k.split(".", 1)[1]: str(v) for k, v in given.items() if k.startswith("labels.")}
    resources = {k: given[k] for k in _RESOURCE_KEYS if k in given}
    try:
        task = Task(
            name=str(given["name"]) if "name" in given else test.name,
            num_nodes=given.get("num_nodes") or 1,
            resources=Resources.model_validate({**resources, "labels": labels or None}),
        )
        context = RequestContext(
            name=task.name,
            kind=str(given.get("kind") or "task"),
            user=None if given.get("user") is None else str(given["user"]),
            team=None if given.get("team") is None else str(given["team"]),
            labels=labels,
            num_nodes=task.num_nodes,
        )
    except ValidationError as exc:
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ValueError(f"invalid 'given': {reasons}") from None
    return task, context


def offer_row(offer: Offer) -> dict[str, Any]:
    """A chosen offer as the row conditions are evaluated on."""
    accelerators = offer.accelerators or {}
    name, count = next(iter(accelerators.items()), (None, None))
    return {
        "cloud": offer.cloud,
        "region": offer.region,
        "zone": offer.zone,
        "instance_type": offer.instance_type,
        "accelerator": name,
        "accelerator_count": count,
        "vcpus": offer.vcpus,
        "memory_gib": offer.memory_gib,
        COST: offer.hourly_cost,
        SPOT: offer.spot,
        "arch": offer.arch,
        "accelerator_memory": offer.accelerator_memory,
        "capacity": offer.capacity,
    }


def _fired(placement: Placement) -> set[str]:
    fired = {v.name for v in placement.verdicts if v.removed > 0}
    return fired | set(placement.decided_by)


def run_test(test: PolicyTest, policy: Policy, catalog: Catalog) -> TestResult:
    origin = test.origin
    result = TestResult(
        test.name, origin.file if origin else None, origin.line if origin else None, True
    )
    try:
        task, ctx = request_of(test)
    except ValueError as exc:
        result.passed, result.failures = False, [str(exc)]
        return result
    placement: Placement | None = None
    denial: NoFeasiblePlacement | None = None
    try:
        placement = place(task, catalog, policy=policy, context=ctx, alternatives=0)
    except NoFeasiblePlacement as exc:
        denial = exc
    if placement is not None:
        result.fired = _fired(placement)
        choice = placement.choice
        where = f"{choice.cloud}/{choice.region} {choice.instance_type}"
        result.outcome = f"placed on {where} (${choice.hourly_cost:.4g}/h)"
    else:
        assert denial is not None
        result.fired = {r.rule for r in denial.reasons if r.rule}
        blockers = ", ".join(sorted(result.fired)) or "no policy rule (the catalog)"
        result.outcome = f"denied by {blockers}"
    for expect in test.expect:
        if expect.outcome == "placed":
            if placement is None:
                result.failures.append(f"expected a placement, but it was {result.outcome}")
            elif expect.where is not None and not evaluate_row(
                expect.where, offer_row(placement.choice), ctx
            ):
                result.failures.append(
                    f"expected a placement matching the condition, but it was {result.outcome}"
                )
        elif expect.outcome == "denied":
            if placement is not None:
                result.failures.append(f"expected a denial, but it was {result.outcome}")
            elif expect.rule is not None and expect.rule not in result.fired:
                result.failures.append(
                    f"expected a denial by {expect.rule!r}, but it was {result.outcome}"
                )
        else:
            limit = expect.max_cost or 0.0
            if placement is None or placement.choice.hourly_cost > limit + 1e-9:
                result.failures.append(
                    f"expected a cost <= ${limit:g}/h, but it was {result.outcome}"
                )
    result.passed = not result.failures
    return result


def run_tests(policy: Policy, catalog_for: CatalogFor) -> TestReport:
    """Run every test of `policy`; `catalog_for(test)` gives the catalog it plans over."""
    results = [run_test(t, policy, catalog_for(t)) for t in policy.tests]
    return TestReport(results, policy.rule_names())
