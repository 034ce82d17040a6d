"""Commands in a pod through the Kubernetes exec API, as `kubectl exec` and `kubectl cp` do.

Each `run` opens one exec WebSocket (`kubernetes.stream.stream` over
`connect_get_namespaced_pod_exec`): the command goes to `sh -c`, which starts `bash` (or `sh`
where the image has no bash) with stderr folded into stdout, so lines arrive in the order they
were printed. The exit code comes from the error channel's final `Status` (`Success`, or
`NonZeroExitCode` with an `ExitCode` cause). A timeout is enforced twice: in the pod by
coreutils/busybox `timeout` where the image has it (closing an exec stream does not reliably
kill what it started), and here, by hanging up a few seconds later.

`put` tars the local tree into a temporary file and streams it to `head -c SIZE | tar -x` in the
pod: `head` ends the input after the archive, so no stdin close is needed (the `v4` channel
protocol has none). `~` at the start of a remote path is the pod's `$HOME`.

A fresh `ApiClient` is made per call: `stream()` swaps the client's transport while it runs, so
a shared client would send other threads' requests over the WebSocket.

`api_error` is the one mapping from the client's exceptions to skyplan's error tree, shared with
the backend.
"""

from __future__ import annotations

import codecs
import json
import math
import re
import shlex
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skyplan.backends.base import LineSink, RunResult
from skyplan.errors import (
    AuthError,
    BackendError,
    InvalidRequestError,
    Scope,
    TransientError,
)

if TYPE_CHECKING:
    from kubernetes.client import Configuration

#: The exit code a timed-out command reports (the same as coreutils `timeout` and `SshRunner`).
TIMEOUT_EXIT = 124
#: How long after its timeout a command's stream is hung up on if the pod did not end it.
GRACE = 5.0
_CHUNK = 256 * 1024
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: `sh -c _LAUNCH sh SCRIPT TIMEOUT`: bash when there is one, under `timeout` when asked.
_LAUNCH = (
    "exec 2>&1; s=sh; command -v bash >/dev/null 2>&1 && s=bash; "
    'if [ -n "$2" ] && command -v timeout >/dev/null 2>&1; '
    'then exec timeout -k 2 "$2" "$s" -c "$1"; fi; exec "$s" -c "$1"'
)


def remote_path(path: str) -> str:
    """A shell word for a path in the pod, `~` meaning its `$HOME`."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:]) if path[2:] else '"$HOME"'
    return shlex.quote(path)


def _unpack_script(size: int, remote: str, file: str | None) -> str:
    """Unpack a `size`-byte tar from stdin: a tree's entries into `remote`; a single `file`
    to `remote`, or into it when `remote` is a directory (as `cp` does)."""
    where, untar = remote_path(remote), f"head -c {size} | tar -x -o -f -"
    if file is None:
        return f"mkdir -p {where} && {untar} -C {where}"
    parent = remote_path(remote.rpartition("/")[0] or ("/" if remote.startswith("/") else "."))
    got = f'"$t"/{shlex.quote(file)}'
    return (
        f't=$(mktemp -d) && {untar} -C "$t" && {{ if [ -d {where} ]; then mv -f {got} {where}/; '
        f'else mkdir -p {parent} && mv -f {got} {where}; fi; }}; rc=$?; rm -rf "$t"; exit $rc'
    )


def api_error(exc: BaseException, scope: Scope, doing: str) -> BackendError:
    """The skyplan error for a failed call to the API server: credentials or permissions →
    `AuthError`; a rejected request → `InvalidRequestError`; the rest (5xx, throttling,
    timeouts, dropped connections) → `TransientError`."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    if isinstance(exc, ConfigException):
        return AuthError(f"{doing}: cannot load the kubeconfig credentials: {exc}", scope)
    if not isinstance(exc, ApiException):
        return TransientError(f"{doing}: {type(exc).__name__}: {exc}", scope)
    status = exc.status or 0
    message = _status_message(exc)
    if status == 0 and (m := re.search(r"Handshake status (\d{3})", message)):
        status = int(m.group(1))
    if status in (401, 403):
        what = "credentials refused" if status == 401 else "permission denied"
        return AuthError(f"{doing}: {what} ({status}): {message}", scope, code=str(status))
    if status in (400, 404, 422):
        return InvalidRequestError(f"{doing}: {message}", scope, code=str(status))
    return TransientError(f"{doing}: {message or 'no answer'}", scope, code=str(status or ""))


def _status_message(exc: Any) -> str:
    try:
        body = json.loads(exc.body)
        return str(body.get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason or exc).strip()


def client_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a call through the client may raise (mapped by `api_error`)."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError
    from websocket import WebSocketException

    return (ApiException, ConfigException, HTTPError, WebSocketException, OSError)


class _Discard:
    """Stands in for the client's copy of all output (kept for `read_all`, which we never
    call), so a long `logs --follow` does not grow without bound."""

    def write(self, _data: object) -> None:
        return None


class _Lines:
    """Decodes one output channel and hands out whole lines."""

    def __init__(self, sink: LineSink | None, kept: list[str]) -> None:
        self.sink, self.kept, self.pending = sink, kept, ""
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, data: bytes | str, final: bool = False) -> None:
        text = data if isinstance(data, str) else self.decoder.decode(data, final)
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self._emit(line, "\n")
        if final and self.pending:
            self._emit(self.pending, "")
            self.pending = ""

    def _emit(self, line: str, end: str) -> None:
        if self.sink is not None:
            self.sink(line)
        else:
            self.kept.append(line + end)


class ExecRunner:
    """Runs commands in one pod's (first) container through the exec API."""

    def __init__(
        self,
        configuration: Configuration,
        namespace: str,
        pod: str,
        *,
        scope: Scope,
        container: str | None = None,
    ) -> None:
        self.configuration = configuration
        self.namespace = namespace
        self.pod = pod
        self.scope = scope
        self.container = container

    # -- the stream ------------------------------------------------------------------------

    def _open(self, argv: list[str], stdin: bool) -> tuple[Any, Any]:
        from kubernetes import client
        from kubernetes.stream import stream

        api = client.ApiClient(self.configuration)
        try:
            extra = {"container": self.container} if self.container else {}
            ws = stream(
                client.CoreV1Api(api).connect_get_namespaced_pod_exec,
                self.pod,
                self.namespace,
                command=argv,
                stdin=stdin,
                stdout=True,
                stderr=True,
                tty=False,
                binary=True,
                _preload_content=False,
                **extra,
            )
        except client_errors() as exc:
            api.close()  # type: ignore[no-untyped-call]
            raise self._unreachable(exc) from exc
        ws._all = _Discard()
        return api, ws

    def _unreachable(self, exc: BaseException) -> BackendError:
        """Credentials refused stay `AuthError`; anything else means the pod cannot be reached
        now (gone, not running, a dropped stream): `TransientError`, as the protocol says."""
        err = api_error(exc, self.scope, f"exec in pod {self.pod}")
        return (
            err
            if isinstance(err, AuthError | TransientError)
            else TransientError(err.message, self.scope, err.code)
        )

    @staticmethod
    def _close(api: Any, ws: Any) -> None:
        try:
            ws.close()
        finally:
            # After the server's close frame the socket counts as closed and close() skips it.
            sock = getattr(ws, "sock", None)
            if sock is not None:
                sock.shutdown()
            api.close()

    def _pump(
        self, ws: Any, streams: dict[int, _Lines], deadline: float | None
    ) -> tuple[bool, dict[str, Any] | None]:
        """Read until the stream ends (or `deadline`): (hung up at the deadline, final Status)."""
        try:
            while ws.is_open():
                wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                if wait <= 0:
                    return True, None
                ws.update(timeout=wait)
                for channel, lines in streams.items():
                    lines.feed(ws.read_channel(channel))
            raw = ws.read_channel(3)
        except client_errors() as exc:
            raise self._unreachable(exc) from exc
        for lines in streams.values():
            lines.feed(b"", final=True)
        if not raw:
            return False, None
        try:
            status = json.loads(raw)
        except ValueError:
            return False, None
        return False, status if isinstance(status, dict) else None

    def _exit_code(self, status: dict[str, Any] | None) -> int:
        if status is None:
            raise TransientError(
                f"the exec stream of pod {self.pod} ended without an exit status "
                "(the pod may have been deleted)",
                self.scope,
            )
        if status.get("status") == "Success":
            return 0
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                return int(cause.get("message", 1))
        raise TransientError(
            f"exec in pod {self.pod} failed: {status.get('message') or status}", self.scope
        )

    # -- CommandRunner ---------------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        sink: LineSink | None = None,
    ) -> RunResult:
        script = ""
        for name, value in (env or {}).items():
            if not _ENV_NAME.match(name):
                raise ValueError(f"not a valid environment variable name: {name!r}")
            script += f"export {name}={shlex.quote(value)}; "
        if cwd:
            script += f"cd {remote_path(cwd)} || exit 1; "
        script += command
        limit = str(max(1, math.ceil(timeout))) if timeout else ""
        kept: list[str] = []
        start = time.monotonic()
        api, ws = self._open(["sh", "-c", _LAUNCH, "sh", script, limit], stdin=False)
        try:
            deadline = start + timeout + GRACE if timeout else None
            streams = {1: _Lines(sink, kept), 2: _Lines(sink, kept)}
            hung_up, status = self._pump(ws, streams, deadline)
        finally:
            self._close(api, ws)
        if hung_up:
            return RunResult(TIMEOUT_EXIT, "".join(kept), timed_out=True)
        code = self._exit_code(status)
        if timeout and code in (TIMEOUT_EXIT, 137) and time.monotonic() - start >= timeout:
            return RunResult(TIMEOUT_EXIT, "".join(kept), timed_out=True)
        return RunResult(code, "".join(kept))

    def put(self, local: Path, remote: str, skip: Callable[[str], bool] | None = None) -> None:
        remote = remote.rstrip("/") or "/"
        members = sorted(local.iterdir()) if local.is_dir() else [local]

        def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
            if skip is None or not local.is_dir():
                return info
            return None if skip(info.name + ("/" if info.isdir() else "")) else info

        with tempfile.TemporaryFile(prefix="skyplan-put-") as archive:
            with tarfile.open(fileobj=archive, mode="w", format=tarfile.GNU_FORMAT) as tar:
                for path in members:
                    tar.add(path, arcname=path.name, recursive=True, filter=keep)
            size = archive.tell()
            archive.seek(0)
            script = _unpack_script(size, remote, None if local.is_dir() else local.name)
            api, ws = self._open(["sh", "-c", _LAUNCH, "sh", script, ""], stdin=True)
            kept: list[str] = []
            try:
                try:
                    while chunk := archive.read(_CHUNK):
                        ws.write_stdin(chunk)
                    if hasattr(ws, "close_channel"):  # clients before v5 support lack it
                        ws.close_channel(0)  # a no-op on v4, where `head` ends the input
                except client_errors() as exc:
                    raise self._unreachable(exc) from exc
                _, status = self._pump(ws, {1: _Lines(None, kept), 2: _Lines(None, kept)}, None)
            finally:
                self._close(api, ws)
        code = self._exit_code(status)
        output = "".join(kept).strip()
        if code == 127:
            raise InvalidRequestError(
                f"copying to pod {self.pod} needs `tar` and `head` in its image: {output}",
                self.scope,
            )
        if code != 0:
            raise TransientError(
                f"copying {local} to {remote} in pod {self.pod} failed ({code}): {output}",
                self.scope,
            )

    def close(self) -> None:
        return None
