"""The public API is small, flat and guarded: `skyplan.__all__` is exactly this set, sorted,
every name resolves, and `import skyplan` stays light (no solver, DSL or backend SDKs)."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

import skyplan

EXPORTED = {
    "AuthError",
    "BackendError",
    "BatchPlan",
    "BatchRequest",
    "CapacityError",
    "Catalog",
    "CatalogError",
    "ClusterNotFound",
    "ClusterStateError",
    "ClusterStatus",
    "Dag",
    "Diagnostic",
    "EgressModel",
    "InputError",
    "InvalidRequestError",
    "JobNotFound",
    "JobRecord",
    "JobStatus",
    "LaunchFailed",
    "LaunchResult",
    "NoFeasiblePlacement",
    "Offer",
    "PipelinePlan",
    "Placement",
    "PlacementError",
    "Plan",
    "Policy",
    "PolicyDiff",
    "PolicyError",
    "QuotaError",
    "Rejection",
    "ReplicaPlan",
    "RequestContext",
    "Resources",
    "Scope",
    "ServiceSpec",
    "Session",
    "SkyplanError",
    "StateError",
    "Task",
    "TaskError",
    "TestReport",
    "TransientError",
    "Verdict",
    "__version__",
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
    "read_policy",
    "refresh_catalog",
    "request_context",
    "run_policy_tests",
    "task_schema",
    "with_overrides",
}
#: Loaded on first use of the API (or by the layers that need them), never by `import skyplan`.
HEAVY = (
    "ortools", "lark", "kubernetes", "libcloud", "paramiko", "polars", "pydantic", "sqlalchemy",
    "psycopg",
)  # fmt: skip


def test_exported_names_are_exactly_these() -> None:
    assert set(skyplan.__all__) == EXPORTED


def test_all_is_sorted_without_duplicates() -> None:
    assert skyplan.__all__ == sorted(skyplan.__all__)
    assert len(skyplan.__all__) == len(set(skyplan.__all__))


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(skyplan, name) is not None


def test_version_matches_the_package_metadata() -> None:
    assert skyplan.__version__ == importlib.metadata.version("skyplan")


@pytest.mark.parametrize(
    ("error", "parent", "exit_code"),
    [
        pytest.param(skyplan.InputError, skyplan.SkyplanError, 2, id="input-error"),
        pytest.param(skyplan.TaskError, skyplan.InputError, 2, id="task-error"),
        pytest.param(skyplan.CatalogError, skyplan.InputError, 2, id="catalog-error"),
        pytest.param(skyplan.PlacementError, skyplan.SkyplanError, 1, id="placement-error"),
        pytest.param(skyplan.NoFeasiblePlacement, skyplan.PlacementError, 1, id="no-feasible"),
    ],
)
def test_error_tree(error: type[skyplan.SkyplanError], parent: type, exit_code: int) -> None:
    assert issubclass(error, parent)
    assert error.exit_code == exit_code


def test_import_skyplan_loads_no_heavy_dependency() -> None:
    code = (
        "import json, sys\n"
        "import skyplan\n"
        f"heavy = {HEAVY!r}\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & set(heavy))\n"
        "print(json.dumps(loaded))\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == []


def test_the_first_use_of_a_name_loads_the_api() -> None:
    code = (
        "import sys\n"
        "import skyplan\n"
        "assert 'skyplan.api' not in sys.modules\n"
        "from skyplan import plan, Task\n"
        "assert 'skyplan.api' in sys.modules and Task.__module__ == 'skyplan.model.task'\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert child.returncode == 0, child.stderr


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'plan_everything'"):
        _ = skyplan.plan_everything  # type: ignore[attr-defined]


def test_load_policy_takes_one_path_as_well_as_several() -> None:

    path = Path(__file__).resolve().parents[1] / "policies" / "default.policy"
    assert skyplan.load_policy(path) == skyplan.load_policy([path])
    assert skyplan.load_policy(str(path)) == skyplan.load_policy([str(path)])


def test_the_package_is_typed() -> None:
    assert (Path(skyplan.__file__).parent / "py.typed").is_file()
