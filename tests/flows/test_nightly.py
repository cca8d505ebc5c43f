"""The nightly deployment end to end, as an operator runs it: a real Prefect server and a
process worker on loopback (`autodidact server`, `deploy`, `worker`), the nightly deployment
triggered with the toy config; a second trigger for the same scheduled day resumes that night's run
from the cache instead of starting over. And a run whose process dies is marked Crashed by the
server itself, from its missing heartbeats, with nobody resuming it."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """A server of our own (its own database and port), stopped at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), AUTODIDACT_SERVER_PORT=str(free_port()),
               PYTHONPATH=str(ROOT),
               # the shortest heartbeat Prefect allows: the zombie automation then waits 90 s
               PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(HEARTBEAT_S))
    started = cli("server", env=env)
    assert started.returncode == 0, started.stderr
    env["PREFECT_API_URL"] = started.stdout.split("API ")[1].split(";")[0]
    yield env
    cli("server", "--stop", env=env)


def cli(*args, env, timeout=900):
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=timeout)


def prefect(*args, env):
    done = subprocess.run([sys.executable, "-m", "prefect", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_nightly_deployment_runs_on_a_worker_and_a_second_trigger_resumes(toy, tmp_path,
                                                                              server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterKey, FlowRunFilter,
                                                FlowRunFilterId, FlowRunFilterParentFlowRunId)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deployed = cli("deploy", env=server)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    store = tmp_path / "store"
    params = ["-p", f"config={toy / 'toy.yaml'}",
              "-p", f'overrides=["run.store={store}", "debug.max_turns=0"]']

    # both triggers name the same scheduled night (02:00 UTC today, already past or not): the
    # run id holds that day whatever the clock says when each trigger runs, midnight included
    import datetime as dt

    night_of = dt.datetime.now(dt.timezone.utc).replace(hour=2, minute=0, second=0,
                                                        microsecond=0)
    if night_of > dt.datetime.now(dt.timezone.utc):
        night_of -= dt.timedelta(days=1)

    def night() -> str:
        out = prefect("deployment", "run", "self-training/nightly-self-training", *params,
                      "--start-at", night_of.strftime("%Y-%m-%d %H:%M:%S UTC"), env=server)
        flow_run_id = out.split("UUID: ")[1].split()[0]
        worked = cli("worker", "--once", env=server)
        assert worked.returncode == 0, worked.stdout[-3000:] + worked.stderr[-3000:]
        return flow_run_id

    first, second = night(), night()
    with temporary_settings({PREFECT_API_URL: server["PREFECT_API_URL"]}):
        with get_client(sync_client=True) as client:
            runs = [client.read_flow_run(i) for i in (first, second)]
            cycles = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[runs[1].id])))
            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[c.id for c in cycles]))) if cycles else []
    assert [r.state.name for r in runs] == ["Completed", "Completed"], \
        [(r.name, r.state.name, r.state.message) for r in runs]
    (run_dir,) = [p.parent for p in store.glob("*/run.json")]  # one night, one run
    run_id = run_dir.name
    assert f"-{night_of.strftime('%Y%m%d')}-" in run_id  # the night's day
    assert [r.name for r in runs] == [run_id, f"{run_id}-resume-1"]
    assert f"run:{run_id}" in runs[1].tags
    assert json.loads((run_dir / "cycle-1" / "summary.json").read_text())["cycle"] == 1

    # the second trigger's cycle came from the cache: nothing sampled, executed or trained again
    assert [c.name for c in cycles] == [f"{run_id}-cycle-1"]
    work = {t.name: t.state.name for t in tasks
            if t.name.startswith(("sample[", "execute", "mine-pairs", "train[", "evaluate["))}
    assert work and set(work.values()) == {"Cached"}, work

    with temporary_settings({PREFECT_API_URL: server["PREFECT_API_URL"]}):
        from prefect.automations import Automation
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

        from flows.server import ZOMBIE_AUTOMATION, ensure_zombie_automation
        zombies = Automation.read(name=ZOMBIE_AUTOMATION)  # worker runs that die: Crashed
        assert zombies.actions and zombies.trigger.within.total_seconds() == 3 * HEARTBEAT_S
        # a deploy where the heartbeat is slower widens the window of the one on the server
        with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 60}):
            ensure_zombie_automation()
        with get_client(sync_client=True) as client:
            (again,) = client.read_automations_by_name(ZOMBIE_AUTOMATION)  # updated, not added
        assert again.id == zombies.id and again.trigger.within.total_seconds() == 180

    listed = cli("runs", "--store", str(store), env=server)
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith(run_id)]
    assert "Completed" in row and "1/1" in row
    # the last promotion: the cycle and the policy, when the night promoted one
    from tasks.policy import Policy

    cycle_summary = json.loads((run_dir / "cycle-1" / "summary.json").read_text())
    if cycle_summary["promoted"]:
        promoted = Policy.model_validate(cycle_summary["trained"]).id
        assert f"cycle 1: {promoted}" in row, row
    else:
        assert row.rstrip().endswith("-"), row

    # as a person sees it: the UI, in a real browser, shows the run, its cycle and its artifacts
    ui = server["PREFECT_API_URL"].removesuffix("/api")
    parent = browse(f"{ui}/runs/flow-run/{runs[0].id}", SCREENSHOT, needles=[run_id])
    assert run_id in parent
    assert drawn(SCREENSHOT), f"{SCREENSHOT} is blank: the UI did not draw the run"
    # (the parent's page draws its cycle on a canvas, which the DOM does not hold as text: the
    # cycle's own page does)
    cycle = browse(f"{ui}/runs/flow-run/{cycles[0].id}", needles=[f"{run_id}-cycle-1"])
    assert f"{run_id}-cycle-1" in cycle
    keys = [f"{run_id.lower()}-cycle-1-{what}"
            for what in ("summary", "pairs", "evaluation", "promotion")] + [
        f"{run_id.lower()}-scores"]  # the run's plot and table across cycles
    artifacts = browse(f"{ui}/artifacts", needles=keys)
    for key in keys:
        assert key in artifacts, key
    with temporary_settings({PREFECT_API_URL: server["PREFECT_API_URL"]}):
        with get_client(sync_client=True) as client:
            (latest,) = client.read_latest_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[keys[0]])))
    # the summary's own page renders its markdown: the lineage table is there to click through
    summary = browse(f"{ui}/artifacts/artifact/{latest.latest_id}",
                     needles=["Lineage", "pairs dataset"])
    assert "Lineage" in summary and "pairs dataset" in summary


def test_a_run_whose_process_dies_is_marked_crashed_by_the_server(toy, tmp_path, server):
    """The zombie automation the server starts with: a run killed with SIGKILL (nothing left to
    report its end) stops sending heartbeats, and the server marks its flow runs Crashed three
    heartbeats later, without anyone resuming it."""
    import signal
    import time

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    script = ("import sys\nfrom flows.self_training import self_training\n"
              "self_training(config=sys.argv[1], overrides=sys.argv[2:])")
    log = tmp_path / "run.log"  # a file, not a pipe: nobody reads a pipe until the end
    with open(log, "wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-c", script, str(toy / "toy.yaml"),
             f"run.store={tmp_path / 'store'}", "debug.max_turns=0"],
            env=server, cwd=ROOT, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)

    def states(client) -> dict[str, tuple[str, str]]:
        return {r.name: (r.state.name, r.state.message or "") for r in client.read_flow_runs()}

    with temporary_settings({PREFECT_API_URL: server["PREFECT_API_URL"]}), \
            get_client(sync_client=True) as client:
        try:
            deadline = time.monotonic() + 600
            # killed in training (no sandbox container to leave behind), with the parent and
            # its cycle Running
            while not any(t.name.startswith("train[") and t.state.name == "Running"
                          for t in client.read_task_runs()):
                assert child.poll() is None, ("the run ended before it trained: "
                                              + log.read_text()[-2000:])
                assert time.monotonic() < deadline, "the run never trained"
                time.sleep(0.2)
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=60)
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
        killed = states(client)
        assert len(killed) == 2 and {s for s, _ in killed.values()} == {"Running"}, killed
        # the last heartbeat came at most one interval before the kill; the automation fires
        # three intervals after it (and the server looks every few seconds)
        deadline = time.monotonic() + 4 * HEARTBEAT_S + 60
        while {s for s, _ in states(client).values()} != {"Crashed"}:
            assert time.monotonic() < deadline, states(client)
            time.sleep(2)
        crashed = states(client)
    assert crashed.keys() == killed.keys()
    assert all("no heartbeat for three intervals" in m for _, m in crashed.values()), crashed


SCREENSHOT = ROOT / "test-output" / "prefect-ui-run.png"  # kept: what the UI showed


def browse(url: str, screenshot: Path | None = None, needles: list[str] = ()) -> str:
    """The page's DOM after its scripts ran, from headless Chromium (Debian's `chromium`); loaded
    up to three times until it holds every one of `needles` (the page fills itself from the API,
    and a busy machine can leave a list unfilled within Chromium's time budget). `screenshot`:
    a PNG of the page, taken once the DOM held the needles."""
    import shutil

    browser = shutil.which("chromium")
    assert browser, "chromium is not installed: `make setup` installs Debian's chromium"
    flags = [browser, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--window-size=1400,1000", "--virtual-time-budget=20000"]
    for _ in range(3):
        dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True,
                             timeout=180)
        assert dom.returncode == 0, dom.stderr[-2000:]
        if all(n in dom.stdout for n in needles):
            break
    if screenshot is not None:
        screenshot.parent.mkdir(exist_ok=True)
        shot = subprocess.run(flags + [f"--screenshot={screenshot}", url], capture_output=True,
                              text=True, timeout=180)
        assert shot.returncode == 0, shot.stderr[-2000:]
    return dom.stdout


def drawn(png: Path) -> bool:
    """Whether a screenshot shows a drawn page: a PNG with more than a handful of colours (a
    blank or half-loaded page is one or two flat colours)."""
    from PIL import Image

    if png.read_bytes()[:4] != b"\x89PNG":
        return False
    with Image.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    return colours is None or len(colours) > 16
