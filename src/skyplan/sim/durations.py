"""Durations as task YAML writes them (`36h`, `90m`, `2d`, `3600s`, a number of hours), for
callers of the simulator that take them from a command line."""

from __future__ import annotations

from skyplan.errors import InputError
from skyplan.model.resources import _hours


def parse_hours(value: str | float, what: str) -> float:
    """Hours in `value`, with the task YAML's semantics; an `InputError` naming `what`."""
    text: object = value
    if isinstance(value, str):
        try:
            text = float(value)
        except ValueError:
            text = value
    try:
        return _hours(text, what)
    except ValueError as exc:
        raise InputError(str(exc)) from None
