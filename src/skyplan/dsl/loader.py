"""Policy files → the effective `model.Policy`: parse, follow imports, compile, merge.

Imports are relative to the importing file and loaded first; a cycle is an error. Policy files
arrive in pull requests, so an import is confined: it names a `.policy` file by a relative path
that stays, links followed, inside the policy root (the folder of the file given to `load`); what
is read must be a regular file of at most `MAX_BYTES`. Merging
goes in load order, so an importer comes after what it imports and may **tighten but never
loosen** an imported hard rule: it cannot redefine a hard `require`/`deny` (add a new rule to
tighten), nor raise a hard quota's or budget's limit or lower its level; a soft or advisory rule
may be redefined. Tests stay with the file that wrote them.
"""

from __future__ import annotations

import gc
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from skyplan.dsl import ast, codes
from skyplan.dsl.compiler import Unit, Vocabulary, compile_file
from skyplan.dsl.parser import diagnostic, parse
from skyplan.errors import Diagnostic, PolicyError
from skyplan.model import policy as m
from skyplan.source import Source, Span

Reader = Callable[[Path], str]


#: The largest policy file read; the biggest real policies are a few kilobytes.
MAX_BYTES = 1 << 20

#: The most rules, preferences, quotas and budgets in one load, imports included. A plan
#: evaluates each; real policies have tens, and a thousand plan in well under a second.
MAX_RULES = 10_000


class Refused(OSError):
    """A file the loader will not read, with the diagnostic code saying why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _read(path: Path) -> str:
    """The UTF-8 text of a regular file of at most `MAX_BYTES`. Opened without blocking, so a
    FIFO or a device is refused rather than waited on."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Refused(codes.IMPORT_OUTSIDE_ROOT, "not a regular file")
        data = f.read(MAX_BYTES + 1)  # /proc files report size 0: read, do not stat
    if len(data) > MAX_BYTES:
        raise Refused(codes.TOO_COMPLEX, f"larger than {MAX_BYTES >> 20} MiB")
    return data.decode("utf-8")


def _text(path: Path, name: str, at: Span | None, read: Reader) -> str | Diagnostic:
    """A policy file's text, or the diagnostic saying why it cannot be read (at the import
    that named it, else at the file)."""
    try:
        return read(path)
    except UnicodeDecodeError as exc:
        return _undecodable(exc, Span(name))
    except Refused as exc:
        code, reason = exc.code, str(exc)
    except FileNotFoundError:
        code, reason = codes.IMPORT_NOT_FOUND, "file not found"
    except OSError as exc:
        code, reason = codes.IMPORT_NOT_FOUND, exc.strerror or type(exc).__name__
    return diagnostic(at or Span(name), code, f"cannot read {name!r}: {reason}")


def read_policy(path: str | Path) -> str:
    """A policy file's text, read as imports are: a regular file of at most `MAX_BYTES`, in
    UTF-8. Raises `PolicyError` with the located reason otherwise."""
    text = _text(Path(path), str(path), None, _read)
    if isinstance(text, Diagnostic):
        raise PolicyError([text])
    return text


def _confined(written: str, target: Path, root: Path) -> str | None:
    """Why an import may not be read, or None when it may."""
    if Path(written).is_absolute():
        return "imports are relative to the importing file, not absolute"
    if not written.endswith(".policy"):
        return "only .policy files can be imported"
    if not Path(os.path.realpath(target)).is_relative_to(os.path.realpath(root)):
        return f"it leads outside the policy root {str(root)!r}"
    return None


def _undecodable(exc: UnicodeDecodeError, at: Span) -> Diagnostic:
    """SP100 at the line and column of the first byte that is not UTF-8."""
    before = exc.object[: exc.start]
    line = before.count(b"\n") + 1
    col = exc.start - (before.rfind(b"\n") + 1) + 1
    byte = exc.object[exc.start : exc.start + 1].hex()
    return diagnostic(
        Span(at.file, line, col), codes.SYNTAX, f"not UTF-8 text: byte 0x{byte} cannot be read"
    )


@dataclass
class Loaded:
    """The effective policy of some files, every diagnostic, and each file's own tests."""

    policy: m.Policy | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, Source] = field(default_factory=dict)
    units: dict[str, Unit] = field(default_factory=dict)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


def _key(path: Path) -> str:
    """One name per file, however it is reached (`a/../b.policy`, links, relative paths)."""
    if path.exists():
        return str(path.resolve())
    return os.path.normpath(os.path.abspath(path))


class _Loader:
    def __init__(self, vocabulary: Vocabulary, read: Reader) -> None:
        self.vocabulary = vocabulary
        self.read = read
        self.result = Loaded(policy=None)
        self.order: list[str] = []
        self.visiting: list[tuple[str, str]] = []  # (key, name as the user wrote it)
        self.rule_names: dict[str, frozenset[str]] = {}  # key → names it and its imports define
        self.rules = 0  # named statements read so far, over every file

    def load(self, path: Path, name: str, at: Span | None, root: Path | None = None) -> None:
        root = path.parent if root is None else root
        key = _key(path)
        keys = [k for k, _ in self.visiting]
        if key in keys:
            names = [n for _, n in self.visiting[keys.index(key) :]]
            chain = " → ".join([*names, name])
            self.result.diagnostics.append(
                diagnostic(at or Span(name), codes.IMPORT_CYCLE, f"import cycle: {chain}")
            )
            return
        if key in self.result.units:
            return
        text = _text(path, name, at, self.read)
        if isinstance(text, Diagnostic):
            self.result.diagnostics.append(text)
            return
        self.result.sources[name] = Source(name, text)
        try:
            tree = parse(text, name)
        except PolicyError as exc:
            self.result.diagnostics.extend(exc.diagnostics)
            return
        self.visiting.append((key, name))
        imported: set[str] = set()
        for stmt in tree.statements:
            if isinstance(stmt, ast.Import):
                target = path.parent / stmt.path
                shown = (
                    str(Path(name).parent / stmt.path)
                    if Path(name).parent != Path(".")
                    else stmt.path
                )
                refused = _confined(stmt.path, target, root)
                if refused is not None:
                    self.result.diagnostics.append(
                        diagnostic(
                            stmt.span,
                            codes.IMPORT_OUTSIDE_ROOT,
                            f"cannot import {stmt.path!r}: {refused}",
                        )
                    )
                    continue
                self.load(target, shown, stmt.span, root)
                target_key = _key(target)
                imported |= self.rule_names.get(target_key, frozenset())
        self.visiting.pop()
        self._count(tree)  # after its imports: the count goes in load order
        unit = compile_file(tree, self.vocabulary, frozenset(imported))
        own = {
            s.name
            for s in tree.statements
            if isinstance(s, ast.Rule | ast.Prefer | ast.Quota | ast.Budget)
        }
        self.rule_names[key] = frozenset(imported | own)
        self.result.units[key] = unit
        self.result.diagnostics.extend(unit.diagnostics)
        self.order.append(key)

    def _count(self, tree: ast.PolicyFile) -> None:
        """Add `tree`'s rules to the count; the first past `MAX_RULES` is an error."""
        for stmt in tree.statements:
            if isinstance(stmt, ast.Named):
                self.rules += 1
                if self.rules == MAX_RULES + 1:
                    self.result.diagnostics.append(
                        diagnostic(
                            stmt.span,
                            codes.TOO_COMPLEX,
                            f"more than {MAX_RULES:,} rules, preferences, quotas and budgets "
                            "in one policy (its imports included)",
                        )
                    )


def _named(policy: m.Policy) -> dict[str, m.Rule | m.Preference | m.Quota | m.Budget]:
    return {r.name: r for r in policy.named()}


def _loosens(old: object, new: object) -> str | None:
    """Why replacing `old` by `new` loosens a hard rule, or None when it does not."""
    level = getattr(old, "level", None)
    if level != m.Level.HARD:
        return None
    if type(old) is not type(new):
        return "it changes the kind of an imported hard rule"
    if getattr(new, "level", None) != m.Level.HARD:
        return f"it lowers the imported hard rule to {getattr(new, 'level', None)}"
    if isinstance(old, m.Rule):
        return "an imported hard rule cannot be redefined; add a new rule to tighten it"
    if isinstance(old, m.Quota | m.Budget):
        assert isinstance(new, m.Quota | m.Budget)
        if new.limit > old.limit:
            return f"it raises the limit from {old.limit:g} to {new.limit:g}"
        if new.when != old.when:
            return "it changes when the imported hard limit applies; add a new limit instead"
        if new.per != old.per:
            return "it changes what the imported hard limit groups by; add a new limit instead"
        if isinstance(old, m.Quota) and isinstance(new, m.Quota) and new.metric != old.metric:
            return "it changes what the imported hard quota counts; add a new quota instead"
    return None


def _merge(loaded: Loaded, keys: Sequence[str], roots: set[str]) -> m.Policy:
    merged: dict[str, m.Rule | m.Preference | m.Quota | m.Budget] = {}
    name, version = "default", 1
    objective, failover = m.Objective(), m.Failover()
    tests: list[m.PolicyTest] = []
    for key in keys:
        unit = loaded.units[key]
        assert unit.policy is not None
        policy = unit.policy
        for rule_name, rule in _named(policy).items():
            if rule_name in merged:
                why = _loosens(merged[rule_name], rule)
                if why:
                    origin = getattr(rule, "origin", None)
                    span = Span(origin.file, origin.line, origin.col) if origin else Span(key)
                    loaded.diagnostics.append(
                        diagnostic(span, codes.LOOSENS_HARD_RULE, f"rule {rule_name!r}: {why}")
                    )
                    continue
            merged[rule_name] = rule
        if unit.tree.header is not None:
            name, version = policy.name, policy.version
        if any(isinstance(s, ast.Objective) for s in unit.tree.statements):
            objective = policy.objective
        if any(isinstance(s, ast.Failover) for s in unit.tree.statements):
            failover = policy.failover
        if key in roots:
            tests.extend(policy.tests)
    values = list(merged.values())
    return m.Policy(
        name=name,
        version=version,
        rules=tuple(r for r in values if isinstance(r, m.Rule)),
        preferences=tuple(r for r in values if isinstance(r, m.Preference)),
        quotas=tuple(r for r in values if isinstance(r, m.Quota)),
        budgets=tuple(r for r in values if isinstance(r, m.Budget)),
        objective=objective,
        failover=failover,
        tests=tuple(tests),
    )


def load(
    paths: Sequence[str | Path],
    vocabulary: Vocabulary | None = None,
    *,
    read: Reader = _read,
    root: str | Path | None = None,
) -> Loaded:
    """Load and merge policy files (later files after earlier ones, imports first). Never
    raises for bad input: the diagnostics say what is wrong and `policy` is None then.
    Imports stay inside `root` (default: the folder of each file in `paths`)."""
    with _paused_gc():
        return _load(paths, vocabulary, read, None if root is None else Path(root))


@contextmanager
def _paused_gc() -> Iterator[None]:
    """Parsing builds many small objects that all stay alive until the AST is done; the cyclic
    garbage collector's passes over them cost about a fifth of the time and free nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load(
    paths: Sequence[str | Path], vocabulary: Vocabulary | None, read: Reader, root: Path | None
) -> Loaded:
    loader = _Loader(vocabulary or Vocabulary(), read)
    roots = set()
    for raw in paths:
        path = Path(raw)
        loader.load(path, str(raw), None, root)
        roots.add(_key(path))
    loaded = loader.result
    if not loaded.errors:
        loaded.policy = _merge(loaded, loader.order, roots)
    if loaded.errors:
        loaded.policy = None
    return loaded


def load_or_raise(paths: Sequence[str | Path], vocabulary: Vocabulary | None = None) -> m.Policy:
    loaded = load(paths, vocabulary)
    if loaded.policy is None:
        raise PolicyError(loaded.errors, loaded.sources)
    return loaded.policy
