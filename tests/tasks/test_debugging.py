"""Which failing first tries self-debug spends its turns on (tasks/debugging.py `choose_chains`),
and how a cycle's budget is split among its debug tasks: pure functions of the verdicts."""

import pytest

from tasks.debugging import budget_shares, choose_chains
from tasks.records import Attempt
from tasks.schema import DebugConfig


def attempt(problem: str, sample: int, passed: int, total: int = 4) -> Attempt:
    return Attempt(id=f"{problem}/A/plain/s{sample}/t0", problem_id=problem, cycle=1, agent="A",
                   specialist="plain", sample=sample, turn=0, policy_id="p", prompt="",
                   response="", code="",
                   status="passed" if passed == total else "failed", passed=passed, total=total)


# unsolved: every first try fails; solved: one passes, one near miss (3/4), one far (1/4)
FIRST = ([attempt("unsolved", i, p) for i, p in enumerate([0, 1, 2, 0])]
         + [attempt("solved", 0, 4), attempt("solved", 1, 3), attempt("solved", 2, 1)]
         + [attempt("other", i, 0) for i in range(2)])
FAILING = [a for a in FIRST if not a.ok]


def ids(chains):
    return [a.id for a in chains]


def test_chains_go_to_unsolved_problems_and_near_misses_each_problems_first_chain_first():
    chains, skipped = choose_chains(FIRST, FAILING, DebugConfig(per_problem=2, near_miss=0.5))
    # round 1: each problem's best failure, unsolved problems first (by reward), then the near
    # miss of the solved one; round 2: each unsolved problem's second best
    assert ids(chains) == ["unsolved/A/plain/s2/t0", "other/A/plain/s0/t0",
                           "solved/A/plain/s1/t0",
                           "unsolved/A/plain/s1/t0", "other/A/plain/s1/t0"]
    assert skipped == {"solved_not_near_miss": 1, "over_per_problem": 2, "over_budget": 0}


@pytest.mark.parametrize("near_miss, solved_chains", [(None, 0), (0.5, 1), (0.0, 2)])
def test_near_miss_decides_which_failures_of_a_solved_problem_are_debugged(near_miss,
                                                                           solved_chains):
    chains, skipped = choose_chains(FIRST, FAILING, DebugConfig(per_problem=None,
                                                                near_miss=near_miss))
    assert sum(a.problem_id == "solved" for a in chains) == solved_chains
    assert skipped["solved_not_near_miss"] == 2 - solved_chains
    assert len(chains) == 6 + solved_chains  # every failure of the unsolved problems


def test_every_failure_without_limits():
    chains, skipped = choose_chains(FIRST, FAILING, DebugConfig(per_problem=None, near_miss=0.0))
    assert sorted(ids(chains)) == sorted(ids(FAILING)) and not any(skipped.values())


@pytest.mark.parametrize("budget, tasks, shares", [
    (None, 3, [None, None, None]), (256, 2, [128, 128]), (10, 3, [4, 3, 3]), (1, 2, [1, 0]),
    (0, 2, [0, 0])])
def test_a_cycles_budget_is_split_evenly_among_its_debug_tasks(budget, tasks, shares):
    assert budget_shares(budget, tasks) == shares
    if budget is not None:
        assert sum(shares) == budget


def test_the_run_id_changes_with_how_self_debug_chooses_and_not_when_it_is_off():
    from tasks.config import load_config
    from tasks.schema import DEBUG_BEFORE_BUDGET

    before = [f"debug.{k}={'null' if v is None else str(v).lower()}"
              for k, v in DEBUG_BEFORE_BUDGET.items()]
    # the old behaviour spelled out is the configuration as it was before the keys existed;
    # the new rules are another configuration
    assert load_config("tiny", before).hash() != load_config("tiny").hash()
    assert load_config("tiny", before + ["debug.budget=7"]).hash() != \
        load_config("tiny", before).hash()
    off = ["debug.max_turns=0"]
    assert load_config("tiny", off).hash() == load_config("tiny", off + ["debug.budget=7",
                                                                         "debug.near_miss=0.9"]
                                                          ).hash()
