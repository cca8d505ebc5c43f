"""The parent flow: N self-training cycles, each starting from the last promoted policy.

A *run* is one configuration applied to one starting policy. Its id is the run name plus a hash
of both, so the same command twice is the same run: the second time every finished task is served
from the cache, and after a crash (a failed night) only what had not finished runs again.

    <store>/<run id>/index.md        what each file and cycle directory below holds, with links
                     run.json        the resolved config, the start policy, the memory version
                                     (and, with problems.curriculum, the history it inherited)
                     config.yaml     the resolved config (what `autodidact resume` reloads)
                     cycle-<n>/...   each cycle's stages (flows/cycle.py)
                     history/passes.jsonl   the pass history (problems.curriculum)
    <store>/memory/                  the LanceDB memory, shared by the runs of a store
    <store>/promoted.jsonl           every promotion, newest last: where `start=promoted` begins

`start="base"` begins from `policy.base`; `start="promoted"` from the newest promoted policy in
the store (the nightly deployment does this, so each night continues from the last).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, tags

from flows.cycle import cycle_flow
from flows.inputs import check_device, reopen_problem
from flows.lineage import RunLock, artifact_key_of, claim_flow_run, policy_tag, run_tags
from tasks.config import load_config
from tasks.policy import Policy, base_policy
from tasks.records import CycleContext, digest, write_atomic, write_json
from tasks.schema import Config
from tasks.summary import CycleResult


class RunError(RuntimeError):
    pass


def _nearly_full(path: Path) -> bool:
    """Less than 16 MiB free where `path` lives: a failure then is the full disk's, whatever
    error the library that hit it raised (torch.save's says only "file write failed")."""
    import shutil

    try:
        return shutil.disk_usage(path).free < 16 * 2 ** 20
    except OSError:
        return False


class StoreFull(RunError):
    """The run store's disk filled up mid-run."""


def disk_full(exc: BaseException | None) -> bool:
    """Whether an exception (or one it was raised from) says the disk is full: an OSError with
    ENOSPC or EDQUOT, or a library's own error quoting it (LanceDB, safetensors)."""
    import errno

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def store_of(cfg: Config) -> Path:
    return cfg.run.store_dir()


def last_promoted(store: Path) -> Policy | None:
    path = store / "promoted.jsonl"
    if not path.exists():
        return None
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return Policy.model_validate(json.loads(lines[-1])["policy"]) if lines else None


def record_promotion(store: Path, result: CycleResult) -> None:
    """Append the promotion once (a resumed run does not append it twice)."""
    path = store / "promoted.jsonl"
    entry = {"run": result.run_id, "cycle": result.cycle,
             "policy": result.next_champion.model_dump(mode="json"),
             "dev_pass1_greedy": result.dev.pass1_greedy,
             "test_pass1_greedy": result.test.pass1_greedy}
    old = path.read_text() if path.exists() else ""
    for line in old.splitlines():
        if line.strip():
            seen = json.loads(line)
            if (seen["run"], seen["cycle"]) == (entry["run"], entry["cycle"]):
                return
    write_atomic(path, (old + json.dumps(entry, sort_keys=True) + "\n").encode())


def start_policy(cfg: Config, start: str) -> Policy:
    if start not in ("base", "promoted"):
        raise RunError(f"start={start!r}: use 'base' (policy.base) or 'promoted' (the newest "
                       "promoted policy in the store)")
    if start == "promoted":
        policy = last_promoted(store_of(cfg))
        if policy is not None:
            return policy
    return base_policy(cfg.policy.base)


def run_id_for(cfg: Config, policy: Policy, day: str | None = None) -> str:
    """`<name>-<hash of config and start policy>`, or `<name>-<day>-<hash>` for a nightly run."""
    return "-".join([cfg.run.name] + ([day] if day else []) + [digest(cfg.hash(), policy.id)[:8]])


def open_run(cfg: Config, start: str = "base", run_id: str | None = None,
             day: str | None = None) -> tuple[str, Path, dict]:
    """Create the run (or reopen it): its id, directory and `run.json`.

    Reopening checks the configuration is the one the run was created with: a run is one
    configuration, and its cached tasks were computed under it. A nightly run (`day`) is the
    night's run of this configuration: a second flow run for the same day reopens it, even when
    the first one promoted a policy (which would otherwise change where `start=promoted` begins).
    """
    store = store_of(cfg)
    ours = {cfg.hash()} | cfg.legacy_hashes()
    if run_id is None and day is not None:
        for meta_path in sorted(store.glob(f"{cfg.run.name}-{day}-*/run.json")):
            if json.loads(meta_path.read_text())["config_hash"] in ours:
                run_id = meta_path.parent.name
                break
    if run_id is not None and (store / run_id / "run.json").exists():
        meta = json.loads((store / run_id / "run.json").read_text())
        problem = reopen_problem(cfg, run_id, meta)  # another configuration, or a moved store
        if problem is not None:
            raise RunError(problem)
        return run_id, store / run_id, meta
    policy = start_policy(cfg, start)
    run_id = run_id or run_id_for(cfg, policy, day)
    run_dir = store / run_id
    if (run_dir / "run.json").exists():
        return open_run(cfg, start, run_id, day)
    import datetime as dt

    from tasks.memory import Memory

    memory_dir = store / "memory"
    meta = {"run_id": run_id, "config_hash": cfg.hash(), "start": start,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "start_policy": policy.model_dump(mode="json"), "start_policy_id": policy.id,
            "memory_dir": str(memory_dir),
            "memory_version": Memory(memory_dir, cfg.memory.embedder).version()
            if cfg.memory.enabled else 0}
    run_dir.mkdir(parents=True, exist_ok=True)
    curriculum = cfg.problems.curriculum
    if curriculum.enabled and curriculum.inherit:
        # each night is a new run: its pass history continues the nights before it
        from tasks.problems.curriculum import inherit_history

        meta["history"] = inherit_history(store, run_dir, cfg.run.name)
    write_atomic(run_dir / "config.yaml",
                 yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False).encode())
    write_json(run_dir / "run.json", meta)
    return run_id, run_dir, meta


@flow(name="self-training")
def self_training(config: str = "default", overrides: list[str] | None = None,
                  start: str = "base", run_id: str | None = None,
                  nightly: bool = False) -> list[CycleResult]:
    """Open the run (or reopen it) and chain `run.cycles` cycles.

    config: a preset name or a YAML path; overrides: `section.key=value` strings; start: 'base'
    or 'promoted'; run_id: reopen this run (what `autodidact resume` passes); nightly: put the
    scheduled day in the run id, so each night is a new run even when nothing was promoted, and a
    retry of a night's flow run resumes that night.
    """
    log = get_run_logger()
    cfg = load_config(config, tuple(overrides or ()))
    check_device(cfg.policy.device)  # a deployment's config is checked here, not by the CLI
    day = None
    if nightly:
        from prefect.runtime import flow_run

        scheduled = flow_run.scheduled_start_time
        day = scheduled.strftime("%Y%m%d") if scheduled else None
    run_id, run_dir, meta = open_run(cfg, start, run_id, day)
    with RunLock(run_dir, run_id):
        run_labels = run_tags(run_id, cfg.run.name, store_of(cfg))
        claim = claim_flow_run(run_id, store_of(cfg), run_labels)
        if claim.earlier:
            publish_resume(run_id, claim)
            log.info("run %s resumed (flow run %s); earlier flow runs: %s%s", run_id, claim.name,
                     ", ".join(f"{n} ({s})" for n, s in claim.earlier),
                     f"; marked Crashed: {', '.join(claim.crashed)}" if claim.crashed else "")
        log.info("run %s: %d cycle(s), files under %s", run_id, cfg.run.cycles, run_dir)
        tracker = open_tracking(cfg, run_id, meta)
        with tags(*run_labels):
            try:
                results = run_cycles_of(cfg, run_id, run_dir, meta, tracker)
            except Exception as exc:
                if tracker is not None:
                    tracker.finish(failed=True)
                if disk_full(exc) or _nearly_full(run_dir):
                    raise StoreFull(
                        f"no space left on the disk of the run store ({run_dir}): {exc}. Free "
                        f"space there (or move run.store), then resume: `autodidact resume "
                        f"{run_id}`. Nothing half-written was kept: files are written under a "
                        "temporary name and renamed, and a checkpoint cut short is discarded"
                        ) from exc
                raise
        write_json(run_dir / "summary.json", [r.model_dump(mode="json") for r in results])
        write_run_index(run_id, run_dir, results)
        if tracker is not None:
            tracker.finish()
    return results


def open_tracking(cfg: Config, run_id: str, meta: dict):
    """The run's MLflow run (flows/tracking.py), tagged with this flow run; None when
    `tracking.enabled` is false or MLflow does not answer (a warning says why)."""
    from prefect.runtime import flow_run

    from flows.server import ui_url
    from flows.tracking import Tracker

    tracker = Tracker.open(cfg, run_id, store_of(cfg), meta,
                           flow_run=(str(flow_run.id), f"{ui_url()}/runs/flow-run/{flow_run.id}"))
    if tracker is not None:
        get_run_logger().info("run %s in MLflow: %s", run_id, tracker.url)
    return tracker


def run_cycles_of(cfg: Config, run_id: str, run_dir: Path, meta: dict,
                  tracker=None) -> list[CycleResult]:
    """Chain `run.cycles` cycles, each from the policies the previous one chose; each finished
    cycle is logged to MLflow when `tracker` is given (flows/tracking.py)."""
    origin = challenger = champion = Policy.model_validate(meta["start_policy"])
    memory_version = meta["memory_version"]
    results: list[CycleResult] = []
    # every task of the run persists its result under the run: set once, inherited by the tasks
    cycle = cycle_flow.with_options(result_storage=run_dir / ".results",
                                    task_runner=task_runner(cfg))
    for n in range(1, cfg.run.cycles + 1):
        ctx = CycleContext(run_id=run_id, run_dir=str(run_dir), cycle=n, dtype=cfg.policy.dtype,
                           seed=cfg.run.seed, memory_dir=meta["memory_dir"],
                           draws_of=cfg.run.draws_of, device=cfg.policy.device,
                           memory_version=memory_version)
        watching = (tracker.live(n, challenger.id, champion.id) if tracker is not None
                    else contextlib.nullcontext())
        with tags(policy_tag(challenger.id)), watching:
            result = cycle(cfg, ctx, challenger, champion, origin,
                           [r.pairs_file for r in results],
                           tracker.url if tracker is not None else None)
        results.append(result)
        if result.promoted:
            record_promotion(store_of(cfg), result)
        challenger, champion = result.next_challenger, result.next_champion
        memory_version = result.memory_version
        publish_run_report(run_id, run_dir, results,
                           tracker.url if tracker is not None else None)
        write_run_index(run_id, run_dir, results)
        if tracker is not None:
            from flows.lineage import artifact_key, latest_artifact_url
            from flows.server import ui_url

            tracker.cycle(result, ui_url() + latest_artifact_url(
                artifact_key(run_id, n, "summary")))
    return results


def task_runner(cfg: Config):
    """The cycle's task runner (`run.task_runner`): a thread pool as wide as `sampling.shards`
    (one shard: one task at a time, as on a single machine), or a Dask cluster."""
    if cfg.run.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.run.dask_address:
            return DaskTaskRunner(address=cfg.run.dask_address)
        import dask

        # a local cluster's nanny sets its `pre-spawn-environ` (OMP_NUM_THREADS=1, MKL's and
        # OpenBLAS's too) in this process's own environment before spawning the workers, and
        # leaves it there: training here and the exporter it starts would run on one thread
        dask.config.set({"distributed.nanny.pre-spawn-environ": {"MALLOC_TRIM_THRESHOLD_": 65536}})
        return DaskTaskRunner(cluster_kwargs={"n_workers": cfg.run.dask_workers,
                                              "threads_per_worker": 1, "processes": True})
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=cfg.sampling.shards)


def write_run_index(run_id: str, run_dir: Path, results: list[CycleResult]) -> None:
    """`<run>/index.md`: what each file and cycle directory of the run holds, with relative
    links (tasks/report.py, `run_index`). Written again after every cycle and at the end."""
    from tasks.report import run_index

    write_atomic(run_dir / "index.md", run_index(run_dir, run_id, results).encode())


def publish_resume(run_id: str, claim) -> None:
    """A markdown artifact on the resuming flow run: the run's earlier flow runs."""
    from prefect.artifacts import create_markdown_artifact

    rows = "\n".join(f"| {name} | {state}{' (marked now)' if name in claim.crashed else ''} |"
                      for name, state in claim.earlier)
    create_markdown_artifact(
        key=artifact_key_of(f"{run_id}-resumes"),
        markdown=f"# {claim.name} resumes run {run_id}\n\nFinished tasks come from the cache; "
                 f"the earlier flow runs of this run (filter on tag `run:{run_id}`):\n\n"
                 f"| flow run | state |\n|---|---|\n{rows}\n",
        description="what this flow run resumes")


def publish_run_report(run_id: str, run_dir: Path, results: list[CycleResult],
                       tracking_url: str | None = None) -> None:
    """`<run>/report.md` and `<run>/scores.png`: every cycle's dev and test scores, and a
    run-level Prefect artifact showing both (and linking the MLflow run, when tracked)."""
    import base64

    from prefect.artifacts import create_markdown_artifact

    from tasks.report import markdown_table, plot_scores, run_table
    from tasks.summary import run_cycles

    cycles = run_cycles(results)
    table = markdown_table(run_table(cycles))
    png = plot_scores(cycles, run_dir / "scores.png", f"{run_id}: dev and test over cycles")
    write_atomic(run_dir / "report.md",
                 f"# {run_id}\n\n![scores](scores.png)\n\n{table}".encode())
    image = base64.b64encode(png.read_bytes()).decode()
    key = artifact_key_of(f"{run_id}-scores")
    tracked = f"MLflow: [run {run_id}]({tracking_url})\n\n" if tracking_url else ""
    create_markdown_artifact(key=key, markdown=f"# {run_id}\n\n{tracked}"
                             f"![scores](data:image/png;base64,{image})\n\n{table}",
                             description="dev and test scores of every cycle (cycle 0: start)")
