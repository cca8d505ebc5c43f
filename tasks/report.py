"""Reports: what a cycle's policy scores on dev and test, paired against the run's start and the
cycle's own starting point, and a plot of the scores across cycles.

Takes: `EvalResult`s (tasks/evaluation.py), whose per-problem outcomes are the raw numbers.
Gives: `paired_rows` (one row per held-out set and baseline: both scores, the paired difference
of the per-problem score with its bootstrap 95% CI, the sign-flip and McNemar p-values),
`run_table` (one row per cycle) and `plot_scores` (a PNG of dev and test pass@1 over cycles with
95% CIs, promoted cycles shaded grey). Nothing here chooses anything: promotion is
tasks/evaluation.py's `decide`, on dev.

Recompute any number from the files: every evaluation writes its outcomes to
`<run>/evaluations/<policy id>/<split>/result.json`.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

from tasks.evaluation import EvalResult, compare_results
from tasks.stats import paired_bootstrap_ci


def paired_rows(new: EvalResult, baselines: dict[str, EvalResult]) -> list[dict]:
    """`new` against each baseline (same split): the row of a cycle's report table."""
    rows = []
    for name, old in baselines.items():
        p = compare_results(new, old)
        s, g = p.score, p.greedy
        rows.append({
            "split": new.split, "against": name, "policy": new.policy_id[:8],
            "baseline": old.policy_id[:8], "problems": s.n,
            "greedy pass@1": round(g.new_mean, 4), "baseline greedy": round(g.old_mean, 4),
            "sampled pass@1": _r(new.pass1_sampled), "baseline sampled": _r(old.pass1_sampled),
            "score diff": round(s.diff, 4), "CI low": round(s.ci_low, 4),
            "CI high": round(s.ci_high, 4), "p (sign flip)": round(s.p_two_sided, 4),
            "McNemar b:c": f"{g.b}:{g.c}", "McNemar p": round(g.mcnemar_p, 4)})
    return rows


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def score_ci(result: EvalResult, level: float = 0.95) -> tuple[float, float, float]:
    """Mean per-problem score of one result and its bootstrap CI."""
    scores = [o.score for o in result.outcomes]
    low, high = paired_bootstrap_ci(scores, level=level)
    return sum(scores) / len(scores), low, high


def run_table(cycles: Sequence[dict]) -> list[dict]:
    """One row per cycle from `{"cycle", "policy", "dev", "test", "promoted"}` dicts (the dev and
    test `EvalResult` of the policy each cycle ended with)."""
    rows = []
    for c in cycles:
        row = {"cycle": c["cycle"], "policy": c["policy"][:8], "promoted": c["promoted"]}
        for split in ("dev", "test"):
            r: EvalResult = c[split]
            mean, low, high = score_ci(r)
            row.update({f"{split} greedy": round(r.pass1_greedy, 4),
                        f"{split} sampled": _r(r.pass1_sampled),
                        f"{split} score": round(mean, 4),
                        f"{split} CI": f"[{low:.3f}, {high:.3f}]"})
        rows.append(row)
    return rows


def scores_figure(cycles: Sequence[dict], title: str):
    """The matplotlib figure `plot_scores` saves: dev and test per-problem score (greedy +
    sampled) with 95% bootstrap CIs and greedy pass@1 over cycles, and a grey band on every
    cycle whose policy was promoted. The legend names exactly what is drawn: the band's entry
    is there only when some cycle was promoted."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    xs = [c["cycle"] for c in cycles]
    for split, colour in (("dev", "tab:blue"), ("test", "tab:orange")):
        stats = [score_ci(c[split]) for c in cycles]
        means = [m for m, _, _ in stats]
        errors = [[m - lo for m, lo, _ in stats], [hi - m for m, _, hi in stats]]
        ax.errorbar(xs, means, yerr=errors, marker="o", capsize=3, color=colour,
                    label=f"{split} score (greedy + samples), 95% CI")
        ax.plot(xs, [c[split].pass1_greedy for c in cycles], linestyle="--", marker="x",
                color=colour, alpha=0.6, label=f"{split} greedy pass@1")
    promoted = [c["cycle"] for c in cycles if c["promoted"]]
    for i, cycle in enumerate(promoted):  # one legend entry for all the bands
        ax.axvspan(cycle - 0.15, cycle + 0.15, color="grey", alpha=0.25, linewidth=0,
                   label="promoted" if i == 0 else "_nolegend_")
    ax.set_xlabel("cycle (0: the start policy)")
    ax.set_ylabel("pass rate")
    ax.set_xticks(xs)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def plot_scores(cycles: Sequence[dict], path: str | Path, title: str) -> Path:
    """A PNG of `scores_figure`; cycle 0 is the start policy."""
    fig = scores_figure(cycles, title)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    from tasks.records import write_atomic

    write_atomic(path, buffer.getvalue())
    return path


def mean_response_chars(attempts_file: str | Path) -> float | None:
    """Mean length in characters of the responses in a judged-candidates file (`attempts.jsonl`
    of an evaluation): how far training moved a policy's style. None when there is no file."""
    from tasks.records import Attempt

    path = Path(attempts_file)
    if not path.exists():
        return None
    sizes = [len(Attempt.model_validate_json(line).response)
             for line in path.read_text().splitlines() if line.strip()]
    return round(sum(sizes) / len(sizes), 1) if sizes else None


def markdown_table(rows: Sequence[dict]) -> str:
    """Rows as a GitHub-flavoured markdown table (for docs/results.md and artifacts)."""
    if not rows:
        return ""
    keys = list(rows[0])

    def cell(v) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:g}"
        return "" if v is None else str(v)
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# The run's index: `<run>/index.md`, what each file and directory of the run holds

RUN_ENTRIES = {
    "report.md": "dev and test of every cycle: the plot and a table",
    "scores.png": "the plot of dev and test scores over the cycles (a grey band: promoted)",
    "summary.json": "every cycle's summary, written when the run finishes",
    "run.json": "what the run is: its config hash, start policy, memory version and creation "
                "time (and, with problems.curriculum, the pass history it inherited)",
    "config.yaml": "the resolved configuration (what `autodidact resume` reloads)",
    "problems/": "the problem sets: pool.jsonl, dev.jsonl, test.jsonl, decontamination.json "
                 "(what was left out of the pool and why), examples.json",
    "evaluations/": "by policy id, then split: each evaluated policy's judged candidates and "
                    "result.json, every problem's outcome",
    "history/": "passes.jsonl: the pass history the curriculum draws from",
    ".results/": "Prefect's persisted task results: the cache a resumed run is served from",
    ".lock": "the run lock: held by the process that has the run open",
}
CYCLE_ENTRIES = {
    "problems/": "train.jsonl: the cycle's draw of training problems; draw.json: why each pool "
                 "problem was drawn or not",
    "explore/": "the temperature sweep: attempts.jsonl and choice.json",
    "sample/": "the candidates, a JSONL file per group of agents sharing a policy",
    "execute/": "the candidates with the sandbox's verdicts",
    "debug/": "self-debug: the fixes with their verdicts, and a report per task (budget, "
              "skipped, fixes/min)",
    "monitor/": "monitoring.json: B-STaR's pass@k, distinct passing programs, reward AUC, balance",
    "pairs/": "pairs.jsonl, the preference pairs; manifest.json, the counts and what was dropped",
    "train/": "`<inputs hash>/adapter/`: the new LoRA adapter with its model card README.md "
              "and manifest.json",
    "promote/": "decision.json: the promotion decision and the numbers behind it",
    "summary.json": "what the cycle did (what the command line prints)",
}


def _entry(path: Path) -> str:
    return path.name + ("/" if path.is_dir() else "")


def _link(text: str, target: str) -> str:
    return f"[{text}]({target})"


def run_index(run_dir: str | Path, run_id: str, results: Sequence = ()) -> str:
    """`<run>/index.md`: what each file of the run directory and of each cycle directory holds,
    with links relative to the run directory, and a row per finished cycle (`CycleResult`s):
    the policies, dev and test, the decision, the adapter's model card. Built from what is on
    disk, so it lists only what exists."""
    import json

    run = Path(run_dir)
    meta = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else {}
    store = run.parent
    cycles = sorted((p for p in run.glob("cycle-*") if p.is_dir() and p.name[6:].isdigit()),
                    key=lambda p: int(p.name[6:]))
    lines = [f"# Run {run_id}", ""]
    if meta:
        lines += [f"Created {meta.get('created', '-')} from policy `{meta.get('start_policy_id')}` "
                  f"(start: {meta.get('start', '-')}); config hash `{meta.get('config_hash')}`. "
                  f"Resume it with `autodidact resume {run_id} --store {store}`.", ""]
    lines += ["## Files", "", "| file | what it holds |", "|---|---|"]
    known = {**RUN_ENTRIES, **{_entry(c): "" for c in cycles}}
    present = {_entry(p) for p in run.iterdir()} - {"index.md"}
    for name in [n for n in RUN_ENTRIES if n in present] + sorted(present - set(known)):
        lines.append(f"| {_link(name, name)} | {RUN_ENTRIES.get(name, '')} |")
    if cycles:
        lines.append("| cycle-&lt;n&gt;/ | each cycle's stages (below) |")
    if results:
        lines += ["", "## Cycles", "",
                  "| cycle | started from | trained | dev greedy | test greedy | decision | "
                  "adapter |", "|---|---|---|---|---|---|---|"]
        for r in results:
            adapter = "-"
            if r.trained is not None:
                card = Path(r.trained.adapters[-1]) / "README.md"
                adapter = (_link("model card", str(card.relative_to(run)))
                           if card.is_relative_to(run) else f"`{card}`")
            lines.append(
                f"| {_link(str(r.cycle), f'cycle-{r.cycle}/')} | `{r.started_from.id}` | "
                + (f"`{r.trained.id}`" if r.trained else "-")
                + f" | {r.dev.pass1_greedy:.3f} | {r.test.pass1_greedy:.3f} | "
                f"{'promoted' if r.promoted else 'not promoted'} | {adapter} |")
    for cycle in cycles:
        entries = {_entry(p) for p in cycle.iterdir()}
        lines += ["", f"## {_link(cycle.name + '/', cycle.name + '/')}", "",
                  "| file | what it holds |", "|---|---|"]
        for name in [n for n in CYCLE_ENTRIES if n in entries] + sorted(
                entries - set(CYCLE_ENTRIES)):
            lines.append(f"| {_link(name, f'{cycle.name}/{name}')} | "
                         f"{CYCLE_ENTRIES.get(name, '')} |")
    return "\n".join(lines) + "\n"
