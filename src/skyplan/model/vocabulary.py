"""What policy conditions can name: candidate fields, request fields, and functions.

Shared by the DSL checker (types) and the solver (evaluation); nothing here knows either.
Embedders extend it by name: `@function("name", ("string",), "bool")` and
`@field("name", "number")`; implementations take and return Polars expressions, but this
module only stores them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from skyplan.registry import Registry, RegistryError

Type = Literal["string", "number", "money", "gib", "fraction", "bool", "kind"]

#: Candidate fields: every offer has them (`price` and `hourly_cost` are $/h for all nodes).
FIELD_TYPES: dict[str, Type] = {
    "cloud": "string",
    "region": "string",
    "zone": "string",
    "instance_type": "string",
    "accelerator": "string",
    "count": "number",
    "gpus": "number",
    "gpu_memory": "gib",
    "vcpus": "number",
    "memory": "gib",
    "price": "money",
    "hourly_cost": "money",
    "spot": "bool",
    "arch": "string",
    "capacity": "number",
}
#: Request fields, seen as `task.<name>`; `task.labels.<key>` is a string.
REQUEST_TYPES: dict[str, Type] = {
    "name": "string",
    "kind": "kind",
    "user": "string",
    "team": "string",
    "num_nodes": "number",
}
KIND_VALUES: tuple[str, ...] = ("task", "service", "job")


@dataclass(frozen=True)
class Function:
    """A function conditions may call; `impl` maps argument expressions to an expression."""

    name: str
    params: tuple[Type, ...]
    returns: Type
    impl: Callable[..., Any] | None = None


@dataclass(frozen=True)
class CustomField:
    """A candidate field computed by `impl()` (an expression over the catalog columns)."""

    name: str
    type: Type
    impl: Callable[[], Any]


FUNCTIONS: Registry[Function] = Registry("function")
CUSTOM_FIELDS: Registry[CustomField] = Registry("field")

for _name, _params, _returns in (
    ("starts_with", ("string", "string"), "bool"),
    ("ends_with", ("string", "string"), "bool"),
    ("lower", ("string",), "string"),
):
    FUNCTIONS.register(_name, Function(_name, _params, _returns))  # type: ignore[arg-type]


def function(
    name: str, params: tuple[Type, ...], returns: Type
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a function for policy conditions; a duplicate name raises."""

    def register(impl: Callable[..., Any]) -> Callable[..., Any]:
        FUNCTIONS.register(name, Function(name, params, returns, impl))
        return impl

    return register


def field(name: str, type: Type) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Register a computed candidate field; a name that is already a field raises."""

    def register(impl: Callable[[], Any]) -> Callable[[], Any]:
        if name in FIELD_TYPES:
            raise RegistryError(f"field {name!r} is built in")
        CUSTOM_FIELDS.register(name, CustomField(name, type, impl))
        return impl

    return register


def field_type(name: str) -> Type | None:
    if name in FIELD_TYPES:
        return FIELD_TYPES[name]
    return CUSTOM_FIELDS.get(name).type if name in CUSTOM_FIELDS else None


def field_names() -> tuple[str, ...]:
    return (*FIELD_TYPES, *CUSTOM_FIELDS)
