"""Verdicts on real problems: canonical solutions pass, wrong ones get partial credit and feedback
that names the failing call but never the expected value."""

import textwrap

import pytest

from sandbox import Request
from tests.sandbox.cases import ADD_TESTS as TESTS

pytestmark = pytest.mark.docker


def _run(sandbox, code, tests=TESTS, entry="add", timeout=5.0):
    return sandbox.run([Request("x", textwrap.dedent(code), tests, entry, timeout)])[0]


def test_humaneval_canonical_solutions_all_pass(sandbox):
    from tasks.problems import load_humaneval

    problems = load_humaneval()
    verdicts = sandbox.run([Request(p.id, p.reference_program, p.tests, p.entry_point, 10.0,
                                    p.context) for p in problems])
    assert [v.id for v in verdicts] == [p.id for p in problems]
    failed = [(v.id, v.status, v.feedback) for v in verdicts if v.status != "passed"]
    assert failed == []
    assert all(v.passed == v.total > 0 for v in verdicts)


def test_humaneval_wrong_solutions_fail_with_partial_credit(sandbox):
    from tasks.problems import load_humaneval

    by_id = {p.id: p for p in load_humaneval()}
    p = by_id["HumanEval/0"]  # has_close_elements: a solution that always says True
    verdict = sandbox.run([Request(p.id, p.prompt + "    return True\n", p.tests,
                                   p.entry_point)])[0]
    assert verdict.status == "failed"
    assert 0 < verdict.passed < verdict.total
    assert "has_close_elements(" in verdict.feedback


def test_partial_credit_counts_each_assert(sandbox):
    verdict = _run(sandbox, """
        def add(a, b):
            return 0 if a == 10 else a + b
    """)
    assert (verdict.status, verdict.passed, verdict.total) == ("failed", 2, 3)
    assert verdict.reward == pytest.approx(2 / 3)


def test_feedback_names_the_call_not_the_expected_value(sandbox):
    verdict = _run(sandbox, """
        def add(a, b):
            return 0 if a == 10 else a + b
    """)
    assert "add(10, 5)" in verdict.feedback
    assert "returned 0" in verdict.feedback
    assert "15" not in verdict.feedback


def test_feedback_for_an_exception_has_type_message_and_traceback(sandbox):
    verdict = _run(sandbox, """
        def helper(x):
            return x + undefined_name

        def add(a, b):
            return helper(a) + b
    """)
    assert verdict.status == "failed" and verdict.passed == 0
    assert "add(1, 2) raised NameError" in verdict.feedback
    assert "undefined_name" in verdict.feedback
    assert "in helper" in verdict.feedback and "line 3" in verdict.feedback


def test_exception_types_survive_for_tests_that_expect_them(sandbox):
    tests = """
def check(candidate):
    try:
        candidate(-1)
        assert False, "should raise"
    except ValueError:
        pass
    assert candidate(4) == 2
"""
    verdict = _run(sandbox, """
        def root(x):
            if x < 0:
                raise ValueError("negative")
            return int(x ** 0.5)
    """, tests=tests, entry="root")
    assert verdict.status == "passed", verdict


def test_missing_entry_point_is_an_error(sandbox):
    verdict = _run(sandbox, "def plus(a, b):\n    return a + b\n")
    assert verdict.status == "error"
    assert "`add`" in verdict.feedback


def test_exception_while_loading_is_an_error(sandbox):
    verdict = _run(sandbox, "import numpy_that_does_not_exist\ndef add(a, b):\n    return a+b\n")
    assert verdict.status == "error"
    assert "ModuleNotFoundError" in verdict.feedback


def test_syntax_error_status_and_line(sandbox):
    verdict = _run(sandbox, "def add(a, b):\n    return a +\n")
    assert verdict.status == "syntax_error"
    assert "line 2" in verdict.feedback


def test_in_place_mutation_is_visible_to_the_tests(sandbox):
    tests = """
def check(candidate):
    xs = [3, 1, 2]
    candidate(xs)
    assert xs == [1, 2, 3]
"""
    verdict = _run(sandbox, "def sort_in_place(xs):\n    xs.sort()\n", tests=tests,
                   entry="sort_in_place")
    assert verdict.status == "passed", verdict


def test_multiple_python_value_types_round_trip(sandbox):
    tests = """
def check(candidate):
    assert candidate() == (1, 2.5, "s", b"b", {1, 2}, frozenset({3}), {"k": [None, True]},
                           complex(1, 2), float("inf"), 10 ** 40)
    import math
    assert math.isnan(candidate()[10])
"""
    verdict = _run(sandbox, """
        def values():
            return (1, 2.5, "s", b"b", {1, 2}, frozenset({3}), {"k": [None, True]},
                    complex(1, 2), float("inf"), 10 ** 40, float("nan"))
    """, tests=tests, entry="values")
    assert verdict.status == "failed" and verdict.passed == 1  # first assert: tuple length differs
    verdict = _run(sandbox, """
        def values():
            return (1, 2.5, "s", b"b", {1, 2}, frozenset({3}), {"k": [None, True]},
                    complex(1, 2), float("inf"), 10 ** 40)
    """, tests=tests.replace("    import math\n    assert math.isnan(candidate()[10])\n", ""),
                   entry="values")
    assert verdict.status == "passed", verdict
