"""A FAKE Kubernetes API server for tests. It is NOT Kubernetes and NOT a conformance target.

    !!! THIS IS A FAKE. It implements only the slice of the Kubernetes API that skyplan's
    !!! `kubernetes` backend uses, just well enough for the official Python client (37.x, which
    !!! validates every response with pydantic) to accept its answers. A "pod" here is a local
    !!! directory plus local processes; nothing is isolated and the image is never pulled.

No kube-apiserver, kind, k3s or envtest can be had in this environment (see
../shared/TESTING.md), so the backend's contract tests run against this server and, with
`SKYPLAN_REAL_K8S=1` and a `KUBECONFIG`, against a real cluster.

The fake is four modules, imports pointing one way (each imports only those above it):

- `fake_apimachinery` — quantities, `Status` error bodies, label and field selectors;
- `fake_scheduler` — the nodes and pods, binding pods to nodes, phases, `Unschedulable`;
- `fake_exec` — exec over a WebSocket (RFC 6455) speaking `v4.channel.k8s.io`;
- this module — the HTTP server, routing, creating and patching objects, test helpers.

What it implements (one stdlib `ThreadingHTTPServer` on 127.0.0.1, plain HTTP):

- `GET /version`;
- `GET /api/v1/nodes` — nodes a test adds with `add_node` (allocatable cpu, memory,
  `nvidia.com/gpu`, labels, taints);
- `GET /api/v1/pods` and `GET|POST /api/v1/namespaces/{ns}/pods` — list with `labelSelector`
  (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`) and `fieldSelector` (`status.phase`,
  `spec.nodeName`, `metadata.name`); create with `generateName`, 409 `AlreadyExists`, 422
  `Invalid` for a bad name, label or quantity;
- `GET|PATCH|DELETE /api/v1/namespaces/{ns}/pods/{name}` (merge patch of metadata only);
- `GET /api/v1/namespaces/{ns}/pods/{name}/exec` over a WebSocket (see `fake_exec`): channel 0
  stdin, 1 stdout, 2 stderr, 3 the final `Status`. The command runs as a local process with the
  pod's directory as HOME and cwd.
- a scheduler (see `fake_scheduler`): a pod is bound to a node whose free allocatable covers its
  requests and which matches its nodeSelector, required node affinity and tolerations; it goes
  Running after `start_delay`, or stays Pending with `PodScheduled=False`, reason
  `Unschedulable` and a message in the real scheduler's words. Pending pods are retried
  whenever the server is asked anything.
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

import contextlib
import json
import random
import re
import socket
import string
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.k8s.fake_apimachinery import ApiError, field_match, label_match, now
from tests.k8s.fake_exec import serve_exec
from tests.k8s.fake_scheduler import ClusterState, Pod, condition, kill_marked, pod_requests

GPU = "nvidia.com/gpu"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


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
        pod_requests(pod.get("spec") or {})
    except ValueError as exc:
        causes.append(("spec.containers[0].resources", str(exc)))
    if causes:
        raise ApiError(
            422, "Invalid",
            f'Pod "{meta["name"]}" is invalid: ' + ", ".join(f"{f}: {m}" for f, m in causes),
            name=meta["name"], kind="pods",
            causes=[{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes],
        )  # fmt: skip


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
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/exec", path)
        if m is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        pod = self.server.fake.running_pod(m.group(1), m.group(2))
        serve_exec(self, pod, query)


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
        self.state = ClusterState(root, start_delay)
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
                kill_marked(pod.uid)
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
                    "creationTimestamp": now(),
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
                        condition(
                            "Ready", "True", "KubeletReady", "kubelet is posting ready status"
                        )
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

    def running_pod(self, namespace: str, name: str) -> Pod:
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

    def _get(self, ns: str, name: str) -> Pod:
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

    def _create(self, ns: str, body: dict[str, Any]) -> Pod:
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
            creationTimestamp=now(),
        )
        spec = dict(body.get("spec") or {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        obj = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
               "status": {"phase": "Pending", "qosClass": "Burstable"}}  # fmt: skip
        _validate(obj)
        pod = Pod(obj, st.root / f"{ns}.{name}.{meta['uid'][:8]}", pod_requests(spec))
        st.pods[(ns, name)] = pod
        return pod

    def _patch(self, pod: Pod, body: dict[str, Any]) -> None:
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
