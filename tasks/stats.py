"""Stats: paired comparisons of two policies on the same problems, and the per-cycle numbers that
say whether self-training is working.

Takes: per-problem scores of two policies paired by position (fractions in [0, 1], or pass/fail
booleans), per-problem counts of selected and correct samples, reward scores with pass labels.
Gives: plain floats, and a `Comparison` (or `BinaryComparison`) that a promotion gate and a cycle
report can print or store as JSON:

- `mcnemar_exact`: exact McNemar test on the discordant pass/fail counts;
- `paired_bootstrap_ci`: percentile bootstrap confidence interval of a mean paired difference;
- `sign_flip_p`: paired permutation (random sign flip) test of a mean paired difference;
- `independent_bootstrap_ci`: bootstrap interval of a difference of two means on different
  problems (two runs with different held-out sets);
- `holm`: Holm's step-down adjustment of a family of p-values;
- `compare` / `compare_binary`: all of the above for two policies at once;
- `balance_score`: B-STaR's exploration/exploitation balance of a sampling round;
- `auc`: how well a reward separates passing from failing candidates.

Everything is stdlib only (math, random) and deterministic: resampling draws from
`random.Random(seed)`, so the same inputs and seed give the same numbers on every machine. The
unbiased pass@k estimator lives in `tasks.evaluation.pass_at_k`.

No CLI: import the functions, e.g. `compare_binary(new_greedy_passed, old_greedy_passed)`.
"""

from __future__ import annotations

import math
import random
from math import comb
from numbers import Integral, Real
from typing import Literal, Sequence

from pydantic import BaseModel, ConfigDict

Alternative = Literal["two-sided", "greater", "less"]
ALTERNATIVES = ("two-sided", "greater", "less")
MAX_EXACT = 16  # sign-flip tests enumerate all 2^m assignments up to this many nonzero diffs

# Sign-flip statistics are sums of floats added in different orders; a resampled sum equal to the
# observed one must count as "at least as extreme" despite rounding.
_REL_TOL = 1e-9


# ---------------------------------------------------------------------------------------------
# Tests on paired differences
# ---------------------------------------------------------------------------------------------


def mcnemar_exact(b: int, c: int, alternative: Alternative = "two-sided") -> float:
    """Exact McNemar p-value from the discordant counts of a paired pass/fail comparison.

    `b` counts problems the new policy passes and the old fails, `c` the reverse. Under "no
    difference" each discordant problem is equally likely to fall either way, so b ~ Binomial(b + c,
    1/2) (McNemar 1947, exact binomial form). `alternative`:

    - "two-sided": 2 × the smaller tail, capped at 1 (a difference in either direction);
    - "greater": P(X ≥ b), small when the new policy is better;
    - "less": P(X ≤ b), small when the new policy is worse.

    No discordant problem (b + c == 0) gives 1.0: the data say nothing either way.
    """
    for name, value in (("b", b), ("c", c)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
            raise ValueError(f"McNemar needs counts of discordant problems, integers ≥ 0; got "
                             f"{name}={value!r}")
    _check_alternative(alternative)
    b, c = int(b), int(c)  # numpy integers would overflow in 2 ** n
    n = b + c
    if n == 0:
        return 1.0
    total = 2 ** n  # exact integer arithmetic: int / int below is correctly rounded
    lower = sum(comb(n, i) for i in range(b + 1)) / total  # P(X ≤ b)
    upper = sum(comb(n, i) for i in range(b, n + 1)) / total  # P(X ≥ b)
    if alternative == "greater":
        return upper
    if alternative == "less":
        return lower
    return min(1.0, 2.0 * min(lower, upper))


def paired_bootstrap_ci(diffs: Sequence[float], level: float = 0.95, resamples: int = 10000,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval (Efron 1979) of the mean of per-problem paired
    differences (new − old, one per problem).

    Problems are resampled with replacement `resamples` times; the interval holds the middle
    `level` of the resampled means (quantiles by linear interpolation). It describes how much the
    mean difference moves with the choice of problems, not with sampling noise within a problem.
    """
    values = _finite(diffs, "diffs")
    if not values:
        raise ValueError("no paired differences: give one new − old difference per problem")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level is a confidence level strictly between 0 and 1 (e.g. 0.95); "
                         f"got {level!r}")
    _check_resamples(resamples)
    n = len(values)
    rng = random.Random(seed)
    means = sorted(math.fsum(rng.choices(values, k=n)) / n for _ in range(resamples))
    tail = (1.0 - level) / 2.0
    return _quantile(means, tail), _quantile(means, 1.0 - tail)


def sign_flip_p(diffs: Sequence[float], resamples: int = 10000, seed: int = 0,
                alternative: Alternative = "greater", max_exact: int = MAX_EXACT) -> float:
    """Paired permutation test (random sign flip, Fisher/Pitman) of the mean paired difference.

    Under "no difference" each problem's difference is as likely to be +d as −d. The p-value is
    the share of sign assignments whose mean difference is at least as extreme as the observed one:
    "greater" (new better: mean ≥ observed), "less" (mean ≤ observed), "two-sided"
    (|mean| ≥ |observed|). Zero differences contribute nothing to any assignment and are left out.

    With at most `max_exact` nonzero differences every one of the 2^m assignments is enumerated
    and the p-value is exact; beyond, `resamples` random assignments are drawn and the p-value is
    (count + 1) / (resamples + 1) (Phipson & Smyth 2010), never 0. All differences zero gives 1.0.
    """
    values = _finite(diffs, "diffs")
    _check_alternative(alternative)
    _check_resamples(resamples)
    if isinstance(max_exact, bool) or not isinstance(max_exact, Integral) or max_exact < 0:
        raise ValueError(f"max_exact is a number of differences ≥ 0; got {max_exact}")
    counts = _sign_flip_counts(values, resamples, seed, max_exact)
    return _sign_flip_p(counts, alternative)


def independent_bootstrap_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95,
                             resamples: int = 10000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of mean(a) − mean(b) when `a` and `b` come from
    different problems and cannot be paired (e.g. the per-problem gains of two runs whose
    held-out sets differ): each is resampled with replacement on its own, `resamples` times."""
    a_v, b_v = _finite(a, "a"), _finite(b, "b")
    if not a_v or not b_v:
        raise ValueError(f"a has {len(a_v)} values and b has {len(b_v)}: give at least one "
                         "value for each side")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level is a confidence level strictly between 0 and 1 (e.g. 0.95); "
                         f"got {level!r}")
    _check_resamples(resamples)
    rng = random.Random(seed)
    means = sorted(math.fsum(rng.choices(a_v, k=len(a_v))) / len(a_v)
                   - math.fsum(rng.choices(b_v, k=len(b_v))) / len(b_v)
                   for _ in range(resamples))
    tail = (1.0 - level) / 2.0
    return _quantile(means, tail), _quantile(means, 1.0 - tail)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (Holm 1979) of a family of m p-values, in the input order.

    With the p-values sorted, p(1) ≤ … ≤ p(m), the i-th smallest becomes
    max_{j ≤ i} min(1, (m − j + 1) · p(j)): the smallest is multiplied by m, the next by m − 1,
    and so on, each at least as large as the one before (monotone) and at most 1. Rejecting
    every hypothesis whose adjusted p is below α controls the family-wise error rate at α under
    any dependence between the tests (endpoints on overlapping problem sets are dependent).
    Tied p-values get the same adjusted value.
    """
    values = _finite(pvalues, "pvalues")
    for i, v in enumerate(values):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"pvalues[{i}] = {v!r} is not a p-value in [0, 1]")
    m = len(values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=values.__getitem__)):
        running = max(running, min(1.0, (m - rank) * values[i]))
        adjusted[i] = running
    return adjusted


# ---------------------------------------------------------------------------------------------
# Two policies, problem by problem
# ---------------------------------------------------------------------------------------------


class Comparison(BaseModel):
    """A new policy against an old one on the same problems; differences are new − old."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n: int  # problems compared
    new_mean: float  # mean per-problem score of the new policy
    old_mean: float
    diff: float  # new_mean − old_mean: the mean paired difference
    ci_low: float  # percentile bootstrap interval of `diff` at confidence `level`
    ci_high: float
    level: float
    p_greater: float  # sign-flip p-value of "new is better"; small is evidence for it
    p_two_sided: float  # sign-flip p-value of "they differ", either way
    identical: bool  # every per-problem difference is 0
    improved: int  # problems where the new policy scores higher
    worsened: int  # problems where it scores lower


class BinaryComparison(Comparison):
    """A `Comparison` of pass/fail outcomes, with the exact McNemar test on the discordant pairs.
    Here `improved` == `b` and `worsened` == `c`."""

    b: int  # problems the new policy passes and the old fails
    c: int  # problems the old policy passes and the new fails
    mcnemar_p: float  # two-sided exact McNemar p-value
    mcnemar_p_greater: float  # one-sided: small when the new policy is better


def compare(new: Sequence[float], old: Sequence[float], *, level: float = 0.95,
            resamples: int = 10000, seed: int = 0) -> Comparison:
    """Compare per-problem scores in [0, 1] (pass@1, pass@k, fraction of tests passed) of two
    policies, paired by position: `new[i]` and `old[i]` are the same problem."""
    new_v = _scores(new, "new")
    old_v = _scores(old, "old")
    if len(new_v) != len(old_v):
        raise ValueError(f"new has {len(new_v)} scores and old has {len(old_v)}: compare the two "
                         f"policies on the same problems, one score per problem, in the same order")
    if not new_v:
        raise ValueError("no problems to compare: give one score per problem for each policy")
    n = len(new_v)
    diffs = [a - b for a, b in zip(new_v, old_v)]
    ci_low, ci_high = paired_bootstrap_ci(diffs, level, resamples, seed)
    counts = _sign_flip_counts(diffs, resamples, seed, MAX_EXACT)
    new_mean, old_mean = math.fsum(new_v) / n, math.fsum(old_v) / n
    return Comparison(
        n=n, new_mean=new_mean, old_mean=old_mean, diff=math.fsum(diffs) / n,
        ci_low=ci_low, ci_high=ci_high, level=level,
        p_greater=_sign_flip_p(counts, "greater"), p_two_sided=_sign_flip_p(counts, "two-sided"),
        identical=all(d == 0 for d in diffs), improved=sum(d > 0 for d in diffs),
        worsened=sum(d < 0 for d in diffs))


def compare_binary(new: Sequence[bool], old: Sequence[bool], *, level: float = 0.95,
                   resamples: int = 10000, seed: int = 0) -> BinaryComparison:
    """Compare pass/fail outcomes (e.g. greedy pass@1) of two policies, paired by position; adds
    the exact McNemar test to `compare`."""
    new_b = _booleans(new, "new")
    old_b = _booleans(old, "old")
    base = compare([float(x) for x in new_b], [float(x) for x in old_b], level=level,
                   resamples=resamples, seed=seed)
    b = sum(x and not y for x, y in zip(new_b, old_b))
    c = sum(y and not x for x, y in zip(new_b, old_b))
    return BinaryComparison(**base.model_dump(), b=b, c=c,
                            mcnemar_p=mcnemar_exact(b, c, "two-sided"),
                            mcnemar_p_greater=mcnemar_exact(b, c, "greater"))


# ---------------------------------------------------------------------------------------------
# Per-cycle health
# ---------------------------------------------------------------------------------------------


def balance_score(selected: Sequence[int], correct: Sequence[int], n_star: int = 8) -> float:
    """B-STaR balance score (Zeng et al. 2024, https://arxiv.org/abs/2412.17256) of one sampling
    round: mean over problems of min(n'_i / n*, 1) · n'_i / n_i, where n_i samples of problem i
    were selected for training and n'_i of them are correct.

    The first factor rewards exploration (enough distinct correct samples, up to `n_star`), the
    second exploitation (little wrong data among the selected). 1.0 means every problem got at
    least `n_star` selected samples and all were correct; a problem with nothing selected counts 0.
    """
    if len(selected) != len(correct):
        raise ValueError(f"selected has {len(selected)} counts and correct has {len(correct)}: "
                         f"give both counts for every problem, in the same order")
    if not selected:
        raise ValueError("no problems: give the selected and correct sample counts per problem")
    if isinstance(n_star, bool) or not isinstance(n_star, Integral) or n_star < 1:
        raise ValueError(f"n_star is the number of correct samples per problem that counts as "
                         f"enough, an integer ≥ 1; got {n_star!r}")
    total = 0.0
    for i, (n_i, good) in enumerate(zip(selected, correct)):
        for name, value in (("selected", n_i), ("correct", good)):
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
                raise ValueError(f"{name}[{i}] must be a sample count, an integer ≥ 0; "
                                 f"got {value!r}")
        if good > n_i:
            raise ValueError(f"problem {i}: {good} correct among {n_i} selected samples; correct "
                             f"counts only samples that were selected, so it is at most selected")
        if n_i:
            total += min(good / n_star, 1.0) * good / n_i
    return total / len(selected)


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Reward discrimination: the probability that a random positive (e.g. a passing candidate)
    scores above a random negative, ties counting 1/2 (area under the ROC curve, computed as the
    Mann–Whitney U statistic). 0.5 is chance, 1.0 perfect separation. None when either class is
    empty: there is nothing to separate.
    """
    values = _finite(scores, "scores")
    flags = _booleans(labels, "labels")
    if len(values) != len(flags):
        raise ValueError(f"{len(values)} scores and {len(flags)} labels: give one label per "
                         f"scored item, in the same order")
    positives = sum(flags)
    negatives = len(flags) - positives
    if positives == 0 or negatives == 0:
        return None
    order = sorted(range(len(values)), key=values.__getitem__)
    rank_sum = 0.0  # sum of the positives' ranks (1-based), ties sharing their average rank
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        average_rank = (i + j) / 2 + 1
        rank_sum += average_rank * sum(flags[order[t]] for t in range(i, j + 1))
        i = j + 1
    u = rank_sum - positives * (positives + 1) / 2
    return u / (positives * negatives)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _sign_flip_counts(diffs: list[float], resamples: int, seed: int,
                      max_exact: int) -> tuple[int, int, int, int, bool]:
    """Counts of sign assignments at least as extreme as the observed sum, as (greater, less,
    two-sided, assignments, exact). Zero differences are dropped; none left gives p = 1."""
    nonzero = [d for d in diffs if d != 0]
    m = len(nonzero)
    if m == 0:
        return 1, 1, 1, 1, True
    observed = math.fsum(nonzero)
    tol = _REL_TOL * max(1.0, math.fsum(abs(d) for d in nonzero))
    if m <= max_exact:
        sums = [0.0]
        for d in nonzero:  # every subset of signs, by doubling: 2^m sums
            sums = [s + d for s in sums] + [s - d for s in sums]
        assignments = len(sums)
    else:
        rng = random.Random(seed)
        total = observed
        sums = []
        for _ in range(resamples):
            bits = rng.getrandbits(m)
            kept = math.fsum(d for k, d in enumerate(nonzero) if bits >> k & 1)
            sums.append(2.0 * kept - total)  # kept with +, the rest flipped to −
        assignments = resamples
    greater = sum(s >= observed - tol for s in sums)
    less = sum(s <= observed + tol for s in sums)
    both = sum(abs(s) >= abs(observed) - tol for s in sums)
    return greater, less, both, assignments, m <= max_exact


def _sign_flip_p(counts: tuple[int, int, int, int, bool], alternative: Alternative) -> float:
    greater, less, both, assignments, exact = counts
    count = {"greater": greater, "less": less, "two-sided": both}[alternative]
    if exact:
        return count / assignments
    return (count + 1) / (assignments + 1)


def _quantile(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted values, interpolating linearly between neighbours."""
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _finite(values: Sequence[float], name: str) -> list[float]:
    out = []
    for i, v in enumerate(values):
        if not isinstance(v, Real) or not math.isfinite(v):
            raise ValueError(f"{name}[{i}] must be a finite number; got {v!r}")
        out.append(float(v))
    return out


def _scores(values: Sequence[float], name: str) -> list[float]:
    out = _finite(values, name)
    for i, v in enumerate(out):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name}[{i}] = {v!r} is not a score in [0, 1]: give per-problem "
                             f"fractions (passed / total), not counts")
    return out


def _booleans(values: Sequence[bool], name: str) -> list[bool]:
    out = []
    for i, v in enumerate(values):
        if isinstance(v, str) or v not in (0, 1):
            raise ValueError(f"{name}[{i}] must be a pass/fail boolean; got {v!r}")
        out.append(bool(v))
    return out


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {', '.join(ALTERNATIVES)}; "
                         f"got {alternative!r}")


def _check_resamples(resamples: int) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, Integral) or resamples < 1:
        raise ValueError(f"resamples is a number of random draws, an integer ≥ 1 (10000 is "
                         f"usual); got {resamples!r}")
