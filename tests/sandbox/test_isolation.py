"""Isolation between candidates, between requests and between batches; the verdict's honesty.

Every hostile candidate here returns the right answer ONLY if its attack worked, so "did not pass"
means the attack failed.  Attacks on neighbours run in one batch beside good candidates that, with
two workers, run at the same time; those neighbours must still pass 3 of 3.

  probes         one capability per request: other processes' memory, tracing, scheduling and
                 signal-delivery channels, io_uring, user namespaces
  neighbours     real attacks (signals through fcntl/ioctl owners, kill, scheduling) on
                 concurrent neighbours
  forgery        a candidate takes over PID 1 through /proc/1/mem and patches every later runner
                 so that "failed" reads "passed"; a later batch must still be judged honestly
  leaks          what one request leaves in /dev/shm, /tmp, SysV IPC, POSIX mqueues or on
                 loopback sockets must not reach a later (or concurrent) request
  starvation     a process/thread hog, a /tmp filler, a CPU hog must not make a neighbour fail
  partial credit a request that did not finish never has passed == total
  context        helpers the tests use come from the trusted `context`, never from the candidate;
                 a candidate's StopIteration cannot end a test loop early
  deadline       a container that stops answering is replaced; the batch is judged again
"""

import math
import platform
import textwrap
import threading
import time

import pytest

from sandbox import Limits, Request, Sandbox
from tests.sandbox.cases import ADD_TESTS, GOOD_ADD

pytestmark = pytest.mark.docker

WRONG_ADD = "def add(a, b):\n    return 0\n"
# a good neighbour that lives long enough (~0.35 s) to be hit by a concurrent attacker
SLOW_GOOD_ADD = """
    import time
    def add(a, b):
        time.sleep(0.1)
        return a + b
"""
# a good neighbour that needs ~0.1 s of CPU per call (~0.3 s in all)
CPU_GOOD_ADD = """
    def add(a, b):
        total = 0
        for i in range(1_500_000):
            total += i * i % 7
        return a + b + total * 0
"""
DOUBLE_TESTS = """
def check(candidate):
    assert candidate(2) == 4
    assert candidate(5) == 10
"""


def _req(rid, code, tests=ADD_TESTS, entry_point="add", timeout=5.0, **extra):
    return Request(rid, textwrap.dedent(code), tests, entry_point, timeout, **extra)


def _by_id(verdicts):
    return {v.id: v for v in verdicts}


# ----------------------------------------------------------------------------------------------
# Capability probes: each returns a + b only if the forbidden thing succeeded.

_PRELUDE = """
import ctypes, errno, fcntl, os, socket, struct
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

def _others():
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]

def _any(attempt, pids):
    for pid in pids:
        try:
            if attempt(pid):
                return True
        except OSError:
            pass
    return False

def _opens(path, mode):
    def attempt(pid):
        with open(path.format(pid), mode):
            return True
    return attempt
"""

PROBES = {
    "mem_read_pid1": """
        def add(a, b):
            return a + b if _any(_opens("/proc/{}/mem", "rb"), [1]) else None
    """,
    "mem_write_pid1": """
        def add(a, b):
            return a + b if _any(_opens("/proc/{}/mem", "r+b"), [1]) else None
    """,
    "mem_read_others": """
        def add(a, b):
            pids = [p for p in _others() if p != 1]
            return a + b if _any(_opens("/proc/{}/mem", "rb"), pids) else None
    """,
    "mem_write_others": """
        def add(a, b):
            pids = [p for p in _others() if p != 1]
            return a + b if _any(_opens("/proc/{}/mem", "r+b"), pids) else None
    """,
    "fd_table_of_others": """
        def add(a, b):
            ok = _any(lambda p: os.listdir(f"/proc/{p}/fd") is not None, _others())
            return a + b if ok else None
    """,
    "ptrace_attach": """
        _libc.ptrace.restype = ctypes.c_long
        _libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        def _attach(pid):
            if _libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
                return False
            try:
                os.waitpid(pid, 0x40000000)  # __WALL: let it stop, then let it go
            except OSError:
                pass
            _libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
            return True
        def add(a, b):
            return a + b if _any(_attach, _others()) else None
    """,
    "ptrace_seize": """
        _libc.ptrace.restype = ctypes.c_long
        _libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        def _seize(pid):
            if _libc.ptrace(0x4206, pid, None, None) != 0:  # PTRACE_SEIZE
                return False
            _libc.ptrace(17, pid, None, None)
            return True
        def add(a, b):
            return a + b if _any(_seize, _others()) else None
    """,
    "process_vm_readv": """
        class _Iov(ctypes.Structure):
            _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
        _libc.process_vm_readv.restype = ctypes.c_ssize_t
        def _read(pid):
            addr = 0x400000
            try:
                with open(f"/proc/{pid}/maps") as f:
                    addr = int(f.readline().split("-")[0], 16)
            except (OSError, ValueError):
                pass
            buf = ctypes.create_string_buffer(64)
            local, remote = _Iov(ctypes.addressof(buf), 64), _Iov(addr, 64)
            n = _libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
            # EFAULT: access was granted, only the address was wrong
            return n > 0 or ctypes.get_errno() == errno.EFAULT
        def add(a, b):
            return a + b if _any(_read, _others()) else None
    """,
    "pidfd_getfd": """
        def _steal(pid):
            pidfd = os.pidfd_open(pid)
            try:
                return any(_libc.syscall(438, pidfd, fd, 0) >= 0 for fd in range(4))
            finally:
                os.close(pidfd)
        def add(a, b):
            return a + b if _any(_steal, _others()) else None
    """,
    "signal_0_to_others": """
        def add(a, b):
            return a + b if _any(lambda p: os.kill(p, 0) is None, _others()) else None
    """,
    "setpriority_others": """
        def add(a, b):
            ok = _any(lambda p: os.setpriority(os.PRIO_PROCESS, p, 19) is None, _others())
            return a + b if ok else None
    """,
    "sched_setaffinity_others": """
        def add(a, b):
            mine = os.sched_getaffinity(0)
            ok = _any(lambda p: os.sched_setaffinity(p, mine) is None, _others())
            return a + b if ok else None
    """,
    "sched_setscheduler_others": """
        def add(a, b):
            ok = _any(lambda p: os.sched_setscheduler(p, os.SCHED_BATCH, os.sched_param(0)) is None,
                      _others())
            return a + b if ok else None
    """,
    "fcntl_setown_other_pid": """
        def _setown(pid):
            r, w = os.pipe()
            try:
                fcntl.fcntl(r, fcntl.F_SETOWN, pid)
                return True
            finally:
                os.close(r); os.close(w)
        def add(a, b):
            return a + b if _any(_setown, _others()) else None
    """,
    "fcntl_setown_ex_other_pid": """
        def _setown_ex(pid):
            r, w = os.pipe()
            try:
                fcntl.fcntl(r, 15, struct.pack("ii", 1, pid))  # F_SETOWN_EX, F_OWNER_PID
                return True
            finally:
                os.close(r); os.close(w)
        def add(a, b):
            return a + b if _any(_setown_ex, _others()) else None
    """,
    "ioctl_fiosetown_other_pid": """
        def _fiosetown(pid):
            s, t = socket.socketpair()
            with s, t:
                fcntl.ioctl(s.fileno(), 0x8901, struct.pack("i", pid))  # FIOSETOWN
                return True
        def add(a, b):
            return a + b if _any(_fiosetown, _others()) else None
    """,
    "ioctl_siocspgrp_other_pid": """
        def _siocspgrp(pid):
            s, t = socket.socketpair()
            with s, t:
                fcntl.ioctl(s.fileno(), 0x8902, struct.pack("i", pid))  # SIOCSPGRP
                return True
        def add(a, b):
            return a + b if _any(_siocspgrp, _others()) else None
    """,
    "io_uring_setup": """
        def add(a, b):
            params = ctypes.create_string_buffer(120)
            fd = _libc.syscall(425, 4, params)  # io_uring_setup, same number on x86_64 and aarch64
            if fd >= 0:
                os.close(fd)
                return a + b
            return None
    """,
    "unshare_user_namespace": """
        def add(a, b):
            return a + b if _libc.unshare(0x10000000) == 0 else None  # CLONE_NEWUSER
    """,
}


@pytest.fixture(scope="module")
def probe_verdicts(sandbox):
    requests = []
    for name, code in PROBES.items():
        requests.append(_req(name, _PRELUDE + textwrap.dedent(code)))
        requests.append(_req(f"good-after-{name}", GOOD_ADD))
    return _by_id(sandbox.run(requests))


@pytest.mark.parametrize("name", sorted(PROBES))
def test_forbidden_capability_is_denied(probe_verdicts, name):
    verdict = probe_verdicts[name]
    assert verdict.status != "passed", verdict
    assert probe_verdicts[f"good-after-{name}"].status == "passed"


# ----------------------------------------------------------------------------------------------
# Real attacks on concurrent neighbours.  Each attacker scans /proc for every other process and
# attacks all of them, again and again for ~1.5 s, while good neighbours run in the other slot.
# It spares only itself, its own process group and that group leader's parent: today that is its
# own judge and the runner (killing the runner makes the engine re-run the rest of the batch,
# which would hide the harm done to the neighbours).

_ATTACK_PRELUDE = """
import fcntl, os, signal, socket, struct, time

def _victims():
    me, group = os.getpid(), os.getpgid(0)
    try:
        with open(f"/proc/{group}/stat") as f:
            spared = int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        spared = -1
    return [int(p) for p in os.listdir("/proc")
            if p.isdigit() and int(p) not in (1, me, group, spared)]

_hits = []

def _attack_for(seconds, attack):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for pid in _victims():
            try:
                if attack(pid):
                    _hits.append(pid)
            except OSError:
                pass
        time.sleep(0.002)

def _signal_when_readable(pid, sig, how):
    # the kernel sends `sig` to the fd's owner when the fd becomes readable (O_ASYNC)
    s, t = socket.socketpair()
    with s, t:
        r = s.fileno()
        if how == "F_SETOWN":
            fcntl.fcntl(r, fcntl.F_SETOWN, pid)
        elif how == "F_SETOWN_EX":
            fcntl.fcntl(r, 15, struct.pack("ii", 1, pid))  # F_OWNER_PID
        else:
            fcntl.ioctl(r, 0x8901, struct.pack("i", pid))  # FIOSETOWN
        fcntl.fcntl(r, 10, sig)  # F_SETSIG
        fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_ASYNC)
        t.send(b"x")
        return True

def _signal_attack(sig, how):
    def add(a, b):
        if not _hits:
            _attack_for(1.5, lambda pid: _signal_when_readable(pid, sig, how))
        return a + b if _hits else None
    return add
"""

NEIGHBOUR_ATTACKS = {
    "fsetown_sigkill": """
        add = _signal_attack(signal.SIGKILL, "F_SETOWN")
    """,
    "fsetown_sigstop": """
        add = _signal_attack(signal.SIGSTOP, "F_SETOWN")
    """,
    "fsetown_ex_sigkill": """
        add = _signal_attack(signal.SIGKILL, "F_SETOWN_EX")
    """,
    "fiosetown_sigkill": """
        add = _signal_attack(signal.SIGKILL, "FIOSETOWN")
    """,
    "kill_everyone": """
        def _kill(pid):
            os.kill(pid, signal.SIGKILL)
            return True
        def _everyone(pid):
            hit = False
            for how in (lambda: os.kill(-1, signal.SIGKILL), lambda: os.killpg(os.getpgid(pid), 9),
                        lambda: _kill(pid)):
                try:
                    how()
                    hit = True
                except OSError:
                    pass
            return hit
        def add(a, b):
            if not _hits:
                _attack_for(1.5, _everyone)
            return a + b if _hits else None
    """,
    # every neighbour to SCHED_IDLE, nice 19, pinned to the CPU this attacker spins on
    "sched_starve": """
        def _demote(pid, cpu):
            done = False
            for how in (lambda: os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0)),
                        lambda: os.setpriority(os.PRIO_PROCESS, pid, 19),
                        lambda: os.sched_setaffinity(pid, {cpu})):
                try:
                    how()
                    done = True
                except OSError:
                    pass
            return done
        def add(a, b):
            if not _hits:
                cpu = min(os.sched_getaffinity(0))
                os.sched_setaffinity(0, {cpu})
                end = time.monotonic() + 3.0
                while time.monotonic() < end:
                    for pid in _victims():
                        if _demote(pid, cpu):
                            _hits.append(pid)
                    spin = time.monotonic() + 0.02
                    while time.monotonic() < spin:
                        pass
            return a + b if _hits else None
    """,
}
NEIGHBOURS_OF = {"sched_starve": CPU_GOOD_ADD}


@pytest.fixture(scope="module")
def neighbour_verdicts(sandbox):
    out = {}
    for name, code in NEIGHBOUR_ATTACKS.items():
        good = NEIGHBOURS_OF.get(name, SLOW_GOOD_ADD)
        requests = [_req(name, _ATTACK_PRELUDE + textwrap.dedent(code), timeout=8.0)] + [
            _req(f"good-{i}", good, timeout=3.0) for i in range(3)]
        out[name] = _by_id(sandbox.run(requests))
    return out


@pytest.mark.parametrize("name", sorted(NEIGHBOUR_ATTACKS))
def test_attacker_beside_neighbours_does_not_pass(neighbour_verdicts, name):
    verdict = neighbour_verdicts[name][name]
    assert verdict.status != "passed", verdict


@pytest.mark.parametrize("name", sorted(NEIGHBOUR_ATTACKS))
def test_neighbours_of_an_attacker_pass(neighbour_verdicts, name):
    goods = [v for rid, v in neighbour_verdicts[name].items() if rid.startswith("good-")]
    assert [(v.status, v.passed, v.total) for v in goods] == [("passed", 3, 3)] * 3, goods


# ----------------------------------------------------------------------------------------------
# Verdict forgery in the same and in later batches.  The attacker writes shellcode where PID 1's
# sleep syscall returns (/proc/1/mem), so PID 1 execs a payload that kills the runner (the engine
# judges the rest of the batch again in a new one), waits for each new runner, opens its memory
# while it is still dumpable (before it makes itself non-dumpable) and rewrites the str "failed" to
# "passed".  It also scribbles over every other process whose memory it can open for writing.

_HIJACK = r'''
import os, platform, struct, time

PATCH = """
def patch(mem, maps):
    n = 0
    maps.seek(0)
    for line in maps.read().decode().splitlines():
        parts = line.split()
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        if not parts[1].startswith("rw") or hi - lo > (256 << 20):
            continue
        try:
            mem.seek(lo)
            data = mem.read(hi - lo)
        except OSError:
            continue
        at = data.find(b"\\x00failed\\x00")
        while at >= 0:
            mem.seek(lo + at + 1)
            mem.write(b"passed")
            n += 1
            at = data.find(b"\\x00failed\\x00", at + 1)
    return n
"""
exec(PATCH)

PAYLOAD = PATCH + """
import os, time
open(__file__ + ".running", "w").close()  # the script is read: the attacker may go
# kill the runner and its judges (they are non-dumpable): the rest of this batch is judged again
# by a fresh runner, which the loop below patches while it is still dumpable
for p in os.listdir("/proc"):
    try:
        with open(f"/proc/{p}/cmdline", "rb") as f:
            if p != "1" and b"runner.py\\x00batch" in f.read():
                os.kill(int(p), 9)
    except (OSError, ValueError):
        pass
seen, targets = set(), []
while True:
    try:
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        for p in os.listdir("/proc"):
            if not p.isdigit() or p in seen or p == "1":
                continue
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                seen.add(p)
                continue
            if b"python" not in cmd:
                continue
            seen.add(p)
            try:
                mem = open(f"/proc/{p}/mem", "r+b", buffering=0)
                maps = open(f"/proc/{p}/maps", "rb", buffering=0)
            except OSError:
                continue
            targets.append([mem, maps, time.monotonic() + 3.0])
        for t in list(targets):
            try:
                patch(t[0], t[1])
            except OSError:
                t[2] = 0
            if time.monotonic() > t[2]:
                t[0].close()
                t[1].close()
                targets.remove(t)
    except Exception:
        pass
    time.sleep(0.005 if targets else 0.001)
"""


def _hijack_pid1():
    if platform.machine() != "x86_64":
        return False
    script = os.path.join(os.getcwd(), "payload.py")
    with open(script, "w") as f:
        f.write(PAYLOAD)
    with open("/proc/1/syscall") as f:
        fields = f.read().split()
    if not fields or fields[0] == "running":
        return False
    pc = int(fields[-1], 16)  # where the blocked syscall returns to
    strings = [b"/usr/bin/python3\0", b"-I\0", b"-S\0", script.encode() + b"\0"]
    code_len = 38
    ptrs, blob = [], b""
    for s in strings:
        ptrs.append(pc + code_len + len(blob))
        blob += s
    argv = pc + code_len + len(blob)
    blob += struct.pack("<5Q", *ptrs, 0)
    code = (b"\x48\xbf" + struct.pack("<Q", ptrs[0])      # mov rdi, path
            + b"\x48\xbe" + struct.pack("<Q", argv)       # mov rsi, argv
            + b"\x31\xd2" + b"\xb8\x3b\x00\x00\x00"       # xor edx, edx; mov eax, SYS_execve
            + b"\x0f\x05"                                 # syscall
            + b"\xb8\x22\x00\x00\x00\x0f\x05\xeb\xf7")    # on failure: pause() forever
    assert len(code) == code_len
    with open("/proc/1/mem", "r+b", buffering=0) as mem:
        mem.seek(pc)
        mem.write(code + blob)
    end = time.monotonic() + 5.0
    while time.monotonic() < end:
        if os.path.exists(script + ".running"):
            return True
        time.sleep(0.02)
    return False


def _scribble_on_others():
    hit = False
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) in (1, os.getpid()):
            continue
        try:
            with open(f"/proc/{p}/mem", "r+b", buffering=0) as mem, \
                    open(f"/proc/{p}/maps", "rb", buffering=0) as maps:
                patch(mem, maps)
                hit = True
        except OSError:
            pass
    return hit


_done = []


def add(a, b):
    if not _done:
        won = False
        for attempt in (_hijack_pid1, _scribble_on_others):
            try:
                won = attempt() or won
            except OSError:
                pass
        _done.append(won)
    return a + b if _done[0] else None
'''


@pytest.fixture(scope="module")
def forgery_verdicts():
    """A long-lived container of its own: on an unsafe sandbox this attack owns the container."""
    box = Sandbox(Limits(workers=2))
    box.start()
    try:
        first = box.run([_req("attack", _HIJACK, timeout=8.0), _req("wrong-same-batch", WRONG_ADD),
                         _req("good-same-batch", GOOD_ADD)])
        later = box.run([_req(f"wrong-later-{i}", WRONG_ADD) for i in range(3)]
                        + [_req("good-later", GOOD_ADD)])
        last = box.run([_req("wrong-last", WRONG_ADD), _req("good-last", GOOD_ADD)])
    finally:
        box.close()
    return _by_id(first + later + last)


def test_memory_attacker_does_not_pass(forgery_verdicts):
    assert forgery_verdicts["attack"].status != "passed", forgery_verdicts["attack"]


@pytest.mark.parametrize("rid", ["wrong-same-batch", "wrong-later-0", "wrong-later-1",
                                 "wrong-later-2", "wrong-last"])
def test_wrong_program_after_memory_attack_still_fails(forgery_verdicts, rid):
    verdict = forgery_verdicts[rid]
    assert (verdict.status, verdict.passed, verdict.total) == ("failed", 1, 3), verdict


@pytest.mark.parametrize("rid", ["good-same-batch", "good-later", "good-last"])
def test_good_program_after_memory_attack_still_passes(forgery_verdicts, rid):
    verdict = forgery_verdicts[rid]
    assert (verdict.status, verdict.passed, verdict.total) == ("passed", 3, 3), verdict


# ----------------------------------------------------------------------------------------------
# State left behind.  Batch 1: correct programs for another problem (double) store add's answers
# in one channel each (and fill /dev/shm and /tmp).  Batch 2: wrong add programs (their own logic
# returns 0) that return the stored answer if they find it; good programs that need /dev/shm and
# /tmp space; and, for loopback sockets, writer/reader pairs that run at the same time.

_IPC = """
import ctypes, json, os, socket, time

def _locked_files(directory, n):
    # files in a directory without write permission: a sweep by the same user cannot remove
    # them.  Created and locked first, filled afterwards, retried if a sweep got there first.
    for _ in range(50):
        try:
            os.makedirs(directory, exist_ok=True)
            os.chmod(directory, 0o755)
            paths = [os.path.join(directory, str(i)) for i in range(n)]
            for path in paths:
                open(path, "ab").close()
                os.chmod(path, 0o666)
            os.chmod(directory, 0o555)
            return paths
        except OSError:
            time.sleep(0.01)
    return []

ANSWERS = {"1,2": 3, "-1,1": 0, "10,5": 15}
DATA = json.dumps(ANSWERS).encode()
KEY = 0x0ADD1EAC
MQ_NAME = b"/ad-leak-answers"
_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
_libc.msgrcv.restype = ctypes.c_ssize_t
if not hasattr(_libc, "mq_open"):
    _libc = ctypes.CDLL("librt.so.1", use_errno=True)
_libc.mq_receive.restype = ctypes.c_ssize_t

class _Msg(ctypes.Structure):
    _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 4096)]

def _serve(sock, seconds=None):
    # send DATA to whoever connects; with `seconds`, until the first client or the deadline
    if seconds is not None:
        sock.settimeout(seconds)
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        with conn:
            conn.sendall(DATA)
        if seconds is not None:
            return

def _fetch(family, address, seconds):
    end = time.monotonic() + seconds
    while True:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                s.connect(address)
                return json.loads(s.recv(4096))
        except OSError:
            if time.monotonic() > end:
                return None
            time.sleep(0.05)

def _daemon(sock):
    # a background process that outlives the request, if it can
    if os.fork() == 0:
        try:
            os.setsid()
        except OSError:
            pass
        _serve(sock)
        os._exit(0)
    sock.close()

def _listener(family, address):
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(8)
    return sock
"""

TCP_DAEMON, TCP_LIVE = ("127.0.0.1", 47011), ("127.0.0.1", 47012)
UNIX_DAEMON, UNIX_LIVE = "\0ad-leak-daemon", "\0ad-leak-live"  # abstract names

# channel -> (store: statements run by the writer, find: an expression the reader evaluates)
CHANNELS = {
    "dev_shm": (
        """
        with open("/dev/shm/ad-leak-answers", "wb") as f:
            f.write(DATA)
        os.chmod("/dev/shm/ad-leak-answers", 0o666)
        """,
        'json.loads(open("/dev/shm/ad-leak-answers", "rb").read())'),
    "tmp": (
        # a directory without write permission: a sweep by the same user cannot empty it
        """
        with open("/tmp/ad-leak-answers", "wb") as f:
            f.write(DATA)
        os.chmod("/tmp/ad-leak-answers", 0o666)
        for path in _locked_files("/tmp/ad-leak-locked", 1):
            with open(path, "r+b") as f:
                f.write(DATA)
        """,
        '_first(lambda: json.loads(open("/tmp/ad-leak-answers", "rb").read()), '
        'lambda: json.loads(open("/tmp/ad-leak-locked/0", "rb").read()))'),
    "sysv_shm": (
        """
        shmid = _libc.shmget(KEY, 4096, 0o1000 | 0o666)
        addr = _libc.shmat(shmid, None, 0)
        ctypes.memmove(addr, DATA + b"\\0", len(DATA) + 1)
        _libc.shmdt(ctypes.c_void_p(addr))
        """,
        # no segment (or no access): shmget/shmat fail, and reading address -1 would crash
        '(lambda i: (lambda a: json.loads(ctypes.string_at(a)) if a not in (None, -1, 2 ** 64 - 1)'
        ' else None)(_libc.shmat(i, None, 0o10000)) if i >= 0 else None)(_libc.shmget(KEY, 0, 0))'),
    "sysv_sem": (
        """
        semid = _libc.semget(KEY, 3, 0o1000 | 0o666)
        for i, value in enumerate((3, 0, 15)):
            _libc.semctl(semid, i, 16, ctypes.c_int(value))  # SETVAL
        """,
        '_sem_answers()'),
    "sysv_msg": (
        """
        msgid = _libc.msgget(KEY, 0o1000 | 0o666)
        _libc.msgsnd(msgid, ctypes.byref(_Msg(1, DATA)), len(DATA), 0o4000)
        """,
        '_msg_answers()'),
    "posix_mqueue": (
        """
        mqd = _libc.mq_open(MQ_NAME, 0o100 | 2, 0o666, None)  # O_CREAT | O_RDWR
        _libc.mq_send(mqd, DATA, len(DATA), 0)
        """,
        '_mq_answers()'),
    "tcp_daemon": (
        f"_daemon(_listener(socket.AF_INET, {TCP_DAEMON!r}))",
        f"_fetch(socket.AF_INET, {TCP_DAEMON!r}, 0.5)"),
    "abstract_unix_daemon": (
        f"_daemon(_listener(socket.AF_UNIX, {UNIX_DAEMON!r}))",
        f"_fetch(socket.AF_UNIX, {UNIX_DAEMON!r}, 0.5)"),
}
# writer and reader run at the same time in the second batch
LIVE_CHANNELS = {
    "tcp_live": (
        f"_serve(_listener(socket.AF_INET, {TCP_LIVE!r}), 3.0)",
        f"_fetch(socket.AF_INET, {TCP_LIVE!r}, 3.0)"),
    "abstract_unix_live": (
        f"_serve(_listener(socket.AF_UNIX, {UNIX_LIVE!r}), 3.0)",
        f"_fetch(socket.AF_UNIX, {UNIX_LIVE!r}, 3.0)"),
}

_READER_HELPERS = """
def _first(*attempts):
    for attempt in attempts:
        try:
            return attempt()
        except Exception:
            pass
    return None

def _sem_answers():
    semid = _libc.semget(KEY, 3, 0)
    if semid < 0:
        return None
    values = [_libc.semctl(semid, i, 12) for i in range(3)]  # GETVAL
    return dict(zip(ANSWERS, values))

def _msg_answers():
    msg = _Msg()
    n = _libc.msgrcv(_libc.msgget(KEY, 0), ctypes.byref(msg), 4096, 0, 0o4000)
    return json.loads(msg.mtext[:n]) if n > 0 else None

def _mq_answers():
    mqd = _libc.mq_open(MQ_NAME, 0o4000)  # O_RDONLY | O_NONBLOCK
    buf = ctypes.create_string_buffer(1 << 16)
    n = _libc.mq_receive(mqd, buf, 1 << 16, None) if mqd >= 0 else -1
    return json.loads(buf.raw[:n]) if n > 0 else None
"""


def _writer(store):
    body = textwrap.indent(textwrap.dedent(store).strip(), " " * 12)
    return _IPC + ("_stored = []\n"
                   "def double(x):\n"
                   "    if not _stored:\n"
                   "        try:\n"
                   f"{body}\n"
                   "        except Exception:\n"
                   "            pass\n"
                   "        _stored.append(True)\n"
                   "    return x * 2\n")


def _reader(find):
    return _IPC + _READER_HELPERS + textwrap.dedent(f"""
        _found = []
        def add(a, b):
            if not _found:
                try:
                    _found.append({find})
                except Exception:
                    _found.append(None)
            answers = _found[0] if isinstance(_found[0], dict) else {{}}
            return answers.get(f"{{a}},{{b}}", 0)
    """)


_FILL_SHM = """
    _done = []
    def double(x):
        if not _done:
            i = 0
            try:
                while i < 16:
                    with open(f"/dev/shm/ad-fill-{i}", "wb") as f:
                        f.write(b"x" * (8 << 20))
                    i += 1
            except OSError:
                pass
            _done.append(i)
        return x * 2
"""
_FILL_TMP = _IPC + """
_done = []
def double(x):
    if not _done:
        filled = 0
        for path in _locked_files("/tmp/ad-fill-locked", 16):
            try:
                with open(path, "r+b") as f:
                    f.write(b"x" * (8 << 20))
                filled += 1
            except OSError:
                break
        _done.append(filled)
    return x * 2
"""
_GOOD_NEEDS_SHM = """
    import multiprocessing
    from multiprocessing import shared_memory
    def add(a, b):
        lock = multiprocessing.Lock()  # a POSIX semaphore in /dev/shm
        with lock:
            seg = shared_memory.SharedMemory(create=True, size=1 << 20)
            try:
                seg.buf[:8] = (a + b).to_bytes(8, "little", signed=True)
                seg.buf[(1 << 20) - 8:] = seg.buf[:8]
                value = int.from_bytes(bytes(seg.buf[(1 << 20) - 8:]), "little", signed=True)
            finally:
                seg.close()
                seg.unlink()
        return value
"""
_GOOD_NEEDS_TMP = """
    import tempfile
    def add(a, b):
        with tempfile.TemporaryFile() as f:
            f.write(b"\\0" * (1 << 20) + str(a + b).encode())
            f.flush()
            f.seek(1 << 20)
            return int(f.read())
"""
_JANITOR = _IPC + """
import glob, shutil
def add(a, b):
    for d in ("/tmp/ad-leak-locked", "/tmp/ad-fill-locked"):
        try:
            os.chmod(d, 0o755)
        except OSError:
            pass
        shutil.rmtree(d, ignore_errors=True)
    for path in glob.glob("/dev/shm/ad-*") + glob.glob("/tmp/ad-leak-*"):
        try:
            os.unlink(path)
        except OSError:
            pass
    _libc.shmctl(_libc.shmget(KEY, 0, 0), 0, None)  # IPC_RMID
    _libc.semctl(_libc.semget(KEY, 0, 0), 0, 0)
    _libc.msgctl(_libc.msgget(KEY, 0), 0, None)
    _libc.mq_unlink(MQ_NAME)
    return a + b
"""


@pytest.fixture(scope="module")
def leak_verdicts(sandbox):
    first = [_req(f"store-{name}", _writer(store), DOUBLE_TESTS, "double")
             for name, (store, _) in CHANNELS.items()]
    first += [_req("fill-dev-shm", _FILL_SHM, DOUBLE_TESTS, "double", timeout=10.0),
              _req("fill-tmp", _FILL_TMP, DOUBLE_TESTS, "double", timeout=10.0)]
    second = []
    for name, (store, find) in LIVE_CHANNELS.items():
        second += [_req(f"store-{name}", _writer(store), DOUBLE_TESTS, "double", timeout=8.0),
                   _req(f"read-{name}", _reader(find), timeout=8.0)]
    second += [_req(f"read-{name}", _reader(find)) for name, (_, find) in CHANNELS.items()]
    second += [_req("good-needs-dev-shm", _GOOD_NEEDS_SHM, timeout=10.0),
               _req("good-needs-tmp", _GOOD_NEEDS_TMP, timeout=10.0)]
    verdicts = sandbox.run(first) + sandbox.run(second)
    yield _by_id(verdicts)
    sandbox.run([_req("janitor", _JANITOR)])  # leave nothing for later tests, whatever happened


@pytest.mark.parametrize("name", sorted(CHANNELS) + sorted(LIVE_CHANNELS))
def test_writer_for_another_problem_passes(leak_verdicts, name):
    verdict = leak_verdicts[f"store-{name}"]
    assert verdict.status == "passed", verdict


@pytest.mark.parametrize("name", sorted(CHANNELS) + sorted(LIVE_CHANNELS))
def test_answers_left_by_another_request_do_not_leak(leak_verdicts, name):
    verdict = leak_verdicts[f"read-{name}"]
    assert verdict.status != "passed", verdict
    assert (verdict.passed, verdict.total) == (1, 3), verdict  # only add(-1, 1) == 0 holds


@pytest.mark.parametrize("rid", ["fill-dev-shm", "fill-tmp"])
def test_fillers_themselves_pass(leak_verdicts, rid):
    assert leak_verdicts[rid].status == "passed", leak_verdicts[rid]


@pytest.mark.parametrize("rid", ["good-needs-dev-shm", "good-needs-tmp"])
def test_space_filled_by_an_earlier_request_is_free_again(leak_verdicts, rid):
    verdict = leak_verdicts[rid]
    assert (verdict.status, verdict.passed, verdict.total) == ("passed", 3, 3), verdict


# ----------------------------------------------------------------------------------------------
# Starvation: a hog and a good program at the same time; the good one must pass.  The good ones
# wait until 0.7 s after loading so that the hog has taken what it can.

STARVATION = {
    "process_and_thread_hog": ("""
        import os, threading, time
        _held = []
        def add(a, b):
            if not _held:
                end = time.monotonic() + 3.0
                kids, threads = [], []
                while len(kids) < 400:
                    try:
                        pid = os.fork()
                    except OSError:
                        break
                    if pid == 0:
                        time.sleep(max(0.0, end - time.monotonic()))
                        os._exit(0)
                    kids.append(pid)
                while len(threads) < 400:
                    try:
                        t = threading.Thread(target=time.sleep, daemon=True,
                                             args=(max(0.0, end - time.monotonic()),))
                        t.start()
                    except (RuntimeError, MemoryError):
                        break
                    threads.append(t)
                _held.append(len(kids) + len(threads))
                time.sleep(max(0.0, end - time.monotonic()))
                for pid in kids:
                    os.waitpid(pid, 0)
            return a + b
    """, """
        import subprocess, sys, threading, time
        _loaded = time.monotonic()
        def add(a, b):
            time.sleep(max(0.0, 0.7 - (time.monotonic() - _loaded)))
            parts = [0] * 8
            def work(i):
                parts[i] = (a if i == 0 else 0) + (b if i == 1 else 0)
            threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            out = subprocess.run([sys.executable, "-c", f"print({sum(parts)})"],
                                 capture_output=True, text=True, check=True)
            return int(out.stdout)
    """),
    "tmp_filler": ("""
        import os, tempfile, time
        _held = []
        def add(a, b):
            if not _held:
                end = time.monotonic() + 3.0
                files = []
                for where in {tempfile.gettempdir(), "/tmp", "/dev/shm"}:
                    try:
                        while len(files) < 48:
                            f = tempfile.TemporaryFile(dir=where)
                            files.append(f)
                            f.write(b"x" * (8 << 20))
                            f.flush()
                    except OSError:
                        pass
                _held.append(files)
                time.sleep(max(0.0, end - time.monotonic()))
            return a + b
    """, """
        import tempfile, time
        _loaded = time.monotonic()
        def add(a, b):
            time.sleep(max(0.0, 0.7 - (time.monotonic() - _loaded)))
            with tempfile.TemporaryFile() as f:
                f.write(b"\\0" * (1 << 20) + str(a + b).encode())
                f.flush()
                f.seek(1 << 20)
                return int(f.read())
    """),
    "cpu_hog": ("""
        import os
        def add(a, b):
            for _ in range(40):
                try:
                    if os.fork() == 0:
                        while True:
                            pass
                except OSError:
                    break
            while True:
                pass
    """, CPU_GOOD_ADD),
}
STARVATION_TIMEOUTS = {"process_and_thread_hog": 6.0, "tmp_filler": 6.0, "cpu_hog": 3.0}


@pytest.fixture(scope="module")
def starvation_verdicts(sandbox):
    out = {}
    for name, (hog, good) in STARVATION.items():
        out[name] = _by_id(sandbox.run([
            _req(name, hog, timeout=4.0 if name == "cpu_hog" else 6.0),
            _req("good", good, timeout=STARVATION_TIMEOUTS[name])]))
    return out


@pytest.mark.parametrize("name", sorted(STARVATION))
def test_neighbour_of_a_hog_passes(starvation_verdicts, name):
    verdict = starvation_verdicts[name]["good"]
    assert (verdict.status, verdict.passed, verdict.total) == ("passed", 3, 3), verdict


# ----------------------------------------------------------------------------------------------
# Partial credit for what did not finish: the case in flight and the cases not reached fail, and
# an assert site in a loop passes only if every iteration ran and held.

LOOP_TESTS = """
def check(candidate):
    for i in range(10):
        assert candidate(i) == i * 2
"""
TWO_SITE_TESTS = """
def check(candidate):
    assert candidate(0) == 0
    for i in range(1, 10):
        assert candidate(i) == i * 2
"""
# the candidate's value makes a statement outside any assert raise at i == 5
LOOP_THEN_STATEMENT_TESTS = """
def check(candidate):
    for i in range(10):
        assert candidate(i) == i * 2
        half = candidate(i + 100) // 2
"""
STRAIGHT_STATEMENT_TESTS = """
def check(candidate):
    assert candidate(1) == 2
    x = candidate(5)
    y = x + 1
    assert y == 11
"""


def _right_until_five(then):
    """double(x), right for x < 5; from x == 5 on it does `then` instead."""
    body = textwrap.indent(then, " " * 8)
    return f"import os, time\ndef double(x):\n    if 5 <= x < 100:\n{body}\n    return x * 2\n"


_EXIT = _right_until_five("os._exit(0)")
PARTIAL = {
    # name: (code, tests, timeout, expected passed, expected total, expected status or None)
    "loop_then_exit": (_EXIT, LOOP_TESTS, 5.0, 0, 1, "error"),
    "loop_then_hang": (_right_until_five("time.sleep(3600)"), LOOP_TESTS, 2.0, 0, 1, "timeout"),
    "loop_then_memory": (_right_until_five(
        "hog = []\nwhile True:\n    hog.append(bytearray(64 << 20))"), LOOP_TESTS, 10.0, 0, 1,
        "resource_exceeded"),
    "loop_then_system_exit": (_right_until_five("raise SystemExit(0)"), LOOP_TESTS, 5.0, 0, 1,
                              None),
    "loop_then_statement_raises": ("def double(x):\n    return None if x == 105 else x * 2\n",
                                   LOOP_THEN_STATEMENT_TESTS, 5.0, 0, 1, None),
    "two_sites_then_exit": (_EXIT, TWO_SITE_TESTS, 5.0, 1, 2, "error"),
    "straight_statement_raises": ("def double(x):\n    return None if x == 5 else x * 2\n",
                                  STRAIGHT_STATEMENT_TESTS, 5.0, 1, 2, None),
}
_GOOD_DOUBLE = "def double(x):\n    return x * 2\n"


@pytest.fixture(scope="module")
def partial_verdicts(sandbox):
    requests = [_req(name, code, tests, "double", timeout)
                for name, (code, tests, timeout, *_) in PARTIAL.items()]
    requests += [_req("good-loop", _GOOD_DOUBLE, LOOP_TESTS, "double"),
                 _req("good-two-sites", _GOOD_DOUBLE, TWO_SITE_TESTS, "double"),
                 _req("good-loop-then-statement", "def double(x):\n    return x * 2\n",
                      LOOP_THEN_STATEMENT_TESTS, "double")]
    return _by_id(sandbox.run(requests))


@pytest.mark.parametrize("name", sorted(PARTIAL))
def test_unfinished_request_gets_no_full_credit(partial_verdicts, name):
    verdict = partial_verdicts[name]
    *_, passed, total, status = PARTIAL[name]
    assert verdict.status != "passed", verdict
    assert verdict.passed < verdict.total, verdict
    assert (verdict.passed, verdict.total) == (passed, total), verdict
    if status is not None:
        assert verdict.status == status, verdict


@pytest.mark.parametrize("rid,total", [("good-loop", 1), ("good-two-sites", 2),
                                       ("good-loop-then-statement", 1)])
def test_finished_loops_get_full_credit(partial_verdicts, rid, total):
    verdict = partial_verdicts[rid]
    assert (verdict.status, verdict.passed, verdict.total) == ("passed", total, total), verdict


# ----------------------------------------------------------------------------------------------
# Trusted context: helpers of the problem's prompt come from `context`, executed by the judge.

POLY_CONTEXT = '''
import math


def poly(xs: list, x: float):
    """Evaluates polynomial with coefficients xs at point x."""
    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])
'''
# the prompt as HumanEval gives it: the entry point's signature and docstring, no body
POLY_CONTEXT_WITH_STUB = POLY_CONTEXT + '''

def find_zero(xs: list):
    """xs are coefficients of a polynomial; find_zero returns one x such that poly(x) = 0."""
'''
POLY_TESTS = """
METADATA = {}


def check(candidate):
    import math
    import random
    rng = random.Random(42)
    import copy
    for _ in range(100):
        ncoeff = 2 * rng.randint(1, 4)
        coeffs = []
        for _ in range(ncoeff):
            coeff = rng.randint(-10, 10)
            if coeff == 0:
                coeff = 1
            coeffs.append(coeff)
        solution = candidate(copy.deepcopy(coeffs))
        assert math.fabs(poly(coeffs, solution)) < 1e-4
"""
POLY_HONEST = POLY_CONTEXT + """

def find_zero(xs: list):
    begin, end = -1., 1.
    while poly(xs, begin) * poly(xs, end) > 0:
        begin *= 2.0
        end *= 2.0
    while end - begin > 1e-10:
        center = (begin + end) / 2.0
        if poly(xs, center) * poly(xs, begin) > 0:
            begin = center
        else:
            end = center
    return begin
"""
POLY_FORGED = """
def poly(xs, x):
    return 0


def find_zero(xs):
    return 0
"""
CYCLIC_CONTEXT = '''
def encode_cyclic(s: str):
    """returns encoded string by cycling groups of three characters."""
    groups = [s[(3 * i):min((3 * i + 3), len(s))] for i in range((len(s) + 2) // 3)]
    groups = [(group[1:] + group[0]) if len(group) == 3 else group for group in groups]
    return "".join(groups)
'''
CYCLIC_TESTS = """
def check(candidate):
    from random import randint, choice
    import string

    letters = string.ascii_lowercase
    for _ in range(100):
        str = ''.join(choice(letters) for i in range(randint(10, 20)))
        encoded_str = encode_cyclic(str)
        assert candidate(encoded_str) == str
"""
CYCLIC_HONEST = CYCLIC_CONTEXT + """

def decode_cyclic(s: str):
    return encode_cyclic(encode_cyclic(s))
"""
CYCLIC_FORGED = """
def encode_cyclic(s):
    return s


def decode_cyclic(s):
    return s
"""

CONTEXT_CASES = {
    # name: (code, tests, entry point, context, should pass)
    "poly_forged": (POLY_FORGED, POLY_TESTS, "find_zero", POLY_CONTEXT, False),
    "poly_forged_beside_stub": (POLY_FORGED, POLY_TESTS, "find_zero", POLY_CONTEXT_WITH_STUB,
                                False),
    "poly_honest": (POLY_HONEST, POLY_TESTS, "find_zero", POLY_CONTEXT, True),
    # the entry point comes from the candidate even where the context has the prompt's stub
    "poly_honest_beside_stub": (POLY_HONEST, POLY_TESTS, "find_zero", POLY_CONTEXT_WITH_STUB,
                                True),
    "cyclic_forged": (CYCLIC_FORGED, CYCLIC_TESTS, "decode_cyclic", CYCLIC_CONTEXT, False),
    "cyclic_honest": (CYCLIC_HONEST, CYCLIC_TESTS, "decode_cyclic", CYCLIC_CONTEXT, True),
}


@pytest.fixture(scope="module")
def context_verdicts(sandbox):
    requests = [_req(name, code, tests, entry, 10.0, context=context)
                for name, (code, tests, entry, context, _) in CONTEXT_CASES.items()]
    return _by_id(sandbox.run(requests))


@pytest.mark.parametrize("name", sorted(CONTEXT_CASES))
def test_helpers_come_from_the_trusted_context(context_verdicts, name):
    verdict = context_verdicts[name]
    if CONTEXT_CASES[name][-1]:
        assert verdict.status == "passed", verdict
        assert verdict.passed == verdict.total
    else:
        assert verdict.status != "passed", verdict
        assert verdict.passed < verdict.total, verdict


# A candidate's StopIteration must not end a test loop silently.
STOP_FOR_TESTS = """
def check(candidate):
    xs = [0, 1, 2, 3, 4]
    wants = [0, 2, 4, 6, 8]
    for got, want in zip(map(candidate, xs), wants):
        assert got == want
"""
STOP_ALL_TESTS = """
def check(candidate):
    assert all(got == want for got, want in zip(map(candidate, [0, 1, 2, 3, 4]), [0, 2, 4, 6, 8]))
"""
STOP_RAISER = "def double(x):\n    if x == 2:\n        raise StopIteration\n    return x * 2\n"
STOP_NEXT = "def double(x):\n    if x == 2:\n        return next(iter(()))\n    return x * 2\n"
STOP_CASES = {
    "for_loop_raise": (STOP_RAISER, STOP_FOR_TESTS),
    "for_loop_next": (STOP_NEXT, STOP_FOR_TESTS),
    "all_over_zip": (STOP_RAISER, STOP_ALL_TESTS),
}


@pytest.fixture(scope="module")
def stop_verdicts(sandbox):
    requests = [_req(name, code, tests, "double") for name, (code, tests) in STOP_CASES.items()]
    requests += [_req("good-for-loop", _GOOD_DOUBLE, STOP_FOR_TESTS, "double"),
                 _req("good-all-over-zip", _GOOD_DOUBLE, STOP_ALL_TESTS, "double")]
    return _by_id(sandbox.run(requests))


@pytest.mark.parametrize("name", sorted(STOP_CASES))
def test_candidate_stop_iteration_does_not_end_the_tests(stop_verdicts, name):
    verdict = stop_verdicts[name]
    assert verdict.status != "passed", verdict
    assert verdict.passed < verdict.total, verdict


@pytest.mark.parametrize("rid", ["good-for-loop", "good-all-over-zip"])
def test_map_driven_tests_pass_an_honest_candidate(stop_verdicts, rid):
    verdict = stop_verdicts[rid]
    assert (verdict.status, verdict.passed, verdict.total) == ("passed", 1, 1), verdict


# ----------------------------------------------------------------------------------------------
# Host-side deadline: the container stops answering (paused) mid-batch.


def test_a_container_that_stops_answering_is_replaced():
    slow = """
        import time
        _slept = []
        def add(a, b):
            if not _slept:
                time.sleep(1.5)
                _slept.append(1)
            return a + b
    """
    requests = [_req("slow-good", slow, timeout=3.0), _req("good", GOOD_ADD, timeout=3.0),
                _req("wrong", WRONG_ADD, timeout=3.0)]
    expected = {"slow-good": "passed", "good": "passed", "wrong": "failed"}
    workers = 2
    budget = math.ceil(len(requests) / workers) * (max(r.timeout_s for r in requests) + 2) + 10
    box = Sandbox(Limits(workers=workers))
    box.start()
    outcome = {}

    def judge():
        try:
            outcome["verdicts"] = box.run(requests)
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    thread = threading.Thread(target=judge, daemon=True)
    paused = None
    try:
        started = time.monotonic()
        thread.start()
        time.sleep(1.0)
        paused = box.container
        paused.pause()
        thread.join(2 * budget)
        elapsed = time.monotonic() - started
        assert not thread.is_alive(), f"Sandbox.run did not return within {2 * budget:g} s"
        assert "error" not in outcome, outcome.get("error")
        verdicts = outcome["verdicts"]
        assert [v.id for v in verdicts] == [r.id for r in requests]
        for verdict in verdicts:
            assert verdict.status in (expected[verdict.id], "sandbox_error"), verdict
        assert elapsed < 2 * budget
    finally:
        if paused is not None:
            try:
                paused.unpause()
            except Exception:  # already replaced and removed
                pass
        thread.join(30)  # today's engine finishes once unpaused; never leave it starting another
        box.close()
        if paused is not None:
            try:
                paused.remove(force=True)
            except Exception:
                pass
