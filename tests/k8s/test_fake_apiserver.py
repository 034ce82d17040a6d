"""The FAKE API server itself: it must answer like a real one where the backend looks (Status
bodies, selectors, the scheduler's verdicts, the exec WebSocket), or the contract tests would
prove nothing. Spoken to over raw HTTP and a plain WebSocket client, not through the backend."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket

from tests.k8s.fake_apimachinery import label_match, quantity
from tests.k8s.fake_apiserver import FakeApiServer

TOKEN = "t0ken"
PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeApiServer]:
    with FakeApiServer(tmp_path, token=TOKEN, start_delay=0.0) as server:
        server.add_node("cpu", cpu="2", memory="4Gi")
        server.add_node("gpu", cpu="8", memory="32Gi", gpus=1, labels={"gpu": "a100"},
                        taints=[{"key": "nvidia.com/gpu", "effect": "NoSchedule"}])  # fmt: skip
        yield server


def call(
    fake: FakeApiServer, method: str, path: str, body: Any = None, token: str | None = TOKEN
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        fake.url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def pod(name: str, cpu: str = "1", memory: str = "1Gi", **spec: Any) -> dict[str, Any]:
    resources = {"requests": {"cpu": cpu, "memory": memory}}
    container = {"name": "main", "image": "busybox", "resources": resources}
    meta = {"name": name, "labels": {"app": name}}
    return {"metadata": meta, "spec": {"containers": [container], **spec}}


def status_of(fake: FakeApiServer, name: str) -> dict[str, Any]:
    code, body = call(fake, "GET", f"{PODS}/{name}")
    assert code == 200, body
    return body


@pytest.mark.parametrize(
    ("selector", "labels", "match"),
    [
        ("a=1", {"a": "1"}, True),
        ("a==1,b!=2", {"a": "1", "b": "3"}, True),
        ("a!=1", {}, True),
        ("a", {"a": ""}, True),
        ("!a", {"a": "x"}, False),
        ("a in (1, 2),b notin (3)", {"a": "2", "b": "4"}, True),
        ("a in (1,2)", {"a": "3"}, False),
        ("", {"x": "y"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], match: bool) -> None:
    assert label_match(selector, labels) is match


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", 0.5), ("2", 2), ("1Gi", 2**30), ("1.5Ki", 1536), ("1G", 10**9), ("100", 100)],
)
def test_quantities(text: str, value: float) -> None:
    assert quantity(text) == pytest.approx(value)


def test_errors_are_status_objects(fake: FakeApiServer) -> None:
    code, body = call(fake, "GET", f"{PODS}/nope")
    assert (code, body["kind"], body["reason"], body["details"]) == (
        404, "Status", "NotFound", {"name": "nope", "kind": "pods"}
    )  # fmt: skip
    assert call(fake, "GET", "/api/v1/nodes", token=None)[1]["reason"] == "Unauthorized"
    assert call(fake, "POST", PODS, pod("Bad_Name"))[1]["reason"] == "Invalid"
    assert call(fake, "POST", PODS, pod("p"))[0] == 201
    assert call(fake, "POST", PODS, pod("p"))[1]["reason"] == "AlreadyExists"
    fake.fail_next(1)
    assert call(fake, "GET", "/version")[0] == 500
    assert call(fake, "GET", "/version")[1]["gitVersion"] == "v1.30.0-fake"


def test_generate_name_and_list_selectors(fake: FakeApiServer) -> None:
    body = pod("")
    body["metadata"] = {"generateName": "gen-", "labels": {"app": "g"}}
    code, made = call(fake, "POST", PODS, body)
    assert code == 201 and made["metadata"]["name"].startswith("gen-")
    assert made["metadata"]["uid"] and made["metadata"]["resourceVersion"]
    call(fake, "POST", PODS, pod("other"))
    _, listed = call(fake, "GET", f"{PODS}?labelSelector=app%3Dg")
    assert [p["metadata"]["name"] for p in listed["items"]] == [made["metadata"]["name"]]
    _, running = call(fake, "GET", "/api/v1/pods?fieldSelector=status.phase%3DRunning")
    assert len(running["items"]) == 2


def test_the_scheduler_binds_pods_that_fit(fake: FakeApiServer) -> None:
    call(fake, "POST", PODS, pod("small", cpu="1"))
    small = status_of(fake, "small")
    assert (small["spec"]["nodeName"], small["status"]["phase"]) == ("cpu", "Running")
    assert small["status"]["podIP"].startswith("10.0.0.")
    gpu = pod("g", tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists"}],
              nodeSelector={"gpu": "a100"})  # fmt: skip
    gpu["spec"]["containers"][0]["resources"]["limits"] = {"nvidia.com/gpu": "1"}
    call(fake, "POST", PODS, gpu)
    assert status_of(fake, "g")["spec"]["nodeName"] == "gpu"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, "
             "1 node(s) had untolerated taint {nvidia.com/gpu: None}."),
        ({"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]},
         "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."),
        ({"nodeSelector": {"gpu": "h100"}},
         "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."),
    ],
    ids=["taint", "gpus", "selector"],
)  # fmt: skip
def test_a_pod_that_fits_nowhere_is_unschedulable(
    fake: FakeApiServer, spec: dict[str, Any], message: str
) -> None:
    body = pod("big", **spec)
    body["spec"]["containers"][0]["resources"]["limits"] = {"nvidia.com/gpu": "2"}
    call(fake, "POST", PODS, body)
    got = status_of(fake, "big")["status"]
    assert got["phase"] == "Pending"
    assert got["conditions"] == [
        {**got["conditions"][0], "type": "PodScheduled", "status": "False",
         "reason": "Unschedulable", "message": message}
    ]  # fmt: skip


def test_a_pending_pod_runs_once_a_node_has_room(fake: FakeApiServer) -> None:
    call(fake, "POST", PODS, pod("wide", cpu="3"))
    assert status_of(fake, "wide")["status"]["phase"] == "Pending"
    fake.add_node("wide-node", cpu="4")
    assert status_of(fake, "wide")["status"]["phase"] == "Running"


def test_exec_speaks_websocket_v4(fake: FakeApiServer) -> None:
    call(fake, "POST", PODS, pod("sh"))
    host, port = fake.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(
            (
                f"GET {PODS}/sh/exec?command=true&stdout=true HTTP/1.1\r\nHost: x\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n"
                f"Authorization: Bearer {TOKEN}\r\n\r\n"
            ).encode()
        )
        head = raw.recv(4096).decode(errors="replace")
    assert head.startswith("HTTP/1.1 101")
    assert "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # RFC 6455's example
    frames = _exec(fake, "sh", ["head", "-c", "6"], stdin=b"hello\n")
    assert frames == [b"\x01hello\n", b'\x03{"metadata": {}, "status": "Success"}']


def _exec(fake: FakeApiServer, name: str, argv: list[str], stdin: bytes = b"") -> list[bytes]:
    """Every frame of one exec, up to and including the error channel's."""
    query = "&".join(f"command={urllib.parse.quote(a)}" for a in argv)
    flags = "&stdout=true&stderr=true" + ("&stdin=true" if stdin else "")
    ws = websocket.WebSocket()
    ws.connect(
        f"ws://{fake.url.removeprefix('http://')}{PODS}/{name}/exec?{query}{flags}",
        header=[f"Authorization: Bearer {TOKEN}"],
        subprotocols=["v4.channel.k8s.io"],
        timeout=10,
    )
    frames: list[bytes] = []
    try:
        if stdin:
            ws.send_binary(b"\x00" + stdin)
        while not frames or frames[-1][:1] != b"\x03":
            frames.append(ws.recv())
    finally:
        ws.close()
    return frames


def test_exec_reports_the_exit_code_on_the_error_channel(fake: FakeApiServer) -> None:
    call(fake, "POST", PODS, pod("sh"))
    *frames, last = _exec(fake, "sh", ["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert sorted(frames) == [b"\x01out\n", b"\x02err\n"]
    status = json.loads(last[1:])
    assert (status["status"], status["reason"]) == ("Failure", "NonZeroExitCode")
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "4"}]


def test_deleting_a_pod_kills_its_processes(fake: FakeApiServer, tmp_path: Path) -> None:
    call(fake, "POST", PODS, pod("job"))
    home = fake.pod_home("default", "job")
    _exec(
        fake, "job", ["sh", "-c", "(setsid sleep 300 > /dev/null 2>&1 < /dev/null & echo $! > pid)"]
    )
    pid = int((home / "pid").read_text())
    os.kill(pid, 0)  # the detached process outlived its exec
    assert call(fake, "DELETE", f"{PODS}/job?gracePeriodSeconds=0")[0] == 200
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
        assert time.monotonic() < deadline, "the pod's process survived its deletion"
        time.sleep(0.05)
    assert not home.exists()
    assert call(fake, "GET", f"{PODS}/job")[0] == 404


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"
