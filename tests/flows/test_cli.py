"""The command line: what its commands accept, and how they refuse bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


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
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"}  # nothing may start
    done = autodidact("cycle", "--config", "tiny", "--set", "sampling.temprature=1", env=env)
    assert done.returncode == 2
    assert "sampling.temprature" in done.stderr


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif("_has_cuda()", reason="this machine has CUDA: nothing to refuse")
@pytest.mark.parametrize("verb", ["cycle --config tiny", "evaluate --config tiny",
                                  "sample --config tiny -o {t}/out.jsonl"])
def test_cuda_on_a_machine_without_it_is_refused_before_anything_runs(tmp_path, verb):
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api",  # nothing may start
           "AUTODIDACT_HOME": str(tmp_path / "home")}
    argv = verb.replace("{t}", str(tmp_path)).split()
    done = autodidact(*argv, "--set", "policy.device=cuda", env=env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: policy.device is 'cuda' but CUDA is "
                                                   "not available"), done.stderr
    assert "--set policy.device=cpu" in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.skipif("_has_cuda()", reason="this machine has CUDA: nothing to refuse")
def test_a_cuda_run_resumed_without_cuda_is_told_how_to_reopen_it_on_the_cpu(tmp_path):
    """`resume` takes no --set: the refusal names the command that reopens the run on the CPU
    (`run --run-id` with the run's own config, which has the same hash on any device)."""
    from tasks.config import load_config

    run = tmp_path / "tiny-1234abcd"
    run.mkdir()
    cfg = load_config("tiny", ["policy.device=cuda"])
    (run / "config.yaml").write_text(json.dumps(cfg.model_dump(mode="json")))
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api",  # nothing may start
           "AUTODIDACT_HOME": str(tmp_path / "home")}
    done = autodidact("resume", run.name, "--store", str(tmp_path), env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: policy.device is 'cuda' but CUDA is not available")
    assert (f"autodidact run --config {run / 'config.yaml'} --store {tmp_path} --run-id "
            f"{run.name} --set policy.device=cpu") in done.stderr
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]  # nothing written


def test_sample_writes_candidates_and_prints_the_throughput(tmp_path):
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


# ----------------------------------------------------------------------------------------------
# Bad input: refused before anything starts. Each case is one bad input among good ones; the
# command must exit 2 with one line on stderr, `error: ...` naming the problem, print nothing on
# stdout, create no Prefect flow run (the Prefect test API is the one it would use) and write
# nothing (its home and every path it was given are under tmp_path, which must not change).


def _tree(root: Path) -> list:
    """Every path under root with its kind, size and mtime: a directory's mtime changes when an
    entry is created or removed in it, even one removed again."""
    rows = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames) + ["."]:
            path = Path(dirpath) / name
            st = path.lstat()
            rows.append((str(path.relative_to(root)), st.st_mode, st.st_size, st.st_mtime_ns))
    return sorted(rows)


def _flow_run_ids() -> set[str]:
    from prefect.client.orchestration import get_client

    from flows.lineage import _all

    with get_client(sync_client=True) as client:
        return {str(r.id) for r in _all(client, client.read_flow_runs)}


@pytest.fixture
def world(tmp_path, prefect_api):
    """tmp_path holding a regular file, an empty directory, a requests file for the sandbox, a
    malformed problem file, an adapter without weights and a run store with two runs: one made
    in another store (it has moved since), one with another configuration."""
    from prefect.settings import PREFECT_API_URL

    from tasks.config import load_config

    (tmp_path / "afile").write_text("not a directory\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "requests.jsonl").write_text(json.dumps(
        {"id": "a", "code": "def f():\n    return 1\n", "tests": ["assert f() == 1"],
         "entry_point": "f"}) + "\n")
    (tmp_path / "bad.jsonl").write_text('{"id": "x", "prompt": "def f():\\n"}\n')
    (tmp_path / "no-weights").mkdir()
    (tmp_path / "no-weights" / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    store = tmp_path / "store"
    cfg = load_config("tiny")
    for run_id, config_hash, memory in (("tiny-moved", cfg.hash(), "/elsewhere/memory"),
                                        ("tiny-other", "0" * 16, str(store / "memory"))):
        (store / run_id).mkdir(parents=True)
        (store / run_id / "run.json").write_text(json.dumps(
            {"run_id": run_id, "config_hash": config_hash, "memory_dir": memory}))
        (store / run_id / "config.yaml").write_text(
            (Path(__file__).parents[2] / "configs" / "tiny.yaml").read_text())
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(),
           "AUTODIDACT_HOME": str(tmp_path / "home")}
    return tmp_path, env


# (argv with {t} for tmp_path, a fragment the error line must hold)
BAD_INPUTS = {
    "cycle: a store under a file": (
        "cycle --config tiny --store {t}/afile/store", "afile is a file, not a directory"),
    "cycle: a store under a file, by --set": (
        "cycle --config tiny --set run.store={t}/afile/store", "afile is a file, not a directory"),
    "cycle: a bad override": (
        "cycle --config tiny --store {t}/new --set sampling.top_p=3", "sampling.top_p"),
    "cycle: a missing problem file": (
        "cycle --config tiny --store {t}/new --set problems.train={t}/missing.jsonl",
        "problems.train: the problem file"),
    "cycle: a base that is no model": (
        "cycle --config tiny --store {t}/new --set policy.base={t}/empty", "policy.base"),
    "cycle: a tracking database under a file": (
        "cycle --config tiny --store {t}/new --set tracking.uri=sqlite:///{t}/afile/mlflow.db",
        "MLflow tracking database directory {t}/afile: {t}/afile is a file, not a directory"),
    "cycle: a tracking URI that is a bare path": (
        "cycle --config tiny --store {t}/new --set tracking.uri={t}/mlflow.db",
        "is not an MLflow tracking URI"),
    "tracking: a database under a file": (
        "tracking --config tiny --set tracking.uri=sqlite:///{t}/afile/mlflow.db",
        "{t}/afile is a file, not a directory"),
    "run: an unknown run id names the runs": (
        "run --config tiny --store {t}/store --run-id tiny-typo",
        "no run 'tiny-typo' in {t}/store; runs there: tiny-moved, tiny-other"),
    "run: a run id of another configuration": (
        "run --config tiny --store {t}/store --run-id tiny-other",
        "run tiny-other was created with another configuration"),
    "run: a run id of a store that moved": (
        "run --config tiny --store {t}/store --run-id tiny-moved", "a run cannot move"),
    "run: zero cycles": ("run --config tiny --store {t}/new --cycles 0", "--cycles 0"),
    "resume: an unknown run": ("resume tiny-typo --store {t}/store", "no run 'tiny-typo'"),
    "resume: a store that moved": ("resume tiny-moved --store {t}/store", "a run cannot move"),
    "evaluate: an unknown suite": (
        "evaluate --config tiny --store {t}/new --suite humaneavl", "'humaneavl' is not a "
                                                                   "problem suite"),
    "evaluate: a missing problem file": (
        "evaluate --config tiny --store {t}/new --suite {t}/missing.jsonl", "does not exist"),
    "evaluate: a malformed problem file": (
        "evaluate --config tiny --store {t}/new --suite {t}/bad.jsonl", "bad.jsonl:1"),
    "evaluate: a directory that is no adapter": (
        "evaluate --config tiny --store {t}/new --adapter {t}/empty",
        "not a LoRA adapter directory (no adapter_config.json)"),
    "evaluate: an adapter without weights": (
        "evaluate --config tiny --store {t}/new --adapter {t}/no-weights",
        "no adapter_model.safetensors"),
    "evaluate: a store under a file": (
        "evaluate --config tiny --store {t}/afile", "afile is a file, not a directory"),
    "evaluate: a store under a file, by --set": (
        "evaluate --config tiny --set run.store={t}/afile/s", "afile is a file"),
    "evaluate: a suite with the dev split": (
        "evaluate --config tiny --store {t}/new --split dev --suite humaneval",
        "--suite applies to --split test"),
    "evaluate: -n 0": ("evaluate --config tiny --store {t}/new -n 0", "-n 0"),
    "sample: an output in a missing directory": (
        "sample --config tiny -n 1 --samples 1 -o {t}/nodir/out.jsonl",
        "the directory {t}/nodir does not exist"),
    "sample: an output that is a directory": (
        "sample --config tiny -n 1 --samples 1 -o {t}/empty", "is a directory"),
    "sample: an unknown suite": (
        "sample --config tiny --suite humaneavl -o {t}/out.jsonl", "is not a problem suite"),
    "sample: a directory that is no adapter": (
        "sample --config tiny --adapter {t}/empty -o {t}/out.jsonl",
        "not a LoRA adapter directory"),
    "sample: zero samples": ("sample --config tiny --samples 0 -o {t}/out.jsonl", "--samples 0"),
    "sample: a temperature out of range": (
        "sample --config tiny --temperature 3 -o {t}/out.jsonl", "--temperature 3"),
    "runs: a store that does not exist": ("runs --store {t}/nowhere", "no run store at"),
    "sandbox exec: a missing requests file": (
        "sandbox exec {t}/missing.jsonl", "requests file {t}/missing.jsonl does not exist"),
    "sandbox exec: an output in a missing directory": (
        "sandbox exec {t}/requests.jsonl -o {t}/nodir/v.jsonl", "{t}/nodir does not exist"),
    "sandbox canonical: an unknown suite": (
        "sandbox canonical --suite humaneavl", "is not a problem suite"),
    "problems build: --limit 0": ("problems build --source codeio --limit 0", "--limit 0"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_error_line_exit_2_no_flow_run_and_nothing_written(world, case):
    tmp_path, env = world
    argv, expected = (text.replace("{t}", str(tmp_path)) for text in BAD_INPUTS[case])
    before, runs_before = _tree(tmp_path), _flow_run_ids()
    done = autodidact(*argv.split(), env=env)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert _flow_run_ids() == runs_before, done.stderr
    assert _tree(tmp_path) == before, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert expected in lines[0], lines[0]
    assert done.stdout == ""


@pytest.mark.parametrize("verb", ["data fetch", "model provision"])
def test_a_home_that_cannot_be_written_is_refused(world, verb):
    tmp_path, env = world
    env = {**env, "AUTODIDACT_HOME": str(tmp_path / "afile" / "home")}
    before = _tree(tmp_path)
    done = autodidact(*verb.split(), env=env)
    assert done.returncode == 2 and done.stdout == "", done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: ") and "afile is a file" in line and "AUTODIDACT_HOME" in line
    assert _tree(tmp_path) == before


def test_store_is_the_same_flag_on_every_verb_that_touches_a_store():
    for verb in ("cycle", "run", "resume", "evaluate", "runs"):
        assert "--store" in autodidact(verb, "--help").stdout, verb
    assert "--store" not in autodidact("sample", "--help").stdout  # writes -o, no store


def test_evaluate_names_and_tags_its_flow_run(prefect_api):
    """The helpers evaluate_flow names its flow run with, in a flow of their own: the name from
    the parameters at first, then the one with the policy id, and the tags added to the run's."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    from flows.evaluate import _first_name, _name_flow_run, suite_label

    assert suite_label("HumanEval") == "humaneval"
    assert suite_label("/data/my-problems.jsonl") == "my-problems.jsonl"

    @flow(name="evaluate-naming-probe", flow_run_name=_first_name)
    def probe(suite: str | None = None, split: str = "test") -> tuple[str, str]:
        with get_client(sync_client=True) as client:
            first = client.read_flow_run(flow_run.id).name
        _name_flow_run(f"evaluate-{suite_label(suite)}-{split}-abcd", ["suite:mbpp", "x:y"])
        return first, str(flow_run.id)

    first, run_id = probe(suite="/data/mbpp-like.jsonl", split="test")
    assert first == "evaluate-mbpp-like.jsonl-test"
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
    assert run.name == "evaluate-mbpp-like.jsonl-test-abcd"
    assert {"suite:mbpp", "x:y"} <= set(run.tags)


@pytest.mark.docker
def test_evaluate_prints_where_it_wrote_and_names_and_tags_its_flow_run(toy, tmp_path,
                                                                       prefect_api):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.settings import PREFECT_API_URL

    from tasks.policy import base_policy

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    done = autodidact("evaluate", "--config", str(toy / "toy.yaml"), "--store",
                      str(tmp_path / "store"), "-n", "1", env=env)
    assert done.returncode == 0, done.stderr
    (files,) = [line for line in done.stdout.splitlines() if line.startswith("files: ")]
    where = Path(files.split()[1])
    assert where.parent == tmp_path / "store" / "evaluations"
    assert (where / "result.json").is_file()
    policy = base_policy(str(toy / "model")).id
    name = f"evaluate-test.jsonl-test-{policy}"
    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            name=FlowRunFilterName(any_=[name])))
    assert {"suite:test.jsonl", "split:test", f"policy:{policy}"} <= set(run.tags)
