"""Learning efficacy, the analysis: the endpoints a run registers before it starts, tested on its
`outcomes.csv` (benchmarks/learning_efficacy.py writes both files; this module reads nothing
else, and opens no model, run store or Prefect).

The splits of an efficacy run, each a list of problem ids fixed before the run:

    dev       the run's dev problems (problems.dev_n of the dev suite): they decide promotion
    unseen    the training pool's problems that no cycle 1..N draws: never trained on, never
              used to decide anything
    holdout   dev ∪ unseen: every problem of the training distribution that no cycle trained on
    test      the test suite (HumanEval): reported, never used to decide anything

That is a run whose training and dev problems come from one suite (MBPP). When the training
suite is another one (`codeio`, with all of MBPP as dev), its undrawn problems are another
distribution than dev's, so the hold-out is dev alone: `unseen` is registered empty, holdout =
dev, and the endpoints are holdout and test only (dev would repeat holdout): `DEV_HOLDOUT_SPLITS`.

An endpoint is one split and one cycle c against cycle 0 (the start policy): the mean over the
split's problems of the paired difference of `ProblemOutcome.score` (the fraction of a problem's
1 + n greedy and sampled candidates that pass), with its 95% bootstrap CI and a one-sided
("greater") paired sign-flip p-value. Cycle c's policy is the one cycle c ended with (its trained
policy; the policy it started from when it trained nothing), as in outcomes.csv.

- **primary**: holdout, cycle N (`run.cycles`) against cycle 0, at alpha 0.05;
- **secondary**: every other cycle × split (cycles 1..N × holdout, dev, unseen, test; × holdout,
  test when the hold-out is dev alone);
- **correction**: the primary is the one comparison decided in advance: it is *met* when its
  one-sided p is below alpha, tested alone. Every secondary endpoint is reported with its p
  Holm-adjusted over the secondaries (the comparisons looked at besides the primary).

Functions: `endpoints` and `holdout_sets` build a registration's parts; `read_outcomes` reads
the CSV; `analyze` tests every registered endpoint; `compare_runs` puts the primaries of
several runs (seeds, a control) side by side; `*_markdown` render them.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

from tasks.stats import (
    compare,
    holm,
    independent_bootstrap_ci,
    mcnemar_exact,
    paired_bootstrap_ci,
    sign_flip_p,
)

SPLITS = ("holdout", "dev", "unseen", "test")
DEV_HOLDOUT_SPLITS = ("holdout", "test")
"""The endpoint splits when the hold-out is dev alone (a training suite other than the dev suite):
unseen is empty, and dev, the same problems as holdout, would only repeat its endpoints."""
STATISTIC = ("mean paired per-problem score difference (ProblemOutcome.score), one-sided paired "
             "sign-flip test")
SPLIT_MEANING = {
    "dev": "the run's dev problems (decide promotion)",
    "unseen": "the training pool's problems no cycle 1..N draws",
    "holdout": "dev ∪ unseen: the training distribution's problems no cycle trained on",
    "test": "the test suite (problems.test), reported only",
}
SPLIT_MEANING_DEV_HOLDOUT = {
    "dev": "the run's dev problems (decide promotion): all of the dev suite less its "
           "near-duplicates of the test suite when problems.dev_n is null",
    "unseen": "empty, not an endpoint: the training suite is not the dev suite, so the pool "
              "problems no cycle draws are another distribution than dev's",
    "holdout": "dev alone (the same problems; dev is not an endpoint of its own)",
    "test": "the test suite (problems.test), reported only",
}


class AnalysisError(ValueError):
    """Outcomes that do not fit their registration (missing rows, other problems)."""


# ---------------------------------------------------------------------------------------------
# The registration's parts
# ---------------------------------------------------------------------------------------------


def endpoints(cycles: int, alpha: float = 0.05, splits: Sequence[str] = SPLITS) -> dict:
    """The primary and secondary endpoints of a run of `cycles` cycles, and the correction;
    `splits`: those with endpoints (`DEV_HOLDOUT_SPLITS` when the hold-out is dev alone)."""
    if cycles < 1:
        raise ValueError(f"a run has at least one cycle; got {cycles}")
    if "holdout" not in splits or set(splits) - set(SPLITS):
        raise ValueError(f"endpoint splits {list(splits)}: holdout (the primary's) and any of "
                         f"{', '.join(SPLITS)}")

    def endpoint(split: str, cycle: int) -> dict:
        return {"split": split, "cycle": cycle, "baseline_cycle": 0, "statistic": STATISTIC,
                "alternative": "greater"}
    return {"primary": {**endpoint("holdout", cycles), "alpha": alpha},
            "secondary": [endpoint(split, cycle) for cycle in range(1, cycles + 1)
                          for split in splits if (split, cycle) != ("holdout", cycles)],
            "correction": "holm",
            "family": "the primary is tested alone at alpha (met when its one-sided p < "
                      "alpha); the secondary endpoints are Holm-adjusted among themselves"}


def holdout_sets(pool: Sequence[str], dev: Sequence[str], test: Sequence[str],
                 draws: dict[int, Sequence[str]], pooled: bool = True) -> dict:
    """The problem ids of every split, from the pool, dev and test ids and each cycle's draw;
    `pooled` False: the hold-out is dev alone, unseen empty (a training suite of its own)."""
    drawn = {pid for ids in draws.values() for pid in ids}
    unseen = [pid for pid in pool if pid not in drawn] if pooled else []
    return {"dev": list(dev), "unseen": unseen, "holdout": list(dev) + unseen,
            "test": list(test), "train_draws": {str(c): list(ids) for c, ids in draws.items()}}


# ---------------------------------------------------------------------------------------------
# Outcomes
# ---------------------------------------------------------------------------------------------


def read_outcomes(path: str | Path) -> list[dict]:
    """The rows of an outcomes.csv, typed (cycle and counts as int, greedy_passed as bool)."""
    rows = []
    with open(path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                rows.append({"cycle": int(row["cycle"]), "policy": row["policy"],
                             "split": row["split"], "problem_id": row["problem_id"],
                             "greedy_passed": bool(int(row["greedy_passed"])),
                             "samples": int(row["samples"]),
                             "samples_passed": int(row["samples_passed"]),
                             "distinct_passing": int(row["distinct_passing"] or 0)})
            except (KeyError, TypeError, ValueError) as exc:
                raise AnalysisError(f"{path}, line {line}: not an outcomes row ({exc}); the "
                                    f"columns are cycle, policy, split, problem_id, "
                                    f"greedy_passed, samples, samples_passed, "
                                    f"distinct_passing") from None
    return rows


def score(row: dict) -> float:
    """`ProblemOutcome.score` of a row: the fraction of its 1 + n candidates that passed."""
    return (row["greedy_passed"] + row["samples_passed"]) / (1 + row["samples"])


def _group(rows: Sequence[dict], split: str, cycle: int) -> list[dict]:
    group = [r for r in rows if r["split"] == split and r["cycle"] == cycle]
    if not group:
        raise AnalysisError(f"outcomes.csv has no {split} rows for cycle {cycle}: the registered "
                            f"endpoints need every cycle 0..N on every split")
    ids = [r["problem_id"] for r in group]
    if len(set(ids)) != len(ids):
        raise AnalysisError(f"outcomes.csv lists a {split} problem twice for cycle {cycle}")
    return group


def check_problems(rows: Sequence[dict], registered: dict, cycles: int) -> None:
    """Every split's rows of every cycle cover exactly its registered problem ids (a split
    registered empty, unseen when the hold-out is dev alone, has no rows)."""
    for split in SPLITS:
        if split not in registered:
            continue
        want = set(registered[split])
        if not want:
            if any(r["split"] == split for r in rows):
                raise AnalysisError(f"outcomes.csv has {split} rows, but the registration "
                                    f"holds no {split} problems")
            continue
        for cycle in range(cycles + 1):
            have = {r["problem_id"] for r in _group(rows, split, cycle)}
            if have != want:
                raise AnalysisError(
                    f"the {split} rows of cycle {cycle} are not the registered {split} problems: "
                    f"{len(have - want)} unregistered (e.g. {sorted(have - want)[:3]}), "
                    f"{len(want - have)} missing (e.g. {sorted(want - have)[:3]})")


# ---------------------------------------------------------------------------------------------
# Endpoints
# ---------------------------------------------------------------------------------------------


def per_problem_gain(rows: Sequence[dict], split: str, cycle: int,
                     baseline: int = 0) -> dict[str, float]:
    """Problem id → score(cycle) − score(baseline), in the order of the cycle's rows."""
    new, old = _group(rows, split, cycle), _group(rows, split, baseline)
    before = {r["problem_id"]: r for r in old}
    if set(before) != {r["problem_id"] for r in new}:
        raise AnalysisError(f"{split}: cycle {cycle} and cycle {baseline} cover different "
                            "problems; an endpoint pairs the same problems")
    return {r["problem_id"]: score(r) - score(before[r["problem_id"]]) for r in new}


def endpoint_result(rows: Sequence[dict], endpoint: dict, seed: int = 0) -> dict:
    """One endpoint: both mean scores, the paired difference with its 95% bootstrap CI, the
    sign-flip p (registered alternative, and two-sided), greedy McNemar b:c and exact p.

    Problems are paired in the order of the cycle's rows (the evaluation's order), so the numbers
    equal those of table.md, which pairs `EvalResult`s with `compare_results`."""
    split, cycle, base = endpoint["split"], endpoint["cycle"], endpoint["baseline_cycle"]
    new = _group(rows, split, cycle)
    before = {r["problem_id"]: r for r in _group(rows, split, base)}
    if set(before) != {r["problem_id"] for r in new}:
        raise AnalysisError(f"{split}: cycle {cycle} and cycle {base} cover different problems")
    old = [before[r["problem_id"]] for r in new]
    c = compare([score(r) for r in new], [score(r) for r in old], seed=seed)
    alternative = endpoint.get("alternative", "greater")
    p = {"greater": c.p_greater, "two-sided": c.p_two_sided}.get(alternative)
    if p is None:
        p = sign_flip_p([score(a) - score(b) for a, b in zip(new, old)], seed=seed,
                        alternative=alternative)
    b = sum(r["greedy_passed"] and not o["greedy_passed"] for r, o in zip(new, old))
    cc = sum(o["greedy_passed"] and not r["greedy_passed"] for r, o in zip(new, old))
    return {"split": split, "cycle": cycle, "baseline_cycle": base, "n": c.n,
            "policy": new[0]["policy"], "baseline_policy": old[0]["policy"],
            "baseline_score": c.old_mean, "score": c.new_mean, "diff": c.diff,
            "ci_low": c.ci_low, "ci_high": c.ci_high, "alternative": alternative, "p": p,
            "p_two_sided": c.p_two_sided, "improved": c.improved, "worsened": c.worsened,
            "greedy_baseline": sum(o["greedy_passed"] for o in old) / c.n,
            "greedy": sum(r["greedy_passed"] for r in new) / c.n,
            "mcnemar_b": b, "mcnemar_c": cc, "mcnemar_p": mcnemar_exact(b, cc)}


# the start-score buckets of `by_start_score`: (label, test on the start score)
START_BUCKETS = (("0 (nothing passed)", lambda s: s == 0),
                 ("(0, 0.5)", lambda s: 0 < s < 0.5),
                 ("[0.5, 1)", lambda s: 0.5 <= s < 1),
                 ("1 (everything passed)", lambda s: s == 1))


def by_start_score(rows: Sequence[dict], split: str, cycle: int, baseline: int = 0) -> list[dict]:
    """Descriptive, never tested: where on `split` the movement from `baseline` to `cycle` came
    from, by the problem's start score. Per bucket: problems, mean start and final score, mean
    difference, problems improved and worsened. A bucket at 0 can only rise and one at 1 only
    fall, so the ends show regression to the mean as much as learning."""
    gain = per_problem_gain(rows, split, cycle, baseline)
    start = {r["problem_id"]: score(r) for r in _group(rows, split, baseline)}
    table = []
    for label, inside in START_BUCKETS:
        ids = [pid for pid in gain if inside(start[pid])]
        n = len(ids)
        table.append({
            "start score": label, "problems": n,
            "start": round(sum(start[i] for i in ids) / n, 4) if n else None,
            "final": round(sum(start[i] + gain[i] for i in ids) / n, 4) if n else None,
            "diff": round(sum(gain[i] for i in ids) / n, 4) if n else None,
            "improved": sum(gain[i] > 0 for i in ids),
            "worsened": sum(gain[i] < 0 for i in ids)})
    return table


def analyze(registration: dict, rows: Sequence[dict]) -> dict:
    """Every registered endpoint on `rows`, and whether the primary is met (its one-sided p <
    the registered alpha: the one comparison decided in advance, tested alone). The secondary
    endpoints' p-values are Holm-adjusted among themselves; the primary's `p_holm` is its own
    p (a family of one)."""
    primary = registration["primary"]
    family = [primary] + list(registration["secondary"])
    if registration.get("correction", "holm") != "holm":
        raise AnalysisError(f"correction {registration['correction']!r}: only 'holm' is done")
    check_problems(rows, registration.get("problems", {}), primary["cycle"])
    results = [endpoint_result(rows, e) for e in family]
    first, rest = results[0], results[1:]
    first["p_holm"] = first["p"]
    for r, adjusted in zip(rest, holm([r["p"] for r in rest])):
        r["p_holm"] = adjusted
    alpha = primary["alpha"]
    return {"run_id": registration["run_id"], "config_hash": registration["config_hash"],
            "registered": {k: registration.get(k) for k in ("git_commit", "registered_at")},
            "alpha": alpha, "correction": "holm", "family_size": len(rest),
            "primary": {**first, "role": "primary"},
            "secondary": [{**r, "role": "secondary"} for r in rest],
            "primary_met": first["p"] < alpha,
            "by_start_score": by_start_score(rows, primary["split"], primary["cycle"],
                                             primary["baseline_cycle"])}


def _fmt(x: float) -> str:
    return f"{x:+.4f}"


def _row(r: dict) -> dict:
    return {"endpoint": r["role"], "split": r["split"], "cycle": r["cycle"], "n": r["n"],
            "baseline score": round(r["baseline_score"], 4), "score": round(r["score"], 4),
            "diff": round(r["diff"], 4),
            "95% CI": f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]",
            f"p ({r['alternative']})": round(r["p"], 4),
            "p (two-sided)": round(r["p_two_sided"], 4),
            "greedy": f"{r['greedy_baseline']:.3f} → {r['greedy']:.3f}",
            "McNemar b:c": f"{r['mcnemar_b']}:{r['mcnemar_c']}",
            "McNemar p": round(r["mcnemar_p"], 4), "Holm p": round(r["p_holm"], 4)}


def analysis_markdown(analysis: dict) -> str:
    from tasks.report import markdown_table

    p = analysis["primary"]
    verdict = "**met**" if analysis["primary_met"] else "**not met**"
    commit = (analysis["registered"].get("git_commit") or "?")[:12]
    return (
        f"## {analysis['run_id']}: pre-registered endpoints\n\n"
        f"Registered at commit `{commit}` ({analysis['registered'].get('registered_at')}), "
        f"config hash `{analysis['config_hash']}`. Every endpoint: cycle c against cycle 0 (the "
        "start policy), paired by problem; score = fraction of a problem's greedy + sampled "
        "candidates passing; CI: 95% bootstrap; p: paired sign flip. The primary is tested "
        "alone, as registered; the secondary endpoints' p are Holm-adjusted over the "
        f"{analysis['family_size']} of them.\n\n"
        f"Primary endpoint ({p['split']}, cycle {p['cycle']} vs 0, {p['n']} problems): diff "
        f"{_fmt(p['diff'])} [{_fmt(p['ci_low'])}, {_fmt(p['ci_high'])}], one-sided p "
        f"{p['p']:.4g}: {verdict} (needs p < {analysis['alpha']:g}).\n\n"
        + markdown_table([_row(r) for r in [p] + analysis["secondary"]])
        + (f"\nDescriptive, not tested: the primary's movement ({p['split']}, cycle "
           f"{p['cycle']} vs 0) by the problem's start score. Problems at 0 can only rise and "
           "problems at 1 only fall:\n\n" + markdown_table(analysis["by_start_score"])
           if analysis.get("by_start_score") else ""))


# ---------------------------------------------------------------------------------------------
# Several runs
# ---------------------------------------------------------------------------------------------


def compare_runs(runs: Sequence[dict], controls: Sequence[dict] = (), seed: int = 0) -> dict:
    """The primary endpoints of runs and controls side by side, and each run against each
    control: the difference of their primary diffs.

    Each item is `{"dir", "registration", "rows"}`. A run's primary is tested on its own holdout.
    Runs of other settings have other run ids, hence other training draws and other unseen
    problems (dev is the same when the problems config is): so run − control is given over
    their own holdouts (unpaired: each run's per-problem gains resampled on their own), and,
    where some holdout problems are shared, paired by problem on those (sign-flip p of "the run
    gains more than the control")."""
    def primary_of(item: dict) -> dict:
        reg = item["registration"]
        analysis = analyze(reg, item["rows"])
        p = analysis["primary"]
        config = reg.get("config", {})
        return {"run_id": reg["run_id"], "dir": str(item["dir"]),
                "seed": config.get("run", {}).get("seed"),
                "random_swap": config.get("pairs", {}).get("random_swap"),
                "n": p["n"], "baseline_score": p["baseline_score"], "score": p["score"],
                "diff": p["diff"], "ci_low": p["ci_low"], "ci_high": p["ci_high"], "p": p["p"],
                "p_holm": p["p_holm"], "met": analysis["primary_met"],
                "gains": per_problem_gain(item["rows"], p["split"], p["cycle"]),
                "final": {r["problem_id"]: score(r)
                          for r in _group(item["rows"], p["split"], p["cycle"])},
                "start": {r["problem_id"]: score(r) for r in _group(item["rows"], p["split"], 0)}}
    real = [primary_of(r) for r in runs]
    ctrl = [primary_of(c) for c in controls]
    against = []
    for a in real:
        for b in ctrl:
            shared = [pid for pid in a["gains"] if pid in b["gains"]]
            same = set(a["gains"]) == set(b["gains"])
            unpaired = None if same else list(independent_bootstrap_ci(
                list(a["gains"].values()), list(b["gains"].values()), seed=seed))
            row = {"run": a["run_id"], "control": b["run_id"], "diff": a["diff"] - b["diff"],
                   "unpaired_ci": unpaired,
                   "n_run": a["n"], "n_control": b["n"], "shared": len(shared),
                   "paired": None}
            if shared:
                d = [a["gains"][pid] - b["gains"][pid] for pid in shared]
                pl, ph = paired_bootstrap_ci(d, seed=seed)
                # the final policies' scores paired directly (the plan's statistic for a
                # control on the real run's draws); equal to the gains' difference when both
                # runs' start evaluations agree, which `same_start` says
                f = [a["final"][pid] - b["final"][pid] for pid in shared]
                fl, fh = paired_bootstrap_ci(f, seed=seed)
                row["paired"] = {"n": len(shared), "diff": math.fsum(d) / len(d),
                                 "ci_low": pl, "ci_high": ph,
                                 "p_greater": sign_flip_p(d, seed=seed, alternative="greater"),
                                 "same_holdout": same,
                                 "final_diff": math.fsum(f) / len(f), "final_ci_low": fl,
                                 "final_ci_high": fh,
                                 "final_p_greater": sign_flip_p(f, seed=seed,
                                                                alternative="greater"),
                                 "same_start": all(a["start"][pid] == b["start"][pid]
                                                   for pid in shared)}
            against.append(row)
    strip = [{k: v for k, v in r.items() if k not in ("gains", "final", "start")}
             for r in real + ctrl]
    return {"runs": strip[:len(real)], "controls": strip[len(real):], "against": against}


def compare_markdown(comparison: dict) -> str:
    from tasks.report import markdown_table

    def line(r: dict, kind: str) -> dict:
        return {"run": r["run_id"], "kind": kind, "seed": r["seed"],
                "random_swap": r["random_swap"], "holdout n": r["n"],
                "cycle 0": round(r["baseline_score"], 4), "cycle N": round(r["score"], 4),
                "diff": round(r["diff"], 4),
                "95% CI": f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]",
                "p (greater)": round(r["p"], 4), "Holm p": round(r["p_holm"], 4),
                "met": r["met"]}
    text = ("Primary endpoints (holdout, cycle N vs 0), each run on its own holdout: a run of "
            "other settings has another run id, so other training draws and other unseen "
            "problems.\n\n"
            + markdown_table([line(r, "run") for r in comparison["runs"]]
                             + [line(r, "control") for r in comparison["controls"]]))
    rows = []
    for r in comparison["against"]:
        if r["unpaired_ci"] is not None:
            low, high = r["unpaired_ci"]
            rows.append({"run − control": f"{r['run']} − {r['control']}",
                         "how": f"unpaired, own holdouts ({r['n_run']} and {r['n_control']})",
                         "n": None, "diff of diffs": round(r["diff"], 4),
                         "95% CI": f"[{_fmt(low)}, {_fmt(high)}]", "p (greater)": None})
        if r["paired"] is not None:
            p = r["paired"]
            how = ("paired by problem (same holdout)" if p["same_holdout"]
                   else "paired on the shared problems only")
            rows.append({"run − control": f"{r['run']} − {r['control']}", "how": how,
                         "n": p["n"], "diff of diffs": round(p["diff"], 4),
                         "95% CI": f"[{_fmt(p['ci_low'])}, {_fmt(p['ci_high'])}]",
                         "p (greater)": round(p["p_greater"], 4)})
            rows.append({"run − control": f"{r['run']} − {r['control']}",
                         "how": "final scores, paired by problem"
                                + (" (same start outcomes)" if p["same_start"]
                                   else " (start outcomes differ)"),
                         "n": p["n"], "diff of diffs": round(p["final_diff"], 4),
                         "95% CI": f"[{_fmt(p['final_ci_low'])}, {_fmt(p['final_ci_high'])}]",
                         "p (greater)": round(p["final_p_greater"], 4)})
    if rows:
        text += ("\nEach run against each control: the run's primary diff minus the control's "
                 "(positive: the run gained more than its control).\n\n" + markdown_table(rows))
    return text
