"""A FAKE Kubernetes exec endpoint: RFC 6455 WebSocket and `v4.channel.k8s.io`, local processes.

    !!! THIS IS A FAKE. Part of `fake_apiserver` (read its docstring first). It is not a kubelet
    !!! and not a container runtime: the command runs as a plain local process with the pod's
    !!! directory as HOME and cwd. Nothing is isolated.

What it owns: the server side of a WebSocket (the RFC 6455 handshake and framing: masked client
frames, continuations, ping/pong, close) and the `v4.channel.k8s.io` exec protocol on top of it
— channel 0 stdin, 1 stdout, 2 stderr, 3 the final `Status` (`Success`, or `NonZeroExitCode`
with an `ExitCode` cause). Only v4 is spoken (the client offers v5 and v4). When the client
disconnects, the command's process group is killed (a real kubelet may leave it running; the
backend guards with `timeout`).

`fake_apiserver` finds the running pod and hands the upgrade request to `serve_exec`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.k8s.fake_apimachinery import ApiError, status_body
from tests.k8s.fake_scheduler import MARKER, Pod

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_V4 = "v4.channel.k8s.io"


def serve_exec(handler: BaseHTTPRequestHandler, pod: Pod, query: dict[str, list[str]]) -> None:
    """Upgrade `handler`'s request to a WebSocket and run the exec on it until it ends.

    Raises ApiError (before anything is sent) if the request cannot be an exec."""
    offered = [p.strip() for p in handler.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if _V4 not in offered:
        raise ApiError(400, "BadRequest", f"only {_V4} is supported by this fake")
    command = query.get("command") or []
    if not command:
        raise ApiError(400, "BadRequest", "you must specify at least 1 command")
    key = handler.headers["Sec-WebSocket-Key"]
    accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept)
    handler.send_header("Sec-WebSocket-Protocol", _V4)
    handler.end_headers()
    handler.wfile.flush()
    handler.close_connection = True
    ws = WebSocket(handler.connection)
    ExecSession(ws, pod, command, query.get("stdin") == ["true"]).run()


class WebSocket:
    """The server side of one WebSocket connection: RFC 6455 framing over a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.buf = b""

    def send(self, payload: bytes, opcode: int = 0x2) -> None:
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + struct.pack("!H", n)
        else:
            head += bytes([127]) + struct.pack("!Q", n)
        with self.lock, contextlib.suppress(OSError):
            self.sock.sendall(head + payload)

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("client went away")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self) -> tuple[int, bytes]:
        """One whole message (continuations joined): (opcode, payload)."""
        opcode, data = None, b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else b"\0\0\0\0"
            payload = bytes(c ^ mask[i % 4] for i, c in enumerate(self._read(n)))
            op = b0 & 0x0F
            if op >= 0x8:  # control frames may interleave
                return op, payload
            opcode = op if opcode is None else opcode
            data += payload
            if b0 & 0x80:
                return opcode or 0x2, data

    def readable(self, timeout: float) -> bool:
        return bool(self.buf) or bool(select.select([self.sock], [], [], timeout)[0])


class ExecSession:
    """One exec: a local process whose output goes out on channels 1 and 2."""

    def __init__(self, ws: WebSocket, pod: Pod, command: list[str], stdin: bool) -> None:
        self.ws, self.pod, self.command, self.stdin = ws, pod, command, stdin

    def run(self) -> None:
        env = {**os.environ, "HOME": str(self.pod.home), MARKER: self.pod.uid}
        env.pop("KUBECONFIG", None)
        try:
            proc = subprocess.Popen(
                self.command,
                cwd=self.pod.home,
                env=env,
                stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            self._finish(
                status_body(500, "InternalError", f"failed to exec in container: {exc}")
                | {"code": 500}
            )
            return
        pumps = [
            threading.Thread(target=self._pump, args=(proc.stdout, 1)),
            threading.Thread(target=self._pump, args=(proc.stderr, 2)),
        ]
        for t in pumps:
            t.start()
        gone = False
        try:
            while any(t.is_alive() for t in pumps) or proc.poll() is None:
                if not self.ws.readable(0.05):
                    continue
                op, data = self.ws.recv()
                if op == 0x8:
                    gone = True
                    break
                if op == 0x9:
                    self.ws.send(data, 0xA)
                elif op in (0x1, 0x2) and data[:1] == b"\0" and proc.stdin is not None:
                    with contextlib.suppress(OSError):
                        proc.stdin.write(data[1:])
                        proc.stdin.flush()
        except (ConnectionError, OSError):
            gone = True
        if gone:  # the client hung up: stop what it started (see the module docstring)
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        for t in pumps:
            t.join()
        code = proc.wait()
        if gone:
            return
        code = 128 - code if code < 0 else code
        if code == 0:
            self._finish({"metadata": {}, "status": "Success"})
        else:
            self._finish(
                {
                    "metadata": {},
                    "status": "Failure",
                    "message": f"command terminated with non-zero exit code: exit code {code}",
                    "reason": "NonZeroExitCode",
                    "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
                }
            )

    def _pump(self, stream: Any, channel: int) -> None:
        with stream:
            while chunk := os.read(stream.fileno(), 65536):
                self.ws.send(bytes([channel]) + chunk)

    def _finish(self, status: dict[str, Any]) -> None:
        self.ws.send(b"\x03" + json.dumps(status).encode())
        self.ws.send(struct.pack("!H", 1000), 0x8)
        # Wait briefly for the client's close frame, as a real server would.
        deadline = time.monotonic() + 1.0
        with contextlib.suppress(ConnectionError, OSError):
            while time.monotonic() < deadline and self.ws.readable(0.05):
                if self.ws.recv()[0] == 0x8:
                    break
