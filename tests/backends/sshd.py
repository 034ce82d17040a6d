"""Real OpenSSH servers on loopback aliases, one per fake "host", with faults on demand.

Host i (0-based) listens on 127.0.0.(i+1) at a free port, with its own ed25519 host key and
`sshd_config`. All hosts accept one generated client key for the user running the tests. They
share this machine's users, so to keep them apart (and out of the real home directory) each
host's sshd sets `HOME` to its own directory with `SetEnv`; sshd still starts sessions in the
user's real home directory and SFTP starts there too, which is why the runner reads `$HOME` and
uses absolute SFTP paths. `SetEnv PATH=<host>/bin:/usr/bin:/bin` puts per-host fakes (a fake
`nvidia-smi`) first.

Faults: `kill` (SIGKILL the server and its connections: the host is down), `hang`/`resume`
(SIGSTOP/SIGCONT the same processes: connections hang), `restart` (optionally with a new host
key: the host looks like a different machine, or a man in the middle).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"


class SshdUnavailable(RuntimeError):
    """This machine cannot run the harness (no sshd, or it would not start)."""


def keygen(path: Path) -> Path:
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def nvidia_smi(gpus: list[tuple[str, int]]) -> str:
    """A fake `nvidia-smi` answering the probe's query with `gpus` (name, MiB)."""
    lines = "".join(f'echo "{name}, {mib}"\n' for name, mib in gpus)
    return f"#!/bin/sh\n{lines}"


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


@dataclass
class SshdHost:
    index: int
    ip: str
    port: int
    dir: Path
    gpus: list[tuple[str, int]] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    stopped: bool = False

    @property
    def home(self) -> Path:
        return self.dir / "home"

    @property
    def host_key(self) -> Path:
        return self.dir / "host_key"

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    def known_hosts_line(self, key: Path | None = None) -> str:
        kind, b64 = (key or self.host_key).with_suffix(".pub").read_text().split()[:2]
        return f"[{self.ip}]:{self.port} {kind} {b64}\n"

    def processes(self) -> list[int]:
        """The server and every process under it (connections, sessions, commands)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [self.proc.pid, *_descendants(self.proc.pid)]


class SshdFarm:
    """N sshd "hosts"; see the module docstring."""

    def __init__(self, root: Path, count: int, gpus: dict[int, list[tuple[str, int]]]) -> None:
        if not os.path.exists(SSHD):
            raise SshdUnavailable(f"{SSHD} is not installed (apt-get install openssh-server)")
        if shutil.which("ssh-keygen") is None:
            raise SshdUnavailable("ssh-keygen is not installed")
        self.root = root
        self.client_key = keygen(root / "client_key")
        (root / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        self.hosts = []
        for i in range(count):
            ip = f"127.0.0.{i + 1}"
            host = SshdHost(i, ip, free_port(ip), root / f"host{i}", gpus.get(i, []))
            (host.dir / "bin").mkdir(parents=True)
            host.home.mkdir()
            keygen(host.host_key)
            if host.gpus:
                fake = host.dir / "bin" / "nvidia-smi"
                fake.write_text(nvidia_smi(host.gpus))
                fake.chmod(0o755)
            self.hosts.append(host)

    def _config(self, host: SshdHost, key: Path) -> Path:
        config = host.dir / "sshd_config"
        config.write_text(
            f"Port {host.port}\n"
            f"ListenAddress {host.ip}\n"
            f"HostKey {key}\n"
            f"PidFile {host.dir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "PermitRootLogin prohibit-password\n"
            "Subsystem sftp internal-sftp\n"
            "MaxStartups 200\n"
            "MaxSessions 200\n"
            "LogLevel ERROR\n"
            f"SetEnv PATH={host.dir / 'bin'}:/usr/bin:/bin HOME={host.home}\n"
        )
        return config

    def start(self, i: int, key: Path | None = None) -> None:
        host = self.hosts[i]
        os.makedirs("/run/sshd", exist_ok=True)
        config = self._config(host, key or host.host_key)
        log = open(host.dir / "sshd.log", "ab")  # noqa: SIM115 - sshd writes it while it runs
        try:
            host.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        host.stopped = False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if host.proc.poll() is not None:
                text = (host.dir / "sshd.log").read_text(errors="replace")
                host.proc = None
                raise SshdUnavailable(f"sshd for {host.address} exited: {text[-500:]}")
            try:
                socket.create_connection((host.ip, host.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SshdUnavailable(f"sshd for {host.address} did not listen within 10s")

    def start_all(self) -> None:
        for i in range(len(self.hosts)):
            self.start(i)

    def kill(self, i: int) -> None:
        """The host goes down: the server and every connection die."""
        host = self.hosts[i]
        pids = host.processes()
        _signal(pids, signal.SIGKILL)
        if host.proc is not None:
            host.proc.wait()
            host.proc = None
        host.stopped = False

    def hang(self, i: int) -> None:
        """The host stops answering (new and existing connections) without closing anything."""
        _signal(self.hosts[i].processes(), signal.SIGSTOP)
        self.hosts[i].stopped = True

    def resume(self, i: int) -> None:
        _signal(self.hosts[i].processes(), signal.SIGCONT)
        self.hosts[i].stopped = False

    def restart(self, i: int, key: Path | None = None) -> None:
        """Kill and start again, with `key` as its host key when given."""
        self.kill(i)
        self.start(i, key)

    def reset(self) -> None:
        """Between tests: every host up with its own key, and an empty home."""
        for host in self.hosts:
            if host.stopped:
                self.resume(host.index)
            if (
                host.proc is None
                or host.proc.poll() is not None
                or host.dir.joinpath("other_key").exists()
            ):
                self.kill(host.index)
                host.dir.joinpath("other_key").unlink(missing_ok=True)
                host.dir.joinpath("other_key.pub").unlink(missing_ok=True)
                self.start(host.index)
            for entry in host.home.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()

    def other_key(self, i: int) -> Path:
        """A second host key for host i (to impersonate it); `reset` restores the real one."""
        return keygen(self.hosts[i].dir / "other_key")

    def stop_all(self) -> None:
        for host in self.hosts:
            if host.stopped:
                self.resume(host.index)
            self.kill(host.index)

    def known_hosts(self, indexes: list[int] | None = None) -> str:
        chosen = self.hosts if indexes is None else [self.hosts[i] for i in indexes]
        return "".join(h.known_hosts_line() for h in chosen)

    def pools_yaml(self, pools: dict[str, list[int]], *, price: float = 0.0) -> str:
        """A pool file with the given hosts in each pool, using the client key."""
        import getpass

        out = []
        for name, indexes in pools.items():
            out.append(
                f"{name}:\n  user: {getpass.getuser()}\n"
                f"  identity_file: {self.client_key}\n  price: {price}\n  hosts:\n"
            )
            for i in indexes:
                h = self.hosts[i]
                out.append(f"    - ip: {h.ip}\n      port: {h.port}\n")
        return "".join(out)
