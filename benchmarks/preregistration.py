"""Learning efficacy, the pre-registration: a run's identity computed before it exists, the
registration of its endpoints and problem sets, and the checks that the run is the registered one.

- `identity`: the run id and config hash `flows.self_training.open_run` will give a `start=base`
  run of a config (from the config and the base model's `Policy`), without opening the run;
- `registration_of`: the content of `preregistration.json` (the endpoints of
  benchmarks/efficacy.py and the problem ids of every split: the problem split and every cycle's
  training draw are deterministic, so they are known before the run); `pooled`: whether the
  hold-out pools dev with the unseen pool problems (training and dev from one suite) or is dev
  alone (a training suite of its own, e.g. configs/codeio.yaml);
- `preregister`: writes it, refused once the run has outcomes (`existing_outcomes`) or when
  another registration is there;
- `check_registration`: the registration a run may start under (same run id and config hash,
  committed in git);
- `git_commit`, `uncommitted`: the checkout's state.

No CLI: benchmarks/learning_efficacy.py's `preregister` and `run` call these.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from benchmarks.efficacy import (DEV_HOLDOUT_SPLITS, SPLIT_MEANING, SPLIT_MEANING_DEV_HOLDOUT,
                                 SPLITS, endpoints, holdout_sets)

REPO = Path(__file__).resolve().parent.parent

# what a registration is; a re-registration equal on these is a no-op (the time, the commit and
# the command of the second call may differ)
REGISTERED = ("run_id", "config_hash", "start_policy_id", "primary", "secondary", "correction",
              "family", "problems", "contents")


class Refused(RuntimeError):
    """A step that must not happen as asked; the message says what to do instead."""


def identity(cfg):
    """(run id, config hash, start policy) of a `start=base` run of `cfg`, as `open_run` makes
    them: `<run.name>-<8 hex of digest(cfg.hash(), start policy id)>`."""
    from flows.self_training import run_id_for
    from tasks.policy import base_policy

    policy = base_policy(cfg.policy.base)
    return run_id_for(cfg, policy), cfg.hash(), policy


def existing_outcomes(results: Path, run_dir: Path) -> list[str]:
    """What outcomes of the run already exist: its outcomes.csv, or evaluation files."""
    found = [str(results / "outcomes.csv")] if (results / "outcomes.csv").exists() else []
    evaluations = run_dir / "evaluations"
    files = sorted(p for p in evaluations.rglob("*") if p.is_file()) if evaluations.is_dir() else []
    if files:
        found.append(f"{len(files)} evaluation files under {evaluations} (e.g. {files[0]})")
    return found


def _git(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *command], cwd=REPO, capture_output=True, text=True)


def git_commit() -> tuple[str | None, bool | None]:
    """(HEAD, whether tracked files differ from it); (None, None) outside a git checkout."""
    head = _git("rev-parse", "HEAD")
    if head.returncode:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return head.stdout.strip(), bool(status.stdout.strip())


def uncommitted(path: Path) -> str | None:
    """Why `path` is not committed as it is (None: tracked and equal to HEAD's version)."""
    if _git("ls-files", "--error-unmatch", "--", str(path)).returncode:
        return "it is not tracked by git"
    diff = _git("diff", "--quiet", "HEAD", "--", str(path))
    if diff.returncode == 1:
        return "it differs from the version in HEAD (changed, or staged but not committed)"
    if diff.returncode:
        return f"`git diff` failed: {diff.stderr.strip()}"
    return None


def pooled(cfg) -> bool:
    """Whether the hold-out is dev ∪ unseen (the pool problems no cycle draws): only when the
    training and dev problems come from one suite. A training suite of its own (`codeio` beside
    MBPP dev) is another distribution, so its undrawn problems would measure something else: the
    hold-out is then dev alone."""
    return cfg.problems.train == cfg.problems.dev


def registration_of(cfg, run_id: str, config_hash: str, policy, command: str) -> dict:
    """The preregistration of the run: endpoints, the problem ids of every split and a hash of
    each split's content."""
    import datetime as dt

    from tasks.problems.split import draw_train, split_problems

    embed = None
    if cfg.problems.near_duplicate is not None:  # as load_problems_task splits them
        from tasks.memory import Embedder

        embed = Embedder(cfg.memory.embedder).embed
    split = split_problems(cfg.problems, embed)
    key = cfg.run.draws_of or run_id  # what the run's draws are keyed on (run.draws_of)
    if cfg.problems.curriculum.enabled:
        # the curriculum draws by the pass history the run itself writes: no draw is known
        # before the run, so the problems no cycle draws cannot be registered
        if pooled(cfg):
            raise Refused("problems.curriculum.enabled: the curriculum draws each cycle's "
                          "training problems by the pass history the run writes, so the pool "
                          "problems no cycle draws (the unseen half of the hold-out) are not "
                          "known before the run. Register it with a training suite of its own "
                          "(problems.train other than problems.dev, e.g. configs/codeio.yaml: "
                          "the hold-out is then dev alone), or switch the curriculum off")
        draws = {}
    else:
        draws = {n: [p.id for p in draw_train(split.pool, cfg.problems, key, n)]
                 for n in range(1, cfg.run.cycles + 1)}
    problems = holdout_sets([p.id for p in split.pool], [p.id for p in split.dev],
                            [p.id for p in split.test], draws, pooled(cfg))
    if pooled(cfg) and not problems["unseen"]:
        raise Refused(f"the {cfg.run.cycles} cycles draw every one of the pool's "
                      f"{len(split.pool)} problems: no unseen problems are left to hold out; "
                      "lower problems.train_n or run.cycles")
    commit, dirty = git_commit()
    return {"run_id": run_id, "config_hash": config_hash, "start_policy_id": policy.id,
            "config": cfg.model_dump(mode="json"), "git_commit": commit, "git_dirty": dirty,
            "command": command,
            "registered_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **endpoints(cfg.run.cycles, splits=SPLITS if pooled(cfg) else DEV_HOLDOUT_SPLITS),
            "splits": SPLIT_MEANING if pooled(cfg) else SPLIT_MEANING_DEV_HOLDOUT,
            "problems": problems, "contents": contents(split)}


def contents(split) -> dict:
    """The sha256 of each split's problems, all their fields (prompt, tests, reference, ...) in
    id order: the ids alone would not show a build that made other tests for the same problems
    (a CodeI/O build is reproducible, but its code or its settings can change)."""
    from tasks.problems.records import sha256

    return {name: sha256(json.dumps(
                [p.model_dump(mode="json") for p in sorted(problems, key=lambda p: p.id)],
                sort_keys=True).encode())
            for name, problems in (("pool", split.pool), ("dev", split.dev), ("test", split.test))}


def committed_at(path: Path) -> float | None:
    """When `path` was first committed (seconds since the epoch), None if it never was."""
    log = _git("log", "--diff-filter=A", "--format=%ct", "--", str(path))
    times = [int(t) for t in log.stdout.split()] if log.returncode == 0 else []
    return float(min(times)) if times else None


def outcomes_before(run_dir: Path, moment: float) -> list[Path]:
    """Evaluation files of the run store's `run_dir` written before `moment`: outcomes that
    existed before the registration (the store is not part of the run id, so a run of the same
    settings may have been evaluated in another store, or here, before it was registered)."""
    where = run_dir / "evaluations"
    if not where.is_dir():
        return []
    return sorted(f for f in where.rglob("*") if f.is_file() and f.stat().st_mtime < moment)


def check_registration(path: Path, run_id: str, config_hash: str,
                       allow_uncommitted: bool) -> dict:
    """The registration of this run, refused unless it matches and is committed."""
    command = (f"python benchmarks/learning_efficacy.py preregister --config ... [--set ...] "
               f"(the settings of this run), then `git add {path} && git commit`")
    if not path.exists():
        raise Refused(f"run {run_id} is not pre-registered: {path} does not exist. Run {command}")
    registration = json.loads(path.read_text())
    if (registration.get("run_id"), registration.get("config_hash")) != (run_id, config_hash):
        raise Refused(f"{path} registers run {registration.get('run_id')} (config hash "
                      f"{registration.get('config_hash')}), but these settings make run {run_id} "
                      f"(config hash {config_hash}): run with the registered settings, or "
                      f"register these ones: {command}")
    why = uncommitted(path)
    if why and not allow_uncommitted:
        raise Refused(f"{path} is not committed ({why}): a registration counts once it is in "
                      f"the history. `git add {path} && git commit`, then run again")
    if why:
        print(f"warning: {path} is not committed ({why}); --allow-uncommitted is for tests")
    return registration


def preregister(cfg, out_root: Path, command: str, log=print) -> Path:
    """Write `<out_root>/<run id>/preregistration.json` for a run of `cfg`; refused when the run
    has outcomes, or another registration is there (the same one again is left as it is)."""
    from tasks.records import write_json

    run_id, config_hash, policy = identity(cfg)
    path = Path(out_root) / run_id / "preregistration.json"
    found = existing_outcomes(path.parent, cfg.run.store_dir() / run_id)
    if found:
        raise Refused(f"run {run_id} already has outcomes ({'; '.join(found)}): a registration "
                      "written after them registers nothing. Register a new run instead (other "
                      "settings, e.g. --set run.seed=N, make another run id)")
    registration = registration_of(cfg, run_id, config_hash, policy, command)
    if path.exists():
        old = json.loads(path.read_text())
        # registrations before 2026-12-06 hold no `contents`: compared on the rest, as `run` does
        differ = [k for k in REGISTERED
                  if (k in old or k != "contents") and old.get(k) != registration[k]]
        if not differ:
            log(f"{path}: already registered with the same content; left as it is")
            return path
        raise Refused(f"{path} already registers other content ({', '.join(differ)} differ): a "
                      "registration is never rewritten. Other settings make another run id; "
                      "delete the file only if it was never committed and nothing ran")
    write_json(path, registration)
    p = registration["primary"]
    log(f"registered run {run_id} (config hash {config_hash}) in {path}: primary endpoint "
        f"{p['split']} ({len(registration['problems']['holdout'])} problems), cycle "
        f"{p['cycle']} vs 0, one-sided sign flip at alpha {p['alpha']:g}, tested alone; "
        f"{len(registration['secondary'])} secondary endpoints, Holm-adjusted.\n"
        f"Commit it before the run: git add {path} && git commit")
    return path
