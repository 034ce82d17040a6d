"""Shared fixtures: paths to the repository, the examples, and ../shared when present."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

import skyplan

# Tests never reach a real cloud or cluster by accident: a developer's AWS credentials and
# kubeconfig are hidden from every test and from the CLI processes tests start. (The Kubernetes
# contract tests opt in to a real cluster with SKYPLAN_REAL_K8S=1.)
for _name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
    os.environ.pop(_name, None)
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ.pop("SKYPLAN_AWS_ENDPOINT", None)
for _name in (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_SUBSCRIPTION_ID",
):
    os.environ.pop(_name, None)
if os.environ.get("SKYPLAN_REAL_K8S") != "1":
    os.environ["KUBECONFIG"] = os.devnull
# Prepared catalogs are cached in a folder of the test run's own, never the user's ~/.cache,
# and no test reads the user's ~/.skyplan (its refreshed catalogs would change every plan).
os.environ["SKYPLAN_CACHE_DIR"] = tempfile.mkdtemp(prefix="skyplan-test-cache-")
os.environ["SKYPLAN_HOME"] = tempfile.mkdtemp(prefix="skyplan-test-home-")

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
