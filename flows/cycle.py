"""One self-training cycle as a Prefect flow: a DAG of the stage tasks.

    problems (pool, dev, test) ─> draw train ─> explore (temperature sweep)
      ─> sample[policy] ─> execute ─> debug[policy] ─> monitor (B-STaR)
         (execute ─> record passes: the pass history, with problems.curriculum)
      ─> consolidate (memory) ─> mine pairs ─> train ─> evaluate (dev, test) ─> promote
      ─> summarize

Two agents sample: the *challenger* (`policy: current`, the policy this cycle trains from) and the
*champion* (`policy: best`, the promoted policy with the best dev result); pairs come from both.
Promotion compares the trained policy with the champion, paired on dev; test (HumanEval) is only
reported. tasks/summary.py says how the next cycle's challenger and champion are chosen.

Every task is content-keyed (tasks/caching.py) and persists its result under the run, so running
the same cycle again after a crash re-executes only what had not finished. The flow body only
calls tasks and publishes artifacts; each stage's task lives in its module under tasks/.

Outputs of cycle n live in `<store>/<run>/cycle-<n>/<stage>/`; evaluations of a policy in
`<store>/<run>/evaluations/<policy id>/<split>/` (a policy is evaluated once per run).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.lineage import (artifact_key, artifact_key_of, artifact_url, cycle_links,
                           lineage_markdown, materialize_lineage, policy_markdown)
from tasks.debugging import budget_shares, debug_task
from tasks.evaluation import Decision, EvalResult, evaluate_task, promote_task
from tasks.execution import execute_task
from tasks.explore import explore_task, monitor_task
from tasks.memory import consolidate_task
from tasks.pairs import mine_pairs_task
from tasks.policy import Policy
from tasks.problems.stages import (draw_train_task, load_problems_task, record_passes_task,
                                   shard_train_task)
from tasks.problems.curriculum import history_before
from tasks.records import CycleContext, Shard
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
def cycle_flow(config: Config, ctx: CycleContext, challenger: Policy, champion: Policy,
               start: Policy, earlier_pairs: list[Shard],
               tracking_url: str | None = None) -> CycleResult:
    """One cycle. `start`: the run's start policy (the report's baseline); `earlier_pairs`: the
    pairs of the run's earlier cycles (the collapse probe's examples); `tracking_url`: the run's
    MLflow run, linked from the summary."""
    log = get_run_logger()
    run = Path(ctx.run_dir)
    cfg = config
    agent_policy = {"current": challenger, "best": champion}

    problems = load_problems_task(cfg.problems, str(run / "problems"), cfg.memory.embedder)
    held_out = problems.held_out_ids
    # with the curriculum, the draw reads the pass history as this cycle began (a resumed cycle
    # reads the same rows, whatever later cycles wrote)
    curriculum = cfg.problems.curriculum.enabled
    history = history_before(run, ctx.run_id, ctx.cycle) if curriculum else None
    draw = draw_train_task(ctx, problems.pool, cfg.problems, history)
    train = draw.train
    log.info("cycle %d: %d training problems (of a pool of %d: drawn %s; not drawn %s), %d dev, "
             "%d test; challenger %s, champion %s", ctx.cycle, train.rows, problems.pool.rows,
             draw.drawn, draw.not_drawn, problems.dev.rows, problems.test.rows, challenger.id,
             champion.id)

    exploration = explore_task(ctx, train, challenger, cfg.sampling.specialists, cfg.sampling,
                               cfg.sandbox, cfg.explore)
    specialists = exploration.specialists

    # one engine per policy: agents sharing a policy (both, on cycle 1) sample in one task
    by_policy: dict[str, tuple[Policy, list]] = {}
    for agent in cfg.sampling.agents:
        policy = agent_policy[agent.policy]
        by_policy.setdefault(policy.id, (policy, []))[1].append(agent)
    # Sampling, execution and self-debug of each shard of the problems (`sampling.shards`) are
    # tasks of their own, submitted to the task runner (`run.task_runner`) so shards run side by
    # side on its workers. One shard (the default) runs them one after another, as before.
    parts = ([train] if cfg.sampling.shards == 1
             else shard_train_task(ctx, train, cfg.sampling.shards))
    sampling, executing = [], []
    for part in parts:
        samples = [sample_task.submit(ctx, part, policy, agents, specialists, cfg.sampling,
                                      cfg.memory, held_out)
                   for policy, agents in by_policy.values()]
        sampling += samples
        executing.append(execute_task.submit(ctx, samples, part, cfg.sandbox))
    debugging = []
    if cfg.debug.max_turns > 0:
        jobs = [(part, done, policy, agents) for part, done in zip(parts, executing)
                for policy, agents in by_policy.values()]
        shares = budget_shares(cfg.debug.budget, len(jobs))
        debugging = [debug_task.submit(ctx, done, part, policy, agents, specialists, cfg.sampling,
                                       cfg.sandbox, cfg.debug, share)
                     for (part, done, policy, agents), share in zip(jobs, shares)]
    # results in the order of the DAG: a failed stage raises its own error, not "NotReady" from
    # a task downstream of it
    for f in sampling:
        f.result()
    first_tries = [f.result() for f in executing]
    attempt_shards = first_tries + [f.result() for f in debugging]
    if curriculum:  # the pass history the next draws read
        record_passes_task(ctx, first_tries)
    monitoring = monitor_task(ctx, attempt_shards, cfg.explore.n_star)

    memory = None
    if cfg.memory.enabled:
        memory = consolidate_task(ctx, attempt_shards, train, held_out, cfg.memory.embedder)

    pairs = mine_pairs_task(ctx, attempt_shards, cfg.pairs, challenger.base,
                            cfg.training.dpo.get("max_length"), held_out)

    trained: TrainResult | None = None
    if pairs.trainable:
        trained = train_task(ctx, pairs.pairs, challenger, cfg.training, held_out, earlier_pairs)
    else:
        log.warning("cycle %d mined no trainable pairs (dropped: %s): the policy is not trained "
                    "this cycle", ctx.cycle, pairs.dropped)

    def evaluation(policy: Policy, split: str) -> EvalResult:
        # keyed by policy, not by cycle: cycle n's new policy is cycle n+1's starting point
        shard, suite = ((problems.dev, cfg.problems.dev) if split == "dev"
                        else (problems.test, cfg.problems.test))
        return evaluate_task(policy, shard, suite, split, cfg.evaluation, cfg.sampling,
                             cfg.sandbox, ctx.dtype, str(run / "evaluations" / policy.id / split),
                             ctx.device)

    roles = {"start": start, "challenger": challenger, "champion": champion}
    if trained:
        roles["new"] = trained.policy
    dev = {role: evaluation(policy, "dev") for role, policy in roles.items()}
    test = {role: evaluation(policy, "test") for role, policy in roles.items()
            if role != "champion"}
    decision: Decision | None = None
    if trained:
        decision = promote_task(ctx, dev["new"], dev["champion"], trained.metrics,
                                cfg.evaluation)

    result = summarize_task(ctx, challenger, champion, attempt_shards, exploration, monitoring,
                            memory, pairs, trained, dev, test, decision, draw)
    publish_artifacts(result, tracking_url)
    log.info("cycle %d: %s", ctx.cycle, result.decision)
    return result


# ----------------------------------------------------------------------------------------------
# Artifacts: what the Prefect UI shows for a cycle


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in counts.items()) or "none"


def summary_markdown(r: CycleResult, links: dict[str, str] | None = None) -> str:
    m = r.monitoring
    lines = [
        f"# {r.run_id}, cycle {r.cycle}",
        "",
        f"- challenger `{r.started_from.id}`, champion `{r.champion.id}`"
        + (f", trained `{r.trained.id}`" if r.trained else ""),
        f"- temperatures (explore scale {r.exploration.scale:g}): "
        + ", ".join(f"{s.name} {s.temperature:g}" for s in r.exploration.specialists),
        f"- training draw: {_counts(r.drawn)}; not drawn: {_counts(r.not_drawn)}",
        f"- attempts: {r.attempts}; fixed by self-debug: {r.fixed_by_debug}",
        f"- B-STaR: pass@k {', '.join(f'{k}: {v:.3f}' for k, v in m.pass_at_k.items())}; "
        f"distinct passing programs per problem {m.distinct_passing:.2f}; reward AUC "
        f"{'-' if m.reward_auc is None else f'{m.reward_auc:.3f}'}; balance {m.balance:.3f}",
        f"- memories written: {r.memory.written if r.memory else 0} "
        f"(duplicates {r.memory.duplicates if r.memory else 0}; memory version "
        f"{r.memory_version})",
        "- pairs: " + ", ".join(f"{k} {v}" for k, v in r.pairs.items())
        + f" ({r.pairs_cross_prompt} with a rejected answer from another prompt; "
        f"{r.pairs_distinct_chosen} distinct chosen programs"
        + (f"; {r.pairs_swapped} swapped by the random-pair control" if r.pairs_swapped else "")
        + ")",
        f"- dev ({r.dev.problems} problems) greedy pass@1 {r.dev.pass1_greedy:.3f}; test "
        f"({r.test.suite}, {r.test.problems}) greedy pass@1 {r.test.pass1_greedy:.3f}",
        f"- **{'promoted' if r.promoted else 'not promoted'}**: {r.decision}",
        f"- next cycle: challenger `{r.next_challenger.id}`, champion `{r.next_champion.id}`",
        f"- files: `{r.directory}`",
        *([f"- MLflow: [run {r.run_id}]({links['mlflow']}) (this cycle: child run "
           f"`{r.run_id}-cycle-{r.cycle}`)"] if links and links.get("mlflow") else []),
        "",
        "## Lineage",
        "",
        lineage_markdown(r, links),
    ]
    return "\n".join(lines) + "\n"


def publish_artifacts(r: CycleResult, tracking_url: str | None = None) -> None:
    """The cycle's artifacts; the summary and the policy's artifact last, so that they link to
    the others' content pages (flows/lineage.py, `cycle_links`)."""
    materialize_lineage(r)
    ids = {}
    ids["pass-rates"] = create_table_artifact(
        key=artifact_key(r.run_id, r.cycle, "pass-rates"), table=r.pass_rates,
        description="first tries vs after self-debug, per agent x specialist")
    ids["pairs"] = create_table_artifact(
        key=artifact_key(r.run_id, r.cycle, "pairs"),
        table=[{"kind": k, "pairs": v} for k, v in r.pairs.items()]
        + [{"kind": "cross-prompt (counted in the kinds above)", "pairs": r.pairs_cross_prompt}]
        + [{"kind": f"dropped: {k}", "pairs": v} for k, v in r.pairs_dropped.items()],
        description="preference pairs by kind, and what was dropped why")
    if r.drawn:
        ids["draw"] = create_table_artifact(
            key=artifact_key(r.run_id, r.cycle, "draw"),
            table=[{"drawn": "yes", "reason": k, "problems": v} for k, v in r.drawn.items()]
            + [{"drawn": "no", "reason": k, "problems": v} for k, v in r.not_drawn.items()],
            description="the training draw: pool problems drawn and left out, by reason "
                        "(draw.json beside train.jsonl: each one's)")
    ids["evaluation"] = create_table_artifact(
        key=artifact_key(r.run_id, r.cycle, "evaluation"), table=r.report,
        description="dev and test, paired against the start policy and the cycle's starting "
                    "point: score difference with its 95% bootstrap CI, sign-flip and McNemar "
                    "p-values")
    if r.exploration.rows:
        ids["explore"] = create_table_artifact(
            key=artifact_key(r.run_id, r.cycle, "explore"),
            table=[{**row, "temperatures": str(row["temperatures"])}
                   for row in r.exploration.rows],
            description=f"temperature sweep: scale {r.exploration.scale:g} chosen by the "
                        "balance score")
    ids["promotion"] = create_markdown_artifact(
        key=artifact_key(r.run_id, r.cycle, "promotion"),
        markdown=f"**{'promoted' if r.promoted else 'not promoted'}**: {r.decision}\n",
        description="the promotion decision")
    links = cycle_links(r, ids)
    if tracking_url:
        links["mlflow"] = tracking_url
    links["summary"] = artifact_url(create_markdown_artifact(
        key=artifact_key(r.run_id, r.cycle, "summary"), markdown=summary_markdown(r, links),
        description="what the cycle did"))
    if r.trained is not None:
        create_markdown_artifact(key=artifact_key_of(f"policy-{r.trained.id}"),
                                 markdown=policy_markdown(r, links),
                                 description="the adapter and what it came from")
