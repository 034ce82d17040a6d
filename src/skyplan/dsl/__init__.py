"""The placement policy language: policy text → `model.Policy`.

Grammar (grammar.lark) → parser (typed AST) → compiler stages (resolve, check, lower) → loader
(imports and merging) → formatter. Extend the vocabulary from Python:

    @skyplan.dsl.function("is_gpu_family", ("string",), "bool")
    def is_gpu_family(instance_type):          # Polars expressions in, one out
        return instance_type.str.contains(r"^(p|g)[0-9]")

May import model, errors, source and lark; never polars, the catalog or the solver.
"""

from skyplan.dsl.compiler import Vocabulary
from skyplan.dsl.formatter import format_text
from skyplan.dsl.loader import Loaded, load, read_policy
from skyplan.dsl.parser import parse
from skyplan.model.vocabulary import field, function

__all__ = [
    "Loaded",
    "Vocabulary",
    "field",
    "format_text",
    "function",
    "load",
    "parse",
    "read_policy",
]
