"""Self-debug: a failing attempt is shown its own error and asked for a fix, up to K turns.

Takes: executed attempts of one (agent, specialist), the problems, the policy behind a backend and
an open sandbox; `debug.max_turns`.
Gives: new attempts, one per turn of each chain that had not passed yet: turn t's `parent` is
turn t-1, its `prompt` is the debug prompt (problem + failed code + feedback) exactly as the policy
saw it, and its verdict comes from the sandbox like any other.

The feedback is what the sandbox reports (exception, message, traceback tail, the failing call);
it never holds the expected value of a hidden test, so nothing about the tests leaks into the
prompt beyond what a programmer running them would see.

Run alone: see tests/tasks/test_debugging.py (tiny model, real sandbox).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from prefect import task

from sandbox import Sandbox
from tasks.caching import cached
from tasks.config import AgentConfig, SamplingConfig, SandboxConfig, SpecialistConfig
from tasks.execution import engine_failed, judge
from tasks.generation import Backend, extract, render
from tasks.problems import Problem
from tasks.policy import Policy
from tasks.records import Attempt, Shard, attempt_id, read_attempts, write_rows
from tasks.sampling import open_backend, seed_for, settings_for

NO_FEEDBACK = "The tests failed, with no further detail."


def debug_prompt(problem: Problem, failed: Attempt, specialist: SpecialistConfig,
                 tokenizer) -> str:
    """The prompt of a fix: the problem, the failed program and what the sandbox said."""
    return render(problem.prompt, specialist.prompt_style, specialist.system_prompt, tokenizer,
                  feedback=(failed.code, failed.feedback.strip() or NO_FEEDBACK))


def self_debug(attempts: Sequence[Attempt], problems: Mapping[str, Problem], backend: Backend,
               tokenizer, policy_id: str, agent: AgentConfig, specialist: SpecialistConfig,
               sampling: SamplingConfig, sandbox_cfg: SandboxConfig, box: Sandbox,
               max_turns: int) -> list[Attempt]:
    """Debug turns for this (agent, specialist)'s failing first tries; returns the new attempts."""
    mine = [a for a in attempts if a.agent == agent.name and a.specialist == specialist.name]
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
        prompts = [debug_prompt(problems[a.problem_id], a, specialist, tokenizer)
                   for a in frontier]
        settings = settings_for(sampling, specialist.temperature, 1,
                                seed_for(agent, specialist.name, frontier[0].cycle, turn),
                                specialist.prompt_style)
        outs = backend.generate(prompts, settings)
        fixes = []
        for failed, prompt, (text,) in zip(frontier, prompts, outs):
            problem = problems[failed.problem_id]
            response, code = extract(problem.prompt, text, problem.entry_point,
                                     specialist.prompt_style)
            fixes.append(Attempt(
                id=attempt_id(problem.id, agent.name, specialist.name, failed.sample, turn),
                problem_id=problem.id, cycle=failed.cycle, agent=agent.name,
                specialist=specialist.name, sample=failed.sample, turn=turn, parent=failed.id,
                policy_id=policy_id, prompt=prompt,
                response=response, code=code))
        judged = judge(fixes, problems, box, sandbox_cfg)
        new.extend(judged)
        frontier = [a for a in judged if not a.ok]
    return new


# ----------------------------------------------------------------------------------------------
# Prefect task


@task(name="debug", task_run_name="debug[agent={agent.name}, specialist={specialist.name}]",
      retries=1, retry_delay_seconds=5, retry_condition_fn=engine_failed, **cached())
def debug_task(executed: Shard, problems: Shard, policy: Policy, agent: AgentConfig,
               specialist: SpecialistConfig, sampling: SamplingConfig, sandbox: SandboxConfig,
               max_turns: int, dtype: str, out_dir: str) -> Shard:
    """Self-debug turns of one (agent, specialist): the model loads once, one sandbox judges
    every turn."""
    attempts = read_attempts([executed])
    rows = {p.id: p for p in problems.read(Problem)}
    failing = [a for a in attempts if a.agent == agent.name and a.specialist == specialist.name
               and not a.ok]
    fixes: list[Attempt] = []
    if failing and max_turns > 0:
        backend = open_backend(policy, dtype)
        with sandbox.open() as box:
            fixes = self_debug(attempts, rows, backend, backend.tokenizer, policy.id, agent,
                               specialist, sampling, sandbox, box, max_turns)
    return write_rows(Path(out_dir) / f"{agent.name}-{specialist.name}.jsonl", fixes)
