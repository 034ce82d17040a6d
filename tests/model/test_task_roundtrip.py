"""A task read back from the store is the task that was stored: `Task.model_validate` accepts
its own JSON dump (managed jobs and cluster records keep tasks that way)."""

from __future__ import annotations

from pathlib import Path

import pytest

import skyplan
from skyplan.model import Task
from tests.conftest import REPO, SHARED, require_shared

COMPAT = SHARED / "compat" / "skypilot-examples"


def _tasks(paths: list[Path]) -> list[Task]:
    found = []
    for path in paths:
        try:
            found.extend(skyplan.load_task(path).tasks)
        except skyplan.SkyplanError:
            continue  # files that are meant to be rejected
    return found


def roundtrip(task: Task) -> Task:
    return Task.model_validate(task.model_dump(mode="json", exclude_defaults=True))


def test_every_example_task_survives_a_json_round_trip() -> None:
    tasks = _tasks(sorted(REPO.glob("examples/**/*.yaml")))
    assert tasks
    for task in tasks:
        assert roundtrip(task) == task


@pytest.mark.shared
def test_every_skypilot_example_task_survives_a_json_round_trip() -> None:
    tasks = _tasks(sorted(require_shared(COMPAT).glob("*.yaml")))
    assert len(tasks) > 300
    for task in tasks:
        assert roundtrip(task) == task


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"resources": {"infra": "aws/us-east-1/us-east-1a"}}, id="infra"),
        pytest.param({"resources": {"cpus": "4+", "memory": "2x"}}, id="quantities"),
        pytest.param({"resources": {"accelerators": ["A100:8", "H100:8"]}}, id="ordered-gpus"),
        pytest.param({"resources": {"autostop": False}}, id="autostop-off"),
        pytest.param(
            {
                "resources": {
                    "job_recovery": {
                        "strategy": "uniform-progress",
                        "deadline": "36h",
                        "duration": "24h",
                        "changeover": "12m",
                    }
                }
            },
            id="deadline-recovery",
        ),
    ],
)
def test_a_field_survives_a_json_round_trip(fields: dict[str, object]) -> None:
    task = Task.model_validate({"run": "true", **fields})
    assert roundtrip(task) == task
