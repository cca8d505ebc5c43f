"""Cache keys see all of a stage's code: in a temporary copy of the project, a comment appended
to tasks/pairs.py makes the mine-pairs stage and what depends on its code run again on the next
run of the same cycle, while every stage upstream of it comes from the cache.

Each run is a separate process (the copy's modules, not this checkout's) with its own Prefect
database; the cached results live in the shared run store, as they do for a resumed night.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.paths import REPO_ROOT, home

pytestmark = pytest.mark.docker

RUN = """
import json, sys, time
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.sorting import FlowRunSort
from flows.self_training import self_training

results = self_training(config=sys.argv[1], overrides=sys.argv[2:])
name = f"{results[0].run_id}-cycle-1"
with get_client(sync_client=True) as client:
    runs = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=20)
    run = next(r for r in runs if r.name == name)  # this process's run: both have the name
    # the server records task run states from events, in batches: the last ones may lag
    deadline = time.monotonic() + 60
    while True:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
        if time.monotonic() > deadline or not any(
                t.state.name in ("Running", "Pending") for t in tasks):
            break
        time.sleep(1)
print("STATES " + json.dumps({t.name: t.state.name for t in tasks}))
"""


def run_cycle(copy: Path, config: Path, store: Path, prefect_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PYTHONPATH=str(copy), AUTODIDACT_HOME=str(home()), PREFECT_HOME=str(prefect_home),
               PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="true")
    done = subprocess.run([sys.executable, "-c", RUN, str(config), f"run.store={store}",
                           "debug.max_turns=0"],
                          cwd=copy, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    line = next(l for l in done.stdout.splitlines() if l.startswith("STATES "))
    return json.loads(line.removeprefix("STATES "))


def stage(states: dict[str, str], prefix: str) -> list[str]:
    found = [s for name, s in states.items() if name.startswith(prefix)]
    assert found, f"no task run named {prefix}...: {sorted(states)}"
    return found


def test_editing_a_stage_module_reruns_it_and_its_dependents_only(toy, tmp_path):
    copy = tmp_path / "project"
    for package in ("tasks", "flows", "sandbox", "configs"):
        shutil.copytree(REPO_ROOT / package, copy / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    store, prefect_home = tmp_path / "store", tmp_path / "prefect"

    first = run_cycle(copy, toy / "toy.yaml", store, prefect_home)
    assert all(s == "Completed" for s in first.values()), first

    with open(copy / "tasks" / "pairs.py", "a") as f:
        f.write("\n# an edit of the pairs stage\n")
    second = run_cycle(copy, toy / "toy.yaml", store, prefect_home)

    for upstream in ("load-problems", "draw-train", "explore", "sample[", "execute", "monitor",
                     "consolidate"):
        assert set(stage(second, upstream)) == {"Cached"}, (upstream, second)
    assert "Cached" in stage(second, "evaluate[policy=")  # the policy the cycle started from
    assert stage(second, "mine-pairs") == ["Completed"], second
    # training reads the pairs through tasks.pairs, and the summary holds a PairSet
    assert set(stage(second, "train[")) == {"Completed"}, second
    assert set(stage(second, "summarize")) == {"Completed"}, second
