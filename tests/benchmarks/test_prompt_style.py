"""benchmarks/prompt_style.py pairs two evaluations' greedy outcomes by problem and writes them
out so the comparison can be recomputed."""

import csv
import json

from benchmarks.prompt_style import main


def evaluation(directory, passed: dict[str, bool]):
    directory.mkdir(parents=True)
    rows = [{"problem_id": pid, "greedy_passed": ok, "greedy_status": "passed" if ok else "failed",
             "samples": 0, "samples_passed": 0, "distinct_passing": 0}
            for pid, ok in passed.items()]
    (directory / "result.json").write_text(json.dumps(
        {"outcomes": rows, "suite": "toy", "split": "test", "policy_id": "p", "problems": len(rows),
         "pass1_greedy": sum(passed.values()) / len(rows), "pass1_sampled": None,
         "pass_at_k": {}, "diversity": None}))
    return directory


def test_compare_pairs_by_problem_and_writes_the_outcomes(tmp_path, capsys):
    new = evaluation(tmp_path / "new", {"a": True, "b": True, "c": False, "d": True})
    old = evaluation(tmp_path / "old", {"b": False, "a": True, "d": False, "c": False})
    assert main(["compare", str(new), str(old), "--name", "x", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "greedy pass@1 0.750 (new) vs 0.250 (old): +0.500" in out
    assert "passes only new 2, only old 0" in out
    rows = list(csv.DictReader(open(tmp_path / "o" / "x.csv")))
    assert [(r["problem_id"], r["new_greedy_passed"], r["old_greedy_passed"]) for r in rows] == [
        ("a", "1", "1"), ("b", "1", "0"), ("c", "0", "0"), ("d", "1", "0")]
    saved = json.loads((tmp_path / "o" / "x.json").read_text())["comparison"]
    assert (saved["b"], saved["c"], saved["n"]) == (2, 0, 4)


def test_compare_refuses_evaluations_of_other_problems(tmp_path, capsys):
    new = evaluation(tmp_path / "new", {"a": True})
    old = evaluation(tmp_path / "old", {"b": True})
    assert main(["compare", str(new), str(old)]) == 2
    assert "different problems" in capsys.readouterr().err
