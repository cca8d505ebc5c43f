#!/usr/bin/env python3
"""The in-container runner: judges a batch of untrusted candidate programs against their tests.

Standard library only: it runs inside the sandbox image, mounted read-only at
/opt/autodidact/runner.py, and is also imported on the host for its value codec.

Modes (first argument):

  batch   read request lines (JSON) on stdin, write one verdict line per request on stdout, in the
          same order.  `--workers N` judges run at once.
  init    the container's PID 1: reaps orphans until SIGTERM.
  zygote     (internal) one per worker slot: forks candidate processes on demand.
  candidate  (internal) a candidate process started without a zygote.

How a verdict is reached (the parent decides; nothing the candidate prints or returns as an exit
code counts):

  runner ──fork──> judge (trusted: runs the *tests*, never the candidate's code)
                     └──spawn──> candidate process (fresh interpreter: rlimits, seccomp, no secrets)

The judge executes the test module itself.  Every name the tests take from the candidate program
(the entry point, helpers such as HumanEval's `poly`) is a proxy: calling it sends the arguments,
encoded as plain data, to the candidate process, which calls the real function and sends back the
plain-data result.  Comparisons, assertions and case counting all happen in the judge, so a
candidate that patches builtins, prints "passed", exits early, returns an object whose __eq__ is
always True, or reads memory looking for the expected values gains nothing: the expected values are
never in its process, and only plain values cross the pipe.

Each `assert` in `check(candidate)` is one test case.  The judge rewrites every assert into a
recorded case, so a failing case does not stop the others and partial credit is counted.  A request
passes only when the tests ran to the end and no case failed.  If the tests stop early (a statement
outside any assert raised), the cases that did not run count as failed.

Second layer inside the container (Docker is the boundary): per-candidate rlimits (address space,
CPU, file size, processes, open files), a seccomp filter that forbids signalling other processes,
changing process group or tracing (so a candidate cannot kill its judge or the runner or escape the
process-group kill), and a wall-clock deadline after which the whole process group is killed.
"""

from __future__ import annotations

import ast
import builtins
import ctypes
import json
import linecache
import os
import platform
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback

RUNNER_PATH = "/opt/autodidact/runner.py"
STATUSES = ("passed", "failed", "error", "syntax_error", "timeout", "resource_exceeded")

DEFAULT_LIMITS = {
    "memory_mb": 1024,  # RLIMIT_AS of the candidate process
    "fsize_mb": 16,  # largest file a candidate may write
    "nproc": 64,  # processes of the sandbox user a candidate may bring about (fork bombs stop here)
    "nofile": 64,  # open file descriptors
}
MAX_REPLY_BYTES = 16 * 1024 * 1024  # one encoded value from the candidate
FEEDBACK_CHARS = 1200
GRACE_S = 1.0  # the runner's backstop beyond a judge's own deadline


# ----------------------------------------------------------------------------------------------
# Plain-value codec: the only thing that crosses between candidate and judge.
# Exact types only (a subclass could carry a hostile __eq__); tagged objects for what JSON lacks.


class Unserializable(Exception):
    pass


def encode(value, depth=0):
    if depth > 200:
        raise Unserializable("value nested more than 200 levels deep")
    t = type(value)
    if value is None or t is bool or t is str or t is int:
        return value
    if t is float:
        if value != value or value in (float("inf"), float("-inf")):
            return {"$float": repr(value)}
        return value
    if t is list:
        return [encode(v, depth + 1) for v in value]
    if t is tuple:
        return {"$tuple": [encode(v, depth + 1) for v in value]}
    if t is dict:
        return {"$dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if t is set or t is frozenset:
        return {"$" + t.__name__: [encode(v, depth + 1) for v in value]}
    if t is bytes or t is bytearray:
        return {"$" + t.__name__: value.hex()}
    if t is complex:
        return {"$complex": [encode(value.real), encode(value.imag)]}
    raise Unserializable(f"a value of type {t.__name__} cannot leave the sandbox; return plain data")


def decode(data):
    t = type(data)
    if t is list:
        return [decode(v) for v in data]
    if t is dict:
        if len(data) != 1:
            raise ValueError("malformed encoded value")
        (tag, inner), = data.items()
        if tag == "$float":
            if inner not in ("nan", "inf", "-inf"):
                raise ValueError("malformed float")
            return float(inner)
        if tag == "$tuple":
            return tuple(decode(v) for v in inner)
        if tag == "$dict":
            return {decode(k): decode(v) for k, v in inner}
        if tag == "$set":
            return {decode(v) for v in inner}
        if tag == "$frozenset":
            return frozenset(decode(v) for v in inner)
        if tag == "$bytes":
            return bytes.fromhex(inner)
        if tag == "$bytearray":
            return bytearray.fromhex(inner)
        if tag == "$complex":
            return complex(decode(inner[0]), decode(inner[1]))
        raise ValueError(f"unknown tag {tag!r}")
    if data is None or t in (bool, str, int, float):
        return data
    raise ValueError("malformed encoded value")


def short_repr(value, limit=160):
    try:
        text = repr(value)
    except Exception:  # a repr can fail only on judge-side values we built; be safe anyway
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------------------------
# Confinement of the candidate process (Linux): rlimits and a seccomp filter.

# Syscalls a candidate may not make: signalling other processes, leaving its process group,
# tracing or writing into other processes.  Numbers per architecture.
_DENIED_SYSCALLS = {
    "x86_64": {"kill": 62, "tkill": 200, "tgkill": 234, "rt_sigqueueinfo": 129,
               "rt_tgsigqueueinfo": 297, "pidfd_send_signal": 424, "setsid": 112,
               "setpgid": 109, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311},
    "aarch64": {"kill": 129, "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138,
                "rt_tgsigqueueinfo": 240, "pidfd_send_signal": 424, "setsid": 157,
                "setpgid": 154, "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271},
}
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                           ctypes.c_ulong]
    if libc.prctl(option, arg2, arg3, arg4, arg5) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}) failed: {os.strerror(err)}")


def install_seccomp():
    """Deny _DENIED_SYSCALLS with EPERM for this process and every descendant."""
    machine = platform.machine()
    if machine not in _DENIED_SYSCALLS:
        raise OSError(f"no seccomp table for architecture {machine}")
    ld_abs_w, jeq_k, ret_k, jge_k = 0x20, 0x15, 0x06, 0x35
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    kill_process = 0x80000000
    numbers = sorted(_DENIED_SYSCALLS[machine].values())
    prog = [(ld_abs_w, 0, 0, 4), (jeq_k, 1, 0, _AUDIT_ARCH[machine]), (ret_k, 0, 0, kill_process),
            (ld_abs_w, 0, 0, 0), (jge_k, 0, 1, 0x40000000), (ret_k, 0, 0, kill_process)]
    n = len(numbers)
    for i, nr in enumerate(numbers):
        # on a match jump to the deny instruction, which sits right after the last comparison + allow
        prog.append((jeq_k, n - i, 0, nr))
    prog += [(ret_k, 0, 0, allow), (ret_k, 0, 0, deny)]
    filters = (_SockFilter * len(prog))(*[_SockFilter(*ins) for ins in prog])
    fprog = _SockFprog(len(prog), filters)
    _prctl(38, 1)  # PR_SET_NO_NEW_PRIVS (Docker's no-new-privileges already set it)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                           ctypes.c_ulong]
    if libc.prctl(22, 2, ctypes.addressof(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, MODE_FILTER
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp filter refused: {os.strerror(err)}")


def apply_rlimits(limits, timeout_s):
    mb = 1024 * 1024
    cpu = int(timeout_s) + 2
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["fsize_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["nofile"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


# ----------------------------------------------------------------------------------------------
# Candidate process: loads the program, answers `get` and `call` requests with plain values.


def _error_info(exc, source_name="<candidate>"):
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == source_name]
    tail = "".join(traceback.format_list(frames[-3:])).rstrip()
    message = str(exc) if not isinstance(exc, SyntaxError) else exc.msg
    return {"type": type(exc).__name__, "message": message[:500], "traceback": tail[-800:]}


def candidate_main(fd_in, fd_out, config_json):
    config = json.loads(config_json)
    try:  # make this process the one the kernel's OOM killer takes first
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    apply_rlimits(config["limits"], config["timeout_s"])
    install_seccomp()

    inp = os.fdopen(fd_in, "rb")
    write, dumps = os.write, json.dumps
    namespace = {"__name__": "__candidate__", "__builtins__": builtins}

    def reply(obj):
        data = (dumps(obj) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[write(fd_out, view):]

    for line in inp:
        msg = json.loads(line)
        op = msg["op"]
        try:
            if op == "load":
                source = msg["code"]
                linecache.cache["<candidate>"] = (len(source), None, source.splitlines(True),
                                                  "<candidate>")
                try:
                    code = compile(source, "<candidate>", "exec")
                except (SyntaxError, ValueError) as exc:  # ValueError: null bytes
                    info = _error_info(exc)
                    if isinstance(exc, SyntaxError):
                        info["traceback"] = f"line {exc.lineno}: {(exc.text or '').rstrip()}"
                    reply({"ok": False, "kind": "syntax_error", "error": info})
                    continue
                exec(code, namespace)
                reply({"ok": True})
            elif op == "get":
                name = msg["name"]
                if name not in namespace or name.startswith("__"):
                    reply({"ok": True, "kind": "missing"})
                elif callable(namespace[name]):
                    reply({"ok": True, "kind": "function"})
                else:
                    reply({"ok": True, "kind": "value", "value": encode(namespace[name])})
            elif op == "call":
                args = [decode(a) for a in msg["args"]]
                kwargs = {k: decode(v) for k, v in msg["kwargs"].items()}
                result = namespace[msg["name"]](*args, **kwargs)
                out = {"ok": True, "value": encode(result)}
                after = [encode(a) for a in args]
                if after != msg["args"]:  # the function changed its arguments in place
                    out["args_after"] = after
                reply(out)
            else:
                reply({"ok": False, "kind": "error", "error": {"type": "ProtocolError",
                                                              "message": op, "traceback": ""}})
        except MemoryError as exc:
            reply({"ok": False, "kind": "resource", "error": _error_info(exc)})
        except Unserializable as exc:
            reply({"ok": False, "kind": "error", "error": {
                "type": "TypeError", "message": str(exc), "traceback": ""}})
        except BaseException as exc:  # SystemExit and KeyboardInterrupt are candidate errors too
            reply({"ok": False, "kind": "error", "error": _error_info(exc)})
    os._exit(0)


# ----------------------------------------------------------------------------------------------
# Zygote: a fresh interpreter per worker slot that forks candidate processes on demand.  Starting
# Python and importing this file costs ~50 ms; a fork costs ~1 ms.  The zygote never holds tests or
# other candidates' code: a judge hands it two pipe ends (SCM_RIGHTS) and the forked child reads the
# program from its pipe.  The child joins the judge's process group, so killing that group kills it.

CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
             "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}


def _send(sock, obj, fds=()):
    socket.send_fds(sock, [json.dumps(obj).encode()], list(fds))


def zygote_main(ctrl_fd):
    try:
        _prctl(4, 0)  # not dumpable: candidates (same user) cannot read our memory
    except OSError:
        pass
    ctrl = socket.socket(fileno=ctrl_fd)
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(ctrl, 1 << 16, 2)
        except OSError:
            os._exit(0)
        if not data:
            os._exit(0)
        req = json.loads(data)
        pid = os.fork()
        if pid == 0:
            try:
                ctrl.close()
                os.setpgid(0, req["pgid"])
                os.chdir(req["workdir"])
                os.environ.clear()
                os.environ.update(req["env"])
                candidate_main(fds[0], fds[1], req["config"])
            finally:
                os._exit(70)
        for fd in fds:
            os.close(fd)
        try:
            _send(ctrl, {"seq": req["seq"], "pid": pid})
            _, status = os.waitpid(pid, 0)
            _send(ctrl, {"seq": req["seq"], "exit": os.waitstatus_to_exitcode(status)})
        except OSError:
            os._exit(0)


class Candidate:
    """The judge's handle on its candidate process, forked by a zygote or spawned directly."""

    def __init__(self, workdir, config, ctrl=None, seq=0):
        self.to_r, self.to_w = os.pipe()
        self.from_r, self.from_w = os.pipe()
        env = dict(CLEAN_ENV, HOME=workdir, TMPDIR=workdir)
        self.ctrl, self.seq, self.proc, self.pid, self.code = ctrl, seq, None, None, None
        if ctrl is not None:
            try:
                _send(ctrl, {"seq": seq, "pgid": os.getpgid(0), "workdir": workdir, "env": env,
                             "config": config}, (self.to_r, self.from_w))
                self.pid = self._ctrl_reply("pid", 5.0)
            except (OSError, ValueError):
                self.pid = None
        if self.pid is None:  # no zygote (or it died): a fresh interpreter, slower but the same
            self.ctrl = None
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", os.path.abspath(__file__), "candidate",
                 str(self.to_r), str(self.from_w), config],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(self.to_r, self.from_w), env=env, cwd=workdir)
            self.pid = self.proc.pid
        os.close(self.to_r)
        os.close(self.from_w)

    def _ctrl_reply(self, key, timeout):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.ctrl], [], [], left)[0]:
                return None
            data = self.ctrl.recv(1 << 16)
            if not data:
                raise OSError("zygote gone")
            msg = json.loads(data)
            if msg.get("seq") == self.seq and key in msg:
                return msg[key]

    def exit_code(self, timeout=0.5):
        """Popen-style return code (negative: killed by that signal), or None if still running."""
        if self.proc is not None:
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return None
        if self.code is None:
            try:
                self.code = self._ctrl_reply("exit", timeout)
            except (OSError, ValueError):
                return None
        return self.code

    def close(self):
        for fd in (self.to_w, self.from_r):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass
        if self.proc is not None:
            self.proc.wait()
        else:
            self.exit_code(1.0)  # consume the zygote's exit report for this request


# ----------------------------------------------------------------------------------------------
# Judge: trusted process that runs the tests against proxies of the candidate's functions.


class CandidateGone(BaseException):
    """The candidate process died, broke the protocol, or the deadline passed: stop the tests."""

    def __init__(self, status, feedback):
        super().__init__(feedback)
        self.status, self.feedback = status, feedback


class CandidateRaised(Exception):
    """Raised in the judge when a candidate function raised; carries the candidate's error."""


def _exception_for(info):
    """A judge-side exception of the same builtin type, so tests expecting e.g. ValueError work."""
    cls = getattr(builtins, info["type"], None)
    message = f"{info['message']}"
    if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, OSError):
        try:
            exc = cls(message)
        except Exception:
            exc = CandidateRaised(message)
    else:
        exc = CandidateRaised(message)
    exc._candidate_error = info
    return exc


class Channel:
    """Judge side of the pipes to the candidate process, with the request's deadline."""

    def __init__(self, cand, deadline, label):
        self.cand, self.fd_to, self.fd_from = cand, cand.to_w, cand.from_r
        os.set_blocking(self.fd_to, False)  # a candidate that stops reading cannot stall us
        self.deadline, self.label = deadline, label
        self.buffer = b""
        self.current = "loading the program"

    def request(self, msg):
        data = (json.dumps(msg) + "\n").encode()
        try:
            view = memoryview(data)
            while view:
                _, ready, _ = select.select([], [self.fd_to], [], self._remaining())
                if not ready:
                    self._timeout()
                try:
                    view = view[os.write(self.fd_to, view):]
                except BlockingIOError:
                    continue
        except OSError:  # BrokenPipeError: the candidate process is gone
            self._gone()
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([self.fd_from], [], [], self._remaining())
            if not ready:
                self._timeout()
            chunk = os.read(self.fd_from, 1 << 20)
            if not chunk:
                self._gone()
            self.buffer += chunk
            if len(self.buffer) > MAX_REPLY_BYTES:
                raise CandidateGone("resource_exceeded",
                                    f"{self.current} produced a value larger than "
                                    f"{MAX_REPLY_BYTES // (1024 * 1024)} MiB")
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            return json.loads(line)
        except (ValueError, RecursionError):
            raise CandidateGone("error", f"the candidate process broke the protocol while "
                                         f"{self.current}") from None

    def _remaining(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            self._timeout()
        return left

    def _timeout(self):
        raise CandidateGone("timeout", f"Timed out after {self.label} while {self.current}.")

    def _gone(self):
        code = self.cand.exit_code(0.5)
        if code is not None and code < 0:
            sig = -code
            if sig in (signal.SIGXCPU,):
                raise CandidateGone("timeout", f"CPU time limit hit while {self.current}.")
            if sig in (signal.SIGKILL, signal.SIGXFSZ):
                raise CandidateGone("resource_exceeded",
                                    f"The program was killed ({signal.Signals(sig).name}: "
                                    f"memory or file size limit) while {self.current}.")
            raise CandidateGone("error", f"The program crashed ({signal.Signals(sig).name}) "
                                         f"while {self.current}.")
        if code == 70:  # candidate_main died on an exception of its own making
            raise CandidateGone("error", f"The program broke its own process while "
                                         f"{self.current} (did it patch builtins or modules?).")
        raise CandidateGone("error", f"The program exited (code {code}) while {self.current}; "
                                     f"a solution must return its results, not exit.")


class Proxy:
    """Stands in, inside the judge, for a function defined by the candidate program."""

    def __init__(self, channel, name, display, log):
        self._channel, self._name, self._display, self._log = channel, name, display, log

    def __call__(self, *args, **kwargs):
        call_text = self._display + "(" + ", ".join(
            [short_repr(a, 80) for a in args] + [f"{k}={short_repr(v, 80)}" for k, v in
                                                kwargs.items()]) + ")"
        try:
            enc_args = [encode(a) for a in args]
            enc_kwargs = {k: encode(v) for k, v in kwargs.items()}
        except Unserializable as exc:  # the tests passed something we cannot ship (a lambda)
            raise CandidateGone("error", f"the tests pass a value the sandbox cannot send: {exc}")
        self._channel.current = f"running {call_text}"
        reply = self._channel.request({"op": "call", "name": self._name, "args": enc_args,
                                       "kwargs": enc_kwargs})
        entry = {"call": call_text}
        self._log.append(entry)
        if not reply.get("ok"):
            if reply.get("kind") == "resource":
                raise CandidateGone("resource_exceeded",
                                    f"{call_text} ran out of memory (MemoryError).")
            info = reply.get("error") or {}
            entry["error"] = info
            raise _exception_for(info)
        try:
            value = decode(reply["value"])
            for arg, after in zip(args, reply.get("args_after") or ()):
                _update_in_place(arg, decode(after))
        except (KeyError, ValueError, TypeError, RecursionError):
            raise CandidateGone("error", f"the candidate process broke the protocol in "
                                         f"{call_text}") from None
        entry["returned"] = short_repr(value)
        return value


def _update_in_place(target, new):
    if type(target) is list and type(new) is list:
        target[:] = new
    elif type(target) is dict and type(new) is dict:
        target.clear()
        target.update(new)
    elif type(target) is set and type(new) is set:
        target.clear()
        target.update(new)
    elif type(target) is bytearray and type(new) is bytearray:
        target[:] = new


class InvalidTests(Exception):
    pass


_CASE_TEMPLATE = """
__ad_begin__(CASE)
try:
    __ad_ok__ = bool(TEST)
except BaseException as __ad_exc__:
    __ad_error__(CASE, __ad_exc__)
else:
    __ad_result__(CASE, __ad_ok__)
"""


class _AssertRewriter(ast.NodeTransformer):
    """Turn every non-trivial `assert` into a recorded case; count them."""

    def __init__(self):
        self.count = 0

    def visit_Assert(self, node):
        if isinstance(node.test, ast.Constant) and node.test.value:
            return node  # `assert True, "..."` is not a test case
        case = self.count
        self.count += 1
        test = node.test

        class Fill(ast.NodeTransformer):
            def visit_Name(self, name):
                if name.id == "TEST":
                    return test
                if name.id == "CASE":
                    return ast.Constant(case)
                return name

        block = [Fill().visit(stmt) for stmt in ast.parse(_CASE_TEMPLATE).body]
        for stmt in block:
            ast.copy_location(stmt, node)
            ast.fix_missing_locations(stmt)
        return block


def prepare_tests(tests):
    """Parse and rewrite a test module. Returns (code object, case count, free names)."""
    try:
        tree = ast.parse(tests, "<tests>")
    except SyntaxError as exc:
        raise InvalidTests(f"the tests do not parse: {exc.msg} (line {exc.lineno})") from None
    body = []
    check = None
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            continue  # `check(fn)` / `test_check()` calls: the judge calls check itself
        if isinstance(node, ast.FunctionDef) and node.name == "test_check":
            continue
        if isinstance(node, ast.FunctionDef) and node.name == "check":
            check = node
        body.append(node)
    if check is None:
        raise InvalidTests("the tests define no function `check(candidate)`")
    rewriter = _AssertRewriter()
    check.body = [rewriter.visit(stmt) for stmt in check.body]
    check.body = [s for item in check.body for s in (item if isinstance(item, list) else [item])]
    if rewriter.count == 0:
        raise InvalidTests("`check(candidate)` contains no assert: nothing to test")
    tree.body = body
    ast.fix_missing_locations(tree)
    bound, loaded = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (bound if not isinstance(node.ctx, ast.Load) else loaded).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
    free = sorted(n for n in loaded - bound if not hasattr(builtins, n) and not n.startswith("__ad_"))
    return compile(tree, "<tests>", "exec"), rewriter.count, free


def _feedback_for_error(info, call=None):
    head = f"{info.get('type', 'Error')}: {info.get('message', '')}".rstrip(": ")
    if call:
        head = f"{call} raised {head}"
    tb = info.get("traceback") or ""
    return head + ("\n" + tb if tb else "")


def judge(request, limits, workdir, zygote=None, seq=0):
    """Run one request; return the verdict fields status, passed, total, feedback."""
    timeout_s = float(request.get("timeout_s") or 10.0)
    entry_point = request["entry_point"]
    try:
        code, total, free = prepare_tests(request["tests"])
    except InvalidTests as exc:
        return {"status": "error", "passed": 0, "total": 0, "feedback": f"invalid tests: {exc}"}

    config = json.dumps({"limits": limits, "timeout_s": timeout_s})
    deadline = time.monotonic() + timeout_s
    cand = Candidate(workdir, config, zygote, seq)
    channel = Channel(cand, deadline, f"{timeout_s:g} s")
    results = [None] * total  # None: not run; True: held every time; False: failed at least once
    failures = []  # (case, feedback)
    log = []

    def last_call_text(start):
        calls = log[start:] or log[-1:]
        return calls[-1]["call"] if calls else None

    state = {"start": 0}

    def begin(case):
        state["start"] = len(log)

    def result(case, ok):
        if ok:
            if results[case] is None:
                results[case] = True
            return
        results[case] = False
        call = last_call_text(state["start"])
        if call:
            entry = (log[state["start"]:] or log[-1:])[-1]
            text = f"{call} returned {entry.get('returned', '?')}, which does not satisfy the test"
        else:
            text = "an assertion failed"
        failures.append((case, text))

    def error(case, exc):
        if isinstance(exc, CandidateGone):
            raise exc
        results[case] = False
        info = getattr(exc, "_candidate_error", None)
        if info is not None:
            failures.append((case, _feedback_for_error(info, last_call_text(state["start"]))))
        else:
            call = last_call_text(state["start"])
            what = f"after {call} returned {log[-1].get('returned', '?')}, " if call else ""
            failures.append((case, f"{what}the test raised {type(exc).__name__}: "
                                   f"{short_repr(str(exc), 200)}"))

    try:
        try:
            reply = channel.request({"op": "load", "code": request["code"]})
            if not reply.get("ok"):
                info = reply.get("error") or {}
                kind = reply.get("kind")
                status = {"syntax_error": "syntax_error", "resource": "resource_exceeded"}.get(
                    kind, "error")
                return {"status": status, "passed": 0, "total": total,
                        "feedback": "While loading the program: " + _feedback_for_error(info)}
            namespace = {"__name__": "__tests__", "__builtins__": builtins,
                         "__ad_begin__": begin, "__ad_result__": result, "__ad_error__": error}
            for name in sorted(set(free) | {entry_point}):
                channel.current = f"looking up {name}"
                got = channel.request({"op": "get", "name": name})
                if got.get("kind") == "function":
                    namespace[name] = Proxy(channel, name, name, log)
                elif got.get("kind") == "value":
                    namespace[name] = decode(got["value"])
            entry = namespace.get(entry_point)
            if not isinstance(entry, Proxy):
                return {"status": "error", "passed": 0, "total": total,
                        "feedback": f"NameError: the program does not define a function "
                                    f"`{entry_point}`"}
            aborted = None
            exec(code, namespace)
            try:
                namespace["check"](entry)
            except CandidateGone:
                raise
            except BaseException as exc:  # a statement outside any assert failed: later cases lost
                info = getattr(exc, "_candidate_error", None)
                call = log[-1]["call"] if log else None
                aborted = (_feedback_for_error(info, call) if info is not None else
                           f"the test raised {type(exc).__name__}: {short_repr(str(exc), 200)}"
                           + (f" after {call}" if call else ""))
        except CandidateGone as gone:
            passed = sum(1 for r in results if r)
            return {"status": gone.status, "passed": passed, "total": total,
                    "feedback": gone.feedback}
        except RecursionError:
            return {"status": "error", "passed": 0, "total": total,
                    "feedback": "the value returned is nested too deeply to check"}
    finally:
        cand.close()

    if aborted is None:
        # the tests ran to the end: a case their own control flow never reached (an `assert False`
        # after an expected exception) did not fail, as in the reference harnesses
        passed = sum(1 for r in results if r is not False)
    else:
        passed = sum(1 for r in results if r)
    if aborted is None and passed == total:
        return {"status": "passed", "passed": passed, "total": total, "feedback": ""}
    failed_n = total - passed
    parts = [f"{failed_n} of {total} test cases failed."]
    if failures:
        parts.append(f"First failure: {failures[0][1]}")
    if aborted:
        parts.append(f"The tests stopped early: {aborted}")
    return {"status": "failed", "passed": passed, "total": total,
            "feedback": "\n".join(parts)[:FEEDBACK_CHARS]}


# ----------------------------------------------------------------------------------------------
# Batch: the runner forks one judge per request, several at once, and enforces deadlines.


def _sweep_tmp(keep):
    for name in os.listdir("/tmp") if os.path.isdir("/tmp") else ():
        path = os.path.join("/tmp", name)
        if path in keep:
            continue
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        except OSError:
            pass


def _kill_strays():
    """Kill every process of our user but us and our ancestors (leftovers of earlier batches)."""
    me, uid = os.getpid(), os.getuid()
    keep = set()
    pid = me
    while pid > 1:
        keep.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    keep.add(1)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in keep:
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid == uid:
                os.kill(int(entry), signal.SIGKILL)
        except OSError:
            pass


def _verdict(request_id, fields, duration):
    out = {"id": request_id, "status": fields["status"], "passed": fields["passed"],
           "total": fields["total"], "feedback": fields["feedback"][:FEEDBACK_CHARS],
           "duration_s": round(duration, 4)}
    return out


def _judge_child(request, limits, workdir, fd, zygote, seq):
    """Body of the forked judge process: write the verdict fields as JSON to fd and exit."""
    try:
        fields = judge(request, limits, workdir, zygote, seq)
    except BaseException as exc:  # a bug in the judge must still yield a verdict, never a pass
        fields = {"status": "error", "passed": 0, "total": 0,
                  "feedback": f"sandbox judge failed: {type(exc).__name__}: {exc}"}
    data = json.dumps(fields).encode()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os._exit(0)


def run_batch(requests, limits, workers, out, confined=True, workroot="/tmp"):
    """Judge `requests`, writing verdict lines to `out` in request order.

    confined: we are the sandbox user inside the container, so leftovers of our user and everything
    in the tmpfs may be swept.  Never set it outside the container.
    """
    try:
        _prctl(4, 0)  # PR_SET_DUMPABLE=0: no same-user process may trace us or read our memory
        _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphaned grandchildren come back to us to reap
    except OSError:
        pass
    if confined:
        _kill_strays()
        _sweep_tmp(set())
    pending = list(range(len(requests)))[::-1]
    running = {}  # read fd -> dict(index, pid, slot, started, deadline, chunks)
    done = {}
    next_out = 0
    base = os.path.join(workroot, "ad")
    zygotes = {}  # slot -> (control socket, pid)
    free_slots = list(range(workers))

    def zygote_for(slot):
        if slot not in zygotes:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", os.path.abspath(__file__), "zygote",
                 str(theirs.fileno())], pass_fds=(theirs.fileno(),), env=CLEAN_ENV, cwd="/",
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            theirs.close()
            zygotes[slot] = (ours, proc.pid)
        return zygotes[slot][0]

    def start(index, seq):
        request = requests[index]
        slot = free_slots.pop()
        ctrl = zygote_for(slot)
        workdir = f"{base}-{os.getpid()}-{index}"
        os.mkdir(workdir, 0o700)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            for other in list(running) + [z[0].fileno() for s_, z in zygotes.items() if s_ != slot]:
                os.close(other)
            os.setpgid(0, 0)
            _judge_child(request, limits, workdir, w, ctrl, seq)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass
        os.close(w)
        timeout_s = float(request.get("timeout_s") or 10.0)
        now = time.monotonic()
        running[r] = {"index": index, "pid": pid, "slot": slot, "started": now,
                      "workdir": workdir, "deadline": now + timeout_s + GRACE_S,
                      "timeout_s": timeout_s, "chunks": []}

    def finish(r, fields):
        job = running.pop(r)
        os.close(r)
        for _ in range(3):
            try:
                os.killpg(job["pid"], signal.SIGKILL)
            except ProcessLookupError:
                break
        try:
            os.waitpid(job["pid"], 0)
        except ChildProcessError:
            pass
        free_slots.append(job["slot"])
        shutil.rmtree(job["workdir"], ignore_errors=True)
        if confined:
            _sweep_tmp({j["workdir"] for j in running.values()})
        done[job["index"]] = _verdict(requests[job["index"]].get("id"), fields,
                                      time.monotonic() - job["started"])

    while pending or running:
        while pending and len(running) < workers:
            index = pending.pop()
            request = requests[index]
            if "_invalid" in request:
                done[index] = _verdict(request.get("id"), {
                    "status": "error", "passed": 0, "total": 0,
                    "feedback": request["_invalid"]}, 0.0)
                continue
            start(index, index)
        if running:
            now = time.monotonic()
            wait = max(0.0, min(job["deadline"] for job in running.values()) - now)
            ready, _, _ = select.select(list(running), [], [], wait)
            for r in ready:
                chunk = os.read(r, 1 << 16)
                if chunk:
                    running[r]["chunks"].append(chunk)
                    continue
                data = b"".join(running[r]["chunks"])
                try:
                    fields = json.loads(data)
                    assert fields["status"] in STATUSES
                except Exception:
                    fields = {"status": "error", "passed": 0, "total": 0,
                              "feedback": "the sandbox judge died before giving a verdict"}
                finish(r, fields)
            now = time.monotonic()
            for r in [r for r, job in running.items() if job["deadline"] <= now]:
                job = running[r]
                finish(r, {"status": "timeout", "passed": 0, "total": 0,
                           "feedback": f"Timed out after {job['timeout_s']:g} s."})
        while True:  # reap orphans handed to us as subreaper
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            for slot, (ctrl, zpid) in list(zygotes.items()):
                if zpid == pid:  # a zygote died: the next judge of its slot gets a new one
                    ctrl.close()
                    del zygotes[slot]
        while next_out in done:
            out.write(json.dumps(done.pop(next_out)) + "\n")
            out.flush()
            next_out += 1
    for ctrl, zpid in zygotes.values():
        ctrl.close()
        try:
            os.kill(zpid, signal.SIGKILL)
            os.waitpid(zpid, 0)
        except OSError:
            pass
    if confined:
        _kill_strays()
        _sweep_tmp(set())


def parse_request_line(line):
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise ValueError("not a JSON object")
        for field in ("code", "tests", "entry_point"):
            if not isinstance(request.get(field), str):
                raise ValueError(f"field {field!r} must be a string")
        return request
    except ValueError as exc:
        rid = request.get("id") if isinstance(locals().get("request"), dict) else None
        return {"id": rid, "_invalid": f"malformed request: {exc}"}


def main(argv):
    if not argv:
        print("usage: runner.py batch|init", file=sys.stderr)
        return 2
    mode = argv[0]
    if mode == "zygote":
        zygote_main(int(argv[1]))
        return 0
    if mode == "candidate":
        candidate_main(int(argv[1]), int(argv[2]), argv[3])
        return 0
    if mode == "init":
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        signal.signal(signal.SIGINT, lambda *_: os._exit(0))
        while True:
            try:
                os.wait()
            except ChildProcessError:
                time.sleep(1.0)
    if mode == "batch":
        limits = dict(DEFAULT_LIMITS)
        workers = os.cpu_count() or 1
        confined, workroot = False, "/tmp"
        args = argv[1:]
        while args:
            flag, value = args[0], args[1]
            args = args[2:]
            if flag == "--workers":
                workers = max(1, int(value))
            elif flag == "--confined":
                # only the sandbox user inside the container may sweep its user's processes/tmpfs
                confined = value == "1" and os.getuid() != 0
            elif flag == "--workroot":
                workroot = value
            elif flag.startswith("--") and flag[2:].replace("-", "_") in limits:
                limits[flag[2:].replace("-", "_")] = int(value)
            else:
                print(f"unknown option {flag}", file=sys.stderr)
                return 2
        requests = [parse_request_line(line) for line in sys.stdin if line.strip()]
        run_batch(requests, limits, workers, sys.stdout, confined, workroot)
        return 0
    print(f"unknown mode {mode!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
