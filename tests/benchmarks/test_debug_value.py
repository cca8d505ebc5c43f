"""benchmarks/debug_value.py replays a cycle's failing first tries through self-debug before and
after budgeting it by value, in one run, and prints both settings' fixes per minute: here on a
cycle of the toy world (tests/toy.py: the taught tiny model, the real sandbox), the files laid
out as a cycle writes them."""

import pytest
import yaml

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def toy_cycle(toy, tmp_path_factory, sandbox):
    """A run directory holding the toy config and cycle 1's judged first tries."""
    from tasks.config import load_config
    from tasks.engines import open_backend
    from tasks.execution import judge
    from tasks.policy import base_policy
    from tasks.problems.jsonl import load_jsonl
    from tasks.records import write_rows
    from tasks.sampling import sample

    cfg = load_config(toy / "toy.yaml")
    cfg = cfg.model_copy(update={"sampling": cfg.sampling.model_copy(
        update={"samples_per_specialist": 3})})
    problems = load_jsonl(toy / "train.jsonl")
    policy = base_policy(cfg.policy.base)
    backend = open_backend(policy, "hf", "float32")
    attempts = sample(problems, backend, backend.tokenizer, policy.id, cfg.sampling.agents,
                      cfg.sampling.specialists, cfg.sampling, cycle=1)
    judged = judge(attempts, {p.id: p for p in problems}, sandbox, cfg.sandbox)
    run = tmp_path_factory.mktemp("runs") / "toy-run"
    (run / "cycle-1" / "problems").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    write_rows(run / "cycle-1" / "problems" / "train.jsonl", problems)  # as load-problems does
    write_rows(run / "cycle-1" / "execute" / "attempts.jsonl", judged)
    return run, judged


def test_the_benchmark_prints_fixes_per_minute_before_and_after(toy_cycle, capsys):
    from benchmarks.debug_value import main

    run, judged = toy_cycle
    failing = sum(not a.ok for a in judged)
    assert failing > 2  # the toy model errs, so there is something to debug
    # after: at most one chain a problem and a budget of two fixes
    assert main([str(run), "--set", "debug.per_problem=1", "--set", "debug.budget=2"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines()
             if line.strip().startswith(("before ", "after "))}
    before, after = lines["before"], lines["after"]
    # columns: setting, chains, fixes, passed, min, fixes/min, 1st chosen, debug pairs, added
    assert int(before[1]) == failing  # every failing first try got a chain
    assert int(after[1]) <= 2 and int(after[2]) <= 2  # the budget held
    assert float(before[5]) >= 0 and float(after[5]) >= 0
    assert "ratio after / before:" in out


def test_the_benchmark_refuses_what_it_cannot_replay(toy_cycle, tmp_path, capsys):
    from benchmarks.debug_value import main

    run, _ = toy_cycle
    assert main([str(tmp_path)]) == 2
    assert "is not a run with cycle 1 executed" in capsys.readouterr().err
    assert main([str(run), "--set", "sampling.top_p=0.5"]) == 2
    assert "only debug.KEY=VALUE" in capsys.readouterr().err
