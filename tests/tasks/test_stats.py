"""Paired statistics: exact tests against values worked by hand, resampling that is deterministic
and agrees with exact enumeration, and inputs that cannot be paired refused with the fix."""

import random
from itertools import product
from math import comb

import pytest

from tasks.stats import (
    BinaryComparison,
    Comparison,
    auc,
    balance_score,
    compare,
    compare_binary,
    holm,
    independent_bootstrap_ci,
    mcnemar_exact,
    paired_bootstrap_ci,
    sign_flip_p,
)

# ---------------------------------------------------------------------------------------------
# McNemar
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("b,c,alternative,expected", [
    (8, 1, "two-sided", 0.0390625),  # 2 · P(X ≥ 8 | n=9) = 2 · 10/512
    (1, 8, "two-sided", 0.0390625),  # symmetric
    (8, 1, "greater", 10 / 512),
    (8, 1, "less", 1 - 1 / 512),  # P(X ≤ 8) = 1 − P(X = 9)
    (3, 0, "two-sided", 0.25),  # 2 · 1/8
    (3, 0, "greater", 0.125),
    (0, 3, "greater", 1.0),  # new never better: no evidence that it is
    (5, 5, "two-sided", 1.0),  # both tails exceed 1/2: capped
    (0, 0, "two-sided", 1.0),  # no discordant problem: no evidence either way
    (0, 0, "greater", 1.0),
])
def test_mcnemar_known_values(b, c, alternative, expected):
    assert mcnemar_exact(b, c, alternative) == pytest.approx(expected, abs=1e-15)


def test_mcnemar_greater_is_the_binomial_upper_tail():
    for b, c in [(4, 2), (10, 3), (0, 7), (30, 12)]:
        n = b + c
        tail = sum(comb(n, i) for i in range(b, n + 1)) / 2 ** n
        assert mcnemar_exact(b, c, "greater") == pytest.approx(tail)
        assert mcnemar_exact(b, c) == pytest.approx(
            min(1.0, 2 * min(tail, mcnemar_exact(b, c, "less"))))


def test_mcnemar_refuses_what_is_not_a_count():
    with pytest.raises(ValueError, match="integers ≥ 0; got b=-1"):
        mcnemar_exact(-1, 3)
    with pytest.raises(ValueError, match="alternative must be one of"):
        mcnemar_exact(3, 1, "bigger")


# ---------------------------------------------------------------------------------------------
# Bootstrap interval
# ---------------------------------------------------------------------------------------------

DIFFS = [1, 0, 0, 1, -1, 0, 1, 0.5, 0, 1, -0.5, 0, 1, 0, 0, 1, 0, -1, 0.5, 0]


def test_bootstrap_ci_contains_the_mean_and_narrows_with_more_problems():
    mean = sum(DIFFS) / len(DIFFS)
    low, high = paired_bootstrap_ci(DIFFS, resamples=2000)
    assert low < mean < high
    assert low > min(DIFFS) and high < max(DIFFS)
    big_low, big_high = paired_bootstrap_ci(DIFFS * 16, resamples=2000)  # same spread, 16× n
    assert big_low < mean < big_high
    # the width of a mean's interval shrinks like 1/√n: about 4× here
    assert (big_high - big_low) < (high - low) / 3


def test_bootstrap_ci_is_wider_at_a_higher_level_and_fixed_by_the_seed():
    narrow = paired_bootstrap_ci(DIFFS, level=0.8, resamples=2000)
    wide = paired_bootstrap_ci(DIFFS, level=0.99, resamples=2000)
    assert wide[0] < narrow[0] and narrow[1] < wide[1]
    assert paired_bootstrap_ci(DIFFS, resamples=500, seed=3) == \
        paired_bootstrap_ci(DIFFS, resamples=500, seed=3)
    assert paired_bootstrap_ci(DIFFS, resamples=500, seed=3) != \
        paired_bootstrap_ci(DIFFS, resamples=500, seed=4)


def test_bootstrap_ci_of_constant_differences_is_a_point():
    assert paired_bootstrap_ci([0.25] * 7, resamples=200) == (0.25, 0.25)


def test_bootstrap_ci_refuses_empty_or_a_level_that_is_not_a_probability():
    with pytest.raises(ValueError, match="no paired differences"):
        paired_bootstrap_ci([])
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        paired_bootstrap_ci([1.0], level=95)


# ---------------------------------------------------------------------------------------------
# Sign-flip test
# ---------------------------------------------------------------------------------------------


def test_sign_flip_exact_known_values_and_zeros_ignored():
    # 3 positive differences: only the all-plus assignment of 8 is as large
    assert sign_flip_p([1, 1, 1]) == 1 / 8
    assert sign_flip_p([1, 1, 1, 0, 0, 0]) == 1 / 8  # zeros change nothing
    assert sign_flip_p([1, 1, 1], alternative="two-sided") == 2 / 8  # all plus or all minus
    assert sign_flip_p([1, 1, 1], alternative="less") == 1.0
    # [1, 0.5]: assignment sums 1.5, 0.5, -0.5, -1.5; observed 1.5
    assert sign_flip_p([1, 0.5]) == 1 / 4
    assert sign_flip_p([1, -0.5]) == 2 / 4  # observed 0.5: 1.5 and 0.5 are ≥


def test_sign_flip_agrees_with_brute_force_enumeration():
    rng = random.Random(7)
    diffs = [rng.choice([-1, -0.5, 0.25, 0.5, 1]) for _ in range(10)]
    observed = sum(diffs)
    sums = [sum(s * d for s, d in zip(signs, diffs)) for signs in product((1, -1), repeat=10)]
    brute = sum(s >= observed - 1e-9 for s in sums) / len(sums)
    assert sign_flip_p(diffs) == pytest.approx(brute)


def test_sign_flip_monte_carlo_agrees_with_exact():
    diffs = [1, -0.5, 0.5, 1, -1, 0.25, 0.5, 1, -0.25, 0.5, -1, 1, 0.5, -0.5]  # 14 nonzero
    for alternative in ("greater", "two-sided"):
        exact = sign_flip_p(diffs, alternative=alternative)
        sampled = sign_flip_p(diffs, resamples=20000, alternative=alternative, max_exact=0)
        assert 0.1 < exact < 0.5  # a p-value where sampling error would show
        assert sampled == pytest.approx(exact, abs=0.015)  # ~4 standard errors of 20000 draws
        assert sampled != exact  # it did sample


def test_sign_flip_monte_carlo_is_never_zero():
    diffs = [1.0] * 40  # exact p would be 2^-40
    p = sign_flip_p(diffs, resamples=999)
    assert p == 1 / 1000  # (0 + 1) / (999 + 1)
    assert sign_flip_p(diffs, resamples=999) == p  # same seed, same draws


def test_sign_flip_of_all_zero_differences_is_one():
    for alternative in ("greater", "two-sided", "less"):
        assert sign_flip_p([0, 0, 0], alternative=alternative) == 1.0
        assert sign_flip_p([0.0] * 40, alternative=alternative) == 1.0


# ---------------------------------------------------------------------------------------------
# Holm's adjustment, and the interval of a difference of independent means
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pvalues,expected", [
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
    # times 3, 2, 1 = 0.03, 0.04, 0.03: the last is raised to 0.04 (a plain m - i + 1 is not)
    ([0.01, 0.02, 0.03], [0.03, 0.04, 0.04]),
    ([0.2, 0.9, 0.4], [0.6, 0.9, 0.8]),
    ([0.5, 0.6], [1.0, 1.0]),  # 2 · 0.5 = 1, capped; 0.6 is raised to it
    ([0.4, 0.01], [0.4, 0.02]),
    ([0.01, 0.01], [0.02, 0.02]),  # ties adjust alike
    ([0.03], [0.03]),  # a family of one is not adjusted
    ([], []),
])
def test_holm_known_values(pvalues, expected):
    assert holm(pvalues) == pytest.approx(expected, abs=1e-12)


def test_holm_never_lowers_a_p_value_and_refuses_what_is_not_one():
    rng = random.Random(3)
    ps = [rng.random() for _ in range(30)]
    adjusted = holm(ps)
    assert all(a >= p and a <= 1.0 for a, p in zip(adjusted, ps))
    ranked = sorted(range(30), key=ps.__getitem__)
    assert all(adjusted[i] <= adjusted[j] for i, j in zip(ranked, ranked[1:]))  # monotone
    with pytest.raises(ValueError, match="not a p-value"):
        holm([0.5, 1.5])


def test_independent_bootstrap_ci_of_constants_is_their_difference_and_fixed_by_the_seed():
    assert independent_bootstrap_ci([0.5] * 4, [0.25] * 9, resamples=200) == (0.25, 0.25)
    a, b = DIFFS, [d / 2 for d in DIFFS[:13]]
    low, high = independent_bootstrap_ci(a, b, resamples=2000)
    assert low < sum(a) / len(a) - sum(b) / len(b) < high
    assert independent_bootstrap_ci(a, b, resamples=500, seed=1) == \
        independent_bootstrap_ci(a, b, resamples=500, seed=1)
    with pytest.raises(ValueError, match="at least one value"):
        independent_bootstrap_ci([], [1.0])


# ---------------------------------------------------------------------------------------------
# Comparisons
# ---------------------------------------------------------------------------------------------


def test_compare_hand_example():
    result = compare([1, 0.5, 0, 1], [0, 0.5, 0, 0.5], resamples=2000)
    assert (result.n, result.improved, result.worsened, result.identical) == (4, 2, 0, False)
    assert (result.new_mean, result.old_mean) == (0.625, 0.25)
    assert result.diff == pytest.approx(0.375)
    assert result.ci_low <= result.diff <= result.ci_high and result.level == 0.95
    # nonzero differences [1, 0.5], as in the sign-flip example above
    assert (result.p_greater, result.p_two_sided) == (0.25, 0.5)


def test_identical_policies_show_no_difference():
    scores = [1, 0, 0.5, 1, 0.25]
    result = compare(scores, list(scores))
    assert result.identical
    assert (result.diff, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert (result.p_greater, result.p_two_sided) == (1.0, 1.0)
    assert (result.improved, result.worsened) == (0, 0)
    binary = compare_binary([True, False, True], [True, False, True])
    assert binary.identical and (binary.b, binary.c) == (0, 0)
    assert (binary.mcnemar_p, binary.mcnemar_p_greater, binary.p_greater) == (1.0, 1.0, 1.0)


def test_compare_refuses_unpaired_or_empty_or_unscaled_scores():
    with pytest.raises(ValueError, match="new has 3 scores and old has 2: .* same problems"):
        compare([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="new has 2 scores and old has 3"):
        compare_binary([True, False], [True, False, True])
    with pytest.raises(ValueError, match="no problems to compare"):
        compare([], [])
    with pytest.raises(ValueError, match=r"old\[1\] = 3.0 is not a score in \[0, 1\]"):
        compare([1, 1], [1, 3])
    with pytest.raises(ValueError, match=r"new\[0\] must be a pass/fail boolean"):
        compare_binary(["yes"], [True])


def test_compare_binary_counts_discordant_problems_and_matches_mcnemar():
    # 8 gained, 1 lost, 6 passed by both, 5 failed by both
    new = [True] * 8 + [False] + [True] * 6 + [False] * 5
    old = [False] * 8 + [True] + [True] * 6 + [False] * 5
    result = compare_binary(new, old, resamples=2000)
    assert isinstance(result, BinaryComparison) and isinstance(result, Comparison)
    assert (result.b, result.c, result.improved, result.worsened) == (8, 1, 8, 1)
    assert result.mcnemar_p == pytest.approx(0.0390625)
    assert result.mcnemar_p_greater == pytest.approx(10 / 512)
    # on ±1/0 differences the exact sign-flip test is McNemar's binomial test
    assert result.p_two_sided == pytest.approx(result.mcnemar_p)
    assert result.p_greater == pytest.approx(result.mcnemar_p_greater)
    assert (result.new_mean, result.old_mean) == (14 / 20, 7 / 20)
    assert result.ci_low > 0  # 8 gained against 1 lost: the interval excludes no change
    # stored as JSON in a report and read back unchanged
    assert BinaryComparison.model_validate(result.model_dump(mode="json")) == result


# ---------------------------------------------------------------------------------------------
# Balance score
# ---------------------------------------------------------------------------------------------


def test_balance_score_hand_example():
    # per problem min(n'/n*, 1) · n'/n with n* = 4:
    #   2 of 4 correct: 0.5 · 0.5 = 0.25;  8 of 8: 1 · 1 = 1;  nothing selected: 0;
    #   5 of 10: 1 · 0.5 = 0.5   → mean 1.75 / 4
    assert balance_score([4, 8, 0, 10], [2, 8, 0, 5], n_star=4) == pytest.approx(0.4375)


def test_balance_score_rewards_enough_correct_samples_and_punishes_wrong_ones():
    assert balance_score([8, 8], [8, 8]) == 1.0  # default n* = 8, all correct
    assert balance_score([2, 2], [2, 2]) == pytest.approx(0.25)  # correct but too few
    assert balance_score([16, 16], [8, 8]) == pytest.approx(0.5)  # enough but half wrong
    assert balance_score([0, 0], [0, 0]) == 0.0


def test_balance_score_refuses_more_correct_than_selected():
    with pytest.raises(ValueError, match="problem 1: 5 correct among 3 selected"):
        balance_score([4, 3], [1, 5])
    with pytest.raises(ValueError, match="selected has 2 counts and correct has 1"):
        balance_score([4, 3], [1])
    with pytest.raises(ValueError, match="no problems"):
        balance_score([], [])


# ---------------------------------------------------------------------------------------------
# AUC
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scores,labels,expected", [
    ([0.9, 0.8, 0.3, 0.1], [True, False, True, False], 0.75),  # 3 of 4 pairs ordered right
    ([0.9, 0.7, 0.2, 0.1], [True, True, False, False], 1.0),
    ([0.1, 0.2, 0.7, 0.9], [True, True, False, False], 0.0),
    ([0.5, 0.5, 0.5], [True, False, False], 0.5),  # all tied: chance
    ([1.0, 0.5, 0.5, 0.0], [True, True, False, False], 0.875),  # one tied pair counts 1/2
])
def test_auc_hand_examples(scores, labels, expected):
    assert auc(scores, labels) == pytest.approx(expected)


def test_auc_is_the_pairwise_win_rate():
    rng = random.Random(5)
    scores = [rng.choice([0, 0.25, 0.5, 0.75, 1]) for _ in range(60)]  # many ties
    labels = [rng.random() < 0.4 for _ in range(60)]
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    assert auc(scores, labels) == pytest.approx(wins / (len(pos) * len(neg)))


def test_auc_without_one_class_is_none():
    assert auc([0.3, 0.9], [True, True]) is None
    assert auc([0.3, 0.9], [False, False]) is None
    assert auc([], []) is None
    with pytest.raises(ValueError, match="2 scores and 1 labels"):
        auc([0.3, 0.9], [True])
