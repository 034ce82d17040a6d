"""`Registry[T]`: plugins registered by name, loudly.

A duplicate name raises; a failed lookup names the nearest registered names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from skyplan.errors import SkyplanError, did_you_mean

T = TypeVar("T")


class RegistryError(SkyplanError):
    """A plugin name is registered twice or looked up but never registered."""


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            raise RegistryError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def unregister(self, name: str) -> T:
        """Remove a plugin (a test's, or one an embedder replaces); raises if it is not there."""
        item = self.get(name)
        del self._items[name]
        return item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            guess = did_you_mean(name, self._items)
            hint = f"; did you mean {guess!r}?" if guess else ""
            known = ", ".join(sorted(self._items)) or "none"
            raise RegistryError(f"no {self.kind} named {name!r}{hint} (known: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())
