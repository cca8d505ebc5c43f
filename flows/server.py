"""One local Prefect API per machine, started on demand and reused.

Without a server each Prefect process spins up an ephemeral API (~12 s, and the runs vanish with
it). The CLI instead points every command at one local server: `PREFECT_API_URL` if you set it
(your own server), else `http://127.0.0.1:4200/api`, started in the background on first use with
its SQLite database under `$AUTODIDACT_HOME/prefect` (`PREFECT_HOME`) and left running so the UI
can show what ran. `autodidact server --stop` stops it.

This module must not import prefect: Prefect reads these settings when it is imported.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tasks.paths import home, logs_dir

HOST, PORT = "127.0.0.1", 4200


def prefect_home() -> Path:
    return home() / "prefect"


def api_url() -> str:
    return os.environ.get("PREFECT_API_URL") or f"http://{HOST}:{PORT}/api"


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
    env.setdefault("PREFECT_SERVER_API_PORT", str(PORT))
    return env


def _pidfile() -> Path:
    return prefect_home() / "server.pid"


def ensure_server(log=print, wait_s: float = 90.0) -> str:
    """Reuse the API that answers at `api_url()`, or start the local one; set the environment of
    this process to use it. Returns the API URL."""
    url = api_url()
    if not healthy(url):
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
                 "--port", str(PORT)], stdout=out, stderr=subprocess.STDOUT, env=_env(),
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
                            "--port", str(PORT)], env=_env())
