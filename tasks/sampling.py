"""Sampling: one agent's specialist writes candidates for every problem.

Takes: the training problems, the agent's policy (a `Policy` record), one agent and one specialist
from `sampling`, and retrieved examples from memory (few-shot context, one list per problem).
Gives: `Attempt`s at turn 0, not yet executed: the exact rendered prompt, the response the program
came from, and the program itself.

The model is loaded once per call and every prompt goes through the backend in batches
(`sampling.batch_size` sequences per forward pass). Seeds are derived from the agent's seed, the
specialist and the cycle, so a re-run writes the same candidates and two agents on the same policy
write different ones.

Run alone (tiny model, four MBPP problems):

    python -m tasks.sampling --config tiny
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from prefect import task

from tasks.caching import cached
from tasks.config import AgentConfig, MemoryConfig, SamplingConfig, SpecialistConfig
from tasks.generation import Backend, HFBackend, Settings, extract, render
from tasks.policy import Policy, load_policy
from tasks.problems import Problem
from tasks.records import Attempt, Shard, attempt_id, digest, write_rows


def open_backend(policy: Policy, dtype: str) -> HFBackend:
    """The policy loaded once (adapters merged) behind the generation interface."""
    model, tokenizer = load_policy(policy, dtype=dtype, merge=True)
    return HFBackend(model, tokenizer)


def seed_for(agent: AgentConfig, specialist: str, cycle: int, turn: int = 0) -> int:
    """A deterministic seed per (agent, specialist, cycle, turn): 31 bits of a hash."""
    return int(digest("seed", agent.seed, specialist, cycle, turn), 16) % (2 ** 31)


def settings_for(cfg: SamplingConfig, temperature: float, n: int, seed: int,
                 style: str = "completion") -> Settings:
    return Settings(temperature=temperature, n=n, max_new_tokens=cfg.max_new_tokens,
                    top_p=cfg.top_p, seed=seed, batch_size=cfg.batch_size,
                    stop_early=style == "completion")


def sample(problems: Sequence[Problem], backend: Backend, tokenizer, policy_id: str,
           agent: AgentConfig, specialist: SpecialistConfig, cfg: SamplingConfig, cycle: int,
           examples: Sequence[Sequence[str]] | None = None) -> list[Attempt]:
    """`cfg.samples_per_specialist` candidates per problem from one (agent, specialist).

    `examples[i]` are the retrieved memories shown with problem i (none when `examples` is None).
    """
    if examples is not None and len(examples) != len(problems):
        raise ValueError(f"{len(examples)} example lists for {len(problems)} problems: retrieval "
                         "must return one list per problem (possibly empty)")
    style = specialist.prompt_style
    prompts = [render(p.prompt, style, specialist.system_prompt, tokenizer,
                      examples=examples[i] if examples is not None else ())
               for i, p in enumerate(problems)]
    settings = settings_for(cfg, specialist.temperature, cfg.samples_per_specialist,
                            seed_for(agent, specialist.name, cycle), style)
    completions = backend.generate(prompts, settings)
    attempts = []
    for problem, prompt, outs in zip(problems, prompts, completions):
        for k, text in enumerate(outs):
            response, code = extract(problem.prompt, text, problem.entry_point, style)
            attempts.append(Attempt(
                id=attempt_id(problem.id, agent.name, specialist.name, k, 0),
                problem_id=problem.id, cycle=cycle, agent=agent.name,
                specialist=specialist.name, sample=k, turn=0, policy_id=policy_id,
                prompt=prompt, response=response, code=code))
    return attempts


# ----------------------------------------------------------------------------------------------
# Prefect task: reads problems and memory from the run store, writes attempts there


@task(name="sample", task_run_name="sample[agent={agent.name}, specialist={specialist.name}]",
      **cached())
def sample_task(problems: Shard, policy: Policy, agent: AgentConfig,
                specialist: SpecialistConfig, sampling: SamplingConfig, memory: MemoryConfig,
                memory_dir: str, memory_version: int, dtype: str, cycle: int,
                out_dir: str) -> Shard:
    """Candidates of one (agent, specialist) for every training problem, with retrieved
    examples from memory as of `memory_version` (what the previous cycle consolidated)."""
    rows = problems.read(Problem)
    examples = None
    if memory.enabled and memory.top_k > 0 and memory_version > 0:
        from tasks.memory import Memory

        examples = Memory(memory_dir, memory.embedder).retrieve(
            [p.prompt for p in rows], memory.top_k, version=memory_version,
            exclude_problem_ids=[p.id for p in rows])
    backend = open_backend(policy, dtype)
    attempts = sample(rows, backend, backend.tokenizer, policy.id, agent, specialist, sampling,
                      cycle, examples)
    return write_rows(Path(out_dir) / f"{agent.name}-{specialist.name}.jsonl", attempts)


def main(argv: list[str] | None = None) -> None:
    import argparse

    from tasks.config import load_config
    from tasks.policy import base_policy
    from tasks.problems import load_suite, select

    parser = argparse.ArgumentParser(description="sample candidates with every agent x "
                                                 "specialist (no memory, cycle 1)")
    parser.add_argument("--config", default="tiny")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    problems = select(load_suite(cfg.problems.train), cfg.problems.train_n,
                      cfg.problems.train_seed)
    policy = base_policy(cfg.policy.base)
    backend = open_backend(policy, cfg.policy.dtype)
    for agent in cfg.sampling.agents:
        for specialist in cfg.sampling.specialists:
            for a in sample(problems, backend, backend.tokenizer, policy.id, agent, specialist,
                            cfg.sampling, 1):
                print(f"--- {a.id}\n{a.code}")


if __name__ == "__main__":
    main()
