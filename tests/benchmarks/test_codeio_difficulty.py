"""benchmarks/codeio_difficulty.py: per-problem outcomes from an evaluation's result.json, a
cycle's attempts.jsonl or its own CSV, counted by the length of each problem's reference."""

import json

from benchmarks.codeio_difficulty import main, read_outcomes, table


def test_the_three_forms_give_the_same_counts_and_the_table_cuts_by_length(tmp_path):
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"outcomes": [
        {"problem_id": "a", "samples": 4, "samples_passed": 2, "greedy_passed": True},
        {"problem_id": "b", "samples": 4, "samples_passed": 0, "greedy_passed": False},
        {"problem_id": "c", "samples": 4, "samples_passed": 4, "greedy_passed": True}]}))
    attempts = tmp_path / "attempts.jsonl"
    rows = [("a", "passed")] * 3 + [("a", "failed")] * 2 + [("b", "syntax_error")] * 5 + [
        ("c", "passed")] * 5
    attempts.write_text("".join(json.dumps({"problem_id": pid, "status": status, "turn": 0}) + "\n"
                                for pid, status in rows)
                        + json.dumps({"problem_id": "b", "status": "passed", "turn": 1}) + "\n")

    from_result = read_outcomes(result)
    assert [(o["problem_id"], o["candidates"], o["passed"], o["syntax_error"])
            for o in from_result] == [("a", 5, 3, None), ("b", 5, 0, None), ("c", 5, 5, None)]
    from_attempts = read_outcomes(attempts)  # first tries only: b's debug fix does not count
    assert [(o["problem_id"], o["candidates"], o["passed"], o["syntax_error"])
            for o in from_attempts] == [("a", 5, 3, 0), ("b", 5, 0, 5), ("c", 5, 5, 0)]

    lengths = {"a": 8, "b": 12, "c": 30}
    rows = {r["max_lines"]: r for r in table(from_result, lengths, [10, 40])}
    assert (rows[10]["problems"], rows[10]["any_pass"], rows[10]["mixed"], rows[10]["in_band"],
            rows[10]["set_kept"]) == (1, 1, 1, 1, 1)
    assert (rows[40]["problems"], rows[40]["any_pass"], rows[40]["mixed"],
            rows[40]["set_kept"]) == (3, 2, 1, 3)
    assert abs(rows[40]["mean_pass"] - (0.6 + 0 + 1) / 3) < 1e-12


def test_a_saved_csv_reads_back_whatever_it_was_saved_from(tmp_path, capsys):
    """`--save` writes the per-problem counts; the CSV reads back the same, also when the
    outcomes did not say how many syntax errors there were (an evaluation's result.json).
    `--built` counts the lengths on a given build's problems.jsonl."""
    from tests.tasks.test_problems import CLEAN

    result = tmp_path / "result.json"
    result.write_text(json.dumps({"outcomes": [
        {"problem_id": "codeio/clean", "samples": 4, "samples_passed": 1, "greedy_passed": False},
        {"problem_id": "codeio/gone", "samples": 4, "samples_passed": 0, "greedy_passed": False}]}))
    built = tmp_path / "problems.jsonl"
    built.write_text(CLEAN.model_dump_json() + "\n")
    saved = tmp_path / "saved.csv"
    assert main([str(result), "--save", str(saved), "--built", str(built), "--limits", "4,5"]) == 0
    assert read_outcomes(saved) == read_outcomes(result)
    out = capsys.readouterr().out
    assert "not in the built set, left out: codeio/gone" in out
    # CLEAN's reference has 5 lines of code: kept at 5, not at 4
    assert [line.split()[:4] for line in out.splitlines()[-2:]] == [
        ["4", "0", "0", "0"], ["5", "1", "1", "1"]]
