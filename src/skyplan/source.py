"""Source text and positions: `Span` (file, line, column) and a snippet with a caret.

Imports nothing from skyplan; everything that reports a position into user text uses these.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A position in a file: 1-based line and column; `file` is the path as the user gave it."""

    file: str
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        if self.col is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Source:
    """The text of one input file, kept so errors can quote the offending line."""

    name: str
    text: str

    def line(self, number: int) -> str | None:
        lines = [line.rstrip("\r") for line in self.text.split("\n")]
        if 1 <= number <= len(lines):
            return lines[number - 1]
        return None

    def snippet(self, span: Span) -> str:
        """The line `span` points at with a caret under its column, or "" when unknown."""
        if span.line is None:
            return ""
        text = self.line(span.line)
        if text is None:
            return ""
        gutter = f"{span.line} | "
        out = f"{gutter}{text.expandtabs(1)}"
        if span.col is not None:
            out += "\n" + " " * (len(gutter) + span.col - 1) + "^"
        return out
