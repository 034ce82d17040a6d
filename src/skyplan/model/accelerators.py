"""Accelerator requests: `'A100'`, `'A100:8'`, `'V100:0.5'`, `{A100: 8}`, a list (ordered
preference) or a set / several-key mapping (any of them).

Names are kept as written here; the solver canonicalizes them case-insensitively against the
catalog's vocabulary (the model knows no catalog).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class Accelerator(BaseModel):
    """One accelerator model and how many per node (a fraction shares one device)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    count: float = 1.0

    def __str__(self) -> str:
        return f"{self.name}:{self.count:g}"


class AcceleratorChoice(BaseModel):
    """Several acceptable accelerators: `any` (cheapest wins) or `ordered` (first that fits)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    options: tuple[Accelerator, ...]
    mode: Literal["any", "ordered"] = "any"

    def __str__(self) -> str:
        inner = ", ".join(str(a) for a in self.options)
        return f"[{inner}]" if self.mode == "ordered" else f"{{{inner}}}"


def _count(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a count for accelerator {name!r}, got {value!r}")
    try:
        count = float(value)
    except ValueError:
        raise ValueError(f"expected a count for accelerator {name!r}, got {value!r}") from None
    if not count > 0:
        raise ValueError(f"accelerator count must be greater than 0, got {value!r} for {name!r}")
    if count > 1 and count != int(count):
        raise ValueError(
            f"a fractional count is only allowed below 1 (sharing a device), got {value!r}"
        )
    return count


def parse_one(text: str, count: object = None) -> Accelerator:
    """`'A100'`, `'A100:8'` (and an optional separate count) → Accelerator."""
    name, sep, tail = text.strip().partition(":")
    name = name.strip()
    if not _NAME.match(name):
        raise ValueError(f"expected an accelerator like 'A100' or 'A100:8', got {text!r}")
    if sep and count is not None:
        raise ValueError(f"accelerator {text!r} gives a count twice")
    if sep:
        return Accelerator(name=name, count=_count(tail.strip(), name))
    return Accelerator(name=name, count=1.0 if count is None else _count(count, name))


def parse_accelerators(value: object) -> AcceleratorChoice:
    """Any SkyPilot spelling of `accelerators` → AcceleratorChoice."""
    if isinstance(value, AcceleratorChoice):
        return value
    own = set(AcceleratorChoice.model_fields)
    if isinstance(value, dict) and "options" in value and set(value) <= own:
        return AcceleratorChoice.model_validate(value)  # its own dump (a stored task read back)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{") or text.startswith("["):
            raise ValueError(
                f"write several accelerators as a YAML list or mapping, not a string: {value!r}"
            )
        return AcceleratorChoice(options=(parse_one(text),))
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError("the accelerator list is empty")
        options = []
        for item in value:
            if not isinstance(item, str):
                raise ValueError(f"expected 'NAME' or 'NAME:COUNT' in the list, got {item!r}")
            options.append(parse_one(item))
        return AcceleratorChoice(options=tuple(options), mode="ordered")
    if isinstance(value, set | frozenset):
        return parse_accelerators({item: None for item in sorted(value)})
    if isinstance(value, dict):
        if not value:
            raise ValueError("the accelerator mapping is empty")
        parsed = []
        for key, count in value.items():
            if not isinstance(key, str):
                raise ValueError(f"expected an accelerator name, got {key!r}")
            parsed.append(parse_one(key, count))
        return AcceleratorChoice(options=tuple(parsed), mode="any")
    raise ValueError(f"expected accelerators as 'A100:8', a list or a mapping, got {value!r}")
