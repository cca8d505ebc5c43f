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

import docker
import pytest

from sandbox.engine import OWNER_LABEL

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
           "decision": stable(json.loads((cycle / "promote" / "decision.json").read_text())),
           "summary": json.loads((cycle / "summary.json").read_text())["decision"]}
    for stage in ("sample", "execute", "debug"):  # every shard's candidates and verdicts
        for f in sorted((cycle / stage).glob("*.jsonl")):
            out[f"{stage}/{f.name}"] = [stable(json.loads(line))
                                        for line in f.read_text().splitlines()]
    adapters = sorted(p for p in (cycle / "train").rglob("adapter_model.safetensors")
                      if "checkpoints" not in p.parts)
    out["adapter"] = [hashlib.sha256(a.read_bytes()).hexdigest() for a in adapters]
    for result in sorted((run_dir / "evaluations").glob("*/*/result.json")):
        out[str(result.relative_to(run_dir))] = json.loads(result.read_text())["outcomes"]
    db = lancedb.connect(store / "memory")
    for name in ("episodes", "semantic"):
        table = db.open_table(name).to_arrow()
        rows = table.drop_columns([c for c in ("vector",) if c in table.column_names]).to_pylist()
        key = "id" if name == "episodes" else "code_hash"
        ids = [r[key] for r in rows]
        assert len(ids) == len(set(ids)), f"{name}: a row written twice"
        out[name] = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
    return out


MEASURED = {"duration_s", "train_runtime_s", "train_runtime"}  # wall-clock: never the same twice


def stable(obj):
    """A record without its measured times."""
    if isinstance(obj, dict):
        return {k: stable(v) for k, v in obj.items() if k not in MEASURED}
    if isinstance(obj, list):
        return [stable(v) for v in obj]
    return obj


def flow_runs(run_id: str, store: Path) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    from flows.lineage import store_tag

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[f"run:{run_id}", store_tag(store)])))


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
    return store


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
        while not (running_task(stage) and ready(stage, tmp_path, child.pid)):
            assert child.poll() is None, (f"the run ended before {stage} was seen running: "
                                          + child.stderr.read().decode()[-2000:])
            assert time.monotonic() < deadline, f"{stage} never ran"
            time.sleep(0.01)
        os.killpg(child.pid, signal.SIGKILL)  # the process and the workers it forked
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    killed = flow_runs(run_id, tmp_path)  # parent and cycle, left Running by the dead process
    assert {r.name for r in killed} == {run_id, f"{run_id}-cycle-1"}
    assert all(r.state.name == "Running" for r in killed), [(r.name, r.state.name) for r in killed]

    self_training(config=config, overrides=overrides)  # what `autodidact resume` runs

    after = {r.id: r for r in flow_runs(run_id, tmp_path)}
    for r in killed:  # no longer Running forever, and the message names who resumed them
        assert after[r.id].state.name == "Crashed", (r.name, after[r.id].state.name)
        assert f"flow run {run_id}-resume-1 resumed run {run_id}" in after[r.id].state.message
    (resumed,) = [r for r in after.values() if r.name == f"{run_id}-resume-1"]
    assert resumed.state.name == "Completed"
    assert {f"run:{run_id}", f"config:{load_config(config).run.name}"} <= set(resumed.tags)

    expected, got = outputs(reference), outputs(tmp_path)
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == expected[key], f"{key} differs after a kill in {stage}"
    # the dead process's sandbox container (it was judging when killed in execute) is gone too
    assert not sandboxes_of(child.pid)
    if stage == "train[":  # killed after a checkpoint: the resumed training started from it
        (manifest,) = [p for p in (tmp_path / run_id).rglob("adapter/manifest.json")]
        assert json.loads(manifest.read_text())["resumed_from"], "training started over"


def sandboxes_of(pid: int) -> list[str]:
    """The sandbox containers process `pid` (of this host) started."""
    return [c.name for c in docker.from_env().containers.list(
                all=True, filters={"label": "autodidact.sandbox=1"})
            if c.labels.get(OWNER_LABEL, "").rsplit(":", 2)[-2:-1] == [str(pid)]]


def ready(stage: str, store: Path, pid: int) -> bool:
    """The moment to kill in `stage` has come: execute is judging in its sandbox container;
    training has written a whole checkpoint."""
    if stage == "execute":
        return bool(sandboxes_of(pid))
    if stage == "train[":
        return any(store.rglob("checkpoint-*/trainer_state.json"))
    return True


# ----------------------------------------------------------------------------------------------
# The Docker engine going away mid-batch


class EngineProxy:
    """A Unix socket in front of the Docker engine's, which the test cuts (every connection
    dropped, nothing listening: the engine is gone, as far as the client can tell) and restores."""

    def __init__(self, path: Path, engine: str = "/var/run/docker.sock"):
        self.path, self.engine = path, engine
        self.listener = None
        self.conns: list = []

    def start(self) -> None:
        import socket
        import threading

        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(self.path))
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.engine)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst) -> None:
        import socket

        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def cut(self) -> None:
        import socket

        self.listener.close()
        self.path.unlink()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        self.conns = []


def judging(engine, before: set[str]) -> bool:
    """A sandbox container of this test is up and a runner is executing in it."""
    for c in engine.containers.list(filters={"label": "autodidact.sandbox=1"}):
        if c.id not in before and engine.api.inspect_container(c.id).get("ExecIDs"):
            return True
    return False


SLOW = ("def check(candidate):\n    import time\n    time.sleep(0.25)\n"
        "    assert candidate(2, 3) == 5\n")


def test_the_engine_going_away_mid_batch_scores_no_candidate_and_the_stage_retries(tmp_path,
                                                                                  monkeypatch):
    import threading

    import docker
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterTaskRunId

    from tasks.config import load_config
    from tasks.execution import execute, execute_task
    from tasks.problems.records import Problem
    from tasks.records import Attempt, CycleContext, write_rows

    cfg = load_config("tiny").sandbox
    problem = Problem(id="slow-add", prompt="def add(a, b):\n", entry_point="add", tests=SLOW,
                      source="test")
    bodies = ["    return a + b\n", "    return a - b\n"]
    attempts = [Attempt(id=f"a{i}", problem_id=problem.id, cycle=1, agent="A", specialist="s",
                        sample=i, turn=0, policy_id="p", prompt=problem.prompt,
                        response=bodies[i % 2], code=problem.prompt + bodies[i % 2])
                for i in range(40)]  # about 5 s of judging on 2 workers
    samples = write_rows(tmp_path / "samples.jsonl", attempts)
    problems = write_rows(tmp_path / "problems.jsonl", [problem])
    expected = [(a.id, a.status, a.passed) for a in execute(attempts, {problem.id: problem}, cfg)]

    engine = docker.from_env()
    before = {c.id for c in engine.containers.list(all=True,
                                                   filters={"label": "autodidact.sandbox=1"})}
    proxy = EngineProxy(tmp_path / "docker.sock")
    proxy.start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{proxy.path}")
    ctx = CycleContext(run_id="faults", run_dir=str(tmp_path / "run"), cycle=1,
                       dtype="float32", seed=0, memory_dir=str(tmp_path / "memory"),
                       memory_version=0)

    @flow(name="judge-through-a-failing-engine")
    def judge():
        return execute_task(ctx, [samples], problems, cfg, return_state=True)

    done = {}
    worker = threading.Thread(target=lambda: done.update(state=judge()))
    try:
        worker.start()
        deadline = time.monotonic() + 120
        while not judging(engine, before):  # the container is up and its runner is judging
            assert worker.is_alive() and time.monotonic() < deadline, "the batch never started"
            time.sleep(0.1)
        time.sleep(0.5)
        proxy.cut()  # the engine goes away mid-batch
        time.sleep(3)
        proxy.start()  # and comes back before the first retry (5 s)
        worker.join(timeout=600)
        state = done["state"]
        assert state.is_completed(), state.message
        got = state.result().read(Attempt)
        assert [(a.id, a.status, a.passed) for a in got] == expected  # nobody scored the outage
        # the stage failed with the sandbox's error, said so, and retried
        task_run = state.state_details.task_run_id
        with get_client(sync_client=True) as client:
            history = [s.name for s in client.read_task_run_states(task_run)]
            logs = [log.message for log in client.read_logs(log_filter=LogFilter(
                task_run_id=LogFilterTaskRunId(any_=[task_run])))]
        assert "AwaitingRetry" in history or "Retrying" in history, history
        assert any("SandboxError" in m for m in logs), logs
    finally:
        try:
            proxy.cut()
        except OSError:
            pass
        for c in engine.containers.list(all=True, filters={"label": "autodidact.sandbox=1"}):
            if c.id not in before:  # the container the outage stranded
                c.remove(force=True)


# ----------------------------------------------------------------------------------------------
# The run store's disk filling up


def test_a_full_disk_is_a_clear_error_leaves_nothing_corrupt_and_resumes(toy, reference,
                                                                         tmp_path):
    """The store on a tmpfs half the size the run needs: the run fails saying the disk is full
    and how to go on, every file it kept is whole, and with room again it resumes to the outputs
    of a run that never ran out."""
    from flows.self_training import StoreFull, self_training

    assert os.geteuid() == 0, "this test mounts a tmpfs: run it as root (make test does, in CI)"
    needed = sum(p.stat().st_size for p in reference.rglob("*") if p.is_file())
    store = tmp_path / "store"
    store.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={needed // 2}", "tmpfs", str(store)],
                   check=True)
    try:
        overrides = OVERRIDES + [f"run.store={store}"]
        with pytest.raises(StoreFull, match=r"no space left on the disk of the run store .*"
                                            r"autodidact resume"):
            self_training(config=str(toy / "toy.yaml"), overrides=overrides)
        # nothing half-written: no temporary files, every record's file matches its hash
        leftovers = [p for p in store.rglob(".*") if p.is_file() and p.name != ".lock"
                     and ".results" not in p.parts and "memory" not in p.parts]
        assert not leftovers, leftovers
        for jsonl in store.rglob("*.jsonl"):
            if "memory" not in jsonl.parts:
                for line in jsonl.read_text().splitlines():
                    json.loads(line)  # whole lines only
        for checkpoint in store.rglob("checkpoint-*"):
            json.loads((checkpoint / "trainer_state.json").read_text())
        if (store / "memory").exists():  # LanceDB's tables open and read whole
            import lancedb

            db = lancedb.connect(store / "memory")
            for name in db.table_names():
                db.open_table(name).to_arrow()

        # room again: far more than the finished run keeps, since training peaks well above it
        # (two checkpoints at a time, each with optimizer state and the tokenizer's files)
        subprocess.run(["mount", "-o", f"remount,size={needed * 4 + 2**30}", str(store)],
                       check=True)
        self_training(config=str(toy / "toy.yaml"), overrides=overrides)
        expected, got = outputs(reference), outputs(store)
        assert got.keys() == expected.keys()
        for key in expected:
            assert got[key] == expected[key], f"{key} differs after the disk was full"
    finally:
        subprocess.run(["umount", "-l", str(store)], check=False)
