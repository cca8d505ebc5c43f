"""Self-debug: a failing attempt is shown its own error and asked for a fix, up to K turns.

Takes: executed attempts, the problems, the agents of one policy and every specialist, the policy
behind a backend and an open sandbox; `debug.max_turns`. Each turn sends the failing attempts of
all those agents x specialists to the engine together.
Gives: new attempts, one per turn of each chain that had not passed yet: turn t's `parent` is
turn t-1, its `prompt` is the debug prompt (problem + failed code + feedback) exactly as the policy
saw it, and its verdict comes from the sandbox like any other.

The feedback is what the sandbox reports (exception, message, traceback tail, the failing call);
it never holds the expected value of a hidden test, so nothing about the tests leaks into the
prompt beyond what a programmer running them would see.

Run alone: see tests/tasks/test_stages.py (tiny model, real sandbox).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from prefect import task

from sandbox import Sandbox
from tasks.caching import cached
from tasks.engines import open_backend
from tasks.execution import ENGINE_RETRIES, judge, open_sandbox
from tasks.generation import Backend, extract, render
from tasks.policy import Policy
from tasks.problems.records import Problem
from tasks.records import (Attempt, CycleContext, Shard, attempt_id, read_attempts, write_rows,
                           shard_suffix)
from tasks.sampling import run_name, seed_for, settings_for
from tasks.schema import AgentConfig, SamplingConfig, SandboxConfig, SpecialistConfig

NO_FEEDBACK = "The tests failed, with no further detail."


def debug_prompt(problem: Problem, failed: Attempt, specialist: SpecialistConfig,
                 tokenizer) -> str:
    """The prompt of a fix: the problem, the failed answer and what the sandbox said. In chat
    style it is the conversation: the failed answer as the model wrote it is the assistant's
    turn, the feedback the next user turn (in chat_body style the answer is the whole failed
    program, the block the model completed); in completion style the failed program is shown as
    a comment above the problem."""
    style = specialist.prompt_style
    shown = failed.response if style == "chat" and failed.response.strip() else failed.code
    return render(problem.prompt, style, specialist.system_prompt, tokenizer,
                  feedback=(shown, failed.feedback.strip() or NO_FEEDBACK))


def self_debug(attempts: Sequence[Attempt], problems: Mapping[str, Problem], backend: Backend,
               tokenizer, policy_id: str, agents: Sequence[AgentConfig],
               specialists: Sequence[SpecialistConfig], sampling: SamplingConfig,
               sandbox_cfg: SandboxConfig, box: Sandbox, max_turns: int,
               run_id: str = "") -> list[Attempt]:
    """Debug turns for the failing first tries of these agents x specialists; returns the new
    attempts."""
    agent_of = {a.name: a for a in agents}
    specialist_of = {s.name: s for s in specialists}
    mine = [a for a in attempts if a.agent in agent_of and a.specialist in specialist_of]
    unexecuted = [a.id for a in mine if not a.executed]
    if unexecuted:
        raise ValueError(f"{len(unexecuted)} attempts have no verdict yet (e.g. {unexecuted[0]}):"
                         " execute them before self-debug")
    # the newest turn of every chain that has not passed
    frontier = [a for a in mine if a.turn == 0 and not a.ok]
    new: list[Attempt] = []
    for turn in range(1, max_turns + 1):
        if not frontier:
            break
        prompts, settings = [], []
        for failed in frontier:
            agent, specialist = agent_of[failed.agent], specialist_of[failed.specialist]
            prompts.append(debug_prompt(problems[failed.problem_id], failed, specialist,
                                        tokenizer))
            settings.append(settings_for(sampling, specialist.temperature, 1,
                                         seed_for(agent, specialist.name, run_id, failed.cycle,
                                                  turn),
                                         specialist.prompt_style))
        outs = backend.generate(prompts, settings)
        fixes = []
        for failed, prompt, (text,) in zip(frontier, prompts, outs):
            problem = problems[failed.problem_id]
            style = specialist_of[failed.specialist].prompt_style
            response, code = extract(problem.prompt, text, problem.entry_point, style)
            fixes.append(Attempt(
                id=attempt_id(problem.id, failed.agent, failed.specialist, failed.sample, turn),
                problem_id=problem.id, cycle=failed.cycle, agent=failed.agent,
                specialist=failed.specialist, sample=failed.sample, turn=turn, parent=failed.id,
                policy_id=policy_id, prompt=prompt,
                response=response, code=code))
        judged = judge(fixes, problems, box, sandbox_cfg)
        new.extend(judged)
        frontier = [a for a in judged if not a.ok]
    return new


# ----------------------------------------------------------------------------------------------
# Prefect task


@task(name="debug", task_run_name=run_name("debug"), **ENGINE_RETRIES, **cached())
def debug_task(ctx: CycleContext, executed: Shard, problems: Shard, policy: Policy,
               agents: list[AgentConfig], specialists: list[SpecialistConfig],
               sampling: SamplingConfig, sandbox: SandboxConfig, max_turns: int) -> Shard:
    """Self-debug turns of one policy's agents x specialists: the model loads once, one sandbox
    judges every turn."""
    attempts = read_attempts([executed])
    rows = {p.id: p for p in problems.read(Problem)}
    names = {a.name for a in agents}
    failing = [a for a in attempts if a.agent in names and not a.ok]
    fixes: list[Attempt] = []
    if failing and max_turns > 0:
        backend = open_backend(policy, sampling.backend, ctx.dtype)
        with open_sandbox(sandbox) as box:
            fixes = self_debug(attempts, rows, backend, backend.tokenizer, policy.id, agents,
                               specialists, sampling, sandbox, box, max_turns, ctx.draw_key)
    name = "+".join(a.name for a in agents) + shard_suffix(problems)
    return write_rows(Path(ctx.stage_dir("debug")) / f"{name}.jsonl", fixes)
