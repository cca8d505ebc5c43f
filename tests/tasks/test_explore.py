"""B-STaR monitoring from hand-made verdicts, and the temperature choice of the sweep."""

import pytest

from tasks.explore import monitor, scaled
from tasks.records import Attempt, attempt_id
from tasks.schema import ExploreConfig, SpecialistConfig


def att(problem, sample, *, passed, total=3, held=1, held_passed=None, code=None, turn=0):
    """An executed attempt with `held` of its `total` cases held out of feedback."""
    held_passed = held_passed if held_passed is not None else (held if passed == total else 0)
    return Attempt(
        id=attempt_id(problem, "A", "plain", sample, turn), problem_id=problem, cycle=1,
        agent="A", specialist="plain", sample=sample, turn=turn, policy_id="p",
        prompt=f"def {problem}():\n", response="", code=code or f"return {sample}",
        status="passed" if passed == total else "failed", passed=passed, total=total,
        held_out_passed=held_passed, held_out_total=held)


def test_monitoring_counts_exploration_and_exploitation_by_hand():
    rows = [
        # p1: two distinct passing programs, one that passes only what it was shown
        att("p1", 0, passed=3, code="return 1"), att("p1", 1, passed=3, code="return  1 "),
        att("p1", 2, passed=3, code="return 2"), att("p1", 3, passed=2, held_passed=0),
        # p2: nothing passes; one passes the visible cases and fails the held-out one
        att("p2", 0, passed=2, held_passed=0), att("p2", 1, passed=0), att("p2", 2, passed=1),
        att("p2", 3, passed=0),
    ]
    m = monitor(rows, n_star=2)
    assert m.problems == 2 and m.candidates_per_problem == 4
    assert m.pass_at_k[1] == pytest.approx((3 / 4 + 0) / 2)
    assert m.pass_at_k[4] == pytest.approx(0.5)
    assert m.distinct_passing == pytest.approx((2 + 0) / 2)  # "return  1 " is "return 1"
    # selected: every visible case passes (p1: 4, p2: 1); correct among them: p1 3, p2 0
    assert (m.selected, m.selected_correct) == (5, 3)
    assert m.precision == pytest.approx(3 / 5)
    assert m.balance == pytest.approx((min(3 / 2, 1) * 3 / 4 + 0) / 2)
    # visible reward vs held-out correctness: correct ones all have visible reward 1, and so do
    # the two that fail their held-out case, which the reward cannot tell apart
    assert 0.5 < m.reward_auc < 1


def test_reward_discrimination_is_none_without_both_outcomes():
    m = monitor([att("p", 0, passed=3), att("p", 1, passed=3)])
    assert m.reward_auc is None and m.precision == 1.0


def test_temperatures_scale_within_the_bounds():
    cfg = ExploreConfig(scales=[0.5, 2.0], min_temperature=0.3, max_temperature=1.2)
    specs = [SpecialistConfig(name="a", temperature=0.4, system_prompt=""),
             SpecialistConfig(name="b", temperature=0.9, system_prompt="Be careful.")]
    assert [s.temperature for s in scaled(specs, 0.5, cfg)] == [0.3, 0.45]
    assert [s.temperature for s in scaled(specs, 2.0, cfg)] == [0.8, 1.2]
    assert [s.system_prompt for s in scaled(specs, 2.0, cfg)] == ["", "Be careful."]


def test_explore_bounds_and_scales_are_checked():
    with pytest.raises(ValueError, match="must be > 0"):
        ExploreConfig(scales=[0.0, 1.0])
    with pytest.raises(ValueError, match="below min_temperature"):
        ExploreConfig(min_temperature=1.0, max_temperature=0.5)
    assert ExploreConfig(scales=[1.25, 0.75, 1.25]).scales == [0.75, 1.25]


def test_a_debug_fix_is_rewarded_on_the_held_out_cases_only():
    # shown the failing call, the fix special-cases it: every visible case passes now, the
    # held-out one still fails; its reward counts only the case it never saw
    fix = att("p", 0, passed=2, held=1, held_passed=0, turn=1)
    assert (fix.reward, fix.visible_reward, fix.ok) == (0.0, 1.0, False)
    first = att("p", 0, passed=2, held=1, held_passed=0)
    assert first.reward == pytest.approx(2 / 3)  # a first try saw nothing: all cases count


def test_training_metrics_are_averaged_over_the_epoch():
    from tasks.training import epoch_means

    logs = [{"loss": 1.0, "rewards/accuracies": 0.0, "rewards/margins": -0.1},
            {"loss": 0.8, "rewards/accuracies": 0.5, "rewards/margins": 0.1},
            {"loss": 0.6, "rewards/accuracies": 1.0, "rewards/margins": 0.6},
            {"train_runtime": 12.0}]
    means = epoch_means(logs)
    assert means["mean_rewards_accuracies"] == pytest.approx(0.5)  # not the last step's 1.0
    assert means["mean_rewards_margins"] == pytest.approx(0.2)
