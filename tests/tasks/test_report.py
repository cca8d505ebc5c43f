"""The run's report: the scores plot's legend says what is drawn, and nothing else."""

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_rgba

from tasks.report import plot_scores, scores_figure
from tests.tasks.test_evaluation import result


def cycles(promoted: list[bool]) -> list[dict]:
    out = []
    for n, done in enumerate(promoted):
        passed = [True] * (n + 1) + [False] * (4 - n)
        out.append({"cycle": n, "policy": f"{n}" * 16, "promoted": done,
                    "dev": result("p", passed, split="dev"),
                    "test": result("p", passed[::-1], split="test")})
    return out


def drawn(ax) -> dict[str, list]:
    """Label -> the artists carrying it, for everything drawn with a legend label (matplotlib
    gives unlabelled artists labels starting with '_')."""
    out: dict[str, list] = {}
    for artist in [*ax.lines, *ax.patches, *ax.collections, *ax.containers]:
        label = artist.get_label()
        if label and not label.startswith("_"):
            out.setdefault(label, []).append(artist)
    return out


@pytest.mark.parametrize("promoted", [[False, False, False], [False, True, False],
                                      [False, True, True]])
def test_the_legend_names_exactly_the_series_drawn(promoted):
    fig = scores_figure(cycles(promoted), "t")
    try:
        (ax,) = fig.axes
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        series = drawn(ax)
        assert sorted(legend) == sorted(series)
        assert len(legend) == len(set(legend))  # one entry per series, not one per band
        assert {"dev score (greedy + samples), 95% CI", "dev greedy pass@1",
                "test score (greedy + samples), 95% CI", "test greedy pass@1"} <= set(legend)
        bands = [p for p in ax.patches if to_rgba(p.get_facecolor())[:3]
                 == to_rgba("grey")[:3]]
        assert len(bands) == sum(promoted)  # a grey band per promoted cycle, none otherwise
        if any(promoted):
            assert "promoted" in legend and series["promoted"][0] in bands
        else:
            assert "promoted" not in legend
        # nothing in the axis labels points at a colour the plot does not use
        assert "grey" not in ax.get_xlabel() + ax.get_ylabel()
    finally:
        plt.close(fig)


def test_plot_scores_writes_a_png(tmp_path):
    path = plot_scores(cycles([False, True]), tmp_path / "scores.png", "t")
    assert path.read_bytes()[:4] == b"\x89PNG"


# ----------------------------------------------------------------------------------------------
# <run>/index.md

LINK = r"\[([^\]]*)\]\(([^)]+)\)"


def index_links(run_dir) -> list[str]:
    """The targets of index.md's links, each checked to exist relative to the run directory."""
    import re
    from pathlib import Path

    targets = [t for _, t in re.findall(LINK, (Path(run_dir) / "index.md").read_text())]
    missing = [t for t in targets if not (Path(run_dir) / t).exists()]
    assert not missing, missing
    return targets


def test_the_run_index_links_every_file_and_cycle_directory(tmp_path):
    import json
    from types import SimpleNamespace

    from tasks.report import run_index

    run = tmp_path / "store" / "r-1"
    adapter = run / "cycle-1" / "train" / "abc" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "README.md").write_text("card")
    for d in ("cycle-1/problems", "cycle-1/pairs", "cycle-2/sample", "problems", ".results"):
        (run / d).mkdir(parents=True, exist_ok=True)
    (run / "cycle-1" / "summary.json").write_text("{}")
    (run / "run.json").write_text(json.dumps({"created": "2026-01-01T00:00:00+00:00",
                                              "start_policy_id": "p0", "start": "base",
                                              "config_hash": "h"}))
    for name in ("config.yaml", "report.md", "scores.png", "notes.txt", "index.md"):
        (run / name).write_text("x")
    policy = lambda pid, adapters=(): SimpleNamespace(id=pid, adapters=adapters)  # noqa: E731
    results = [SimpleNamespace(cycle=1, started_from=policy("p0"),
                               trained=policy("p1", (str(adapter),)), promoted=True,
                               dev=SimpleNamespace(pass1_greedy=0.5),
                               test=SimpleNamespace(pass1_greedy=0.25))]
    (run / "index.md").write_text(run_index(run, "r-1", results))
    targets = index_links(run)
    text = (run / "index.md").read_text()
    assert text.startswith("# Run r-1\n")
    assert f"`autodidact resume r-1 --store {run.parent}`" in text
    # every entry of the run directory but the index itself, and every cycle's
    for target in ("report.md", "scores.png", "run.json", "config.yaml", "problems/",
                   ".results/", "notes.txt", "cycle-1/", "cycle-2/", "cycle-1/problems/",
                   "cycle-1/pairs/", "cycle-1/train/", "cycle-1/summary.json", "cycle-2/sample/",
                   "cycle-1/train/abc/adapter/README.md"):
        assert target in targets, target
    assert "index.md" not in targets and "summary.json" not in targets  # not there yet
    assert "| [report.md](report.md) | dev and test of every cycle: the plot and a table |" in text
    assert "| [notes.txt](notes.txt) |  |" in text  # not ours: listed, not described
    assert ("| [1](cycle-1/) | `p0` | `p1` | 0.500 | 0.250 | promoted | "
            "[model card](cycle-1/train/abc/adapter/README.md) |") in text
    assert "| [train/](cycle-1/train/) | `<inputs hash>/adapter/`: the new LoRA adapter" in text
