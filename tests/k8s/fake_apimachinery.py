"""A FAKE Kubernetes API server's machinery: quantities, Status errors, selectors. NOT Kubernetes.

    !!! THIS IS A FAKE. Part of `fake_apiserver` (read its docstring first): the small pieces
    !!! of k8s.io/apimachinery that the fake needs, written just well enough for skyplan's
    !!! `kubernetes` backend and the official Python client. It is not a conformance target.

What it owns: parsing a quantity ("500m", "16Gi"); the `Status` body of an error and the
`ApiError` that carries one; matching a `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, `key`,
`!key`) and a `fieldSelector` (`status.phase`, `spec.nodeName`, `metadata.name`,
`metadata.namespace`). It imports nothing from the other fake modules; they import it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

_SUFFIXES = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}  # fmt: skip


def quantity(text: str) -> Decimal:
    """A Kubernetes quantity ("500m", "16Gi", "2") as a number; ValueError if malformed."""
    m = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([A-Za-z]*)", str(text).strip())
    if m is None or (m.group(2) and m.group(2) not in _SUFFIXES):
        raise ValueError(f"quantities must match the regular expression: {text!r}")
    try:
        return Decimal(m.group(1)) * Decimal(_SUFFIXES.get(m.group(2), 1))
    except InvalidOperation:
        raise ValueError(f"not a quantity: {text!r}") from None


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.body = status_body(code, reason, message, **details)


# -- selectors ----------------------------------------------------------------------------------


def _split_terms(selector: str) -> list[str]:
    terms, depth, cur = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        terms.append(cur.strip())
    return terms


def label_match(selector: str, labels: dict[str, str]) -> bool:
    for term in _split_terms(selector):
        if m := re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if (op == "in") != (labels.get(key) in values):
                return False
        elif m := re.fullmatch(r"([^!=\s]+)\s*(==|=|!=)\s*(\S*)", term):
            key, op, value = m.groups()
            if (op == "!=") == (labels.get(key) == value):
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


_FIELDS = {
    "status.phase": lambda p: p["status"].get("phase", ""),
    "spec.nodeName": lambda p: p["spec"].get("nodeName", ""),
    "metadata.name": lambda p: p["metadata"]["name"],
    "metadata.namespace": lambda p: p["metadata"]["namespace"],
}


def field_match(selector: str, pod: dict[str, Any]) -> bool:
    for term in _split_terms(selector):
        m = re.fullmatch(r"([^!=]+)(==|=|!=)(.*)", term)
        if m is None or m.group(1) not in _FIELDS:
            raise ApiError(400, "BadRequest", f'field label not supported: "{term}"')
        if (m.group(2) == "!=") == (_FIELDS[m.group(1)](pod) == m.group(3)):
            return False
    return True
