"""The filters of the planning pipeline and the registry that holds them."""

from __future__ import annotations

import re

import polars as pl
import pytest

from skyplan.model import Accelerator, CpuSpec, Infra, MemorySpec, ResourceOption
from skyplan.registry import Registry, RegistryError
from skyplan.solver import DEFAULT_FILTERS, FILTERS, Filter, Request
from tests.solver.factories import make_catalog, make_offer

KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
NAMES = [name for name in FILTERS]

#: The order of the explanation: what, then where, then shape, then price and capacity.
EXPECTED_ORDER = (
    "accelerator",
    "cloud",
    "region",
    "zone",
    "instance-type",
    "cpus",
    "memory",
    "default-family",
    "network-tier",
    "pricing",
    "price-cap",
    "capacity",
)

CATALOG = make_catalog(make_offer())
REQUEST = Request(option=ResourceOption(), num_nodes=1, catalog=CATALOG)
#: Between them, these requests make every filter apply.
REQUESTS = (
    REQUEST,
    Request(
        option=ResourceOption(
            infra=Infra(cloud="aws", region="us-*", zone="use1-az1"),
            instance_type="p4d.24xlarge",
            accelerator=Accelerator(name="A100", count=8),
            cpus=CpuSpec(count=8, at_least=True),
            memory=MemorySpec(gib=64, mode="at_least"),
            use_spot=True,
            max_hourly_cost=40.0,
            network_tier="best",
        ),
        num_nodes=2,
        catalog=CATALOG,
    ),
)


@pytest.mark.parametrize("name", NAMES)
def test_every_filter_satisfies_the_protocol(name: str) -> None:
    f = FILTERS.get(name)
    assert f.name == name
    assert callable(f.expr)
    assert callable(f.requirement)
    applied = 0
    for req in REQUESTS:
        expr = f.expr(req)
        assert expr is None or isinstance(expr, pl.Expr)
        if expr is not None:
            applied += 1
            sentence = f.requirement(req)
            assert isinstance(sentence, str)
            assert sentence.strip()
    assert applied, f"filter {name} applies to no request"


def test_a_conforming_object_is_a_filter() -> None:
    class Everything:
        name = "everything"

        def expr(self, req: Request) -> pl.Expr | None:
            return None

        def requirement(self, req: Request) -> str:
            return "anything"

    f: Filter = Everything()
    assert f.expr(REQUEST) is None


@pytest.mark.parametrize("name", NAMES)
def test_filter_names_are_kebab_case(name: str) -> None:
    assert KEBAB.match(name), name


def test_filter_names_are_unique() -> None:
    names = [f.name for f in DEFAULT_FILTERS]
    assert len(names) == len(set(names))


def test_every_default_filter_is_registered_under_its_name() -> None:
    assert sorted(NAMES) == sorted(f.name for f in DEFAULT_FILTERS)
    for f in DEFAULT_FILTERS:
        assert FILTERS.get(f.name) is f
        assert f.name in FILTERS


def test_default_filter_order() -> None:
    assert tuple(f.name for f in DEFAULT_FILTERS) == EXPECTED_ORDER


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("cloud", "region"),
        ("region", "zone"),
        ("pricing", "price-cap"),
    ],
    ids=lambda name: name,
)
def test_filters_that_build_on_each_other_keep_their_order(earlier: str, later: str) -> None:
    names = [f.name for f in DEFAULT_FILTERS]
    assert names.index(earlier) < names.index(later)


# -- Registry ------------------------------------------------------------------------------------


def test_registry_returns_what_was_registered() -> None:
    registry: Registry[int] = Registry("widget")
    assert registry.register("spot-price", 1) == 1
    assert registry.get("spot-price") == 1
    assert "spot-price" in registry
    assert "other" not in registry
    assert list(registry) == ["spot-price"]
    assert registry.items() == [("spot-price", 1)]


def test_registry_raises_on_duplicate_names() -> None:
    registry: Registry[int] = Registry("widget")
    registry.register("region", 1)
    with pytest.raises(RegistryError, match="widget 'region' is already registered"):
        registry.register("region", 2)
    assert registry.get("region") == 1


def test_an_unregistered_name_is_gone_and_may_be_registered_again() -> None:
    registry: Registry[int] = Registry("widget")
    registry.register("region", 1)
    assert registry.unregister("region") == 1
    assert "region" not in registry
    with pytest.raises(RegistryError, match="no widget named 'region'"):
        registry.unregister("region")
    registry.register("region", 2)
    assert registry.get("region") == 2


def test_registry_suggests_a_name_on_a_bad_lookup() -> None:
    with pytest.raises(RegistryError) as raised:
        FILTERS.get("regoin")
    message = str(raised.value)
    assert "did you mean 'region'?" in message
    assert "no filter named 'regoin'" in message


def test_registry_lists_the_known_names_when_nothing_is_close() -> None:
    with pytest.raises(RegistryError) as raised:
        FILTERS.get("zzzzzzzz")
    message = str(raised.value)
    assert "did you mean" not in message
    for name in NAMES:
        assert name in message


def test_an_empty_registry_says_so() -> None:
    with pytest.raises(RegistryError, match=r"known: none"):
        Registry[int]("widget").get("anything")


def test_registry_errors_are_skyplan_errors() -> None:
    import skyplan

    assert issubclass(RegistryError, skyplan.SkyplanError)
