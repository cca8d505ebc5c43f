"""Learning efficacy: does the embedded default model get better at writing code by itself?

Runs the self-training flow on `configs/efficacy.yaml` (N cycles of the real loop on
Qwen2.5-Coder-0.5B-Instruct, sized to finish in about two hours on 2 CPU cores) as a normal,
resumable flow run: run it again after an interruption and every finished task comes from the
cache. Then writes, under `benchmarks/results/learning_efficacy/<run id>/` (the run id names the
config, so a run with other settings does not overwrite an earlier one's results):

    outcomes.csv   every policy's raw outcome on every dev and test problem (greedy passed, samples,
                   samples passed): every number below can be recomputed from it
    table.md       per cycle: dev and test greedy / sampled pass@1 and the per-problem score with
                   its 95% bootstrap CI; then the final policy paired against the start policy
                   (difference, CI, one- and two-sided sign-flip p, McNemar exact p)
    scores.png     the scores over cycles
    run.json       the run id, the config, the decisions and the B-STaR numbers of each cycle

    python benchmarks/learning_efficacy.py [--cycles 3] [--store DIR] [--config efficacy]

`--store` should be outside the checkout for a long run (default `$AUTODIDACT_HOME/runs`).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OUT = Path(__file__).resolve().parent / "results" / "learning_efficacy"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="efficacy")
    parser.add_argument("--cycles", type=int, default=None, help="default: the config's")
    parser.add_argument("--store", default=None, help="run store (default: the config's)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)

    from flows.cli import _quiet_libraries
    from flows.server import ensure_server
    from tasks.config import load_config

    overrides = []
    if args.cycles:
        overrides.append(f"run.cycles={args.cycles}")
    if args.store:
        overrides.append(f"run.store={args.store}")
    cfg = load_config(args.config, overrides)
    _quiet_libraries()
    ensure_server()
    from flows.self_training import self_training

    started = time.monotonic()
    results = self_training(config=args.config, overrides=overrides)
    elapsed = time.monotonic() - started
    out = Path(args.out) / results[0].run_id
    write_results(results, cfg, out, elapsed)
    print((out / "table.md").read_text())
    print(f"results: {out}")
    return 0


def write_results(results, cfg, out: Path, elapsed_s: float) -> None:
    from tasks.evaluation import compare_results
    from tasks.report import markdown_table, plot_scores, run_table

    from tasks.summary import run_cycles

    out.mkdir(parents=True, exist_ok=True)
    first = results[0]
    cycles = run_cycles(results)

    with open(out / "outcomes.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["cycle", "policy", "split", "problem_id", "greedy_passed", "samples",
                         "samples_passed", "distinct_passing"])
        for c in cycles:
            for split in ("dev", "test"):
                for o in c[split].outcomes:
                    writer.writerow([c["cycle"], c["policy"], split, o.problem_id,
                                     int(o.greedy_passed), o.samples, o.samples_passed,
                                     o.distinct_passing])

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
        + markdown_table(final_rows))
    lengths = length_drift(results, cycles)
    with open(out / "table.md", "a") as f:
        f.write("\nLengths in characters (the length bias DPO can learn): each policy's mean "
                "response on dev and test (greedy and sampled candidates), and the mean chosen and "
                "rejected answer of the pairs each cycle trained on:\n\n"
                + markdown_table(lengths))
    plot_scores(cycles, out / "scores.png", f"{first.run_id}: dev and test over cycles")
    (out / "run.json").write_text(json.dumps({
        "run_id": first.run_id, "config": cfg.model_dump(mode="json"),
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
