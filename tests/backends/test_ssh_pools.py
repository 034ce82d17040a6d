"""The SSH pool file: SkyPilot's format plus `port` and `price`, checked with located errors."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from skyplan.backends.ssh_pools import SshHost, load_pools, pools_path
from skyplan.errors import InputError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ssh_node_pools.yaml"
    path.write_text(text)
    return path


def test_bare_ips_and_per_host_overrides_resolve_with_pool_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "lab:\n"
        "  user: ubuntu\n"
        "  identity_file: keys/id\n"
        "  price: 1.5\n"
        "  hosts:\n"
        "    - 10.0.0.1\n"
        "    - ip: 10.0.0.2\n"
        "      port: 2222\n"
        "      user: admin\n"
        "      identity_file: ~/other\n"
        "box:\n"
        "  hosts: [gpu-box]\n",
    )
    pools = load_pools(path)
    assert list(pools) == ["lab", "box"]
    assert pools["lab"].price == 1.5
    assert pools["lab"].hosts == (
        SshHost("lab", "10.0.0.1", 22, "ubuntu", str(tmp_path / "keys/id"), 1.5),
        SshHost("lab", "10.0.0.2", 2222, "admin", str(Path("~/other").expanduser()), 1.5),
    )
    (box,) = pools["box"].hosts
    assert (box.user, box.port, box.identity_file, box.price) == (getpass.getuser(), 22, None, 0)
    assert box.node_id == "box/gpu-box:22"


def test_an_empty_file_has_no_pools(tmp_path: Path) -> None:
    assert load_pools(write(tmp_path, "# nothing yet\n")) == {}


def test_a_missing_file_is_not_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_pools(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "lab:\n  hosts: [a]\n  prt: 22\n",
            ":3: lab.prt: unknown field (known: hosts, identity_file, port, price, user)",
            id="unknown-pool-field",
        ),
        pytest.param(
            "lab:\n  hosts:\n    - a\n    - ip: b\n      porrt: 1\n",
            ":5: lab.hosts[1].porrt: unknown field (known: identity_file, ip, port, user)",
            id="unknown-host-field",
        ),
        pytest.param(
            "lab:\n  hosts:\n    - ip: b\n      port: ssh\n",
            ":4: lab.hosts[0].port: Input should be a valid integer",
            id="port-not-a-number",
        ),
        pytest.param(
            "lab:\n  port: 70000\n  hosts: [a]\n",
            ":2: lab.port: Input should be less than or equal to 65535",
            id="port-out-of-range",
        ),
        pytest.param(
            "lab:\n  price: -1\n  hosts: [a]\n",
            ":2: lab.price: Input should be greater than or equal to 0",
            id="negative-price",
        ),
        pytest.param("lab:\n  user: u\n", ":2: lab.hosts: Field required", id="no-hosts"),
        pytest.param(
            "lab:\n  hosts: []\n", ":2: lab.hosts: List should have at least 1", id="empty-hosts"
        ),
        pytest.param(
            "lab:\n  password: hunter2\n  hosts: [a]\n",
            ":2: lab.password: password authentication is not supported",
            id="skypilot-password",
        ),
        pytest.param(
            "my pool:\n  hosts: [a]\n", ":1: pool name 'my pool': use letters", id="bad-pool-name"
        ),
        pytest.param(
            "a:\n  hosts: [h]\nb:\n  hosts:\n    - x\n    - h\n",
            ":6: b.hosts[1]: h:22 is already listed in pool 'a'",
            id="host-in-two-pools",
        ),
        pytest.param("- a\n- b\n", ":1: expected a mapping of pool names", id="not-a-mapping"),
        pytest.param("lab: [\n", "not valid YAML", id="bad-yaml"),
    ],
)
def test_bad_files_name_the_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_pools(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    assert expected in message


def test_the_environment_overrides_the_pool_file_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SKYPLAN_SSH_POOLS", raising=False)
    assert pools_path(tmp_path) == tmp_path / "ssh_node_pools.yaml"
    monkeypatch.setenv("SKYPLAN_SSH_POOLS", str(tmp_path / "elsewhere.yaml"))
    assert pools_path(tmp_path) == tmp_path / "elsewhere.yaml"
