"""Verdicts on real problems: canonical solutions pass, wrong ones get partial credit and feedback
that names the failing call but never the expected value (nor a returned bool, nor anything of a
held-out case)."""

import re
import textwrap

import pytest

from sandbox import Request
from sandbox.runner.judge import held_out_sites
from tests.sandbox.cases import ADD_TESTS as TESTS
from tests.sandbox.cases import GOOD_ADD

pytestmark = pytest.mark.docker


def _run(sandbox, code, tests=TESTS, entry="add", timeout=5.0):
    return sandbox.run([Request("x", textwrap.dedent(code), tests, entry, timeout)])[0]


def test_humaneval_canonical_solutions_all_pass(sandbox):
    from tasks.problems.humaneval import load_humaneval

    problems = load_humaneval()
    verdicts = sandbox.run([Request(p.id, p.reference_program, p.tests, p.entry_point, 10.0,
                                    p.context) for p in problems])
    assert [v.id for v in verdicts] == [p.id for p in problems]
    failed = [(v.id, v.status, v.feedback) for v in verdicts if v.status != "passed"]
    assert failed == []
    assert all(v.passed == v.total > 0 for v in verdicts)


def test_humaneval_wrong_solutions_fail_with_partial_credit(sandbox):
    from tasks.problems.humaneval import load_humaneval

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


# ----------------------------------------------------------------------------------------------
# Feedback leaks: a returned bool, and held-out cases

BOOL_TESTS = """
def check(candidate):
    assert candidate(2) == True
    assert candidate(3) == False
"""
BOOL_ERROR_TESTS = """
def check(candidate):
    assert candidate(3) < "a"
"""
ADD_CALLS = [(1, 2), (-1, 1), (10, 5)]  # the calls of TESTS' three sites, in order
HELD_OUT = 0.34  # of TESTS' three sites, one
STOP_TESTS = """
def check(candidate):
    assert candidate(1, 2) == 3
    assert candidate(10, 5) == 15
    1 / 0
"""


def _call(site):
    return "add({}, {})".format(*ADD_CALLS[site])


def _wrong_at(*sites):
    """add, returning 99 at exactly these sites of TESTS."""
    wrong = [ADD_CALLS[site] for site in sites]
    return f"def add(a, b):\n    return 99 if (a, b) in {wrong!r} else a + b\n"


def test_feedback_does_not_give_a_bool_away(sandbox):
    always_true = "def is_even(n):\n    return True\n"
    failed, raised = sandbox.run([Request("f", always_true, BOOL_TESTS, "is_even", 5.0),
                                  Request("r", always_true, BOOL_ERROR_TESTS, "is_even", 5.0)])
    assert (failed.status, failed.passed, failed.total) == ("failed", 1, 2)
    assert "is_even(3) returned a value that does not satisfy the test" in failed.feedback
    assert "True" not in failed.feedback and "False" not in failed.feedback
    assert raised.status == "failed"
    assert "after is_even(3) returned a value, the test raised TypeError" in raised.feedback
    assert "True" not in raised.feedback


def test_held_out_case_counts_but_is_never_described(sandbox):
    (hidden,) = held_out_sites(TESTS, 3, HELD_OUT)
    visible = [site for site in range(3) if site != hidden]
    programs = {"good": GOOD_ADD, "hidden": _wrong_at(hidden), "visible": _wrong_at(visible[0]),
                "all": _wrong_at(0, 1, 2)}
    verdicts = dict(zip(programs, sandbox.run([
        Request(name, code, TESTS, "add", 5.0, held_out=HELD_OUT)
        for name, code in programs.items()])))

    def counts(v):
        return v.status, v.passed, v.total, v.held_out_passed, v.held_out_total

    assert counts(verdicts["good"]) == ("passed", 3, 3, 1, 1)
    only_hidden = verdicts["hidden"]
    assert counts(only_hidden) == ("failed", 2, 3, 0, 1)
    assert only_hidden.held_out_reward == 0.0
    assert "1 of 3 test cases failed" in only_hidden.feedback
    assert "held out" in only_hidden.feedback
    assert "add(" not in only_hidden.feedback and "99" not in only_hidden.feedback
    only_visible = verdicts["visible"]
    assert counts(only_visible) == ("failed", 2, 3, 1, 1)
    assert f"{_call(visible[0])} returned 99" in only_visible.feedback
    every = verdicts["all"]
    assert counts(every) == ("failed", 0, 3, 0, 1)
    assert f"First failure: {_call(visible[0])} returned 99" in every.feedback
    for verdict in verdicts.values():
        assert _call(hidden) not in verdict.feedback


def test_a_shown_case_is_never_held_out(sandbox):
    """The case the prompt shows (an MBPP example) gets feedback like any visible case, and
    another case is held out in its place."""
    (hidden,) = held_out_sites(TESTS, 3, HELD_OUT)
    (instead,) = held_out_sites(TESTS, 3, HELD_OUT, [hidden])
    assert instead != hidden
    code = _wrong_at(hidden)
    shown, plain = sandbox.run([
        Request("shown", code, TESTS, "add", 5.0, held_out=HELD_OUT, shown=(hidden,)),
        Request("plain", code, TESTS, "add", 5.0, held_out=HELD_OUT)])
    assert (plain.passed, plain.held_out_passed, plain.held_out_total) == (2, 0, 1)
    assert _call(hidden) not in plain.feedback  # held out without `shown`, as before
    assert (shown.passed, shown.held_out_passed, shown.held_out_total) == (2, 1, 1)
    assert f"First failure: {_call(hidden)} returned 99" in shown.feedback


def test_hard_coding_the_visible_failures_still_fails_the_held_out_case(sandbox):
    """A candidate that special-cases each call the feedback names, with its right answer."""
    (hidden,) = held_out_sites(TESTS, 3, HELD_OUT)
    table: dict = {}
    for _ in range(4):
        code = f"def add(a, b):\n    return {table!r}.get((a, b), a - b)\n"
        verdict = sandbox.run([Request("cheat", code, TESTS, "add", 5.0, held_out=HELD_OUT)])[0]
        named = re.search(r"add\((-?\d+), (-?\d+)\) returned", verdict.feedback)
        if named is None:
            break
        a, b = int(named[1]), int(named[2])
        assert (a, b) not in table and (a, b) != ADD_CALLS[hidden]
        table[(a, b)] = a + b
    assert sorted(table) == sorted(ADD_CALLS[s] for s in range(3) if s != hidden)
    assert (verdict.status, verdict.passed, verdict.total) == ("failed", 2, 3)
    assert verdict.held_out_passed < verdict.held_out_total == 1
    assert "held out" in verdict.feedback and _call(hidden) not in verdict.feedback


def test_tests_stopping_after_a_held_out_case_do_not_name_its_call(sandbox):
    # the same tests (a comment apart) whose second site, add(10, 5), is the held-out one
    tests = next(t for t in (f"# variant {n}\n{STOP_TESTS}" for n in range(200))
                 if held_out_sites(t, 2, 0.5) == {1})
    held, plain = sandbox.run([Request("held", GOOD_ADD, tests, "add", 5.0, held_out=0.5),
                               Request("plain", GOOD_ADD, tests, "add", 5.0)])
    assert held.status == plain.status == "failed"
    assert "after add(10, 5)" in plain.feedback
    assert "ZeroDivisionError" in held.feedback and "add(10, 5)" not in held.feedback
    assert (held.held_out_passed, held.held_out_total) == (0, 1)  # stopped early: never all
