"""Fixtures for backend tests: a farm of real sshd hosts (skipped without OpenSSH unless
`SKYPLAN_REQUIRE_SSHD=1`), and a per-test skyplan home with a pool file and pinned keys."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyplan.backends.ssh import SshBackend
from tests.backends.sshd import SshdFarm, SshdUnavailable

#: Host 1 (127.0.0.2) has two A100-80GB; the others are CPU-only, shaped like this machine.
GPU_HOST = 1
A100 = ("NVIDIA A100-SXM4-80GB", 81920)
HOSTS = 5


def _unavailable(reason: str) -> None:
    if os.environ.get("SKYPLAN_REQUIRE_SSHD") == "1":
        pytest.fail(f"SKYPLAN_REQUIRE_SSHD=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdFarm]:
    try:
        farm = SshdFarm(tmp_path_factory.mktemp("sshd"), HOSTS, {GPU_HOST: [A100, A100]})
    except SshdUnavailable as err:
        _unavailable(str(err))
        raise
    try:
        farm.start_all()
    except SshdUnavailable as err:
        farm.stop_all()
        _unavailable(str(err))
    yield farm
    farm.stop_all()


@pytest.fixture
def farm(sshd: SshdFarm) -> Iterator[SshdFarm]:
    """The sshd farm, every host up, with empty homes before and after the test."""
    sshd.reset()
    yield sshd
    sshd.reset()


@pytest.fixture
def ssh_home(tmp_path: Path, farm: SshdFarm, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A skyplan home whose pool `lab` holds hosts 0-3 and whose known hosts pin all keys."""
    monkeypatch.delenv("SKYPLAN_SSH_POOLS", raising=False)
    home = tmp_path / "skyplan"
    home.mkdir()
    (home / "ssh_node_pools.yaml").write_text(farm.pools_yaml({"lab": [0, 1, 2, 3]}))
    (home / "ssh_known_hosts").write_text(farm.known_hosts())
    return home


@pytest.fixture
def backend(ssh_home: Path) -> Iterator[SshBackend]:
    b = SshBackend(ssh_home, probe_timeout=1.0)
    yield b
    b.close()
