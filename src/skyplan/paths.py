"""Where skyplan keeps a user's things: `$SKYPLAN_HOME` (default `~/.skyplan`) holds the store,
keys, pools and refreshed catalogs (`catalogs/`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def default_home(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("SKYPLAN_HOME") or Path.home() / ".skyplan").expanduser()


def refreshed_catalogs(environ: Mapping[str, str] = os.environ) -> Path:
    """Where `skyplan catalog refresh CLOUD` writes `CLOUD.csv` unless told otherwise."""
    return default_home(environ) / "catalogs"
