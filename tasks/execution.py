"""Execution: candidates go through the Docker sandbox in batches; verdicts go onto the attempts.

Takes: attempts (not yet executed) and the problems they answer; the `sandbox` config section.
Gives: the same attempts with `status`, `passed`, `total`, `feedback` and `duration_s` filled in.
The reward of an attempt is the fraction of the problem's test cases (assertions) it passes.

One container judges a whole batch (sandbox/engine.py); a test that fails is a verdict, not an
exception. Only the sandbox itself failing raises (`SandboxError`: no engine, or any verdict
`sandbox_error`), which the task retries; a run never trains on verdicts of a broken sandbox.

Run alone: `autodidact sandbox exec requests.jsonl` judges a file of requests the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from prefect import task

from sandbox import Request, Sandbox
from sandbox.engine import Limits, SandboxError
from tasks.caching import cached
from tasks.problems.records import Problem
from tasks.progress import Progress
from tasks.records import Attempt, CycleContext, Shard, read_attempts, shard_suffix, write_rows
from tasks.schema import SandboxConfig


def sandbox_limits(cfg: SandboxConfig) -> Limits:
    """The `sandbox` section as the engine's `Limits` (the per-request timeout is `timeout_s`)."""
    if cfg.workers is None:
        return Limits(memory_mb=cfg.memory_mb)
    return Limits(workers=cfg.workers, memory_mb=cfg.memory_mb)


def open_sandbox(cfg: SandboxConfig) -> Sandbox:
    """A sandbox with the section's limits and runtime (not started yet: use it in `with`)."""
    return Sandbox(sandbox_limits(cfg), runtime=cfg.runtime)


def requests_for(attempts: Sequence[Attempt], problems: Mapping[str, Problem],
                 cfg: SandboxConfig) -> list[Request]:
    missing = sorted({a.problem_id for a in attempts} - set(problems))
    if missing:
        raise ValueError(f"attempts answer problems that are not in the problem set: "
                         f"{', '.join(missing[:5])}: execute them with the problems they were "
                         "sampled for")

    def request(a: Attempt, p: Problem) -> Request:
        return Request(id=a.id, code=a.code, tests=p.tests, entry_point=p.entry_point,
                       timeout_s=cfg.timeout_s, context=p.context, held_out=cfg.held_out,
                       # the case the prompt shows is never held out of feedback
                       shown=() if p.shown_site is None else (p.shown_site,))
    return [request(a, problems[a.problem_id]) for a in attempts]


def judge(attempts: Sequence[Attempt], problems: Mapping[str, Problem], box: Sandbox,
          cfg: SandboxConfig, progress: Progress | None = None) -> list[Attempt]:
    """The attempts with their verdicts, in order, judged by an open sandbox in one batch.
    `progress`, when given, counts the verdicts as the sandbox streams them back."""
    if not attempts:
        return []
    ids = [a.id for a in attempts]
    if len(set(ids)) != len(ids):
        raise ValueError("two attempts share an id: verdicts are matched to attempts by id")
    requests = requests_for(attempts, problems, cfg)
    verdicts = {v.id: v for v in box.run(requests, progress.advance if progress else None)}
    _refuse_broken(verdicts.values(), len(verdicts))
    return [a.model_copy(update=dict(status=verdicts[a.id].status, passed=verdicts[a.id].passed,
                                     total=verdicts[a.id].total,
                                     held_out_passed=verdicts[a.id].held_out_passed,
                                     held_out_total=verdicts[a.id].held_out_total,
                                     feedback=verdicts[a.id].feedback,
                                     duration_s=verdicts[a.id].duration_s))
            for a in attempts]


def _refuse_broken(verdicts, total: int) -> None:
    broken = [v for v in verdicts if v.status == "sandbox_error"]
    if broken:  # never the candidates' fault, and never trained on: the task retries
        raise SandboxError(f"the sandbox could not judge {len(broken)} of {total} "
                           f"candidates (first: {broken[0].id}: {broken[0].feedback})")


def execute(attempts: Sequence[Attempt], problems: Mapping[str, Problem],
            cfg: SandboxConfig) -> list[Attempt]:
    """Judge attempts in a fresh sandbox container (started and removed here), reporting
    progress as "execute" (tasks/progress.py)."""
    if not attempts:
        return []
    with open_sandbox(cfg) as box, Progress("execute", len(attempts), "candidates") as progress:
        return judge(attempts, problems, box, cfg, progress)


def pass_rates(attempts: Sequence[Attempt]) -> dict[tuple[str, str], dict]:
    """Per (agent, specialist): candidates, passing first tries, passing after self-debug.

    A chain (one first try and its debug turns) passes after debug when any of its turns passes.
    """
    chains: dict[str, list[Attempt]] = {}
    by_id = {a.id: a for a in attempts}
    for a in attempts:
        root = a
        while root.parent is not None and root.parent in by_id:
            root = by_id[root.parent]
        chains.setdefault(root.id, []).append(a)
    table: dict[tuple[str, str], dict] = {}
    for root_id, chain in chains.items():
        root = by_id[root_id]
        row = table.setdefault((root.agent, root.specialist),
                               dict(candidates=0, passed_first=0, passed_after_debug=0,
                                    mean_reward=0.0))
        row["candidates"] += 1
        row["passed_first"] += root.ok
        row["passed_after_debug"] += any(a.ok for a in chain)
        row["mean_reward"] += root.reward
    for row in table.values():
        row["mean_reward"] = round(row["mean_reward"] / row["candidates"], 4)
    return dict(sorted(table.items()))


# ----------------------------------------------------------------------------------------------
# Prefect task


def engine_failed(task, task_run, state) -> bool:
    """Retry only when an engine failed in a way that passes: the Docker engine went away, or
    OpenVINO's sampler hung (tasks/engines.py, EngineHung). A bug would fail again."""
    from tasks.engines import EngineHung

    try:
        state.result()
    except (SandboxError, EngineHung):
        return True
    except Exception:
        return False
    return False


ENGINE_RETRIES = dict(retries=6, retry_delay_seconds=[5, 15, 30, 60, 120, 240],
                      retry_condition_fn=engine_failed)
"""Task options of the stages that use the sandbox or the sampling engine: while the Docker
engine is down (a restart of dockerd, a short outage) they retry for about 8 minutes, then fail
with the SandboxError that says so, and `autodidact resume` goes on from there; a hung OpenVINO
pipeline is dropped and the stage retried with a fresh one. Any other failure fails at once."""


def _execute_name() -> str:
    from prefect.runtime import task_run

    shard = shard_suffix(task_run.parameters["problems"])
    return f"execute[shard={shard[1:]}]" if shard else "execute"


@task(name="execute", task_run_name=_execute_name, **ENGINE_RETRIES, **cached())
def execute_task(ctx: CycleContext, samples: list[Shard], problems: Shard,
                 sandbox: SandboxConfig) -> Shard:
    """Every sampled candidate of the cycle (or of one shard of its problems) judged in one
    sandbox."""
    rows = {p.id: p for p in problems.read(Problem)}
    name = f"attempts{shard_suffix(problems)}.jsonl"
    return write_rows(Path(ctx.stage_dir("execute")) / name,
                      execute(read_attempts(samples), rows, sandbox))
