"""The summary of a cycle: what it did, in one record the parent flow chains on, the CLI prints
and the Prefect UI shows (flows/cycle.py publishes it as artifacts).

Takes: the cycle's attempts (first tries and debug turns), its memory consolidation, pairs,
training, evaluations and promotion decision. Gives: a `CycleResult`, also written to
`<run>/cycle-<n>/summary.json`.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from pydantic import BaseModel, ConfigDict

from tasks.caching import cached
from tasks.evaluation import Decision, EvalResult
from tasks.execution import pass_rates
from tasks.memory import ConsolidationStats
from tasks.pairs import PairSet
from tasks.policy import Policy
from tasks.records import CycleContext, Shard, read_attempts, write_json
from tasks.training import TrainResult

NOTHING_TRAINED = "no trainable pairs were mined, so nothing was trained"


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


@task(name="summarize", **cached())
def summarize_task(ctx: CycleContext, current: Policy, attempts: list[Shard],
                   memory: ConsolidationStats | None, pairs: PairSet,
                   trained: TrainResult | None, before: EvalResult, after: EvalResult | None,
                   decision: Decision | None) -> CycleResult:
    """Pass rates per agent x specialist (first tries and after self-debug) and the cycle's
    outcome, written to `<run>/cycle-<n>/summary.json`."""
    out_dir = str(Path(ctx.run_dir) / f"cycle-{ctx.cycle}")
    rows = read_attempts(attempts)
    rates = pass_rates(rows)
    promoted = bool(decision and decision.promoted)
    result = CycleResult(
        run_id=ctx.run_id, cycle=ctx.cycle, started_from=current,
        trained=trained.policy if trained else None, promoted=promoted,
        next_policy=trained.policy if (trained and promoted) else current,
        decision=decision.reason if decision else NOTHING_TRAINED,
        pass_rates=[{"agent": a, "specialist": s, **row} for (a, s), row in rates.items()],
        attempts=len(rows),
        fixed_by_debug=sum(r["passed_after_debug"] - r["passed_first"] for r in rates.values()),
        memory=memory, memory_version=memory.version if memory else ctx.memory_version,
        pairs=pairs.by_kind,
        pairs_dropped=pairs.dropped,
        training=dict(trained.metrics, steps=trained.steps) if trained else {},
        eval_before=before, eval_after=after, directory=out_dir)
    write_json(Path(out_dir) / "summary.json", result.model_dump(mode="json"))
    return result
