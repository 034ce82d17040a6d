"""Reviewing policies as code: running their tests with rule coverage, and the exact semantic
diff of two policies over a finite catalog. Built on the solver and the DSL; pure functions
over loaded policies and catalogs (callers do the file I/O).
"""

from skyplan.review.diff import OfferChange, PolicyDiff, diff_policies
from skyplan.review.testing import TestReport, TestResult, run_tests

__all__ = ["OfferChange", "PolicyDiff", "TestReport", "TestResult", "diff_policies", "run_tests"]
