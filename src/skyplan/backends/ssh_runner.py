"""A `CommandRunner` over SSH (paramiko): commands, streamed output, uploads, pinned keys.

It knows one host and nothing about pools or clusters, so cloud VMs can reuse it. Host keys are
pinned in an OpenSSH `known_hosts` file that skyplan owns: an unknown key is refused unless the
runner was built with `trust_new=True` (then it is recorded once: trust on first use); a key
that differs from the recorded one is always refused. Connection failures become
`TransientError`, refused keys and credentials `AuthError`, both with the caller's `scope`.

Every command runs as `bash -c SCRIPT`, where SCRIPT first reports its process group (so a
timeout can kill everything the command started, not just close the channel), exports `env`,
and changes to `cwd` (default `~`). The remote `HOME` is read from the login environment, not
from SFTP, so SFTP paths are absolute and `~` means the same in `run` and `put`. `put` streams
one tar archive into `tar -x` on the host (SFTP file by file where the host has no `tar`). A
command killed by a signal exits 128+N as bash reports it; if the wrapping shell itself is
killed, the exit code is -1 (paramiko does not read SSH's exit-signal message).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import io
import os
import posixpath
import re
import shlex
import stat
import tarfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import paramiko  # type: ignore[import-untyped]

from skyplan.backends.base import LineSink, RunResult
from skyplan.errors import AuthError, InvalidRequestError, Scope, TransientError

#: The exit code a timed-out command reports (the same as coreutils `timeout`).
TIMEOUT_EXIT = 124
_MARK = "\x1eskyplan-pgid "
_PGID = (
    "{ read -r _ _ _ _ _skyplan_pg _ < /proc/$$/stat; } 2>/dev/null "
    "|| _skyplan_pg=$(ps -o pgid= -p $$ | tr -d ' '); "
    f"printf '{_MARK}%s\\n' \"$_skyplan_pg\"; unset _skyplan_pg"
)
#: How much of the archive goes out per write (fewer, larger sends than tarfile's 10 KiB).
_CHUNK = 1 << 20
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KNOWN_HOSTS_LOCK = threading.Lock()


def fingerprint(key: Any) -> str:
    """OpenSSH's SHA256 fingerprint of a public key (`SHA256:…`)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _UnknownHostKey(Exception):
    def __init__(self, hostname: str, key: Any) -> None:
        super().__init__(hostname)
        self.hostname = hostname
        self.key = key


class _PinPolicy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Refuse a host missing from the known-hosts file, or record it once (`trust_new`)."""

    def __init__(self, path: Path, trust_new: bool) -> None:
        self.path = path
        self.trust_new = trust_new

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        if not self.trust_new:
            raise _UnknownHostKey(hostname, key)
        record_host_key(self.path, hostname, key)


def record_host_key(path: Path, hostname: str, key: Any) -> None:
    """Append `hostname key` to the known-hosts file unless it is there already. Another
    runner (thread or process) may have recorded the host meanwhile: a different key for it
    then raises `paramiko.BadHostKeyException`, as if it had been known from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _KNOWN_HOSTS_LOCK, open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        os.chmod(path, 0o600)
        known = paramiko.HostKeys(str(path)).lookup(hostname)
        if known is not None:
            ours = known.get(key.get_name())
            if ours == key:
                return
            raise paramiko.BadHostKeyException(hostname, key, ours or next(iter(known.values())))
        f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


class SshRunner:
    """Runs commands on one SSH host; the connection is opened on first use, kept, and opened
    again when it has dropped. Safe to share between threads (one channel per command)."""

    def __init__(
        self,
        host: str,
        port: int = 22,
        user: str | None = None,
        key_filename: str | None = None,
        known_hosts: Path | None = None,
        trust_new: bool = False,
        connect_timeout: float = 10.0,
        scope: Scope | None = None,
    ) -> None:
        if known_hosts is None:
            raise ValueError("SshRunner needs the path of skyplan's known-hosts file")
        self.host = host
        self.port = port
        self.user = user
        self.key_filename = key_filename
        self.known_hosts = known_hosts
        self.trust_new = trust_new
        self.connect_timeout = connect_timeout
        self.scope = scope or Scope("ssh")
        self._lock = threading.Lock()
        self._client: Any = None
        self._home: str | None = None
        self._tar: bool | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- connection ---------------------------------------------------------------------------

    def _connected(self) -> Any:
        with self._lock:
            client = self._client
            transport = client.get_transport() if client is not None else None
            if transport is not None and transport.is_active():
                return client
            self._drop_locked()
            client = paramiko.SSHClient()
            try:
                self._connect(client)
            except BaseException:
                client.close()
                raise
            self._client = client
            return client

    def _connect(self, client: Any) -> None:
        if self.key_filename is not None and not os.path.exists(self.key_filename):
            raise AuthError(f"identity file {self.key_filename} does not exist", self.scope)
        try:
            if self.known_hosts.exists():
                client.load_host_keys(str(self.known_hosts))
        except (OSError, paramiko.SSHException) as err:
            raise AuthError(f"cannot read {self.known_hosts}: {err}", self.scope) from None
        client.set_missing_host_key_policy(_PinPolicy(self.known_hosts, self.trust_new))
        t = self.connect_timeout
        try:
            client.connect(
                self.host,
                self.port,
                username=self.user,
                key_filename=self.key_filename,
                timeout=t,
                banner_timeout=t,
                auth_timeout=t,
                channel_timeout=t,
                allow_agent=self.key_filename is None,
                look_for_keys=self.key_filename is None,
            )
        except _UnknownHostKey as err:
            raise AuthError(
                f"the host key of {self.address} is not known ({err.key.get_name()} "
                f"{fingerprint(err.key)}); if this is the right machine, run `skyplan check "
                f"--trust-new-host-keys` once to record it in {self.known_hosts}",
                self.scope,
            ) from None
        except paramiko.BadHostKeyException as err:
            raise AuthError(
                f"the host key of {self.address} CHANGED: it now offers "
                f"{err.key.get_name()} {fingerprint(err.key)}, {self.known_hosts} has "
                f"{err.expected_key.get_name()} {fingerprint(err.expected_key)}. Someone may be "
                "intercepting the connection (man-in-the-middle), or the host was reinstalled; "
                f"if you know it was, delete its line from {self.known_hosts} and trust it again",
                self.scope,
            ) from None
        except paramiko.AuthenticationException as err:
            key = self.key_filename or "the keys in ~/.ssh and the agent"
            raise AuthError(
                f"{self.user or 'the user'}@{self.address} refused {key}: {err}", self.scope
            ) from None
        except (paramiko.SSHException, EOFError, OSError) as err:
            raise self._unreachable(err) from None

    def _unreachable(self, err: BaseException) -> TransientError:
        if isinstance(err, paramiko.ssh_exception.NoValidConnectionsError):
            why = "connection refused (is sshd running?)"
        elif isinstance(err, TimeoutError):
            why = f"no answer within {self.connect_timeout:g}s"
        elif "banner" in str(err) or "No existing session" in str(err):
            # The server accepted TCP but never finished the handshake.
            why = f"no SSH handshake within {self.connect_timeout:g}s (host hung or overloaded?)"
        elif "Timeout opening channel" in str(err):
            why = f"no answer within {self.connect_timeout:g}s (host hung or overloaded?)"
        else:
            why = str(err) or type(err).__name__
        return TransientError(f"cannot reach {self.address}: {why}", self.scope)

    def _drop_locked(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self) -> None:
        with self._lock:
            self._drop_locked()

    def _forget(self, transport: Any) -> None:
        """Drop the connection `transport` belongs to, unless another thread replaced it."""
        with self._lock:
            if self._client is not None and self._client.get_transport() is transport:
                self._drop_locked()

    def __enter__(self) -> SshRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _session(self) -> Any:
        """A new channel; a cached connection that turns out dead is reopened once."""
        for attempt in (1, 2):
            transport = self._connected().get_transport()
            try:
                return transport.open_session(timeout=self.connect_timeout)
            except (paramiko.SSHException, EOFError, OSError) as err:
                self._forget(transport)
                # A host that let the channel time out is hung: do not wait for it twice.
                if attempt == 2 or "Timeout" in str(err):
                    raise self._unreachable(err) from None
        raise AssertionError("unreachable")

    # -- commands -----------------------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        sink: LineSink | None = None,
    ) -> RunResult:
        script = _script(command, env, cwd)
        channel = self._session()
        try:
            try:
                channel.set_combine_stderr(True)
                channel.exec_command(f"bash -c {shlex.quote(script)}")
            except (paramiko.SSHException, EOFError, OSError) as err:
                self._forget(channel.get_transport())
                raise self._unreachable(err) from None
            return self._collect(channel, timeout, sink)
        finally:
            channel.close()

    def _collect(self, channel: Any, timeout: float | None, sink: LineSink | None) -> RunResult:
        deadline = time.monotonic() + timeout if timeout else None
        kept: list[str] = []
        pgid: list[str] = []

        def emit(raw: bytes, newline: str) -> None:
            line = raw.decode(errors="replace")
            if not pgid and line.startswith(_MARK):
                pgid.append(line[len(_MARK) :].strip())
            elif sink is not None:
                sink(line)
            else:
                kept.append(line + newline)

        channel.settimeout(0.2)
        pending = b""
        while not self._expired(deadline):
            try:
                data = channel.recv(65536)
            except TimeoutError:
                self._check_alive(channel)
                continue
            except (paramiko.SSHException, EOFError, OSError) as err:
                self._forget(channel.get_transport())
                raise self._unreachable(err) from None
            if not data:
                break
            *lines, pending = (pending + data).split(b"\n")
            for raw in lines:
                emit(raw, "\n")
        else:
            self._kill(pgid[0] if pgid else None)
            if pending:
                emit(pending, "")
            return RunResult(TIMEOUT_EXIT, "".join(kept), timed_out=True)
        if pending:
            emit(pending, "")
        while not channel.status_event.wait(0.2):
            self._check_alive(channel)
            if self._expired(deadline):
                self._kill(pgid[0] if pgid else None)
                return RunResult(TIMEOUT_EXIT, "".join(kept), timed_out=True)
        return RunResult(channel.recv_exit_status(), "".join(kept))

    @staticmethod
    def _expired(deadline: float | None) -> bool:
        return deadline is not None and time.monotonic() >= deadline

    def _check_alive(self, channel: Any) -> None:
        if not channel.get_transport().is_active():
            self._forget(channel.get_transport())
            raise TransientError(
                f"lost the connection to {self.address} while a command ran "
                "(it may have run in part)",
                self.scope,
            )

    def _kill(self, pgid: str | None) -> None:
        """Kill a timed-out command's process group over the same connection; if the host
        does not answer, drop the connection (it is likely hung) so the next call reconnects."""
        client = self._client
        transport = client.get_transport() if client is not None else None
        if not pgid or not pgid.isdigit() or transport is None or not transport.is_active():
            return
        try:
            channel = transport.open_session(timeout=self.connect_timeout)
        except (paramiko.SSHException, EOFError, OSError):
            self._forget(transport)
            return
        try:
            channel.exec_command(
                f"kill -TERM -- -{pgid} 2>/dev/null; sleep 0.3; kill -KILL -- -{pgid} 2>/dev/null"
            )
            if not channel.status_event.wait(self.connect_timeout):
                self._forget(transport)
        except (paramiko.SSHException, EOFError, OSError):
            self._forget(transport)
        finally:
            channel.close()

    # -- files --------------------------------------------------------------------------------

    def home(self) -> str:
        """The remote user's `HOME` (as the login environment sets it), read once."""
        if self._home is None:
            result = self.run('printf "%s" "$HOME"', timeout=self.connect_timeout * 3)
            if result.exit_code != 0 or not result.output.startswith("/"):
                raise TransientError(
                    f"cannot read HOME on {self.address}: {result.output!r}", self.scope
                )
            self._home = result.output
        return self._home

    def remote_path(self, remote: str) -> str:
        """`remote` made absolute: `~` and relative paths are under the remote home."""
        if remote == "~" or remote.startswith("~/"):
            return posixpath.normpath(self.home() + remote[1:])
        if remote.startswith("/"):
            return posixpath.normpath(remote)
        return posixpath.normpath(f"{self.home()}/{remote}")

    def put(self, local: Path, remote: str, skip: Callable[[str], bool] | None = None) -> None:
        """One tar stream over one channel when the host has `tar` (a workdir of thousands of
        small files is one transfer, not a round trip per file); SFTP file by file otherwise."""
        target = self.remote_path(remote)
        if self.has_tar():
            self._put_archive(local, target, skip)
        else:
            self.put_sftp(local, target, skip)

    def has_tar(self) -> bool:
        """Whether the host can unpack a tar stream (asked once)."""
        if self._tar is None:
            self._tar = (
                self.run("command -v tar >/dev/null", timeout=self.connect_timeout * 3).exit_code
                == 0
            )
        return self._tar

    def _put_archive(self, local: Path, target: str, skip: Callable[[str], bool] | None) -> None:
        if local.is_dir() and not local.is_symlink():
            dest, members = target, [(p, p.name) for p in sorted(local.iterdir())]
        else:
            dest, members = posixpath.dirname(target), [(local, posixpath.basename(target))]
            skip = None

        def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
            if skip is None:
                return info
            is_dir = info.isdir() or (info.issym() and (local / info.name).is_dir())
            return None if skip(info.name + ("/" if is_dir else "")) else info

        where = shlex.quote(dest)
        channel = self._session()
        failed: BaseException | None = None  # the channel broke (tar may have said why)
        unreadable: OSError | None = None  # a local file could not be read
        try:
            try:
                channel.set_combine_stderr(True)
                channel.settimeout(max(60.0, self.connect_timeout))
                channel.exec_command(
                    f"mkdir -p {where} && exec tar -x -f - -C {where} --no-same-owner"
                )
                with tarfile.open(
                    fileobj=_ChannelWriter(channel),
                    mode="w|",
                    bufsize=_CHUNK,
                    format=tarfile.GNU_FORMAT,
                ) as tar:
                    for path, name in members:
                        tar.add(path, arcname=name, filter=keep)
            except _SendFailed as err:
                # The far end may have closed the channel because tar failed: its message and
                # exit status, read below, say why better than the broken pipe does.
                failed = err.__cause__
            except (paramiko.SSHException, EOFError) as err:
                failed = err
            except OSError as err:
                unreadable = err
            with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
                channel.shutdown_write()  # the end of the archive (or a cut one: tar stops)
            if not channel.get_transport().is_active():
                self._forget(channel.get_transport())
                raise self._unreachable(failed or EOFError("connection closed")) from None
            said = _drain(channel)
            status = channel.recv_exit_status() if channel.status_event.wait(60.0) else None
        finally:
            channel.close()
        if unreadable is not None:
            raise InvalidRequestError(
                f"cannot copy {local} to {self.address}:{target}: {unreadable}", self.scope
            )
        if status != 0 or failed is not None:
            why = said.strip() or str(failed) or f"tar exited {status}"
            raise InvalidRequestError(
                f"cannot copy {local} to {self.address}:{target}: {why}", self.scope
            )

    def put_sftp(self, local: Path, target: str, skip: Callable[[str], bool] | None = None) -> None:
        """Copy over SFTP, one request per file and directory (hosts without `tar`)."""
        for attempt in (1, 2):
            transport = self._connected().get_transport()
            try:
                sftp = transport.open_sftp_client()
                break
            except (paramiko.SSHException, EOFError, OSError) as err:
                self._forget(transport)
                if attempt == 2:
                    raise self._unreachable(err) from None
        try:
            # One SFTP request waits this long for its answer: a host that hangs mid-copy fails.
            sftp.get_channel().settimeout(max(60.0, self.connect_timeout))
            _makedirs(sftp, posixpath.dirname(target))
            if local.is_dir() and not local.is_symlink():
                _put_tree(sftp, local, target, skip)
            else:
                _put_file(sftp, local, target)
        except (paramiko.SSHException, EOFError, OSError) as err:
            if not transport.is_active():
                self._forget(transport)
                raise self._unreachable(err) from None
            raise InvalidRequestError(
                f"cannot copy {local} to {self.address}:{target}: {err}", self.scope
            ) from None
        finally:
            sftp.close()


class _ChannelWriter(io.RawIOBase):
    """The file-like end `tarfile`'s stream mode writes to: each block goes out on the channel."""

    def __init__(self, channel: Any) -> None:
        super().__init__()
        self.channel = channel

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        try:
            self.channel.sendall(bytes(data))
        except (paramiko.SSHException, EOFError, OSError) as err:
            raise _SendFailed from err
        return len(data)


class _SendFailed(Exception):
    """Sending the archive failed (the cause is the channel's error), as against reading it."""


def _drain(channel: Any, limit: int = 65536) -> str:
    """What the remote command printed (its first `limit` bytes), up to end of file."""
    kept = b""
    try:
        while data := channel.recv(65536):
            kept = (kept + data)[:limit]
    except (paramiko.SSHException, EOFError, OSError):
        pass
    return kept.decode(errors="replace")


def _script(command: str, env: Mapping[str, str] | None, cwd: str | None) -> str:
    lines = [_PGID]
    for name, value in (env or {}).items():
        if not _ENV_NAME.match(name):
            raise ValueError(f"not a valid environment variable name: {name!r}")
        lines.append(f"export {name}={shlex.quote(value)}")
    lines.append(f"cd {_shell_path(cwd or '~')} || exit 1")
    # The trailing `exit` keeps bash from exec-ing the last command, so a command killed by a
    # signal exits 128+N instead of vanishing with the shell (paramiko would report -1).
    lines += [command, "exit $?"]
    return "\n".join(lines)


def _shell_path(path: str) -> str:
    """Quote a path for the shell, leaving a leading `~` unquoted so the remote shell expands it."""
    if path == "~":
        return "~"
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:]) if path[2:] else "~/"
    return shlex.quote(path)


def _exists(sftp: Any, path: str) -> Any:
    try:
        return sftp.lstat(path)
    except FileNotFoundError:
        return None


def _makedirs(sftp: Any, path: str) -> None:
    parts = [p for p in path.split("/") if p]
    current = ""
    for part in parts:
        current += "/" + part
        if _exists(sftp, current) is None:
            sftp.mkdir(current)


def _put_file(sftp: Any, local: Path, target: str) -> None:
    if local.is_symlink():
        if _exists(sftp, target) is not None:
            sftp.remove(target)
        sftp.symlink(os.readlink(local), target)
        return
    sftp.put(str(local), target)
    sftp.chmod(target, stat.S_IMODE(local.stat().st_mode))


def _put_tree(sftp: Any, local: Path, target: str, skip: Callable[[str], bool] | None) -> None:
    """Copy a directory like `shutil.copytree(..., dirs_exist_ok=True, symlinks=True)`."""
    for top, dirs, files in os.walk(local):
        rel = Path(top).relative_to(local).as_posix()
        remote_top = target if rel == "." else f"{target}/{rel}"
        if _exists(sftp, remote_top) is None:
            sftp.mkdir(remote_top)
        if skip is not None:
            prefix = "" if rel == "." else f"{rel}/"
            files[:] = [n for n in files if not skip(prefix + n)]
            dirs[:] = [n for n in dirs if not skip(prefix + n + "/")]
        for name in files:
            _put_file(sftp, Path(top) / name, f"{remote_top}/{name}")
        for name in list(dirs):
            if (Path(top) / name).is_symlink():
                _put_file(sftp, Path(top) / name, f"{remote_top}/{name}")
                dirs.remove(name)
