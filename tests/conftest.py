"""Shared fixtures: paths to the repository, the examples, and ../shared when present."""

from __future__ import annotations

from pathlib import Path

import pytest

import skyplan

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SYNTHETIC = SHARED / "catalogs" / "skypilot-v8-synthetic"
COMPAT = SHARED / "compat" / "skypilot-examples"


def require_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (a fresh clone has no ../shared)")
    return path


@pytest.fixture(scope="session")
def synthetic_catalog() -> skyplan.Catalog:
    catalog = skyplan.load_catalog(require_shared(SYNTHETIC))
    _ = catalog.frame
    return catalog
