"""Docker-isolated execution: one long-lived, locked-down container runs batches of requests.

    with Sandbox() as box:                     # starts the container (about 0.5 s)
        verdicts = box.run(requests)           # one `docker exec` per batch, verdicts in order
        outputs = box.run_programs(programs)   # programs run like candidates: what they printed

Or in one call: `execute(requests)`.  From the shell: `autodidact sandbox exec REQUESTS.jsonl`.

The container: no network, read-only root file system, memory / pids / CPU limits, every
capability dropped but the five the runner needs to confine candidates (RUNNER_CAPABILITIES),
no-new-privileges, runtime runc or gVisor's runsc, and nothing of the host mounted but the runner
package (read-only).  Inside, the runner (sandbox/runner/, standard library only) gives each
worker slot its own uid, CPU and fork server and each request private namespaces; see its package
docstring for who is who and how a verdict is reached.

The host bounds every batch by wall clock (`Sandbox.budget_s`): a runner that stops answering is
killed with its container and the requests it did not judge are judged again in a fresh one.

Never one container per candidate (~0.4 s each): a batch costs one exec (~0.1 s) plus a few
milliseconds per candidate.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from sandbox.contract import (STATUSES, Output, Program, Request, Verdict, output_from_json,
                              verdict_from_json)
from sandbox.runner.protocol import DEFAULT_LIMITS
from sandbox.image import IMAGE_TAG

RUNNER_HOST_PATH = Path(__file__).resolve().with_name("runner")
RUNNER_IN_CONTAINER = "/opt/autodidact/runner"
RUNNER_COMMAND = ["python3", "-I", "-S", "-B", "-c",
                  "import sys; sys.path.insert(0, '/opt/autodidact'); "
                  "from runner.__main__ import main; sys.exit(main(sys.argv[1:]))"]
# What the runner (root inside the container) may do, and nothing else: hand out uids (SETUID,
# SETGID), build each request's private namespaces and tmpfs (SYS_ADMIN) and loopback
# (NET_ADMIN), and stop judges of other uids (KILL).  Candidates drop every capability.
RUNNER_CAPABILITIES = ["SETUID", "SETGID", "SYS_ADMIN", "NET_ADMIN", "KILL"]
RUNTIMES = ("runc", "runsc")
HOST_MARGIN_S = 15.0  # a batch's host-side budget beyond its worst case (start, fork servers)


class SandboxError(RuntimeError):
    """The sandbox itself could not run (no engine, no image, container died): says what to do."""


@dataclass(frozen=True)
class Limits:
    """Resource limits. Per candidate process unless noted."""

    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    """Candidates judged at once inside the container (also its CPU limit, in cores)."""
    memory_mb: int = DEFAULT_LIMITS["memory_mb"]
    """Address-space limit of one candidate process (RLIMIT_AS)."""
    fsize_mb: int = DEFAULT_LIMITS["fsize_mb"]
    """Largest file one candidate may write."""
    nproc: int = DEFAULT_LIMITS["nproc"]
    """Processes and threads one request may run (RLIMIT_NPROC of its slot's uid)."""
    nofile: int = DEFAULT_LIMITS["nofile"]
    """Open file descriptors of one candidate."""
    tmpfs_mb: int = DEFAULT_LIMITS["tmpfs_mb"]
    """Size of each request's private /tmp, and again of its private /dev/shm."""

    def __post_init__(self):
        for name in ("workers", "memory_mb", "fsize_mb", "nproc", "nofile", "tmpfs_mb"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"sandbox limit {name} must be a positive integer, got {value!r}")

    def runner_args(self) -> list[str]:
        return ["--workers", str(self.workers), "--memory-mb", str(self.memory_mb),
                "--fsize-mb", str(self.fsize_mb), "--nproc", str(self.nproc),
                "--nofile", str(self.nofile), "--tmpfs-mb", str(self.tmpfs_mb)]


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


def _engine_errors() -> tuple[type[BaseException], ...]:
    """What the Docker SDK raises when the engine is gone (refused, reset, API errors)."""
    import docker
    import requests

    return (docker.errors.DockerException, requests.exceptions.RequestException)


OWNER_LABEL = "autodidact.owner"


def _started(pid: int) -> str:
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat field 22), or "" if
    it is gone: with the pid, it names one process even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _here() -> str:
    """This boot of this machine's kernel and this PID namespace: where a pid means something."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:  # not Linux, or /proc hidden: no owner is ever judged dead
        return ""


def owner() -> str:
    """This process, as the sandbox containers it starts are labelled: boot and PID namespace,
    pid, start time."""
    return f"{_here()}:{os.getpid()}:{_started(os.getpid())}"


def owner_gone(label: str) -> bool:
    """The owner named by `label` (an `owner()`) ran in this boot and PID namespace and is gone
    (killed with SIGKILL, say, which runs no clean-up). Owners on other machines, boots or
    namespaces (a flow run in a container, a pod) are not ours to judge."""
    where, pid, started = (label.rsplit(":", 2) + ["", ""])[:3]
    here = _here()
    if not here or where != here or not pid.isdigit() or not started:
        return False
    return _started(int(pid)) != started


def remove_orphans(client, also: Iterable[str] = ()) -> list[str]:
    """Remove the sandbox containers whose owner died without removing them, and the containers
    `also` (ours, whose removal failed while the engine was away); the ids removed."""
    import docker.errors

    removed = []
    for c in client.containers.list(all=True, filters={"label": "autodidact.sandbox=1"}):
        label = c.labels.get(OWNER_LABEL)
        if c.id in also or (label and owner_gone(label)):
            try:
                c.remove(force=True)
            except docker.errors.NotFound:  # removed meanwhile (another sandbox starting)
                continue
            removed.append(c.id)
    return removed


class RunnerLost(Exception):
    """The runner stopped answering (or its stream broke) before every verdict arrived."""

    def __init__(self, cause: str, verdicts: list[Verdict]):
        super().__init__(cause)
        self.cause, self.verdicts = cause, verdicts


class Sandbox:
    """A running sandbox container. Use as a context manager; `run` judges batches."""

    def __init__(self, limits: Limits | None = None, image: str = IMAGE_TAG,
                 runtime: str = "runc"):
        if runtime not in RUNTIMES:
            raise ValueError(f"sandbox runtime must be one of {RUNTIMES}, got {runtime!r}")
        self.limits = limits or Limits()
        self.image = image
        self.runtime = runtime
        self.client = None
        self.container = None
        self.restarts = 0  # containers replaced because a runner stopped answering
        self._unremoved: set[str] = set()  # ids of our containers whose removal failed
        self.last_runner_error = ""

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
        # containers a killed run left running, and ours the engine's outage kept us from removing
        remove_orphans(self.client, self._unremoved)
        self._unremoved.clear()
        lim = self.limits
        memory = lim.workers * (lim.memory_mb + 2 * lim.tmpfs_mb) + 512
        try:
            self.container = self.client.containers.run(
                self.image,
                [*RUNNER_COMMAND, "init"],
                detach=True,
                user="0:0",
                runtime=self.runtime,
                network_mode="none",
                read_only=True,
                # the runner's own /tmp: requests get private ones (runner/confinement.py)
                tmpfs={"/tmp": "rw,nosuid,nodev,noexec,size=4m,mode=0700"},
                mem_limit=f"{memory}m",
                memswap_limit=f"{memory}m",
                pids_limit=lim.workers * (lim.nproc + 8) + 64,
                nano_cpus=lim.workers * 1_000_000_000,
                cap_drop=["ALL"],
                cap_add=RUNNER_CAPABILITIES,
                security_opt=["no-new-privileges"],
                volumes={str(RUNNER_HOST_PATH): {"bind": RUNNER_IN_CONTAINER, "mode": "ro"}},
                environment={},
                working_dir="/",
                labels={"autodidact.sandbox": "1", OWNER_LABEL: owner()},
                stop_signal="SIGKILL",
            )
        except docker.errors.APIError as exc:
            if self.runtime != "runc" and "runtime" in str(exc).lower():
                raise SandboxError(
                    f"The Docker engine has no runtime {self.runtime!r} ({exc.explanation}). "
                    f"Install it (`apt-get install runsc`), register it in "
                    f"/etc/docker/daemon.json as {{\"runtimes\": {{\"runsc\": {{\"path\": "
                    f"\"/usr/bin/runsc\", \"runtimeArgs\": [\"--network=none\"]}}}}}} and "
                    f"reload dockerd (SIGHUP), or set sandbox.runtime: runc.") from None
            raise SandboxError(f"Could not start the sandbox container: {exc}") from None

    def close(self) -> None:
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except Exception as exc:
                import docker.errors

                if not isinstance(exc, docker.errors.NotFound):  # the engine is away: retried
                    self._unremoved.add(self.container.id)  # at the next start
            self.container = None

    def _ensure_running(self) -> None:
        if self.container is None:
            self.start()
            return
        self.container.reload()
        if self.container.status != "running":
            self.close()
            self.start()

    def _replace(self) -> None:
        """A fresh container in place of one whose runner stopped answering."""
        self.restarts += 1
        self.close()
        self.start()

    # -- judging -----------------------------------------------------------------------------
    def run(self, requests: Iterable[Request],
            progress: Callable[[int], None] | None = None) -> list[Verdict]:
        """Judge every request; verdicts in the same order. `progress(n)`, when given, is called
        as verdicts arrive (n new ones each time), in this thread; it changes nothing judged.

        Every runner has a host-side wall-clock budget (`budget_s`).  A runner that stops
        answering is killed with its container, and the requests it left unjudged are judged
        again in a fresh container.  When a runner gives no verdict at all twice in a row, the
        first request it was judging gets `sandbox_error` naming the cause, and the rest go on:
        a sandbox failure is never scored as the candidate's.
        """
        return self._run_all(
            list(requests), "batch", verdict_from_json,
            lambda r, cause: Verdict(r.id, "sandbox_error", 0, 0, f"not judged: {cause}", 0.0),
            progress)

    def run_programs(self, programs: Iterable[Program]) -> list[Output]:
        """Run every program confined like a candidate (its own process, uid, namespaces,
        rlimits, seccomp, `timeout_s`), many in one `docker exec`; what each printed, in the same
        order (sandbox/runner/program.py).  Runners that stop answering are handled as in
        `run`: a program that stops two gets `sandbox_error`."""
        return self._run_all(
            list(programs), "programs", output_from_json,
            lambda p, cause: Output(p.id, "sandbox_error", "", f"not run: {cause}", 0.0))

    def _run_all(self, requests: list, mode: str, parse, unjudged_as,
                 progress: Callable[[int], None] | None = None) -> list:
        """The results of `requests` in runner `mode`, each line read by `parse`; a request the
        runners could not answer gets `unjudged_as(request, cause)`. `progress(n)`: n more
        results are in."""
        verdicts: list = []
        barren = unjudged = 0
        while len(verdicts) < len(requests):
            remaining = requests[len(verdicts):]
            try:
                try:
                    got = self._exec_batch(remaining, mode, parse, progress)
                    cause = f"the sandbox runner stopped early: {self.last_runner_error}"
                except RunnerLost as lost:
                    got, cause = lost.verdicts, lost.cause
                    self._replace()
            except _engine_errors() as exc:  # the engine itself went away: nobody's verdict
                raise SandboxError(
                    f"the Docker engine stopped answering or failed mid-batch "
                    f"({type(exc).__name__}: "
                    f"{exc}) with {len(requests) - len(verdicts)} of {len(requests)} candidates "
                    "unjudged. None of them is scored: the stage retries and judges the batch "
                    "again once the engine is back") from exc
            verdicts.extend(got)
            if len(verdicts) == len(requests):
                break
            barren = 0 if got else barren + 1
            unjudged = 0 if got else unjudged
            if barren >= 2:
                # the same request stopped two runners: it is not judged, the rest go on; after
                # three such requests in a row the sandbox itself is broken: stop trying
                unjudged += 1
                stop = len(verdicts) + (1 if unjudged < 3 else len(requests) - len(verdicts))
                filled = [unjudged_as(r, cause) for r in requests[len(verdicts):stop]]
                verdicts += filled
                if progress is not None:
                    progress(len(filled))
                barren = 0
        return verdicts

    def budget_s(self, requests: list[Request]) -> float:
        """Host-side wall clock for one batch: its worst case (every request timing out, spread
        over the workers) plus a margin."""
        times = [r.timeout_s + 2.0 for r in requests]
        return sum(times) / self.limits.workers + max(times, default=0.0) + HOST_MARGIN_S

    def _exec_batch(self, requests: list, mode: str = "batch",
                    parse=verdict_from_json,
                    progress: Callable[[int], None] | None = None) -> list:
        import time

        self._ensure_running()
        api = self.client.api
        cmd = [*RUNNER_COMMAND, mode, *self.limits.runner_args()]
        exec_id = api.exec_create(self.container.id, cmd, stdin=True, stdout=True, stderr=True,
                                  user="0:0")["Id"]
        sock = api.exec_start(exec_id, socket=True)
        raw = getattr(sock, "_sock", sock)
        deadline = time.monotonic() + self.budget_s(requests)
        payload = "".join(r.to_json() + "\n" for r in requests).encode()
        out, err = bytearray(), bytearray()

        def verdicts_so_far() -> list:
            lines = bytes(out).decode("utf-8", "replace").split("\n")[:-1]  # complete lines
            got = [parse(line) for line in lines if line.strip()]
            for request, verdict in zip(requests, got):
                if verdict.id != request.id:
                    raise SandboxError(f"result order broken: expected {request.id!r}, "
                                       f"got {verdict.id!r}")
            return got

        try:
            raw.settimeout(max(1.0, deadline - time.monotonic()))
            raw.sendall(payload)
            raw.shutdown(socket.SHUT_WR)
            for stream, data in _frames(raw, deadline):
                (out if stream == 1 else err).extend(data)
                if stream == 1 and progress is not None and b"\n" in data:
                    progress(data.count(b"\n"))  # one result per line, in request order
        except TimeoutError:
            raise RunnerLost(f"the sandbox runner did not finish within its "
                             f"{self.budget_s(requests):.0f} s budget", verdicts_so_far()
                             ) from None
        except OSError as exc:
            raise RunnerLost(f"lost the sandbox runner mid-batch: {exc}", verdicts_so_far()
                             ) from None
        finally:
            sock.close()
        self.last_runner_error = err.decode("utf-8", "replace")[-500:].strip() or "no message"
        return verdicts_so_far()


def _frames(raw, deadline: float):
    """(stream, bytes) frames of a `docker exec` attach stream, each read bounded by `deadline`
    (raises TimeoutError): a runner that stops answering cannot hang the host."""
    import select
    import struct
    import time

    buffer = bytearray()

    def fill(n: int) -> bool:
        while len(buffer) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([raw], [], [], left)[0]:
                raise TimeoutError
            chunk = raw.recv(1 << 20)
            if not chunk:
                return False
            buffer.extend(chunk)
        return True

    while fill(8):
        stream, size = buffer[0], struct.unpack(">I", bytes(buffer[4:8]))[0]
        if not fill(8 + size):
            return
        yield stream, bytes(buffer[8:8 + size])
        del buffer[:8 + size]


def execute(requests: Iterable[Request], limits: Limits | None = None,
            runtime: str = "runc") -> list[Verdict]:
    """Judge `requests` in a fresh sandbox container; verdicts in the same order."""
    with Sandbox(limits, runtime=runtime) as box:
        return box.run(requests)


def run_programs(programs: Iterable[Program], limits: Limits | None = None,
                 runtime: str = "runc") -> list[Output]:
    """Run `programs` in a fresh sandbox container; what each printed, in the same order."""
    with Sandbox(limits, runtime=runtime) as box:
        return box.run_programs(programs)


def summarize(verdicts: list[Verdict]) -> dict:
    """Counts by status, pass rate and mean reward: the verdict summary `make run` prints."""
    counts = {status: 0 for status in STATUSES}
    for v in verdicts:
        counts[v.status] += 1
    n = len(verdicts)
    return {"requests": n, **counts,
            "pass_rate": counts["passed"] / n if n else 0.0,
            "mean_reward": sum(v.reward for v in verdicts) / n if n else 0.0,
            "mean_duration_s": sum(v.duration_s for v in verdicts) / n if n else 0.0}
