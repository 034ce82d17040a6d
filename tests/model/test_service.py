"""The `service:` block (SkyServe's spec): readiness probe, replicas and the replica policy."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from skyplan.model import ReadinessProbe, ServiceSpec


def service(**fields: Any) -> ServiceSpec:
    return ServiceSpec.model_validate(fields)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("/health", ReadinessProbe(path="/health"), id="string-is-the-path"),
        pytest.param(
            {"path": "/v1/models", "initial_delay_seconds": 60},
            ReadinessProbe(path="/v1/models", initial_delay_seconds=60),
            id="mapping",
        ),
        pytest.param(
            {"path": "/generate", "post_data": {"prompt": "hi"}},
            ReadinessProbe(path="/generate", post_data={"prompt": "hi"}),
            id="post-data",
        ),
    ],
)
def test_readiness_probe(value: object, expected: ReadinessProbe) -> None:
    assert service(readiness_probe=value).readiness_probe == expected


def test_readiness_probe_defaults_to_root() -> None:
    assert service().readiness_probe == ReadinessProbe(path="/")


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        pytest.param({"readiness_probe": "health"}, "must start with '/'", id="path-without-slash"),
        pytest.param(
            {"replicas": 2, "replica_policy": {"min_replicas": 2}},
            "either 'replicas' or 'replica_policy'",
            id="replicas-and-policy",
        ),
        pytest.param(
            {"replica_policy": {"min_replicas": 1, "max_replicas": 3}},
            "target_qps_per_replica is not set",
            id="autoscaling-without-target-qps",
        ),
        pytest.param(
            {"replica_policy": {"min_replicas": 3, "max_replicas": 2, "target_qps_per_replica": 1}},
            "below min_replicas",
            id="max-below-min",
        ),
        pytest.param({"replicas": -1}, "greater than or equal to 0", id="negative-replicas"),
        pytest.param({"ports": "70000"}, "outside 1-65535", id="bad-port"),
        pytest.param({"replica": 2}, "Extra inputs are not permitted", id="unknown-key"),
    ],
)
def test_invalid_service(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        service(**fields)


@pytest.mark.parametrize(
    ("fields", "bounds"),
    [
        pytest.param({}, (1, 1), id="default-one-replica"),
        pytest.param({"replicas": 3}, (3, 3), id="fixed-replicas"),
        pytest.param({"replicas": 0}, (0, 0), id="zero-replicas"),
        pytest.param({"replica_policy": {"min_replicas": 2}}, (2, 2), id="policy-min-only"),
        pytest.param(
            {"replica_policy": {"min_replicas": 2, "max_replicas": 2}}, (2, 2), id="policy-fixed"
        ),
        pytest.param(
            {"replica_policy": {"min_replicas": 1, "max_replicas": 4, "target_qps_per_replica": 2}},
            (1, 4),
            id="autoscaled",
        ),
        pytest.param(
            {"replica_policy": {"min_replicas": 0, "max_replicas": 4, "target_qps_per_replica": 2}},
            (0, 4),
            id="scale-to-zero",
        ),
    ],
)
def test_replica_bounds(fields: dict[str, Any], bounds: tuple[int, int]) -> None:
    assert service(**fields).replica_bounds() == bounds


def test_service_ports_are_normalized() -> None:
    assert service(ports=[8080, "9000-9001"]).ports == ("8080", "9000-9001")
