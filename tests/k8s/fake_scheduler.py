"""A FAKE Kubernetes scheduler and kubelets: binds pods to nodes and moves them through phases.

    !!! THIS IS A FAKE. Part of `fake_apiserver` (read its docstring first). It is not
    !!! kube-scheduler and not a kubelet: a "pod" is a local directory plus local processes,
    !!! nothing is isolated, no image is pulled and the pod's own command is never run.

What it owns: the cluster's nodes and pods (`ClusterState`, guarded by its lock) and how a pod
moves on each `tick`. A pod is bound to a node whose free allocatable (allocatable minus the
requests of pods bound to it) covers its requests and which matches its nodeSelector, required
node affinity (`In`, `NotIn`, `Exists`, `DoesNotExist`) and tolerations; it goes Running (podIP
10.0.0.N) after `start_delay`. Otherwise it stays Pending with `PodScheduled=False`, reason
`Unschedulable` and a message in the real scheduler's words ("0/2 nodes are available: 2
Insufficient nvidia.com/gpu."). A pod on a removed node disappears. A deleted pod is Terminating
for a moment; its processes (found by the `MARKER` environment variable) are killed and its
directory removed, like a container's. No restarts, preemption, resource limits or OOM kills.

It knows nothing of HTTP; `fake_apiserver` calls it under the state's lock.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.k8s.fake_apimachinery import now, quantity

MARKER = "SKYPLAN_FAKE_POD"


@dataclass
class Pod:
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


def pod_requests(spec: dict[str, Any]) -> dict[str, Decimal]:
    total: dict[str, Decimal] = {}
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        amounts = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        for key, value in amounts.items():
            total[key] = total.get(key, Decimal(0)) + quantity(value)
    return total


def kill_marked(uid: str) -> None:
    """SIGKILL every process carrying the pod's environment marker (its "container")."""
    needle = f"{MARKER}={uid}".encode() + b"\0"
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
class ClusterState:
    root: Path
    start_delay: float
    lock: threading.RLock = field(default_factory=threading.RLock)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: dict[tuple[str, str], Pod] = field(default_factory=dict)
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

    def _misfit(self, pod: Pod, node: dict[str, Any]) -> list[str]:
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

    def _schedule(self, pod: Pod, now: float) -> None:
        reasons: dict[str, int] = {}
        for name in sorted(self.nodes):
            misfit = self._misfit(pod, self.nodes[name])
            if not misfit:
                pod.obj["spec"]["nodeName"] = name
                pod.run_at = now + self.start_delay
                pod.obj["status"]["conditions"] = [condition("PodScheduled", "True")]
                self._set_container(pod, {"waiting": {"reason": "ContainerCreating"}})
                pod.obj["metadata"]["resourceVersion"] = self.rv()
                return
            for r in misfit:
                reasons[r] = reasons.get(r, 0) + 1
        detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
        message = f"0/{len(self.nodes)} nodes are available" + (f": {detail}." if detail else ".")
        cond = condition("PodScheduled", "False", "Unschedulable", message)
        if pod.obj["status"].get("conditions") != [cond]:
            pod.obj["status"]["conditions"] = [cond]
            pod.obj["metadata"]["resourceVersion"] = self.rv()

    def _set_container(self, pod: Pod, state: dict[str, Any]) -> None:
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

    def _run(self, pod: Pod) -> None:
        pod.home.mkdir(parents=True, exist_ok=True)
        ip, node = f"10.0.0.{self.next_ip}", self.nodes[pod.obj["spec"]["nodeName"]]
        self.next_ip += 1
        pod.obj["status"].update(
            phase="Running",
            podIP=ip,
            podIPs=[{"ip": ip}],
            hostIP=node["status"]["addresses"][0]["address"],
            startTime=now(),
            conditions=[
                condition(t, "True")
                for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                          "PodScheduled")
            ],
        )  # fmt: skip
        self._set_container(pod, {"running": {"startedAt": now()}})
        pod.obj["metadata"]["resourceVersion"] = self.rv()

    def _kill(self, pod: Pod) -> None:
        kill_marked(pod.uid)
        shutil.rmtree(pod.home, ignore_errors=True)

    def delete(self, pod: Pod, grace: float) -> None:
        if pod.gone_at is None:
            pod.obj["metadata"]["deletionTimestamp"] = now()
            pod.obj["metadata"]["deletionGracePeriodSeconds"] = int(grace)
            pod.obj["metadata"]["resourceVersion"] = self.rv()
            # Terminating for a moment (a tenth of the grace period, at most 0.3 s).
            pod.gone_at = time.monotonic() + min(grace / 10, 0.3)
            self._kill(pod)


def condition(
    kind: str, status: str, reason: str | None = None, message: str | None = None
) -> dict:
    c: dict[str, Any] = {"type": kind, "status": status, "lastTransitionTime": now()}
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
