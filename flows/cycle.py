"""One self-training cycle as a Prefect flow: a DAG of the stage tasks.

    problems ─> sample[policy] ─> execute ─> debug[policy]
             ─> consolidate (memory) ─> mine pairs ─> train ─> evaluate (before, after) ─> promote
             ─> summarize

Every task is content-keyed (tasks/caching.py) and persists its result under the run, so running
the same cycle again after a crash re-executes only what had not finished. The flow body only
calls tasks and publishes artifacts; each stage's task lives in its module under tasks/
(problems, sampling, execution, debugging, memory, pairs, training, evaluation, summary).

Outputs of cycle n live in `<store>/<run>/cycle-<n>/<stage>/`; evaluations of a policy in
`<store>/<run>/evaluations/<policy id>/` (a policy is evaluated once per run, whatever the cycle).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.debugging import debug_task
from tasks.evaluation import Decision, EvalResult, evaluate_task, promote_task
from tasks.execution import execute_task
from tasks.memory import consolidate_task
from tasks.pairs import mine_pairs_task
from tasks.policy import Policy
from tasks.problems import load_problems_task
from tasks.records import CycleContext
from tasks.sampling import sample_task
from tasks.schema import Config
from tasks.summary import CycleResult, summarize_task
from tasks.training import TrainResult, train_task


# ----------------------------------------------------------------------------------------------
# The flow


# No `log_prints`: Prefect's patched print defeats dill's capture of stdout (datasets hashes the
# trainer's map functions with it), and the log fills with disassembled bytecode.
# Result storage: the parent flow runs this flow with `result_storage=<run>/.results`, which
# every task inherits (where `content_key` finds a finished task's result).
@flow(name="cycle", flow_run_name="{ctx.run_id}-cycle-{ctx.cycle}")
def cycle_flow(config: Config, ctx: CycleContext, current: Policy, best: Policy) -> CycleResult:
    log = get_run_logger()
    run = Path(ctx.run_dir)
    cfg = config
    agent_policy = {"current": current, "best": best}

    problems = load_problems_task(cfg.problems, str(run / "problems"))
    log.info("cycle %d: %d training and %d evaluation problems; policy %s", ctx.cycle,
             problems.train.rows, problems.eval.rows, current.id)

    # one engine per policy: agents sharing a policy (both, on cycle 1) sample in one task
    by_policy: dict[str, tuple[Policy, list]] = {}
    for agent in cfg.sampling.agents:
        policy = agent_policy[agent.policy]
        by_policy.setdefault(policy.id, (policy, []))[1].append(agent)
    specialists = cfg.sampling.specialists
    samples = [sample_task(ctx, problems.train, policy, agents, specialists, cfg.sampling,
                           cfg.memory)
               for policy, agents in by_policy.values()]

    executed = execute_task(ctx, samples, problems.train, cfg.sandbox)
    debugged = []
    if cfg.debug.max_turns > 0:
        debugged = [debug_task(ctx, executed, problems.train, policy, agents, specialists,
                               cfg.sampling, cfg.sandbox, cfg.debug.max_turns)
                    for policy, agents in by_policy.values()]
    attempt_shards = [executed] + debugged

    memory = None
    if cfg.memory.enabled:
        memory = consolidate_task(ctx, attempt_shards, problems.train, problems.eval_ids,
                                  cfg.memory.embedder)

    pairs = mine_pairs_task(ctx, attempt_shards, cfg.pairs)

    trained: TrainResult | None = None
    if pairs.trainable:
        trained = train_task(ctx, pairs.pairs, current, cfg.training)
    else:
        log.warning("cycle %d mined no trainable pairs (dropped: %s): the policy is not trained "
                    "this cycle", ctx.cycle, pairs.dropped)

    def evaluation(policy: Policy) -> EvalResult:
        # keyed by policy, not by cycle: cycle n's new policy is cycle n+1's starting point
        return evaluate_task(policy, problems.eval, cfg.problems.eval, cfg.evaluation,
                             cfg.sampling, cfg.sandbox, ctx.dtype,
                             str(run / "evaluations" / policy.id))

    before = evaluation(current)
    after = evaluation(trained.policy) if trained else None
    decision: Decision | None = None
    if after is not None:
        decision = promote_task(ctx, after, before, cfg.evaluation.tolerance)

    result = summarize_task(ctx, current, attempt_shards, memory, pairs, trained, before, after,
                            decision)
    publish_artifacts(result)
    log.info("cycle %d: %s", ctx.cycle, result.decision)
    return result


# ----------------------------------------------------------------------------------------------
# Artifacts: what the Prefect UI shows for a cycle


def _key(run_id: str, cycle: int, what: str) -> str:
    """Artifact keys: lowercase letters, digits and dashes."""
    raw = f"{run_id}-cycle-{cycle}-{what}".lower()
    return "".join(c if c.isalnum() else "-" for c in raw)


def summary_markdown(r: CycleResult) -> str:
    after = f"{r.eval_after.pass1_greedy:.3f}" if r.eval_after else "not evaluated (no training)"
    lines = [
        f"# {r.run_id}, cycle {r.cycle}",
        "",
        f"- started from policy `{r.started_from.id}`"
        + (f", trained `{r.trained.id}`" if r.trained else ""),
        f"- attempts: {r.attempts}; fixed by self-debug: {r.fixed_by_debug}",
        f"- memories written: {r.memory.written if r.memory else 0} "
        f"(duplicates {r.memory.duplicates if r.memory else 0}; memory version "
        f"{r.memory_version})",
        "- pairs: " + ", ".join(f"{k} {v}" for k, v in r.pairs.items()),
        f"- evaluation ({r.eval_before.suite}, {r.eval_before.problems} problems), greedy pass@1:"
        f" before {r.eval_before.pass1_greedy:.3f}, after {after}",
        f"- **{'promoted' if r.promoted else 'not promoted'}**: {r.decision}",
        f"- files: `{r.directory}`",
    ]
    return "\n".join(lines) + "\n"


def publish_artifacts(r: CycleResult) -> None:
    create_markdown_artifact(key=_key(r.run_id, r.cycle, "summary"), markdown=summary_markdown(r),
                             description="what the cycle did")
    create_table_artifact(key=_key(r.run_id, r.cycle, "pass-rates"), table=r.pass_rates,
                          description="first tries vs after self-debug, per agent x specialist")
    create_table_artifact(key=_key(r.run_id, r.cycle, "pairs"),
                          table=[{"kind": k, "pairs": v} for k, v in r.pairs.items()]
                          + [{"kind": f"dropped: {k}", "pairs": v}
                             for k, v in r.pairs_dropped.items()],
                          description="preference pairs by kind, and what was dropped why")
    rows = [{"policy": r.eval_before.policy_id, "role": "before",
             "pass@1 greedy": r.eval_before.pass1_greedy,
             **{f"pass@{k}": v for k, v in r.eval_before.pass_at_k.items()}}]
    if r.eval_after:
        rows.append({"policy": r.eval_after.policy_id, "role": "after",
                     "pass@1 greedy": r.eval_after.pass1_greedy,
                     **{f"pass@{k}": v for k, v in r.eval_after.pass_at_k.items()}})
    create_table_artifact(key=_key(r.run_id, r.cycle, "evaluation"), table=rows,
                          description="held-out evaluation before and after training")
    create_markdown_artifact(key=_key(r.run_id, r.cycle, "promotion"),
                             markdown=f"**{'promoted' if r.promoted else 'not promoted'}**: "
                                      f"{r.decision}\n", description="the promotion decision")
