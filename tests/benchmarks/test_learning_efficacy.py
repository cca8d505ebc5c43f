"""The pre-registration of a learning-efficacy run and the run's checks of it: the registration
names the run id `open_run` will give and the problems held out in advance; it is refused once the
run has outcomes or when another registration is there; `run` does not start without a matching,
committed registration. Nothing here runs a flow: `self_train` is replaced by a stub that records
that the run would have started. `world` trains and measures on one suite, as the MBPP runs do
(the hold-out is dev and the pool problems no cycle draws); `codeio_world` trains on a suite of
its own, so the hold-out is dev alone (configs/codeio.yaml)."""

import json
from pathlib import Path

import pytest

import benchmarks.learning_efficacy as le
from benchmarks.efficacy import read_outcomes
from benchmarks.preregistration import identity
from tests.toy import DEV, EVAL, TRAIN, write_suite


def world_of(tmp_path, config: str, problems: list[str]) -> dict:
    """`config` with `problems` overrides, a stand-in base model (a directory with a config.json
    is all a Policy needs to be named), two cycles, and a store and results root of its own."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text('{"model_type": "stand-in"}\n')
    overrides = [f"policy.base={tmp_path / 'model'}", *problems]
    settings = ["--config", config, "--cycles", "2", "--store", str(tmp_path / "store"),
                "--out", str(tmp_path / "results")]
    for o in overrides:
        settings += ["--set", o]

    from tasks.config import load_config

    cfg = load_config(config, overrides + ["run.cycles=2", f"run.store={tmp_path / 'store'}"])
    run_id, config_hash, _ = identity(cfg)
    return {"settings": settings, "overrides": overrides, "cfg": cfg, "run_id": run_id,
            "config_hash": config_hash, "results": tmp_path / "results" / run_id,
            "run_dir": tmp_path / "store" / run_id, "tmp": tmp_path}


@pytest.fixture
def world(tmp_path):
    """The tiny config on one toy suite for training and dev (as MBPP is for both in the MBPP
    runs: the pool is what the dev draw leaves) and a toy test suite."""
    suite = write_suite(TRAIN + DEV, tmp_path / "problems.jsonl")
    return world_of(tmp_path, "tiny", [
        f"problems.train={suite}", f"problems.dev={suite}", f"problems.dev_n={len(DEV)}",
        f"problems.test={write_suite(EVAL, tmp_path / 'test.jsonl')}", "problems.test_n=null",
        "problems.train_n=1"])


@pytest.fixture
def codeio_world(tmp_path, monkeypatch):
    """configs/codeio.yaml (CodeI/O training, all of MBPP as dev, HumanEval as test) with the
    toy training problems standing in for the built CodeI/O set (building it takes the sandbox
    and minutes), one a cycle, and exact-match decontamination only (no embedder)."""
    import tasks.problems.split as split_module
    from tasks.problems.jsonl import load_jsonl

    codeio = load_jsonl(write_suite(TRAIN, tmp_path / "codeio.jsonl"))
    monkeypatch.setattr(split_module, "load_codeio", lambda: codeio)
    return world_of(tmp_path, "codeio", ["problems.train_n=1", "problems.near_duplicate=null"])


class Started(Exception):
    pass


@pytest.fixture
def no_flow(monkeypatch):
    """`run` raises Started where it would start the self-training flow."""
    def started(config, overrides):
        raise Started(overrides)
    monkeypatch.setattr(le, "self_train", started)


def registration(world) -> Path:
    return world["results"] / "preregistration.json"


def test_preregistration_names_the_run_open_run_makes_and_its_holdout(world, capsys):
    assert le.main(["preregister", *world["settings"]]) == 0
    doc = json.loads(registration(world).read_text())

    # the run id open_run gives (opened here in another store: the store is not in the id)
    from flows.self_training import open_run
    from tasks.config import load_config

    other = load_config("tiny", world["overrides"] + ["run.cycles=2",
                                                      f"run.store={world['tmp'] / 'other'}"])
    run_id, _, meta = open_run(other)
    assert doc["run_id"] == run_id == world["run_id"]
    assert doc["config_hash"] == meta["config_hash"] == world["cfg"].hash()
    assert doc["start_policy_id"] == meta["start_policy_id"]
    assert doc["config"]["run"]["cycles"] == 2

    assert doc["primary"] == {
        "split": "holdout", "cycle": 2, "baseline_cycle": 0,
        "statistic": "mean paired per-problem score difference (ProblemOutcome.score), "
                     "one-sided paired sign-flip test",
        "alternative": "greater", "alpha": 0.05}
    assert [(e["split"], e["cycle"]) for e in doc["secondary"]] == [
        ("holdout", 1), ("dev", 1), ("unseen", 1), ("test", 1),
        ("dev", 2), ("unseen", 2), ("test", 2)]
    assert doc["correction"] == "holm"

    # the holdout: dev and the pool problems neither cycle draws, as draw_train draws them
    from tasks.problems.split import draw_train, split_problems

    split = split_problems(world["cfg"].problems)
    drawn = {p.id for n in (1, 2) for p in draw_train(split.pool, world["cfg"].problems,
                                                      run_id, n)}
    problems = doc["problems"]
    assert problems["dev"] == [p.id for p in split.dev] and len(split.dev) == len(DEV)
    assert problems["unseen"] == [p.id for p in split.pool if p.id not in drawn]
    assert len(split.pool) == len(TRAIN)  # what the dev draw left of the one suite
    assert 2 <= len(problems["unseen"]) <= 3  # one problem a cycle: at most two are drawn
    assert problems["holdout"] == problems["dev"] + problems["unseen"]
    assert set(problems["test"]) == {row[0] for row in EVAL}
    assert "git add" in capsys.readouterr().out


@pytest.mark.parametrize("outcome", ["outcomes.csv", "evaluation"])
def test_preregistration_is_refused_once_the_run_has_outcomes(world, capsys, outcome):
    if outcome == "outcomes.csv":
        world["results"].mkdir(parents=True)
        (world["results"] / "outcomes.csv").write_text(
            "cycle,policy,split,problem_id,greedy_passed,samples,samples_passed,"
            "distinct_passing\n0,abc,dev,triple,1,2,1,1\n")
    else:
        result = world["run_dir"] / "evaluations" / "abc" / "dev" / "result.json"
        result.parent.mkdir(parents=True)
        result.write_text("{}")
    assert le.main(["preregister", *world["settings"]]) == 2
    err = capsys.readouterr().err
    assert "already has outcomes" in err and "Register a new run" in err
    assert not registration(world).exists()


def test_preregistration_is_never_rewritten_with_other_content(world, capsys):
    assert le.main(["preregister", *world["settings"]]) == 0
    path = registration(world)
    first = path.read_bytes()
    assert le.main(["preregister", *world["settings"]]) == 0  # the same again: a no-op
    assert "left as it is" in capsys.readouterr().out
    assert path.read_bytes() == first  # not even the time was rewritten

    doc = json.loads(first)
    doc["problems"]["unseen"] = doc["problems"]["unseen"][:1]  # someone moved the goalposts
    path.write_text(json.dumps(doc))
    edited = path.read_bytes()
    assert le.main(["preregister", *world["settings"]]) == 2
    assert "other content (problems differ)" in capsys.readouterr().err
    assert path.read_bytes() == edited


def test_a_registration_from_before_content_hashes_is_still_the_same_registration(world, capsys):
    """Registrations written before `contents` existed hold the ids only: registering them
    again is a no-op, and one whose ids differ is still refused."""
    assert le.main(["preregister", *world["settings"]]) == 0
    path = registration(world)
    doc = json.loads(path.read_text())
    del doc["contents"]
    path.write_text(json.dumps(doc))
    old = path.read_bytes()
    assert le.main(["preregister", *world["settings"]]) == 0
    assert "left as it is" in capsys.readouterr().out
    assert path.read_bytes() == old
    doc["problems"]["dev"] = doc["problems"]["dev"][1:]
    path.write_text(json.dumps(doc))
    assert le.main(["preregister", *world["settings"]]) == 2
    assert "other content (problems differ)" in capsys.readouterr().err


def test_run_refuses_to_start_without_a_preregistration(world, no_flow, capsys):
    assert le.main(["run", *world["settings"], "--allow-uncommitted"]) == 2
    err = capsys.readouterr().err
    assert "is not pre-registered" in err and "preregister" in err


def test_run_refuses_a_registration_of_another_config(world, no_flow, capsys):
    assert le.main(["preregister", *world["settings"]]) == 0
    doc = json.loads(registration(world).read_text())
    doc["config_hash"] = "0" * 16
    registration(world).write_text(json.dumps(doc))
    assert le.main(["run", *world["settings"], "--allow-uncommitted"]) == 2
    err = capsys.readouterr().err
    assert f"config hash {'0' * 16}" in err and world["config_hash"] in err


def test_run_refuses_an_uncommitted_registration(world, no_flow, capsys):
    assert le.main(["preregister", *world["settings"]]) == 0  # under tmp: outside git
    assert le.main(["run", *world["settings"]]) == 2
    assert "is not committed (it is not tracked by git)" in capsys.readouterr().err


def test_run_starts_under_its_registration_with_the_same_overrides(world, no_flow):
    assert le.main(["preregister", *world["settings"]]) == 0
    with pytest.raises(Started) as started:
        le.main(["run", *world["settings"], "--allow-uncommitted"])
    overrides = started.value.args[0]
    assert overrides[:len(world["overrides"])] == world["overrides"]
    assert "run.cycles=2" in overrides and any(o.startswith("run.store=") for o in overrides)


def test_run_refuses_outcomes_written_before_the_registration(world, no_flow, capsys):
    """The store is not part of the run id: outcomes of the same settings written before the
    registration (in this store, say by a run in another store moved here) must not count."""
    import os

    result = world["run_dir"] / "evaluations" / "abc" / "dev" / "result.json"
    result.parent.mkdir(parents=True)
    result.write_text("{}")
    os.utime(result, (1_000_000_000, 1_000_000_000))  # long before anything was registered
    # registered with the file moved aside (preregister refuses while it is there), then back
    aside = world["run_dir"] / "aside.json"
    result.rename(aside)
    assert le.main(["preregister", *world["settings"]]) == 0
    aside.rename(result)
    assert le.main(["run", *world["settings"], "--allow-uncommitted"]) == 2
    assert "written before its registration was committed" in capsys.readouterr().err


def test_run_refuses_when_the_problem_sets_changed_since_the_registration(world, no_flow,
                                                                          capsys):
    assert le.main(["preregister", *world["settings"]]) == 0
    doc = json.loads(registration(world).read_text())
    doc["problems"]["dev"] = list(reversed(doc["problems"]["dev"]))
    registration(world).write_text(json.dumps(doc))
    assert le.main(["run", *world["settings"], "--allow-uncommitted"]) == 2
    assert "no longer the registered ones (dev differ)" in capsys.readouterr().err


def test_run_refuses_problems_whose_tests_changed_under_the_same_ids(world, no_flow, capsys):
    """A registration hashes each split's content: a rebuilt set with the same ids but other
    tests (a CodeI/O build of other code or settings) is not the registered one."""
    assert le.main(["preregister", *world["settings"]]) == 0
    suite = world["tmp"] / "problems.jsonl"
    rows = [json.loads(line) for line in suite.read_text().splitlines()]
    registered = json.loads(registration(world).read_text())["problems"]
    changed = next(r for r in rows if r["id"] in registered["train_draws"]["1"])
    changed["tests"] += "\n    assert candidate is not None\n"
    suite.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert le.main(["run", *world["settings"], "--allow-uncommitted"]) == 2
    assert "(the content of pool differ)" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# After the flow: a stand-in run (its store files as the flow writes them, its cycle records,
# evaluations that pass every even-numbered problem) through the rest of `run`
# ---------------------------------------------------------------------------------------------


class Dump:
    def model_dump(self, mode=None):
        return {}


def outcomes_of(ids, passed):
    from tasks.evaluation import ProblemOutcome

    return [ProblemOutcome(problem_id=pid, greedy_passed=passed(i), greedy_status="",
                           samples=2, samples_passed=2 * passed(i)) for i, pid in enumerate(ids)]


def result_of(policy, ids, split, passed=lambda i: i % 2 == 0):
    from tasks.evaluation import EvalResult

    outcomes = outcomes_of(ids, passed)
    return EvalResult(policy_id=policy.id, suite="toy", split=split, problems=len(ids),
                      pass1_greedy=sum(o.greedy_passed for o in outcomes) / len(ids),
                      pass1_sampled=0.5, pass_at_k={}, outcomes=outcomes)


def stand_in_run(world, draws=None):
    """The run store of a finished 2-cycle run, and its CycleResult stand-ins."""
    from types import SimpleNamespace

    from tasks.policy import Policy
    from tasks.problems.split import draw_train, split_problems
    from tasks.records import write_json, write_rows

    cfg, run_id, run_dir = world["cfg"], world["run_id"], world["run_dir"]
    split = split_problems(cfg.problems)
    write_rows(run_dir / "problems" / "pool.jsonl", split.pool)
    start = Policy(base="base", base_hash="0" * 16)
    write_json(run_dir / "run.json", {"run_id": run_id, "config_hash": cfg.hash(),
                                      "start_policy": start.model_dump(mode="json")})
    dev, test = [p.id for p in split.dev], [p.id for p in split.test]
    results, policy = [], start
    for n in (1, 2):
        drawn = (draws or {}).get(n) or draw_train(split.pool, cfg.problems, run_id, n)
        write_rows(run_dir / f"cycle-{n}" / "problems" / "train.jsonl", drawn)
        trained = Policy(base="base", base_hash="0" * 16, adapters=(f"a{n}",),
                         adapter_hashes=(f"{n}" * 16,))
        results.append(SimpleNamespace(
            run_id=run_id, cycle=n, directory=str(run_dir / f"cycle-{n}"), started_from=policy,
            champion=start, trained=trained, promoted=False, next_champion=start,
            decision="kept", pairs={}, pairs_dropped={}, pairs_cross_prompt=0, training={},
            monitoring=Dump(), exploration=Dump(), report=[],
            pairs_file=SimpleNamespace(read=lambda cls: []),
            dev=result_of(trained, dev, "dev", lambda i: True),
            test=result_of(trained, test, "test"),
            start_dev=result_of(start, dev, "dev"), start_test=result_of(start, test, "test")))
        policy = trained
    return results


def test_run_evaluates_every_policy_on_unseen_in_the_store_then_writes_and_analyzes(
        world, monkeypatch):
    assert le.main(["preregister", *world["settings"]]) == 0
    results = stand_in_run(world)
    monkeypatch.setattr(le, "self_train", lambda config, overrides: (results, 1.0))
    evaluated = []

    def evaluate_once(policy, problems, suite, split, cfg, where, log=print):
        evaluated.append((policy.id, split, where))
        return result_of(policy, [p.id for p in problems], split)
    monkeypatch.setattr(le, "evaluate_once", evaluate_once)
    assert le.main(["run", *world["settings"], "--allow-uncommitted"]) == 0

    registered = json.loads(registration(world).read_text())["problems"]
    start, one, two = (results[0].started_from, results[0].trained, results[1].trained)
    assert evaluated == [(p.id, "unseen", world["run_dir"] / "evaluations" / p.id / "unseen")
                         for p in (start, one, two)]
    rows = read_outcomes(world["results"] / "outcomes.csv")
    for cycle, policy in ((0, start), (1, one), (2, two)):
        mine = [r for r in rows if r["cycle"] == cycle]
        assert {r["policy"] for r in mine} == {policy.id}
        for split in ("dev", "unseen", "holdout", "test"):
            ids = [r["problem_id"] for r in mine if r["split"] == split]
            assert sorted(ids) == sorted(registered[split])
    analysis = json.loads((world["results"] / "analysis.json").read_text())
    assert analysis["family_size"] == 7 and analysis["primary"]["split"] == "holdout"
    assert analysis["primary"]["diff"] > 0  # dev: every problem passes after training
    for name in ("table.md", "scores.png", "run.json", "analysis.md"):
        assert (world["results"] / name).exists()


def test_run_refuses_a_holdout_that_is_not_the_registered_one(world, monkeypatch, capsys):
    assert le.main(["preregister", *world["settings"]]) == 0
    registered = json.loads(registration(world).read_text())["problems"]
    from tasks.problems.jsonl import load_jsonl

    pool = load_jsonl(world["tmp"] / "problems.jsonl")
    unseen = [p for p in pool if p.id in registered["unseen"]]
    results = stand_in_run(world, draws={1: unseen[:1]})  # cycle 1 trained on a held-out one
    monkeypatch.setattr(le, "self_train", lambda config, overrides: (results, 1.0))
    monkeypatch.setattr(le, "evaluate_once", lambda *a, **k: pytest.fail("evaluated"))
    assert le.main(["run", *world["settings"], "--allow-uncommitted"]) == 2
    assert "unseen problems are not the registered ones" in capsys.readouterr().err
    assert not (world["results"] / "outcomes.csv").exists()


def test_an_evaluation_already_in_place_is_read_back_not_run_again(world, monkeypatch):
    from benchmarks.outcomes import evaluate_once
    from tasks.policy import Policy
    from tasks.problems.jsonl import load_jsonl
    from tasks.records import write_json

    problems = load_jsonl(world["tmp"] / "problems.jsonl")
    policy = Policy(base="base", base_hash="0" * 16)
    done = result_of(policy, [p.id for p in problems], "unseen")
    where = world["tmp"] / "evaluations" / policy.id / "unseen"
    write_json(where / "result.json", done.model_dump(mode="json"))
    import tasks.engines

    monkeypatch.setattr(tasks.engines, "open_backend", lambda *a: pytest.fail("evaluated again"))
    assert evaluate_once(policy, problems, "toy", "unseen", world["cfg"], where) == done
    with pytest.raises(ValueError, match="belongs to another problem set"):
        evaluate_once(policy, problems[:2], "toy", "unseen", world["cfg"], where)


# ---------------------------------------------------------------------------------------------
# A training suite of its own (configs/codeio.yaml): the hold-out is dev alone
# ---------------------------------------------------------------------------------------------


def test_a_codeio_run_registers_all_of_mbpp_as_its_holdout_and_no_unseen_endpoint(codeio_world):
    from tasks.problems.mbpp import load_mbpp

    assert le.main(["preregister", *codeio_world["settings"]]) == 0
    doc = json.loads(registration(codeio_world).read_text())
    problems = doc["problems"]
    mbpp = [p.id for p in load_mbpp()]  # no embedder here: no near-duplicate of HumanEval is out
    assert problems["dev"] == problems["holdout"] == mbpp and len(mbpp) == 397
    assert problems["unseen"] == []  # the undrawn CodeI/O problems are not held out
    assert {pid for ids in problems["train_draws"].values() for pid in ids} <= {
        row[0] for row in TRAIN}
    assert len(problems["test"]) == 164
    assert doc["primary"]["split"] == "holdout" and doc["primary"]["cycle"] == 2
    assert [(e["split"], e["cycle"]) for e in doc["secondary"]] == [
        ("holdout", 1), ("test", 1), ("test", 2)]  # no unseen, and dev would repeat holdout
    assert "empty, not an endpoint" in doc["splits"]["unseen"]


def test_a_codeio_run_evaluates_nothing_on_unseen_and_analyzes_its_holdout(codeio_world,
                                                                          monkeypatch):
    assert le.main(["preregister", *codeio_world["settings"]]) == 0
    results = stand_in_run(codeio_world)
    monkeypatch.setattr(le, "self_train", lambda config, overrides: (results, 1.0))
    monkeypatch.setattr(le, "evaluate_once", lambda *a, **k: pytest.fail("evaluated unseen"))
    assert le.main(["run", *codeio_world["settings"], "--allow-uncommitted"]) == 0

    registered = json.loads(registration(codeio_world).read_text())["problems"]
    rows = read_outcomes(codeio_world["results"] / "outcomes.csv")
    assert {r["split"] for r in rows} == {"dev", "holdout", "test"}
    for cycle in (0, 1, 2):
        for split in ("dev", "holdout", "test"):
            ids = [r["problem_id"] for r in rows if r["cycle"] == cycle and r["split"] == split]
            assert sorted(ids) == sorted(registered[split])
    analysis = json.loads((codeio_world["results"] / "analysis.json").read_text())
    assert analysis["primary"]["split"] == "holdout" and analysis["primary"]["n"] == 397
    assert analysis["family_size"] == 3 and analysis["primary"]["diff"] > 0
    assert json.loads((codeio_world["results"] / "run.json").read_text())["unseen_problems"] == 0
    assert not (codeio_world["run_dir"] / "problems" / "unseen.jsonl").exists()


def test_a_curriculum_run_on_one_suite_is_refused_with_what_to_do(world, capsys):
    """The curriculum draws by the history the run writes: the unseen problems of a one-suite
    run are not known in advance, so such a run cannot be registered."""
    settings = world["settings"] + ["--set", "problems.curriculum.enabled=true"]
    assert le.main(["preregister", *settings]) == 2
    err = capsys.readouterr().err
    assert "problems.curriculum.enabled" in err and "configs/codeio.yaml" in err
    assert "Traceback" not in err
    assert not list((world["tmp"] / "results").rglob("preregistration.json"))


def test_a_curriculum_run_on_a_suite_of_its_own_registers_dev_as_its_holdout(codeio_world):
    settings = codeio_world["settings"] + ["--set", "problems.curriculum.enabled=true"]
    assert le.main(["preregister", *settings]) == 0
    [path] = (codeio_world["tmp"] / "results").rglob("preregistration.json")
    doc = json.loads(path.read_text())
    assert doc["config"]["problems"]["curriculum"]["enabled"] is True
    problems = doc["problems"]
    assert problems["holdout"] == problems["dev"] and len(problems["dev"]) == 397
    assert problems["unseen"] == [] and problems["train_draws"] == {}
