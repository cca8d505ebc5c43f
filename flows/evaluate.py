"""Evaluate any policy on any suite: `autodidact evaluate`, or the `evaluate` deployment.

The policy is `policy.base` plus the adapters given (oldest first), e.g. the adapter a cycle wrote
to `<store>/<run>/cycle-<n>/train/<inputs hash>/adapter` (its path is also in the cycle's
`summary.json`, under `trained.adapters`). The suite is `problems.eval` unless one is given. The
result (and every judged candidate) goes to `<store>/evaluations/<policy id>-<problems hash>/`,
and the task is content-keyed like the cycle's: evaluating the same policy on the same problems
twice is served from the cache.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from tasks.config import load_config
from tasks.evaluation import EvalResult, evaluate_task
from tasks.policy import base_policy
from tasks.problems import load_suite, select
from tasks.records import digest, write_rows


@flow(name="evaluate")
def evaluate_flow(config: str = "default", overrides: list[str] | None = None,
                  adapters: list[str] | None = None, suite: str | None = None,
                  n: int | None = None) -> EvalResult:
    log = get_run_logger()
    cfg = load_config(config, tuple(overrides or ()))
    policy = base_policy(cfg.policy.base)
    for adapter in adapters or ():
        if not (Path(adapter) / "adapter_config.json").exists():
            raise FileNotFoundError(f"{adapter} is not a LoRA adapter directory (no "
                                    "adapter_config.json): give the adapter directory a "
                                    "cycle's training wrote (summary.json: trained.adapters)")
        policy = policy.with_adapter(Path(adapter).resolve())
    suite = suite or cfg.problems.eval
    problems = select(load_suite(suite), n or cfg.problems.eval_n, cfg.problems.eval_seed)
    store = cfg.run.store_dir()
    where = store / "evaluations" / f"{policy.id}-{digest([p.id for p in problems])[:8]}"
    shard = write_rows(where / "problems.jsonl", problems)
    log.info("evaluating policy %s on %d problems of %s", policy.id, len(problems), suite)
    result = evaluate_task.with_options(result_storage=store / ".results")(
        policy, shard, suite, cfg.evaluation, cfg.sampling, cfg.sandbox, cfg.policy.dtype,
        str(where))
    log.info("greedy pass@1 %.3f %s", result.pass1_greedy,
             " ".join(f"pass@{k} {v:.3f}" for k, v in result.pass_at_k.items()))
    return result
