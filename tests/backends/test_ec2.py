"""The `aws` backend (`Ec2Backend`) and its error classification.

Two kinds of test here, marked by section and by fixture:

- **unit** (no fixture `aws`): the error classifier's table, credentials lookup, known-hosts
  pruning, `check()` without credentials or without an endpoint. No network.
- **FAKE AWS** (fixture `aws`): the backend talks HTTP to moto's EC2 server through libcloud,
  exactly as it would to AWS; capacity, quota, throttling and auth failures are injected by the
  harness (`tests/services/moto_server.py`). moto is a fake: it accepts any credentials, boots
  nothing (instances are `running` at once, no SSH) and knows no capacity, so these tests show
  the backend's API use, tagging, idempotency, classification and cleanup, not EC2's real
  behaviour. They skip when moto cannot be installed, unless SKYPLAN_REQUIRE_MOTO=1.

Every FAKE AWS test ends by checking, with its own libcloud driver, that no tagged instance is
left in any region it used.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skyplan.backends.base import Backend
from skyplan.backends.ec2 import CLUSTER_TAG, RANK_TAG, Ec2Backend
from skyplan.backends.ec2_errors import classify, split_code
from skyplan.backends.ec2_home import find_credentials as find_aws_credentials
from skyplan.backends.ec2_region import SECURITY_GROUP
from skyplan.errors import (
    AuthError,
    BackendError,
    CapacityError,
    InvalidRequestError,
    LaunchFailed,
    NoFeasiblePlacement,
    QuotaError,
    Scope,
    TransientError,
)
from skyplan.model import Offer, Task
from skyplan.model.node import Capability, NodeStatus, ProvisionRequest
from skyplan.model.state import AttemptOutcome
from skyplan.runtime import Launcher, LaunchSpec, Lifecycle
from skyplan.runtime.launch import Planner
from skyplan.state import Store
from tests.services.moto_server import AMD64_AMI, MotoServer, moto_server

CREDS = {"AWS_ACCESS_KEY_ID": "AKIDSKYPLANTEST", "AWS_SECRET_ACCESS_KEY": "secret"}
EAST, WEST = "us-east-1", "us-west-2"
REGIONS = (EAST, WEST)


def make_offer(
    region: str = EAST,
    zone: str | None = "us-east-1a",
    *,
    num_nodes: int = 1,
    spot: bool = False,
    cost: float = 1.0,
    instance_type: str = "t3.micro",
) -> Offer:
    return Offer(
        cloud="aws",
        region=region,
        zone=zone,
        instance_type=instance_type,
        accelerators=None,
        spot=spot,
        num_nodes=num_nodes,
        hourly_cost=cost,
        vcpus=2,
        memory_gib=1,
    )


def ask(cluster: str = "c", **offer: Any) -> ProvisionRequest:
    return ProvisionRequest(cluster=cluster, offer=make_offer(**offer))


# == unit: error classification ===============================================================

ZONE = Scope("aws", EAST, "us-east-1a")
REGION = Scope("aws", EAST)
CLOUD = Scope("aws")

CODE_CASES = [
    ("InsufficientInstanceCapacity", CapacityError, ZONE),
    ("InsufficientHostCapacity", CapacityError, ZONE),
    ("InsufficientCapacity", CapacityError, ZONE),
    ("Unsupported", CapacityError, ZONE),
    ("SpotMaxPriceTooLow", CapacityError, ZONE),
    ("VcpuLimitExceeded", QuotaError, REGION),
    ("InstanceLimitExceeded", QuotaError, REGION),
    ("MaxSpotInstanceCountExceeded", QuotaError, REGION),
    ("VolumeLimitExceeded", QuotaError, REGION),
    ("SomeNewThingLimitExceeded", QuotaError, REGION),
    ("RequestLimitExceeded", TransientError, ZONE),
    ("Throttling", TransientError, ZONE),
    ("ServiceUnavailable", TransientError, ZONE),
    ("InternalError", TransientError, ZONE),
    ("AuthFailure", AuthError, CLOUD),
    ("UnauthorizedOperation", AuthError, CLOUD),
    ("InvalidClientTokenId", AuthError, CLOUD),
    ("SignatureDoesNotMatch", AuthError, CLOUD),
    ("OptInRequired", AuthError, CLOUD),
    ("InvalidParameterValue", InvalidRequestError, ZONE),
    ("InvalidAMIID.NotFound", InvalidRequestError, REGION),
    ("InvalidAMIID.Malformed", InvalidRequestError, REGION),
    ("InvalidInstanceType", InvalidRequestError, ZONE),
    ("SomethingNobodyHeardOf", InvalidRequestError, ZONE),
]


@pytest.mark.parametrize(("code", "kind", "scope"), CODE_CASES, ids=[c[0] for c in CODE_CASES])
def test_an_ec2_error_code_decides_the_kind_and_scope(
    code: str, kind: type[BackendError], scope: Scope
) -> None:
    from libcloud.common.exceptions import BaseHTTPError

    err = classify(BaseHTTPError(400, f"{code}: it went wrong"), EAST, "us-east-1a")
    assert type(err) is kind
    assert (err.scope, err.code, err.message) == (scope, code, "it went wrong")


def test_a_capacity_error_without_a_zone_is_scoped_to_the_region() -> None:
    from libcloud.common.exceptions import BaseHTTPError

    err = classify(BaseHTTPError(400, "InsufficientInstanceCapacity: none"), EAST, None)
    assert err.scope == REGION


def _libcloud_errors() -> list[Any]:
    from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
    from libcloud.common.types import InvalidCredsError, MalformedResponseError
    from libcloud.compute.types import KeyPairDoesNotExistError
    from requests.exceptions import ConnectionError as RequestsConnectionError

    return [
        pytest.param(InvalidCredsError("AuthFailure: no"), AuthError, "AuthFailure", id="creds"),
        pytest.param(RateLimitReachedError(headers={}), TransientError, "Throttling", id="429"),
        pytest.param(BaseHTTPError(503, "Service down"), TransientError, None, id="503-no-code"),
        pytest.param(BaseHTTPError(403, "Forbidden"), AuthError, None, id="403-no-code"),
        pytest.param(BaseHTTPError(400, "Bad"), InvalidRequestError, None, id="400-no-code"),
        pytest.param(
            MalformedResponseError("bad", body="<x/>"), TransientError, None, id="not-xml"
        ),
        pytest.param(
            KeyPairDoesNotExistError("k", None),
            InvalidRequestError,
            "InvalidKeyPair.NotFound",
            id="key-pair",
        ),
        pytest.param(
            RequestsConnectionError("refused"), TransientError, None, id="connection-refused"
        ),
        pytest.param(TimeoutError("timed out"), TransientError, None, id="timeout"),
    ]


@pytest.mark.parametrize(("exc", "kind", "code"), _libcloud_errors())
def test_libcloud_and_connection_errors_are_classified(
    exc: Exception, kind: type[BackendError], code: str | None
) -> None:
    err = classify(exc, EAST, None)
    assert type(err) is kind
    assert err.code == code


def test_a_bug_is_not_turned_into_a_backend_error() -> None:
    with pytest.raises(KeyError):
        raise classify(KeyError("oops"), EAST, None)


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        (
            "InsufficientInstanceCapacity: no room\nOther: x",
            "InsufficientInstanceCapacity",
            "no room",
        ),
        ("'AuthFailure: bad creds'", "AuthFailure", "bad creds"),
        ("InvalidAMIID.NotFound: ami-1", "InvalidAMIID.NotFound", "ami-1"),
        ("Server.InsufficientInstanceCapacity: gone", "InsufficientInstanceCapacity", "gone"),
        ("something without a code", None, "something without a code"),
        ("", None, ""),
    ],
)
def test_split_code(text: str, code: str | None, message: str) -> None:
    assert split_code(text) == (code, message)


# == unit: configuration ======================================================================


def test_credentials_come_from_the_environment_first(tmp_path: Path) -> None:
    creds = find_aws_credentials({**CREDS, "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "x")})
    assert creds is not None and (creds.key, creds.source) == (
        "AKIDSKYPLANTEST",
        "the environment",
    )


def test_credentials_come_from_the_shared_file_profile(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(
        "[default]\naws_access_key_id = A1\naws_secret_access_key = S1\n"
        "[work]\naws_access_key_id = A2\naws_secret_access_key = S2\naws_session_token = T\n"
    )
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(path)}
    default = find_aws_credentials(env)
    work = find_aws_credentials({**env, "AWS_PROFILE": "work"})
    assert default is not None and (default.key, default.token) == ("A1", None)
    assert work is not None and (work.key, work.secret, work.token) == ("A2", "S2", "T")
    assert find_aws_credentials({**env, "AWS_PROFILE": "nope"}) is None


def test_check_without_credentials_says_how_to_set_them(tmp_path: Path) -> None:
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    check = Ec2Backend(tmp_path, environ=env).check()
    assert not check.ok
    assert "AWS_ACCESS_KEY_ID" in check.reason


def test_without_credentials_every_call_is_an_auth_error_for_the_whole_backend(
    tmp_path: Path,
) -> None:
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    backend = Ec2Backend(tmp_path, environ=env)
    with pytest.raises(AuthError) as caught:
        backend.provision(ask())
    assert caught.value.scope == CLOUD
    with pytest.raises(AuthError):
        backend.nodes("c")


def test_check_with_an_unreachable_endpoint_fails_with_the_reason(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = Ec2Backend(tmp_path, endpoint=f"http://127.0.0.1:{port}", environ=CREDS)
    check = backend.check()
    assert not check.ok
    assert "cannot reach" in check.reason


def test_the_backend_satisfies_the_protocol_and_declares_what_it_lacks(tmp_path: Path) -> None:
    backend = Ec2Backend(tmp_path, environ=CREDS)
    assert isinstance(backend, Backend)
    assert backend.offers() == []
    assert backend.capabilities.supports(Capability.STOP)
    assert backend.capabilities.supports(Capability.SPOT)
    assert "security group" in (backend.capabilities.why_not(Capability.OPEN_PORTS) or "")


def test_regions_searched_are_configured_plus_those_launched_in(tmp_path: Path) -> None:
    env = {**CREDS, "SKYPLAN_AWS_REGIONS": "eu-west-1, us-east-2"}
    assert Ec2Backend(tmp_path, environ=CREDS).regions() == ["us-east-1"]
    assert Ec2Backend(tmp_path, environ=env).regions() == ["eu-west-1", "us-east-2"]
    (tmp_path / "aws").mkdir()
    (tmp_path / "aws" / "regions.json").write_text('{"regions": ["ap-south-1", "eu-west-1"]}')
    assert Ec2Backend(tmp_path, environ=env).regions() == ["eu-west-1", "us-east-2", "ap-south-1"]


# == FAKE AWS: moto's EC2 server over HTTP =====================================================


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


class Observer:
    """Independent libcloud drivers that look at what the fake holds, by tag."""

    def __init__(self, endpoint: str) -> None:
        from libcloud.compute.providers import get_driver
        from libcloud.compute.types import Provider

        port = int(endpoint.rsplit(":", 1)[1])
        self.drivers = {
            region: get_driver(Provider.EC2)(
                CREDS["AWS_ACCESS_KEY_ID"],
                CREDS["AWS_SECRET_ACCESS_KEY"],
                region=region,
                host="127.0.0.1",
                port=port,
                secure=False,
                signature_version="4",
            )
            for region in REGIONS
        }

    def tagged(self, region: str) -> list[Any]:
        """Instances in `region` with a skyplan cluster tag that are not shutting down or gone."""
        return list(
            self.drivers[region].list_nodes(
                ex_filters={
                    "tag-key": CLUSTER_TAG,
                    "instance-state-name": ["pending", "running", "stopping", "stopped"],
                }
            )
        )

    def left(self) -> dict[str, list[str]]:
        """`region → [cluster/rank@zone]` of every tagged live instance, in every region."""
        out = {}
        for region in REGIONS:
            found = sorted(
                f"{i.extra['tags'][CLUSTER_TAG]}/{i.extra['tags'].get(RANK_TAG)}"
                f"@{i.extra['availability']}"
                for i in self.tagged(region)
            )
            if found:
                out[region] = found
        return out

    def close(self) -> None:
        for driver in self.drivers.values():
            conn = getattr(driver.connection, "connection", None)
            if conn is not None:
                conn.session.close()


@pytest.fixture
def aws(moto: MotoServer, tmp_path: Path) -> Iterator[Ec2Backend]:
    """FAKE AWS: a backend on a freshly reset moto, polling fast."""
    moto.reset()
    backend = Ec2Backend(
        tmp_path / "home", endpoint=moto.endpoint, environ=CREDS, poll_interval=0.01, wait_timeout=5
    )
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture
def seen(moto: MotoServer) -> Iterator[Observer]:
    observer = Observer(moto.endpoint)
    try:
        yield observer
    finally:
        observer.close()


def test_fake_aws_check_reports_the_endpoint(aws: Ec2Backend, moto: MotoServer) -> None:
    check = aws.check()
    assert check.ok, check.reason
    assert moto.endpoint in check.reason


def test_fake_aws_check_reports_refused_credentials(aws: Ec2Backend, moto: MotoServer) -> None:
    moto.set_faults({"*": {"actions": {"DescribeAvailabilityZones": "AuthFailure"}}})
    check = aws.check()
    assert not check.ok
    assert "AuthFailure" in check.reason


def test_fake_aws_provisions_tagged_nodes_and_lists_them(
    aws: Ec2Backend, seen: Observer, tmp_path: Path
) -> None:
    nodes = aws.provision(ask(num_nodes=2))
    assert [(n.rank, n.status, n.zone, n.region) for n in nodes] == [
        (0, NodeStatus.RUNNING, "us-east-1a", EAST),
        (1, NodeStatus.RUNNING, "us-east-1a", EAST),
    ]
    assert seen.left() == {EAST: ["c/0@us-east-1a", "c/1@us-east-1a"]}
    assert aws.nodes("c") == nodes
    assert aws.owned() == {"c": nodes}
    node = nodes[0]
    assert node.ip == node.extra["private_ip"] and node.extra["host"] == node.extra["public_ip"]
    assert node.extra["user"] == "ubuntu"
    assert node.extra["root"] == "/home/ubuntu/.skyplan/node"
    key = Path(node.extra["identity_file"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    [inst] = seen.drivers[EAST].list_nodes(ex_node_ids=[node.node_id])
    assert inst.extra["key_name"].startswith("skyplan-")
    assert inst.extra["image_id"] == AMD64_AMI  # the default Ubuntu lookup found the fake's AMI
    assert [g["group_name"] for g in inst.extra["groups"]] == [SECURITY_GROUP]
    [group] = seen.drivers[EAST].ex_get_security_groups(group_names=[SECURITY_GROUP])
    rules = {(r["protocol"], r["from_port"], tuple(r["cidr_ips"])) for r in group.ingress_rules}
    assert ("tcp", "22", ("0.0.0.0/0",)) in rules  # SSH from anywhere
    assert any(p["group_id"] == group.id for r in group.ingress_rules for p in r["group_pairs"])
    aws.terminate("c")
    assert seen.left() == {}


def test_fake_aws_provisioning_again_keeps_ranks_and_fills_gaps(
    aws: Ec2Backend, seen: Observer
) -> None:
    first = aws.provision(ask(num_nodes=3))
    again = aws.provision(ask(num_nodes=3))
    assert [n.node_id for n in again] == [n.node_id for n in first]
    seen.drivers[EAST].destroy_node(
        seen.drivers[EAST].list_nodes(ex_node_ids=[first[1].node_id])[0]
    )
    refilled = aws.provision(ask(num_nodes=3))
    assert [n.rank for n in refilled] == [0, 1, 2]
    assert refilled[0].node_id == first[0].node_id and refilled[2].node_id == first[2].node_id
    assert refilled[1].node_id != first[1].node_id
    # A second backend (another process) sees the same cluster and reuses it too; launching
    # another cluster, it finds the key pair, security group and rules already there.
    other = Ec2Backend(
        aws.home.dir.parent, endpoint=aws.endpoint, environ=CREDS, poll_interval=0.01
    )
    try:
        assert [n.node_id for n in other.provision(ask(num_nodes=3))] == [
            n.node_id for n in refilled
        ]
        other.provision(ask("d"))
        other.terminate("d")
    finally:
        other.close()
    assert len(seen.drivers[EAST].list_key_pairs()) == 1
    [group] = seen.drivers[EAST].ex_get_security_groups(group_names=[SECURITY_GROUP])
    assert len(group.ingress_rules) == 2
    aws.terminate("c")
    assert seen.left() == {}


def test_fake_aws_stops_and_starts_a_cluster(aws: Ec2Backend, seen: Observer) -> None:
    nodes = aws.provision(ask(num_nodes=2))
    aws.stop("c")
    assert [n.status for n in aws.nodes("c")] == [NodeStatus.STOPPED] * 2
    started = aws.start("c")
    assert [n.status for n in started] == [NodeStatus.RUNNING] * 2
    assert [n.node_id for n in started] == [n.node_id for n in nodes]
    aws.stop("c")
    # provisioning a stopped cluster starts it again rather than launching new instances
    assert [n.node_id for n in aws.provision(ask(num_nodes=2))] == [n.node_id for n in nodes]
    aws.terminate("c")
    assert seen.left() == {}


def test_fake_aws_terminate_is_idempotent_and_forgets_host_keys(
    aws: Ec2Backend, seen: Observer
) -> None:
    nodes = aws.provision(ask(num_nodes=2, region=WEST, zone="us-west-2b"))
    aws.known_hosts.write_text(
        "".join(f"{n.extra['host']} ssh-ed25519 AAAA\n" for n in nodes) + "10.9.9.9 ssh-rsa BBBB\n"
    )
    aws.terminate("c")
    aws.terminate("c")
    aws.terminate("never-existed")
    assert aws.nodes("c") == []
    assert aws.owned() == {}
    assert seen.left() == {}
    assert aws.known_hosts.read_text() == "10.9.9.9 ssh-rsa BBBB\n"


def test_fake_aws_spot_launch_lands_tagged_and_cannot_stop(aws: Ec2Backend, seen: Observer) -> None:
    [node] = aws.provision(ask(spot=True))
    assert node.spot
    assert seen.left() == {EAST: ["c/0@us-east-1a"]}
    [inst] = seen.drivers[EAST].list_nodes(ex_node_ids=[node.node_id])
    assert inst.extra["instance_lifecycle"] == "spot"
    with pytest.raises(InvalidRequestError, match=r"spot instances.*cannot stop"):
        aws.stop("c")
    aws.terminate("c")
    assert seen.left() == {}


def test_fake_aws_runner_pins_host_keys_under_home(aws: Ec2Backend) -> None:
    [node] = aws.provision(ask())
    runner = aws.runner(node)  # not connected: the fake boots no VM
    assert (runner.host, runner.user, runner.trust_new) == (node.extra["host"], "ubuntu", True)
    assert runner.known_hosts == aws.home.dir / "known_hosts"
    assert runner.scope == Scope("aws", EAST, "us-east-1a")
    aws.terminate("c")


def test_fake_aws_a_region_launched_in_is_remembered_across_processes(
    aws: Ec2Backend, seen: Observer
) -> None:
    aws.provision(ask(region=WEST, zone="us-west-2a"))
    fresh = Ec2Backend(
        aws.home.dir.parent, endpoint=aws.endpoint, environ=CREDS, poll_interval=0.01
    )
    try:
        assert fresh.regions() == [EAST, WEST]
        assert [n.region for n in fresh.nodes("c")] == [WEST]
        fresh.terminate("c")
    finally:
        fresh.close()
    assert seen.left() == {}


def test_fake_aws_a_zone_less_offer_takes_the_first_zone_with_room(
    aws: Ec2Backend, moto: MotoServer, seen: Observer
) -> None:
    moto.set_faults({EAST: {"zones": {"us-east-1a": "InsufficientInstanceCapacity"}}})
    nodes = aws.provision(ask(zone=None, num_nodes=2))
    assert {n.zone for n in nodes} == {"us-east-1b"}
    aws.terminate("c")
    moto.set_faults({EAST: {"region": "InsufficientInstanceCapacity"}})
    with pytest.raises(CapacityError) as caught:
        aws.provision(ask(zone=None))
    assert caught.value.scope == REGION  # re-planning must leave the region
    assert seen.left() == {}


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("InsufficientInstanceCapacity", CapacityError),
        ("RequestLimitExceeded", TransientError),
        ("InvalidParameterValue", InvalidRequestError),
    ],
)
def test_fake_aws_errors_of_a_zone_less_offer_are_scoped_to_its_region(
    aws: Ec2Backend, moto: MotoServer, seen: Observer, code: str, kind: type[BackendError]
) -> None:
    """A zone scope would not cover the zone-less offer, so failover would retry it forever."""
    moto.set_faults({EAST: {"region": {"code": code, "after": 1}}})
    with pytest.raises(kind) as caught:
        aws.provision(ask(zone=None, num_nodes=2))
    assert caught.value.scope == REGION
    assert seen.left() == {EAST: ["c/0@us-east-1a"]}  # rank 0 stays tagged for terminate
    aws.terminate("c")
    assert seen.left() == {}


FAULT_CASES = [
    pytest.param(
        {EAST: {"zones": {"us-east-1a": "InsufficientInstanceCapacity"}}},
        CapacityError,
        ZONE,
        id="capacity-in-zone",
    ),
    pytest.param(
        {EAST: {"instance_types": {"t3.micro": "Unsupported"}}},
        CapacityError,
        ZONE,
        id="type-not-in-zone",
    ),
    pytest.param({EAST: {"region": "VcpuLimitExceeded"}}, QuotaError, REGION, id="vcpu-quota"),
    pytest.param(
        {EAST: {"spot": "MaxSpotInstanceCountExceeded"}}, QuotaError, REGION, id="spot-quota"
    ),
    pytest.param({"*": {"region": "RequestLimitExceeded"}}, TransientError, ZONE, id="throttled"),
    pytest.param({"*": {"region": "AuthFailure"}}, AuthError, CLOUD, id="auth-failure"),
    pytest.param(
        {"*": {"actions": {"ImportKeyPair": "UnauthorizedOperation"}}},
        AuthError,
        CLOUD,
        id="unauthorized-key-import",
    ),
]


@pytest.mark.parametrize(("faults", "kind", "scope"), FAULT_CASES)
def test_fake_aws_launch_failures_are_classified_and_leave_nothing(
    aws: Ec2Backend,
    moto: MotoServer,
    seen: Observer,
    faults: dict[str, Any],
    kind: type[BackendError],
    scope: Scope,
) -> None:
    moto.set_faults(faults)
    with pytest.raises(kind) as caught:
        aws.provision(ask(num_nodes=2, spot=True))
    assert caught.value.scope == scope
    assert seen.left() == {}


def test_fake_aws_a_launch_failing_half_way_leaves_its_nodes_tagged_for_terminate(
    aws: Ec2Backend, moto: MotoServer, seen: Observer
) -> None:
    moto.set_faults({EAST: {"region": {"code": "InsufficientInstanceCapacity", "after": 1}}})
    with pytest.raises(CapacityError):
        aws.provision(ask(num_nodes=3))
    assert seen.left() == {EAST: ["c/0@us-east-1a"]}
    aws.terminate("c")
    assert seen.left() == {}


def test_fake_aws_an_unknown_region_is_an_invalid_request(aws: Ec2Backend) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        aws.provision(ask(region="mars-north-1", zone=None))
    assert caught.value.scope == Scope("aws", "mars-north-1")
    assert aws.regions() == [EAST]  # not recorded: later listings would all fail
    assert aws.nodes("c") == []


def test_fake_aws_ports_are_refused_with_the_reason(aws: Ec2Backend) -> None:
    req = ProvisionRequest(cluster="c", offer=make_offer(), ports=(8080,))
    with pytest.raises(InvalidRequestError, match="security group"):
        aws.provision(req)


# == FAKE AWS: failover end to end through the runtime's Launcher =============================

#: Cheapest first: us-east-1a, us-east-1b, us-west-2a, us-west-2b.
CHOICES = [
    make_offer(EAST, "us-east-1a", cost=1.0),
    make_offer(EAST, "us-east-1b", cost=1.1),
    make_offer(WEST, "us-west-2a", cost=1.2),
    make_offer(WEST, "us-west-2b", cost=1.3),
]


def cheapest(num_nodes: int) -> Planner:
    choices = [o.model_copy(update={"num_nodes": num_nodes}) for o in CHOICES]

    def planner(blocked: frozenset[Scope]) -> Offer:
        left = [o for o in choices if not any(s.covers(o.cloud, o.region, o.zone) for s in blocked)]
        if not left:
            raise NoFeasiblePlacement(None, "every offer is blocked")
        return min(left, key=lambda o: o.hourly_cost)

    return planner


CAP = "InsufficientInstanceCapacity"
FAILOVER_CASES = [
    pytest.param({}, "us-east-1a", ["ok"], id="no-fault"),
    pytest.param(
        {EAST: {"zones": {"us-east-1a": CAP}}}, "us-east-1b", ["capacity", "ok"], id="zone-a-full"
    ),
    pytest.param(
        {EAST: {"region": "VcpuLimitExceeded"}}, "us-west-2a", ["quota", "ok"], id="quota-region-1"
    ),
    pytest.param(
        {
            EAST: {"zones": {"us-east-1a": CAP}, "region": "VcpuLimitExceeded"},
            WEST: {"zones": {"us-west-2a": {"code": CAP, "after": 1}}},
        },
        "us-west-2b",
        ["capacity", "quota", "capacity", "ok"],
        id="multi-region-half-way",
    ),
    pytest.param(
        {EAST: {"zones": {"us-east-1a": "RequestLimitExceeded"}}},
        "us-east-1b",
        ["transient"] * 4 + ["ok"],
        id="throttled-then-moves-on",
    ),
]


@pytest.mark.parametrize(("faults", "lands", "outcomes"), FAILOVER_CASES)
def test_fake_aws_failover_lands_where_there_is_room_and_leaks_nothing(
    aws: Ec2Backend,
    moto: MotoServer,
    seen: Observer,
    tmp_path: Path,
    faults: dict[str, Any],
    lands: str,
    outcomes: list[str],
) -> None:
    moto.set_faults(faults)
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        launcher = Launcher(store, {"aws": aws}.__getitem__, sleep=lambda _s: None)
        spec = LaunchSpec(cluster="c", task=Task(num_nodes=2), base_dir=tmp_path)
        record = launcher.launch(spec, cheapest(2), lambda _r: None)
        assert record.zone == lands
        assert [a.outcome for a in store.attempts("c")] == [AttemptOutcome(o) for o in outcomes]
        assert seen.left() == {lands[:-1]: [f"c/0@{lands}", f"c/1@{lands}"]}
        Lifecycle(store, {"aws": aws}.__getitem__).down("c")
        assert store.get_cluster("c") is None
    assert seen.left() == {}


def test_fake_aws_failover_that_runs_out_of_places_leaves_nothing(
    aws: Ec2Backend, moto: MotoServer, seen: Observer, tmp_path: Path
) -> None:
    moto.set_faults(
        {
            EAST: {"zones": {"us-east-1a": {"code": CAP, "after": 1}}, "region": CAP},
            WEST: {"region": "VcpuLimitExceeded"},
        }
    )
    with Store.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        launcher = Launcher(store, {"aws": aws}.__getitem__, sleep=lambda _s: None)
        spec = LaunchSpec(cluster="c", task=Task(num_nodes=2), base_dir=tmp_path)
        with pytest.raises(LaunchFailed) as caught:
            launcher.launch(spec, cheapest(2), lambda _r: None)
        assert len(caught.value.attempts) == 3  # 1a, 1b, then us-west-2 (its quota blocks 2b)
        assert store.get_cluster("c") is None  # nothing was left, so no record either
    assert seen.left() == {}
