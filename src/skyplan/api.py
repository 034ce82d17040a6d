"""The public API: loading tasks and catalogs, planning, schemas. Wiring only.

`plan()` stays pure; every function that reads or writes files says so in its name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from skyplan.catalog import Catalog, default_catalog_path, load_catalog
from skyplan.catalog.queries import accelerator_offers, accelerator_summary, catalog_summary
from skyplan.errors import Diagnostic, PolicyError, TaskError
from skyplan.model import Dag, Plan, Policy, RequestContext, Resources, Task
from skyplan.model.batch import BatchPlan, BatchRequest
from skyplan.model.policy import PolicyTest
from skyplan.model.task import MAX_NUM_NODES
from skyplan.model.taskfile import parse_task_text
from skyplan.solver import plan as _plan
from skyplan.source import Span

if TYPE_CHECKING:  # loaded on first use: the DSL (and Lark), policy review, the optimizers
    from skyplan.dsl import Loaded, Vocabulary
    from skyplan.review import PolicyDiff, TestReport
    from skyplan.solver.dag import PipelinePlan
    from skyplan.solver.egress import EgressModel
    from skyplan.solver.spread import ReplicaPlan


def load_task(path: str | os.PathLike[str]) -> Dag:
    """Read a SkyPilot-style task YAML file (one task, a pipeline or a job group). A relative
    `workdir` or local file-mount source is relative to the file's folder, and is made absolute
    here: the task means the same folder whoever launches it, from wherever."""
    name = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskError([Diagnostic(Span(name), "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError([Diagnostic(Span(name), f"cannot read the file: {exc}")]) from None
    dag = parse_task_text(text, name)
    folder = Path(path).resolve().parent
    return dag.model_copy(update={"tasks": tuple(_anchored(t, folder) for t in dag.tasks)})


def _anchored(task: Task, folder: Path) -> Task:
    """`task` with its relative local paths made absolute against `folder`."""

    def anchored(path: object) -> object:
        if not isinstance(path, str) or "://" in path or path.startswith("~"):
            return path
        return path if Path(path).is_absolute() else str(folder / path)

    update: dict[str, Any] = {}
    if isinstance(task.workdir, str):
        update["workdir"] = anchored(task.workdir)
    if task.file_mounts:
        update["file_mounts"] = {k: anchored(v) for k, v in task.file_mounts.items()}
    return task.model_copy(update=update) if update else task


def parse_task(text: str, name: str = "<string>") -> Dag:
    """Parse task YAML text (no file access)."""
    return parse_task_text(text, name)


def with_overrides(work: Dag, overrides: dict[str, Any], origin: str = "<flags>") -> Dag:
    """`work` with resource fields (`infra`, `accelerators`, `cpus`, `use_spot`, …) and
    `num_nodes` replaced in every task, as command-line flags do."""
    if not overrides:
        return work
    fields = dict(overrides)
    num_nodes = fields.pop("num_nodes", None)
    try:
        patch = Resources.model_validate(fields)
    except ValidationError as exc:
        raise TaskError(
            [
                Diagnostic(
                    Span(origin),
                    str(err["msg"]).removeprefix("Value error, "),
                    field=".".join(str(p) for p in err["loc"]) or None,
                )
                for err in exc.errors(include_url=False)
            ]
        ) from None
    tasks = []
    for task in work.tasks:
        update: dict[str, Any] = {"resources": task.resources.merged(patch)}
        if num_nodes is not None:
            if not isinstance(num_nodes, int) or not 1 <= num_nodes <= MAX_NUM_NODES:
                why = f"num_nodes must be 1 to {MAX_NUM_NODES:,}, got {num_nodes!r}"
                raise TaskError([Diagnostic(Span(origin), why)])
            update["num_nodes"] = num_nodes
        tasks.append(task.model_copy(update=update))
    return work.model_copy(update={"tasks": tuple(tasks)})


def plan(
    work: Task | Dag,
    *,
    catalog: Catalog,
    alternatives: int = 8,
    policy: Policy | None = None,
    context: RequestContext | None = None,
    overrides: dict[str, str] | None = None,
    usage: dict[str, float] | None = None,
) -> Plan:
    """The cheapest feasible placement of every task in `work`, with ranked alternatives.

    With a `policy`, its rules narrow the candidates (soft ones unless `overrides` names them
    with a reason), its preferences re-rank them, and its quotas and budgets bound each task
    given the `usage` already recorded ("<limit name>/<key>=<value>" → amount). `context` says
    who asks (see `request_context`).

    Pure: no I/O, no printing, inputs untouched. Raises `NoFeasiblePlacement` (with the
    requirement or rule that removed the last offers and where the request would fit).
    """
    return _plan(
        work,
        catalog=catalog,
        alternatives=alternatives,
        policy=policy,
        context=context,
        overrides=overrides,
        usage=usage,
    )


def task_schema() -> dict[str, Any]:
    """JSON Schema of a task document, for editors: it accepts every document the parser
    accepts, short forms and aliases included, and a pipeline's or job group's first
    document when it only names the group."""
    from skyplan.model.task import DagHeader

    task = Task.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
    defs = task.pop("$defs", {})
    header = DagHeader.model_json_schema(mode="validation")
    defs["Task"] = task
    defs["DagHeader"] = header
    # Short forms the models' before-validators read (what pydantic cannot see):
    # `readiness_probe: /health` is the probe's path; `gpus` is `accelerators`.
    service = defs["ServiceSpec"]["properties"]
    service["readiness_probe"] = {
        "anyOf": [
            {"type": "string", "description": "the path probed"},
            {"$ref": "#/$defs/ReadinessProbe"},
        ]
    }
    resources = defs["Resources"]["properties"]
    resources["gpus"] = {**resources["accelerators"], "description": "alias of accelerators"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "skyplan task",
        "description": task.get("description", ""),
        "anyOf": [{"$ref": "#/$defs/Task"}, {"$ref": "#/$defs/DagHeader"}],
        "$defs": defs,
    }


def refresh_catalog(
    cloud: str,
    output: str | os.PathLike[str],
    *,
    endpoint: str | None = None,
    regions: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> int:
    """Fetch current public prices for `cloud` and write them as a skyplan catalog file.

    Returns the number of rows written. The file is replaced atomically; on any error the old
    file is left untouched.
    """
    from skyplan.catalog import fetchers, native

    frame = fetchers.refresh(
        cloud, endpoint=endpoint, regions=list(regions) if regions else None, progress=progress
    )
    native.write(frame, Path(output))
    return frame.height


# -- policies ------------------------------------------------------------------------------------


def policy_vocabulary(catalog: Catalog | None) -> Vocabulary:
    """What `policy check` validates names against: the catalog's accelerators and regions."""
    from skyplan.dsl import Vocabulary

    if catalog is None:
        return Vocabulary()
    return Vocabulary(accelerators=catalog.accelerators, regions=catalog.regions())


def check_policy(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    catalog: Catalog | None = None,
) -> Loaded:
    """Parse, resolve and type-check policy files (and their imports): one path, or several.
    Never raises for bad input: `Loaded.diagnostics` holds every error and warning,
    `Loaded.policy` is None on error."""
    from skyplan.dsl import load

    return load([os.fspath(p) for p in _paths(paths)], policy_vocabulary(catalog))


def _paths(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> list[str | os.PathLike[str]]:
    """One path or several as a list (a string is one path, not a sequence of letters)."""
    if isinstance(paths, str | os.PathLike):
        return [paths]
    return list(paths)


def load_policy(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    catalog: Catalog | None = None,
) -> Policy:
    """The effective policy of one path or several (later files after earlier ones); raises
    `PolicyError`."""
    loaded = check_policy(paths, catalog=catalog)
    if loaded.policy is None:
        raise PolicyError(loaded.errors, loaded.sources)
    return loaded.policy


def format_policy(text: str, name: str = "<policy>") -> str:
    """The canonical form of policy text; raises `PolicyError` when it does not parse."""
    from skyplan.dsl import format_text

    return format_text(text, name)


def read_policy(path: str | os.PathLike[str]) -> str:
    """A policy file's text, read as the loader reads imports: a regular file (never waited
    on), at most 1 MiB, UTF-8 (a leading byte-order mark is fine). Raises `PolicyError`
    naming the file, and the line and column of a byte that is not UTF-8."""
    from skyplan.dsl import read_policy as read

    return read(os.fspath(path))


def request_context(
    *,
    team: str | None = None,
    user: str | None = None,
    labels: dict[str, str] | None = None,
    kind: str | None = None,
) -> RequestContext:
    """Who asks: what policy conditions see as task.team, task.user, task.labels, task.kind.
    Each planned task adds its own name, kind (service when it has a service block) and labels."""
    return RequestContext(
        team=team,
        user=user,
        labels=dict(labels or {}),
        kind=kind or "task",
    )


def run_policy_tests(
    paths: Sequence[str | os.PathLike[str]], *, catalog: Catalog | None = None
) -> list[tuple[str, TestReport]]:
    """Run the test blocks of each policy file (with what it imports) and report coverage.
    A test's `given { catalog: "x.csv" }` is read relative to its file; otherwise `catalog`,
    or the default catalog, is used. Raises `PolicyError` when a file does not check."""
    from skyplan.review import run_tests

    reports = []
    for path in paths:
        name = os.fspath(path)
        policy = load_policy([name], catalog=catalog if catalog is not None else load_catalog())

        def catalog_for(test: PolicyTest, _base: str = name) -> Catalog:
            given = dict(test.given)
            if given.get("catalog"):
                return load_catalog(Path(_base).parent / str(given["catalog"]))
            return catalog if catalog is not None else load_catalog()

        reports.append((name, run_tests(policy, catalog_for)))
    return reports


def diff_policy(
    old: Sequence[str | os.PathLike[str]],
    new: Sequence[str | os.PathLike[str]],
    *,
    catalog: Catalog,
) -> PolicyDiff:
    """Which offers a policy change newly allows or denies, per request context, and whether it
    loosens a hard rule. Raises `PolicyError` when either side does not check."""
    from skyplan.review import diff_policies

    return diff_policies(
        load_policy(old, catalog=catalog), load_policy(new, catalog=catalog), catalog
    )


# -- batches -------------------------------------------------------------------------------------


def _batch_entry(entry: object, where: str, base: Path, index: int) -> list[BatchRequest]:
    if not isinstance(entry, dict):
        raise TaskError([Diagnostic(Span(where), f"request {index}: expected a mapping")])
    known = {"id", "task", "team", "user", "priority", "labels", "count", "kind"}
    unknown = sorted(set(map(str, entry)) - known)
    if unknown:
        raise TaskError(
            [
                Diagnostic(
                    Span(where),
                    f"request {index}: unknown key(s) {', '.join(unknown)}",
                    hint="keys: " + ", ".join(sorted(known)),
                )
            ]
        )
    spec = entry.get("task")
    if isinstance(spec, str):
        dag = load_task(base / spec)
    elif isinstance(spec, dict):
        dag = parse_task(yaml.safe_dump(spec), f"{where} (request {index})")
    else:
        raise TaskError(
            [Diagnostic(Span(where), f"request {index}: 'task' must be a path or a task")]
        )
    if len(dag.tasks) != 1:
        raise TaskError([Diagnostic(Span(where), f"request {index}: a batch request is one task")])
    count = entry.get("count", 1)
    priority = entry.get("priority", 0)
    if not isinstance(count, int) or count < 1 or not isinstance(priority, int):
        raise TaskError(
            [
                Diagnostic(
                    Span(where), f"request {index}: count must be >= 1 and priority a whole number"
                )
            ]
        )
    labels = entry.get("labels") or {}
    if not isinstance(labels, dict):
        raise TaskError([Diagnostic(Span(where), f"request {index}: labels must be a mapping")])
    context = request_context(
        team=None if entry.get("team") is None else str(entry["team"]),
        user=None if entry.get("user") is None else str(entry["user"]),
        labels={str(k): str(v) for k, v in labels.items()},
        kind=None if entry.get("kind") is None else str(entry["kind"]),
    )
    task = dag.tasks[0]
    name = str(entry.get("id") or task.name or f"request-{index}")
    ids = [name] if count == 1 else [f"{name}-{n}" for n in range(1, count + 1)]
    return [BatchRequest(id=i, task=task, context=context, priority=priority) for i in ids]


def load_batch(path: str | os.PathLike[str]) -> tuple[list[BatchRequest], dict[str, float]]:
    """A batch of requests and recorded usage from a YAML file (`requests:`, `usage:`), or one
    request per task YAML in a directory (team, user and priority read from the task's
    `resources.labels`)."""
    root = Path(path)
    if root.is_dir():
        requests = []
        for file in sorted(root.glob("*.yaml")) + sorted(root.glob("*.yml")):
            dag = load_task(file)
            for n, task in enumerate(dag.tasks):
                labels = dict(task.resources.labels or {})
                priority = labels.get("priority", "0")
                requests.append(
                    BatchRequest(
                        id=f"{file.stem}" if len(dag.tasks) == 1 else f"{file.stem}-{n + 1}",
                        task=task,
                        context=request_context(
                            team=labels.get("team"), user=labels.get("user"), labels=labels
                        ),
                        priority=int(priority) if priority.lstrip("-").isdigit() else 0,
                    )
                )
        if not requests:
            raise TaskError(
                [Diagnostic(Span(str(root)), "no task files (*.yaml) in the directory")]
            )
        return requests, {}
    where = os.fspath(path)
    try:
        data = yaml.safe_load(root.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaskError([Diagnostic(Span(where), "file not found")]) from None
    except (OSError, yaml.YAMLError) as exc:
        raise TaskError([Diagnostic(Span(where), f"cannot read the batch: {exc}")]) from None
    if not isinstance(data, dict) or not isinstance(data.get("requests"), list):
        raise TaskError([Diagnostic(Span(where), "expected a mapping with a 'requests' list")])
    requests = []
    for index, entry in enumerate(data["requests"], start=1):
        requests.extend(_batch_entry(entry, where, root.parent, index))
    usage = data.get("usage") or {}
    if not isinstance(usage, dict) or not all(isinstance(v, int | float) for v in usage.values()):
        raise TaskError(
            [
                Diagnostic(
                    Span(where),
                    "usage maps '<limit name>/<group>' to an amount",
                    hint='e.g. "team GPUs/team=ml": 8',
                )
            ]
        )
    return requests, {str(k): float(v) for k, v in usage.items()}


def plan_batch(
    requests: Sequence[BatchRequest],
    *,
    catalog: Catalog,
    policy: Policy | None = None,
    usage: dict[str, float] | None = None,
    time_limit_s: float = 10.0,
    require_all: bool = False,
) -> BatchPlan:
    """Admit a batch under the policy's quotas, budgets and pool capacities; see
    `skyplan.solver.batch`. Pure; raises `NoFeasiblePlacement` only with `require_all`."""
    from skyplan.solver.batch import plan_batch as _plan_batch

    ids = [r.id for r in requests]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise TaskError(
            [Diagnostic(Span("<batch>"), f"request id(s) appear twice: {', '.join(duplicates)}")]
        )
    return _plan_batch(
        requests,
        catalog,
        policy=policy,
        usage=usage,
        time_limit_s=time_limit_s,
        require_all=require_all,
    )


# -- services ------------------------------------------------------------------------------------


def place_replicas(
    task: Task,
    *,
    catalog: Catalog,
    replicas: int | None = None,
    min_regions: int = 1,
    min_clouds: int = 1,
    base_on_demand: int | None = None,
    spot_domain: str = "zone",
    max_spot_per_domain: int = 1,
    policy: Policy | None = None,
    context: RequestContext | None = None,
) -> ReplicaPlan:
    """The cheapest placement of a service's replicas: a base on demand, the rest on spot
    spread over distinct failure domains, across at least `min_regions` regions and
    `min_clouds` clouds (SkyServe's SpotHedge). Pure; raises `NoFeasiblePlacement` with why."""
    from skyplan.solver.spread import place_replicas as _place_replicas

    if spot_domain not in ("zone", "region"):
        raise TaskError([Diagnostic(Span("<flags>"), "spot domain is 'zone' or 'region'")])
    try:
        return _place_replicas(
            task,
            catalog,
            replicas=replicas,
            min_regions=min_regions,
            min_clouds=min_clouds,
            base_on_demand=base_on_demand,
            spot_domain=spot_domain,  # type: ignore[arg-type]
            max_spot_per_domain=max_spot_per_domain,
            policy=policy,
            context=context,
        )
    except ValueError as exc:
        raise TaskError([Diagnostic(Span("<flags>"), str(exc))]) from None


# -- pipelines -----------------------------------------------------------------------------------


def plan_pipeline(
    work: Dag,
    *,
    catalog: Catalog,
    policy: Policy | None = None,
    context: RequestContext | None = None,
    objective: str = "cost",
    runtime_hours: dict[str, float] | None = None,
    egress: EgressModel | None = None,
) -> PipelinePlan:
    """Place every task of a pipeline together: compute cost times runtime plus the egress of
    each task's outputs to the next (or, with objective "time", the makespan), exactly. Pure;
    raises `NoFeasiblePlacement` naming a task that nothing fits."""
    if objective not in ("cost", "time"):
        raise TaskError(
            [Diagnostic(Span("<flags>"), f"objective is cost or time, not {objective!r}")]
        )
    from skyplan.solver.dag import plan_pipeline as _plan_pipeline

    return _plan_pipeline(
        work,
        catalog,
        policy=policy,
        context=context,
        objective=objective,  # type: ignore[arg-type]
        runtime_hours=runtime_hours,
        egress=egress,
    )


__all__ = [
    "BatchPlan",
    "BatchRequest",
    "Catalog",
    "Policy",
    "RequestContext",
    "accelerator_offers",
    "accelerator_summary",
    "catalog_summary",
    "check_policy",
    "default_catalog_path",
    "diff_policy",
    "format_policy",
    "load_batch",
    "load_catalog",
    "load_policy",
    "load_task",
    "parse_task",
    "place_replicas",
    "plan",
    "plan_batch",
    "plan_pipeline",
    "policy_vocabulary",
    "refresh_catalog",
    "request_context",
    "run_policy_tests",
    "task_schema",
    "with_overrides",
]
