"""A FAKE Kubernetes API server for tests. It is NOT Kubernetes and NOT a conformance target.

    !!! THIS IS A FAKE. It implements only the slice of the Kubernetes API that skyplan's
    !!! `kubernetes` backend uses, just well enough for the official Python client (37.x, which
    !!! validates every response with pydantic) to accept its answers. A "pod" here is a local
    !!! directory plus local processes; nothing is isolated and the image is never pulled.

No kube-apiserver, kind, k3s or envtest can be had in this environment (see
../shared/TESTING.md), so the backend's contract tests run against this server and, with
`SKYPLAN_REAL_K8S=1` and a `KUBECONFIG`, against a real cluster.

What it implements (one stdlib `ThreadingHTTPServer` on 127.0.0.1, plain HTTP):

- `GET /version`;
- `GET /api/v1/nodes` — nodes a test adds with `add_node` (allocatable cpu, memory,
  `nvidia.com/gpu`, labels, taints);
- `GET /api/v1/pods` and `GET|POST /api/v1/namespaces/{ns}/pods` — list with `labelSelector`
  (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`) and `fieldSelector` (`status.phase`,
  `spec.nodeName`, `metadata.name`); create with `generateName`, 409 `AlreadyExists`, 422
  `Invalid` for a bad name, label or quantity;
- `GET|PATCH|DELETE /api/v1/namespaces/{ns}/pods/{name}` (merge patch of metadata only);
- `GET /api/v1/namespaces/{ns}/pods/{name}/exec` over a WebSocket (RFC 6455 handshake and
  framing) speaking `v4.channel.k8s.io`: channel 0 stdin, 1 stdout, 2 stderr, 3 the final
  `Status` (`Success`, or `NonZeroExitCode` with an `ExitCode` cause). The command runs as a
  local process with the pod's directory as HOME and cwd.
- a scheduler: a pod is bound to a node whose free allocatable (allocatable minus the requests
  of pods bound to it) covers its requests and which matches its nodeSelector, required node
  affinity (`In`, `NotIn`, `Exists`) and tolerations; it goes Running (podIP 10.0.0.N) after
  `start_delay`. Otherwise it stays Pending with `PodScheduled=False`, reason `Unschedulable`
  and a message in the real scheduler's words ("0/2 nodes are available: 2 Insufficient
  nvidia.com/gpu."). Pending pods are retried whenever the server is asked anything.
- errors as real `Status` bodies: 401, 403, 404, 409, 422, 500.

What it does NOT do: watch, TLS, RBAC, namespaces as objects, container images or commands
(the pod's command is never run), restarts, resource limits, init containers, preemption,
OOM kills. A deleted pod's processes are killed (found by an environment marker) and its
directory removed, like a container's. When an exec client disconnects, its command's process
group is killed (a real kubelet may leave it running; the backend guards with `timeout`).

Test helpers: `add_node`, `remove_node`, `occupy` (a foreign pod holding resources),
`refuse_auth`, `forbid`, `fail_next`, `heal` (undo those three), `pods`, `pod_home`, and
`requests` (every method and path asked). `kubeconfig()` writes one context per server and
`fake_servers()` starts and closes a set of them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import string
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

GPU = "nvidia.com/gpu"
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_V4 = "v4.channel.k8s.io"
_MARKER = "SKYPLAN_FAKE_POD"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_SUFFIXES = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}  # fmt: skip


def quantity(text: str) -> Decimal:
    """A Kubernetes quantity ("500m", "16Gi", "2") as a number; ValueError if malformed."""
    m = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([A-Za-z]*)", str(text).strip())
    if m is None or (m.group(2) and m.group(2) not in _SUFFIXES):
        raise ValueError(f"quantities must match the regular expression: {text!r}")
    try:
        return Decimal(m.group(1)) * Decimal(_SUFFIXES.get(m.group(2), 1))
    except InvalidOperation:
        raise ValueError(f"not a quantity: {text!r}") from None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.body = status_body(code, reason, message, **details)


# -- selectors ----------------------------------------------------------------------------------


def _split_terms(selector: str) -> list[str]:
    terms, depth, cur = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        terms.append(cur.strip())
    return terms


def label_match(selector: str, labels: dict[str, str]) -> bool:
    for term in _split_terms(selector):
        if m := re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if (op == "in") != (labels.get(key) in values):
                return False
        elif m := re.fullmatch(r"([^!=\s]+)\s*(==|=|!=)\s*(\S*)", term):
            key, op, value = m.groups()
            if (op == "!=") == (labels.get(key) == value):
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


_FIELDS = {
    "status.phase": lambda p: p["status"].get("phase", ""),
    "spec.nodeName": lambda p: p["spec"].get("nodeName", ""),
    "metadata.name": lambda p: p["metadata"]["name"],
    "metadata.namespace": lambda p: p["metadata"]["namespace"],
}


def field_match(selector: str, pod: dict[str, Any]) -> bool:
    for term in _split_terms(selector):
        m = re.fullmatch(r"([^!=]+)(==|=|!=)(.*)", term)
        if m is None or m.group(1) not in _FIELDS:
            raise ApiError(400, "BadRequest", f'field label not supported: "{term}"')
        if (m.group(2) == "!=") == (_FIELDS[m.group(1)](pod) == m.group(3)):
            return False
    return True


# -- the store and scheduler ----------------------------------------------------------------------


@dataclass
class _Pod:
    obj: dict[str, Any]
    home: Path
    requests: dict[str, Decimal]
    run_at: float | None = None
    gone_at: float | None = None

    @property
    def uid(self) -> str:
        return str(self.obj["metadata"]["uid"])

    @property
    def bound(self) -> bool:
        return bool(self.obj["spec"].get("nodeName"))


def _requests(spec: dict[str, Any]) -> dict[str, Decimal]:
    total: dict[str, Decimal] = {}
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        amounts = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        for key, value in amounts.items():
            total[key] = total.get(key, Decimal(0)) + quantity(value)
    return total


def _validate(pod: dict[str, Any]) -> None:
    meta, causes = pod["metadata"], []
    if not _DNS_SUBDOMAIN.match(meta["name"]):
        causes.append(
            (
                "metadata.name",
                f"Invalid value: {meta['name']!r}: a lowercase RFC 1123"
                " subdomain must consist of lower case alphanumeric characters, '-' or '.'",
            )
        )
    for key, value in (meta.get("labels") or {}).items():
        if not _LABEL_VALUE.match(str(value)):
            causes.append((f"metadata.labels: {key}", f"Invalid value: {value!r}"))
    containers = (pod.get("spec") or {}).get("containers") or []
    if not containers:
        causes.append(("spec.containers", "Required value"))
    for i, c in enumerate(containers):
        if not c.get("image"):
            causes.append((f"spec.containers[{i}].image", "Required value"))
    try:
        _requests(pod.get("spec") or {})
    except ValueError as exc:
        causes.append(("spec.containers[0].resources", str(exc)))
    if causes:
        raise ApiError(
            422, "Invalid",
            f'Pod "{meta["name"]}" is invalid: ' + ", ".join(f"{f}: {m}" for f, m in causes),
            name=meta["name"], kind="pods",
            causes=[{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes],
        )  # fmt: skip


def _kill_marked(uid: str) -> None:
    """SIGKILL every process carrying the pod's environment marker (its "container")."""
    needle = f"{_MARKER}={uid}".encode() + b"\0"
    for _ in range(3):
        found = False
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if needle in (proc / "environ").read_bytes():
                    os.kill(int(proc.name), signal.SIGKILL)
                    found = True
            except (OSError, ValueError):
                continue
        if not found:
            return
        time.sleep(0.05)


@dataclass
class _State:
    root: Path
    start_delay: float
    lock: threading.RLock = field(default_factory=threading.RLock)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: dict[tuple[str, str], _Pod] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=lambda: {"default", "kube-system"})
    version: int = 1
    next_ip: int = 1

    def rv(self) -> str:
        self.version += 1
        return str(self.version)

    def free(self, node: str) -> dict[str, Decimal]:
        alloc = self.nodes[node]["status"]["allocatable"]
        left = {k: quantity(v) for k, v in alloc.items()}
        for pod in self.pods.values():
            if pod.obj["spec"].get("nodeName") == node and pod.obj["status"].get("phase") in (
                "Pending",
                "Running",
            ):
                for k, v in pod.requests.items():
                    left[k] = left.get(k, Decimal(0)) - v
        return left

    def _misfit(self, pod: _Pod, node: dict[str, Any]) -> list[str]:
        spec, labels = pod.obj["spec"], node["metadata"].get("labels") or {}
        if node["spec"].get("unschedulable"):
            return ["node(s) were unschedulable"]
        selector = spec.get("nodeSelector") or {}
        terms = (
            ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
                "requiredDuringSchedulingIgnoredDuringExecution"
            )
            or {}
        ).get("nodeSelectorTerms") or []
        if any(labels.get(k) != v for k, v in selector.items()) or (
            terms and not any(_term_match(t, labels) for t in terms)
        ):
            return ["node(s) didn't match Pod's node affinity/selector"]
        for taint in node["spec"].get("taints") or []:
            if taint["effect"] in ("NoSchedule", "NoExecute") and not any(
                _tolerates(t, taint) for t in spec.get("tolerations") or []
            ):
                return [f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value')}}}"]
        free = self.free(node["metadata"]["name"])
        return [
            f"Insufficient {k}"
            for k in sorted(pod.requests)
            if pod.requests[k] > 0 and pod.requests[k] > free.get(k, Decimal(0))
        ]

    def tick(self) -> None:
        """Move every pod on, as a scheduler and kubelets would."""
        now = time.monotonic()
        for key, pod in list(self.pods.items()):
            if pod.gone_at is not None and now >= pod.gone_at:
                self.pods.pop(key)
            elif pod.bound and pod.obj["spec"]["nodeName"] not in self.nodes:
                self._kill(pod)
                self.pods.pop(key)
        for pod in sorted(self.pods.values(), key=lambda p: p.obj["metadata"]["resourceVersion"]):
            if pod.gone_at is not None or pod.obj["status"]["phase"] != "Pending":
                continue
            if not pod.bound:
                self._schedule(pod, now)
            if pod.bound and pod.run_at is not None and now >= pod.run_at:
                self._run(pod)

    def _schedule(self, pod: _Pod, now: float) -> None:
        reasons: dict[str, int] = {}
        for name in sorted(self.nodes):
            misfit = self._misfit(pod, self.nodes[name])
            if not misfit:
                pod.obj["spec"]["nodeName"] = name
                pod.run_at = now + self.start_delay
                pod.obj["status"]["conditions"] = [_cond("PodScheduled", "True")]
                self._set_container(pod, {"waiting": {"reason": "ContainerCreating"}})
                pod.obj["metadata"]["resourceVersion"] = self.rv()
                return
            for r in misfit:
                reasons[r] = reasons.get(r, 0) + 1
        detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
        message = f"0/{len(self.nodes)} nodes are available" + (f": {detail}." if detail else ".")
        cond = _cond("PodScheduled", "False", "Unschedulable", message)
        if pod.obj["status"].get("conditions") != [cond]:
            pod.obj["status"]["conditions"] = [cond]
            pod.obj["metadata"]["resourceVersion"] = self.rv()

    def _set_container(self, pod: _Pod, state: dict[str, Any]) -> None:
        pod.obj["status"]["containerStatuses"] = [
            {
                "name": c["name"],
                "image": c["image"],
                "imageID": f"docker.io/library/{c['image']}@sha256:{'0' * 64}",
                "ready": "running" in state,
                "started": "running" in state,
                "restartCount": 0,
                "state": state,
            }
            for c in pod.obj["spec"]["containers"]
        ]

    def _run(self, pod: _Pod) -> None:
        pod.home.mkdir(parents=True, exist_ok=True)
        ip, node = f"10.0.0.{self.next_ip}", self.nodes[pod.obj["spec"]["nodeName"]]
        self.next_ip += 1
        pod.obj["status"].update(
            phase="Running",
            podIP=ip,
            podIPs=[{"ip": ip}],
            hostIP=node["status"]["addresses"][0]["address"],
            startTime=_now(),
            conditions=[
                _cond(t, "True")
                for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                          "PodScheduled")
            ],
        )  # fmt: skip
        self._set_container(pod, {"running": {"startedAt": _now()}})
        pod.obj["metadata"]["resourceVersion"] = self.rv()

    def _kill(self, pod: _Pod) -> None:
        _kill_marked(pod.uid)
        shutil.rmtree(pod.home, ignore_errors=True)

    def delete(self, pod: _Pod, grace: float) -> None:
        if pod.gone_at is None:
            pod.obj["metadata"]["deletionTimestamp"] = _now()
            pod.obj["metadata"]["deletionGracePeriodSeconds"] = int(grace)
            pod.obj["metadata"]["resourceVersion"] = self.rv()
            # Terminating for a moment (a tenth of the grace period, at most 0.3 s).
            pod.gone_at = time.monotonic() + min(grace / 10, 0.3)
            self._kill(pod)


def _cond(kind: str, status: str, reason: str | None = None, message: str | None = None) -> dict:
    c: dict[str, Any] = {"type": kind, "status": status, "lastTransitionTime": _now()}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _term_match(term: dict[str, Any], labels: dict[str, str]) -> bool:
    for req in term.get("matchExpressions") or []:
        key, op, values = req["key"], req["operator"], req.get("values") or []
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }.get(op, False)
        if not ok:
            return False
    return True


def _tolerates(tol: dict[str, Any], taint: dict[str, Any]) -> bool:
    if tol.get("effect") and tol["effect"] != taint["effect"]:
        return False
    if tol.get("operator") == "Exists":
        return not tol.get("key") or tol["key"] == taint["key"]
    return bool(tol.get("key") == taint["key"] and tol.get("value") == taint.get("value"))


# -- WebSocket (RFC 6455), server side -----------------------------------------------------------


class _WebSocket:
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


# -- HTTP -----------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *_args: Any) -> None:
        return None

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.track(self.connection, False)

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw else {}

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        query = {k: v for k, v in parse_qs(url.query).items()}
        fake.requests.append(f"{method} {url.path}")
        try:
            body = self._body() if method in ("POST", "PATCH", "DELETE") else None
            fake.gate(self.headers.get("Authorization"), url.path)
            if (
                url.path.endswith("/exec")
                and self.headers.get("Upgrade", "").lower() == "websocket"
            ):
                self._exec(url.path, query)
                return
            code, reply = fake.route(method, url.path, query, body)
        except ApiError as err:
            code, reply = err.code, err.body
        self._reply(code, reply)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- exec ----------------------------------------------------------------------------------

    def _exec(self, path: str, query: dict[str, list[str]]) -> None:
        fake = self.server.fake
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/exec", path)
        if m is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        pod = fake.running_pod(m.group(1), m.group(2))
        offered = [p.strip() for p in self.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if _V4 not in offered:
            raise ApiError(400, "BadRequest", f"only {_V4} is supported by this fake")
        command = query.get("command") or []
        if not command:
            raise ApiError(400, "BadRequest", "you must specify at least 1 command")
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", _V4)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        ws = _WebSocket(self.connection)
        _ExecSession(ws, pod, command, query.get("stdin") == ["true"]).run()


class _ExecSession:
    """One exec: a local process whose output goes out on channels 1 and 2."""

    def __init__(self, ws: _WebSocket, pod: _Pod, command: list[str], stdin: bool) -> None:
        self.ws, self.pod, self.command, self.stdin = ws, pod, command, stdin

    def run(self) -> None:
        env = {**os.environ, "HOME": str(self.pod.home), _MARKER: self.pod.uid}
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


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, fake: FakeApiServer) -> None:
        self.fake = fake
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self.conns_lock:
            (self.conns.add if alive else self.conns.discard)(conn)

    def drop_connections(self) -> None:
        with self.conns_lock:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


# -- the fake -----------------------------------------------------------------------------------


class FakeApiServer:
    """One fake cluster (one kubeconfig context). Use as a context manager, or `start`/`close`."""

    def __init__(
        self, root: Path, *, name: str = "fake", token: str | None = None, start_delay: float = 0.05
    ) -> None:
        self.name = name
        self.token = token
        self.state = _State(root, start_delay)
        self.requests: list[str] = []
        self._refuse = False
        self._forbidden: list[str] = []
        self._failures: list[int] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeApiServer:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=f"fake-{self.name}"
        )
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        with self.state.lock:
            for pod in self.state.pods.values():
                _kill_marked(pod.uid)
        if self._server is not None:
            self._server.shutdown()
            self._server.drop_connections()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- test helpers ---------------------------------------------------------------------------

    def add_node(
        self,
        name: str,
        *,
        cpu: str = "4",
        memory: str = "16Gi",
        gpus: int = 0,
        labels: dict[str, str] | None = None,
        arch: str = "amd64",
        taints: list[dict[str, str]] | None = None,
    ) -> None:
        """A Ready node with this allocatable (capacity is the same) and these labels."""
        resources = {"cpu": cpu, "memory": memory, "pods": "110"}
        if gpus:
            resources[GPU] = str(gpus)
        with self.state.lock:
            n = len(self.state.nodes) + 1
            self.state.nodes[name] = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": self.state.rv(),
                    "creationTimestamp": _now(),
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/arch": arch,
                        "kubernetes.io/os": "linux",
                        **(labels or {}),
                    },
                },
                "spec": {"taints": taints} if taints else {},
                "status": {
                    "capacity": dict(resources),
                    "allocatable": dict(resources),
                    "conditions": [
                        _cond("Ready", "True", "KubeletReady", "kubelet is posting ready status")
                    ],
                    "addresses": [
                        {"type": "InternalIP", "address": f"192.168.0.{n}"},
                        {"type": "Hostname", "address": name},
                    ],
                    "nodeInfo": {
                        "architecture": arch,
                        "bootID": str(uuid.uuid4()),
                        "containerRuntimeVersion": "fake://0",
                        "kernelVersion": "0.0.0-fake",
                        "kubeProxyVersion": "v1.30.0-fake",
                        "kubeletVersion": "v1.30.0-fake",
                        "machineID": uuid.uuid4().hex,
                        "operatingSystem": "linux",
                        "osImage": "a fake node",
                        "systemUUID": str(uuid.uuid4()),
                    },
                },
            }

    def remove_node(self, name: str) -> None:
        """Delete a node; the pods bound to it disappear with it."""
        with self.state.lock:
            self.state.nodes.pop(name, None)
            self.state.tick()

    def occupy(
        self, node: str, *, cpu: str = "0", memory: str = "0", gpus: int = 0,
        namespace: str = "kube-system", phase: str = "Running",
    ) -> str:  # fmt: skip
        """A pod that is not skyplan's, bound to `node`, requesting these amounts; its name."""
        requests = {"cpu": cpu, "memory": memory} | ({GPU: str(gpus)} if gpus else {})
        body = {
            "metadata": {"generateName": "other-", "labels": {"app": "other"}},
            "spec": {
                "nodeName": node,
                "containers": [
                    {"name": "main", "image": "busybox", "resources": {"requests": requests}}
                ],
            },
        }
        with self.state.lock:
            pod = self._create(namespace, body)
            pod.run_at = 0.0
            self.state.tick()
            pod.obj["status"]["phase"] = phase
            return str(pod.obj["metadata"]["name"])

    def refuse_auth(self, refuse: bool = True) -> None:
        """Answer every request with 401 Unauthorized (as if the credentials were revoked)."""
        self._refuse = refuse

    def forbid(self, path_prefix: str) -> None:
        """Answer requests under `path_prefix` with 403 Forbidden (RBAC says no)."""
        self._forbidden.append(path_prefix)

    def fail_next(self, n: int, status: int = 500) -> None:
        """Fail the next `n` requests with `status` (500 InternalError by default)."""
        self._failures.extend([status] * n)

    def heal(self) -> None:
        """Undo `refuse_auth`, `forbid` and `fail_next`."""
        self._refuse = False
        self._forbidden.clear()
        self._failures.clear()

    def pods(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """The pods that exist now (foreign ones included), as JSON objects."""
        with self.state.lock:
            self.state.tick()
            return [
                json.loads(json.dumps(p.obj))
                for (ns, _), p in sorted(self.state.pods.items())
                if namespace in (None, ns)
            ]

    def pod_home(self, namespace: str, name: str) -> Path:
        with self.state.lock:
            return self.state.pods[(namespace, name)].home

    # -- request handling -----------------------------------------------------------------------

    def gate(self, authorization: str | None, path: str) -> None:
        if self._failures:
            code = self._failures.pop(0)
            raise ApiError(code, "InternalError", "Internal error occurred: injected by the fake")
        if self._refuse or (self.token and authorization != f"Bearer {self.token}"):
            raise ApiError(401, "Unauthorized", "Unauthorized")
        for prefix in self._forbidden:
            if path.startswith(prefix):
                what = path.rstrip("/").rsplit("/", 1)[-1]
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{what} is forbidden: User "fake" cannot list resource "{what}" '
                    'in API group ""',
                    kind=what,
                )

    def route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, dict[str, Any]]:
        st = self.state
        with st.lock:
            st.tick()
            if path in ("/version", "/version/") and method == "GET":
                return 200, _VERSION
            if path == "/api/v1/nodes" and method == "GET":
                items = [n for _, n in sorted(st.nodes.items())]
                sel = _one(query, "labelSelector")
                items = [n for n in items if label_match(sel, n["metadata"].get("labels") or {})]
                return 200, _list("NodeList", items, st.version)
            if path == "/api/v1/pods" and method == "GET":
                return 200, self._list_pods(None, query)
            if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", path):
                ns = self._namespace(m.group(1))
                if method == "GET":
                    return 200, self._list_pods(ns, query)
                if method == "POST":
                    pod = self._create(ns, body)
                    st.tick()
                    return 201, pod.obj
            if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)", path):
                pod = self._get(self._namespace(m.group(1)), m.group(2))
                if method == "GET":
                    return 200, pod.obj
                if method == "PATCH":
                    self._patch(pod, body)
                    return 200, pod.obj
                if method == "DELETE":
                    grace = _one(query, "gracePeriodSeconds") or (body or {}).get(
                        "gracePeriodSeconds"
                    )
                    st.delete(pod, float(grace) if grace not in (None, "") else 30.0)
                    return 200, pod.obj
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def running_pod(self, namespace: str, name: str) -> _Pod:
        with self.state.lock:
            self.state.tick()
            pod = self._get(self._namespace(namespace), name)
            if pod.obj["status"]["phase"] != "Running" or pod.gone_at is not None:
                raise ApiError(
                    400, "BadRequest", f"container not found ({name!r}); the pod is not running"
                )
            return pod

    def _namespace(self, ns: str) -> str:
        if ns not in self.state.namespaces:
            raise ApiError(
                404, "NotFound", f'namespaces "{ns}" not found', name=ns, kind="namespaces"
            )
        return ns

    def _get(self, ns: str, name: str) -> _Pod:
        pod = self.state.pods.get((ns, name))
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found', name=name, kind="pods")
        return pod

    def _list_pods(self, ns: str | None, query: dict[str, list[str]]) -> dict[str, Any]:
        labels, fields = _one(query, "labelSelector"), _one(query, "fieldSelector")
        items = [
            p.obj
            for (pns, _), p in sorted(self.state.pods.items())
            if ns in (None, pns)
            and label_match(labels, p.obj["metadata"].get("labels") or {})
            and (not fields or field_match(fields, p.obj))
        ]
        return _list("PodList", items, self.state.version)

    def _create(self, ns: str, body: dict[str, Any]) -> _Pod:
        st = self.state
        meta = dict(body.get("metadata") or {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(422, "Invalid", "name or generateName is required")
            alphabet = "".join(
                c for c in string.ascii_lowercase + string.digits if c not in "aeiou013"
            )
            meta["name"] = meta["generateName"] + "".join(random.choices(alphabet, k=5))
        name = meta["name"]
        if (ns, name) in st.pods:
            raise ApiError(
                409, "AlreadyExists", f'pods "{name}" already exists', name=name, kind="pods"
            )
        meta.update(
            namespace=ns,
            uid=str(uuid.uuid4()),
            resourceVersion=st.rv(),
            creationTimestamp=_now(),
        )
        spec = dict(body.get("spec") or {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        obj = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
               "status": {"phase": "Pending", "qosClass": "Burstable"}}  # fmt: skip
        _validate(obj)
        pod = _Pod(obj, st.root / f"{ns}.{name}.{meta['uid'][:8]}", _requests(spec))
        st.pods[(ns, name)] = pod
        return pod

    def _patch(self, pod: _Pod, body: dict[str, Any]) -> None:
        meta = (body or {}).get("metadata") or {}
        for key in ("labels", "annotations"):
            if key in meta:
                merged = {**(pod.obj["metadata"].get(key) or {}), **(meta[key] or {})}
                pod.obj["metadata"][key] = {k: v for k, v in merged.items() if v is not None}
        pod.obj["metadata"]["resourceVersion"] = self.state.rv()


_VERSION = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.0-fake",
    "gitCommit": "0" * 40,
    "gitTreeState": "clean",
    "buildDate": "2024-01-01T00:00:00Z",
    "goVersion": "go1.22.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _one(query: dict[str, list[str]], key: str) -> str:
    return (query.get(key) or [""])[0]


def _list(kind: str, items: list[dict[str, Any]], version: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"resourceVersion": str(version)},
        "items": items,
    }


def kubeconfig(servers: dict[str, FakeApiServer], *, current: str | None = None) -> str:
    """A kubeconfig (YAML is a superset of JSON) with one context per fake server, named after
    the key; a server started with a token gets it as the user's token."""
    names = list(servers)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": {"server": s.url}} for n, s in servers.items()],
        "users": [
            {"name": n, "user": {"token": s.token} if s.token else {}} for n, s in servers.items()
        ],
        "contexts": [
            {"name": n, "context": {"cluster": n, "user": n, "namespace": "default"}} for n in names
        ],
        "current-context": current or names[0],
        "preferences": {},
    }
    return json.dumps(doc, indent=2)


@contextlib.contextmanager
def fake_servers(root: Path, names: list[str], **kw: Any) -> Iterator[dict[str, FakeApiServer]]:
    """Started fake servers, one per name, closed afterwards."""
    servers: dict[str, FakeApiServer] = {}
    try:
        for name in names:
            (root / name).mkdir(parents=True, exist_ok=True)
            servers[name] = FakeApiServer(root / name, name=name, **kw).start()
        yield servers
    finally:
        for server in servers.values():
            server.close()
