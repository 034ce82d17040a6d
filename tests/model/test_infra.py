"""`infra` strings: CLOUD[/REGION[/ZONE]], globs and `*`, Kubernetes contexts and SSH pools."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyplan.model.infra import KNOWN_CLOUDS, Infra, canonical_cloud, parse_infra


def infra(cloud: str | None = None, region: str | None = None, zone: str | None = None) -> Infra:
    return Infra(cloud=cloud, region=region, zone=zone)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("aws", infra("aws"), id="cloud"),
        pytest.param("AWS", infra("aws"), id="cloud-case-insensitive"),
        pytest.param(" aws ", infra("aws"), id="spaces-around"),
        pytest.param("aws/us-east-1", infra("aws", "us-east-1"), id="cloud-region"),
        pytest.param(
            "aws/us-east-1/us-east-1a",
            infra("aws", "us-east-1", "us-east-1a"),
            id="cloud-region-zone",
        ),
        pytest.param(
            "gcp/*/us-central1-a", infra("gcp", zone="us-central1-a"), id="any-region-one-zone"
        ),
        pytest.param("aws/eu-*", infra("aws", "eu-*"), id="region-glob-kept"),
        pytest.param("aws/", infra("aws"), id="trailing-slash"),
        pytest.param("*/us-east-1", infra(region="us-east-1"), id="any-cloud-one-region"),
        pytest.param("*", infra(), id="star-is-anything"),
        pytest.param("k8s", infra("kubernetes"), id="k8s-alias"),
        pytest.param("K8S", infra("kubernetes"), id="k8s-alias-upper-case"),
        pytest.param("k8s/my-ctx", infra("kubernetes", "my-ctx"), id="k8s-context"),
        pytest.param(
            "kubernetes/arn:aws:eks:us-east-1:1:cluster/x",
            infra("kubernetes", "arn:aws:eks:us-east-1:1:cluster/x"),
            id="k8s-context-with-slashes-kept-whole",
        ),
        pytest.param("ssh/pool", infra("ssh", "pool"), id="ssh-pool"),
        pytest.param("ssh/team/a", infra("ssh", "team/a"), id="ssh-pool-with-slash"),
        pytest.param(infra("gcp"), infra("gcp"), id="infra-passes-through"),
    ],
)
def test_parse_infra(text: object, expected: Infra) -> None:
    assert parse_infra(text) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        pytest.param("awz", "unknown cloud 'awz'; did you mean 'aws'", id="typo-did-you-mean"),
        pytest.param("gpc/us-central1", "did you mean 'gcp'", id="typo-with-region"),
        pytest.param("mycloud", "unknown cloud 'mycloud'; known: aws", id="unknown-lists-known"),
        pytest.param("aws/a/b/c", "too many parts", id="too-many-parts"),
        pytest.param("", "expected an infra string", id="empty"),
        pytest.param("   ", "expected an infra string", id="blank"),
        pytest.param(None, "expected an infra string", id="none"),
        pytest.param(42, "expected an infra string", id="number"),
    ],
)
def test_parse_infra_rejects(text: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_infra(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(infra(), "*", id="anything"),
        pytest.param(infra("aws"), "aws", id="cloud"),
        pytest.param(infra("aws", "us-east-1"), "aws/us-east-1", id="cloud-region"),
        pytest.param(infra("gcp", zone="us-central1-a"), "gcp/*/us-central1-a", id="zone-only"),
        pytest.param(infra(region="us-east-1"), "*/us-east-1", id="region-only"),
    ],
)
def test_str(value: Infra, text: str) -> None:
    assert str(value) == text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(infra(), True, id="nothing-pinned"),
        pytest.param(infra("aws"), False, id="cloud"),
        pytest.param(infra(zone="z"), False, id="zone"),
    ],
)
def test_is_any(value: Infra, expected: bool) -> None:
    assert value.is_any() is expected


@pytest.mark.parametrize("name", KNOWN_CLOUDS)
def test_every_known_cloud_is_canonical(name: str) -> None:
    assert canonical_cloud(name.upper()) == name


part = st.from_regex(r"\A[a-z0-9][a-z0-9\-]{0,12}\Z")


@given(
    cloud=st.sampled_from([c for c in KNOWN_CLOUDS if c not in ("kubernetes", "ssh", "slurm")]),
    region=st.none() | part,
    zone=st.none() | part,
)
def test_str_parses_back(cloud: str, region: str | None, zone: str | None) -> None:
    pin = infra(cloud, region, zone)
    assert parse_infra(str(pin)) == pin
