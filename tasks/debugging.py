"""Self-debug: a failing attempt is shown its own error and asked for a fix, up to K turns.

Takes: executed attempts, the problems, the agents of one policy and every specialist, the policy
behind a backend and an open sandbox; the `debug` section and this task's share of the cycle's
budget. Each turn sends the frontier of all those agents x specialists to the engine together.
Gives: new attempts, one per turn of each chain that had not passed yet: turn t's `parent` is
turn t-1, its `prompt` is the debug prompt (problem + failed code + feedback) exactly as the policy
saw it, and its verdict comes from the sandbox like any other; and a `DebugReport` of what was
spent and skipped.

Debug turns go where a fix creates training signal the first tries do not already give
(`choose_chains`): every failure of a problem no first try passed (a fix gives it its first
chosen program) and near misses of solved problems (`debug.near_miss`), at most
`debug.per_problem` chains a problem, a problem's chains ending at its first passing fix
(`debug.stop_at_fix`), and at most `debug.budget` fixes a cycle. Measured before this budget, on
the default cycle: 21 fixes of 2,267 attempts in 51 minutes, two thirds of the cycle.

The feedback is what the sandbox reports (exception, message, traceback tail, the failing call);
it never holds the expected value of a hidden test, so nothing about the tests leaks into the
prompt beyond what a programmer running them would see.

Run alone: see tests/tasks/test_stages.py (tiny model, real sandbox).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping, Sequence

from prefect import get_run_logger, task
from pydantic import BaseModel, ConfigDict

from sandbox import Sandbox
from tasks.caching import cached
from tasks.engines import open_backend, record_engine
from tasks.execution import ENGINE_RETRIES, judge, open_sandbox
from tasks.generation import Backend, extract, render
from tasks.policy import Policy
from tasks.problems.records import Problem
from tasks.progress import Progress
from tasks.records import (Attempt, CycleContext, Shard, attempt_id, read_attempts,
                           shard_suffix, write_json, write_rows)
from tasks.sampling import run_name, seed_for, settings_for
from tasks.schema import (AgentConfig, DebugConfig, SamplingConfig, SandboxConfig,
                          SpecialistConfig)

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


class DebugReport(BaseModel):
    """What one self-debug task spent and what it bought (`debug/<agents><shard>.report.json`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    failing: int  # failing first tries of these agents
    chains: int  # of them, debugged (turn 1 generated)
    skipped: dict[str, int]  # failing first tries not debugged, per reason (SKIP_REASONS)
    attempts: int  # fixes generated, all turns
    per_turn: list[int]  # fixes generated in each turn that ran
    fixes: int  # fixes that passed
    problems_fixed: int  # problems with a passing fix
    first_chosen: int  # of those, problems no first try had passed: their only chosen
    budget: int | None  # the attempts this stage could spend (None: no limit)
    stopped_at_fix: int  # chains ended because another chain of their problem passed
    cut_by_budget: int  # chains ended after turn 1 because the budget was spent
    seconds: dict[str, float]  # generation, judging
    settings: dict  # the debug settings it ran with


SKIP_REASONS = ("solved_not_near_miss", "over_per_problem", "over_budget")


def budget_shares(budget: int | None, tasks: int) -> list[int | None]:
    """The cycle's `debug.budget` split evenly among its `tasks` debug tasks (the first ones get
    the remainder); None each when there is no limit."""
    if budget is None:
        return [None] * tasks
    return [budget // tasks + (1 if i < budget % tasks else 0) for i in range(tasks)]


def choose_chains(attempts: Sequence[Attempt], failing: Sequence[Attempt], cfg: DebugConfig
                  ) -> tuple[list[Attempt], dict[str, int]]:
    """The failing first tries worth a debug chain, in the order the budget takes them, and the
    others counted per reason.

    Worth one: every failure of a problem no first try passed (a fix gives it its first chosen),
    and on a problem some first try passed, a near miss (reward ≥ `debug.near_miss`; a fix then
    adds a distinct correct program and a pair against a nearly right one). At most
    `debug.per_problem` chains a problem, its highest-reward failures. Order: every problem's
    first chain before any second one; within a round, unsolved problems first, then higher
    reward, then id, so a short budget spreads over problems."""
    solved = {a.problem_id for a in attempts if a.turn == 0 and a.ok}
    skipped = {reason: 0 for reason in SKIP_REASONS}
    eligible = []
    for a in failing:
        if a.problem_id in solved and (cfg.near_miss is None or a.reward < cfg.near_miss):
            skipped["solved_not_near_miss"] += 1
        else:
            eligible.append(a)
    eligible.sort(key=lambda a: (-a.reward, a.id))
    round_of: dict[str, int] = {}
    ranked = []
    for a in eligible:
        n = round_of.get(a.problem_id, 0)
        if cfg.per_problem is not None and n >= cfg.per_problem:
            skipped["over_per_problem"] += 1
            continue
        round_of[a.problem_id] = n + 1
        ranked.append((n, a.problem_id in solved, -a.reward, a.id, a))
    return [entry[-1] for entry in sorted(ranked, key=lambda e: e[:4])], skipped


def self_debug(attempts: Sequence[Attempt], problems: Mapping[str, Problem], backend: Backend,
               tokenizer, policy_id: str, agents: Sequence[AgentConfig],
               specialists: Sequence[SpecialistConfig], sampling: SamplingConfig,
               sandbox_cfg: SandboxConfig, box: Sandbox, debug: DebugConfig,
               run_id: str = "", budget: int | None = None
               ) -> tuple[list[Attempt], DebugReport]:
    """Debug turns for the failing first tries of these agents x specialists that
    `choose_chains` picks, at most `debug.max_turns` a chain and `budget` fixes in all; the
    new attempts and what they cost. Each turn generates the frontier in one batch; with
    `debug.stop_at_fix` a problem's chains end once one of them passed."""
    agent_of = {a.name: a for a in agents}
    specialist_of = {s.name: s for s in specialists}
    mine = [a for a in attempts if a.agent in agent_of and a.specialist in specialist_of]
    unexecuted = [a.id for a in mine if not a.executed]
    if unexecuted:
        raise ValueError(f"{len(unexecuted)} attempts have no verdict yet (e.g. {unexecuted[0]}):"
                         " execute them before self-debug")
    failing = [a for a in mine if a.turn == 0 and not a.ok]
    # the newest turn of every chain that has not passed, in the order the budget takes them
    frontier, skipped = choose_chains(attempts, failing, debug)
    solved = {a.problem_id for a in attempts if a.turn == 0 and a.ok}
    chains, remaining, stopped, cut = len(frontier), budget, 0, 0
    new: list[Attempt] = []
    per_turn: list[int] = []
    fixed: set[str] = set()
    seconds = {"generation": 0.0, "judging": 0.0}
    for turn in range(1, debug.max_turns + 1):
        if debug.stop_at_fix:
            stopped += sum(1 for a in frontier if a.problem_id in fixed)
            frontier = [a for a in frontier if a.problem_id not in fixed]
        if remaining is not None and len(frontier) > remaining:
            if turn == 1:
                skipped["over_budget"] += len(frontier) - remaining
                chains = remaining
            else:
                cut += len(frontier) - remaining
            frontier = frontier[:remaining]
        if not frontier:
            break
        if remaining is not None:
            remaining -= len(frontier)
        prompts, settings = [], []
        for failed in frontier:
            agent, specialist = agent_of[failed.agent], specialist_of[failed.specialist]
            prompts.append(debug_prompt(problems[failed.problem_id], failed, specialist,
                                        tokenizer))
            settings.append(settings_for(sampling, specialist.temperature, 1,
                                         seed_for(agent, specialist.name, run_id, failed.cycle,
                                                  turn),
                                         specialist.prompt_style))
        started = time.monotonic()
        with Progress(f"debug turn {turn} of {debug.max_turns}", len(prompts),
                      "prompts") as progress:
            outs = backend.generate(prompts, settings, progress=progress)
        seconds["generation"] += time.monotonic() - started
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
        started = time.monotonic()
        with Progress(f"debug turn {turn} of {debug.max_turns} judge", len(fixes),
                      "candidates") as progress:
            judged = judge(fixes, problems, box, sandbox_cfg, progress)
        seconds["judging"] += time.monotonic() - started
        new.extend(judged)
        per_turn.append(len(judged))
        fixed |= {a.problem_id for a in judged if a.ok}
        frontier = [a for a in judged if not a.ok]
    report = DebugReport(
        failing=len(failing), chains=chains if per_turn else 0, skipped=skipped,
        attempts=len(new), per_turn=per_turn, fixes=sum(a.ok for a in new),
        problems_fixed=len(fixed), first_chosen=len(fixed - solved), budget=budget,
        stopped_at_fix=stopped, cut_by_budget=cut,
        seconds={k: round(v, 2) for k, v in seconds.items()},
        settings=debug.model_dump(mode="json"))
    return new, report


# ----------------------------------------------------------------------------------------------
# Prefect task


@task(name="debug", task_run_name=run_name("debug"), **ENGINE_RETRIES, **cached())
def debug_task(ctx: CycleContext, executed: Shard, problems: Shard, policy: Policy,
               agents: list[AgentConfig], specialists: list[SpecialistConfig],
               sampling: SamplingConfig, sandbox: SandboxConfig, debug: DebugConfig,
               budget: int | None = None) -> Shard:
    """Self-debug turns of one policy's agents x specialists: the model loads once (only when
    a chain is worth debugging), one sandbox judges every turn. Writes the fixes and, beside
    them, `<agents>.report.json` (`DebugReport`)."""
    attempts = read_attempts([executed])
    rows = {p.id: p for p in problems.read(Problem)}
    names = {a.name for a in agents}
    failing = [a for a in attempts if a.agent in names and a.turn == 0 and not a.ok]
    chosen, skipped = choose_chains(attempts, failing, debug)
    name = "+".join(a.name for a in agents) + shard_suffix(problems)
    out = Path(ctx.stage_dir("debug"))
    fixes: list[Attempt] = []
    if chosen and debug.max_turns > 0 and budget != 0:
        backend = open_backend(policy, sampling.backend, ctx.dtype, ctx.device)
        record_engine(backend, out / f"{name}.engine.json")
        with open_sandbox(sandbox) as box:
            fixes, report = self_debug(attempts, rows, backend, backend.tokenizer, policy.id,
                                       agents, specialists, sampling, sandbox, box, debug,
                                       ctx.draw_key, budget)
    else:
        if chosen and budget == 0:
            skipped["over_budget"] += len(chosen)
        report = DebugReport(failing=len(failing), chains=0, skipped=skipped, attempts=0,
                             per_turn=[], fixes=0, problems_fixed=0, first_chosen=0,
                             budget=budget, stopped_at_fix=0, cut_by_budget=0, seconds={},
                             settings=debug.model_dump(mode="json"))
    write_json(out / f"{name}.report.json", report.model_dump(mode="json"))
    minutes = sum(report.seconds.values()) / 60
    get_run_logger().info(
        f"self-debug {name}: {report.chains} chains of {report.failing} failing first tries "
        f"(skipped {', '.join(f'{k} {v}' for k, v in report.skipped.items() if v) or 'none'}); "
        f"{report.attempts} fixes generated in turns {report.per_turn}, {report.fixes} passed, "
        f"{report.problems_fixed} problems fixed ({report.first_chosen} had no passing first "
        f"try); {minutes:.1f} min"
        + (f", {report.fixes / minutes:.2f} fixes/min" if minutes > 0 else ""))
    return write_rows(out / f"{name}.jsonl", fixes)
