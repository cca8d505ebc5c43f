"""Execution's requests: the case a prompt shows as its example is never held out of feedback."""

import pytest

from sandbox.runner.judge import held_out_sites, prepare_tests
from tasks.problems.records import Problem
from tasks.problems.mbpp import load_mbpp
from tasks.problems.examples import with_example
from tasks.records import Attempt
from tasks.schema import SandboxConfig


def _attempt(problem: Problem, body: str) -> Attempt:
    return Attempt(id=f"{problem.id}/A/s/s0/t0", problem_id=problem.id, cycle=1, agent="A",
                   specialist="s", sample=0, turn=0, policy_id="p", prompt=problem.prompt,
                   response=body, code=problem.program(body))


@pytest.fixture(scope="module")
def shown_would_be_held_out() -> tuple[Problem, Problem]:
    """An MBPP problem without and with its example, whose first case (the one the example
    shows) the default fraction holds out when nothing is shown."""
    fraction = SandboxConfig().held_out
    for plain in load_mbpp():
        total = prepare_tests(plain.tests)[1]
        if 0 in held_out_sites(plain.tests, total, fraction):
            return plain, with_example(plain)
    raise AssertionError("no MBPP problem holds out its first case: pick another fraction")


def test_requests_name_the_shown_case_and_only_then(shown_would_be_held_out):
    from tasks.execution import requests_for

    plain, shown = shown_would_be_held_out
    cfg = SandboxConfig()
    (without,) = requests_for([_attempt(plain, "    return 0\n")], {plain.id: plain}, cfg)
    (with_,) = requests_for([_attempt(shown, "    return 0\n")], {shown.id: shown}, cfg)
    assert without.shown == () and with_.shown == (0,)
    total = prepare_tests(plain.tests)[1]
    assert 0 in held_out_sites(without.tests, total, without.held_out, without.shown)
    assert 0 not in held_out_sites(with_.tests, total, with_.held_out, with_.shown)


@pytest.mark.docker
def test_feedback_describes_the_shown_case(shown_would_be_held_out, sandbox):
    from tasks.execution import judge

    plain, shown = shown_would_be_held_out
    cfg = SandboxConfig()
    (hidden,) = judge([_attempt(plain, "    return None\n")], {plain.id: plain}, sandbox, cfg)
    (seen,) = judge([_attempt(shown, "    return None\n")], {shown.id: shown}, sandbox, cfg)
    example_call = next(line.strip()[len(">>> "):] for line in shown.prompt.splitlines()
                        if line.strip().startswith(">>> "))
    assert hidden.status == seen.status == "failed" and hidden.passed == seen.passed == 0
    assert f"{example_call} returned None" not in hidden.feedback  # held out: never described
    assert f"First failure: {example_call} returned None" in seen.feedback
    assert hidden.held_out_total == seen.held_out_total >= 1  # as many held out, others instead
