"""`skyplan jobs` end to end on the local backend, as a user runs it: the real controller
process in the background, a real SQLite store under SKYPLAN_HOME, exit codes 0 / 1 / 2 and
never a traceback."""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_clusters import Cli
from tests.runtime.conftest import wait_until


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    runner = Cli(tmp_path / "home", tmp_path)
    runner.env.update(SKYPLAN_JOBS_POLL="0.2", SKYPLAN_JOBS_TICK="1")
    yield runner
    runner("jobs", "cancel", "-a", "-y", check=None)
    wait_until(lambda: not queue(runner), timeout=30, what="every managed job to end")


def queue(cli: Cli, *flags: str) -> list[dict[str, Any]]:
    found = cli.json("jobs", "queue", *flags)
    assert isinstance(found, list)
    return found


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_jobs_launch_follows_the_job_and_queue_shows_how_it_ran(cli: Cli, tmp_path: Path) -> None:
    task = write(
        tmp_path,
        "task.yaml",
        """\
        name: greet
        resources:
          infra: local
        run: echo "hello $WHO with $TOKEN"
        """,
    )
    done = cli("jobs", "launch", str(task), "--env", "WHO=you", "--secret", "TOKEN=s3cr3t")
    assert "hello you with s3cr3t" in done.stdout
    assert "managed job 1 SUCCEEDED" in done.stderr

    (job,) = queue(cli, "-a")
    assert (job["job_id"], job["name"], job["status"]) == (1, "greet", "SUCCEEDED")
    assert job["secret_names"] == ["TOKEN"]
    assert {"spot_hours", "ondemand_hours", "cost", "recoveries", "segments"} <= set(job)
    assert "hello you with s3cr3t" in cli("jobs", "logs", "1", "--no-follow").stdout
    history = cli("jobs", "logs", "greet", "--controller").stdout
    assert "PENDING -> STARTING" in history and "RUNNING -> SUCCEEDED" in history
    table = cli("jobs", "queue", "-a").stdout
    assert "greet" in table and "SUCCEEDED" in table
    # The secret's value is on no table of the store.
    with sqlite3.connect(cli.home / "state.db") as db:
        dump = "\n".join(db.iterdump())
    assert "s3cr3t" not in dump


def test_a_detached_job_can_be_cancelled(cli: Cli, tmp_path: Path) -> None:
    done = cli("jobs", "launch", "-d", "--infra", "local", "-n", "long", "sleep 600")
    assert "managed job 1 submitted" in done.stderr
    wait_until(lambda: queue(cli)[0]["status"] == "RUNNING", timeout=30, what="it to run")

    assert "cancelling 1 managed job(s): 1" in cli("jobs", "cancel", "-y", "-n", "long").stdout
    wait_until(lambda: not queue(cli), timeout=30, what="the cancel to finish")
    (job,) = queue(cli, "-a")
    assert job["status"] == "CANCELLED"
    assert cli.json("status", "--no-refresh") == {"clusters": [], "orphans": {}}


def test_ctrl_c_while_following_a_managed_job_detaches(cli: Cli) -> None:
    cmd = "echo started; sleep 600"
    done = cli.interrupted("jobs", "launch", "--infra", "local", "-n", "long", cmd, once="started")
    assert done.returncode == 0, done.stderr
    assert "detached: managed job 1 keeps running (`skyplan jobs logs 1`" in done.stderr
    done = cli.interrupted("jobs", "logs", "long", once="started")
    assert "detached: managed job 1 keeps running" in done.stderr
    assert queue(cli)[0]["status"] == "RUNNING"


def test_a_failed_job_exits_100_as_skypilots_failed(cli: Cli) -> None:
    done = cli("jobs", "launch", "--infra", "local", "echo oops; exit 4", check=100)
    assert "oops" in done.stdout
    assert "FAILED: exited with code 4" in done.stderr
    assert "oops" in cli("jobs", "logs", "1", "--no-follow", check=100).stdout


def test_a_job_group_runs_its_members_together_and_fails_as_one(cli: Cli, tmp_path: Path) -> None:
    group = write(
        tmp_path,
        "group.yaml",
        """\
        name: grp
        execution: parallel
        ---
        name: server
        resources:
          infra: local
        run: sleep 600
        ---
        name: client
        resources:
          infra: local
        run: sleep 1; exit 4
        """,
    )
    done = cli("jobs", "launch", str(group), check=100)
    assert "managed job group 1 submitted: jobs 1 (grp/server), 2 (grp/client)" in done.stderr
    assert "managed job 2 FAILED: exited with code 4" in done.stderr
    assert "managed job 1 CANCELLED: job 2 of its group ended FAILED" in done.stderr
    assert [(j["job_id"], j["group_id"]) for j in queue(cli, "-a")] == [(1, 1), (2, 1)]


@pytest.mark.parametrize(
    ("recovery", "message"),
    [
        pytest.param(
            "{strategy: eager_next_regoin}",
            "did you mean 'eager-next-region'?",
            id="unknown-strategy",
        ),
        pytest.param(
            "{strategy: uniform-progress, deadline: 10h, duration: 24h}",
            "is shorter than its duration",
            id="deadline-before-duration",
        ),
        pytest.param(
            "{strategy: uniform-progress, duration: 24h}",
            "needs `deadline` and `duration`",
            id="deadline-missing",
        ),
        pytest.param("{max_restarts_on_errors: -1}", "non-negative integer", id="restarts"),
        pytest.param("{deadline: -3h}", "must be a duration like 36h", id="negative-duration"),
        pytest.param("{recover_on_exit_codes: [x]}", "exit codes 0-255", id="exit-codes"),
    ],
)
def test_bad_job_recovery_is_a_located_error_and_records_nothing(
    cli: Cli, tmp_path: Path, recovery: str, message: str
) -> None:
    task = write(
        tmp_path,
        "bad.yaml",
        f"""\
        resources:
          infra: local
          job_recovery: {recovery}
        run: echo hi
        """,
    )
    done = cli("jobs", "launch", str(task), check=2)
    assert message in done.stderr
    assert "bad.yaml:3:" in done.stderr  # the job_recovery line
    assert queue(cli, "-a") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("jobs", "cancel", "-y"), "give job ids, or --name", id="cancel-nothing"),
        pytest.param(("jobs", "launch", "--infra", "local"), "Missing argument", id="no-task"),
    ],
)
def test_jobs_usage_errors_exit_2(cli: Cli, args: tuple[str, ...], message: str) -> None:
    assert message in cli(*args, check=2).stderr


def test_an_unknown_managed_job_exits_102_as_skypilots_not_found(cli: Cli) -> None:
    assert "no managed job 7" in cli("jobs", "logs", "7", check=102).stderr
    assert "no managed job named 'nope'" in cli("jobs", "logs", "nope", check=102).stderr
