"""Learning efficacy: does the embedded default model get better at writing code by itself?

A pre-registered measurement: what counts as "it learned" is written down and committed before
the run, and the analysis reads only that file and the run's raw outcomes. Four subcommands:

    python benchmarks/learning_efficacy.py preregister --config efficacy [--set KEY=VALUE ...]
    git add benchmarks/results/learning_efficacy/<run id>/preregistration.json && git commit
    python benchmarks/learning_efficacy.py [run] --config efficacy [--set KEY=VALUE ...]
    python benchmarks/learning_efficacy.py analyze benchmarks/results/learning_efficacy/<run id>
    python benchmarks/learning_efficacy.py compare DIR_SEED0 DIR_SEED1 --control DIR_CONTROL

`preregister`, before the run, writes `<run id>/preregistration.json`: the run id and config hash
the run will have (as `flows.self_training.open_run` computes them, from the config and the base
model's policy, without starting anything), the resolved config, the git commit, the command and
the time, the endpoints (below) and the problem ids of every split, fixed in advance (the
problem split and every cycle's training draw are deterministic), and the sha256 of each split's
content (prompts, tests, references: a rebuilt CodeI/O set with other tests under the same ids
is another set). It refuses when the run already
has outcomes (`outcomes.csv` here, or any file under `<store>/<run id>/evaluations/`), or when a
preregistration.json with other content is there; the same content again is a no-op.

`run` (the default) refuses to start unless `preregistration.json` exists, names this run id and
config hash, is committed in git unmodified (`--allow-uncommitted` is for tests), and its problem
ids and contents are still those today's code and data give (and, after the flow, the ids are
those the run drew), and no
evaluation of the run in its store is older than the registration's commit. Then it runs the
self-training flow on the config (`configs/efficacy.yaml`: one cycle of the real loop on
Qwen2.5-Coder-0.5B-Instruct, about two hours on 2 CPU cores in the chat format) as a normal,
resumable flow run; evaluates the start policy and every cycle's policy on the `unseen` problems
into the run store (`<run>/evaluations/<policy id>/unseen/`, read back when done, so an
interrupted invocation resumes), and writes, under
`benchmarks/results/learning_efficacy/<run id>/`:

    outcomes.csv   every policy's raw outcome on every problem of every split (cycle, policy,
                   split, problem_id, greedy_passed, samples, samples_passed, distinct_passing),
                   splits dev, unseen, holdout (the dev and unseen rows again) and test: every
                   number below is recomputed from it
    table.md       per cycle: dev and test greedy / sampled pass@1 and the per-problem score with
                   its 95% bootstrap CI; the final policy paired against the start policy
    scores.png     the scores over cycles
    run.json       the run id, the config, the decisions and the B-STaR numbers of each cycle
    analysis.json  every registered endpoint (below), Holm-adjusted, and whether the primary is
    analysis.md    met: what `analyze` writes

`analyze RESULTS_DIR` reads only `preregistration.json` and `outcomes.csv` there. `compare` puts
the primary endpoints of several runs side by side (diff, CI, p, Holm p), and sets each run
against each `--control` (e.g. `pairs.random_swap=true`): the run's primary diff minus the
control's. Other settings make another run id, so other training draws and other unseen
problems: each primary is on its own holdout, the difference of diffs is unpaired, and it is
paired by problem only on the holdout problems both runs share (dev, when the problems config is
the same).

Endpoints (benchmarks/efficacy.py): cycle c's policy against cycle 0 (the start), paired by
problem, on the mean per-problem score (fraction of greedy + sampled candidates passing). The
**primary** is the holdout split (dev ∪ the pool problems no cycle draws) at the last cycle, by a
one-sided paired sign-flip test at alpha 0.05; the secondaries are every other cycle × split
(holdout, dev, unseen, test = HumanEval), reported with p Holm-adjusted among themselves; the
primary, the one comparison decided in advance, is tested alone: met when its one-sided p is
below alpha. Seeds and the control are runs of their own, each pre-registered: `--set
run.seed=1`; `--set pairs.random_swap=true --set run.draws_of=<the real run's id>` (the control
trains on the real run's draws, so the two are compared on the same hold-out).

A config whose training suite is not its dev suite (`--config codeio`: CodeI/O training, all of
MBPP as dev) has no unseen split: the pool problems no cycle draws are CodeI/O problems, another
distribution than dev's. Its holdout is dev alone (all 381 MBPP problems that are not
near-duplicates of HumanEval), `unseen` is registered empty and nothing is evaluated on it, and
its endpoints are holdout and test (dev would repeat holdout).

`--store` should be outside the checkout for a long run (default `$AUTODIDACT_HOME/runs`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.efficacy import (  # noqa: E402
    AnalysisError,
    analysis_markdown,
    analyze,
    compare_markdown,
    compare_runs,
    read_outcomes,
)
from benchmarks.outcomes import evaluate_once, unseen, write_outcomes  # noqa: E402
from benchmarks.preregistration import (  # noqa: E402
    Refused,
    check_registration,
    committed_at,
    git_commit,
    identity,
    outcomes_before,
    pooled,
    preregister,
    registration_of,
)

OUT = Path(__file__).resolve().parent / "results" / "learning_efficacy"
COMMANDS = ("preregister", "run", "analyze", "compare")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["run", *argv]  # `run` is the default command
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except (Refused, AnalysisError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="`run` is the default command: `learning_efficacy.py --config efficacy` runs it. "
               "`COMMAND --help` lists each command's options; the module docstring says what "
               "each writes.")
    commands = parser.add_subparsers(dest="command", required=True)
    settings = argparse.ArgumentParser(add_help=False)
    settings.add_argument("--config", default="efficacy", help="a preset or a YAML path")
    settings.add_argument("--set", dest="overrides", action="append", default=[],
                          metavar="KEY=VALUE", help="a config override (tasks/config.py), e.g. "
                          "run.seed=1 or pairs.random_swap=true; repeatable")
    settings.add_argument("--cycles", type=int, default=None,
                          help="shorthand for --set run.cycles=N (default: the config's)")
    settings.add_argument("--store", default=None,
                          help="run store, i.e. run.store (default: the config's)")
    settings.add_argument("--out", default=str(OUT), help=f"results root (default {OUT})")
    pre = commands.add_parser("preregister", parents=[settings],
                              help="write <run id>/preregistration.json before the run")
    pre.set_defaults(func=preregister_command)
    run = commands.add_parser("run", parents=[settings],
                              help="the registered run, its unseen evaluations, the results")
    run.add_argument("--allow-uncommitted", action="store_true",
                     help="FOR TESTS ONLY: start although preregistration.json is not committed "
                          "in git; a run started so is not pre-registered")
    run.set_defaults(func=run_command)
    analysis = commands.add_parser("analyze", help="analysis.json and analysis.md from "
                                   "preregistration.json and outcomes.csv alone")
    analysis.add_argument("results_dir")
    analysis.set_defaults(func=analyze_command)
    side = commands.add_parser("compare", help="primary endpoints of several runs side by side")
    side.add_argument("runs", nargs="+", metavar="RESULTS_DIR")
    side.add_argument("--control", action="append", default=[], metavar="RESULTS_DIR",
                      help="a control run (e.g. random pairs): each run is set against it")
    side.add_argument("--out", default=None, help="also write compare.json and compare.md here")
    side.set_defaults(func=compare_command)
    return parser


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


def settings_of(args):
    """The resolved config and the overrides the flow gets."""
    from tasks.config import load_config

    overrides = list(args.overrides)
    if args.cycles:
        overrides.append(f"run.cycles={args.cycles}")
    if args.store:
        overrides.append(f"run.store={args.store}")
    return load_config(args.config, overrides), overrides


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


def preregister_command(args) -> int:
    cfg, _ = settings_of(args)
    preregister(cfg, Path(args.out),
                shlex.join(["python", "benchmarks/learning_efficacy.py", *args.argv]))
    return 0


def run_command(args) -> int:
    cfg, overrides = settings_of(args)
    run_id, config_hash, policy = identity(cfg)
    out = Path(args.out) / run_id
    registration = check_registration(out / "preregistration.json", run_id, config_hash,
                                      args.allow_uncommitted)
    registered = committed_at(out / "preregistration.json")
    if registered is None:  # --allow-uncommitted (tests): the file's own time
        registered = (out / "preregistration.json").stat().st_mtime
    early = outcomes_before(cfg.run.store_dir() / run_id, registered)
    if early:
        raise Refused(f"run {run_id} has {len(early)} evaluation file(s) in its store written "
                      f"before its registration was committed, e.g. {early[0]}: those outcomes "
                      "were seen before the endpoints were fixed. Register the run under other "
                      "settings (another run.name or run.seed), or use a store where it never "
                      "ran")
    # the problem sets again, with today's code and data: a change since the registration would
    # otherwise show only after the run, when its holdout turns out to be another
    now = registration_of(cfg, run_id, config_hash, policy, "")
    differ = [k for k in now["problems"] if now["problems"][k] != registration["problems"].get(k)]
    if "contents" in registration:  # registrations before 2026-12-06 hold the ids only
        differ += [f"the content of {k}" for k in now["contents"]
                   if now["contents"][k] != registration["contents"].get(k)]
    if differ:
        raise Refused(f"the problem sets of run {run_id} are no longer the registered ones "
                      f"({', '.join(differ)} differ): the code or the data that split and draw "
                      "the problems changed since the registration. Run at the registered "
                      "commit, or register anew under other settings")
    results, elapsed = self_train(args.config, overrides)
    finish(results, cfg, registration, out, elapsed)
    print((out / "table.md").read_text())
    print((out / "analysis.md").read_text())
    print(f"results: {out}")
    return 0


def self_train(config: str, overrides: list[str]):
    """The self-training flow (start=base), on the local Prefect server; (results, seconds)."""
    from flows.cli import _quiet_libraries
    from flows.server import ensure_server

    _quiet_libraries()
    ensure_server()
    from flows.self_training import self_training

    started = time.monotonic()
    results = self_training(config=config, overrides=overrides)
    return results, time.monotonic() - started


def analyze_command(args) -> int:
    print(analysis_markdown(write_analysis(Path(args.results_dir))))
    return 0


def write_analysis(out: Path) -> dict:
    """analysis.json and analysis.md of a results directory, from its two input files."""
    from tasks.records import write_atomic, write_json

    inputs = {name: out / name for name in ("preregistration.json", "outcomes.csv")}
    for name, path in inputs.items():
        if not path.exists():
            raise Refused(f"{path} does not exist: `analyze` needs the run's {name} (RESULTS_DIR "
                          "is benchmarks/results/learning_efficacy/<run id>)")
    analysis = analyze(json.loads(inputs["preregistration.json"].read_text()),
                       read_outcomes(inputs["outcomes.csv"]))
    analysis["inputs"] = {name: hashlib.sha256(path.read_bytes()).hexdigest()
                          for name, path in inputs.items()}
    write_json(out / "analysis.json", analysis)
    write_atomic(out / "analysis.md", analysis_markdown(analysis).encode())
    return analysis


def compare_command(args) -> int:
    from tasks.records import write_atomic, write_json

    def load(where: str) -> dict:
        d = Path(where)
        for name in ("preregistration.json", "outcomes.csv"):
            if not (d / name).exists():
                raise Refused(f"{d / name} does not exist: give results directories of "
                              "finished runs (benchmarks/results/learning_efficacy/<run id>)")
        return {"dir": d, "registration": json.loads((d / "preregistration.json").read_text()),
                "rows": read_outcomes(d / "outcomes.csv")}
    comparison = compare_runs([load(d) for d in args.runs], [load(d) for d in args.control])
    text = compare_markdown(comparison)
    if args.out:
        write_json(Path(args.out) / "compare.json", comparison)
        write_atomic(Path(args.out) / "compare.md", text.encode())
    print(text)
    return 0


# ---------------------------------------------------------------------------------------------
# After the flow: the unseen evaluations and the results
# ---------------------------------------------------------------------------------------------


def finish(results, cfg, registration: dict, out: Path, elapsed_s: float) -> None:
    """Evaluate every policy on the registered unseen problems (none when the hold-out is dev
    alone: `preregistration.pooled`), then write the results."""
    from tasks.policy import Policy
    from tasks.records import write_rows

    run_dir = Path(results[0].directory).parent
    if results[0].run_id != registration["run_id"]:
        raise Refused(f"the flow ran {results[0].run_id}, not the registered "
                      f"{registration['run_id']}")
    meta = json.loads((run_dir / "run.json").read_text())
    start = Policy.model_validate(meta["start_policy"])
    problems = unseen(run_dir, [r.cycle for r in results]) if pooled(cfg) else []
    got = {"dev": [o.problem_id for o in results[0].start_dev.outcomes],
           "unseen": [p.id for p in problems]}
    got["holdout"] = got["dev"] + got["unseen"]
    for split, ids in got.items():
        registered = registration["problems"][split]
        if set(ids) != set(registered):
            raise Refused(f"the run's {split} problems are not the registered ones "
                          f"({len(set(ids) - set(registered))} unregistered, "
                          f"{len(set(registered) - set(ids))} missing): the registration was "
                          "made for other problem sets, so this run is not pre-registered")
    on_unseen = {}  # policy id -> its unseen EvalResult; none when the hold-out is dev alone
    if problems:
        write_rows(run_dir / "problems" / "unseen.jsonl", problems)
        for policy in [start] + [r.trained or r.started_from for r in results]:
            if policy.id not in on_unseen:
                on_unseen[policy.id] = evaluate_once(
                    policy, problems, cfg.problems.train, "unseen", cfg,
                    run_dir / "evaluations" / policy.id / "unseen",
                    log=lambda m: print(m, flush=True))
    write_results(results, cfg, out, elapsed_s, on_unseen, registration)
    write_analysis(out)


def write_results(results, cfg, out: Path, elapsed_s: float, on_unseen: dict,
                  registration: dict) -> None:
    """outcomes.csv (dev, unseen, holdout = dev + unseen, test), table.md, scores.png, run.json;
    `on_unseen` maps each policy id to its unseen `EvalResult`; empty when the hold-out is dev
    alone (then no unseen rows, and holdout = dev)."""
    from tasks.evaluation import compare_results
    from tasks.report import markdown_table, plot_scores, run_table
    from tasks.summary import run_cycles

    out.mkdir(parents=True, exist_ok=True)
    first = results[0]
    cycles = run_cycles(results)

    groups = []
    for c in cycles:
        dev, test = c["dev"].outcomes, c["test"].outcomes
        splits = (("dev", dev), ("holdout", dev), ("test", test))
        if on_unseen:
            more = on_unseen[c["policy"]].outcomes
            splits = (("dev", dev), ("unseen", more), ("holdout", dev + more), ("test", test))
        groups += [(c["cycle"], c["policy"], split, outcomes) for split, outcomes in splits]
    write_outcomes(out / "outcomes.csv", groups)

    last = cycles[-1]
    # the run's deliverable is its champion (the best promoted policy on dev); the last trained
    # policy is shown too, promoted or not
    champion = results[-1].next_champion.id
    finals = [("last trained", last)] + [
        ("champion", c) for c in cycles[1:] if c["policy"] == champion and c is not last]
    chosen = ("the start policy: nothing was promoted" if champion == cycles[0]["policy"]
              else f"`{champion}`")
    final_rows = []
    for (which, final), split in ((f, sp) for f in finals for sp in ("dev", "test")):
        p = compare_results(final[split], cycles[0][split])
        s, g = p.score, p.greedy
        final_rows.append({
            "policy": f"{which} (cycle {final['cycle']})", "split": split, "problems": s.n,
            "start score": round(s.old_mean, 4),
            "final score": round(s.new_mean, 4), "diff": round(s.diff, 4),
            "95% CI": f"[{s.ci_low:+.4f}, {s.ci_high:+.4f}]",
            "p (better, sign flip)": round(s.p_greater, 4),
            "p (two-sided)": round(s.p_two_sided, 4),
            "greedy start": round(g.old_mean, 4), "greedy final": round(g.new_mean, 4),
            "McNemar b:c": f"{g.b}:{g.c}", "McNemar p": round(g.mcnemar_p, 4)})
    (out / "table.md").write_text(
        f"## {first.run_id}: {len(results)} cycles of `{cfg.run.name}` in "
        f"{elapsed_s / 60:.0f} min (this invocation; cached tasks take no time)\n\n"
        "Per cycle (0 = the start policy; score = fraction of greedy + sampled candidates "
        "passing, per problem, averaged; CI: 95% bootstrap):\n\n"
        + markdown_table(run_table(cycles))
        + "\nAgainst the start policy, paired by problem: the last cycle's trained policy, and the "
        f"champion at the end ({chosen}) when it is another:\n\n"
        + markdown_table(final_rows)
        + "\nThe pre-registered endpoints ("
        + ("holdout, unseen, dev, test" if on_unseen else "holdout = dev, test")
        + "; Holm-adjusted): analysis.md.\n")
    lengths = length_drift(results, cycles)
    with open(out / "table.md", "a") as f:
        f.write("\nLengths in characters (the length bias DPO can learn): each policy's mean "
                "response on dev and test (greedy and sampled candidates), and the mean chosen and "
                "rejected answer of the pairs each cycle trained on:\n\n"
                + markdown_table(lengths))
    plot_scores(cycles, out / "scores.png", f"{first.run_id}: dev and test over cycles")
    (out / "run.json").write_text(json.dumps({
        "run_id": first.run_id, "config": cfg.model_dump(mode="json"),
        "git_commit": git_commit()[0],
        "preregistration": {"registered_at": registration.get("registered_at"),
                            "git_commit": registration.get("git_commit"),
                            "sha256": hashlib.sha256(
                                (out / "preregistration.json").read_bytes()).hexdigest()},
        "unseen_problems": (len(next(iter(on_unseen.values())).outcomes) if on_unseen
                            else 0),
        "cycles": [{"cycle": r.cycle, "challenger": r.started_from.id,
                    "champion": r.champion.id, "trained": r.trained.id if r.trained else None,
                    "promoted": r.promoted, "decision": r.decision, "pairs": r.pairs,
                    "pairs_dropped": r.pairs_dropped, "cross_prompt": r.pairs_cross_prompt,
                    "training": r.training, "monitoring": r.monitoring.model_dump(mode="json"),
                    "exploration": r.exploration.model_dump(mode="json"),
                    "report": r.report} for r in results],
        "lengths": lengths}, indent=2) + "\n")


def length_drift(results, cycles) -> list[dict]:
    """Per cycle (0 = the start policy): the mean response length of its policy's dev and test
    candidates, read from the run's judged evaluation candidates, and of the pairs' chosen and
    rejected answers. Shrinking answers and chosen shorter than rejected are the length bias."""
    from tasks.pairs import Pair
    from tasks.report import mean_response_chars

    run_dir = Path(results[0].directory).parent

    def mean_response(policy_id: str, split: str) -> float | None:
        return mean_response_chars(run_dir / "evaluations" / policy_id / split / "attempts.jsonl")

    rows = []
    for c in cycles:
        row = {"cycle": c["cycle"], "policy": c["policy"],
               "dev response": mean_response(c["policy"], "dev"),
               "test response": mean_response(c["policy"], "test"),
               "pairs": None, "chosen": None, "rejected": None}
        result = next((r for r in results if r.cycle == c["cycle"]), None)
        if result is not None and result.trained is not None:
            pairs = list(result.pairs_file.read(Pair))
            if pairs:
                row.update(pairs=len(pairs),
                           chosen=round(sum(len(p.chosen) for p in pairs) / len(pairs), 1),
                           rejected=round(sum(len(p.rejected) for p in pairs) / len(pairs), 1))
        rows.append(row)
    return rows


if __name__ == "__main__":
    sys.exit(main())
