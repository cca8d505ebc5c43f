"""One local Prefect API per machine, started on demand and reused.

Without a server each Prefect process spins up an ephemeral API (~12 s, and the runs vanish with
it). The CLI instead points every command at one local server: `PREFECT_API_URL` if you set it
(your own server), else `http://127.0.0.1:4200/api` (`AUTODIDACT_SERVER_PORT` changes the
port), started in the background on first use with its SQLite database under
`$AUTODIDACT_HOME/prefect` (or `PREFECT_HOME`) and left running so the UI can show what ran.
`autodidact server --stop` stops it. `deploy` and `worker` run prefect.yaml's deployments on it.

This module imports prefect only inside functions, after the environment is set: Prefect reads
these settings when it is imported.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tasks.paths import REPO_ROOT, home, logs_dir

HOST = "127.0.0.1"
POOL = "autodidact-process"  # the process work pool of prefect.yaml's deployments


def port() -> int:
    """The local server's port: `$AUTODIDACT_SERVER_PORT`, else 4200."""
    return int(os.environ.get("AUTODIDACT_SERVER_PORT") or 4200)


def prefect_home() -> Path:
    """The local server's home (database, pid file): `$PREFECT_HOME`, else
    `$AUTODIDACT_HOME/prefect`."""
    return Path(os.environ.get("PREFECT_HOME") or home() / "prefect").expanduser()


def api_url() -> str:
    return os.environ.get("PREFECT_API_URL") or f"http://{HOST}:{port()}/api"


def ui_url() -> str:
    return api_url().removesuffix("/api")


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PREFECT_HOME", str(prefect_home()))
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("PREFECT_SERVER_API_HOST", HOST)
    env.setdefault("PREFECT_SERVER_API_PORT", str(port()))
    return env


def _pidfile() -> Path:
    return prefect_home() / "server.pid"


def ensure_server(log=print, wait_s: float = 90.0) -> str:
    """Reuse the API that answers at `api_url()`, or start the local one; set the environment of
    this process to use it. Returns the API URL."""
    url = api_url()
    started = False
    if not healthy(url):
        started = True
        if "PREFECT_API_URL" in os.environ:
            raise RuntimeError(f"PREFECT_API_URL={url} does not answer: start that server, or "
                               "unset PREFECT_API_URL to use the local one")
        prefect_home().mkdir(parents=True, exist_ok=True)
        logfile = logs_dir() / "prefect-server.log"
        logfile.parent.mkdir(parents=True, exist_ok=True)
        log(f"starting the local Prefect server at {ui_url()} (log: {logfile})")
        with open(logfile, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", HOST,
                 "--port", str(port())], stdout=out, stderr=subprocess.STDOUT, env=_env(),
                start_new_session=True)  # outlives this command, so the UI stays up
        _pidfile().write_text(str(proc.pid))
        deadline = time.monotonic() + wait_s
        while not healthy(url):
            if proc.poll() is not None:
                raise RuntimeError(f"the Prefect server exited with code {proc.returncode}: "
                                   f"see {logfile}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Prefect server did not answer within {wait_s:.0f} s: "
                                   f"see {logfile}")
            time.sleep(0.5)
    os.environ["PREFECT_API_URL"] = url
    os.environ.setdefault("PREFECT_HOME", str(prefect_home()))
    if started:
        ensure_zombie_automation()
    return url


def stop_server() -> bool:
    """Stop the server this module started; False when none was running."""
    pidfile = _pidfile()
    if not pidfile.exists():
        return False
    pid = int(pidfile.read_text())
    pidfile.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def serve_foreground() -> int:
    """Run the server attached to the terminal (Ctrl-C stops it)."""
    return subprocess.call([sys.executable, "-m", "prefect", "server", "start", "--host", HOST,
                            "--port", str(port())], env=_env())


def _prefect(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """The `prefect` CLI of this interpreter, against `api_url()`, from the checkout (where
    prefect.yaml is)."""
    env = {**os.environ, "PREFECT_API_URL": api_url(), "AUTODIDACT_ROOT": str(REPO_ROOT)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([sys.executable, "-m", "prefect", *args], cwd=REPO_ROOT, env=env,
                          check=check, **kwargs)


def deploy(names: list[str]) -> dict[str, str]:
    """Create the process work pool if missing and register the deployments of prefect.yaml
    named `names` (deployment names, as in its `deployments:` list); each one's work pool."""
    import yaml

    declared = {d["name"]: d["work_pool"]["name"] for d in
                yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]}
    unknown = [n for n in names if n not in declared]
    if unknown:  # `prefect deploy` only warns about a name it cannot find when another matches
        raise ValueError(f"no deployment {', '.join(map(repr, unknown))} in prefect.yaml; its "
                         f"deployments are {', '.join(declared)}")
    ensure_server()
    if _prefect("work-pool", "inspect", POOL, check=False, capture_output=True).returncode != 0:
        _prefect("work-pool", "create", POOL, "--type", "process")
    flags = [arg for name in names for arg in ("--name", name)]
    try:
        _prefect("--no-prompt", "deploy", *flags)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"`prefect deploy {' '.join(flags)}` failed (exit {exc.returncode}); "
                           "its output is above. Check the names against prefect.yaml") from None
    ensure_zombie_automation()
    return {name: declared[name] for name in names}


ZOMBIE_AUTOMATION = "autodidact: crash flow runs without heartbeats"


def heartbeat_seconds() -> int:
    """How often a flow run sends a heartbeat: `PREFECT_FLOWS_HEARTBEAT_FREQUENCY` (180 s by
    default in Prefect 3.8, at least 30)."""
    from prefect.settings import get_current_settings

    return get_current_settings().flows.heartbeat_frequency or 180


def ensure_zombie_automation() -> None:
    """The server-side half of crash detection: every flow run sends a heartbeat every
    `PREFECT_FLOWS_HEARTBEAT_FREQUENCY` seconds; this automation marks a flow run Crashed when
    three in a row are missing (Prefect's "detect zombie flows" recipe). Installed with the local
    server and by `autodidact deploy`, with the window of the frequency set where they run (an
    automation with another window is brought in line); on a server without it, the next start
    of the same run marks its leftovers Crashed (flows/lineage.py)."""
    from datetime import timedelta

    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    wanted = Automation(
        name=ZOMBIE_AUTOMATION,
        description="A flow run that stops sending heartbeats (its process or machine died) is "
                    "marked Crashed instead of staying Running.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"}, expect={"prefect.flow-run.*"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1,
            within=timedelta(seconds=3 * heartbeat_seconds())),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message="no heartbeat for three intervals: the process "
                                            "running it died; resume the run to finish it")])
    try:
        there = Automation.read(name=ZOMBIE_AUTOMATION)
    except ValueError:  # not there yet
        wanted.create()
        return
    if there.trigger.within != wanted.trigger.within:
        there.trigger = wanted.trigger
        there.update()


def worker(once: bool = False) -> int:
    """Run a worker of the process pool in the foreground (it runs the flow runs of the
    deployments with this interpreter, from the checkout). `once`: poll once, run what is due and
    exit when those flow runs have finished."""
    ensure_server()
    return _prefect("worker", "start", "--pool", POOL,
                    *(["--run-once", "--limit", "1"] if once else []),
                    check=False).returncode
