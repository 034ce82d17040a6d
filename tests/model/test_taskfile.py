"""Task YAML text → `Dag`, and every problem reported where it is in the file.

A `TaskError` renders as `file:line:col: field.path: message`, the offending line with a caret
under the column, and a `hint:` (did-you-mean) where one exists; up to ten, sorted by position.

Golden files: `golden/<name>.yaml` is a bad task, `golden/<name>.yaml.error` its exact rendered
error. Regenerate them with `SKYPLAN_UPDATE_GOLDEN=1 pytest tests/model/test_taskfile.py`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import skyplan
from skyplan.model import Dag, Infra, ReadinessProbe
from skyplan.model.accelerators import parse_accelerators
from skyplan.model.quantity import CpuSpec, MemorySpec
from skyplan.model.taskfile import parse_task_text

GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("SKYPLAN_UPDATE_GOLDEN") == "1"
NAME = "task.yaml"


def parse(text: str) -> Dag:
    return parse_task_text(textwrap.dedent(text), NAME)


def error_of(text: str) -> skyplan.TaskError:
    with pytest.raises(skyplan.TaskError) as info:
        parse(text)
    return info.value


# -- valid files --------------------------------------------------------------------------------

FULL_TASK = """\
    name: llm-serve
    workdir: .
    num_nodes: 2
    resources:
      infra: gcp/us-central1
      accelerators: {A100:8, H100:8}
      cpus: 32+
      memory: 256+
      disk_size: 512
      disk_tier: best
      use_spot: true
      job_recovery:
        strategy: FAILOVER
        max_restarts_on_errors: 3
      ports: 8080
      labels:
        team: ml
      autostop: 30m
      image_id: docker:vllm/vllm-openai:latest
    envs:
      MODEL: meta-llama/Llama-3.1-8B
      BATCH: 32
    secrets:
      HF_TOKEN: null
    file_mounts:
      /data: s3://bucket/data
      /ckpt:
        source: gs://bucket/ckpt
        mode: MOUNT
    setup: |
      pip install vllm
    run: |
      vllm serve $MODEL
    service:
      readiness_probe: /v1/models
      replica_policy:
        min_replicas: 1
        max_replicas: 3
        target_qps_per_replica: 2.5
      ports: 8080
    """


def test_a_full_skypilot_task_parses() -> None:
    dag = parse(FULL_TASK)
    assert (dag.kind, dag.name, len(dag.tasks)) == ("task", "llm-serve", 1)
    task = dag.tasks[0]
    assert task.name == "llm-serve"
    assert task.workdir == "."
    assert task.num_nodes == 2
    assert task.envs == {"MODEL": "meta-llama/Llama-3.1-8B", "BATCH": 32}
    assert task.secrets == {"HF_TOKEN": None}
    assert task.file_mounts == {
        "/data": "s3://bucket/data",
        "/ckpt": {"source": "gs://bucket/ckpt", "mode": "MOUNT"},
    }
    assert task.setup == "pip install vllm\n"
    assert task.run == "vllm serve $MODEL\n"
    r = task.resources
    assert r.infra == Infra(cloud="gcp", region="us-central1")
    assert r.accelerators == parse_accelerators({"A100:8": None, "H100:8": None})
    assert r.cpus == CpuSpec(count=32, at_least=True)
    assert r.memory == MemorySpec(gib=256, mode="at_least")
    assert (r.disk_size, r.disk_tier, r.use_spot, r.ports) == (512, "best", True, ("8080",))
    assert r.job_recovery is not None
    assert (r.job_recovery.strategy, r.job_recovery.max_restarts_on_errors) == ("failover", 3)
    assert r.autostop is not None and r.autostop.idle_minutes == 30
    assert r.labels == {"team": "ml"}
    assert task.is_service
    assert task.service is not None
    assert task.service.readiness_probe == ReadinessProbe(path="/v1/models")
    assert task.service.replica_bounds() == (1, 3)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("run: echo hi\n", id="run-only"),
        pytest.param("resources:\nrun: echo hi\n", id="empty-resources"),
        pytest.param("envs:\nsecrets:\nrun: echo\n", id="empty-envs-and-secrets"),
        pytest.param("# a comment\nname: x\n", id="comment-first"),
        pytest.param("---\nname: x\n", id="leading-document-marker"),
    ],
)
def test_minimal_tasks_parse(text: str) -> None:
    assert parse(text).kind == "task"


def test_envs_keys_become_strings() -> None:
    assert parse("envs:\n  1: one\n").tasks[0].envs == {"1": "one"}


def test_a_multi_document_file_with_a_header_is_a_pipeline() -> None:
    dag = parse(
        """\
        name: train-then-eval
        ---
        name: train
        resources: {accelerators: A100:8}
        run: python train.py
        ---
        name: eval
        resources: {accelerators: T4}
        run: python eval.py
        """
    )
    assert (dag.kind, dag.name) == ("pipeline", "train-then-eval")
    assert [t.name for t in dag.tasks] == ["train", "eval"]


def test_a_multi_document_file_without_a_header_is_an_unnamed_pipeline() -> None:
    dag = parse("name: a\nrun: echo a\n---\nname: b\nrun: echo b\n")
    assert (dag.kind, dag.name) == ("pipeline", None)
    assert [t.name for t in dag.tasks] == ["a", "b"]


def test_a_header_with_parallel_execution_is_a_job_group() -> None:
    dag = parse(
        """\
        name: rl
        execution: parallel
        primary_tasks: [trainer]
        termination_delay: 30
        ---
        name: trainer
        run: python train.py
        ---
        name: rollout
        run: python rollout.py
        """
    )
    assert (dag.kind, dag.name) == ("job_group", "rl")
    assert dag.primary_tasks == ("trainer",)
    assert dag.termination_delay == "30"
    assert [t.name for t in dag.tasks] == ["trainer", "rollout"]


def test_a_header_with_serial_execution_is_a_pipeline() -> None:
    dag = parse("name: p\nexecution: serial\n---\nrun: a\n---\nrun: b\n")
    assert (dag.kind, len(dag.tasks)) == ("pipeline", 2)


# -- errors -------------------------------------------------------------------------------------


def caret_snippet(text: str, line: int, col: int) -> str:
    """What the error must quote for a problem at line:col of `text`."""
    gutter = f"{line} | "
    source_line = textwrap.dedent(text).splitlines()[line - 1]
    return f"{gutter}{source_line}\n{' ' * (len(gutter) + col - 1)}^"


@pytest.mark.parametrize(
    ("text", "line", "col", "field", "fragments"),
    [
        pytest.param(
            "name: x\nresources:\n  acelerators: A100\n",
            3, 3, "resources.acelerators",
            ["unknown field 'acelerators'", "hint: did you mean 'accelerators'?"],
            id="misspelled-resources-key",
        ),
        pytest.param(
            "resources:\n  spot_recovery: failover\n",
            2, 3, "resources.spot_recovery",
            ["unknown field 'spot_recovery'", "hint: did you mean 'job_recovery'?"],
            id="renamed-key-spot-recovery",
        ),
        pytest.param(
            "nodes: 2\n", 1, 1, "nodes", ["hint: did you mean 'num_nodes'?"],
            id="renamed-key-nodes",
        ),
        pytest.param(
            "resourcez:\n  cpus: 4\n", 1, 1, "resourcez",
            ["unknown field 'resourcez'", "hint: did you mean 'resources'?"],
            id="misspelled-top-level-key",
        ),
        pytest.param(
            "run: x\nfrobnicate: 1\n", 2, 1, "frobnicate",
            ["unknown field 'frobnicate'", "hint: expected one of: name, workdir, num_nodes"],
            id="unknown-top-level-key-lists-fields",
        ),
        pytest.param(
            "service:\n  readines_probe: /\n", 2, 3, "service.readines_probe",
            ["hint: did you mean 'readiness_probe'?"],
            id="misspelled-service-key",
        ),
        pytest.param(
            "service:\n  replica_policy:\n    min_replica: 1\n",
            3, 5, "service.replica_policy.min_replica",
            ["hint: did you mean 'min_replicas'?"],
            id="misspelled-replica-policy-key",
        ),
        pytest.param(
            "resources:\n  accelerators: A100:0\n", 2, 3, "resources.accelerators",
            ["accelerator count must be greater than 0"],
            id="bad-accelerator-count",
        ),
        pytest.param(
            "resources:\n  infra: awz\n", 2, 3, "resources.infra",
            ["unknown cloud 'awz'; did you mean 'aws'?"],
            id="cloud-typo-in-infra",
        ),
        pytest.param(
            "num_nodes: zero\n", 1, 1, "num_nodes", ["(got 'zero')"],
            id="type-error-shows-the-input",
        ),
        pytest.param(
            "resources:\n  accelerators: A100:8\n  any_of:\n    - use_spot: true\n"
            "    - accelerators: A100:1.5\n",
            5, 7, "resources.any_of[1].accelerators",
            ["a fractional count is only allowed below 1"],
            id="error-inside-any-of-entry-points-at-that-entry",
        ),
        pytest.param(
            "resources:\n  ordered:\n    - infra: aws\n    - acelerators: T4\n",
            4, 7, "resources.ordered[1].acelerators",
            ["hint: did you mean 'accelerators'?"],
            id="misspelled-key-inside-ordered-entry",
        ),
        pytest.param(
            "resources:\n  infra: aws\n  cloud: gcp\n", 1, 1, "resources",
            ["give either 'infra' or the older 'cloud'/'region'/'zone'"],
            id="block-level-conflict-points-at-the-block",
        ),
    ],
)
def test_invalid_field_is_located(
    text: str, line: int, col: int, field: str, fragments: list[str]
) -> None:
    err = error_of(text)
    rendered = str(err)
    assert rendered.startswith(f"{NAME}:{line}:{col}: {field}: ")
    assert caret_snippet(text, line, col) in rendered
    for fragment in fragments:
        assert fragment in rendered
    assert "Traceback" not in rendered and "pydantic" not in rendered


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        pytest.param(
            "name: x\nresources:\n  accelerators: {A100: 8\nrun: echo\n", 4, 4,
            "invalid YAML: expected ',' or '}'", id="unclosed-bracket",
        ),
        pytest.param(
            "name: x\n  run: echo\n", 2, 6, "invalid YAML: mapping values are not allowed here",
            id="bad-indentation",
        ),
        pytest.param(
            "name: x\nname: y\n", 2, 1, "duplicate key 'name'", id="duplicate-top-level-key",
        ),
        pytest.param(
            "resources:\n  cpus: 4\n  cpus: 8\n", 3, 3, "duplicate key 'cpus'",
            id="duplicate-nested-key",
        ),
        pytest.param(
            "- run: a\n- run: b\n", 1, 1, "a task must be a mapping of fields",
            id="list-instead-of-mapping",
        ),
        pytest.param(
            "echo hello\n", 1, 1, "a task must be a mapping of fields",
            id="scalar-instead-of-mapping",
        ),
    ],
)
def test_invalid_document_is_located(text: str, line: int, col: int, message: str) -> None:
    rendered = str(error_of(text))
    assert rendered.startswith(f"{NAME}:{line}:{col}: {message}")
    assert caret_snippet(text, line, col) in rendered


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("\n\n", id="blank-lines"),
        pytest.param("# nothing but a comment\n", id="comment-only"),
        pytest.param("---\n---\n", id="empty-documents"),
    ],
)
def test_a_file_without_a_task_is_an_error(text: str) -> None:
    assert str(error_of(text)) == f"{NAME}: the file holds no task"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("&a [*a]\n", id="self-referencing-list"),
        pytest.param("&a {run: echo, x: *a}\n", id="self-referencing-mapping"),
    ],
)
def test_a_recursive_alias_is_a_task_error(text: str) -> None:
    with pytest.raises(skyplan.TaskError):
        parse(text)


def alias_bomb(depth: int) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, depth)]
    return "\n".join([*lines, "run: echo\n"])


def test_an_alias_bomb_is_answered_promptly() -> None:
    """A few hundred bytes of nested aliases must not make the parser walk 10**9 nodes.

    Run in a child with a memory cap and a timeout: a regression here must not take the
    test machine down with it."""
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))\n"
        "import skyplan\n"
        "from skyplan.model.taskfile import parse_task_text\n"
        "try:\n"
        "    parse_task_text(sys.stdin.read(), 'bomb.yaml')\n"
        "except skyplan.TaskError:\n"
        "    pass\n"
        "print('answered')\n"
    )
    try:
        child = subprocess.run(
            [sys.executable, "-c", code],
            input=alias_bomb(9),
            capture_output=True,
            text=True,
            timeout=10,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("parse_task_text did not answer a 9-level alias bomb within 10 s")
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip() == "answered"


def test_at_most_ten_diagnostics_and_a_count_of_the_rest() -> None:
    err = error_of("".join(f"unknown_{i:02}: 1\n" for i in range(12)))
    assert len(err.diagnostics) == 10
    assert [d.span.line for d in err.diagnostics] == list(range(1, 11))
    assert str(err).endswith("\n... and 2 more problem(s)")


def test_diagnostics_are_sorted_by_position() -> None:
    err = error_of(
        """\
        zzz: 1
        num_nodes: 0
        resources:
          cpus: four
          acelerators: A100
        """
    )
    positions = [(d.span.line, d.span.col) for d in err.diagnostics]
    assert positions == [(1, 1), (2, 1), (4, 3), (5, 3)]
    assert [d.field for d in err.diagnostics] == [
        "zzz", "num_nodes", "resources.cpus", "resources.acelerators"
    ]


def test_errors_in_several_documents_are_reported_together() -> None:
    err = error_of("name: p\n---\nnum_nodes: 0\n---\nnum_nodes: -1\n")
    assert [(d.span.line, d.field) for d in err.diagnostics] == [
        (3, "num_nodes"), (5, "num_nodes")
    ]


def test_task_error_is_an_input_error() -> None:
    err = error_of("num_nodes: 0\n")
    assert isinstance(err, skyplan.InputError)
    assert isinstance(err, skyplan.SkyplanError)
    assert err.exit_code == 2


# -- golden files -------------------------------------------------------------------------------

GOLDEN_FILES = sorted(GOLDEN.glob("*.yaml"))


def test_there_are_golden_files() -> None:
    assert len(GOLDEN_FILES) >= 4


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_golden_error(path: Path) -> None:
    expected_path = path.with_name(path.name + ".error")
    with pytest.raises(skyplan.TaskError) as info:
        parse_task_text(path.read_text(encoding="utf-8"), path.name)
    rendered = str(info.value) + "\n"
    if UPDATE_GOLDEN:
        expected_path.write_text(rendered, encoding="utf-8")
    assert expected_path.exists(), f"run with SKYPLAN_UPDATE_GOLDEN=1 to create {expected_path}"
    assert rendered == expected_path.read_text(encoding="utf-8")


# -- properties ---------------------------------------------------------------------------------

YAML_PIECES = [
    "name: x", "resources:", "  ", "    ", "accelerators: ", "A100:8", "{", "}", "[", "]",
    ", ", "- ", "\n", ": ", "any_of:", "ordered:", "service:", "replicas: 2", "---\n", "\t",
    "'", '"', "!!binary ", "? ", "|", "#", "1", "null", "true", "infra: aws", "num_nodes: ",
    "-1", "envs:", "x: y", "&a ",
]
yaml_like = st.lists(st.sampled_from(YAML_PIECES), max_size=40).map("".join)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text() | yaml_like)
def test_any_text_gives_a_dag_or_a_task_error(text: str) -> None:
    try:
        result = parse_task_text(text, NAME)
    except skyplan.TaskError as err:
        assert 1 <= len(err.diagnostics) <= 10
        keys = [(d.span.line or 0, d.span.col or 0) for d in err.diagnostics]
        assert keys == sorted(keys)
        assert str(err)
    else:
        assert isinstance(result, Dag)
        assert result.tasks
