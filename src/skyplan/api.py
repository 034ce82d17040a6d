"""The public API: loading tasks and catalogs, planning, schemas. Wiring only.

`plan()` stays pure; every function that reads or writes files says so in its name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from skyplan.catalog import Catalog, default_catalog_path, load_catalog
from skyplan.catalog.queries import accelerator_offers, accelerator_summary, catalog_summary
from skyplan.errors import Diagnostic, TaskError
from skyplan.model import Dag, Plan, Resources, Task
from skyplan.model.taskfile import parse_task_text
from skyplan.solver import plan as _plan
from skyplan.source import Span


def load_task(path: str | os.PathLike[str]) -> Dag:
    """Read a SkyPilot-style task YAML file (one task, a pipeline or a job group)."""
    name = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskError([Diagnostic(Span(name), "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError([Diagnostic(Span(name), f"cannot read the file: {exc}")]) from None
    return parse_task_text(text, name)


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
            if not isinstance(num_nodes, int) or num_nodes < 1:
                raise TaskError(
                    [Diagnostic(Span(origin), f"num_nodes must be >= 1, got {num_nodes!r}")]
                )
            update["num_nodes"] = num_nodes
        tasks.append(task.model_copy(update=update))
    return work.model_copy(update={"tasks": tuple(tasks)})


def plan(work: Task | Dag, *, catalog: Catalog, alternatives: int = 8) -> Plan:
    """The cheapest feasible placement of every task in `work`, with ranked alternatives.

    Pure: no I/O, no printing, inputs untouched. Raises `NoFeasiblePlacement` (with the
    requirement that removed the last offers and where the request would fit).
    """
    return _plan(work, catalog=catalog, alternatives=alternatives)


def task_schema() -> dict[str, Any]:
    """JSON Schema of a task document, for editors."""
    schema = Task.model_json_schema(mode="validation")
    schema["title"] = "skyplan task"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


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


__all__ = [
    "Catalog",
    "accelerator_offers",
    "accelerator_summary",
    "catalog_summary",
    "default_catalog_path",
    "load_catalog",
    "load_task",
    "parse_task",
    "plan",
    "refresh_catalog",
    "task_schema",
    "with_overrides",
]
