"""The `resources:` block: validation of every spelling, and its expansion into option groups.

`option_groups()` is an ordered list of groups; within a group the cheapest option wins, and the
first group with a feasible option is used. `any_of` and accelerator sets widen one group;
`ordered` and accelerator lists add groups.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from skyplan.model import Autostop, Infra, JobRecovery, ResourceOption, Resources
from skyplan.model.accelerators import Accelerator, parse_accelerators
from skyplan.model.infra import parse_infra
from skyplan.model.quantity import CpuSpec, MemorySpec


def res(**fields: Any) -> Resources:
    return Resources.model_validate(fields)


def opt(
    acc: str | None = None, *, infra: str | None = None, spot: bool = False, **fields: Any
) -> ResourceOption:
    name, _, count = (acc or "").partition(":")
    return ResourceOption(
        infra=Infra() if infra is None else parse_infra(infra),
        accelerator=Accelerator(name=name, count=float(count or 1)) if acc else None,
        use_spot=spot,
        **fields,
    )


# -- option groups ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "groups"),
    [
        pytest.param({}, [[opt()]], id="nothing-one-group-one-option"),
        pytest.param({"accelerators": "A100:8"}, [[opt("A100:8")]], id="one-accelerator"),
        pytest.param(
            {"accelerators": {"A100:1": None, "T4:1": None}},
            [[opt("A100:1"), opt("T4:1")]],
            id="accelerator-set-one-group-many-options",
        ),
        pytest.param(
            {"accelerators": ["A100:1", "T4:1"]},
            [[opt("A100:1")], [opt("T4:1")]],
            id="accelerator-list-one-group-per-entry",
        ),
        pytest.param(
            {"accelerators": "A100:8", "any_of": [{"use_spot": True}, {"use_spot": False}]},
            [[opt("A100:8", spot=True), opt("A100:8")]],
            id="any-of-entries-inherit-base-accelerator",
        ),
        pytest.param(
            {"infra": "aws", "any_of": [{"infra": "gcp"}, {}]},
            [[opt(infra="gcp"), opt(infra="aws")]],
            id="any-of-entry-overrides-base-infra",
        ),
        pytest.param(
            {"any_of": [{"use_spot": True}, {"use_spot": True}]},
            [[opt(spot=True)]],
            id="any-of-duplicates-collapse",
        ),
        pytest.param(
            {"any_of": [{"accelerators": "A100:8"}, {"accelerators": ["H100:8", "L4:1"]}]},
            [[opt("A100:8"), opt("H100:8"), opt("L4:1")]],
            id="any-of-flattens-into-one-group",
        ),
        pytest.param(
            {"accelerators": "A100:8", "ordered": [{"infra": "gcp"}, {"infra": "aws"}]},
            [[opt("A100:8", infra="gcp")], [opt("A100:8", infra="aws")]],
            id="ordered-entries-are-groups-in-order",
        ),
        pytest.param(
            {"ordered": [{"accelerators": {"H100:8": None, "A100:8": None}}, {"use_spot": True}]},
            [[opt("H100:8"), opt("A100:8")], [opt(spot=True)]],
            id="ordered-entry-with-a-set-widens-its-group",
        ),
        pytest.param(
            {"cloud": "aws", "region": "us-east-1", "zone": "us-east-1a"},
            [[opt(infra="aws/us-east-1/us-east-1a")]],
            id="legacy-cloud-region-zone-become-infra",
        ),
        pytest.param({"cloud": "AWS"}, [[opt(infra="aws")]], id="legacy-cloud-canonicalized"),
        pytest.param(
            {
                "instance_type": "p4d.24xlarge",
                "cpus": "8+",
                "memory": "32+",
                "max_hourly_cost": 40,
                "use_spot": True,
            },
            [
                [
                    opt(
                        spot=True,
                        instance_type="p4d.24xlarge",
                        cpus=CpuSpec(count=8, at_least=True),
                        memory=MemorySpec(gib=32, mode="at_least"),
                        max_hourly_cost=40,
                    )
                ]
            ],
            id="every-planning-field-is-carried",
        ),
    ],
)
def test_option_groups(fields: dict[str, Any], groups: list[list[ResourceOption]]) -> None:
    assert res(**fields).option_groups() == groups


@pytest.mark.parametrize(
    ("option", "text"),
    [
        pytest.param(opt(), "default resources", id="nothing"),
        pytest.param(
            opt("A100:8", infra="aws", spot=True),
            "infra=aws, accelerators=A100:8, spot",
            id="accelerator-infra-spot",
        ),
        pytest.param(opt(cpus=CpuSpec(count=4, at_least=True)), "cpus=4+", id="cpus"),
    ],
)
def test_option_describe(option: ResourceOption, text: str) -> None:
    assert option.describe() == text


def test_gpus_is_an_alias_of_accelerators() -> None:
    assert res(gpus="A100:8").accelerators == parse_accelerators("A100:8")
    assert res(gpus="A100:8") == res(accelerators="A100:8")


# -- invalid blocks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        pytest.param(
            {"infra": "aws", "cloud": "aws"}, "either 'infra' or the older", id="infra-and-cloud"
        ),
        pytest.param(
            {"infra": "aws", "region": "us-east-1"},
            "either 'infra' or the older",
            id="infra-and-region",
        ),
        pytest.param(
            {"any_of": [{}], "ordered": [{}]},
            "either 'any_of' or 'ordered'",
            id="any-of-and-ordered",
        ),
        pytest.param({"any_of": []}, "at least one entry", id="empty-any-of"),
        pytest.param({"ordered": [{"any_of": [{}]}]}, "cannot nest", id="nested-any-of"),
        pytest.param(
            {"gpus": "A100", "accelerators": "T4"},
            "alias 'gpus', not both",
            id="gpus-and-accelerators",
        ),
        pytest.param({"acelerators": "A100"}, "Extra inputs are not permitted", id="unknown-key"),
        pytest.param({"cloud": "awz"}, "did you mean 'aws'", id="cloud-typo"),
        pytest.param({"cloud": 42}, "expected a cloud name", id="cloud-not-a-string"),
        pytest.param({"disk_tier": "fast"}, "disk_tier", id="disk-tier-not-a-tier"),
        pytest.param({"network_tier": "fast"}, "network_tier", id="network-tier-not-a-tier"),
        pytest.param({"max_hourly_cost": 0}, "greater than 0", id="zero-price-cap"),
        pytest.param({"priority": 2000}, "less than or equal to 1000", id="priority-too-high"),
        pytest.param({"labels": ["a"]}, "mapping of label names", id="labels-not-a-mapping"),
    ],
)
def test_invalid_resources(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        res(**fields)


@pytest.mark.parametrize("tier", ["low", "medium", "high", "ultra", "best"])
def test_disk_tier_literals(tier: str) -> None:
    assert res(disk_tier=tier).disk_tier == tier


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(256, 256, id="gib"),
        pytest.param("1TB", 1024, id="with-unit"),
    ],
)
def test_disk_size(value: object, expected: int) -> None:
    assert res(disk_size=value).disk_size == expected


def test_labels_are_strings() -> None:
    assert res(labels={"team": "ml", "tier": 1}).labels == {"team": "ml", "tier": "1"}


# -- autostop -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(True, Autostop(), id="true-default-five-minutes"),
        pytest.param(False, Autostop(enabled=False), id="false-disabled"),
        pytest.param(10, Autostop(idle_minutes=10), id="minutes"),
        pytest.param(0, Autostop(idle_minutes=0), id="zero-minutes"),
        pytest.param("10", Autostop(idle_minutes=10), id="minutes-as-string"),
        pytest.param("30m", Autostop(idle_minutes=30), id="m-suffix"),
        pytest.param("2h", Autostop(idle_minutes=120), id="hours"),
        pytest.param("1d", Autostop(idle_minutes=1440), id="days"),
        pytest.param("120s", Autostop(idle_minutes=2), id="seconds"),
        pytest.param(
            {"idle_minutes": 5, "down": True}, Autostop(idle_minutes=5, down=True), id="mapping"
        ),
        pytest.param({"down": True}, Autostop(down=True), id="mapping-down-only"),
        pytest.param({"idle_minutes": "1h"}, Autostop(idle_minutes=60), id="mapping-duration"),
    ],
)
def test_autostop(value: object, expected: Autostop) -> None:
    assert res(autostop=value).autostop == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param("soon", "idle minutes like", id="word"),
        pytest.param(-1, ">= 0", id="negative"),
        pytest.param(1.5, "idle minutes like", id="float"),
        pytest.param("5w", "idle minutes like", id="unknown-unit"),
        pytest.param({"idle": 5}, "unknown autostop key", id="unknown-key"),
        pytest.param({"down": "yes"}, "true or false", id="down-not-a-bool"),
    ],
)
def test_autostop_rejects(value: object, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        res(autostop=value)


# -- job_recovery -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("failover", JobRecovery(strategy="failover"), id="strategy-name"),
        pytest.param(
            "EAGER_NEXT_REGION", JobRecovery(strategy="eager-next-region"), id="upper-underscores"
        ),
        pytest.param(
            {"strategy": "FAILOVER", "max_restarts_on_errors": 3},
            JobRecovery(strategy="failover", max_restarts_on_errors=3),
            id="mapping",
        ),
        pytest.param(
            {"max_restarts_on_errors": 3},
            JobRecovery(max_restarts_on_errors=3),
            id="restarts-only",
        ),
        pytest.param(
            {"recover_on_exit_codes": 33}, JobRecovery(recover_on_exit_codes=(33,)), id="one-code"
        ),
        pytest.param(
            {"recover_on_exit_codes": [33, 34]},
            JobRecovery(recover_on_exit_codes=(33, 34)),
            id="codes",
        ),
        pytest.param(
            {"strategy": "uniform-progress", "deadline": "36h", "duration": 24},
            JobRecovery(strategy="uniform-progress", deadline_hours=36, duration_hours=24),
            id="deadline-aware",
        ),
        pytest.param(
            {"deadline": "2d", "duration": "90m", "changeover": "720s"},
            JobRecovery(deadline_hours=48, duration_hours=1.5, changeover_hours=0.2),
            id="duration-units",
        ),
        pytest.param(
            "my_strategies:hop-around",
            JobRecovery(strategy="my_strategies:hop-around"),
            id="user-plugin",
        ),
    ],
)
def test_job_recovery(value: object, expected: JobRecovery) -> None:
    assert res(job_recovery=value).job_recovery == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param("bogus", "unknown recovery strategy 'bogus'", id="unknown-strategy"),
        pytest.param({"strategy": "bogus"}, "unknown recovery strategy", id="unknown-in-mapping"),
        pytest.param({"strategy": 1}, "must be a name", id="strategy-not-a-name"),
        pytest.param({"retries": 3}, "unknown job_recovery key", id="unknown-key"),
        pytest.param(5, "strategy name or a mapping", id="number"),
        pytest.param({"max_restarts_on_errors": -1}, "non-negative integer", id="negative"),
        pytest.param({"max_restarts_on_errors": 1.5}, "non-negative integer", id="float-restarts"),
        pytest.param({"max_restarts_on_errors": True}, "non-negative integer", id="bool-restarts"),
        pytest.param({"recover_on_exit_codes": [300]}, "exit codes 0-255", id="bad-exit-code"),
        pytest.param("uniform_progres", "did you mean 'uniform-progress'", id="did-you-mean"),
        pytest.param({"deadline": "soon"}, "duration like 36h", id="deadline-not-a-duration"),
        pytest.param({"duration": "-1h"}, "duration like 36h", id="negative-duration"),
        pytest.param({"deadline": 0}, "greater than 0", id="zero-deadline"),
        pytest.param(
            {"deadline": "20h", "duration": "20h", "changeover": "1h"},
            "shorter than its duration plus one changeover",
            id="deadline-cannot-be-met",
        ),
        pytest.param(
            {"strategy": "uniform-progress", "deadline": "20h"},
            "needs `deadline` and `duration`",
            id="uniform-progress-needs-duration",
        ),
    ],
)
def test_job_recovery_rejects(value: object, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        res(job_recovery=value)


# -- ports --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(8080, ("8080",), id="port"),
        pytest.param("8080", ("8080",), id="port-as-string"),
        pytest.param("8000-8010", ("8000-8010",), id="range"),
        pytest.param(" 8000 - 8010 ", ("8000-8010",), id="range-with-spaces"),
        pytest.param("8080-8080", ("8080",), id="range-of-one"),
        pytest.param([8080, "9000-9010"], ("8080", "9000-9010"), id="list"),
        pytest.param([1, 65535], ("1", "65535"), id="bounds"),
    ],
)
def test_ports(value: object, expected: tuple[str, ...]) -> None:
    assert res(ports=value).ports == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("70000", id="above-65535"),
        pytest.param(0, id="zero"),
        pytest.param("10-5", id="reversed-range"),
        pytest.param("http", id="word"),
        pytest.param(True, id="bool"),
        pytest.param([8080, None], id="none-in-list"),
        pytest.param("80,443", id="comma-list-in-a-string"),
    ],
)
def test_ports_reject(value: object) -> None:
    with pytest.raises(ValidationError, match="port"):
        res(ports=value)


@pytest.mark.parametrize(
    "base, entry, expected",
    [
        pytest.param({"cloud": "aws"}, {"region": "us-west-2"}, "aws/us-west-2", id="legacy-part"),
        pytest.param(
            {"infra": "aws"}, {"region": "us-west-2"}, "aws/us-west-2", id="infra-then-part"
        ),
        pytest.param({"infra": "aws/us-east-1"}, {"infra": "gcp"}, "gcp", id="infra-replaces-all"),
        pytest.param(
            {"cloud": "aws", "zone": "a"}, {"infra": "gcp"}, "gcp", id="infra-clears-legacy"
        ),
    ],
)
def test_any_of_entries_override_location_like_skypilot(
    base: dict[str, object], entry: dict[str, object], expected: str
) -> None:
    resources = Resources.model_validate({**base, "any_of": [entry]})
    [[option]] = resources.option_groups()
    assert str(option.infra) == expected
