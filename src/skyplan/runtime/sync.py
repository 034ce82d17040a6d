"""What of a local directory is synced to the nodes: as SkyPilot does, a `.skyignore` at the
directory's top decides if there is one, else its `.gitignore` (both in gitignore syntax, read
with `pathspec`). Nested ignore files and git's global excludes are not read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pathspec

#: `skip(path)`: whether to leave out a path relative to the synced directory, in POSIX form, a
#: directory with a trailing `/` (a directory left out is not descended into).
Skip = Callable[[str], bool]

IGNORE_FILES = (".skyignore", ".gitignore")


def skip_for(root: Path) -> Skip | None:
    """The rule for syncing `root`, or None when it has no ignore file (everything is synced)."""
    if not root.is_dir():
        return None
    for name in IGNORE_FILES:
        path = root / name
        if path.is_file():
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            spec = pathspec.GitIgnoreSpec.from_lines(lines)
            return spec.match_file
    return None
