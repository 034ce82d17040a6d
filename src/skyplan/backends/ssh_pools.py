"""The SSH node pool file: which existing machines skyplan may use, grouped into named pools.

SkyPilot's `ssh_node_pools.yaml` format, plus two skyplan fields (`port`, `price`):

    my-pool:
      user: ubuntu              # default for the pool's hosts
      identity_file: ~/.ssh/id_ed25519
      port: 22                  # skyplan: default 22
      price: 0.0                # skyplan: $/h per host, default 0
      hosts:
        - 10.0.0.1
        - ip: 10.0.0.2          # per-host overrides: user, identity_file, port
          port: 2222

This module only reads and checks the file; it never connects to a host. A bad file is an
`InputError` naming the file, the line and the field.
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from skyplan.errors import InputError

POOLS_FILE = "ssh_node_pools.yaml"
#: Overrides `<home>/ssh_node_pools.yaml`.
POOLS_ENV = "SKYPLAN_SSH_POOLS"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: SkyPilot fields skyplan deliberately does not take, with what to do instead.
_UNSUPPORTED = {
    "password": "password authentication is not supported: use identity_file (a key)",
    "use_ssh_config": "~/.ssh/config is not read: give ip, user, port and identity_file here",
}


def pools_path(home: Path) -> Path:
    """Where the pool file is: `$SKYPLAN_SSH_POOLS`, else `<home>/ssh_node_pools.yaml`."""
    env = os.environ.get(POOLS_ENV)
    return Path(env).expanduser() if env else home / POOLS_FILE


class HostEntry(BaseModel):
    """One host of a pool; unset fields fall back to the pool's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ip: str = Field(min_length=1)
    user: str | None = None
    identity_file: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)


class PoolConfig(BaseModel):
    """One pool as written in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hosts: list[HostEntry] = Field(min_length=1)
    user: str | None = None
    identity_file: str | None = None
    port: int = Field(default=22, ge=1, le=65535)
    price: float = Field(default=0.0, ge=0)

    @field_validator("hosts", mode="before")
    @classmethod
    def _bare_ips(cls, value: Any) -> Any:
        # `- 10.0.0.1` is short for `- ip: 10.0.0.1`.
        if isinstance(value, list):
            return [{"ip": v} if isinstance(v, str) else v for v in value]
        return value


@dataclass(frozen=True)
class SshHost:
    """One host with every connection fact resolved (pool defaults applied, `~` expanded)."""

    pool: str
    ip: str
    port: int
    user: str
    identity_file: str | None
    price: float

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def node_id(self) -> str:
        return f"{self.pool}/{self.address}"


@dataclass(frozen=True)
class SshPool:
    name: str
    price: float
    hosts: tuple[SshHost, ...]


def load_pools(path: Path) -> dict[str, SshPool]:
    """Read and check the pool file. Raises `FileNotFoundError` when it is absent and
    `InputError` (file:line: field: problem) when it is invalid; an empty file has no pools."""
    text = path.read_text()
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path}:1: expected a mapping of pool names to pools")
    problems: list[str] = []
    pools: dict[str, SshPool] = {}
    for name, raw in data.items():
        if not isinstance(name, str) or not _NAME.match(name):
            where = _line(root, (name,), key=True)
            problems.append(
                f"{path}:{where}: pool name {name!r}: use letters, digits, '.', '_' and '-'"
            )
            continue
        try:
            config = PoolConfig.model_validate(raw)
        except ValidationError as err:
            problems += [_render(path, root, (name, *e["loc"]), e) for e in err.errors()]
            continue
        pools[name] = _resolve(name, config, path.parent)
    problems += _duplicates(path, root, pools)
    if problems:
        raise InputError("\n".join(problems[:10]))
    return pools


def _resolve(name: str, config: PoolConfig, base: Path) -> SshPool:
    def key(value: str | None) -> str | None:
        if value is None:
            return None
        expanded = Path(value).expanduser()
        return str(expanded if expanded.is_absolute() else base / expanded)

    hosts = tuple(
        SshHost(
            pool=name,
            ip=h.ip,
            port=h.port or config.port,
            user=h.user or config.user or getpass.getuser(),
            identity_file=key(h.identity_file or config.identity_file),
            price=config.price,
        )
        for h in config.hosts
    )
    return SshPool(name, config.price, hosts)


def _duplicates(path: Path, root: yaml.Node | None, pools: dict[str, SshPool]) -> list[str]:
    # A host in two pools would be offered twice; its one claim file keeps it safe anyway.
    seen: dict[str, str] = {}
    problems = []
    for pool in pools.values():
        for i, host in enumerate(pool.hosts):
            if host.address in seen:
                line = _line(root, (pool.name, "hosts", i))
                problems.append(
                    f"{path}:{line}: {pool.name}.hosts[{i}]: {host.address} is already "
                    f"listed in pool {seen[host.address]!r}: a host belongs to one pool"
                )
            seen.setdefault(host.address, pool.name)
    return problems


def _render(path: Path, root: yaml.Node | None, loc: tuple[Any, ...], error: Any) -> str:
    field = loc[0] + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
    last = loc[-1]
    if error["type"] == "extra_forbidden" and last in _UNSUPPORTED:
        message = _UNSUPPORTED[last]
    elif error["type"] == "extra_forbidden":
        known = sorted((HostEntry if isinstance(loc[-2], int) else PoolConfig).model_fields)
        message = f"unknown field (known: {', '.join(known)})"
    else:
        message = error["msg"]
    extra = error["type"] == "extra_forbidden"
    return f"{path}:{_line(root, loc, key=extra)}: {field}: {message}"


def _line(root: yaml.Node | None, loc: tuple[Any, ...], *, key: bool = False) -> int:
    """The 1-based line of the YAML node at `loc` (of its key when `key`), or of the nearest
    enclosing node that exists."""
    node = root
    line = 1
    for i, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if kv[0].value == str(part)), None)
            if match is None:
                break
            if key and i == len(loc) - 1:
                return int(match[0].start_mark.line) + 1
            node = match[1]
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
        else:
            break
        line = int(node.start_mark.line) + 1
    return line
