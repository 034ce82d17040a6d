"""SshRunner against real sshd: commands, streaming, env and cwd, timeouts, uploads (one tar
stream, or SFTP on a host without tar), reconnection, unreachable hosts, and host-key pinning."""

from __future__ import annotations

import getpass
import os
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skyplan.backends.base import CommandRunner
from skyplan.backends.ssh_runner import TIMEOUT_EXIT, SshRunner
from skyplan.errors import AuthError, InvalidRequestError, Scope, TransientError
from tests.backends.sshd import SshdFarm

HOST = 0


def make_runner(farm: SshdFarm, known: Path, *, trust_new: bool = False) -> SshRunner:
    h = farm.hosts[HOST]
    return SshRunner(
        h.ip,
        h.port,
        getpass.getuser(),
        str(farm.client_key),
        known_hosts=known,
        trust_new=trust_new,
        connect_timeout=1.0,
        scope=Scope("ssh", "lab"),
    )


@pytest.fixture
def known(tmp_path: Path, farm: SshdFarm) -> Path:
    path = tmp_path / "ssh_known_hosts"
    path.write_text(farm.known_hosts())
    return path


@pytest.fixture
def runner(farm: SshdFarm, known: Path) -> Iterator[SshRunner]:
    r = make_runner(farm, known)
    yield r
    r.close()


@pytest.fixture(params=["archive", "sftp"])
def copier(
    request: pytest.FixtureRequest, runner: SshRunner, monkeypatch: pytest.MonkeyPatch
) -> SshRunner:
    """The runner, copying as it does to a host with `tar` (one archive) and without (SFTP)."""
    if request.param == "sftp":
        monkeypatch.setattr(runner, "has_tar", lambda: False)
    return runner


def test_it_is_a_command_runner(runner: SshRunner) -> None:
    assert isinstance(runner, CommandRunner)


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ("true", 0),
        ("false", 1),
        ("exit 7", 7),
        ("sh -c 'kill -9 $$'", 137),
        ("kill -9 $$", -1),
        ("no-such-cmd", 127),
    ],
    ids=["zero", "one", "seven", "child-killed", "shell-killed", "not-found"],
)
def test_exit_codes_come_back(runner: SshRunner, command: str, code: int) -> None:
    result = runner.run(command)
    assert (result.exit_code, result.timed_out) == (code, False)


def test_stdout_and_stderr_are_combined_in_order(runner: SshRunner) -> None:
    result = runner.run("echo one; echo two >&2; sleep 0.05; echo three; printf four")
    assert result.output == "one\ntwo\nthree\nfour"


def test_lines_stream_to_the_sink_as_they_are_printed(runner: SshRunner) -> None:
    seen: list[tuple[str, float]] = []
    start = time.monotonic()
    result = runner.run(
        "for i in 1 2 3; do echo line $i; sleep 0.3; done; printf 'no newline'",
        sink=lambda line: seen.append((line, time.monotonic() - start)),
    )
    assert result.exit_code == 0 and result.output == ""
    assert [line for line, _ in seen] == ["line 1", "line 2", "line 3", "no newline"]
    # The first line arrived long before the command finished: it was streamed.
    assert seen[0][1] < seen[-1][1] - 0.5


def test_env_is_exported_quoted_and_cwd_expands_the_remote_home(
    runner: SshRunner, farm: SshdFarm
) -> None:
    home = farm.hosts[HOST].home
    (home / "work dir").mkdir()
    env = {"GREETING": "it's $HOME; `x`", "EMPTY": ""}
    result = runner.run('echo "$GREETING|$EMPTY"; pwd', env=env, cwd="~/work dir")
    assert result.output == f"it's $HOME; `x`|\n{home}/work dir\n"
    assert runner.run("pwd").output == f"{home}\n"
    assert runner.run("pwd", cwd="/tmp").output == "/tmp\n"
    missing = runner.run("echo ran", cwd="~/absent")
    assert missing.exit_code != 0 and "ran" not in missing.output


def test_a_bad_env_name_is_refused(runner: SshRunner) -> None:
    with pytest.raises(ValueError, match="environment variable"):
        runner.run("true", env={"A B": "x"})


def test_a_timeout_kills_the_command_and_everything_it_started(runner: SshRunner) -> None:
    start = time.monotonic()
    result = runner.run("echo started; sleep 41.7 & sleep 41.7; echo never", timeout=1.0)
    assert time.monotonic() - start < 4
    assert result == type(result)(TIMEOUT_EXIT, "started\n", timed_out=True)
    left = runner.run("pgrep -f 'sleep 4[1].7' || echo none")
    assert left.output == "none\n"


def test_one_runner_serves_many_threads_at_once(runner: SshRunner) -> None:
    results: dict[int, str] = {}

    def work(i: int) -> None:
        results[i] = runner.run(f"sleep 0.1; echo {i}").output

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: f"{i}\n" for i in range(8)}


def test_put_copies_a_file_and_a_tree_under_the_remote_home(
    copier: SshRunner, farm: SshdFarm, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "pkg" / "deep").mkdir(parents=True)
    (src / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (src / "run.sh").chmod(0o755)
    (src / "pkg" / "deep" / "data.txt").write_text("data")
    (src / "pkg" / "link").symlink_to("deep/data.txt")
    single = tmp_path / "one.txt"
    single.write_text("one")

    copier.put(src, "~/sky_workdir")
    copier.put(single, "~/a/b/c/one.txt")
    (src / "extra.txt").write_text("more")
    copier.put(src, "~/sky_workdir")  # into an existing directory: merged

    home = farm.hosts[HOST].home
    assert (home / "sky_workdir/pkg/deep/data.txt").read_text() == "data"
    assert os.readlink(home / "sky_workdir/pkg/link") == "deep/data.txt"
    assert (home / "sky_workdir/extra.txt").read_text() == "more"
    assert (home / "a/b/c/one.txt").read_text() == "one"
    assert copier.run("./run.sh", cwd="~/sky_workdir").output == "hi\n"


def test_put_to_an_absolute_path(copier: SshRunner, farm: SshdFarm, tmp_path: Path) -> None:
    single = tmp_path / "one.txt"
    single.write_text("one")
    target = farm.hosts[HOST].dir / "abs" / "one.txt"
    copier.put(single, str(target))
    assert target.read_text() == "one"


def test_it_reconnects_after_the_server_restarts(runner: SshRunner, farm: SshdFarm) -> None:
    assert runner.run("echo before").output == "before\n"
    farm.restart(HOST)
    assert runner.run("echo after").output == "after\n"


def test_a_down_host_is_a_transient_error_with_the_scope(runner: SshRunner, farm: SshdFarm) -> None:
    farm.kill(HOST)
    with pytest.raises(TransientError, match="connection refused") as caught:
        runner.run("true")
    assert caught.value.scope == Scope("ssh", "lab")


def test_a_hung_host_times_out_quickly(runner: SshRunner, farm: SshdFarm) -> None:
    runner.run("true")  # a cached connection, which will hang too
    farm.hang(HOST)
    start = time.monotonic()
    with pytest.raises(TransientError):
        runner.run("true")
    with pytest.raises(TransientError, match="no SSH handshake"):
        runner.run("true")  # a new connection: TCP connects, the server never speaks
    assert time.monotonic() - start < 5
    farm.resume(HOST)
    assert runner.run("echo back").output == "back\n"


def test_an_unknown_host_key_is_refused_with_how_to_trust_it(
    farm: SshdFarm, tmp_path: Path
) -> None:
    known = tmp_path / "known"
    with make_runner(farm, known) as r, pytest.raises(AuthError, match="--trust-new-host-keys"):
        r.run("true")
    assert not known.exists()


def test_trust_once_records_the_key_and_later_runners_use_it(
    farm: SshdFarm, tmp_path: Path
) -> None:
    known = tmp_path / "known"
    with make_runner(farm, known, trust_new=True) as r:
        assert r.run("echo ok").output == "ok\n"
    assert known.read_text() == farm.hosts[HOST].known_hosts_line()
    with make_runner(farm, known) as r:
        assert r.run("echo again").output == "again\n"
    assert known.read_text() == farm.hosts[HOST].known_hosts_line()


def test_a_changed_key_is_refused_even_when_trusting_new_keys(farm: SshdFarm, known: Path) -> None:
    farm.restart(HOST, farm.other_key(HOST))
    with (
        make_runner(farm, known, trust_new=True) as r,
        pytest.raises(AuthError, match=r"CHANGED.*man-in-the-middle"),
    ):
        r.run("true")
    assert known.read_text() == farm.known_hosts()


def test_a_refused_client_key_is_an_auth_error(farm: SshdFarm, known: Path) -> None:
    from tests.backends.sshd import keygen

    stranger = keygen(known.parent / "stranger")
    h = farm.hosts[HOST]
    with (
        SshRunner(h.ip, h.port, getpass.getuser(), str(stranger), known) as r,
        pytest.raises(AuthError, match="refused"),
    ):
        r.run("true")
    with (
        SshRunner(h.ip, h.port, None, str(known.parent / "absent"), known) as r,
        pytest.raises(AuthError, match="does not exist"),
    ):
        r.run("true")


def test_put_leaves_out_what_skip_names(copier: SshRunner, farm: SshdFarm, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "venv" / "lib").mkdir(parents=True)
    (src / "venv" / "lib" / "big.so").write_text("binary")
    (src / "keep.py").write_text("kept")
    (src / "out.log").write_text("log")
    copier.put(src, "~/skipped", lambda path: path in ("venv/", "out.log"))
    home = farm.hosts[HOST].home
    assert sorted(p.name for p in (home / "skipped").iterdir()) == ["keep.py"]


def test_a_tree_of_many_files_arrives_whole_with_modes_and_links(
    copier: SshRunner, farm: SshdFarm, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    for i in range(300):
        (src / f"d{i % 7}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 7}" / f"f{i}.txt").write_text(f"file {i}\n" * (i % 50))
    (src / "d0" / "f0.txt").chmod(0o600)
    (src / "bin").mkdir()
    (src / "bin" / "tool").write_text("#!/bin/sh\necho tool\n")
    (src / "bin" / "tool").chmod(0o750)
    (src / "linked").symlink_to("d1")
    (src / "empty").mkdir()
    copier.put(src, "~/many")
    dest = farm.hosts[HOST].home / "many"
    sent = sorted(p.relative_to(src).as_posix() for p in src.rglob("*"))
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == sent
    for i in range(300):
        name = f"d{i % 7}/f{i}.txt"
        assert (dest / name).read_text() == (src / name).read_text()
    assert (dest / "d0" / "f0.txt").stat().st_mode & 0o777 == 0o600
    assert (dest / "bin" / "tool").stat().st_mode & 0o777 == 0o750
    assert os.readlink(dest / "linked") == "d1"
    assert copier.run("bin/tool", cwd="~/many").output == "tool\n"


def test_a_copy_the_host_refuses_is_an_error_naming_the_target_and_the_runner_goes_on(
    copier: SshRunner, farm: SshdFarm, tmp_path: Path
) -> None:
    (farm.hosts[HOST].home / "taken").write_text("a file, not a directory")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    with pytest.raises(InvalidRequestError, match=r"cannot copy .*taken/inside") as caught:
        copier.put(src, "~/taken/inside")
    assert caught.value.scope == Scope("ssh", "lab")
    assert copier.run("echo still here").output == "still here\n"


def test_a_local_file_that_cannot_be_read_is_named_and_the_copy_stops_at_once(
    runner: SshRunner, farm: SshdFarm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root, who may read any file, so the refusal is simulated where tarfile
    # opens each file. Without the end of the stream the host's tar would have waited for it.
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    (src / "secret.key").write_text("k")
    real_open = tarfile.bltn_open

    def refusing(name: Any, *args: Any, **kwargs: Any) -> Any:
        if str(name).endswith("secret.key"):
            raise PermissionError(13, "Permission denied", str(name))
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(tarfile, "bltn_open", refusing)
    started = time.monotonic()
    with pytest.raises(InvalidRequestError, match=r"Permission denied: '.*secret\.key'"):
        runner.put(src, "~/partial")
    assert time.monotonic() - started < 30
    assert runner.run("echo still here").output == "still here\n"
