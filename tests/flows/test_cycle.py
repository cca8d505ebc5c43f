"""The self-training flow end to end on the toy world (tests/toy.py): real Prefect (one test API
per session), the real sandbox, LanceDB and trl.

One run goes through three lives, as a failed night does:
  1. training fails (its directory cannot be created: a disk problem) and the flow fails;
  2. the run is resumed: sampling, execution, debug, memory and pairs come from the cache, training
     runs, and the two cycles finish (cycle 2 draws by the pass history of cycle 1: the
     curriculum is on);
  3. resumed once more from the run's own config.yaml (`autodidact resume`): every task is
     served from the cache, nothing re-runs.
"""

import contextlib
import json
import logging
import os
import re
import signal
import stat
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("prefect_api")]


def task_states(flow_name_part: str) -> dict[str, str]:
    """Task run name -> state name, for the newest flow run whose name contains the text."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = [r for r in client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=50)
                if flow_name_part in r.name]
        assert runs, f"no flow run named like {flow_name_part!r}"
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runs[0].id])))
        return {t.name: t.state.name for t in tasks}


def test_a_failed_run_resumes_from_the_cache_and_a_finished_one_reruns_nothing(toy, tmp_path):
    from flows.self_training import open_run, self_training
    from tasks.config import load_config

    overrides = [f"run.store={tmp_path}", "run.cycles=2", "problems.train_n=4",
                 "problems.curriculum.enabled=true",
                 f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"]
    cfg = load_config(toy / "toy.yaml", overrides)
    run_id, run_dir, _ = open_run(cfg)
    blocker = run_dir / "cycle-1" / "train"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where training wants its directory")

    # 1. training fails; everything before it finished
    state = self_training(config=str(toy / "toy.yaml"), overrides=overrides,
                          return_state=True)
    assert state.is_failed()
    first = task_states(f"{run_id}-cycle-1")
    assert first["train[policy=" + cfg_policy_id(run_dir) + "]"] == "Failed"
    for name, s in first.items():
        if name.startswith(("sample[", "execute", "debug[", "consolidate", "mine-pairs")):
            assert s == "Completed", (name, s)

    # 2. resumed: the finished tasks are cached, training and the rest run
    blocker.unlink()
    results = self_training(config=str(toy / "toy.yaml"), overrides=overrides)
    second = task_states(f"{run_id}-cycle-1")
    for name, s in second.items():
        if name.startswith(("sample[", "execute", "debug[", "consolidate", "mine-pairs",
                            "load-problems", "draw-train", "explore", "monitor",
                            "record-passes")):
            assert s == "Cached", (name, s)
    assert second["train[policy=" + cfg_policy_id(run_dir) + "]"] == "Completed"

    assert [r.cycle for r in results] == [1, 2]
    one, two = results
    assert one.attempts >= 16 and sum(one.pairs.values()) > 0
    assert one.trained is not None and one.training["steps"] >= 1
    adapter = Path(one.trained.adapters[-1])
    manifest = json.loads((adapter / "manifest.json").read_text())
    assert manifest["parents"]["policy"] == one.started_from.id
    assert manifest["data"]["rows"] == one.pairs["best_vs_worse"] + one.pairs["debug"]
    assert one.memory is not None and one.memory.written > 0
    # cycle 2 starts from the challenger and champion cycle 1 named
    assert (two.started_from, two.champion) == (one.next_challenger, one.next_champion)
    assert two.memory_version >= one.memory_version > 0
    assert (one.dev.split, one.dev.problems, set(one.dev.pass_at_k)) == ("dev", 2, {1, 2})
    assert (one.test.split, one.test.problems) == ("test", 2)
    assert {(r["split"], r["against"]) for r in one.report} == {
        ("dev", "start"), ("dev", "cycle start"), ("test", "start"), ("test", "cycle start")}
    assert one.exploration.rows and one.exploration.scale in (0.5, 1.0)
    assert one.monitoring.problems == 4
    # the raw per-problem outcomes behind every number, and the run's report and plot
    raw = json.loads((run_dir / "evaluations" / one.trained.id / "dev" / "result.json")
                     .read_text())
    assert len(raw["outcomes"]) == 2 and raw["split"] == "dev"
    assert (run_dir / "scores.png").read_bytes()[:4] == b"\x89PNG"
    assert "| cycle |" in (run_dir / "report.md").read_text()
    decontamination = json.loads((run_dir / "problems" / "decontamination.json").read_text())
    assert decontamination["excluded"] == []
    summary = json.loads((run_dir / "cycle-1" / "summary.json").read_text())
    assert summary["decision"] == one.decision
    if one.promoted:  # the store remembers it, for the next night
        assert (tmp_path / "promoted.jsonl").read_text().count(run_id) >= 1

    # the curriculum: each cycle's first tries join the run's pass history, and cycle 2 drew by
    # the history cycle 1 left (a resumed run reads the same, so life 3 draws the same); the
    # draws hold all 4 toy problems, but cycle 2's reasons are their standings, not "untried"
    from tasks.problems.curriculum import history_path, read_passes

    history = read_passes(history_path(run_dir))
    for cycle in (1, 2):
        rows = {r.problem_id: r for r in history if r.cycle == cycle}
        tries = [json.loads(line) for path in (run_dir / f"cycle-{cycle}" / "execute").glob(
            "attempts*.jsonl") for line in path.read_text().splitlines() if line]
        tries = [a for a in tries if a["turn"] == 0]
        assert tries and len(rows) == len([r for r in history if r.cycle == cycle])
        assert {pid: (r.candidates, r.passed) for pid, r in rows.items()} == {
            pid: (sum(a["problem_id"] == pid for a in tries),
                  sum(a["problem_id"] == pid and a["status"] == "passed" for a in tries))
            for pid in {a["problem_id"] for a in tries}}  # every first try, once
        assert all(r.run == run_id for r in rows.values())
    draws = {cycle: json.loads((run_dir / f"cycle-{cycle}" / "problems" / "draw.json")
                               .read_text()) for cycle in (1, 2)}
    assert draws[1]["history"]["rows"] == 0
    assert {w["standing"] for w in draws[1]["problems"]} == {"untried"}
    assert draws[2]["history"]["rows"] == len([r for r in history if r.cycle == 1]) > 0
    assert {w["standing"] for w in draws[2]["problems"]} <= {"in-band", "out-of-band"}
    assert all(w["draws"] == 1 for w in draws[2]["problems"])

    # 3. the same run again, as `autodidact resume RUN` does it: nothing re-runs
    again = self_training(config=str(run_dir / "config.yaml"), run_id=run_id)
    assert [r.model_dump() for r in again] == [r.model_dump() for r in results]
    for cycle in (1, 2):
        states = task_states(f"{run_id}-cycle-{cycle}")
        assert states and all(s == "Cached" for s in states.values()), states

    assert read_passes(history_path(run_dir)) == history  # life 3 recorded nothing again

    # MLflow (flows/tracking.py): the three lives are one MLflow run, each cycle logged once
    from mlflow import MlflowClient

    from flows.tracking import model_name

    client = MlflowClient(tracking_uri=cfg.tracking.uri, registry_uri=cfg.tracking.uri)
    experiment = client.get_experiment_by_name("autodidact").experiment_id
    (run,) = client.search_runs([experiment], f"tags.`autodidact.run_id` = '{run_id}' and "
                                              "attributes.run_name = "
                                              f"'{run_id}'")
    assert run.info.status == "FINISHED"
    assert run.data.params["run.cycles"] == "2"
    dev = client.get_metric_history(run.info.run_id, "dev/pass1_greedy")
    assert sorted((m.step, m.value) for m in dev) == [
        (0, one.start_dev.pass1_greedy), (1, one.dev.pass1_greedy), (2, two.dev.pass1_greedy)]
    children = client.search_runs([experiment],
                                  f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
    assert sorted(c.info.run_name for c in children) == [f"{run_id}-cycle-1",
                                                         f"{run_id}-cycle-2"]
    first = next(c for c in children if c.info.run_name.endswith("-1"))
    curve = client.get_metric_history(first.info.run_id, "train/loss")
    assert [m.step for m in curve] == list(range(1, int(one.training["steps"]) + 1))
    name = model_name(cfg)
    aliases = {alias: client.get_model_version(name, v).tags["policy_id"]
               for alias, v in client.get_registered_model(name).aliases.items()}
    assert aliases == {"champion": two.next_champion.id, "challenger": two.next_challenger.id}


def cfg_policy_id(run_dir: Path) -> str:
    return json.loads((run_dir / "run.json").read_text())["start_policy_id"]


PROGRESS_LINE = re.compile(r"^(?P<what>[^:]+): (?P<done>\d+)/(?P<total>\d+) (?P<unit>\w+)")


class _Records(logging.Handler):
    """Keeps the records a logger hands it."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_artifacts_of_a_cycle_are_published(toy, tmp_path):
    """The cycle's keyed artifacts (summary, pass rates, pairs, evaluation, promotion), named and
    tagged flow runs, a lineage a person can click through, and asset materializations; and
    the progress of every long stage in its task run's log and progress artifact."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId,
                                                ArtifactFilterKey, ArtifactFilterType,
                                                FlowRunFilter, FlowRunFilterTags, LogFilter,
                                                LogFilterTaskRunId)
    from prefect.logging.handlers import APILogHandler

    from flows.lineage import store_tag
    from flows.self_training import self_training

    # the task runs' logger (caplog's handler on the root logger does not survive Prefect
    # configuring logging when its main module first loads)
    task_logs = _Records()
    logging.getLogger("prefect.task_runs").addHandler(task_logs)
    umask = os.umask(0o022)
    try:
        results = self_training(config=str(toy / "toy.yaml"),
                                overrides=[f"run.store={tmp_path}", "debug.max_turns=0",
                                           "memory.enabled=false",
                                           f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"])
    finally:
        os.umask(umask)
        logging.getLogger("prefect.task_runs").removeHandler(task_logs)
    r = results[0]
    key = r.run_id.lower()
    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts()}
        (summary,) = client.read_latest_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[f"{key}-cycle-1-summary"])))
        runs = {f.name: f for f in client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[f"run:{r.run_id}", store_tag(tmp_path)])))}

    def materializations(asset: str) -> list[set[str]]:
        """For each materialization of `asset` the server stored: the assets it was made from.
        An adapter's id is its content hash, so an earlier run in the same server that
        trained the same bytes materialized the same asset: look at all of them."""
        with get_client(sync_client=True) as client:
            events = client.request("POST", "/events/filter", json={
                "filter": {"event": {"prefix": ["prefect.asset.materialization"]},
                           "resource": {"id": [asset]}},
                "limit": 50}).json()["events"]
        return [{x["prefect.resource.id"] for x in e["related"]}
                for e in events if e["event"] == "prefect.asset.materialization.succeeded"]

    for what in ("summary", "pass-rates", "pairs", "evaluation", "explore", "promotion"):
        assert f"{key}-cycle-1-{what}" in keys
    assert f"{key}-scores" in keys
    assert r.memory is None and r.fixed_by_debug == 0
    # from the adapter back: its policy's artifact links the cycle that trained it
    with get_client(sync_client=True) as client:
        (policy,) = client.read_latest_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[f"policy-{r.trained.id}"])))
        content = {what: client.read_latest_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[f"{key}-cycle-1-{what}"])))[0].latest_id
                   for what in ("pairs", "evaluation", "promotion")}
    # links go to the artifacts' content pages, not to their keys' timelines
    assert f"/artifacts/artifact/{summary.latest_id}" in policy.data
    assert "/artifacts/key/" not in policy.data
    assert r.trained.adapters[-1] in policy.data

    # flow runs named after what they are, tagged with the run, the config and the policy
    assert set(runs) == {r.run_id, f"{r.run_id}-cycle-1"}
    assert {f"run:{r.run_id}", "config:tiny", store_tag(tmp_path)} <= set(runs[r.run_id].tags)
    assert f"policy:{r.started_from.id}" in runs[f"{r.run_id}-cycle-1"].tags

    # the summary links each piece of the chain, and draws it
    text = summary.data
    for link in (f"/artifacts/artifact/{content['pairs']}",
                 f"/artifacts/artifact/{content['evaluation']}",
                 f"/artifacts/artifact/{content['promotion']}", "manifest.json", "README.md",
                 "LanceDB version", "the run's start policy", "```mermaid", "pairs --> adapter",
                 "- MLflow: [run "):
        assert link in text, link
    assert "/artifacts/key/" not in text
    # and shows the content: the training problems and a few pairs, as tables
    run_dir = tmp_path / r.run_id
    drawn = [json.loads(line)["id"] for line in
             (run_dir / "cycle-1" / "problems" / "train.jsonl").read_text().splitlines()]
    assert len(drawn) == r.monitoring.problems
    for markdown in (text, policy.data):
        assert "| problem | source | drawn because | pairs | by kind |" in markdown
        for problem in drawn:
            assert re.search(rf"^\| {re.escape(problem)} \| ", markdown, re.M), problem
        assert ("| kind | problem | chosen | rejected | chosen answer | rejected answer |"
                in markdown)
        assert re.search(r"^\| (best_vs_worse|debug) \| ", markdown, re.M)

    # the run's index links every file and the cycle, the adapter's card among them
    from tests.tasks.test_report import index_links

    targets = index_links(run_dir)
    card = Path(r.trained.adapters[-1]) / "README.md"
    for target in ("report.md", "scores.png", "summary.json", "run.json", "config.yaml",
                   "cycle-1/", "cycle-1/summary.json", "cycle-1/pairs/", "cycle-1/train/",
                   str(card.relative_to(run_dir))):
        assert target in targets, target
    assert f"- parent policy: `{r.started_from.id}`" in card.read_text()
    assert f"- sha256: `{r.pairs_file.sha256}`" in card.read_text()
    # every file the run wrote reads the same: 0644 under umask 022
    modes = {str(f.relative_to(run_dir)): oct(stat.S_IMODE(f.stat().st_mode))
             for f in run_dir.rglob("*") if f.is_file()}
    assert set(modes.values()) == {"0o644"}, {f: m for f, m in modes.items() if m != "0o644"}

    # asset materializations: the adapter was made from the pairs and the policy it trained from
    # (the server stores events in batches: give it a few seconds)
    adapter = f"autodidact://policy/{r.trained.id}"
    pairs = f"autodidact://{store_tag(tmp_path)[6:]}/{r.run_id}/cycle-1/pairs"
    deadline = time.monotonic() + 30
    while (not any(pairs in made for made in materializations(adapter))
           and time.monotonic() < deadline):
        time.sleep(1)
    ours = [made for made in materializations(adapter) if pairs in made]
    assert ours, (pairs, materializations(adapter))
    assert all(f"autodidact://policy/{r.started_from.id}" in made for made in ours), ours

    # progress (tasks/progress.py): each long stage's lines come from its task run's logger,
    # start at 0 and count up to their total
    counted: dict[tuple[str, str], list[tuple[int, int]]] = {}
    task_runs = {}
    for record in task_logs.records:
        match = PROGRESS_LINE.match(record.getMessage())
        if match and getattr(record, "task_run_name", None):
            key = (record.task_run_name, match["what"])
            counted.setdefault(key, []).append((int(match["done"]), int(match["total"])))
            task_runs[record.task_run_name] = str(record.task_run_id)
    for (run, what), seen in counted.items():
        dones = [done for done, _ in seen]
        assert dones[0] == 0 and dones == sorted(dones), (run, what, seen)
        assert seen[-1][0] == seen[-1][1] > 0, (run, what, seen)
    stages = {(run.split("[")[0], what) for run, what in counted}
    for split in ("dev", "test"):
        stages -= {("evaluate", f"evaluate {split} {part}")
                   for part in ("greedy", "sampled", "judge")}
    assert stages == {("sample", "sample"), ("execute", "execute"), ("explore", "explore"),
                      ("train", "train")}, stages
    (train_run,) = [run for run in task_runs if run.startswith("train[")]
    steps = [line for line in (rec.getMessage() for rec in task_logs.records)
             if line.startswith("train: ") and "; loss " in line]
    assert len(steps) == r.training["steps"], steps
    assert all("reward accuracy" in line and "margin" in line for line in steps)
    # the same lines in the task run's log on the server, and a progress artifact at 100%
    APILogHandler().flush()  # sends the logs still queued

    def server_log() -> list[str]:
        with get_client(sync_client=True) as client:
            return [log.message for log in client.read_logs(log_filter=LogFilter(
                task_run_id=LogFilterTaskRunId(any_=[task_runs[train_run]])))]
    deadline = time.monotonic() + 30
    logged = server_log()
    while not any("steps (100%)" in line for line in logged) and time.monotonic() < deadline:
        time.sleep(1)
        logged = server_log()
    assert any(line.startswith("train: ") and "steps (100%)" in line for line in logged), logged
    with get_client(sync_client=True) as client:
        bars = client.read_artifacts(artifact_filter=ArtifactFilter(
            type=ArtifactFilterType(any_=["progress"]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[f.id for f in runs.values()])))
    assert {str(b.task_run_id) for b in bars} == set(task_runs.values())
    assert all(float(b.data) == 100.0 for b in bars), [(b.description, b.data) for b in bars]

    # MLflow: `autodidact tracking` serves the UI, whose REST API has the run, its metrics per
    # cycle and the policies in the registry with their aliases
    with served_tracking(f"sqlite:///{tmp_path}/mlflow.db") as api:
        assert "<title>MLflow</title>" in api("")
        experiment = json.loads(api("api/2.0/mlflow/experiments/get-by-name"
                                    "?experiment_name=autodidact"))["experiment"]
        found = json.loads(api("api/2.0/mlflow/runs/search", {
            "experiment_ids": [experiment["experiment_id"]],
            "filter": f"tags.`autodidact.run_id` = '{r.run_id}'"}))["runs"]
        (parent,) = [x for x in found if x["info"]["run_name"] == r.run_id]
        params = {p["key"]: p["value"] for p in parent["data"]["params"]}
        assert params["run.name"] == "tiny" and params["tracking.experiment"] == "autodidact"
        tags = {t["key"]: t["value"] for t in parent["data"]["tags"]}
        assert tags["prefect.flow_run_id"] == str(runs[r.run_id].id)
        history = json.loads(api("api/2.0/mlflow/metrics/get-history?run_id="
                                 f"{parent['info']['run_id']}&metric_key=dev/pass1_greedy"))
        assert sorted(m["step"] for m in history["metrics"]) == [0, 1]
        assert f"#/experiments/{experiment['experiment_id']}/runs/{parent['info']['run_id']}" \
            in text  # the Prefect summary links the MLflow run
        champion = json.loads(api("api/2.0/mlflow/registered-models/alias"
                                  "?name=autodidact-tiny&alias=champion"))["model_version"]
        version = {t["key"]: t["value"] for t in champion["tags"]}
        assert version["policy_id"] == r.next_champion.id


@contextlib.contextmanager
def served_tracking(uri: str):
    """`autodidact tracking` on a free loopback port, for the length of the block: yields
    `api(path, body=None)`, a GET (or a POST of `body` as JSON) answered as text."""
    import socket
    import subprocess
    import sys
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tempfile.TemporaryFile()  # not a pipe: a server's log left unread would fill it
    server = subprocess.Popen([sys.executable, "-m", "flows.cli", "tracking", "--config", "tiny",
                               "--set", f"tracking.uri={uri}", "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/"

    def api(path: str, body: dict | None = None) -> str:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(base + path, data=data,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.read().decode()

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                api("health")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise AssertionError(f"the MLflow UI did not answer on {base}: "
                                         f"{log.read().decode()[-3000:]}")
                time.sleep(1)
        yield api
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def test_evaluate_any_policy_and_refuse_what_is_not_an_adapter(toy, tmp_path):
    from flows.evaluate import evaluate_flow
    from tasks.policy import base_policy

    overrides = [f"run.store={tmp_path}"]
    state = evaluate_flow(config=str(toy / "toy.yaml"), overrides=overrides, return_state=True)
    result = state.result()
    assert result.problems == 2 and result.suite.endswith("test.jsonl")
    assert result.policy_id == base_policy(str(toy / "model")).id
    assert set(result.pass_at_k) == {1, 2}
    assert (tmp_path / "evaluations").is_dir()
    # on the training suite instead, one problem
    other = evaluate_flow(config=str(toy / "toy.yaml"), overrides=overrides,
                          suite=str(toy / "train.jsonl"), n=1)
    assert other.problems == 1
    dev = evaluate_flow(config=str(toy / "toy.yaml"), overrides=overrides, split="dev")
    assert (dev.split, dev.problems) == ("dev", 2) and dev.suite.endswith("dev.jsonl")
    failed = evaluate_flow(config=str(toy / "toy.yaml"), overrides=overrides,
                           adapters=[str(tmp_path)], return_state=True)
    assert failed.is_failed()
    with pytest.raises(FileNotFoundError, match="not a LoRA adapter directory"):
        failed.result()
