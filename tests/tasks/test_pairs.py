"""Pair mining picks the right chosen and rejected from hand-made verdicts, drops what carries no
signal with a counted reason, and round-trips through `datasets` with exactly the trainer's
columns."""

import json
import random

import pytest

from tasks.schema import PairsConfig
from tasks.pairs import (
    PAIR_COLUMNS,
    Pair,
    load_pair_dataset,
    main,
    mine_pairs,
    write_pairs,
)
from tasks.records import Attempt, attempt_id

# ---------------------------------------------------------------------------------------------
# Hand-made verdicts
# ---------------------------------------------------------------------------------------------


def att(problem="p1", specialist="logical", *, passed, total=4, response=None, sample=0,
        turn=0, parent=None, prompt=None, agent="A", status=None) -> Attempt:
    """An executed attempt; the response defaults to something unique to it."""
    response = response if response is not None else (
        f"    return {problem}_{specialist}_{sample}_{turn}_{passed}\n")
    return Attempt(
        id=attempt_id(problem, agent, specialist, sample, turn), problem_id=problem, cycle=1,
        agent=agent, specialist=specialist, sample=sample, turn=turn, parent=parent,
        policy_id="base",
        prompt=prompt if prompt is not None else f"[{specialist}] def {problem}():\n",
        response=response, code=f"def {problem}():\n{response}",
        status=status or ("passed" if passed == total else "failed"), passed=passed, total=total)


def cfg(**kw) -> PairsConfig:
    return PairsConfig(**kw)


def fix(parent: Attempt, sample=0, *, passed, response=None, prompt=None, total=4) -> Attempt:
    """A self-debug fix of `parent`, under the debug prompt of that parent (by default)."""
    return att(parent.problem_id, f"{parent.specialist}", passed=passed, total=total,
               response=response, sample=parent.sample * 10 + sample, turn=parent.turn + 1,
               parent=parent.id, agent=parent.agent,
               prompt=prompt if prompt is not None else f"fix this:\n{parent.code}\nfailed\n")


# ---------------------------------------------------------------------------------------------
# best_vs_worse
# ---------------------------------------------------------------------------------------------


def test_chosen_is_the_highest_reward_and_prompt_is_its_own():
    best = att(specialist="careful", passed=4)
    worse = att(specialist="creative", passed=1)
    mined = mine_pairs([worse, best], cfg())
    [pair] = mined.pairs
    assert (pair.chosen_id, pair.rejected_id) == (best.id, worse.id)
    assert pair.prompt == best.prompt  # not the rejected one's specialist prompt
    assert (pair.chosen, pair.rejected) == (best.response, worse.response)
    assert (pair.kind, pair.chosen_reward, pair.rejected_reward) == ("best_vs_worse", 1.0, 0.25)
    assert 0 <= pair.similarity <= 1
    assert mined.by_kind == {"best_vs_worse": 1, "debug": 0, "sft": 0}
    assert mined.dropped == {}


def test_with_chosen_length_shortest_ties_go_to_the_shorter_code():
    long = att(specialist="logical", passed=4, response="    x = 1\n    y = 2\n    return x + y\n")
    short = att(specialist="careful", passed=4, response="    return 3\n")
    failing = att(specialist="creative", passed=0)
    for attempts in ([long, short, failing], [short, long, failing]):
        [pair] = mine_pairs(attempts, cfg(max_pairs_per_problem=1,
                                          chosen_length="shortest")).pairs
        assert pair.chosen_id == short.id


def test_by_default_the_chosen_is_the_typical_length_not_the_shortest():
    """Three passing programs under one prompt, of 1, 3 and 4 lines: the chosen one is the
    3-line program (the median length), not the one-line shortcut, whatever the order; and the
    prompts with a signal take their turns in the same order of preference."""
    prompt = "def p1():\n"
    short = att(sample=0, passed=4, prompt=prompt, response="    return 3\n")
    typical = att(sample=1, passed=4, prompt=prompt,
                  response="    x = 1\n    y = 2\n    return x + y\n")
    long = att(sample=2, passed=4, prompt=prompt,
               response="    x = 1\n    y = 2\n    z = 0\n    return x + y + z\n")
    failing = att(sample=3, passed=1, prompt=prompt)
    for attempts in ([short, typical, long, failing], [failing, long, short, typical]):
        mined = mine_pairs(attempts, cfg(max_pairs_per_problem=1))
        [pair] = mined.pairs
        assert pair.chosen_id == typical.id
    # across prompts: the prompt whose chosen is nearest the problem's median length goes first
    other = "[other] def p1():\n"
    long_other = att(specialist="careful", sample=0, passed=4, prompt=other,
                     response="    a = 1\n    b = 2\n    c = 0\n    return a + b + c\n")
    failing_other = att(specialist="careful", sample=1, passed=0, prompt=other)
    [pair] = mine_pairs([long_other, failing_other, short, typical, long, failing],
                        cfg(max_pairs_per_problem=1)).pairs
    assert pair.chosen_id == typical.id


def test_a_failing_best_is_never_chosen():
    # rewards {0, 3/10}: the "best" fails, and the SFT term would imitate wrong code
    some = att(specialist="a", passed=3, total=10)
    none = att(specialist="b", passed=0, total=10)
    mined = mine_pairs([some, none], cfg())
    assert mined.pairs == []
    assert mined.dropped == {"no_passing_chosen": 1}
    # with a passing candidate, the partial-credit one is a rejected answer like any other
    full = att(specialist="c", passed=10, total=10)
    mined = mine_pairs([some, none, full], cfg(max_pairs_per_problem=5))
    assert {p.chosen_id for p in mined.pairs} == {full.id}
    assert all(p.chosen_reward == 1.0 for p in mined.pairs)


def test_the_rejected_answer_comes_from_the_chosen_prompt_when_one_exists():
    # two samples under each of two prompts; only prompt "b" has a pass and a fail together
    a_fail = att(specialist="a", sample=0, passed=0)
    a_part = att(specialist="a", sample=1, passed=2)
    b_pass = att(specialist="b", sample=0, passed=4)
    b_fail = att(specialist="b", sample=1, passed=1)
    mined = mine_pairs([a_fail, a_part, b_pass, b_fail], cfg(max_pairs_per_problem=1,
                                                              hard_negatives=False))
    [pair] = mined.pairs
    assert (pair.chosen_id, pair.rejected_id) == (b_pass.id, b_fail.id)
    assert pair.same_prompt and mined.cross_prompt == 0
    # the lowest reward (a_fail) would have been taken across prompts before this rule
    assert pair.rejected_reward == 0.25


def test_every_prompt_with_a_signal_contributes_before_any_contributes_twice():
    a_pass, a_fail = att(specialist="a", sample=0, passed=4), att(specialist="a", sample=1,
                                                                   passed=0)
    b_pass, b_fail = att(specialist="b", sample=0, passed=4), att(specialist="b", sample=1,
                                                                   passed=1)
    a_fail2 = att(specialist="a", sample=2, passed=2)
    pairs = mine_pairs([a_pass, a_fail, a_fail2, b_pass, b_fail],
                       cfg(max_pairs_per_problem=2)).pairs
    # one pair from each prompt, although prompt "a" alone has two worse candidates
    assert sorted(p.chosen_id for p in pairs) == [a_pass.id, b_pass.id]
    assert all(p.same_prompt for p in pairs)


def test_cross_prompt_fallbacks_are_marked_and_counted():
    best = att(specialist="careful", passed=4)
    worse = att(specialist="creative", passed=1)
    mined = mine_pairs([worse, best], cfg())
    [pair] = mined.pairs
    assert pair.same_prompt is False and mined.cross_prompt == 1


def test_pairs_longer_than_the_training_limit_are_dropped_with_a_reason():
    best = att(specialist="a", sample=0, passed=4, response="    return 1\n")
    short = att(specialist="a", sample=1, passed=0, response="    return 0\n")
    long = att(specialist="a", sample=2, passed=1, response="    x = 0\n" * 50 + "    return x\n")

    def fits(prompt: str, completion: str) -> bool:  # a character budget stands for tokens
        return len(prompt + completion) <= 60
    mined = mine_pairs([best, short, long], cfg(max_pairs_per_problem=5), fits)
    assert [p.rejected_id for p in mined.pairs] == [short.id]
    assert mined.dropped == {"over_max_length": 1}
    mined = mine_pairs([best, short], cfg(), lambda prompt, completion: False)
    assert mined.pairs == [] and mined.dropped == {"over_max_length": 1}


def test_the_token_budget_counts_prompt_completion_and_end_of_sequence():
    from tasks.pairs import token_budget

    class Tok:  # one token per character, as simple as a tokenizer gets
        eos_token = "$"

        def __call__(self, text):
            return {"input_ids": list(text)}
    fits = token_budget(Tok(), 10)
    assert fits("abcd", "efghi")  # 4 + 5 + 1 = 10
    assert not fits("abcd", "efghij")
    assert token_budget(Tok(), None) is None


def test_problems_without_signal_are_skipped_with_their_reason():
    attempts = [
        att("all_pass", "a", passed=4), att("all_pass", "b", passed=4),
        att("all_fail", "a", passed=0), att("all_fail", "b", passed=0, status="timeout"),
        att("partial", "a", passed=2), att("partial", "b", passed=1),
        att("good", "a", passed=4), att("good", "b", passed=0, status="syntax_error"),
    ]
    mined = mine_pairs(attempts, cfg())
    assert [p.problem_id for p in mined.pairs] == ["good"]
    assert mined.dropped == {"all_passed": 1, "all_failed": 1, "no_passing_chosen": 1}


def test_keep_sft_keeps_the_best_of_an_all_passed_problem():
    long = att(specialist="a", passed=4, response="    y = 1\n    return y\n")
    short = att(specialist="b", passed=4, response="    return 1\n")
    mined = mine_pairs([long, short], cfg(keep_sft=True))
    [row] = mined.pairs
    assert (row.kind, row.chosen_id, row.chosen, row.prompt) == ("sft", short.id, short.response,
                                                                 short.prompt)
    assert (row.rejected, row.rejected_id, row.similarity) == ("", None, None)
    assert mined.by_kind["sft"] == 1
    assert "all_passed" not in mined.dropped


def test_max_pairs_per_problem_caps_with_distinct_rejected_responses():
    best = att(specialist="a", passed=4)
    worse = [att(specialist="b", sample=i, passed=i) for i in range(3)]
    same_text = att(specialist="c", passed=0, response=worse[0].response)  # a duplicate negative
    mined = mine_pairs([best, *worse, same_text], cfg(max_pairs_per_problem=2,
                                                      hard_negatives=False))
    assert len(mined.pairs) == 2
    assert len({p.rejected for p in mined.pairs}) == 2
    # lowest rewards first without hard negatives; of two equal ones, the lower id
    assert sorted(p.rejected_reward for p in mined.pairs) == [0.0, 0.25]
    assert mined.dropped == {"duplicate_rejected": 1, "over_max_pairs_per_problem": 1}


def test_min_reward_gap_filters_close_candidates():
    best = att(specialist="a", passed=4)
    close = att(specialist="b", passed=3)  # 0.25 below
    half = att(specialist="c", passed=2)  # exactly 0.5 below: enough
    far = att(specialist="d", passed=0)
    mined = mine_pairs([best, close, half, far], cfg(min_reward_gap=0.5, max_pairs_per_problem=5))
    assert {p.rejected_id for p in mined.pairs} == {half.id, far.id}
    assert mined.dropped == {"below_reward_gap": 1}
    assert len(mine_pairs([best, close, half, far], cfg(max_pairs_per_problem=5)).pairs) == 3


def test_hard_negatives_prefer_code_like_the_chosen():
    body = "    total = 0\n    for x in xs:\n        total += x\n    return total\n"
    best = att(specialist="a", passed=4, response=body)
    near = att(specialist="b", passed=2, response=body.replace("total += x", "total -= x"))
    far = att(specialist="c", passed=0, response="    raise NotImplementedError\n")
    mined = mine_pairs([best, near, far], cfg(max_pairs_per_problem=1, hard_negatives=True))
    [pair] = mined.pairs
    assert pair.rejected_id == near.id
    assert pair.similarity > 0.9
    [pair] = mine_pairs([best, near, far], cfg(max_pairs_per_problem=1, hard_negatives=False)).pairs
    assert pair.rejected_id == far.id  # the lowest reward instead


def test_identical_responses_style_mismatch_and_empty_chosen_are_dropped():
    text = "    return 1\n"
    # two specialists wrote the same text; one of them crashed on the run (flaky test, timeout)
    same = [att("same", "a", passed=4, response=text), att("same", "b", passed=0, response=text,
                                                            status="timeout")]
    fenced = [att("style", "a", passed=4, response="```python\ndef f():\n    return 1\n```"),
              att("style", "b", passed=0, response="    return 2\n")]
    empty = [att("empty", "a", passed=4, response=""), att("empty", "b", passed=0)]
    mined = mine_pairs(same + fenced + empty, cfg())
    assert mined.pairs == []
    assert mined.dropped == {"identical_responses": 1, "style_mismatch": 1, "empty_chosen": 1}


# ---------------------------------------------------------------------------------------------
# debug pairs
# ---------------------------------------------------------------------------------------------


def test_debug_pairs_use_the_fix_prompt_passing_fix_over_failing_fix():
    first = att(specialist="a", passed=1)
    good = fix(first, 0, passed=4, response="    return good\n")
    bad = fix(first, 1, passed=2, response="    return bad\n")
    mined = mine_pairs([first, good, bad], cfg())
    [pair] = mined.pairs  # the first try alone gives no best_vs_worse pair (one candidate)
    assert pair.kind == "debug"
    assert pair.prompt == good.prompt and pair.prompt != first.prompt
    assert (pair.chosen_id, pair.rejected_id) == (good.id, bad.id)
    assert (pair.chosen, pair.rejected) == (good.response, bad.response)
    assert mined.by_kind == {"best_vs_worse": 0, "debug": 1, "sft": 0}


def test_debug_pairs_fall_back_to_the_failed_parent_response():
    first = att(specialist="a", passed=0)
    second = fix(first, passed=1)  # turn 1 fails
    third = fix(second, passed=4)  # turn 2 passes
    mined = mine_pairs([first, second, third], cfg())
    [pair] = mined.pairs
    assert (pair.chosen_id, pair.rejected_id) == (third.id, second.id)
    assert pair.prompt == third.prompt
    assert pair.rejected == second.response  # "repeat the broken code"
    assert pair.rejected_reward == 0.25
    # the turn-1 fix did not pass, so the first try's own fixes give nothing
    assert mined.dropped == {"all_failed": 1, "no_passing_fix": 1}


def test_debug_pairs_are_capped_per_parent_and_can_be_turned_off():
    first = att(specialist="a", passed=0)
    fixes = [fix(first, 0, passed=4)] + [fix(first, i, passed=i - 1) for i in range(1, 5)]
    mined = mine_pairs([first, *fixes], cfg(max_pairs_per_problem=2))
    assert [p.kind for p in mined.pairs] == ["debug", "debug"]
    assert mined.dropped["over_max_pairs_per_problem"] == 2
    assert mine_pairs([first, *fixes], cfg(debug_pairs=False)).by_kind["debug"] == 0


def test_failing_fixes_under_another_prompt_are_not_negatives():
    first = att(specialist="a", passed=0)
    good = fix(first, 0, passed=4)
    other = fix(first, 1, passed=0, prompt="a different debug prompt\n")
    mined = mine_pairs([first, good, other], cfg())
    assert mined.pairs == []
    assert mined.dropped == {"all_failed": 1, "prompt_mismatch": 1}


# ---------------------------------------------------------------------------------------------
# determinism and bad input
# ---------------------------------------------------------------------------------------------


def test_input_order_does_not_change_the_output():
    attempts = []
    for problem in ("p3", "p1", "p2"):
        attempts += [att(problem, s, sample=i, passed=(i * 3 + len(s)) % 5)
                     for s in ("logical", "creative") for i in range(3)]
    first = att("p4", "a", passed=0)
    attempts += [first, fix(first, 0, passed=4), fix(first, 1, passed=1)]
    expected = mine_pairs(attempts, cfg(max_pairs_per_problem=3))
    assert expected.pairs
    assert [p.problem_id for p in expected.pairs] == sorted(p.problem_id for p in expected.pairs)
    rng = random.Random(0)
    for _ in range(5):
        rng.shuffle(attempts)
        assert mine_pairs(attempts, cfg(max_pairs_per_problem=3)) == expected


def test_unexecuted_attempts_are_refused_by_name():
    pending = att(specialist="b", passed=0).model_copy(update={"status": None})
    with pytest.raises(ValueError, match=r"p1/A/b/s0/t0.*execute it first"):
        mine_pairs([att(specialist="a", passed=4), pending], cfg())


def test_fixes_whose_parent_is_missing_are_refused():
    first = att(specialist="a", passed=0)
    with pytest.raises(ValueError, match=r"not among the attempts.*every turn together"):
        mine_pairs([fix(first, passed=4)], cfg())
    assert mine_pairs([fix(first, passed=4)], cfg(debug_pairs=False)).pairs == []


def test_duplicate_attempt_ids_are_refused():
    a = att(specialist="a", passed=4)
    with pytest.raises(ValueError, match="appears twice"):
        mine_pairs([a, a], cfg())


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------


def _mixed() -> list[Attempt]:
    first = att("p2", "a", passed=0)
    return [att("p1", "a", passed=4), att("p1", "b", passed=1),
            first, fix(first, 0, passed=4), att("p2", "b", passed=0),
            att("p3", "a", passed=4), att("p3", "b", passed=4)]


def test_write_and_load_round_trip_with_exactly_the_pair_columns(tmp_path):
    mined = mine_pairs(_mixed(), cfg(keep_sft=True))
    assert mined.by_kind == {"best_vs_worse": 1, "debug": 1, "sft": 1}
    shard = write_pairs(mined.pairs, tmp_path / "pairs.jsonl")
    assert shard.rows == 3
    assert shard.read(Pair) == mined.pairs
    first_row = json.loads((tmp_path / "pairs.jsonl").read_text().splitlines()[0])
    assert tuple(first_row)[: len(PAIR_COLUMNS)] == PAIR_COLUMNS
    assert "chosen_id" in first_row

    data = load_pair_dataset(shard.path)
    assert tuple(data.column_names) == PAIR_COLUMNS
    assert sorted(data["kind"]) == ["best_vs_worse", "debug"]  # sft left out by default
    want = [p for p in mined.pairs if p.kind != "sft"]
    assert data["chosen"] == [p.chosen for p in want]
    assert data["rejected_reward"] == [p.rejected_reward for p in want]

    sft = load_pair_dataset(shard.path, kinds=("sft",))
    assert sft["rejected"] == [""] and tuple(sft.column_names) == PAIR_COLUMNS


def test_loading_a_file_without_pairs_says_why(tmp_path):
    only_sft = mine_pairs([att(specialist="a", passed=4)], cfg(keep_sft=True)).pairs
    write_pairs(only_sft, tmp_path / "sft.jsonl")
    with pytest.raises(ValueError, match=r"1 sft.*no pairs were mined.*all fail"):
        load_pair_dataset(tmp_path / "sft.jsonl")
    write_pairs([], tmp_path / "empty.jsonl")
    with pytest.raises(ValueError, match="no rows"):
        load_pair_dataset(tmp_path / "empty.jsonl")
    with pytest.raises(ValueError, match="subset"):
        load_pair_dataset(tmp_path / "sft.jsonl", kinds=("chosen_only",))


def test_run_alone_from_the_command_line(tmp_path, capsys):
    attempts = tmp_path / "attempts.jsonl"
    attempts.write_text("".join(a.model_dump_json() + "\n" for a in _mixed()))
    main([str(attempts), "--out", str(tmp_path / "pairs.jsonl"), "--set", "pairs.keep_sft=true"])
    out = capsys.readouterr().out
    assert "3 rows" in out and "sft=1" in out and "dropped: all_failed=1\n" in out
    assert len(load_pair_dataset(tmp_path / "pairs.jsonl")) == 2


def test_pairs_and_training_refuse_a_held_out_problem(tmp_path):
    """The leak guard of the two stages that turn attempts into training data."""
    from tasks.pairs import mine_pairs_task
    from tasks.policy import Policy
    from tasks.problems.leaks import LeakError
    from tasks.records import CycleContext, write_rows
    from tasks.schema import TrainingConfig
    from tasks.training import train_task

    ctx = CycleContext(run_id="r", run_dir=str(tmp_path), cycle=1, dtype="float32", seed=0,
                       memory_dir=str(tmp_path / "memory"), memory_version=0)
    attempts = [att("mbpp_9", "a", passed=4), att("mbpp_9", "b", passed=0)]
    shard = write_rows(tmp_path / "attempts.jsonl", attempts)
    with pytest.raises(LeakError, match="mbpp_9"):
        mine_pairs_task.fn(ctx, [shard], cfg(), "unused", None, ("mbpp_9",))
    mined = mine_pairs_task.fn(ctx, [shard], cfg(), "unused", None, ("HumanEval/0",))
    assert mined.trainable == 1
    policy = Policy(base=str(tmp_path), base_hash="0")
    with pytest.raises(LeakError, match="training data"):
        train_task.fn(ctx, mined.pairs, policy, TrainingConfig(), ("mbpp_9",), [])


# ---------------------------------------------------------------------------------------------
# Distinct chosen programs and the random-pair control
# ---------------------------------------------------------------------------------------------


def one_prompt(n_pass, n_fail, problem="p1", same_code=False):
    """n_pass passing and n_fail failing candidates of one prompt (as when every specialist
    writes in the evaluation format), each passing program its own unless `same_code`."""
    prompt = f"def {problem}():\n"
    passing = [att(problem, "plain", passed=4, sample=k, prompt=prompt,
                   response=("    return 1\n" if same_code else f"    return {k} + 1 - {k}\n"))
               for k in range(n_pass)]
    failing = [att(problem, "plain", passed=k % 4, sample=100 + k, prompt=prompt,
                   response=f"    return {k} - 1 - {k}  # wrong {k}\n") for k in range(n_fail)]
    return passing, failing


def test_up_to_distinct_chosen_programs_each_get_their_own_rejected():
    passing, failing = one_prompt(6, 6)
    mined = mine_pairs(passing + failing, cfg(distinct_chosen=4))
    assert len(mined.pairs) == 4  # max_pairs_per_problem follows distinct_chosen
    assert len({p.chosen for p in mined.pairs}) == 4
    assert len({p.rejected for p in mined.pairs}) == 4
    assert mined.distinct_chosen == 4
    assert all(p.same_prompt for p in mined.pairs)
    # one chosen program a prompt, as before the field existed
    one = mine_pairs(passing + failing, cfg(distinct_chosen=1))
    assert len({p.chosen for p in one.pairs}) == 1 and one.distinct_chosen == 1


def test_the_same_program_twice_is_one_chosen():
    passing, failing = one_prompt(5, 5, same_code=True)
    mined = mine_pairs(passing + failing, cfg(distinct_chosen=4, max_pairs_per_problem=4))
    assert mined.distinct_chosen == 1
    assert len({p.chosen_id for p in mined.pairs}) == 1  # its second pair has another rejected
    assert len(mined.pairs) == 4 and len({p.rejected for p in mined.pairs}) == 4


def test_a_chosen_program_is_not_left_out_for_want_of_an_unused_rejected():
    passing, failing = one_prompt(3, 1)
    mined = mine_pairs(passing + failing, cfg(distinct_chosen=4))
    assert len({p.chosen for p in mined.pairs}) == 3  # all three distinct correct programs
    assert {p.rejected_id for p in mined.pairs} == {failing[0].id}


def test_random_swap_swaps_a_seeded_half_and_changes_nothing_else():
    attempts = []
    for problem in ("p1", "p2", "p3", "p4", "p5"):
        passing, failing = one_prompt(2, 2, problem)
        attempts += passing + failing
    real = mine_pairs(attempts, cfg(distinct_chosen=2))
    control = mine_pairs(attempts, cfg(distinct_chosen=2, random_swap=True))
    assert len(real.pairs) == len(control.pairs) == 10
    assert control.swapped == 5 and sum(p.swapped for p in control.pairs) == 5
    for r, c in zip(real.pairs, control.pairs):
        assert c.prompt == r.prompt and c.problem_id == r.problem_id
        if c.swapped:
            assert (c.chosen, c.rejected) == (r.rejected, r.chosen)
            assert (c.chosen_reward, c.rejected_reward) == (r.rejected_reward, r.chosen_reward)
        else:
            assert c == r
    again = mine_pairs(attempts, cfg(distinct_chosen=2, random_swap=True))
    assert again.pairs == control.pairs  # the same pairs are swapped on a re-run
    other = mine_pairs(attempts, cfg(distinct_chosen=2, random_swap=True, swap_seed=1))
    assert [p.swapped for p in other.pairs] != [p.swapped for p in control.pairs]


def test_one_program_under_several_prompts_does_not_crowd_out_a_distinct_one():
    attempts = []
    for k, specialist in enumerate(("plain", "logical", "creative", "careful")):
        prompt = f"[{specialist}] def p1():\n"
        attempts += [att(specialist=specialist, passed=4, prompt=prompt, sample=0,
                         response="    return 1\n"),
                     att(specialist=specialist, passed=1, prompt=prompt, sample=1,
                         response=f"    return {k}  # wrong\n")]
    attempts.append(att(specialist="plain", passed=4, prompt="[plain] def p1():\n", sample=2,
                        response="    x = 1\n    return x\n"))
    mined = mine_pairs(attempts, cfg(distinct_chosen=4))
    assert len(mined.pairs) == 4 and mined.distinct_chosen == 2


def test_a_failed_verdict_with_every_case_passed_is_not_a_worse_answer():
    # the judge says "failed" when a statement after the last case raised: every case passed
    best = att(specialist="careful", passed=4)
    odd = att(specialist="careful", passed=4, status="failed", sample=1)  # beside the best
    worse = att(specialist="creative", passed=1)
    [pair] = mine_pairs([odd, best, worse], cfg()).pairs  # the cross-prompt fallback
    assert (pair.chosen_id, pair.rejected_id) == (best.id, worse.id)


def test_a_candidate_no_chosen_could_use_is_counted_once():
    passing, failing = one_prompt(4, 10)
    mined = mine_pairs(passing + failing, cfg(distinct_chosen=4))
    assert len(mined.pairs) == 4
    assert sum(mined.dropped.values()) == 10 - len({p.rejected_id for p in mined.pairs})
