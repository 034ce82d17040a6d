"""The reference CLI: `plan`, `show-gpus`, `catalog show`, `schema task`; output and exit codes.

Exit codes: 0 success, 1 the request cannot be satisfied, 2 invalid input or usage. Errors are
one `error: ...` message on stderr, never a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result

import skyplan
from skyplan.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]

HEADER = (
    "cloud,region,zone,instance_type,accelerator,accelerator_count,vcpus,memory_gib,"
    "price,spot_price,source,as_of"
)
#: (cloud, region, zone, instance type, accelerator, count, vCPUs, GiB, price, spot price)
OFFERS = [
    ("aws", "us-east-1", "us-east-1a", "p4d.24xlarge", "A100", 8, 96, 1152, 32.77, 12.0),
    ("aws", "us-east-1", "us-east-1a", "g4dn.xlarge", "T4", 1, 4, 16, 0.526, 0.2),
    # CPU-only on aws: m6i.2xlarge is the default pick; the others miss a default.
    ("aws", "us-east-1", "us-east-1a", "m6i.xlarge", None, None, 4, 16, 0.192, 0.08),
    ("aws", "us-east-1", "us-east-1a", "c6i.2xlarge", None, None, 8, 16, 0.34, 0.12),
    ("aws", "us-east-1", "us-east-1a", "m6i.2xlarge", None, None, 8, 32, 0.384, 0.15),
    ("aws", "us-east-1", "us-east-1a", "t3.2xlarge", None, None, 8, 32, 0.33, 0.1),
    ("gcp", "us-central1", "us-central1-a", "a2-highgpu-8g", "A100", 8, 96, 680, 29.39, 10.35),
    ("gcp", "us-central1", "us-central1-a", "n4-standard-8", None, None, 8, 32, 0.40, None),
    ("lambda", "us-west-1", None, "gpu_1x_a100", "A100", 1, 30, 200, 1.29, None),
    ("lambda", "us-west-1", None, "cpu_8x", None, None, 8, 64, 0.50, None),
]
PRICES = {(o[0], o[3]): (o[8], o[9]) for o in OFFERS}

GPU_TASK = """\
    name: train
    resources:
      accelerators: A100:8
    run: python train.py
    """
CPU_TASK = """\
    name: prep
    run: python prep.py
    """


def _cell(value: object) -> str:
    return "" if value is None else str(value)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.csv"
    rows = [",".join(_cell(v) for v in (*o, "test", "2025-01-01")) for o in OFFERS]
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def write_task(tmp_path: Path) -> Any:
    def write(text: str, name: str = "task.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


def invoke(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def plan_json(task: Path, catalog: Path, *flags: str) -> dict[str, Any]:
    result = invoke("plan", task, "--catalog", catalog, "--json", *flags)
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# -- plan ---------------------------------------------------------------------------------------


def test_plan_prints_a_table_and_a_summary(write_task: Any, catalog: Path) -> None:
    result = invoke("plan", write_task(GPU_TASK), "--catalog", catalog)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "task train: accelerators=A100:8" in out
    for column in ("INFRA", "INSTANCE", "GPUS", "SPOT", "NODES", "$/h"):
        assert column in out
    assert "a2-highgpu-8g" in out and "p4d.24xlarge" in out
    assert (
        "train: gcp/us-central1/us-central1-a a2-highgpu-8g (A100:8), on-demand, 1 node(s), "
        "$29.3900/h" in out
    )
    # The last line says which catalog and how old the shown clouds' prices are; prices older
    # than SKYPLAN_CATALOG_MAX_AGE_DAYS (180) are warned about on stderr, and nothing else is.
    assert out.splitlines()[-1].startswith("prices: aws as of ") and str(catalog) in out
    assert result.stderr.splitlines()
    assert all(
        line.startswith("warning: ") and " prices are " in line
        for line in result.stderr.splitlines()
    )


PLACEMENT_KEYS = {
    "task",
    "cloud",
    "region",
    "zone",
    "instance_type",
    "accelerators",
    "spot",
    "num_nodes",
    "hourly_cost",
    "alternatives",
}
#: What `Placement.to_json` adds to the keys above: the node shape and the explanation.
EXPLANATION_KEYS = {
    "vcpus",
    "memory_gib",
    "option",
    "filters",
    "notes",
    "rules",
    "preferences_applied",
    "decided_by",
}
OFFER_KEYS = PLACEMENT_KEYS - {"task", "alternatives"} | {"vcpus", "memory_gib"}


def test_plan_json_shape(write_task: Any, catalog: Path) -> None:
    data = plan_json(write_task(GPU_TASK), catalog)
    assert set(data) == {"placements", "hourly_cost"}
    [placement] = data["placements"]
    assert set(placement) == PLACEMENT_KEYS | EXPLANATION_KEYS
    assert {k: placement[k] for k in PLACEMENT_KEYS - {"alternatives"}} == {
        "task": "train",
        "cloud": "gcp",
        "region": "us-central1",
        "zone": "us-central1-a",
        "instance_type": "a2-highgpu-8g",
        "accelerators": {"A100": 8},
        "spot": False,
        "num_nodes": 1,
        "hourly_cost": 29.39,
    }
    assert [(a["cloud"], a["instance_type"]) for a in placement["alternatives"]] == [
        ("aws", "p4d.24xlarge")
    ]
    assert all(set(a) == OFFER_KEYS for a in placement["alternatives"])
    assert placement["option"] == "accelerators=A100:8"
    assert all(
        set(f) == {"name", "requirement", "before", "after", "rule"} for f in placement["filters"]
    )
    assert data["hourly_cost"] == 29.39


@pytest.mark.parametrize("num_nodes", [1, 2, 3])
@pytest.mark.parametrize("spot", [False, True], ids=["on-demand", "spot"])
def test_hourly_cost_is_price_times_num_nodes(
    write_task: Any, catalog: Path, num_nodes: int, spot: bool
) -> None:
    flags = ["--num-nodes", str(num_nodes), *(["--use-spot"] if spot else [])]
    [placement] = plan_json(write_task(GPU_TASK), catalog, *flags)["placements"]
    for offer in [placement, *placement["alternatives"]]:
        price, spot_price = PRICES[(offer["cloud"], offer["instance_type"])]
        unit = spot_price if spot else price
        assert offer["spot"] is spot
        assert offer["num_nodes"] == num_nodes
        assert offer["hourly_cost"] == pytest.approx(unit * num_nodes)


@pytest.mark.parametrize(
    ("task", "flags", "expected"),
    [
        pytest.param(GPU_TASK, [], ("gcp", "a2-highgpu-8g", False, 1), id="gpu-cheapest"),
        pytest.param(
            GPU_TASK,
            ["--infra", "aws"],
            ("aws", "p4d.24xlarge", False, 1),
            id="infra-pins-the-cloud",
        ),
        pytest.param(
            GPU_TASK,
            ["--infra", "aws/us-east-1/us-east-1a"],
            ("aws", "p4d.24xlarge", False, 1),
            id="infra-pins-the-zone",
        ),
        pytest.param(
            GPU_TASK,
            ["--gpus", "A100:1"],
            ("lambda", "gpu_1x_a100", False, 1),
            id="gpus-replaces-the-accelerators",
        ),
        pytest.param(
            GPU_TASK,
            ["--gpus", "t4"],
            ("aws", "g4dn.xlarge", False, 1),
            id="gpus-matched-case-insensitively",
        ),
        pytest.param(
            GPU_TASK, ["--num-nodes", "2"], ("gcp", "a2-highgpu-8g", False, 2), id="num-nodes"
        ),
        pytest.param(GPU_TASK, ["--use-spot"], ("gcp", "a2-highgpu-8g", True, 1), id="use-spot"),
        pytest.param(
            GPU_TASK,
            ["--use-spot", "--infra", "aws", "--num-nodes", "2"],
            ("aws", "p4d.24xlarge", True, 2),
            id="flags-combine",
        ),
        pytest.param(
            GPU_TASK.replace("A100:8", "A100:8\n      use_spot: true"),
            ["--no-use-spot"],
            ("gcp", "a2-highgpu-8g", False, 1),
            id="no-use-spot-overrides-the-task",
        ),
        pytest.param(
            CPU_TASK,
            [],
            ("aws", "m6i.2xlarge", False, 1),
            id="cpu-only-default-family-8-plus-vcpus-4x-memory",
        ),
        pytest.param(
            CPU_TASK, ["--cpus", "4"], ("aws", "m6i.xlarge", False, 1), id="cpu-only-with-cpus"
        ),
        pytest.param(
            CPU_TASK,
            ["--infra", "gcp"],
            ("gcp", "n4-standard-8", False, 1),
            id="cpu-only-gcp-default-family",
        ),
        pytest.param(
            CPU_TASK,
            ["--infra", "lambda"],
            ("lambda", "cpu_8x", False, 1),
            id="cpu-only-other-clouds-accept-any-family",
        ),
        pytest.param(
            CPU_TASK,
            ["-t", "t3.2xlarge"],
            ("aws", "t3.2xlarge", False, 1),
            id="instance-type-bypasses-default-families",
        ),
    ],
)
def test_plan_choice(
    write_task: Any,
    catalog: Path,
    task: str,
    flags: list[str],
    expected: tuple[str, str, bool, int],
) -> None:
    [placement] = plan_json(write_task(task), catalog, *flags)["placements"]
    keys = ("cloud", "instance_type", "spot", "num_nodes")
    assert tuple(placement[k] for k in keys) == expected


def test_plan_a_pipeline_places_every_task(write_task: Any, catalog: Path) -> None:
    task = write_task(
        """\
        name: both
        ---
        name: prep
        run: echo prep
        ---
        name: train
        resources: {accelerators: A100:1}
        run: echo train
        """
    )
    data = plan_json(task, catalog)
    assert [(p["task"], p["instance_type"]) for p in data["placements"]] == [
        ("prep", "m6i.2xlarge"),
        ("train", "gpu_1x_a100"),
    ]
    assert data["hourly_cost"] == pytest.approx(0.384 + 1.29)
    table = invoke("plan", task, "--catalog", catalog)
    assert "total: $1.6740/h" in table.stdout


def test_alternatives_can_be_limited(write_task: Any, catalog: Path) -> None:
    [none] = plan_json(write_task(CPU_TASK), catalog, "--alternatives", "0")["placements"]
    assert none["alternatives"] == []
    [two] = plan_json(write_task(CPU_TASK), catalog, "--alternatives", "2")["placements"]
    # Other clouds' best offers come first, so a short list still shows the spread.
    assert {a["cloud"] for a in two["alternatives"]} == {"gcp", "lambda"}


# -- errors and exit codes ----------------------------------------------------------------------


def assert_clean_error(result: Result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""


def test_infeasible_exits_1(write_task: Any, catalog: Path) -> None:
    result = invoke("plan", write_task(GPU_TASK), "--catalog", catalog, "--gpus", "H100:8")
    assert_clean_error(
        result, 1, "error: no feasible placement for task 'train'", "did you mean 'A100'?"
    )


def test_infeasible_json_exits_1_without_output(write_task: Any, catalog: Path) -> None:
    result = invoke("plan", write_task(GPU_TASK), "--catalog", catalog, "--infra", "k8s", "--json")
    assert_clean_error(result, 1, "error: no feasible placement")


def test_invalid_yaml_exits_2(write_task: Any, catalog: Path) -> None:
    task = write_task("name: x\nresources: {accelerators: A100\nrun: x\n")
    result = invoke("plan", task, "--catalog", catalog)
    assert_clean_error(result, 2, f"{task}:3:4: invalid YAML", "3 | run: x")


def test_invalid_field_exits_2_with_the_hint(write_task: Any, catalog: Path) -> None:
    task = write_task("resources:\n  acelerators: A100\n")
    result = invoke("plan", task, "--catalog", catalog)
    assert_clean_error(
        result, 2, f"{task}:2:3: resources.acelerators", "did you mean 'accelerators'"
    )


def test_missing_task_file_exits_2(tmp_path: Path, catalog: Path) -> None:
    result = invoke("plan", tmp_path / "nope.yaml", "--catalog", catalog)
    assert_clean_error(result, 2, "nope.yaml: file not found")


def test_unknown_catalog_exits_2(write_task: Any, tmp_path: Path) -> None:
    result = invoke("plan", write_task(GPU_TASK), "--catalog", tmp_path / "nope.csv")
    assert_clean_error(result, 2, "nope.csv: catalog not found")


BAD_FLAGS = [
    pytest.param(["--gpus", "A100:0"], "greater than 0", id="gpus-zero-count"),
    pytest.param(["--gpus", "A100:1.5"], "fractional count", id="gpus-fraction-above-one"),
    pytest.param(["--infra", "awz"], "did you mean 'aws'", id="infra-typo"),
    pytest.param(["--cpus", "four"], "vCPU count", id="cpus-word"),
    pytest.param(["--memory", "lots"], "expected a size", id="memory-word"),
]


@pytest.mark.parametrize(("flags", "reason"), BAD_FLAGS)
def test_bad_flag_value_exits_2(
    write_task: Any, catalog: Path, flags: list[str], reason: str
) -> None:
    result = invoke("plan", write_task(GPU_TASK), "--catalog", catalog, *flags)
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("flags", "reason"), BAD_FLAGS)
def test_bad_flag_value_says_why(
    write_task: Any, catalog: Path, flags: list[str], reason: str
) -> None:
    result = invoke("plan", write_task(GPU_TASK), "--catalog", catalog, *flags)
    assert_clean_error(result, 2, reason)
    assert "pydantic" not in result.stderr


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(["--num-nodes", "0"], id="num-nodes-zero"),
        pytest.param(["--alternatives", "-1"], id="negative-alternatives"),
        pytest.param(["--no-such-flag"], id="unknown-flag"),
    ],
)
def test_usage_error_exits_2(write_task: Any, catalog: Path, flags: list[str]) -> None:
    result = invoke("plan", write_task(GPU_TASK), "--catalog", catalog, *flags)
    assert result.exit_code == 2
    assert "Usage:" in result.stderr


# -- schema, show-gpus, catalog show ------------------------------------------------------------


def test_schema_task() -> None:
    result = invoke("schema", "task")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "skyplan task"
    task = schema["$defs"]["Task"]
    assert {"resources", "run", "num_nodes", "service"} <= set(task["properties"])


def _task_files() -> list[Path]:
    files = sorted((ROOT / "examples").rglob("*.yaml"))
    compat = ROOT.parent / "shared" / "compat" / "skypilot-examples"
    return files + (sorted(compat.glob("*.yaml")) if compat.is_dir() else [])


def test_the_schema_accepts_every_document_the_parser_accepts() -> None:
    # 21 SkyPilot examples and examples/serve.yaml failed it (`readiness_probe: /health`,
    # `gpus:`, a job group's first document).
    validator = jsonschema.Draft202012Validator(json.loads(invoke("schema", "task").stdout))
    rejected = {}
    for path in _task_files():
        try:
            skyplan.load_task(path)
        except skyplan.SkyplanError:
            continue
        for document in yaml.safe_load_all(path.read_text()):
            error = jsonschema.exceptions.best_match(validator.iter_errors(document or {}))
            if error is not None:
                rejected[path.name] = error.message
    assert rejected == {}
    assert not validator.is_valid({"resources": {"acelerators": "A100"}})


def test_show_gpus_table(catalog: Path) -> None:
    result = invoke("show-gpus", "--catalog", catalog)
    assert result.exit_code == 0, result.stderr
    assert "A100" in result.stdout and "T4" in result.stdout
    assert "$1.2900" in result.stdout


def test_show_gpus_json(catalog: Path) -> None:
    result = invoke("show-gpus", "--catalog", catalog, "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["accelerators"]
    assert rows == [
        {
            "accelerator": "A100",
            "counts": [1, 8],
            "clouds": ["aws", "gcp", "lambda"],
            "min_price": 1.29,
        },
        {"accelerator": "T4", "counts": [1], "clouds": ["aws"], "min_price": 0.526},
    ]


def test_show_gpus_json_scoped_to_infra(catalog: Path) -> None:
    result = invoke("show-gpus", "--catalog", catalog, "--infra", "gcp", "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["accelerators"]
    assert [(r["accelerator"], r["clouds"]) for r in rows] == [("A100", ["gcp"])]


def test_show_gpus_one_accelerator_json(catalog: Path) -> None:
    result = invoke("show-gpus", "A100", "--catalog", catalog, "--json")
    assert result.exit_code == 0, result.stderr
    offers = json.loads(result.stdout)["offers"]
    assert [(o["cloud"], o["instance_type"], o["accelerator_count"]) for o in offers] == [
        ("lambda", "gpu_1x_a100", 1),
        ("gcp", "a2-highgpu-8g", 8),
        ("aws", "p4d.24xlarge", 8),
    ]
    aws = offers[2]
    assert (aws["on_demand_price"], aws["spot_price"]) == (32.77, 12.0)
    assert (aws["on_demand_region"], aws["spot_region"]) == ("us-east-1", "us-east-1")
    assert offers[0]["spot_price"] is None


def test_show_gpus_with_a_count(catalog: Path) -> None:
    result = invoke("show-gpus", "a100:8", "--catalog", catalog, "--json")
    assert result.exit_code == 0, result.stderr
    offers = json.loads(result.stdout)["offers"]
    assert {o["cloud"] for o in offers} == {"aws", "gcp"}
    assert all(o["accelerator"] == "A100" for o in offers)


def test_show_gpus_table_for_one_accelerator(catalog: Path) -> None:
    result = invoke("show-gpus", "A100", "--catalog", catalog)
    assert result.exit_code == 0, result.stderr
    assert "gpu_1x_a100" in result.stdout and "$32.7700" in result.stdout


def test_show_gpus_unknown_accelerator(catalog: Path) -> None:
    result = invoke("show-gpus", "H100", "--catalog", catalog)
    assert_clean_error(result, 1, "H100 is not in this catalog", "did you mean 'A100'?")


def test_catalog_show_json(catalog: Path) -> None:
    result = invoke("catalog", "show", "--catalog", catalog, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["catalog"] == str(catalog)
    summary = {row["cloud"]: row for row in data["clouds"]}
    assert list(summary) == ["aws", "gcp", "lambda"]
    assert {c: r["offers"] for c, r in summary.items()} == {"aws": 6, "gcp": 2, "lambda": 2}
    assert summary["aws"]["accelerators"] == ["A100", "T4"]
    assert summary["aws"]["instance_types"] == 6
    assert summary["aws"]["regions"] == 1
    assert summary["aws"]["sources"] == ["test"]
    assert summary["aws"]["as_of"] == "2025-01-01"


def test_catalog_show_table(catalog: Path) -> None:
    result = invoke("catalog", "show", "--catalog", catalog)
    assert result.exit_code == 0, result.stderr
    assert "lambda" in result.stdout and "2025-01-01" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["catalog", "show"], id="catalog-show"),
        pytest.param(["show-gpus"], id="show-gpus"),
    ],
)
def test_unknown_catalog_path_exits_2(tmp_path: Path, args: list[str]) -> None:
    result = invoke(*args, "--catalog", tmp_path / "missing")
    assert_clean_error(result, 2, "catalog not found")


def test_a_file_that_is_not_a_catalog_exits_2(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello\n", encoding="utf-8")
    result = invoke("catalog", "show", "--catalog", bogus)
    assert_clean_error(result, 2, "not a catalog")


def test_a_catalog_with_a_bad_column_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("cloud,region,flavour\naws,us-east-1,x\n", encoding="utf-8")
    result = invoke("catalog", "show", "--catalog", bad)
    assert_clean_error(result, 2, "unknown column(s) flavour")


# -- the real program ---------------------------------------------------------------------------


def test_python_dash_m_skyplan_plans(write_task: Any, catalog: Path) -> None:
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "skyplan",
            "plan",
            str(write_task(GPU_TASK)),
            "--catalog",
            str(catalog),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    [placement] = json.loads(child.stdout)["placements"]
    assert (placement["cloud"], placement["instance_type"]) == ("gcp", "a2-highgpu-8g")


def test_python_dash_m_skyplan_exit_code_on_bad_input(tmp_path: Path, catalog: Path) -> None:
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "skyplan",
            "plan",
            str(tmp_path / "nope.yaml"),
            "--catalog",
            str(catalog),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 2
    assert child.stderr.startswith("error: ")
    assert "Traceback" not in child.stderr


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == "skyplan, version 0.1.0"
