"""The analysis of a learning-efficacy run from its preregistration.json and outcomes.csv alone:
a hand-written run whose every difference, sign-flip p and Holm-adjusted p is worked by hand, the
primary judged by its adjusted p against the registered alpha, outcomes of other problems
refused, and runs set side by side with a control."""

import json
import tempfile
from pathlib import Path

import pytest

import benchmarks.learning_efficacy as le
from benchmarks.efficacy import (
    AnalysisError,
    analyze,
    compare_runs,
    endpoints,
    read_outcomes,
    score,
)

# samples=4, so a score is (greedy + samples passed) / 5. Cycle 0 and cycle 1 on each problem:
#   dev     d1: 0 -> 1.0 (+1.0)      d2: 0 -> 0.2 (+0.2)
#   unseen  u1: 0.4 -> 0.6 (+0.2)    u2: 1.0 -> 0.8 (-0.2)
#   test    t1, t2, t3: 0 -> 0.2 (+0.2 each)
OUTCOMES = """\
cycle,policy,split,problem_id,greedy_passed,samples,samples_passed,distinct_passing
0,start,dev,d1,0,4,0,0
0,start,dev,d2,0,4,0,0
0,start,unseen,u1,0,4,2,1
0,start,unseen,u2,1,4,4,1
0,start,holdout,d1,0,4,0,0
0,start,holdout,d2,0,4,0,0
0,start,holdout,u1,0,4,2,1
0,start,holdout,u2,1,4,4,1
0,start,test,t1,0,4,0,0
0,start,test,t2,0,4,0,0
0,start,test,t3,0,4,0,0
1,trained,dev,d1,1,4,4,2
1,trained,dev,d2,0,4,1,1
1,trained,unseen,u1,0,4,3,1
1,trained,unseen,u2,1,4,3,1
1,trained,holdout,d1,1,4,4,2
1,trained,holdout,d2,0,4,1,1
1,trained,holdout,u1,0,4,3,1
1,trained,holdout,u2,1,4,3,1
1,trained,test,t1,0,4,1,1
1,trained,test,t2,0,4,1,1
1,trained,test,t3,0,4,1,1
"""
PROBLEMS = {"dev": ["d1", "d2"], "unseen": ["u1", "u2"], "holdout": ["d1", "d2", "u1", "u2"],
            "test": ["t1", "t2", "t3"], "train_draws": {"1": ["x"]}}


def registration(alpha: float = 0.05) -> dict:
    doc = {"run_id": "toy-00000000", "config_hash": "0" * 16, "git_commit": "f" * 40,
           "registered_at": "2025-01-01T00:00:00+00:00", **endpoints(1, alpha),
           "problems": PROBLEMS}
    return json.loads(json.dumps(doc))


def read_outcomes_text(text: str) -> list[dict]:
    """The rows of an outcomes.csv with this text, through `read_outcomes`."""
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "outcomes.csv").write_text(text)
        return read_outcomes(Path(d) / "outcomes.csv")


@pytest.fixture
def results(tmp_path):
    (tmp_path / "preregistration.json").write_text(json.dumps(registration()))
    (tmp_path / "outcomes.csv").write_text(OUTCOMES)
    return tmp_path


def test_analyze_gives_the_hand_computed_differences_and_holm_adjusted_p(results, capsys):
    assert le.main(["analyze", str(results)]) == 0
    analysis = json.loads((results / "analysis.json").read_text())
    by = {(r["split"], r["cycle"]): r for r in [analysis["primary"]] + analysis["secondary"]}
    primary = analysis["primary"]
    assert (primary["split"], primary["cycle"], primary["n"]) == ("holdout", 1, 4)
    assert primary["baseline_score"] == pytest.approx(0.35)  # (0 + 0 + 0.4 + 1.0) / 4
    assert primary["score"] == pytest.approx(0.65)  # (1.0 + 0.2 + 0.6 + 0.8) / 4
    assert primary["diff"] == pytest.approx(0.3)
    assert primary["ci_low"] <= primary["diff"] <= primary["ci_high"]
    # sign flips of +1.0, +0.2, +0.2, -0.2 (sum 1.2): the 4 of 16 with +1.0 and the three
    # ±0.2 summing to ≥ 0.2 are as large; |sum| ≥ 1.2 takes those and their mirrors
    assert primary["p"] == pytest.approx(4 / 16)
    assert primary["p_two_sided"] == pytest.approx(8 / 16)
    assert (primary["mcnemar_b"], primary["mcnemar_c"]) == (1, 0)  # d1 greedy 0 -> 1

    assert by["dev", 1]["diff"] == pytest.approx(0.6)
    assert by["dev", 1]["p"] == pytest.approx(1 / 4)  # +1.0, +0.2: only all plus
    assert by["unseen", 1]["diff"] == pytest.approx(0.0, abs=1e-12)
    assert by["unseen", 1]["p"] == pytest.approx(3 / 4)  # +0.2, -0.2: sums 0, 0.4, 0 are ≥ 0
    assert by["test", 1]["diff"] == pytest.approx(0.2)
    assert by["test", 1]["p"] == pytest.approx(1 / 8)

    # the primary is tested alone; Holm over the 3 secondaries: sorted test 1/8 × 3 = 0.375,
    # dev 1/4 × 2 = 0.5, unseen 3/4 × 1 = 0.75 (already monotone)
    assert analysis["family_size"] == 3
    assert primary["p_holm"] == pytest.approx(primary["p"])
    assert by["test", 1]["p_holm"] == pytest.approx(0.375)
    assert by["dev", 1]["p_holm"] == pytest.approx(0.5)
    assert by["unseen", 1]["p_holm"] == pytest.approx(0.75)
    assert analysis["primary_met"] is False  # 0.25 is not below 0.05

    text = (results / "analysis.md").read_text()
    assert "**not met**" in text and "one-sided p 0.25" in text
    assert text in capsys.readouterr().out


def test_analyze_shows_the_primarys_movement_by_start_score(results):
    # holdout start scores d1 0, d2 0, u1 0.4, u2 1.0; gains +1.0, +0.2, +0.2, -0.2
    le.main(["analyze", str(results)])
    analysis = json.loads((results / "analysis.json").read_text())
    rows = {r["start score"]: r for r in analysis["by_start_score"]}
    assert [r["problems"] for r in analysis["by_start_score"]] == [2, 1, 0, 1]
    nothing, low, high, everything = (rows[k] for k in (
        "0 (nothing passed)", "(0, 0.5)", "[0.5, 1)", "1 (everything passed)"))
    assert (nothing["start"], nothing["final"], nothing["diff"]) == (0.0, 0.6, 0.6)
    assert (nothing["improved"], nothing["worsened"]) == (2, 0)
    assert (low["diff"], low["improved"]) == (0.2, 1)
    assert high["diff"] is None and high["improved"] == 0
    assert (everything["final"], everything["diff"], everything["worsened"]) == (0.8, -0.2, 1)
    assert "by the problem's start score" in (results / "analysis.md").read_text()


@pytest.mark.parametrize("alpha,met", [(0.25, False), (0.3, True)])
def test_the_primary_is_met_on_its_own_one_sided_p(alpha, met):
    # raw p 0.25: met only below a registered alpha above it, whatever the secondaries give
    analysis = analyze(registration(alpha), read_outcomes_text(OUTCOMES))
    assert analysis["primary_met"] is met


def test_analyze_refuses_outcomes_of_other_problems_than_the_registered_holdout():
    other = OUTCOMES.replace("holdout,u2", "holdout,u9")
    with pytest.raises(AnalysisError, match="not the registered holdout problems"):
        analyze(registration(), read_outcomes_text(other))
    missing = "\n".join(line for line in OUTCOMES.splitlines() if ",test," not in line
                        or not line.startswith("1,")) + "\n"
    with pytest.raises(AnalysisError, match="no test rows for cycle 1"):
        analyze(registration(), read_outcomes_text(missing))


def test_a_rows_score_is_problem_outcome_score():
    from tasks.evaluation import ProblemOutcome

    for row in read_outcomes_text(OUTCOMES):
        outcome = ProblemOutcome(problem_id=row["problem_id"], greedy_passed=row["greedy_passed"],
                                 greedy_status="", samples=row["samples"],
                                 samples_passed=row["samples_passed"])
        assert score(row) == outcome.score


def test_endpoints_register_every_other_cycle_and_split_as_secondary():
    e = endpoints(3)
    assert (e["primary"]["split"], e["primary"]["cycle"]) == ("holdout", 3)
    pairs = [(s["split"], s["cycle"]) for s in e["secondary"]]
    assert len(pairs) == 11 and ("holdout", 3) not in pairs
    assert set(pairs) | {("holdout", 3)} == {(s, c) for s in ("holdout", "dev", "unseen", "test")
                                             for c in (1, 2, 3)}


def test_compare_pairs_by_problem_only_where_the_holdouts_share_problems(tmp_path):
    run = {"dir": "a", "registration": registration(), "rows": read_outcomes_text(OUTCOMES)}
    # a control on the same holdout whose cycle 1 gains nothing: d1 and u1 stay at cycle 0
    flat = OUTCOMES.replace("1,trained,holdout,d1,1,4,4,2", "1,trained,holdout,d1,0,4,0,0") \
                   .replace("1,trained,holdout,u1,0,4,3,1", "1,trained,holdout,u1,0,4,2,1")
    same = {"dir": "c", "registration": registration(), "rows": read_outcomes_text(flat)}
    out = compare_runs([run], [same])
    (row,) = out["against"]
    # per problem: run +1.0, +0.2, +0.2, -0.2; control 0, +0.2, 0, -0.2 -> +1.0, 0, +0.2, 0
    assert row["diff"] == pytest.approx(0.3 - 0.0)
    assert row["unpaired_ci"] is None  # one holdout: paired
    assert row["paired"]["same_holdout"] and row["paired"]["n"] == 4
    assert row["paired"]["diff"] == pytest.approx(0.3)
    assert row["paired"]["p_greater"] == pytest.approx(1 / 4)  # +1.0, +0.2: only all plus
    # the same start, so the final scores paired directly give the same difference
    assert row["paired"]["same_start"]
    assert row["paired"]["final_diff"] == pytest.approx(row["paired"]["diff"])

    # a control with another unseen problem (another run id draws other problems)
    moved = flat.replace(",u2,", ",u7,")
    reg = registration()
    reg["problems"] = {**PROBLEMS, "unseen": ["u1", "u7"], "holdout": ["d1", "d2", "u1", "u7"]}
    other = {"dir": "o", "registration": reg, "rows": read_outcomes_text(moved)}
    (row,) = compare_runs([run], [other])["against"]
    assert row["unpaired_ci"] is not None and row["shared"] == 3
    assert row["paired"]["n"] == 3 and not row["paired"]["same_holdout"]
    assert row["paired"]["diff"] == pytest.approx((1.0 + 0 + 0.2) / 3)

    for name, item in (("run", run), ("control", other)):
        d = tmp_path / name
        d.mkdir()
        (d / "preregistration.json").write_text(json.dumps(item["registration"]))
        (d / "outcomes.csv").write_text(OUTCOMES if name == "run" else moved)
    assert le.main(["compare", str(tmp_path / "run"), "--control", str(tmp_path / "control"),
                    "--out", str(tmp_path / "cmp")]) == 0
    text = (tmp_path / "cmp" / "compare.md").read_text()
    assert "paired on the shared problems only" in text and "unpaired, own holdouts" in text
