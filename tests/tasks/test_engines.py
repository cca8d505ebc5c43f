"""The OpenVINO engine on the toy model: it samples from a trained policy's own weights (its
greedy outputs agree with the transformers backend's and differ from the untrained base), its
export is cached per policy, its candidates do not depend on what shares their batch, and they
pass in the sandbox like the reference backend's."""

import json

import pytest

from tasks.config import load_config
from tasks.problems.jsonl import load_jsonl
from tasks.schema import AgentConfig


@pytest.fixture(scope="module")
def toy_world(toy):
    from tasks.policy import base_policy

    cfg = load_config(toy / "toy.yaml")
    problems = load_jsonl(toy / "train.jsonl") + load_jsonl(toy / "test.jsonl")
    return cfg, problems, base_policy(cfg.policy.base)


@pytest.fixture(scope="module")
def trained(toy_world, tmp_path_factory):
    """The toy policy after a real DPO + SFT run (tasks.training) that prefers the right body
    of every toy problem, as every specialist renders it."""
    from tasks.generation import render
    from tasks.pairs import Pair, write_pairs
    from tasks.training import train
    from tests.toy import EVAL, TRAIN

    cfg, problems, policy = toy_world
    rows = {pid: (right, wrong) for pid, _, _, right, wrong, _ in TRAIN + EVAL}
    pairs = [Pair(prompt=render(p.prompt, "completion", s.system_prompt), problem_id=p.id,
                  chosen=f"    {rows[p.id][0]}\n", rejected=f"    {rows[p.id][1]}\n",
                  kind="best_vs_worse", chosen_reward=1.0, rejected_reward=0.0,
                  chosen_id=f"{p.id}/{s.name}/c", rejected_id=f"{p.id}/{s.name}/r")
             for p in problems for s in cfg.sampling.specialists]
    root = tmp_path_factory.mktemp("trained")
    shard = write_pairs(pairs, root / "pairs.jsonl")
    training = cfg.training.model_copy(update={"dpo": {**cfg.training.dpo, "num_train_epochs": 6,
                                                       "learning_rate": 3e-3}})
    return train(shard.path, policy, training, "float32", root / "train").policy


def greedy_bodies(backend, prompts):
    from tasks.generation import Settings, truncate_at_stops

    outs = backend.generate(prompts, Settings(temperature=0.0, n=1, max_new_tokens=24,
                                              stop_early=True))
    return [truncate_at_stops(o[0]) for o in outs]


def test_the_openvino_engine_samples_from_the_trained_weights(toy_world, trained):
    from tasks.engines import open_backend
    from tasks.generation import render

    cfg, problems, base = toy_world
    assert trained.adapters and trained.id != base.id
    prompts = [render(p.prompt, "completion", s.system_prompt) for p in problems
               for s in cfg.sampling.specialists] + [p.prompt for p in problems]
    hf = greedy_bodies(open_backend(trained, "hf", "float32"), prompts)
    ov = greedy_bodies(open_backend(trained, "openvino"), prompts)
    untrained = greedy_bodies(open_backend(base, "hf", "float32"), prompts)
    agree = sum(a == b for a, b in zip(hf, ov)) / len(prompts)
    changed = sum(a != b for a, b in zip(hf, untrained))
    print(f"{len(prompts)} prompts: openvino agrees with hf on {agree:.0%}; training changed "
          f"{changed} greedy outputs (hf), {sum(a != b for a, b in zip(ov, untrained))} (openvino)")
    assert agree >= 0.9, list(zip(hf, ov))
    assert hf != untrained  # training changed what the policy writes...
    assert sum(a != b for a, b in zip(ov, untrained)) >= sum(a != b for a, b in
                                                              zip(hf, untrained)) * 0.9
    # ...and the int8 copy writes it too: it differs from the base where the trained one does


def test_the_export_is_made_once_per_policy_and_records_its_lineage(toy_world, trained):
    from tasks.engines import openvino_dir, openvino_model

    _, _, base = toy_world
    path = openvino_model(trained)
    assert path == openvino_dir(trained) and (path / "openvino_model.xml").exists()
    before = (path / "openvino_model.bin").stat().st_mtime_ns
    assert openvino_model(trained, log=pytest.fail) == path  # cached: no merge, no export
    assert (path / "openvino_model.bin").stat().st_mtime_ns == before
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["policy"] == trained.id and manifest["adapters"] == list(trained.adapters)
    assert manifest["merged_in"] == "float32" and manifest["weight_format"] == "int8"
    assert openvino_dir(base) != path


@pytest.mark.docker
def test_openvino_candidates_are_batch_independent_and_pass_in_the_sandbox(toy_world, sandbox):
    from tasks.engines import open_backend
    from tasks.execution import judge
    from tasks.sampling import sample

    cfg, problems, policy = toy_world
    backend = open_backend(policy, "openvino")
    many = cfg.sampling.model_copy(update={"samples_per_specialist": 3})
    agents, specialists = cfg.sampling.agents, cfg.sampling.specialists
    together = sample(problems, backend, backend.tokenizer, policy.id, agents, specialists,
                      many, 1)
    assert len(together) == len(problems) * len(agents) * len(specialists) * 3
    alone = sample(problems, backend, backend.tokenizer, policy.id, agents[:1],
                   specialists[1:], many, 1)
    same = [x for x in together if x.agent == agents[0].name
            and x.specialist == specialists[1].name]
    assert [x.id for x in same] == [x.id for x in alone]
    # the same seeds; the logits may differ in their last bits with the batch's composition,
    # which flips a near-tie now and then (the toy model's right and wrong answers are ties)
    identical = sum(x.response == y.response for x, y in zip(same, alone)) / len(alone)
    assert identical >= 0.9, [(x.response, y.response) for x, y in zip(same, alone)]
    other = sample(problems, backend, backend.tokenizer, policy.id,
                   [AgentConfig(name="Z", policy="current", seed=99)], specialists[1:], many, 1)
    assert [x.response for x in other] != [x.response for x in alone]
    judged = judge(together, {p.id: p for p in problems}, sandbox, cfg.sandbox)
    statuses = {a.status for a in judged}
    assert "passed" in statuses and statuses & {"failed", "error"}, statuses


def test_settings_must_match_the_prompts_and_the_exporter_must_exist(toy_world, monkeypatch,
                                                                      tmp_path):
    import tasks.engines as engines
    from tasks.generation import Settings, per_prompt
    from tasks.policy import PolicyError

    with pytest.raises(ValueError, match="2 settings for 3 prompts"):
        per_prompt([Settings(), Settings()], 3)
    with pytest.raises(ValueError, match="unknown sampling.backend 'vllm'"):
        engines.open_backend(toy_world[2], "vllm")
    monkeypatch.setattr(engines, "EXPORT_VENV", tmp_path / "missing")
    with pytest.raises(PolicyError, match="make setup"):
        engines.openvino_model(toy_world[2], root=tmp_path / "models")
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").rglob("*.xml"))


def test_a_generate_call_that_stops_using_the_cpu_is_reported_hung_and_the_stage_retries():
    """The watchdog around OpenVINO's generate: a call that waits on nothing (the sampler's
    deadlock: a futex wait, no CPU) becomes EngineHung within its window, which the sampling
    stages retry; a busy call returns its result and a failing one raises its own error."""
    import threading
    import time

    from prefect.states import Failed

    from tasks.engines import EngineHung, watched
    from tasks.execution import engine_failed
    from tasks.sampling import sample_task

    started = time.monotonic()
    with pytest.raises(EngineHung, match="made no progress"):
        watched(threading.Event().wait, "a wait on nothing", hang_s=1.0, idle_cpu_s=0.2)
    assert time.monotonic() - started < 15

    def busy():  # ~2 s of pure CPU: progress the whole time
        end = time.process_time() + 2.0
        while time.process_time() < end:
            pass
        return "done"

    assert watched(busy, "busy", hang_s=1.0, idle_cpu_s=0.2) == "done"
    with pytest.raises(ZeroDivisionError):
        watched(lambda: 1 / 0, "a bug")

    assert engine_failed(None, None, Failed(data=EngineHung("hung")))
    assert not engine_failed(None, None, Failed(data=ValueError("a bug")))
    assert sample_task.retries > 0 and sample_task.retry_condition_fn is engine_failed


def test_a_killed_exports_staging_is_removed_by_the_next_and_a_full_disk_is_named(toy_world,
                                                                               tmp_path):
    """A staging directory whose process died (SIGKILL runs no clean-up) is removed; one whose
    process lives, or with no owner yet, is kept. An export that runs out of disk says so (the
    exporter's own error, "basic_ios::clear: iostream error", does not) and leaves nothing."""
    import os
    import subprocess

    from sandbox.engine import _here, _started, owner
    from tasks.engines import openvino_model, remove_stale_staging
    from tasks.policy import PolicyError

    child = subprocess.Popen(["sleep", "60"])
    dead_label = f"{_here()}:{child.pid}:{_started(child.pid)}"
    child.kill()
    child.wait()
    dead, alive, unowned = (tmp_path / f".export-{n}" for n in ("dead", "alive", "unowned"))
    for d in (dead, alive, unowned):
        (d / "merged").mkdir(parents=True)
    (dead / "OWNER").write_text(dead_label + "\n")
    (alive / "OWNER").write_text(owner() + "\n")
    assert remove_stale_staging(tmp_path) == [dead]
    assert not dead.exists() and alive.is_dir() and unowned.is_dir()

    assert os.geteuid() == 0, "this test mounts a tmpfs: run it as root (make test does, in CI)"
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], check=True)
    try:
        with pytest.raises(PolicyError, match=r"(?s)failed .*Only 0\.0 GiB are free under"):
            openvino_model(toy_world[2], root=small, log=lambda _: None)
        assert [p.name for p in (small / "openvino").iterdir()] == [
            f"{toy_world[2].id}-int8.lock"]  # no staging left, no half export in place
    finally:
        subprocess.run(["umount", str(small)], check=True)
