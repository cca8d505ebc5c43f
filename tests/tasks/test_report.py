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
