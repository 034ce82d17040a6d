"""Stable diagnostic codes of the policy language: `SPnnn` and a kebab-case slug.

Codes never change meaning; new problems get new codes. docs/policy-language.md lists each
with an example.
"""

from __future__ import annotations

CODES: dict[str, str] = {
    "SP100": "syntax-error",
    "SP101": "unknown-accelerator",
    "SP102": "unknown-field",
    "SP103": "unknown-name",
    "SP104": "type-mismatch",
    "SP105": "unknown-cloud",
    "SP106": "duplicate-name",
    "SP107": "import-not-found",
    "SP108": "import-cycle",
    "SP109": "loosens-hard-rule",
    "SP110": "unknown-function",
    "SP111": "wrong-arguments",
    "SP112": "when-sees-candidate",
    "SP113": "unknown-request-field",
    "SP114": "unknown-test-key",
    "SP115": "unknown-rule",
    "SP116": "invalid-value",
    "SP117": "import-outside-root",
    "SP118": "too-complex",
    "SP119": "invisible-character",
    "SP201": "unknown-region",
    "SP202": "unused-let",
}

SYNTAX = "SP100"
UNKNOWN_ACCELERATOR = "SP101"
UNKNOWN_FIELD = "SP102"
UNKNOWN_NAME = "SP103"
TYPE_MISMATCH = "SP104"
UNKNOWN_CLOUD = "SP105"
DUPLICATE_NAME = "SP106"
IMPORT_NOT_FOUND = "SP107"
IMPORT_CYCLE = "SP108"
LOOSENS_HARD_RULE = "SP109"
UNKNOWN_FUNCTION = "SP110"
WRONG_ARGUMENTS = "SP111"
WHEN_SEES_CANDIDATE = "SP112"
UNKNOWN_REQUEST_FIELD = "SP113"
UNKNOWN_TEST_KEY = "SP114"
UNKNOWN_RULE = "SP115"
INVALID_VALUE = "SP116"
IMPORT_OUTSIDE_ROOT = "SP117"  # absolute, `..` past the root, a link out of it, not a regular file
INVISIBLE = "SP119"  # a control, format (zero-width, bidi) or line-separator character
TOO_COMPLEX = "SP118"  # a limit: file size, nesting, `let` expansion, rule count, pattern length
UNKNOWN_REGION = "SP201"
UNUSED_LET = "SP202"


def slug(code: str) -> str:
    return CODES.get(code, "error")
