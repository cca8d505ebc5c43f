"""Sampling, execution and self-debug on the tiny models, with the real sandbox.

`toy` (tests/conftest.py) is a tiny model taught a right and a wrong answer to a few one-line
problems, so that candidates pass and fail like a real policy's do.
"""

import pytest

from tasks.config import load_config
from tasks.problems.jsonl import load_jsonl
from tasks.schema import AgentConfig

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def world(toy):
    from tasks.engines import open_backend
    from tasks.policy import base_policy

    cfg = load_config(toy / "toy.yaml")
    problems = load_jsonl(toy / "train.jsonl")
    policy = base_policy(cfg.policy.base)
    return cfg, problems, policy, open_backend(policy, "hf", "float32")


def sample_all(cfg, problems, policy, backend):
    from tasks.sampling import sample

    return sample(problems, backend, backend.tokenizer, policy.id, cfg.sampling.agents,
                  cfg.sampling.specialists, cfg.sampling, cycle=1)


def test_sampling_gives_every_agent_and_specialist_its_candidates(world):
    cfg, problems, policy, backend = world
    attempts = sample_all(cfg, problems, policy, backend)
    agents, specialists = cfg.sampling.agents, cfg.sampling.specialists
    assert len(attempts) == len(problems) * len(agents) * len(specialists) \
        * cfg.sampling.samples_per_specialist
    assert len({a.id for a in attempts}) == len(attempts)
    for a in attempts:
        assert a.turn == 0 and a.status is None and a.policy_id == policy.id
        assert a.code.startswith(next(p.prompt for p in problems if p.id == a.problem_id))
        assert a.prompt.endswith(next(p.prompt for p in problems if p.id == a.problem_id))
    # the specialist's system prompt is in what the policy saw; "plain" sees exactly the
    # evaluation prompt: the problem as published
    creative = next(a for a in attempts if a.specialist == "creative")
    assert "creative Python programmer" in creative.prompt
    for a in attempts:
        if a.specialist == "plain":
            assert a.prompt == next(p.prompt for p in problems if p.id == a.problem_id)


def test_sampling_is_deterministic_and_the_agents_differ_by_seed(world):
    from tasks.sampling import sample

    cfg, problems, policy, backend = world
    spec = cfg.sampling.specialists[1]  # creative, temperature 0.7
    many = cfg.sampling.model_copy(update={"samples_per_specialist": 4})
    a = sample(problems, backend, backend.tokenizer, policy.id, cfg.sampling.agents[:1], [spec],
               many, 1)
    again = sample(problems, backend, backend.tokenizer, policy.id, cfg.sampling.agents[:1],
                   [spec], many, 1)
    other = sample(problems, backend, backend.tokenizer, policy.id,
                   [AgentConfig(name="Z", policy="current", seed=99)], [spec], many, 1)
    assert [x.response for x in a] == [x.response for x in again]
    assert [x.response for x in a] != [x.response for x in other]
    # another run (another night) samples anew
    night = sample(problems, backend, backend.tokenizer, policy.id, cfg.sampling.agents[:1],
                   [spec], many, 1, run_id="tiny-20261123-abcd")
    assert [x.response for x in a] != [x.response for x in night]
    # in one batch with every other agent x specialist, the same candidates
    together = sample(problems, backend, backend.tokenizer, policy.id, cfg.sampling.agents,
                      cfg.sampling.specialists, many, 1)
    mine = [x for x in together if x.agent == cfg.sampling.agents[0].name
            and x.specialist == spec.name]
    assert [(x.id, x.response) for x in mine] == [(x.id, x.response) for x in a]


def test_retrieved_examples_are_rendered_into_the_prompt(world):
    from tasks.sampling import sample

    cfg, problems, policy, backend = world
    examples = [[f"def helper_{i}():\n    return {i}\n"] for i in range(len(problems))]
    plain, creative = cfg.sampling.specialists
    attempts = sample(problems, backend, backend.tokenizer, policy.id, cfg.sampling.agents[:1],
                      [creative], cfg.sampling, 1, examples)
    for i, a in enumerate(attempts):
        assert f"def helper_{i}():" in a.prompt and f"helper_{i}" not in a.code
    # a specialist without retrieval writes in the evaluation format: no examples
    assert not plain.retrieval
    for a in sample(problems, backend, backend.tokenizer, policy.id, cfg.sampling.agents[:1],
                    [plain], cfg.sampling, 1, examples):
        assert "helper_" not in a.prompt
    with pytest.raises(ValueError, match="one list per problem"):
        sample(problems, backend, backend.tokenizer, policy.id, cfg.sampling.agents[:1],
               cfg.sampling.specialists[:1], cfg.sampling, 1, examples[:1])


def test_execution_attaches_verdicts_and_self_debug_chains_turns(world, sandbox):
    from tasks.debugging import self_debug
    from tasks.schema import DebugConfig
    from tasks.execution import judge, pass_rates

    cfg, problems, policy, backend = world
    by_id = {p.id: p for p in problems}
    executed = judge(sample_all(cfg, problems, policy, backend), by_id, sandbox, cfg.sandbox)
    assert all(a.executed for a in executed)
    assert all(a.total == 3 for a in executed if a.status in ("passed", "failed"))
    statuses = {a.status for a in executed}
    assert "passed" in statuses and statuses & {"failed", "error"}  # the taught model errs too
    for a in executed:
        assert a.reward == (a.passed / a.total if a.total else 0.0)

    agent, spec = cfg.sampling.agents[0], cfg.sampling.specialists[0]
    every = DebugConfig(max_turns=2, per_problem=None, near_miss=0.0, stop_at_fix=False,
                        budget=None)  # every failing first try, every turn
    fixes, report = self_debug(executed, by_id, backend, backend.tokenizer, policy.id, [agent],
                               [spec], cfg.sampling, cfg.sandbox, sandbox, every)
    failing = [a for a in executed if a.agent == agent.name and a.specialist == spec.name
               and not a.ok]
    assert {f.parent for f in fixes if f.turn == 1} == {a.id for a in failing}
    for fix in fixes:
        parent = next(a for a in executed + fixes if a.id == fix.parent)
        assert fix.turn == parent.turn + 1 and fix.executed
        assert parent.code.strip() in fix.prompt  # the failed program is shown...
        assert parent.feedback.splitlines()[0] in fix.prompt  # ...with what the sandbox said
        assert not parent.ok  # only failing attempts are debugged
    # turn 2 only for chains still failing after turn 1
    assert {f.parent for f in fixes if f.turn == 2} == {f.id for f in fixes
                                                        if f.turn == 1 and not f.ok}
    table = pass_rates(executed + fixes)
    row = table[(agent.name, spec.name)]
    assert row["candidates"] == len(problems)
    assert row["passed_after_debug"] == row["passed_first"] + sum(
        1 for a in failing if any(f.ok for f in fixes if root_of(f, fixes) == a.id))
    assert (report.failing, report.chains, report.attempts) == (len(failing), len(failing),
                                                                len(fixes))
    assert report.fixes == sum(f.ok for f in fixes) and sum(report.per_turn) == len(fixes)

    # a budget of 2 fixes: the two chains that come first, one turn, the rest reported skipped
    if len(failing) > 2:
        budgeted = every.model_copy(update={"per_problem": None})
        fixes, report = self_debug(executed, by_id, backend, backend.tokenizer, policy.id,
                                   [agent], [spec], cfg.sampling, cfg.sandbox, sandbox, budgeted,
                                   budget=2)
        assert len(fixes) == report.attempts == 2 and report.per_turn == [2]
        assert report.skipped["over_budget"] == len(failing) - 2 and report.chains == 2


def root_of(fix, fixes):
    by_id = {f.id: f for f in fixes}
    while fix.parent in by_id:
        fix = by_id[fix.parent]
    return fix.parent


def test_feedback_never_shows_the_expected_value(world, sandbox):
    from tasks.execution import judge

    cfg, problems, policy, backend = world
    add = next(p for p in problems if p.id == "add")
    wrong = add.prompt + "    return a - b\n"
    from tasks.records import Attempt

    attempt = Attempt(id="add/x", problem_id="add", cycle=1, agent="A", specialist="s",
                      sample=0, turn=0, policy_id="p", prompt=add.prompt,
                      response="    return a - b\n", code=wrong)
    visible = cfg.sandbox.model_copy(update={"held_out": 0.0})  # every case may be described
    (judged,) = judge([attempt], {"add": add}, sandbox, visible)
    assert judged.status == "failed" and judged.passed == 1  # add(0, 0) == 0 still holds
    assert "add(2, 3) returned -1" in judged.feedback and "5" not in judged.feedback
    # with a third held out (the default), the verdict counts that case apart
    (judged,) = judge([attempt], {"add": add}, sandbox, cfg.sandbox)
    assert (judged.passed, judged.held_out_total) == (1, 1)
