"""Docker-isolated execution: one long-lived, locked-down container runs batches of requests.

    with Sandbox() as box:                     # starts the container (about 0.5 s)
        verdicts = box.run(requests)           # one `docker exec` per batch, verdicts in order

Or in one call: `execute(requests)`.  From the shell: `autodidact sandbox exec REQUESTS.jsonl`.

Isolation of the container: no network, read-only root file system, a size-capped tmpfs at /tmp,
memory / pids / CPU limits, every capability dropped, no-new-privileges, an unprivileged user
(uid 10001), and nothing of the host mounted but the runner file itself (read-only).  Inside, the
runner (sandbox/runner.py, standard library only) judges each candidate in its own process with
rlimits, a seccomp filter and a deadline, several at once; see its docstring for how a verdict is
reached.

Never one container per candidate (~0.4 s each): a batch costs one exec (~0.1 s) plus a few
milliseconds per candidate.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from sandbox.contract import Request, Verdict, verdict_from_json
from sandbox.image import IMAGE_TAG

RUNNER_HOST_PATH = Path(__file__).resolve().with_name("runner.py")
RUNNER_IN_CONTAINER = "/opt/autodidact/runner.py"
SANDBOX_USER = "10001:10001"


class SandboxError(RuntimeError):
    """The sandbox itself could not run (no engine, no image, container died): says what to do."""


@dataclass(frozen=True)
class Limits:
    """Resource limits. Per candidate process unless noted."""

    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    """Candidates judged at once inside the container (also its CPU limit, in cores)."""
    memory_mb: int = 1024
    """Address-space limit of one candidate process (RLIMIT_AS)."""
    fsize_mb: int = 16
    """Largest file one candidate may write."""
    nproc: int = 64
    """Processes all candidates together may run (RLIMIT_NPROC of the sandbox user)."""
    nofile: int = 64
    """Open file descriptors of one candidate."""
    tmpfs_mb: int = 64
    """Size of the container's writable /tmp (shared by the batch, swept after each candidate)."""

    def __post_init__(self):
        for name in ("workers", "memory_mb", "fsize_mb", "nproc", "nofile", "tmpfs_mb"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"sandbox limit {name} must be a positive integer, got {value!r}")

    def runner_args(self) -> list[str]:
        return ["--workers", str(self.workers), "--memory-mb", str(self.memory_mb),
                "--fsize-mb", str(self.fsize_mb), "--nproc", str(self.nproc),
                "--nofile", str(self.nofile)]


def connect():
    """A Docker client that answers, or a SandboxError saying how to get one."""
    import docker  # imported here: the CLI should start fast when it does not need Docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except Exception as exc:  # docker raises several types for "nothing listens there"
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise SandboxError(
            f"No Docker engine answers at {where} ({type(exc).__name__}). Run `make setup` as root "
            f"(it installs Debian's docker.io and starts dockerd), or start dockerd yourself. "
            f"Generated code is never run outside the sandbox.") from None


class Sandbox:
    """A running sandbox container. Use as a context manager; `run` judges batches."""

    def __init__(self, limits: Limits | None = None, image: str = IMAGE_TAG):
        self.limits = limits or Limits()
        self.image = image
        self.client = None
        self.container = None

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        import docker.errors

        self.client = connect()
        try:
            self.client.images.get(self.image)
        except docker.errors.ImageNotFound:
            raise SandboxError(f"The sandbox image {self.image} is missing: run "
                               f"`autodidact sandbox build` (or `make setup`).") from None
        lim = self.limits
        self.container = self.client.containers.run(
            self.image,
            ["python3", "-I", "-S", "-B", RUNNER_IN_CONTAINER, "init"],
            detach=True,
            user=SANDBOX_USER,
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,noexec,size={lim.tmpfs_mb}m,mode=1777"},
            mem_limit=f"{lim.workers * lim.memory_mb + 512}m",
            memswap_limit=f"{lim.workers * lim.memory_mb + 512}m",
            pids_limit=lim.nproc + 8 * lim.workers + 32,
            nano_cpus=lim.workers * 1_000_000_000,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            volumes={str(RUNNER_HOST_PATH): {"bind": RUNNER_IN_CONTAINER, "mode": "ro"}},
            environment={},
            working_dir="/tmp",
            labels={"autodidact.sandbox": "1"},
            stop_signal="SIGKILL",
        )

    def close(self) -> None:
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except Exception:  # already gone: nothing to undo
                pass
            self.container = None

    def _ensure_running(self) -> None:
        if self.container is None:
            self.start()
            return
        self.container.reload()
        if self.container.status != "running":
            self.close()
            self.start()

    # -- judging -----------------------------------------------------------------------------
    def run(self, requests: Iterable[Request]) -> list[Verdict]:
        """Judge every request; verdicts in the same order.

        If the runner dies mid-batch (it should not: candidates cannot signal it), the rest is
        re-run in a fresh exec; a request that still yields nothing is reported as an error.
        """
        requests = list(requests)
        verdicts: list[Verdict] = []
        while len(verdicts) < len(requests):
            remaining = requests[len(verdicts):]
            got = self._exec_batch(remaining)
            verdicts.extend(got)
            if not got:  # the runner died before its first verdict: blame the first request
                first = remaining[0]
                verdicts.append(Verdict(first.id, "error", 0, 0, "the sandbox runner stopped "
                                        "while judging this program: " + self.last_runner_error,
                                        0.0))
        return verdicts

    def _exec_batch(self, requests: list[Request]) -> list[Verdict]:
        from docker.utils.socket import frames_iter

        self._ensure_running()
        api = self.client.api
        cmd = ["python3", "-I", "-S", "-B", RUNNER_IN_CONTAINER, "batch", "--confined", "1",
               *self.limits.runner_args()]
        exec_id = api.exec_create(self.container.id, cmd, stdin=True, stdout=True, stderr=True,
                                  user=SANDBOX_USER)["Id"]
        sock = api.exec_start(exec_id, socket=True)
        raw = getattr(sock, "_sock", sock)
        # the whole batch cannot take longer than this, even if every candidate times out
        budget = sum(r.timeout_s + 2 for r in requests) / self.limits.workers + 60
        raw.settimeout(budget)
        payload = "".join(r.to_json() + "\n" for r in requests).encode()
        try:
            raw.sendall(payload)
            raw.shutdown(socket.SHUT_WR)
            out, err = bytearray(), bytearray()
            for stream, data in frames_iter(sock, tty=False):
                (out if stream == 1 else err).extend(data)
        except (OSError, socket.timeout) as exc:
            raise SandboxError(f"lost the sandbox runner mid-batch: {exc}") from exc
        finally:
            sock.close()
        verdicts = []
        for line in out.decode("utf-8", "replace").splitlines():
            if line.strip():
                verdicts.append(verdict_from_json(line))
        for request, verdict in zip(requests, verdicts):
            if verdict.id != request.id:
                raise SandboxError(f"verdict order broken: expected {request.id!r}, "
                                   f"got {verdict.id!r}")
        # what the runner said if it stopped early; `run` re-runs the rest
        self.last_runner_error = err.decode("utf-8", "replace")[-500:].strip() or "no message"
        return verdicts


def execute(requests: Iterable[Request], limits: Limits | None = None) -> list[Verdict]:
    """Judge `requests` in a fresh sandbox container; verdicts in the same order."""
    with Sandbox(limits) as box:
        return box.run(requests)


def summarize(verdicts: list[Verdict]) -> dict:
    """Counts by status, pass rate and mean reward: the verdict summary `make run` prints."""
    counts = {status: 0 for status in ("passed", "failed", "error", "syntax_error", "timeout",
                                       "resource_exceeded")}
    for v in verdicts:
        counts[v.status] += 1
    n = len(verdicts)
    return {"requests": n, **counts,
            "pass_rate": counts["passed"] / n if n else 0.0,
            "mean_reward": sum(v.reward for v in verdicts) / n if n else 0.0,
            "mean_duration_s": sum(v.duration_s for v in verdicts) / n if n else 0.0}
