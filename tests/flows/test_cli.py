"""The self-training commands of the CLI: what they accept and how they refuse."""

import subprocess
import sys


def autodidact(*args, env=None):
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True,
                          text=True, env=env)


def test_help_lists_the_self_training_commands():
    out = autodidact("--help").stdout
    for command in ("cycle", "run", "resume", "evaluate", "sample", "server"):
        assert command in out


def test_resume_of_an_unknown_run_names_the_store_and_the_runs_in_it(tmp_path):
    (tmp_path / "smoke-1234abcd").mkdir()
    (tmp_path / "smoke-1234abcd" / "run.json").write_text("{}")
    done = autodidact("resume", "nope", "--store", str(tmp_path))
    assert done.returncode == 2
    assert f"no run 'nope' in {tmp_path}" in done.stderr and "smoke-1234abcd" in done.stderr


def test_a_bad_override_is_refused_before_anything_runs(tmp_path):
    import os

    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"}  # nothing may start
    done = autodidact("cycle", "--config", "tiny", "--set", "sampling.temprature=1", env=env)
    assert done.returncode == 2
    assert "sampling.temprature" in done.stderr


def test_sample_writes_candidates_and_prints_the_throughput(tmp_path):
    import json

    out = tmp_path / "candidates.jsonl"
    done = autodidact("sample", "--config", "tiny", "--suite", "humaneval", "-n", "2",
                      "--samples", "2", "--temperature", "0.9", "-o", str(out))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 * 2 * 2  # problems x specialists of tiny.yaml x samples
    from tasks.problems.humaneval import load_humaneval

    problems = {p.id: p for p in load_humaneval()}
    for row in rows:
        problem = problems[row["problem_id"]]
        assert set(row) >= {"prompt", "response", "program", "specialist", "policy_id"}
        assert row["prompt"].endswith(problem.prompt)  # the specialist's rendering of it
        assert row["program"].startswith(problem.prompt) or "def " in row["program"]
    assert "candidates/s" in done.stdout and "useful tokens/s" in done.stdout
    bad = autodidact("sample", "--config", "tiny", "--samples", "0", "-o", str(out))
    assert bad.returncode == 2 and "--samples 0" in bad.stderr
