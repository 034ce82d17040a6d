"""Task YAML text → `Dag`, with every problem reported at its file, line and column.

Pure (no file I/O): callers pass the text and the name to report. PyYAML composes the document
into nodes so that each key keeps its position; pydantic validates; validation errors are mapped
back to positions and given a did-you-mean for misspelled keys.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from skyplan.errors import Diagnostic, TaskError, did_you_mean
from skyplan.model.resources import Autostop, Resources
from skyplan.model.service import ReadinessProbe, ReplicaPolicy, ServiceSpec, Tls
from skyplan.model.task import HEADER_KEYS, Dag, DagHeader, Task
from skyplan.source import Source, Span

Path = tuple[str | int, ...]
#: Keys SkyPilot renamed or users often misspell, with what to write instead.
RENAMED = {
    "spot_recovery": "job_recovery",
    "accelerator": "accelerators",
    "gpu": "accelerators",
    "num_node": "num_nodes",
    "nodes": "num_nodes",
    "env": "envs",
    "image": "image_id",
}
#: The model that validates a mapping, by the key that holds it.
_MODEL_AT: dict[str, type[BaseModel]] = {
    "resources": Resources,
    "any_of": Resources,
    "ordered": Resources,
    "service": ServiceSpec,
    "replica_policy": ReplicaPolicy,
    "readiness_probe": ReadinessProbe,
    "tls": Tls,
    "autostop": Autostop,
}


def _walk(
    node: yaml.Node,
    path: Path,
    out: dict[Path, tuple[int, int]],
    dupes: list[Path],
    seen_nodes: set[int] | None = None,
) -> None:
    """Record the position of every key and item. An alias re-uses a node: it is walked once,
    so self-referencing anchors and alias bombs cost nothing here."""
    out.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark)
            child = (*path, name)
            if name in seen:
                dupes.append(child)
            seen.add(name)
            out[child] = (key.start_mark.line + 1, key.start_mark.column + 1)
            _walk(value, child, out, dupes, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), out, dupes, seen_nodes)


def _dotted(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class _Located:
    """Maps a data path inside one document to a Span."""

    def __init__(self, name: str, positions: dict[Path, tuple[int, int]]) -> None:
        self.name = name
        self.positions = positions

    def span(self, path: Path) -> Span:
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found:
                return Span(self.name, *found)
        return Span(self.name)

    def known(self, path: Path) -> Path:
        """The longest prefix of `path` that exists in the document."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.positions:
                return path[:end]
        return ()


def _unknown_key_hint(key: str, parent: Path) -> str | None:
    if key in RENAMED:
        return f"did you mean {RENAMED[key]!r}?"
    holder = next((p for p in reversed(parent) if isinstance(p, str)), None)
    model: type[BaseModel] = _MODEL_AT.get(holder, Task) if holder else Task
    guess = did_you_mean(key, model.model_fields)
    if guess:
        return f"did you mean {guess!r}?"
    return f"expected one of: {', '.join(model.model_fields)}"


def _diagnostics(exc: ValidationError, located: _Located) -> list[Diagnostic]:
    by_path: dict[Path, Diagnostic] = {}
    for err in exc.errors(include_url=False):
        loc: Path = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            path = located.known(loc) or loc
            by_path.setdefault(
                path,
                Diagnostic(
                    span=located.span(path),
                    field=_dotted(path),
                    message=f"unknown field {key!r}",
                    hint=_unknown_key_hint(key, loc[:-1]),
                ),
            )
            continue
        path = located.known(loc)
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] not in ("value_error", "assertion_error") and "input" in err:
            shown = repr(err["input"])
            message += f" (got {shown if len(shown) < 60 else shown[:57] + '...'})"
        existing = by_path.get(path)
        if existing and message not in existing.message:
            message = f"{existing.message}; or {message}"
        by_path[path] = Diagnostic(
            span=located.span(path), field=_dotted(path) or None, message=message
        )
    return list(by_path.values())


def _as_mapping(data: Any, located: _Located, what: str, source: Source) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        shown = repr(data) if len(repr(data)) < 60 else repr(data)[:57] + "..."
        raise TaskError(
            [Diagnostic(located.span(()), f"{what} must be a mapping of fields, got {shown}")],
            source,
        )
    return data


def parse_task_text(text: str, name: str = "<string>") -> Dag:
    """Parse and validate task YAML (one or more documents) into a `Dag`."""
    source = Source(name, text)
    documents: list[tuple[Any, _Located]] = []
    try:
        loader = yaml.SafeLoader(text)
        try:
            while loader.check_node():
                node = loader.get_node()
                positions: dict[Path, tuple[int, int]] = {}
                dupes: list[Path] = []
                if node is not None:
                    _walk(node, (), positions, dupes)
                located = _Located(name, positions)
                if dupes:
                    raise TaskError(
                        [
                            Diagnostic(located.span(p), f"duplicate key {str(p[-1])!r}")
                            for p in dupes
                        ],
                        source,
                    )
                data = loader.construct_document(node) if node is not None else None
                documents.append((data, located))
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        span = Span(name, mark.line + 1, mark.column + 1) if mark else Span(name)
        problem = exc.problem or exc.context or "invalid YAML"
        raise TaskError([Diagnostic(span, f"invalid YAML: {problem}")], source) from None
    except yaml.YAMLError as exc:
        raise TaskError([Diagnostic(Span(name), f"invalid YAML: {exc}")], source) from None

    documents = [(d, loc) for d, loc in documents if d is not None]
    if not documents:
        raise TaskError([Diagnostic(Span(name), "the file holds no task")], source)

    header: DagHeader | None = None
    if len(documents) > 1:
        first, first_loc = documents[0]
        first_map = _as_mapping(first, first_loc, "a document", source)
        if set(first_map) <= HEADER_KEYS:
            try:
                header = DagHeader.model_validate(first_map)
            except ValidationError as exc:
                raise TaskError(_diagnostics(exc, first_loc), source) from None
            documents = documents[1:]

    tasks: list[Task] = []
    problems: list[Diagnostic] = []
    for data, located in documents:
        mapping = _as_mapping(data, located, "a task", source)
        try:
            tasks.append(Task.model_validate(mapping))
        except ValidationError as exc:
            problems.extend(_diagnostics(exc, located))
    if problems:
        raise TaskError(problems, source)

    if header is None and len(tasks) == 1:
        return Dag(name=tasks[0].name, kind="task", tasks=tuple(tasks))
    kind = "job_group" if header is not None and header.execution == "parallel" else "pipeline"
    delay = header.termination_delay if header else None
    return Dag(
        name=header.name if header else None,
        kind=kind,
        tasks=tuple(tasks),
        primary_tasks=header.primary_tasks if header else None,
        termination_delay=None if delay is None else str(delay),
    )
