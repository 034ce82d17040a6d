"""What of a local directory is synced to the nodes, as SkyPilot decides it: a `.skyignore` at
the directory's top, if there is one, is the only rule; otherwise every `.gitignore` in the tree
applies to the paths under its own folder, a deeper file overriding a shallower one (`!` keeps a
path a parent file ignores), as git reads them. All are gitignore syntax, read with `pathspec`;
git's global excludes and `.git/info/exclude` are not read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pathspec

#: `skip(path)`: whether to leave out a path relative to the synced directory, in POSIX form, a
#: directory with a trailing `/` (a directory left out is not descended into).
Skip = Callable[[str], bool]

SKYIGNORE = ".skyignore"
GITIGNORE = ".gitignore"

#: (folder relative to the synced directory, with a trailing `/` or empty at the top; its rules)
_Rules = list[tuple[str, pathspec.GitIgnoreSpec]]


def skip_for(root: Path) -> Skip | None:
    """The rule for syncing `root`, or None when it has no ignore file (everything is synced)."""
    if not root.is_dir():
        return None
    top = root / SKYIGNORE
    if top.is_file():
        return _read(top).match_file
    rules = _gitignores(root)
    if not rules:
        return None
    return lambda path: _ignored(rules, path)


def _read(path: Path) -> pathspec.GitIgnoreSpec:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _gitignores(root: Path) -> _Rules:
    """Every `.gitignore` under `root`, parents before children, not looking inside folders an
    ignore file already leaves out (a `node_modules/` or `.venv/` is never walked)."""
    rules: _Rules = []
    for top, dirs, files in os.walk(root):
        rel = Path(top).relative_to(root).as_posix()
        prefix = "" if rel == "." else f"{rel}/"
        if GITIGNORE in files and (Path(top) / GITIGNORE).is_file():
            rules.append((prefix, _read(Path(top) / GITIGNORE)))
        dirs[:] = [d for d in dirs if not _ignored(rules, f"{prefix}{d}/")]
    return rules


def _ignored(rules: _Rules, path: str) -> bool:
    """The decision of the deepest ignore file with a pattern matching `path`."""
    ignored = False
    for prefix, spec in rules:
        if path.startswith(prefix):
            include = spec.check_file(path[len(prefix) :]).include
            if include is not None:
                ignored = include
    return ignored
