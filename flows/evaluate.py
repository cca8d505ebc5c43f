"""Evaluate any policy on any suite: `autodidact evaluate`, or the `evaluate` deployment.

The policy is `policy.base` plus the adapters given (oldest first), e.g. the adapter a cycle wrote
to `<store>/<run>/cycle-<n>/train/<inputs hash>/adapter` (its path is also in the cycle's
`summary.json`, under `trained.adapters`). `split="test"` evaluates on `problems.test` (or the
suite given); `split="dev"` on the run's dev problems (`problems.dev`, `dev_n`, `dev_seed`, minus
near-duplicates of test, as a run draws them). The result (and every judged candidate) goes to
`<store>/evaluations/<policy id>-<problems hash>/`, and the task is content-keyed like the
cycle's: evaluating the same policy on the same problems twice is served from the cache.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from tasks.config import load_config
from tasks.evaluation import EvalResult, evaluate_task
from tasks.policy import base_policy
from tasks.problems.records import select
from tasks.problems.split import load_suite, split_problems
from tasks.problems.examples import show_examples
from tasks.records import digest, write_rows
from tasks.schema import evaluation_style


@flow(name="evaluate")
def evaluate_flow(config: str = "default", overrides: list[str] | None = None,
                  adapters: list[str] | None = None, suite: str | None = None,
                  n: int | None = None, split: str = "test") -> EvalResult:
    log = get_run_logger()
    cfg = load_config(config, tuple(overrides or ()))
    policy = base_policy(cfg.policy.base)
    for adapter in adapters or ():
        if not (Path(adapter) / "adapter_config.json").exists():
            raise FileNotFoundError(f"{adapter} is not a LoRA adapter directory (no "
                                    "adapter_config.json): give the adapter directory a "
                                    "cycle's training wrote (summary.json: trained.adapters)")
        policy = policy.with_adapter(Path(adapter).resolve())
    if split not in ("dev", "test"):
        raise ValueError(f"split {split!r}: use 'dev' or 'test'")
    if split == "dev":
        from tasks.memory import Embedder

        if suite is not None:
            raise ValueError("--suite applies to the test split; the dev split is the run's "
                             "(problems.dev, dev_n, dev_seed)")
        embed = Embedder(cfg.memory.embedder).embed if cfg.problems.near_duplicate else None
        suite = cfg.problems.dev
        problems = split_problems(cfg.problems, embed).dev[:n]
    else:
        suite = suite or cfg.problems.test
        problems = select(load_suite(suite), n or cfg.problems.test_n, cfg.problems.test_seed)
        if cfg.problems.show_example:  # MBPP shows its first case here as in a run
            problems = show_examples(problems)[0]
    store = cfg.run.store_dir()
    # one directory per policy, problems (their text: with or without examples) and format
    key = digest([p.model_dump(mode="json") for p in problems],
                 evaluation_style(cfg.evaluation, cfg.sampling))
    where = store / "evaluations" / f"{policy.id}-{key[:8]}"
    shard = write_rows(where / "problems.jsonl", problems)
    log.info("evaluating policy %s on %d problems of %s", policy.id, len(problems), suite)
    result = evaluate_task.with_options(result_storage=store / ".results")(
        policy, shard, suite, split, cfg.evaluation, cfg.sampling, cfg.sandbox, cfg.policy.dtype,
        str(where))
    log.info("greedy pass@1 %.3f, sampled pass@1 %s %s", result.pass1_greedy,
             "-" if result.pass1_sampled is None else f"{result.pass1_sampled:.3f}",
             " ".join(f"pass@{k} {v:.3f}" for k, v in result.pass_at_k.items()))
    return result
