"""The `kubernetes` backend: a node is a pod, an infra option is a kubeconfig context.

`infra: k8s/<context>` pins a context. Each context is a region of cloud `kubernetes`, so a
capacity or auth error blocks that context and failover moves on to the next. Offers are the
shapes a context has free now (`k8s_capacity`); commands run through the exec API
(`k8s_exec`). Configuration (constructor argument, else environment; docs/backends/kubernetes.md):
the kubeconfig (`$KUBECONFIG`, `:`-separated, else `~/.kube/config`), the contexts to use
(`$SKYPLAN_K8S_CONTEXTS`, default all), the namespace (`$SKYPLAN_K8S_NAMESPACE`, else the
context's, else `default`), the image (`$SKYPLAN_K8S_IMAGE`, default `ubuntu:22.04`, which has
bash, tar and coreutils), the price per pod-hour (`$SKYPLAN_K8S_PRICE`, default 0) and an extra
GPU-model node label (`$SKYPLAN_K8S_GPU_LABEL`).

Provisioning creates pods named `<cluster>-<rank>` (a repeated launch finds them), labelled
`skyplan.dev/cluster` and `skyplan.dev/rank`, requesting the offer's shape (memory and GPUs also
as limits; no CPU limit, which would only throttle), with a command that sleeps until the pod
is deleted. It polls until every pod runs; an `Unschedulable` pod makes it delete the cluster's
pods in that context and raise `CapacityError`. A pod's HOME is read once and its node root
(`$HOME/.skyplan/node`) kept in an annotation. Pods cannot be stopped: `stop`, `start` and
autostop without `--down` are refused with the capability's reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skyplan.backends.k8s_capacity import (
    DEAD_PHASES,
    GPU,
    GPU_LABELS,
    Shape,
    node_gpu,
    offers_of,
    rooms_of,
)
from skyplan.backends.k8s_exec import ExecRunner, api_error, client_errors
from skyplan.errors import (
    BackendError,
    CapacityError,
    InvalidRequestError,
    Scope,
    TransientError,
)
from skyplan.model.node import (
    BackendCheck,
    Capabilities,
    Capability,
    Node,
    NodeStatus,
    PoolOffer,
    ProvisionRequest,
)

if TYPE_CHECKING:
    from kubernetes.client import Configuration, CoreV1Api, V1Pod

NAME = "kubernetes"
CLUSTER_LABEL = "skyplan.dev/cluster"
RANK_LABEL = "skyplan.dev/rank"
NAME_NOTE = "skyplan.dev/cluster-name"
TYPE_NOTE = "skyplan.dev/instance-type"
ROOT_NOTE = "skyplan.dev/root"
MANAGED_BY = {"app.kubernetes.io/managed-by": "skyplan"}
DEFAULT_IMAGE = "ubuntu:22.04"
#: Sleeps until deleted; exits at once on SIGTERM (PID 1 ignores signals it does not trap).
KEEPALIVE = "trap 'exit 0' TERM INT; while :; do sleep 86400 & wait $!; done"
_BAD_WAITING = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
     "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)  # fmt: skip
_STATUS = {"Pending": NodeStatus.PENDING, "Running": NodeStatus.RUNNING}
_STATUS |= dict.fromkeys(DEAD_PHASES, NodeStatus.TERMINATED)


def _slug(cluster: str) -> str:
    """A DNS label and label value for the cluster name (with a hash when it had to change)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", cluster.lower()).strip("-")[:40].strip("-")
    if slug != cluster or not slug:
        slug = f"{slug}-{hashlib.sha1(cluster.encode()).hexdigest()[:6]}".strip("-")
    return slug


class KubernetesBackend:
    """Pods in the contexts of a kubeconfig; see the module docstring."""

    name = NAME
    capabilities = Capabilities(
        missing={
            Capability.STOP: "Kubernetes cannot stop a pod; use `skyplan down`",
            Capability.AUTOSTOP: "Kubernetes cannot stop a pod, so autostop can only tear the "
            "cluster down (`--down`)",
            Capability.SPOT: "skyplan cannot ask a Kubernetes cluster for spot capacity; "
            "pods land on whatever nodes the cluster has",
            Capability.OPEN_PORTS: "pods are reached at their IP inside the cluster; skyplan "
            "does not create Services for ports",
        }
    )

    def __init__(
        self,
        home: Path,
        *,
        kubeconfig: str | None = None,
        namespace: str | None = None,
        contexts: Sequence[str] | None = None,
        image: str | None = None,
        price: float | None = None,
        gpu_label: str | None = None,
        provision_timeout: float = 600.0,
        poll_interval: float = 1.0,
        request_timeout: float = 30.0,
    ) -> None:
        env = os.environ
        self.home = home
        self.kubeconfig = kubeconfig or env.get("KUBECONFIG") or "~/.kube/config"
        self.namespace = namespace or env.get("SKYPLAN_K8S_NAMESPACE") or None
        only = contexts or [c for c in env.get("SKYPLAN_K8S_CONTEXTS", "").split(",") if c]
        self.only = list(only) or None
        self.image = image or env.get("SKYPLAN_K8S_IMAGE") or DEFAULT_IMAGE
        self.price = price if price is not None else float(env.get("SKYPLAN_K8S_PRICE") or 0)
        label = gpu_label or env.get("SKYPLAN_K8S_GPU_LABEL")
        self.gpu_labels = (label, *GPU_LABELS) if label else GPU_LABELS
        self.provision_timeout = provision_timeout
        self.poll_interval = poll_interval
        self.request_timeout = request_timeout
        self._configs: dict[str, Configuration] = {}
        self._lock = threading.Lock()

    # -- kubeconfig and clients ---------------------------------------------------------------

    def contexts(self) -> dict[str, str]:
        """Context name → the namespace its pods go to; `InvalidRequestError` if none."""
        from kubernetes import config

        files = [Path(p).expanduser() for p in self.kubeconfig.split(os.pathsep) if p]
        found: list[dict[str, Any]] = []
        if any(f.is_file() for f in files):
            try:
                found, _ = config.list_kube_config_contexts(self.kubeconfig)  # type: ignore[no-untyped-call]
            except (config.ConfigException, OSError, ValueError) as exc:
                why = f"cannot read {self.kubeconfig}: {exc}"
                raise InvalidRequestError(why, Scope(NAME)) from exc
        out = {
            c["name"]: self.namespace or c.get("context", {}).get("namespace") or "default"
            for c in found or []
            if self.only is None or c["name"] in self.only
        }
        if not out:
            why = f"no kubeconfig contexts in {self.kubeconfig} (set KUBECONFIG or create it)"
            raise InvalidRequestError(why, Scope(NAME))
        return out

    def _configuration(self, context: str) -> Configuration:
        from kubernetes import client, config

        with self._lock:
            if context not in self._configs:
                cfg = client.Configuration()
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    self.kubeconfig, context, client_configuration=cfg, persist_config=False
                )
                cfg.retries = 1
                self._configs[context] = cfg
            return self._configs[context]

    @contextlib.contextmanager
    def _api(self, context: str, doing: str) -> Iterator[CoreV1Api]:
        """A CoreV1Api on a fresh client, closed afterwards; client errors become ours."""
        from kubernetes import client

        scope = Scope(NAME, context)
        api = None
        try:
            api = client.ApiClient(self._configuration(context))
            yield client.CoreV1Api(api)
        except client_errors() as exc:
            raise api_error(exc, scope, doing) from exc
        finally:
            if api is not None:
                api.close()  # type: ignore[no-untyped-call]

    def _each(self, fn: Any, contexts: Sequence[str]) -> list[tuple[str, Any]]:
        """`fn(context)` for every context in parallel: (context, result or BackendError)."""

        def one(ctx: str) -> Any:
            try:
                return fn(ctx)
            except BackendError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=min(8, max(1, len(contexts)))) as pool:
            return list(zip(contexts, pool.map(one, contexts), strict=True))

    # -- check and offers ---------------------------------------------------------------------

    def check(self) -> BackendCheck:
        try:
            contexts = self.contexts()
        except BackendError as exc:
            return BackendCheck(backend=NAME, ok=False, reason=exc.message)

        def version(ctx: str) -> str:
            from kubernetes import client

            with self._api(ctx, f"reaching context {ctx}") as core:
                info = client.VersionApi(core.api_client).get_code(_request_timeout=5)
            return str(info.git_version)

        results = self._each(version, list(contexts))
        ok = [ctx for ctx, r in results if isinstance(r, str)]
        reason = f"{len(ok)}/{len(results)} context(s) reachable: {', '.join(ok) or 'none'}"
        detail = tuple(
            f"{ctx}: reachable, {r} (namespace {contexts[ctx]})" if ctx in ok else r.message
            for ctx, r in results
        )
        return BackendCheck(backend=NAME, ok=bool(ok), reason=reason, detail=detail)

    def _offers_in(self, context: str) -> list[PoolOffer]:
        with self._api(context, f"listing the nodes of {context}") as core:
            nodes = core.list_node(_request_timeout=self.request_timeout).items
            active = "status.phase!=Succeeded,status.phase!=Failed"
            pods = core.list_pod_for_all_namespaces(
                field_selector=active, _request_timeout=self.request_timeout
            ).items
        return offers_of(context, rooms_of(nodes, pods, self.gpu_labels), self.price)

    def offers(self) -> Sequence[PoolOffer]:
        """Shapes free now in every reachable context; contexts that fail offer nothing."""
        results = self._each(self._offers_in, list(self.contexts()))
        return [o for _, found in results if isinstance(found, list) for o in found]

    # -- provisioning -------------------------------------------------------------------------

    def _pod_body(self, request: ProvisionRequest, rank: int, affinity: Any) -> dict[str, Any]:
        offer, slug = request.offer, _slug(request.cluster)
        gpus = int(next(iter((offer.accelerators or {}).values()), 0))
        shape = Shape(round(offer.vcpus * 1000), round(offer.memory_gib * 10), arch=offer.arch)
        limits = {"memory": str(shape.memory)} | ({GPU: str(gpus)} if gpus else {})
        container = {
            "name": "node",
            "image": (request.image or self.image).removeprefix("docker:"),
            "command": ["/bin/sh", "-c", KEEPALIVE],
            "resources": {"requests": {"cpu": f"{shape.millicpu}m", **limits}, "limits": limits},
        }
        arch = "arm64" if offer.arch == "arm64" else "amd64"
        spec = {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "nodeSelector": {"kubernetes.io/arch": arch},
            "containers": [container],
        }
        if gpus:
            spec["affinity"] = affinity
            spec["tolerations"] = [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
        labels = {CLUSTER_LABEL: slug, RANK_LABEL: str(rank), **MANAGED_BY}
        notes = {NAME_NOTE: request.cluster, TYPE_NOTE: offer.instance_type}
        meta = {"name": f"{slug}-{rank}", "labels": labels, "annotations": notes}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}

    def _gpu_affinity(self, core: CoreV1Api, scope: Scope, accelerator: str) -> dict[str, Any]:
        """Required node affinity for the label values that spell `accelerator` here."""
        values: dict[str, set[str]] = {}
        for node in core.list_node(_request_timeout=self.request_timeout).items:
            found = node_gpu((node.metadata and node.metadata.labels) or {}, self.gpu_labels)
            if found and found[2] == accelerator:
                values.setdefault(found[0], set()).add(found[1])
        if not values:
            raise CapacityError(f"no node has {accelerator} GPUs", scope)
        terms = [
            {"matchExpressions": [{"key": k, "operator": "In", "values": sorted(v)}]}
            for k, v in sorted(values.items())
        ]
        required = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
        return {"nodeAffinity": required}

    def _list(self, core: CoreV1Api, namespace: str, cluster: str | None) -> list[V1Pod]:
        selector = f"{CLUSTER_LABEL}={_slug(cluster)}" if cluster else CLUSTER_LABEL
        pods = core.list_namespaced_pod(
            namespace, label_selector=selector, _request_timeout=self.request_timeout
        ).items
        return sorted(pods, key=_rank)

    def _delete(self, core: CoreV1Api, namespace: str, pods: Sequence[V1Pod], grace: int) -> None:
        from kubernetes.client.exceptions import ApiException

        for pod in pods:
            try:
                core.delete_namespaced_pod(
                    _pod_name(pod), namespace, grace_period_seconds=grace,
                    _request_timeout=self.request_timeout,
                )  # fmt: skip
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def provision(self, request: ProvisionRequest) -> list[Node]:
        offer, context = request.offer, request.offer.region
        scope = Scope(NAME, context)
        if offer.spot:
            raise InvalidRequestError(self.capabilities.why_not(Capability.SPOT) or "", scope)
        namespaces = self.contexts()
        if context not in namespaces:
            known = ", ".join(namespaces) or "none"
            raise InvalidRequestError(f"no kubeconfig context {context!r} (known: {known})", scope)
        ns = namespaces[context]
        with self._api(context, f"creating pods in {context}") as core:
            acc = next(iter(offer.accelerators or {}), None)
            affinity = self._gpu_affinity(core, scope, acc) if acc else None
            old = self._list(core, ns, request.cluster)
            stale = [p for p in old if _phase(p) in DEAD_PHASES or _rank(p) >= offer.num_nodes]
            self._delete(core, ns, stale, 0)
            running = self._wait_running(core, ns, request, affinity)
            for pod in running:
                if ROOT_NOTE not in _notes(pod):
                    self._resolve_root(core, context, ns, pod)
        return [self._node(context, ns, p) for p in running]

    def _wait_running(
        self, core: CoreV1Api, ns: str, request: ProvisionRequest, affinity: Any
    ) -> list[V1Pod]:
        """Create the missing pods and poll until all run; an unschedulable pod deletes them
        all and raises `CapacityError`, a pod that cannot start raises `InvalidRequestError`."""
        from kubernetes.client.exceptions import ApiException

        offer, n = request.offer, request.offer.num_nodes
        scope = Scope(NAME, offer.region)
        start = time.monotonic()
        deadline = start + self.provision_timeout
        while True:
            pods = {_rank(p): p for p in self._list(core, ns, request.cluster)}
            for rank in sorted(set(range(n)) - set(pods)):
                body: Any = self._pod_body(request, rank, affinity)
                try:
                    core.create_namespaced_pod(ns, body, _request_timeout=self.request_timeout)
                except ApiException as exc:
                    if exc.status != 409:  # 409: an old pod of that name is going away
                        raise
            if why := next((u for p in pods.values() if (u := _unschedulable(p))), None):
                self._delete(core, ns, self._list(core, ns, request.cluster), 0)
                raise CapacityError(f"no room for {n}x {offer.instance_type}: {why}", scope)
            if broken := next((b for p in pods.values() if (b := _broken(p))), None):
                raise InvalidRequestError(f"pod {broken}", scope)
            running = [p for r, p in sorted(pods.items()) if r < n and _running(p)]
            if len(running) == n:
                return running
            if time.monotonic() > deadline:
                late = f"{n - len(running)} of {n} pod(s) not running after {deadline - start:g}s"
                raise TransientError(late, scope)
            time.sleep(self.poll_interval)

    def _resolve_root(self, core: CoreV1Api, context: str, namespace: str, pod: V1Pod) -> None:
        """Ask the pod for its HOME once and keep `<HOME>/.skyplan/node` in an annotation."""
        scope, name = Scope(NAME, context), _pod_name(pod)
        result = ExecRunner(self._configuration(context), namespace, name, scope=scope).run(
            'printf "%s" "$HOME"', timeout=60
        )
        if result.exit_code != 0:
            raise TransientError(f"cannot read HOME in pod {name}: {result.output}", scope)
        root = f"{result.output.strip().rstrip('/')}/.skyplan/node"
        patch = {"metadata": {"annotations": {ROOT_NOTE: root}}}
        core.patch_namespaced_pod(
            name, namespace, patch,
            _content_type="application/merge-patch+json", _request_timeout=self.request_timeout,
        )  # fmt: skip
        assert pod.metadata is not None
        pod.metadata.annotations = {**(pod.metadata.annotations or {}), ROOT_NOTE: root}

    def _node(self, context: str, namespace: str, pod: V1Pod) -> Node:
        status, notes = pod.status, _notes(pod)
        state = _STATUS.get((status and status.phase) or "", NodeStatus.UNREACHABLE)
        return Node(
            cluster=_cluster(pod),
            rank=_rank(pod),
            node_id=_pod_name(pod),
            ip=(status and status.pod_ip) or "",
            status=state,
            cloud=NAME,
            region=context,
            instance_type=notes.get(TYPE_NOTE, "pod"),
            extra={"context": context, "namespace": namespace, "pod": _pod_name(pod)}
            | ({"root": notes[ROOT_NOTE]} if ROOT_NOTE in notes else {}),
        )

    # -- observing and deleting ----------------------------------------------------------------

    def _pods_everywhere(self, cluster: str | None) -> tuple[list[Node], list[BackendError]]:
        namespaces = self.contexts()

        def one(ctx: str) -> list[Node]:
            ns = namespaces[ctx]
            with self._api(ctx, f"listing pods in {ctx}") as core:
                pods = self._list(core, ns, cluster)
                for pod in pods:  # a launch that died before reading HOME left none
                    if _running(pod) and ROOT_NOTE not in _notes(pod):
                        self._resolve_root(core, ctx, ns, pod)
                return [self._node(ctx, ns, p) for p in pods if not _deleted(p)]

        results = self._each(one, list(namespaces))
        nodes = [n for _, r in results if isinstance(r, list) for n in r]
        return nodes, [r for _, r in results if isinstance(r, BackendError)]

    def nodes(self, cluster: str) -> list[Node]:
        """The cluster's pods in every context; raises only if a context failed and none held
        any (so one unreachable context does not hide a cluster that lives in another)."""
        nodes, errors = self._pods_everywhere(cluster)
        if errors and not nodes:
            raise errors[0]
        return sorted((n for n in nodes if n.cluster == cluster), key=lambda n: n.rank)

    def runner(self, node: Node) -> ExecRunner:
        ctx, ns, pod = node.extra["context"], node.extra["namespace"], node.extra["pod"]
        return ExecRunner(self._configuration(ctx), ns, pod, scope=Scope(NAME, ctx))

    def stop(self, cluster: str) -> None:
        raise InvalidRequestError(self.capabilities.why_not(Capability.STOP) or "", Scope(NAME))

    def start(self, cluster: str) -> list[Node]:
        raise InvalidRequestError(self.capabilities.why_not(Capability.STOP) or "", Scope(NAME))

    def terminate(self, cluster: str) -> None:
        """Delete the cluster's pods in every context; raises the first failure after trying
        them all (the runtime keeps the record and `down` can be run again)."""
        namespaces = self.contexts()

        def one(ctx: str) -> None:
            with self._api(ctx, f"deleting pods in {ctx}") as core:
                ns = namespaces[ctx]
                pods = [p for p in self._list(core, ns, cluster) if _cluster(p) == cluster]
                self._delete(core, ns, pods, 5)

        errors = [r for _, r in self._each(one, list(namespaces)) if isinstance(r, BackendError)]
        if errors:
            raise errors[0]

    def owned(self) -> dict[str, list[Node]]:
        found: dict[str, list[Node]] = {}
        for node in sorted(self._pods_everywhere(None)[0], key=lambda n: n.rank):
            found.setdefault(node.cluster, []).append(node)
        return found


def _pod_name(pod: V1Pod) -> str:
    return str(pod.metadata and pod.metadata.name)


def _notes(pod: V1Pod) -> dict[str, str]:
    return (pod.metadata and pod.metadata.annotations) or {}


def _cluster(pod: V1Pod) -> str:
    labels = (pod.metadata and pod.metadata.labels) or {}
    return _notes(pod).get(NAME_NOTE) or labels.get(CLUSTER_LABEL, "")


def _rank(pod: V1Pod) -> int:
    value = ((pod.metadata and pod.metadata.labels) or {}).get(RANK_LABEL, "")
    return int(value) if value.isdigit() else 0


def _deleted(pod: V1Pod) -> bool:
    return bool(pod.metadata and pod.metadata.deletion_timestamp)


def _running(pod: V1Pod) -> bool:
    status = pod.status
    return bool(status and status.phase == "Running" and status.pod_ip and not _deleted(pod))


def _phase(pod: V1Pod) -> str:
    return (pod.status and pod.status.phase) or ""


def _unschedulable(pod: V1Pod) -> str | None:
    """The scheduler's message when it found no node for the pod."""
    for c in (pod.status and pod.status.conditions) or []:
        if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
            return c.message or "Unschedulable"
    return None


def _broken(pod: V1Pod) -> str | None:
    """Why the pod can never run (a bad image, a container that exited), if so."""
    if (status := pod.status) is None:
        return None
    if status.phase in DEAD_PHASES:
        return f"{_pod_name(pod)} ended ({status.phase}): {status.message or status.reason or ''}"
    for cs in status.container_statuses or []:
        waiting = cs.state and cs.state.waiting
        if waiting and waiting.reason in _BAD_WAITING:
            return f"{_pod_name(pod)} cannot start: {waiting.reason}: {waiting.message or ''}"
    return None
