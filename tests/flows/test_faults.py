"""A run killed with SIGKILL in any stage resumes to the outputs of a run that was never killed,
and the Prefect UI does not keep the dead process's flow runs Running.

The toy world of tests/toy.py, real Prefect (the session's test API), the real sandbox, LanceDB
and trl. The reference is one uninterrupted run; each faulted run is started in a child process,
killed with SIGKILL while the stage's task run is Running (seen through the API), and resumed in
this process, as `autodidact resume` would.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("prefect_api")]

ROOT = Path(__file__).resolve().parents[2]
OVERRIDES = ["run.cycles=1"]

CHILD = """
import sys
sys.path.insert(0, {root!r})
from flows.self_training import self_training
self_training(config={config!r}, overrides={overrides!r})
"""


def outputs(store: Path) -> dict:
    """What a run leaves behind, by content: pairs, adapter, memory rows, evaluations, decision."""
    import lancedb

    (run_dir,) = [p.parent for p in store.glob("*/run.json")]
    cycle = run_dir / "cycle-1"
    out = {"pairs": (cycle / "pairs" / "pairs.jsonl").read_bytes(),
           "decision": (cycle / "promote" / "decision.json").read_text(),
           "summary": json.loads((cycle / "summary.json").read_text())["decision"]}
    for stage in ("sample", "execute", "debug"):  # every shard's candidates and verdicts
        for f in sorted((cycle / stage).glob("*.jsonl")):
            out[f"{stage}/{f.name}"] = f.read_bytes()
    adapters = sorted((cycle / "train").glob("*/adapter_model.safetensors"))
    out["adapter"] = [hashlib.sha256(a.read_bytes()).hexdigest() for a in adapters]
    for result in sorted((run_dir / "evaluations").glob("*/*/result.json")):
        out[str(result.relative_to(run_dir))] = json.loads(result.read_text())["outcomes"]
    db = lancedb.connect(store / "memory")
    for name in ("episodes", "semantic"):
        rows = db.open_table(name).to_arrow().drop_columns(["vector"]).to_pylist()
        key = "id" if name == "episodes" else "code_hash"
        ids = [r[key] for r in rows]
        assert len(ids) == len(set(ids)), f"{name}: a row written twice"
        out[name] = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
    return out


def flow_runs(run_id: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[f"run:{run_id}"])))


def running_task(prefix: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (TaskRunFilter, TaskRunFilterState,
                                                TaskRunFilterStateType)
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(task_run_filter=TaskRunFilter(state=TaskRunFilterState(
            type=TaskRunFilterStateType(any_=[StateType.RUNNING]))))
    return any(r.name.startswith(prefix) for r in runs)


@pytest.fixture(scope="module")
def reference(toy, tmp_path_factory):
    from flows.self_training import self_training

    store = tmp_path_factory.mktemp("reference")
    self_training(config=str(toy / "toy.yaml"), overrides=OVERRIDES + [f"run.store={store}"])
    return outputs(store)


@pytest.mark.parametrize("stage", ["sample[", "execute", "consolidate", "train[", "evaluate["])
def test_a_run_killed_in_any_stage_resumes_to_the_same_outputs(toy, reference, tmp_path, stage):
    from prefect.settings import PREFECT_API_URL

    from flows.self_training import open_run, self_training
    from tasks.config import load_config

    overrides = OVERRIDES + [f"run.store={tmp_path}"]
    config = str(toy / "toy.yaml")
    run_id, _, _ = open_run(load_config(config, overrides))
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(root=str(ROOT), config=config, overrides=overrides)],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 600
        while not running_task(stage):
            assert child.poll() is None, (f"the run ended before {stage} was seen running: "
                                          + child.stderr.read().decode()[-2000:])
            assert time.monotonic() < deadline, f"{stage} never ran"
            time.sleep(0.05)
        os.killpg(child.pid, signal.SIGKILL)  # the process and the workers it forked
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    killed = flow_runs(run_id)  # the parent and its cycle, left Running by the dead process
    assert {r.name for r in killed} == {run_id, f"{run_id}-cycle-1"}
    assert all(r.state.name == "Running" for r in killed), [(r.name, r.state.name) for r in killed]

    self_training(config=config, overrides=overrides)  # what `autodidact resume` runs

    after = {r.id: r for r in flow_runs(run_id)}
    for r in killed:  # no longer Running forever, and the message names who resumed them
        assert after[r.id].state.name == "Crashed", (r.name, after[r.id].state.name)
        assert f"flow run {run_id}-resume-1 resumed run {run_id}" in after[r.id].state.message
    (resumed,) = [r for r in after.values() if r.name == f"{run_id}-resume-1"]
    assert resumed.state.name == "Completed"
    assert {f"run:{run_id}", f"config:{load_config(config).run.name}"} <= set(resumed.tags)

    got = outputs(tmp_path)
    assert got.keys() == reference.keys()
    for key in reference:
        assert got[key] == reference[key], f"{key} differs after a kill in {stage}"
