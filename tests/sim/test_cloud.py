"""SimCloud is a real `Backend`: spot capacity from the trace, zone-scoped capacity errors,
preemption seen through `nodes()`, unlimited on-demand."""

from __future__ import annotations

import pytest

from skyplan.backends.base import Backend
from skyplan.errors import CapacityError, InputError, InvalidRequestError, Scope
from skyplan.model import Offer
from skyplan.model.node import Capability, ProvisionRequest
from skyplan.sim import SimCloud, VirtualClock
from tests.sim.conftest import MakeTrace


def request(cluster: str = "c", *, spot: bool = True, nodes: int = 1) -> ProvisionRequest:
    offer = Offer(
        cloud="aws",
        region="us-west-2",
        zone="us-west-2a",
        instance_type="p3.2xlarge",
        accelerators={"V100": 1},
        spot=spot,
        num_nodes=nodes,
        hourly_cost=1.0,
        vcpus=8,
        memory_gib=61,
    )
    return ProvisionRequest(cluster=cluster, offer=offer)


def test_it_implements_the_backend_protocol(trace: MakeTrace) -> None:
    cloud = SimCloud([trace([1])], VirtualClock())
    assert isinstance(cloud, Backend)
    assert cloud.name == "aws"
    assert cloud.check().ok
    assert list(cloud.offers()) == []
    assert not cloud.capabilities.supports(Capability.STOP)
    assert cloud.capabilities.supports(Capability.SPOT)


@pytest.mark.parametrize(
    ("available", "nodes", "ok"),
    [
        pytest.param(0, 1, False, id="none-free"),
        pytest.param(1, 1, True, id="one-free"),
        pytest.param(3, 4, False, id="multi-node-all-or-nothing"),
        pytest.param(4, 4, True, id="multi-node-fits"),
    ],
)
def test_spot_launches_need_every_node_free(
    trace: MakeTrace, available: int, nodes: int, ok: bool
) -> None:
    cloud = SimCloud([trace([available])], VirtualClock())
    if ok:
        assert len(cloud.provision(request(nodes=nodes))) == nodes
        return
    with pytest.raises(CapacityError) as caught:
        cloud.provision(request(nodes=nodes))
    assert caught.value.scope == Scope("aws", "us-west-2", "us-west-2a")
    assert cloud.owned() == {}


def test_on_demand_is_always_there(trace: MakeTrace) -> None:
    cloud = SimCloud([trace([0, 0])], VirtualClock())
    nodes = cloud.provision(request(spot=False, nodes=2))
    assert [n.rank for n in nodes] == [0, 1] and not nodes[0].spot


def test_a_spot_cluster_vanishes_when_the_zone_runs_short(trace: MakeTrace) -> None:
    clock = VirtualClock()
    cloud = SimCloud([trace([2, 2, 1, 2], gap=60)], clock)
    cloud.provision(request(nodes=2))
    assert cloud.preempted_at("c") == 120.0
    clock.advance_to(119.0)
    assert len(cloud.nodes("c")) == 2
    clock.advance_to(120.0)
    assert cloud.nodes("c") == []
    assert cloud.owned() == {}


def test_the_clock_maps_onto_the_trace_from_the_start_tick(trace: MakeTrace) -> None:
    clock = VirtualClock()
    cloud = SimCloud([trace([0, 0, 1, 1], gap=60)], clock, start_tick=2)
    assert cloud.spot_available("us-west-2a") == 1
    cloud.provision(request())
    assert cloud.preempted_at("c") == 120.0  # the trace ends: nothing is left after it


def test_terminate_owned_and_what_it_cannot_do(trace: MakeTrace) -> None:
    clock = VirtualClock()
    cloud = SimCloud([trace([1])], clock, provision_delay=30.0)
    nodes = cloud.provision(request())
    assert clock.now() == 30.0
    assert set(cloud.owned()) == {"c"}
    with pytest.raises(InvalidRequestError, match="runs no commands"):
        cloud.runner(nodes[0])
    with pytest.raises(InvalidRequestError, match="cannot stop"):
        cloud.stop("c")
    cloud.terminate("c")
    cloud.terminate("c")  # idempotent
    assert cloud.owned() == {} and cloud.nodes("c") == []


def test_virtual_clock() -> None:
    clock = VirtualClock()
    clock.sleep(90)
    clock.advance_to(30)  # never backwards
    assert clock.now() == 90.0
    assert clock.datetime().isoformat() == "1970-01-01T00:01:30+00:00"
    with pytest.raises(ValueError, match="negative"):
        clock.sleep(-1)


def test_one_zone_cannot_have_two_traces(trace: MakeTrace) -> None:
    with pytest.raises(InputError, match="two traces for zone us-west-2a"):
        SimCloud([trace([1]), trace([0])], VirtualClock())
