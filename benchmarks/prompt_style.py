"""Two evaluations of one policy on the same problems in two prompt styles, compared per problem.

    python benchmarks/prompt_style.py compare NEW_DIR OLD_DIR [--name NAME] [--out DIR]

NEW_DIR and OLD_DIR are evaluation directories (`<store>/evaluations/<...>/`, the `files:` line
`autodidact evaluate` prints), each with its result.json. They must hold the same problems. It
prints the greedy pass@1 of both, the paired difference with its 95% bootstrap interval and the
exact two-sided McNemar test on the discordant problems, and, with `--out`, writes
`<name>.csv` (one row per problem: both greedy outcomes and statuses) and `<name>.json` (the
comparison) there, so anyone can recompute it. benchmarks/results/prompt_style/plan.md says
which comparison decides what.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def outcomes(directory: Path) -> tuple[dict, dict]:
    """(result.json without its outcomes, {problem id: outcome}) of an evaluation directory."""
    path = directory / "result.json"
    if not path.is_file():
        raise SystemExit(f"error: {directory} has no result.json: give the directory "
                         "`autodidact evaluate` printed as `files:`")
    result = json.loads(path.read_text())
    rows = {row["problem_id"]: row for row in result.pop("outcomes")}
    return result, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("compare", help="greedy pass@1 of NEW against OLD, paired by problem")
    p.add_argument("new", type=Path)
    p.add_argument("old", type=Path)
    p.add_argument("--name", default="comparison", help="file stem of the outputs")
    p.add_argument("--out", type=Path, help="write <name>.csv and <name>.json here")
    args = parser.parse_args(argv)

    from tasks.stats import compare_binary

    new_meta, new = outcomes(args.new)
    old_meta, old = outcomes(args.old)
    if set(new) != set(old):
        print(f"error: the evaluations hold different problems ({len(set(new) ^ set(old))} "
              "differ): evaluate both on the same suite, -n and seed", file=sys.stderr)
        return 2
    ids = sorted(new)
    result = compare_binary([new[i]["greedy_passed"] for i in ids],
                            [old[i]["greedy_passed"] for i in ids])
    print(f"{args.name}: {len(ids)} problems ({new_meta['suite']}), greedy pass@1 "
          f"{result.new_mean:.3f} (new) vs {result.old_mean:.3f} (old): "
          f"{result.diff:+.3f} [{result.ci_low:+.3f}, {result.ci_high:+.3f}]; "
          f"passes only new {result.b}, only old {result.c}, McNemar p {result.mcnemar_p:.3g}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        with open(args.out / f"{args.name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["problem_id", "new_greedy_passed", "old_greedy_passed",
                             "new_status", "old_status"])
            for i in ids:
                writer.writerow([i, int(new[i]["greedy_passed"]), int(old[i]["greedy_passed"]),
                                 new[i]["greedy_status"], old[i]["greedy_status"]])
        (args.out / f"{args.name}.json").write_text(json.dumps(
            {"new": {k: v for k, v in new_meta.items() if k != "diversity"},
             "old": {k: v for k, v in old_meta.items() if k != "diversity"},
             "new_dir": str(args.new), "old_dir": str(args.old),
             "comparison": result.model_dump()}, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
