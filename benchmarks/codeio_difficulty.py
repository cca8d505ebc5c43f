"""How the base policy's success on CodeI/O problems depends on the length of their reference:
the measurement behind `problems.train_max_lines`.

Reads per-problem outcomes and the built CodeI/O set, and prints, for each limit on the
reference's lines of code (`reference_lines`, as `problems.train_max_lines` counts them), how
many of the problems it keeps, how many of those had any passing candidate, how many had both a
passing and a failing one (the problems preference pairs come from), how many lie in the
curriculum's 0.2-0.8 band, their mean passing fraction, and how many problems of the whole
built set it keeps (before decontamination). Nothing is sampled: it reads the outcomes and the
built set (`load_suite("codeio")`, which builds the set in the sandbox first when the cache has
none; it keeps 1,232 problems, the same every time).

    python benchmarks/codeio_difficulty.py [OUTCOMES] [--limits 10,15,20,25,40]
    python benchmarks/codeio_difficulty.py RUN/cycle-1/execute/attempts.jsonl --save CSV
    python benchmarks/codeio_difficulty.py [OUTCOMES] --built DATA/codeio/<key>/problems.jsonl

OUTCOMES is one of:
- an evaluation's `result.json` (default: the committed base-policy evaluation of 100 CodeI/O
  problems, `benchmarks/results/codeio_base/result.json`): a problem's candidates are its greedy
  and sampled ones;
- a cycle's `execute/attempts.jsonl`: its first tries, per problem; `--save` writes them as
  per-problem counts (problem_id, candidates, passed, syntax_error; the last empty where the
  outcomes do not say), the form to commit;
- such a CSV.

A problem of the outcomes that the built set does not hold (the committed outcomes were measured
on an earlier build, which kept 7 problems more: docs/problems.md) is named and left out of the
table.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RESULT = Path(__file__).resolve().parent / "results" / "codeio_base" / "result.json"
FIELDS = ("problem_id", "candidates", "passed", "syntax_error")


def read_outcomes(path: Path) -> list[dict]:
    """Per problem: problem_id, candidates, passed, syntax_error (None when not known)."""
    if path.suffix == ".json":
        return [{"problem_id": o["problem_id"], "candidates": o["samples"] + 1,
                 "passed": o["samples_passed"] + int(o["greedy_passed"]), "syntax_error": None}
                for o in json.loads(path.read_text())["outcomes"]]
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            return [{"problem_id": r["problem_id"], "candidates": int(r["candidates"]),
                     "passed": int(r["passed"]),
                     "syntax_error": int(r["syntax_error"]) if r["syntax_error"] else None}
                    for r in csv.DictReader(f)]
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line]
        first = [r for r in rows if r.get("turn", 0) == 0]
        counts = {key: Counter() for key in ("candidates", "passed", "syntax_error")}
        for r in first:
            counts["candidates"][r["problem_id"]] += 1
            counts["passed"][r["problem_id"]] += r["status"] == "passed"
            counts["syntax_error"][r["problem_id"]] += r["status"] == "syntax_error"
        return [{"problem_id": pid, **{key: counts[key][pid] for key in counts}}
                for pid in sorted(counts["candidates"])]
    raise SystemExit(f"{path}: give an evaluation's result.json, a cycle's attempts.jsonl or a "
                     "CSV this script saved")


def table(outcomes: list[dict], lengths: dict[str, int], limits: list[int]) -> list[dict]:
    """One row per limit over the problems whose reference is at most that long."""
    rows = []
    for limit in limits:
        kept = [o for o in outcomes if lengths[o["problem_id"]] <= limit]
        rates = [o["passed"] / o["candidates"] for o in kept]
        rows.append({"max_lines": limit, "problems": len(kept),
                     "any_pass": sum(r > 0 for r in rates),
                     "mixed": sum(0 < r < 1 for r in rates),
                     "in_band": sum(0.2 <= r <= 0.8 for r in rates),
                     "mean_pass": sum(rates) / len(rates) if rates else float("nan"),
                     "set_kept": sum(n <= limit for n in lengths.values())})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outcomes", type=Path, nargs="?", default=RESULT,
                        help="result.json, attempts.jsonl or a saved CSV")
    parser.add_argument("--limits", default="10,12,15,20,25,30,40",
                        help="limits on the reference's lines of code, comma-separated")
    parser.add_argument("--save", type=Path, help="write the per-problem counts to this CSV")
    parser.add_argument("--built", type=Path,
                        help="the problems.jsonl of a CodeI/O build to count lengths on "
                             "(default: the build of this code, load_suite('codeio'))")
    args = parser.parse_args(argv)
    from tasks.problems.records import Problem
    from tasks.problems.split import load_suite, reference_lines

    limits = sorted(int(x) for x in args.limits.split(","))
    outcomes = read_outcomes(args.outcomes)
    if args.save:
        with args.save.open("w", newline="") as f:
            writer = csv.DictWriter(f, FIELDS)
            writer.writeheader()
            writer.writerows(outcomes)
        print(f"wrote {len(outcomes)} problems to {args.save}")
    built = ([Problem.model_validate_json(line) for line in args.built.read_text().splitlines()
              if line] if args.built else load_suite("codeio"))
    lengths = {p.id: reference_lines(p) for p in built}
    missing = [o["problem_id"] for o in outcomes if o["problem_id"] not in lengths]
    if missing:
        print(f"not in the built set, left out: {', '.join(missing)}")
    outcomes = [o for o in outcomes if o["problem_id"] in lengths]
    candidates = sum(o["candidates"] for o in outcomes)
    cut = [o["syntax_error"] for o in outcomes if o["syntax_error"] is not None]
    print(f"{len(outcomes)} problems, {candidates} candidates, "
          f"{sum(o['passed'] for o in outcomes)} passed"
          + (f", {sum(cut)} syntax errors" if cut else "")
          + f" ({args.outcomes}); built set: {len(lengths)} problems")
    print(f"{'max lines':>9} {'problems':>8} {'any pass':>8} {'mixed':>5} {'0.2-0.8':>7} "
          f"{'mean pass':>9} {'set kept':>8}")
    for row in table(outcomes, lengths, limits):
        print(f"{row['max_lines']:>9} {row['problems']:>8} {row['any_pass']:>8} "
              f"{row['mixed']:>5} {row['in_band']:>7} {row['mean_pass']:>9.3f} "
              f"{row['set_kept']:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
