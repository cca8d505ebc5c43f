"""The summary of a cycle: what it did, in one record the parent flow chains on, the CLI prints
and the Prefect UI shows (flows/cycle.py publishes it as artifacts).

Takes: the cycle's training draw (its counts per reason), its attempts (first tries and debug
turns), its exploration choice and B-STaR monitoring, memory consolidation, pairs, training, the
dev and test evaluations of the policies involved and the promotion decision. Gives: a
`CycleResult`, also written to `<run>/cycle-<n>/summary.json`, which names the next cycle's
challenger and champion:

- promoted (a significant dev gain over the champion, no collapse): the new policy becomes both;
- not promoted, but neither collapsed nor significantly worse than the champion on dev (the 95%
  CI of the paired difference lies below 0): the new policy stays the challenger, so gains too
  small for one cycle's test can accumulate; the champion stays;
- otherwise (or nothing trained): the challenger goes back to the champion.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from pydantic import BaseModel, ConfigDict

from tasks.caching import cached
from tasks.evaluation import Decision, EvalResult
from tasks.execution import pass_rates
from tasks.explore import Exploration, Monitoring
from tasks.memory import ConsolidationStats
from tasks.pairs import PairSet
from tasks.policy import Policy
from tasks.problems.stages import TrainDraw
from tasks.records import CycleContext, Shard, read_attempts, write_json
from tasks.report import paired_rows
from tasks.training import TrainResult

NOTHING_TRAINED = "no trainable pairs were mined, so nothing was trained"


class CycleResult(BaseModel):
    """What a cycle did: the record the parent flow chains on and the CLI prints."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    cycle: int
    started_from: Policy  # the challenger this cycle trained from
    champion: Policy  # the champion this cycle compared against
    trained: Policy | None  # None when no pairs were mined (nothing to train on)
    promoted: bool
    next_challenger: Policy
    next_champion: Policy
    decision: str
    pass_rates: list[dict]  # per agent x specialist, before and after debug
    attempts: int
    fixed_by_debug: int
    exploration: Exploration
    monitoring: Monitoring
    memory: ConsolidationStats | None
    memory_version: int  # after the cycle's consolidation
    pairs: dict[str, int]
    pairs_dropped: dict[str, int]
    pairs_cross_prompt: int
    pairs_file: Shard
    training: dict[str, float]
    dev: EvalResult  # the policy the cycle ended with (trained, else the challenger), on dev
    test: EvalResult  # the same policy on test
    start_dev: EvalResult  # the run's start policy on dev (the report's baseline)
    start_test: EvalResult
    report: list[dict]  # paired against the start policy and the cycle's starting point
    directory: str
    memory_read: int | None = None  # the version sampling read (None: a summary from before)
    pairs_distinct_chosen: int = 0  # distinct chosen programs among the pairs
    pairs_swapped: int = 0  # pairs the random-pair control swapped (pairs.random_swap)
    drawn: dict[str, int] = {}  # training problems per reason of the draw (draw.json)
    not_drawn: dict[str, int] = {}  # pool problems left out, per reason


def next_policies(champion: Policy, trained: Policy | None,
                  decision: Decision | None) -> tuple[Policy, Policy]:
    """(next challenger, next champion), by the rules of the module docstring. "Significantly
    worse" reads the decision's own dev comparison of the new policy with the champion."""
    if trained is None or decision is None:
        return champion, champion
    if decision.promoted:
        return trained, trained
    if not decision.collapse and not decision.dev.score.ci_high < 0:
        return trained, champion
    return champion, champion


@task(name="summarize", **cached())
def summarize_task(ctx: CycleContext, challenger: Policy, champion: Policy,
                   attempts: list[Shard], exploration: Exploration, monitoring: Monitoring,
                   memory: ConsolidationStats | None, pairs: PairSet,
                   trained: TrainResult | None, dev: dict[str, EvalResult],
                   test: dict[str, EvalResult], decision: Decision | None,
                   draw: TrainDraw | None = None) -> CycleResult:
    """The cycle's outcome and report, written to `<run>/cycle-<n>/summary.json`.

    `dev` and `test` hold the results of the roles "start" (the run's start policy),
    "challenger", "champion" and, when trained, "new"."""
    out_dir = str(Path(ctx.run_dir) / f"cycle-{ctx.cycle}")
    rows = read_attempts(attempts)
    rates = pass_rates(rows)
    promoted = bool(decision and decision.promoted)
    final = "new" if trained else "challenger"
    report = []
    for split, results in (("dev", dev), ("test", test)):
        report += paired_rows(results[final], {"start": results["start"],
                                               "cycle start": results["challenger"]})
    next_challenger, next_champion = next_policies(
        champion, trained.policy if trained else None, decision)
    result = CycleResult(
        run_id=ctx.run_id, cycle=ctx.cycle, started_from=challenger, champion=champion,
        trained=trained.policy if trained else None, promoted=promoted,
        next_challenger=next_challenger, next_champion=next_champion,
        decision=decision.reason if decision else NOTHING_TRAINED,
        pass_rates=[{"agent": a, "specialist": s, **row} for (a, s), row in rates.items()],
        attempts=len(rows),
        fixed_by_debug=sum(r["passed_after_debug"] - r["passed_first"] for r in rates.values()),
        exploration=exploration, monitoring=monitoring,
        memory=memory, memory_version=memory.version if memory else ctx.memory_version,
        memory_read=ctx.memory_version,
        pairs=pairs.by_kind, pairs_dropped=pairs.dropped, pairs_cross_prompt=pairs.cross_prompt,
        pairs_distinct_chosen=pairs.distinct_chosen, pairs_swapped=pairs.swapped,
        pairs_file=pairs.pairs,
        training=dict(trained.metrics, steps=trained.steps) if trained else {},
        dev=dev[final], test=test[final], start_dev=dev["start"], start_test=test["start"],
        report=report, directory=out_dir,
        drawn=draw.drawn if draw else {}, not_drawn=draw.not_drawn if draw else {})
    write_json(Path(out_dir) / "summary.json", result.model_dump(mode="json"))
    return result


def run_cycles(results: list[CycleResult]) -> list[dict]:
    """The rows of a run's report: cycle 0 (the start policy) and the policy each cycle ended
    with, with their dev and test results (tasks/report.py's `run_table` and `plot_scores`)."""
    first = results[0]
    return [{"cycle": 0, "policy": first.start_dev.policy_id, "dev": first.start_dev,
             "test": first.start_test, "promoted": False}] + [
        {"cycle": r.cycle, "policy": (r.trained or r.started_from).id, "dev": r.dev,
         "test": r.test, "promoted": r.promoted} for r in results]
