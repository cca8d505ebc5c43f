"""One self-training cycle as a Prefect flow: a DAG of the stage tasks.

    problems ─> sample[agent, specialist] ─> execute ─> debug[agent, specialist]
             ─> consolidate (memory) ─> mine pairs ─> train ─> evaluate (before, after) ─> promote

Every task is content-keyed (tasks/caching.py) and persists its result under the run, so running
the same cycle again after a crash re-executes only what had not finished. The flow body only
calls tasks and publishes artifacts; what each stage does is in its module under tasks/.

Outputs of cycle n live in `<store>/<run>/cycle-<n>/<stage>/`; evaluations of a policy in
`<store>/<run>/evaluations/<policy id>/` (a policy is evaluated once per run, whatever the cycle).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, ConfigDict

from tasks.caching import cached
from tasks.config import Config, PairsConfig, ProblemsConfig
from tasks.debugging import debug_task
from tasks.evaluation import Decision, EvalResult, evaluate_task, promote_task
from tasks.execution import execute_task, pass_rates
from tasks.memory import ConsolidationStats
from tasks.pairs import TRAINING_KINDS
from tasks.policy import Policy
from tasks.records import Shard, read_attempts, write_json, write_rows
from tasks.sampling import sample_task
from tasks.training import TrainResult, train_task


class ProblemSets(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    train: Shard
    eval: Shard
    eval_ids: tuple[str, ...]


class PairSet(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pairs: Shard
    by_kind: dict[str, int]
    dropped: dict[str, int]

    @property
    def trainable(self) -> int:
        return sum(self.by_kind.get(kind, 0) for kind in TRAINING_KINDS)


class CycleResult(BaseModel):
    """What a cycle did: the record the parent flow chains on and the CLI prints."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    cycle: int
    started_from: Policy
    trained: Policy | None  # None when no pairs were mined (nothing to train on)
    promoted: bool
    next_policy: Policy  # where the next cycle starts: the new policy if promoted
    decision: str
    pass_rates: list[dict]  # per agent x specialist, before and after debug
    attempts: int
    fixed_by_debug: int
    memory: ConsolidationStats | None
    memory_version: int
    pairs: dict[str, int]
    pairs_dropped: dict[str, int]
    training: dict[str, float]
    eval_before: EvalResult
    eval_after: EvalResult | None
    directory: str


# ----------------------------------------------------------------------------------------------
# Small tasks that live with the flow (the stages proper are in tasks/)


@task(name="load-problems", **cached())
def load_problems_task(problems: ProblemsConfig, out_dir: str) -> ProblemSets:
    """Draw the training and evaluation problems and check they do not overlap."""
    from tasks.problems import check_disjoint, load_suite, select

    train = select(load_suite(problems.train), problems.train_n, problems.train_seed)
    held_out = select(load_suite(problems.eval), problems.eval_n, problems.eval_seed)
    check_disjoint(train, held_out)
    return ProblemSets(train=write_rows(Path(out_dir) / "train.jsonl", train),
                       eval=write_rows(Path(out_dir) / "eval.jsonl", held_out),
                       eval_ids=tuple(p.id for p in held_out))


@task(name="consolidate", retries=1, retry_delay_seconds=2, **cached())
def consolidate_task(attempts: list[Shard], problems: Shard, eval_ids: tuple[str, ...],
                     memory_dir: str, embedder: str, run_id: str) -> ConsolidationStats:
    """Episodes and verified solutions of this cycle into LanceDB (idempotent writes)."""
    from tasks.memory import Memory
    from tasks.problems import Problem

    rows = {p.id: p for p in problems.read(Problem)}
    return Memory(memory_dir, embedder).consolidate(read_attempts(attempts), rows, run_id,
                                                    frozenset(eval_ids))


@task(name="mine-pairs", **cached())
def mine_pairs_task(attempts: list[Shard], pairs: PairsConfig, out_dir: str) -> PairSet:
    from tasks.pairs import mine_pairs, write_pairs

    mined = mine_pairs(read_attempts(attempts), pairs)
    shard = write_pairs(mined.pairs, Path(out_dir) / "pairs.jsonl")
    write_json(Path(out_dir) / "manifest.json",
               {"pairs": shard.model_dump(), "by_kind": mined.by_kind, "dropped": mined.dropped,
                "parents": [s.sha256 for s in attempts], "config": pairs.model_dump()})
    return PairSet(pairs=shard, by_kind=mined.by_kind, dropped=mined.dropped)


def with_store(task_, run_dir: Path):
    """The task persisting its results under the run (where `content_key` looks them up)."""
    return task_.with_options(result_storage=run_dir / ".results")


# ----------------------------------------------------------------------------------------------
# The flow


# No `log_prints`: Prefect's patched print defeats dill's capture of stdout (datasets hashes the
# trainer's map functions with it), and the log fills with disassembled bytecode.
@flow(name="cycle", flow_run_name="{run_id}-cycle-{cycle}")
def cycle_flow(config: Config, run_id: str, run_dir: str, cycle: int, current: Policy,
               best: Policy, memory_dir: str, memory_version: int) -> CycleResult:
    log = get_run_logger()
    run = Path(run_dir)
    here = run / f"cycle-{cycle}"
    cfg = config
    dtype = cfg.policy.dtype
    agent_policy = {"current": current, "best": best}

    problems = with_store(load_problems_task, run)(cfg.problems, str(run / "problems"))
    log.info("cycle %d: %d training and %d evaluation problems; policy %s", cycle,
             problems.train.rows, problems.eval.rows, current.id)

    samples = [with_store(sample_task, run)(
        problems.train, agent_policy[agent.policy], agent, specialist, cfg.sampling, cfg.memory,
        memory_dir, memory_version if cfg.memory.enabled else 0, dtype, cycle,
        str(here / "sample"))
        for agent in cfg.sampling.agents for specialist in cfg.sampling.specialists]

    executed = with_store(execute_task, run)(samples, problems.train, cfg.sandbox,
                                             str(here / "execute"))
    debugged = []
    if cfg.debug.max_turns > 0:
        debugged = [with_store(debug_task, run)(
            executed, problems.train, agent_policy[agent.policy], agent, specialist,
            cfg.sampling, cfg.sandbox, cfg.debug.max_turns, dtype, str(here / "debug"))
            for agent in cfg.sampling.agents for specialist in cfg.sampling.specialists]
    attempt_shards = [executed] + debugged
    attempts = read_attempts(attempt_shards)
    rates = pass_rates(attempts)
    fixed = sum(r["passed_after_debug"] - r["passed_first"] for r in rates.values())

    memory, next_version = None, memory_version
    if cfg.memory.enabled:
        memory = with_store(consolidate_task, run)(attempt_shards, problems.train,
                                                   problems.eval_ids, memory_dir,
                                                   cfg.memory.embedder, run_id)
        next_version = memory.version

    pairs = with_store(mine_pairs_task, run)(attempt_shards, cfg.pairs, str(here / "pairs"))

    trained: TrainResult | None = None
    if pairs.trainable:
        trained = with_store(train_task, run)(pairs.pairs, current, cfg.training, dtype,
                                              cfg.run.seed, str(here / "train"))
    else:
        log.warning("cycle %d mined no trainable pairs (dropped: %s): the policy is not trained "
                    "this cycle", cycle, pairs.dropped)

    def evaluation(policy: Policy) -> EvalResult:
        return with_store(evaluate_task, run)(
            policy, problems.eval, cfg.problems.eval, cfg.evaluation, cfg.sampling, cfg.sandbox,
            dtype, str(run / "evaluations" / policy.id))

    before = evaluation(current)
    after = evaluation(trained.policy) if trained else None
    if after is not None:
        decision: Decision | None = with_store(promote_task, run)(
            after, before, cfg.evaluation.tolerance, str(here / "promote"))
        promoted, reason = decision.promoted, decision.reason
    else:
        promoted, reason = False, "no trainable pairs were mined, so nothing was trained"

    result = CycleResult(
        run_id=run_id, cycle=cycle, started_from=current,
        trained=trained.policy if trained else None, promoted=promoted,
        next_policy=trained.policy if (trained and promoted) else current, decision=reason,
        pass_rates=[{"agent": a, "specialist": s, **row} for (a, s), row in rates.items()],
        attempts=len(attempts), fixed_by_debug=fixed, memory=memory,
        memory_version=next_version, pairs=pairs.by_kind, pairs_dropped=pairs.dropped,
        training=dict(trained.metrics, steps=trained.steps) if trained else {},
        eval_before=before, eval_after=after, directory=str(here))
    write_json(here / "summary.json", result.model_dump(mode="json"))
    publish_artifacts(result)
    log.info("cycle %d: %s", cycle, reason)
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
        f"- pairs: " + ", ".join(f"{k} {v}" for k, v in r.pairs.items()),
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
