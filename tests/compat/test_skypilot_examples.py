"""skyplan plans SkyPilot's own 323 example tasks as SkyPilot 0.14.1 does, or better.

The corpus (../shared/compat/skypilot-examples) records SkyPilot's verdict on each file on the
synthetic catalog. Agreement, as its README defines it:
- SkyPilot ok            → skyplan places every task, total $/h ≤ SkyPilot's × 1.005;
- SkyPilot load error    → skyplan rejects the file as invalid input (exit 2);
- SkyPilot optimize error → skyplan finds no feasible placement (exit 1).
Entries SkyPilot failed only because it ran offline are left out.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

import skyplan
from tests.conftest import COMPAT, SYNTHETIC

pytestmark = pytest.mark.shared


def _manifest() -> list[dict[str, Any]]:
    path = COMPAT / "manifest.json"
    if not path.exists():
        return []
    entries = json.loads(path.read_text())
    return [e for e in entries if not e["skypilot_offline_artifact"]]


ENTRIES = _manifest()


def _outcome(entry: dict[str, Any], catalog: skyplan.Catalog) -> tuple[int, skyplan.Plan | None]:
    try:
        work = skyplan.load_task(COMPAT / entry["file"])
        return 0, skyplan.plan(work, catalog=catalog)
    except skyplan.SkyplanError as exc:
        return exc.exit_code, None


@pytest.mark.skipif(not ENTRIES, reason="../shared/compat is absent")
@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"].removesuffix(".yaml") for e in ENTRIES])
def test_plans_like_skypilot_or_better(
    entry: dict[str, Any], synthetic_catalog: skyplan.Catalog
) -> None:
    verdict = entry["skypilot"]
    code, result = _outcome(entry, synthetic_catalog)
    if verdict["status"] == "ok":
        assert code == 0, f"SkyPilot placed it on {verdict['instance_type']}"
        assert result is not None
        assert len(result.placements) == entry["tasks"]
        assert result.hourly_cost <= verdict["hourly_cost"] * 1.005 + 1e-9, (
            f"skyplan ${result.hourly_cost:.5f}/h vs SkyPilot ${verdict['hourly_cost']}/h"
        )
    elif verdict["phase"] == "load":
        assert code == 2
    else:
        assert code == 1


@pytest.mark.skipif(not ENTRIES, reason="../shared/compat is absent")
@pytest.mark.parametrize(
    "name, code",
    [
        ("llm__vllm__serve.yaml", 0),
        ("examples__job_queue__job.yaml", 1),
        ("examples__spot__resnet.yaml", 2),
    ],
)
def test_cli_exit_codes_and_json_shape(name: str, code: int) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "skyplan",
            "plan",
            str(COMPAT / name),
            "--catalog",
            str(SYNTHETIC),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    if code == 0:
        placement = json.loads(proc.stdout)["placements"][0]
        keys = {
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
        assert keys <= set(placement)
        for alt in placement["alternatives"]:
            assert keys - {"alternatives", "task"} <= set(alt)
    else:
        assert proc.stderr.startswith("error: ")
