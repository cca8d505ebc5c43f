"""Evaluate a finished run's policies on a problem set of the run, each paired with the start.

Two uses:
  --split unseen   the problems of the run's training pool that no cycle drew: held out from
                   training and from every promotion decision (dev decides), so a second,
                   untouched measurement on the training distribution (MBPP for `efficacy`);
  --split dev|test the run's own sets again with the code of today (after an evaluation fix,
                   the scores a run recorded are those of the old code); the recorded scores are
                   shown beside.

The policies are the ones the run recorded (`summary.json`: each cycle's `trained`, base model
plus the chain of adapters; the start is `run.json`'s `start_policy`), evaluated with the run's own
config (`config.yaml`: greedy + `evaluation.n_samples` samples, its backend and sandbox).

    python benchmarks/reevaluate.py --run-dir STORE/RUN_ID --split unseen [--cycles 1,3]
        [--out benchmarks/results/reevaluate/RUN_ID]

Writes `<out>/<split>/problems.jsonl`, `<out>/<split>/<policy id>/` (attempts.jsonl and
result.json: the raw per-problem outcomes), `<out>/<split>/outcomes.csv` (one row per problem
and policy, in the columns of learning_efficacy.py's), `<out>/report-<split>.json` and
`<out>/table-<split>.md` (each cycle paired with the start). A policy already evaluated there is
read back, so an interrupted invocation goes on where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.outcomes import evaluate_once, read_problems, unseen, write_outcomes  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "reevaluate"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, help="STORE/RUN_ID of a finished run")
    parser.add_argument("--split", default="unseen", choices=("unseen", "dev", "test"))
    parser.add_argument("--cycles", help="which cycles' trained policies (default: all)")
    parser.add_argument("--out", help="default: benchmarks/results/reevaluate/<run id>")
    args = parser.parse_args(argv)

    from tasks.config import load_config
    from tasks.evaluation import EvalResult
    from tasks.policy import Policy
    from tasks.records import write_rows
    from tasks.report import markdown_table, paired_rows, score_ci

    run_dir = Path(args.run_dir).resolve()
    for needed in ("run.json", "config.yaml", "summary.json", "problems/pool.jsonl"):
        if not (run_dir / needed).exists():
            parser.error(f"{run_dir / needed} is missing: --run-dir must be the directory of a "
                         f"finished run (STORE/RUN_ID, with its summary.json)")
    run = json.loads((run_dir / "run.json").read_text())
    cycles = json.loads((run_dir / "summary.json").read_text())
    cfg = load_config(run_dir / "config.yaml")
    done = [c["cycle"] for c in cycles]
    wanted = [int(c) for c in args.cycles.split(",")] if args.cycles else done
    missing = sorted(set(wanted) - set(done))
    if missing:
        parser.error(f"--cycles {args.cycles}: the run has no finished cycle {missing} "
                     f"(it has {done})")
    if args.split == "unseen":
        problems, suite = unseen(run_dir, done), cfg.problems.train
        if not problems:
            parser.error(f"every problem of {run_dir / 'problems' / 'pool.jsonl'} was drawn "
                         "for training: the run has no unseen problems")
    else:
        problems = read_problems(run_dir / "problems" / f"{args.split}.jsonl")
        suite = getattr(cfg.problems, args.split)
    out = (Path(args.out) if args.out else OUT / run["run_id"]).resolve()
    write_rows(out / args.split / "problems.jsonl", problems)

    def result(policy: Policy) -> EvalResult:
        return evaluate_once(policy, problems, suite, args.split, cfg,
                             out / args.split / policy.id, log=lambda m: print(m, flush=True))

    def recorded(policy_id: str) -> EvalResult | None:
        if args.split == "unseen":
            return None
        path = run_dir / "evaluations" / policy_id / args.split / "result.json"
        return EvalResult.model_validate_json(path.read_text()) if path.exists() else None

    def scores(r: EvalResult | None) -> dict | None:
        if r is None:
            return None
        return {"greedy": round(r.pass1_greedy, 4), "sampled": round(r.pass1_sampled, 4),
                "score": round(score_ci(r)[0], 4)}

    start_policy = Policy.model_validate(run["start_policy"])
    start = result(start_policy)
    report = {"run": run["run_id"], "split": args.split, "suite": str(suite),
              "problems": len(problems),
              "start": {"policy": start_policy.id, "now": scores(start),
                        "recorded": scores(recorded(start_policy.id))},
              "cycles": []}
    evaluated = [(0, start_policy.id, start)]
    paired = []
    for c in cycles:
        if c["cycle"] not in wanted:
            continue
        policy = Policy.model_validate(c["trained"])
        trained = result(policy)
        evaluated.append((c["cycle"], policy.id, trained))
        (row,) = paired_rows(trained, {"start": start})
        paired.append({"cycle": c["cycle"], **row})
        report["cycles"].append({"cycle": c["cycle"], "policy": policy.id,
                                 "now": scores(trained), "recorded": scores(recorded(policy.id)),
                                 "against start": row})
    # the columns of learning_efficacy.py's outcomes.csv, so the two files pool by concatenation
    write_outcomes(out / args.split / "outcomes.csv",
                   ((n, policy_id, args.split, r.outcomes) for n, policy_id, r in evaluated))
    (out / f"report-{args.split}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"table-{args.split}.md").write_text(markdown_table(paired))
    print(markdown_table(paired))
    return 0


if __name__ == "__main__":
    sys.exit(main())
