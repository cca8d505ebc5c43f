"""Sampling: a policy's agents and specialists write candidates for every problem.

Takes: the training problems, a policy (a `Policy` record), the agents that sample with it and
every specialist from `sampling`, and retrieved examples from memory (few-shot context, one list
per problem).
Gives: `Attempt`s at turn 0, not yet executed: the exact rendered prompt, the response the program
came from, and the program itself.

One engine per policy: the policy is loaded once (`sampling.backend`, see tasks/engines.py) and the
prompts of all its agents x specialists go through it together, so the continuous-batching engine
keeps its batch full. Seeds are derived from the agent's seed, the specialist and the cycle, so a
re-run writes the same candidates and two agents on the same policy write different ones.

Run alone (tiny model, four MBPP problems):

    python -m tasks.sampling --config tiny
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from prefect import task
from prefect.runtime import task_run

from tasks.caching import cached
from tasks.engines import open_backend, record_engine
from tasks.execution import ENGINE_RETRIES
from tasks.generation import Backend, Settings, extract, render
from tasks.policy import Policy
from tasks.problems.records import Problem
from tasks.progress import Progress
from tasks.records import (Attempt, CycleContext, Shard, attempt_id, digest, shard_suffix,
                           write_rows)
from tasks.schema import AgentConfig, MemoryConfig, SamplingConfig, SpecialistConfig


def seed_for(agent: AgentConfig, specialist: str, run_id: str, cycle: int, turn: int = 0) -> int:
    """A deterministic seed per (agent, specialist, run, cycle, turn): 31 bits of a hash. The run
    id holds the day of a nightly run, so every night samples anew while a resumed run samples
    the same candidates again."""
    return int(digest("seed", agent.seed, specialist, run_id, cycle, turn), 16) % (2 ** 31)


def settings_for(cfg: SamplingConfig, temperature: float, n: int, seed: int,
                 style: str = "completion") -> Settings:
    """Generation settings of one specialist's prompts: every answer stops where it is complete
    (a body at its first stop sequence, a chat answer at its closing fence)."""
    return Settings(temperature=temperature, n=n, max_new_tokens=cfg.max_new_tokens,
                    top_p=cfg.top_p, seed=seed, batch_size=cfg.batch_size,
                    stop_early=True, style=style)


def sample(problems: Sequence[Problem], backend: Backend, tokenizer, policy_id: str,
           agents: Sequence[AgentConfig], specialists: Sequence[SpecialistConfig],
           cfg: SamplingConfig, cycle: int,
           examples: Sequence[Sequence[str]] | None = None, run_id: str = "",
           progress: Progress | None = None) -> list[Attempt]:
    """`cfg.samples_per_specialist` candidates per problem from every (agent, specialist), all
    generated in one call to the backend.

    `examples[i]` are the retrieved memories shown with problem i (none when `examples` is None,
    and never to a specialist with `retrieval: false`). `progress` counts the prompts done
    (default: a "sample" progress of its own, tasks/progress.py).
    """
    if examples is not None and len(examples) != len(problems):
        raise ValueError(f"{len(examples)} example lists for {len(problems)} problems: retrieval "
                         "must return one list per problem (possibly empty)")
    jobs, prompts, settings = [], [], []
    for agent in agents:
        for specialist in specialists:
            style = specialist.prompt_style
            each = settings_for(cfg, specialist.temperature, cfg.samples_per_specialist,
                                seed_for(agent, specialist.name, run_id, cycle), style)
            shown = examples if specialist.retrieval else None
            for i, problem in enumerate(problems):
                jobs.append((agent, specialist, problem))
                prompts.append(render(problem.prompt, style, specialist.system_prompt, tokenizer,
                                      examples=shown[i] if shown is not None else ()))
                settings.append(each)
    if progress is None:
        with Progress("sample", len(prompts), "prompts") as own:
            completions = backend.generate(prompts, settings, progress=own)
    else:
        completions = backend.generate(prompts, settings, progress=progress)
    attempts = []
    for (agent, specialist, problem), prompt, outs in zip(jobs, prompts, completions):
        for k, text in enumerate(outs):
            response, code = extract(problem.prompt, text, problem.entry_point,
                                     specialist.prompt_style)
            attempts.append(Attempt(
                id=attempt_id(problem.id, agent.name, specialist.name, k, 0),
                problem_id=problem.id, cycle=cycle, agent=agent.name,
                specialist=specialist.name, sample=k, turn=0, policy_id=policy_id,
                prompt=prompt, response=response, code=code))
    return attempts


def run_name(stage: str) -> Callable[[], str]:
    """A task run name saying which policy, agents and specialists the run serves."""
    def name() -> str:
        args = task_run.parameters
        agents = "+".join(a.name for a in args["agents"])
        specialists = "+".join(s.name for s in args["specialists"])
        shard = shard_suffix(args["problems"])
        return f"{stage}[policy={args['policy'].id[:8]}, agents={agents}, " \
               f"specialists={specialists}" + (f", shard={shard[1:]}]" if shard else "]")
    return name


# ----------------------------------------------------------------------------------------------
# Prefect task: reads problems and memory from the run store, writes attempts there


@task(name="sample", task_run_name=run_name("sample"), **ENGINE_RETRIES, **cached())
def sample_task(ctx: CycleContext, problems: Shard, policy: Policy, agents: list[AgentConfig],
                specialists: list[SpecialistConfig], sampling: SamplingConfig,
                memory: MemoryConfig, held_out_ids: tuple[str, ...]) -> Shard:
    """Candidates of every (agent, specialist) on one policy for every training problem, with
    retrieved examples from memory as of `ctx.memory_version` (what the previous cycle
    consolidated), never of a held-out problem. The policy is loaded once."""
    rows = problems.read(Problem)
    examples = None
    if memory.enabled and memory.top_k > 0 and ctx.memory_version > 0:
        from tasks.memory import Memory

        examples = Memory(ctx.memory_dir, memory.embedder).retrieve(
            [p.prompt for p in rows], memory.top_k, version=ctx.memory_version,
            exclude_problem_ids=[p.id for p in rows], never=held_out_ids)
    backend = open_backend(policy, sampling.backend, ctx.dtype, ctx.device)
    attempts = sample(rows, backend, backend.tokenizer, policy.id, agents, specialists, sampling,
                      ctx.cycle, examples, ctx.draw_key)
    name = "+".join(a.name for a in agents) + shard_suffix(problems)
    record_engine(backend, Path(ctx.stage_dir("sample")) / f"{name}.engine.json")
    return write_rows(Path(ctx.stage_dir("sample")) / f"{name}.jsonl", attempts)


def main(argv: list[str] | None = None) -> None:
    import argparse

    from tasks.config import load_config
    from tasks.policy import base_policy
    from tasks.problems.records import select
    from tasks.problems.split import load_suite

    parser = argparse.ArgumentParser(description="sample candidates with every agent x "
                                                 "specialist (no memory, cycle 1)")
    parser.add_argument("--config", default="tiny")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    problems = select(load_suite(cfg.problems.train), cfg.problems.train_n,
                      cfg.problems.train_seed)
    policy = base_policy(cfg.policy.base)
    backend = open_backend(policy, cfg.sampling.backend, cfg.policy.dtype, cfg.policy.device)
    for a in sample(problems, backend, backend.tokenizer, policy.id, cfg.sampling.agents,
                    cfg.sampling.specialists, cfg.sampling, 1):
        print(f"--- {a.id}\n{a.code}")


if __name__ == "__main__":
    main()
