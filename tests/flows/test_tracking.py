"""Experiment tracking (flows/tracking.py) against a real MLflow SQLite store: the run, its
cycles' metrics, the registry and the aliases the promotion decision moves.

The cycles here are records built from real policies (adapter directories with a manifest, as
training writes them), not cycles run: what is under test is what the tracker makes of a cycle's
record. tests/flows/test_cycle.py tracks real toy cycles, through failure and resume, and reads
them back through the MLflow UI's REST API.
"""

import json
from pathlib import Path

import pytest

from tasks.config import load_config


def _policy(tmp_path: Path, name: str, parent=None, steps: int = 0):
    """A policy: the base's directory, or `parent` plus an adapter directory (its weights a
    placeholder: nothing loads them here) whose manifest holds a trl log of `steps` steps."""
    from tasks.policy import Policy

    if parent is None:
        (tmp_path / "base").mkdir(exist_ok=True)
        return Policy(base=str(tmp_path / "base"), base_hash=f"base-{name}")
    adapter = tmp_path / name / "adapter"
    adapter.mkdir(parents=True)
    history = [{"step": s, "epoch": s / steps, "loss": 0.7 - 0.1 * s, "rewards/margins": 0.1 * s}
               for s in range(1, steps + 1)] + [{"step": steps, "train_runtime": 3.5}]
    (adapter / "manifest.json").write_text(json.dumps({"log_history": history}))
    (adapter / "adapter_model.safetensors").write_text(f"the weights of {name}")
    return parent.with_adapter(adapter)


def _cycle(tmp_path: Path, n: int, challenger, champion, trained, promoted: bool,
           next_challenger, next_champion, dev: float = 0.5):
    """A cycle's record (tasks/summary.py, `CycleResult`) with these policies and numbers."""
    from tasks.evaluation import EvalResult
    from tasks.explore import Exploration, Monitoring
    from tasks.records import Shard
    from tasks.summary import CycleResult

    def result(policy, split, score):
        return EvalResult(policy_id=policy.id, suite="mbpp", split=split, problems=4,
                          pass1_greedy=score, pass1_sampled=score, pass_at_k={1: score},
                          outcomes=[])

    ended = trained or challenger
    return CycleResult(
        run_id="tracked-1", cycle=n, started_from=challenger, champion=champion, trained=trained,
        promoted=promoted, next_challenger=next_challenger, next_champion=next_champion,
        decision="a significant dev gain" if promoted else "no significant dev gain",
        pass_rates=[], attempts=32, fixed_by_debug=2,
        exploration=Exploration(scale=1.0, specialists=[], rows=[]),
        monitoring=Monitoring(problems=4, candidates_per_problem=8, pass_at_k={1: 0.4, 8: 0.75},
                              distinct_passing=1.5, reward_auc=None, selected=10,
                              selected_correct=9, precision=0.9, balance=0.6),
        memory=None, memory_version=0, pairs={"best_vs_worse": 6, "debug": 1}, pairs_dropped={},
        pairs_cross_prompt=0, pairs_file=Shard(path=str(tmp_path / "pairs.jsonl"), sha256="0",
                                               rows=7),
        training={"train_loss": 0.6, "steps": 3.0} if trained else {},
        dev=result(ended, "dev", dev), test=result(ended, "test", 0.25),
        start_dev=result(challenger, "dev", 0.5), start_test=result(challenger, "test", 0.25),
        report=[{"split": "dev", "against": "start", "score diff": dev - 0.5, "CI low": -0.1,
                 "CI high": 0.2, "p (sign flip)": 0.3}],
        directory=str(tmp_path / f"cycle-{n}"))


@pytest.fixture
def tracked(tmp_path):
    """A config tracking to a SQLite file under tmp_path, and a Tracker of run `tracked-1`."""
    from flows.tracking import Tracker

    cfg = load_config("tiny", (f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
                               f"run.store={tmp_path / 'store'}"))
    tracker = Tracker.open(cfg, "tracked-1", tmp_path / "store",
                           {"config_hash": cfg.hash(), "start_policy_id": "p0"},
                           flow_run=("f1", "http://127.0.0.1:4200/runs/flow-run/f1"))
    assert tracker is not None
    return cfg, tracker


def _aliases(cfg, tracker) -> dict[str, str]:
    """alias -> the policy id of the version it points at."""
    from flows.tracking import model_name

    client = tracker.client
    name = model_name(cfg)
    return {alias: client.get_model_version(name, version).tags["policy_id"]
            for alias, version in client.get_registered_model(name).aliases.items()}


def test_a_promotion_moves_the_champion_alias_and_every_cycle_the_challenger(tracked, tmp_path):
    cfg, tracker = tracked
    base = _policy(tmp_path, "base")
    one = _policy(tmp_path, "one", base, steps=3)
    two = _policy(tmp_path, "two", one, steps=2)

    # cycle 1 trains `one`, which is not promoted: it is the next challenger, base stays champion
    tracker.cycle(_cycle(tmp_path, 1, base, base, one, False, next_challenger=one,
                         next_champion=base))
    assert _aliases(cfg, tracker) == {"champion": base.id, "challenger": one.id}
    # cycle 2 trains `two` from `one` and promotes it: both aliases move to it
    tracker.cycle(_cycle(tmp_path, 2, one, base, two, True, next_challenger=two,
                         next_champion=two, dev=0.75))
    assert _aliases(cfg, tracker) == {"champion": two.id, "challenger": two.id}

    client = tracker.client
    from flows.tracking import model_name

    versions = {v.tags["policy_id"]: v for v in client.search_model_versions(
        f"name='{model_name(cfg)}'")}
    assert set(versions) == {base.id, one.id, two.id}  # one version per policy, none twice
    assert versions[two.id].source == two.adapters[-1]
    assert versions[two.id].tags["parent_policy"] == one.id
    # the run's metrics: one point per cycle, the start policy at step 0
    history = {m.step: m.value for m in client.get_metric_history(tracker.mlflow_run,
                                                                   "dev/pass1_greedy")}
    assert history == {0: 0.5, 1: 0.5, 2: 0.75}
    assert [m.value for m in client.get_metric_history(tracker.mlflow_run, "promoted")] == [0, 1]
    run = client.get_run(tracker.mlflow_run)
    assert run.data.params["run.name"] == "tiny"
    assert run.data.tags["prefect.flow_run_url"].endswith("/runs/flow-run/f1")
    # each cycle's child run holds its training curve, step by step
    children = {r.data.tags["autodidact.cycle"]: r for r in client.search_runs(
        [tracker.experiment_id], f"tags.`mlflow.parentRunId` = '{tracker.mlflow_run}'")}
    assert set(children) == {"1", "2"}
    curve = client.get_metric_history(children["1"].info.run_id, "train/loss")
    assert [(m.step, round(m.value, 3)) for m in curve] == [(1, 0.6), (2, 0.5), (3, 0.4)]


def test_a_cycle_logged_twice_is_logged_once_and_a_reopened_run_is_the_same_run(tracked,
                                                                                 tmp_path):
    from flows.tracking import Tracker

    cfg, tracker = tracked
    base = _policy(tmp_path, "base")
    one = _policy(tmp_path, "one", base, steps=2)
    cycle = _cycle(tmp_path, 1, base, base, one, False, next_challenger=one, next_champion=base)
    tracker.cycle(cycle)
    tracker.finish(failed=True)
    # a resumed run (a new flow run) reopens the MLflow run and logs the cycle again: no twins
    again = Tracker.open(cfg, "tracked-1", tmp_path / "store", {},
                         flow_run=("f2", "http://127.0.0.1:4200/runs/flow-run/f2"))
    assert again.mlflow_run == tracker.mlflow_run
    again.cycle(cycle)
    again.finish()
    client = again.client
    assert len(client.get_metric_history(again.mlflow_run, "dev/pass1_greedy")) == 2  # 0 and 1
    assert len(client.search_runs([again.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{again.mlflow_run}'")) == 1
    run = client.get_run(again.mlflow_run)
    assert run.info.status == "FINISHED"
    assert run.data.tags["prefect.flow_run_id"] == "f2"


def test_tracking_off_makes_no_mlflow_run_and_leaves_the_run_id_alone(tmp_path):
    from flows.tracking import Tracker

    on = load_config("tiny", (f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",))
    off = load_config("tiny", ("tracking.enabled=false",
                               f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"))
    assert on.hash() == off.hash() == load_config("tiny").hash()
    assert Tracker.open(off, "r", tmp_path, {}) is None
    assert not (tmp_path / "mlflow.db").exists()


def test_a_tracking_failure_is_a_warning_not_the_runs_failure(tmp_path, caplog):
    from flows.tracking import Tracker

    (tmp_path / "afile").write_text("x")
    cfg = load_config("tiny", (f"tracking.uri=sqlite:///{tmp_path}/afile/mlflow.db",))
    with caplog.at_level("WARNING"):
        assert Tracker.open(cfg, "r", tmp_path, {}) is None
    assert "tracking: MLflow at sqlite:///" in caplog.text and "not used for run r" in caplog.text


def test_a_tracking_uri_that_is_none_is_refused_by_the_config():
    from tasks.config import ConfigError

    with pytest.raises(ConfigError, match="is not an MLflow tracking URI"):
        load_config("tiny", ("tracking.uri=/tmp/mlflow.db",))


def test_training_steps_reach_the_cycles_child_run_live_and_the_manifest_only_fills_gaps(
        tracked, tmp_path):
    from tasks.progress import report_step

    cfg, tracker = tracked
    base = _policy(tmp_path, "base")
    one = _policy(tmp_path, "one", base, steps=3)
    with tracker.live(1, base.id, base.id):
        # what the training stage's callback hands over at each logging step
        report_step("train", 1, {"loss": 0.9, "rewards/margins": 0.05, "epoch": 0.5})
        report_step("train", 2, {"loss": 0.8, "rewards/margins": 0.1, "epoch": 1.0})
        client = tracker.client
        (child,) = client.search_runs([tracker.experiment_id],
                                      f"tags.`mlflow.parentRunId` = '{tracker.mlflow_run}'")
        assert child.info.status == "RUNNING"  # the curve is there while the cycle runs
        assert [(m.step, m.value) for m in client.get_metric_history(
            child.info.run_id, "train/loss")] == [(1, 0.9), (2, 0.8)]
    report_step("train", 3, {"loss": 0.1})  # after the block: nobody watches
    tracker.cycle(_cycle(tmp_path, 1, base, base, one, False, next_challenger=one,
                         next_champion=base))
    # the live curve stays as logged: the manifest's (3 steps) does not double it
    history = client.get_metric_history(child.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.9), (2, 0.8)]
    assert client.get_run(child.info.run_id).info.status == "FINISHED"
    assert client.get_metric_history(child.info.run_id, "train/rewards/margins")[-1].value == 0.1
