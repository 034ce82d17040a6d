"""The cluster commands end to end on the local backend, as a user runs them: real processes,
a real SQLite store under SKYPLAN_HOME, real agents in the background.

launch / exec / status / queue / logs / cancel / stop / start / autostop / down / check / events:
output, exit codes (0 ok, 1 cannot be satisfied, 2 invalid input), and never a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


class Cli:
    def __init__(self, home: Path, cwd: Path) -> None:
        self.home = home
        self.cwd = cwd
        self.env = {**os.environ, "SKYPLAN_HOME": str(home)}
        self.env.pop("SKYPLAN_DB_URL", None)

    def __call__(self, *args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "skyplan", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "Traceback" not in done.stderr, done.stderr
        if check is not None:
            assert done.returncode == check, (done.returncode, done.stdout, done.stderr)
        return done

    def json(self, *args: str) -> object:
        return json.loads(self(*args, "--json").stdout)

    def interrupted(self, *args: str, once: str) -> subprocess.CompletedProcess[str]:
        """Run a command, press Ctrl-C (SIGINT) once its stdout has printed `once`, and
        return what it printed; a command that does not stop within 20 s fails the test."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "skyplan", *args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if once in line:
                break
        proc.send_signal(signal.SIGINT)
        try:
            rest, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"{args} went on after Ctrl-C") from None
        assert "Traceback" not in err, err
        return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(seen) + rest, err)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(tmp_path / "home", tmp_path)
    yield runner
    for cluster in runner.json("status", "--no-refresh")["clusters"]:  # type: ignore[index]
        runner("down", "-y", cluster["name"], check=None)


def test_launch_runs_a_command_and_streams_its_output(cli: Cli) -> None:
    done = cli(
        "launch", "-c", "dev", "--infra", "local", "echo hello from rank $SKYPILOT_NODE_RANK"
    )
    assert "hello from rank 0" in done.stdout
    assert "job 1 succeeded" in done.stderr
    (status,) = cli.json("status")["clusters"]  # type: ignore[index]
    assert (status["name"], status["status"], status["cloud"]) == ("dev", "up", "local")


def test_a_failing_job_makes_launch_exit_100_as_skypilots_failed(cli: Cli) -> None:
    # Was exit 1; SkyPilot's job exit codes are 100 failed, 101 not finished, 102 not found,
    # 103 cancelled.
    done = cli("launch", "-c", "dev", "--infra", "local", "echo oops; exit 3", check=100)
    assert "oops" in done.stdout
    assert "exited with code 3" in done.stderr
    (job,) = cli.json("queue", "dev", "--all")  # type: ignore[misc]
    assert (job["status"], job["exit_code"]) == ("failed", 3)
    assert "oops" in cli("logs", "dev", "1", check=100).stdout
    cli("logs", "dev", "9", check=102)


def test_a_task_file_runs_setup_then_run_with_workdir_envs_and_secrets(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "data.txt").write_text("payload\n")
    (tmp_path / "task.yaml").write_text(
        textwrap.dedent(
            """\
            name: demo
            workdir: code
            resources:
              infra: local
            envs:
              GREETING: hi
            secrets:
              TOKEN: null
            setup: echo setup saw $GREETING
            run: |
              cat data.txt
              echo "$GREETING token-length=${#TOKEN}"
            """
        )
    )
    done = cli("launch", "-c", "dev", "task.yaml", "--secret", "TOKEN=sup3rs3cret")
    assert "(setup) setup saw hi" in done.stdout
    assert "payload" in done.stdout
    assert "hi token-length=11" in done.stdout
    for command in (("status",), ("queue", "dev", "--all"), ("events", "dev")):
        assert "sup3rs3cret" not in cli(*command, "--json").stdout
    assert b"sup3rs3cret" not in (cli.home / "state.db").read_bytes()


def test_a_secret_without_a_value_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "task.yaml").write_text("resources:\n  infra: local\nsecrets:\n  TOKEN: null\n")
    done = cli("launch", "-c", "dev", "task.yaml", check=2)
    assert "TOKEN" in done.stderr and "--secret" in done.stderr


def test_ctrl_c_while_following_detaches_and_the_job_keeps_running(cli: Cli) -> None:
    cmd = "echo started; sleep 600"
    done = cli.interrupted("launch", "-c", "dev", "--infra", "local", cmd, once="started")
    assert done.returncode == 0, done.stderr
    assert "detached: job 1 on dev keeps running (`skyplan logs dev 1`" in done.stderr
    done = cli.interrupted("exec", "dev", cmd, once="started")
    assert "detached: job 2 on dev keeps running" in done.stderr
    done = cli.interrupted("logs", "dev", "2", once="started")
    assert (done.returncode, "detached: job 2 on dev keeps running") == (
        0,
        done.stderr.strip()[:36],
    )
    jobs = {j["job_id"]: j["status"] for j in cli.json("queue", "dev")}  # type: ignore[attr-defined]
    assert jobs == {1: "running", 2: "running"}


def test_exec_queue_logs_and_cancel_on_an_existing_cluster(cli: Cli) -> None:
    cli("launch", "-c", "dev", "--infra", "local")
    assert "second" in cli("exec", "dev", "echo second").stdout
    job = cli.json("exec", "dev", "sleep 600", "-d")
    assert job["status"] in ("pending", "running")  # type: ignore[index]
    active = cli.json("queue", "dev")
    assert [j["job_id"] for j in active] == [2]  # type: ignore[union-attr,index]
    # An id the cluster never had was "cancelled 0 job(s): -", exit 0; now nothing is
    # cancelled, not even the ids that exist.
    unknown = cli("cancel", "dev", "2", "7", "-y", check=102)
    assert "cluster 'dev' has no job 7 (recent: 1, 2)" in unknown.stderr
    assert [j["job_id"] for j in cli.json("queue", "dev")] == [2]  # type: ignore[union-attr,index]
    cli("logs", "dev", "2", "--no-follow", check=101)  # still running: not finished
    assert "cancelled 1 job(s): 2" in cli("cancel", "dev", "2", "-y").stdout
    cli("logs", "dev", "2", check=103)
    assert cli.json("queue", "dev") == []
    assert "cancelled 0 job(s): -" in cli("cancel", "dev", "1", "-y").stdout  # it had ended
    assert "second" in cli("logs", "dev", "1", "--no-follow").stdout


def test_queue_shows_several_clusters_or_every_one(cli: Cli) -> None:
    # `queue` took exactly one cluster.
    cli("launch", "-c", "one", "--infra", "local", "echo first")
    cli("launch", "-c", "two", "--infra", "local", "echo second")
    jobs = cli.json("queue", "one", "two", "-a")
    assert [(j["cluster"], j["job_id"]) for j in jobs] == [("one", 1), ("two", 1)]  # type: ignore[index,union-attr]
    table = cli("queue", "-a").stdout
    assert "cluster one" in table and "cluster two" in table
    assert "cluster one: no active jobs" in cli("queue").stdout
    cli("queue", "one", "nope", check=2)


def test_queue_limit_shows_the_newest_jobs_and_says_how_many_it_left_out(cli: Cli) -> None:
    # `queue -a` printed every job through rich: 10,000 jobs took 8.8 s on a terminal.
    cli("launch", "-c", "many", "--infra", "local", "echo 1")
    for n in (2, 3, 4):
        cli("exec", "many", f"echo {n}")
    done = cli("queue", "many", "-a", "--limit", "2")
    ids = [line.split()[0] for line in done.stdout.splitlines()[1:]]
    assert ids == ["3", "4"]
    assert "2 earlier job(s) not shown; --limit 0 shows all" in done.stderr
    assert len(cli("queue", "many", "-a").stdout.splitlines()) == 5  # piped: all, and a header
    assert [j["job_id"] for j in cli.json("queue", "many", "-a", "--limit", "1")] == [4]  # type: ignore[index,union-attr]


def test_every_command_that_changes_clusters_answers_in_json(cli: Cli) -> None:
    # stop, start, down, autostop and cancel had no --json.
    cli("launch", "-c", "dev", "--infra", "local")
    job = cli.json("exec", "dev", "sleep 600", "-d")
    cancelled = cli.json("cancel", "dev", str(job["job_id"]), "-y")  # type: ignore[index]
    assert [(j["job_id"], j["status"]) for j in cancelled] == [(1, "cancelled")]  # type: ignore[index,union-attr]
    assert cli.json("autostop", "dev", "-i", "30") == {
        "cluster": "dev",
        "idle_minutes": 30,
        "down": False,
    }
    assert cli.json("stop", "dev", "-y") == {"stop": ["dev"], "left": []}
    assert cli.json("start", "dev") == {"start": ["dev"], "left": []}
    assert cli.json("down", "-a", "-y") == {"down": ["dev"], "left": []}
    assert cli.json("down", "-a", "-y") == {"down": [], "left": []}


def test_stop_start_and_autostop(cli: Cli) -> None:
    cli("launch", "-c", "dev", "--infra", "local")
    cli("stop", "dev", "-y")
    assert cli.json("status")["clusters"][0]["status"] == "stopped"  # type: ignore[index]
    assert "cluster 'dev' is stopped" in cli("exec", "dev", "true", check=1).stderr
    cli("start", "dev")
    assert cli.json("status")["clusters"][0]["status"] == "up"  # type: ignore[index]
    cli("autostop", "dev", "-i", "0", "--down")
    deadline = time.monotonic() + 30
    while cli.json("status", "--no-refresh")["clusters"] and time.monotonic() < deadline:  # type: ignore[index]
        time.sleep(0.5)
    assert cli.json("status")["clusters"] == []  # type: ignore[index]
    assert not list((cli.home / "local").iterdir())


def test_down_removes_the_nodes_and_the_record(cli: Cli) -> None:
    cli("launch", "-c", "dev", "--infra", "local", "--num-nodes", "2")
    assert len(list((cli.home / "local" / "dev").iterdir())) == 2
    cli("down", "dev", "-y")
    assert cli.json("status")["clusters"] == []  # type: ignore[index]
    assert not (cli.home / "local" / "dev").exists()
    kinds = [(e["kind"], e["new"]) for e in cli.json("events", "dev")]  # type: ignore[union-attr,index]
    assert ("cluster", "deleted") in kinds


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        pytest.param(("status", "nope"), 2, "no cluster named 'nope'", id="unknown-cluster"),
        pytest.param(("queue", "nope"), 2, "no cluster named 'nope'", id="queue-unknown"),
        pytest.param(("cancel", "dev"), 2, "--all", id="cancel-needs-ids"),
        pytest.param(("autostop", "dev"), 2, "-i MINUTES or --cancel", id="autostop-usage"),
        pytest.param(
            ("launch", "-c", "x", "--gpus", "H100:8"),
            1,
            "--infra local",
            id="nothing-usable-says-why",
        ),
        pytest.param(("launch", "missing.yaml"), 2, "missing.yaml", id="missing-task-file"),
    ],
)
def test_errors_are_one_line_with_the_right_exit_code(
    cli: Cli, args: tuple[str, ...], code: int, message: str
) -> None:
    done = cli(*args, check=code)
    assert message in done.stderr


def test_reusing_a_cluster_that_does_not_fit_is_refused(cli: Cli) -> None:
    cli("launch", "-c", "dev", "--infra", "local")
    done = cli("launch", "-c", "dev", "--infra", "local", "--gpus", "A100:1", "true", check=1)
    assert "cannot take this task" in done.stderr


def test_check_lists_every_backend_with_a_reason(cli: Cli) -> None:
    checks = {c["backend"]: c for c in cli.json("check")}  # type: ignore[union-attr]
    assert checks["local"]["ok"] is True
    assert checks["ssh"]["ok"] is False
    assert "ssh_node_pools.yaml" in checks["ssh"]["reason"]
    assert checks["aws"]["ok"] is False
    assert "no AWS credentials" in checks["aws"]["reason"]
    assert checks["kubernetes"]["ok"] is False
    assert "kubeconfig" in checks["kubernetes"]["reason"]


@pytest.mark.parametrize("name", ["9lives", "has space", "semi;colon", "a" * 64, "trailing-"])
def test_a_cluster_name_that_paths_and_tags_cannot_hold_is_refused(cli: Cli, name: str) -> None:
    done = cli("launch", "-c", name, "--infra", "local", check=2)
    assert "invalid cluster name" in done.stderr


def _agents_of(home: Path) -> list[int]:
    """Agent processes started for this skyplan home."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"skyplan.execution.agent" in cmdline and f"SKYPLAN_HOME={home}".encode() in environ:
            found.append(int(proc.name))
    return found


def test_status_and_queue_catch_up_when_no_agent_ran(cli: Cli) -> None:
    cli("launch", "-c", "dev", "--infra", "local")
    job = cli.json("exec", "dev", "sleep 1", "-d")
    # Kill the agent the CLI started: status and queue must still tell the truth.
    deadline = time.monotonic() + 10
    while not (agents := _agents_of(cli.home)):
        assert time.monotonic() < deadline, "the exec started no agent"
        time.sleep(0.1)
    for pid in agents:
        os.kill(pid, signal.SIGKILL)
    time.sleep(2)
    (status,) = cli.json("status")["clusters"]  # type: ignore[index]
    assert status["active_jobs"] == 0
    (done,) = cli.json("queue", "dev", "--all")  # type: ignore[misc]
    assert (done["job_id"], done["status"]) == (job["job_id"], "succeeded")  # type: ignore[index]


def test_launch_obeys_a_policy_and_records_an_override_of_a_soft_rule(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "clouds.policy").write_text(
        'policy "clouds" version 1\n\nrequire "clouds only" cloud != "local" level soft\n'
    )
    args = ("launch", "--dryrun", "--infra", "local", "--policy", "clouds.policy", "--json")
    denied = cli(*args, check=1)
    assert "clouds only" in denied.stderr
    allowed = json.loads(cli(*args, "--override", "clouds only=a laptop demo").stdout)
    (placement,) = allowed["placements"]
    assert placement["cloud"] == "local"


# -- everyday use (issue 14) -------------------------------------------------------------------


def test_a_command_of_several_words_runs_with_env_from_here_and_from_a_file(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "vars.env").write_text("# a dotenv file\nFROM_FILE=filed\nBOTH=from-file\n")
    cli.env["FROM_HERE"] = "here"
    done = cli(
        "launch", "-c", "words", "--infra", "local",
        "--env", "FROM_HERE", "--env-file", str(tmp_path / "vars.env"), "--env", "BOTH=flag",
        "echo", "$FROM_HERE", "$FROM_FILE", "$BOTH",
    )  # fmt: skip
    assert "here filed flag" in done.stdout


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        pytest.param("NOT_SET_ANYWHERE", "NOT_SET_ANYWHERE is not set here", id="unset"),
        pytest.param("1BAD=x", "is not an environment variable name", id="bad-name"),
    ],
)
def test_an_env_that_cannot_be_given_is_a_usage_error(cli: Cli, flag: str, message: str) -> None:
    done = cli("launch", "--infra", "local", "--env", flag, "true", check=2)
    assert message in done.stderr


def test_logs_of_an_unknown_cluster_says_so_and_exits_2(cli: Cli) -> None:
    done = cli("logs", "nope", check=2)
    assert "no cluster named 'nope'" in done.stderr


def test_down_all_and_stop_all_take_every_cluster(cli: Cli) -> None:
    for name in ("one", "two"):
        cli("launch", "-c", name, "--infra", "local", "-d", "true")
    assert "name the cluster(s) to down, or pass --all" in cli("down", check=2).stderr
    assert "not both" in cli("down", "-a", "one", check=2).stderr
    done = cli("down", "-a", "-y")
    assert "one: down done" in done.stdout and "two: down done" in done.stdout
    assert cli.json("status", "--no-refresh")["clusters"] == []  # type: ignore[index]
    assert "no cluster to stop" in cli("stop", "-a", "-y").stderr
