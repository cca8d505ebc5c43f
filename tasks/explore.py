"""Exploration and exploitation (B-STaR, https://arxiv.org/abs/2412.17256): how widely a cycle
explored, how well its reward selected, and the sampling temperatures the cycle uses.

Takes: executed attempts of a cycle (first tries and self-debug fixes, with their held-out case
counts, see `sandbox.held_out`); for the sweep, a policy, a few training problems and the
specialists.
Gives:

- `monitor(attempts, n_star)` -> `Monitoring`, per cycle on the training problems:
  - *exploration*: pass@k of the first tries (k = 1, 4 and all of them), distinct passing
    programs per problem (normalized code);
  - *exploitation*: reward discrimination, the AUC of the reward on the cases feedback may show
    against final correctness on the held-out cases (how well what the loop selects by
    generalizes to tests it never saw), and the precision of the selected set (selected: every
    visible case passes; correct: every case passes);
  - the balance score `mean_i min(n'_i / n*, 1) * n'_i / n_i` (n_i selected, n'_i correct).
- `sweep(...)` -> `Exploration`: the policy samples a few training problems with the specialists'
  temperatures scaled by each of `explore.scales` (clamped to the bounds); the scale with the
  highest balance score is the cycle's, and every specialist samples at its scaled temperature.
  The sweep's rows and the choice are recorded (a Prefect artifact and `explore/choice.json`).

Run alone: see tests/tasks/test_explore.py.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

from prefect import task
from pydantic import BaseModel, ConfigDict

from tasks.caching import cached
from tasks.evaluation import pass_at_k
from tasks.execution import ENGINE_RETRIES
from tasks.policy import Policy
from tasks.problems.records import Problem
from tasks.problems.records import select
from tasks.records import Attempt, CycleContext, Shard, write_json, write_rows
from tasks.schema import ExploreConfig, SamplingConfig, SandboxConfig, SpecialistConfig
from tasks.stats import auc, balance_score


class Monitoring(BaseModel):
    """B-STaR's exploration and exploitation numbers of one cycle's training attempts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    problems: int
    candidates_per_problem: float  # first tries
    pass_at_k: dict[int, float]  # first tries, unbiased estimator
    distinct_passing: float  # distinct passing programs per problem (first tries and fixes)
    reward_auc: float | None  # visible-case reward vs held-out correctness; None: one class only
    selected: int  # attempts whose every visible case passes
    selected_correct: int  # ... and every held-out case too
    precision: float | None  # selected_correct / selected
    balance: float


def monitor(attempts: Sequence[Attempt], n_star: int = 8) -> Monitoring:
    """The B-STaR numbers of executed attempts (see the module docstring)."""
    from tasks.memory import code_hash

    if not attempts:
        raise ValueError("no attempts to monitor: the cycle sampled nothing")
    by_problem: dict[str, list[Attempt]] = defaultdict(list)
    for a in attempts:
        by_problem[a.problem_id].append(a)
    firsts = {pid: [a for a in rows if a.turn == 0] for pid, rows in by_problem.items()}
    sizes = [len(rows) for rows in firsts.values() if rows]
    smallest = min(sizes) if sizes else 0
    ks = sorted({k for k in (1, 4, smallest) if 1 <= k <= smallest})
    pass_k = {k: sum(pass_at_k(len(rows), sum(a.ok for a in rows), k)
                     for rows in firsts.values() if rows) / len(sizes) for k in ks}
    distinct = [len({code_hash(a.code) for a in rows if a.ok}) for rows in by_problem.values()]
    scored = [a for a in attempts if a.held_out_total and a.total > a.held_out_total]
    labels = [a.held_out_passed == a.held_out_total for a in scored]
    selected = [[a for a in rows if _selected(a)] for rows in by_problem.values()]
    n_sel = [len(rows) for rows in selected]
    n_cor = [sum(a.ok for a in rows) for rows in selected]
    return Monitoring(
        problems=len(by_problem), candidates_per_problem=sum(sizes) / max(len(sizes), 1),
        pass_at_k=pass_k, distinct_passing=sum(distinct) / len(distinct),
        reward_auc=auc([a.visible_reward for a in scored], labels),
        selected=sum(n_sel), selected_correct=sum(n_cor),
        precision=sum(n_cor) / sum(n_sel) if sum(n_sel) else None,
        balance=balance_score(n_sel, n_cor, n_star))


def _selected(a: Attempt) -> bool:
    """What the loop would select by the reward it can see: every visible case passes."""
    shown = a.total - a.held_out_total
    return a.status is not None and shown > 0 and a.passed - a.held_out_passed == shown


# ----------------------------------------------------------------------------------------------
# The temperature sweep


class Exploration(BaseModel):
    """The temperatures a cycle samples at, and the sweep that chose them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scale: float  # 1.0 when the sweep is off
    specialists: list[SpecialistConfig]  # with the chosen temperatures
    rows: list[dict]  # per scale: temperatures, balance, pass@1, selected, correct


def scaled(specialists: Sequence[SpecialistConfig], scale: float,
           cfg: ExploreConfig) -> list[SpecialistConfig]:
    """The specialists with their temperatures times `scale`, within the bounds."""
    return [s.model_copy(update={"temperature": round(min(max(s.temperature * scale,
                                                              cfg.min_temperature),
                                                          cfg.max_temperature), 4)})
            for s in specialists]


def sweep(problems: Sequence[Problem], backend, policy_id: str,
          specialists: Sequence[SpecialistConfig], sampling: SamplingConfig,
          sandbox_cfg: SandboxConfig, box, cfg: ExploreConfig, run_id: str,
          cycle: int) -> tuple[Exploration, list[Attempt]]:
    """Sample `problems` at every scale, judge, and keep the scale of the best balance score
    (ties: the scale nearest 1, then the smaller). Progress: "explore", the prompts of every
    scale sampled (judging them takes seconds)."""
    from tasks.execution import judge
    from tasks.progress import Progress
    from tasks.sampling import sample
    from tasks.schema import AgentConfig

    rows, judged = [], []
    one = sampling.model_copy(update={"samples_per_specialist": cfg.samples})
    with Progress("explore", len(cfg.scales) * len(specialists) * len(problems),
                  "prompts") as progress:
        for scale in cfg.scales:
            these = scaled(specialists, scale, cfg)
            agent = AgentConfig(name=f"sweep{scale:g}", policy="current", seed=0)
            sampled = sample(problems, backend, backend.tokenizer, policy_id, [agent], these,
                             one, cycle, None, run_id, progress=progress)
            attempts = judge(sampled, {p.id: p for p in problems}, box, sandbox_cfg)
            judged += attempts
            m = monitor(attempts, cfg.n_star)
            rows.append({"scale": scale, "temperatures": {s.name: s.temperature for s in these},
                         "balance": round(m.balance, 4), "pass@1": round(m.pass_at_k[1], 4),
                         "selected": m.selected, "correct": m.selected_correct,
                         "distinct_passing": round(m.distinct_passing, 3)})
    best = max(rows, key=lambda r: (r["balance"], -abs(r["scale"] - 1.0), -r["scale"]))
    return Exploration(scale=best["scale"], specialists=scaled(specialists, best["scale"], cfg),
                       rows=rows), judged


@task(name="explore", task_run_name="explore[policy={policy.id}]", **ENGINE_RETRIES, **cached())
def explore_task(ctx: CycleContext, problems: Shard, policy: Policy,
                 specialists: list[SpecialistConfig], sampling: SamplingConfig,
                 sandbox: SandboxConfig, explore: ExploreConfig) -> Exploration:
    """The cycle's sampling temperatures: a sweep on `explore.problems` of its training problems
    when `explore.adapt`, else the configured ones. The sweep's candidates are judged and
    written (`explore/attempts.jsonl`) but never trained on."""
    out = Path(ctx.stage_dir("explore"))
    if not explore.adapt:
        result = Exploration(scale=1.0, specialists=list(specialists), rows=[])
    else:
        from tasks.engines import open_backend, record_engine
        from tasks.execution import open_sandbox

        rows = problems.read(Problem)
        subset = select(rows, min(explore.problems, len(rows)), ctx.seed)
        backend = open_backend(policy, sampling.backend, ctx.dtype, ctx.device)
        record_engine(backend, out / "engine.json")
        with open_sandbox(sandbox) as box:
            result, attempts = sweep(subset, backend, policy.id, specialists, sampling, sandbox,
                                     box, explore, ctx.draw_key, ctx.cycle)
        write_rows(out / "attempts.jsonl", attempts)
    write_json(out / "choice.json", result.model_dump(mode="json"))
    return result


@task(name="monitor", **cached())
def monitor_task(ctx: CycleContext, attempts: list[Shard], n_star: int) -> Monitoring:
    """The cycle's B-STaR numbers, written to `<run>/cycle-<n>/monitor/monitoring.json`."""
    from tasks.records import read_attempts

    result = monitor(read_attempts(attempts), n_star)
    write_json(Path(ctx.stage_dir("monitor")) / "monitoring.json", result.model_dump(mode="json"))
    return result
