"""The candidate side: a fork server per worker slot, and the confined process that runs a program.

Fork server (`zygote`): a fresh root interpreter per slot that holds no request's data.  A judge
sends it two pipe ends over a unix socket (SCM_RIGHTS); it forks, and the child confines itself
(confinement.py: private namespaces, the slot's uid, rlimits, seccomp) before it reads a single
byte of the program.  Forking costs ~1 ms where a new interpreter costs ~50 ms, and a fork of the
zygote cannot carry another request's tests or code: it never had them.

Candidate process: loads the program into a module of its own (`__candidate__`, registered in
sys.modules so pickling by reference works, e.g. multiprocessing.Pool), then answers the judge:

    load, get NAME                       the program, and the names the tests take from it
    call, getattr, setattr, iter, next,  what the tests do with candidate functions and objects
    len, bool, str, repr, getitem,       (binop and compare only between two of its objects:
    setitem, delitem, binop, compare     judge.py's `Remote` refuses the tests' values there)
    run                                  (the `programs` mode, program.py, never a judge) run a
                                         whole program, answer with what it printed

It may itself ask the judge only `call` (a function the tests passed it) and `next` (an iterator
the tests passed it).  Every reply carries plain values or handles (codec.py).
"""

from __future__ import annotations

import builtins
import json
import linecache
import mmap
import operator
import os
import socket
import sys
import traceback
import types

from .codec import exception_chain, short_repr
from .protocol import Endpoint, PeerGone

SOURCE_NAME = "<candidate>"
MODULE_NAME = "__candidate__"
BINARY_OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
              "truediv": operator.truediv, "floordiv": operator.floordiv, "mod": operator.mod,
              "pow": operator.pow, "and": operator.and_, "or": operator.or_,
              "xor": operator.xor, "lshift": operator.lshift, "rshift": operator.rshift,
              "matmul": operator.matmul}
COMPARISONS = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
               "gt": operator.gt, "ge": operator.ge}


# ----------------------------------------------------------------------------------------------
# What an exception looks like on the wire


def error_info(exc: BaseException, endpoint: "Endpoint | None" = None) -> dict:
    """Type, message, traceback tail inside the candidate's code, and how to rebuild it."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == SOURCE_NAME]
    tail = "".join(traceback.format_list(frames[-3:])).rstrip()
    try:
        message = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    except Exception:  # a hostile __str__
        message = "<unprintable>"
    info = {"type": str(type(exc).__name__)[:80], "message": str(message)[:500],
            "traceback": tail[-800:]}
    if endpoint is not None:
        info["chain"] = [[name, builtin, None if builtin else endpoint.handle_id(klass)]
                         for (name, builtin), klass in zip(exception_chain(type(exc)),
                                                           type(exc).__mro__)]
        if isinstance(exc, OSError):
            info["oserror"] = [exc.errno if type(exc.errno) is int else None,
                               str(exc.strerror) if exc.strerror is not None else None,
                               _plain_text(exc.filename), _plain_text(exc.filename2)]
        else:
            try:
                info["args"] = endpoint.encode(tuple(exc.args))
            except Exception:  # arguments that cannot travel: the message still does
                info["args"] = None
    return info


def _plain_text(value):
    return value if type(value) in (str, int) else None


def rebuild_exception(info: dict) -> BaseException:
    """A candidate-side exception for an error the judge reported (a callback raised)."""
    name = info.get("type", "Exception")
    cls = getattr(builtins, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        cls = RuntimeError
    return cls(info.get("message", ""))


# ----------------------------------------------------------------------------------------------
# Proxies for what the tests handed the candidate: callable and iterable, nothing more


class JudgeFunction:
    """A function the tests passed (a key, a predicate, a callback): calling it asks the judge."""

    __slots__ = ("_endpoint", "_hid", "_name")

    def __init__(self, endpoint, hid, name):
        self._endpoint, self._hid, self._name = endpoint, hid, name

    def __call__(self, *args, **kwargs):
        reply = self._endpoint.request({"op": "call", "h": self._hid,
                                        "a": self._endpoint.encode(list(args)),
                                        "k": self._endpoint.encode(kwargs)})
        if reply.get("ok"):
            return self._endpoint.decode(reply["v"])
        raise rebuild_exception(reply.get("exc") or {})

    def __repr__(self):
        return f"<function {self._name} of the tests>"


class JudgeIterator:
    """An iterator the tests passed: each `next` asks the judge."""

    __slots__ = ("_endpoint", "_hid")

    def __init__(self, endpoint, hid):
        self._endpoint, self._hid = endpoint, hid

    def __iter__(self):
        return self

    def __next__(self):
        reply = self._endpoint.request({"op": "next", "h": self._hid})
        if reply.get("ok"):
            return self._endpoint.decode(reply["v"])
        if reply.get("stop"):
            raise StopIteration
        raise rebuild_exception(reply.get("exc") or {})


class JudgeObject:
    """Any other object of the tests: it can only be handed back to them."""

    __slots__ = ("_hid", "_typename")

    def __init__(self, hid, typename):
        self._hid, self._typename = hid, typename

    def __repr__(self):
        return f"<{self._typename} of the tests>"


# ----------------------------------------------------------------------------------------------
# The candidate's endpoint


class CandidateEndpoint(Endpoint):
    owner = "c"

    def __init__(self, fd_in, fd_out):
        super().__init__(fd_in, fd_out)
        self.module = types.ModuleType(MODULE_NAME)
        self.module.__builtins__ = builtins
        sys.modules[MODULE_NAME] = self.module
        self.namespace = self.module.__dict__

    def kind_of(self, obj):
        if isinstance(obj, type):
            if issubclass(obj, BaseException):
                return "exc_class", [[name, builtin, None if builtin else self.handle_id(k)]
                                     for (name, builtin), k in zip(exception_chain(obj),
                                                                   obj.__mro__)]
            return "class", None
        return super().kind_of(obj)

    def proxy(self, hid, kind, typename, extra):
        if kind == "callable":
            return JudgeFunction(self, hid, typename)
        if kind == "iterator":
            return JudgeIterator(self, hid)
        return JudgeObject(hid, typename)

    def target(self, msg):
        hid = msg.get("h")
        if hid not in self.exported:
            raise LookupError(f"unknown handle {hid!r}")
        return self.exported[hid]

    def serve(self, msg: dict) -> dict:
        op = msg.get("op")
        try:
            if op == "load":
                return self.load(msg["code"])
            if op == "run":
                return self.run(msg["code"], msg["max_output"])
            if op == "get":
                name = msg["name"]
                if type(name) is not str or name.startswith("__") or name not in self.namespace:
                    return {"re": 1, "ok": True, "missing": True}
                return {"re": 1, "ok": True, "v": self.encode(self.namespace[name])}
            if op == "call":
                return self.call(self.target(msg), msg)
            if op == "next":
                try:
                    value = next(self.target(msg))
                except StopIteration:
                    return {"re": 1, "ok": False, "stop": True}
                return {"re": 1, "ok": True, "v": self.encode(value)}
            obj = self.target(msg)
            if op == "getattr":
                value = getattr(obj, _attr(msg["name"]))
            elif op == "setattr":
                setattr(obj, _attr(msg["name"]), self.decode(msg["v"]))
                value = None
            elif op == "iter":
                value = iter(obj)
            elif op == "len":
                value = len(obj)
            elif op == "bool":
                value = bool(obj)
            elif op == "hash":
                value = hash(obj)
            elif op == "str":
                value = str(obj)
            elif op == "repr":
                value = repr(obj)
            elif op == "getitem":
                value = obj[self.decode(msg["k"])]
            elif op == "setitem":
                obj[self.decode(msg["k"])] = self.decode(msg["v"])
                value = None
            elif op == "delitem":
                del obj[self.decode(msg["k"])]
                value = None
            elif op == "binop":  # (the judge asks only when both operands are the program's)
                other = self.decode(msg["other"])
                fn = BINARY_OPS[msg["name"]]
                value = fn(other, obj) if msg.get("reflected") else fn(obj, other)
            elif op == "compare":  # (likewise)
                value = COMPARISONS[msg["name"]](obj, self.decode(msg["other"]))
            else:
                raise LookupError(f"unknown operation {op!r}")
            return {"re": 1, "ok": True, "v": self.encode(value)}
        except PeerGone:
            raise
        except MemoryError:
            return {"re": 1, "ok": False, "fatal": "resource"}
        except BaseException as exc:  # SystemExit and KeyboardInterrupt are the program's errors
            return {"re": 1, "ok": False, "exc": error_info(exc, self)}

    def load(self, source: str) -> dict:
        linecache.cache[SOURCE_NAME] = (len(source), None, source.splitlines(True), SOURCE_NAME)
        try:
            code = compile(source, SOURCE_NAME, "exec")
        except (SyntaxError, ValueError) as exc:  # ValueError: null bytes
            info = error_info(exc)
            if isinstance(exc, SyntaxError):
                info["traceback"] = f"line {exc.lineno}: {(exc.text or '').rstrip()}"
            return {"re": 1, "ok": False, "syntax": True, "exc": info}
        exec(code, self.namespace)
        return {"re": 1, "ok": True}

    def run(self, source: str, max_output: int) -> dict:
        """Run a whole program in the module, with `sys.stdout` kept in memory: the reply
        carries what it printed (at most `max_output` characters: beyond, "fatal": "output")
        and, when it raised, the exception."""
        out = BoundedOutput(max_output)
        reply = self.load_printing(source, out)
        if out.full:  # however the program met the limit, even if it caught OutputFull
            return {"re": 1, "ok": False, "fatal": "output", "stdout": ""}
        reply["stdout"] = out.getvalue()
        return reply

    def load_printing(self, source: str, out: "BoundedOutput") -> dict:
        saved = sys.stdout
        sys.stdout = out
        self.namespace["__name__"] = "__main__"  # a script: its `if __name__ == "__main__":` runs
        sys.modules["__main__"] = self.module  # and dataclasses, pickle find it there
        try:
            return self.load(source)
        except SystemExit as exc:
            if exc.code is None or exc.code == 0:  # `sys.exit()`: the program ended normally
                return {"re": 1, "ok": True}
            return {"re": 1, "ok": False, "exc": error_info(exc)}
        except MemoryError:
            return {"re": 1, "ok": False, "fatal": "resource"}
        except BaseException as exc:  # SystemExit too: the program ended early
            return {"re": 1, "ok": False, "exc": error_info(exc)}
        finally:
            sys.stdout = saved

    def call(self, fn, msg) -> dict:
        """Call `fn` with the judge's arguments, sent as one value `[args, kwargs]`.  The reply
        carries the value (or the exception) and, for each argument changed in place, positional
        or keyword (numbered in that order), its new state (`after`), also when the call raised;
        both mark which of their containers are the very ones the judge sent (`encode_back`), so
        the judge changes its own objects, which every alias the tests hold then sees."""
        sent, nodes = self.decode_sent(msg["a"])
        if (type(sent) is not list or len(sent) != 2 or type(sent[0]) is not list
                or type(sent[1]) is not dict):
            raise TypeError("malformed call")
        args, kwargs = sent
        given = [*args, *kwargs.values()]
        before = [self.encode(a) for a in given]
        try:
            result = fn(*args, **kwargs)
        except (PeerGone, MemoryError):
            raise
        except BaseException as exc:  # as serve() reports it, with the write-back
            reply = {"re": 1, "ok": False, "exc": error_info(exc, self)}
        else:
            reply = {"re": 1, "ok": True, **self.encode_back(result, nodes, args)}
        after = {}
        for i, (arg, was) in enumerate(zip(given, before)):
            now = self.encode_back(arg, nodes)
            if now["v"] != was:  # changed in place: the judge updates its own object
                after[str(i)] = now
        if after:
            reply["after"] = after
        return reply


class OutputFull(BaseException):
    """A program printed more than its `max_output` characters."""


class BoundedOutput:
    """`sys.stdout` of a program the `run` op runs: text kept in memory, up to a limit."""

    def __init__(self, limit: int):
        self.limit, self.size, self.parts, self.full = limit, 0, [], False

    def write(self, text) -> int:
        if type(text) is not str:
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.size += len(text)
        if self.size > self.limit:
            self.full = True
            raise OutputFull(f"the program printed more than {self.limit} characters")
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def getvalue(self) -> str:
        return "".join(self.parts)


def _attr(name) -> str:
    if type(name) is not str or not name.isidentifier():
        raise AttributeError(f"bad attribute name {short_repr(name)}")
    return name


def candidate_main(fd_in: int, fd_out: int, signals_sent=None) -> None:
    """Answer the judge until it closes the pipe.  Confinement is already in place."""
    if signals_sent is not None:
        watch_own_signals(signals_sent)
    endpoint = CandidateEndpoint(fd_in, fd_out)
    try:
        while True:
            msg = endpoint.receive()
            endpoint.send(endpoint.serve(msg))
    except PeerGone:
        pass
    os._exit(0)


_SIGNAL_EVENTS = frozenset({"os.kill", "os.killpg", "signal.pthread_kill"})


def watch_own_signals(mask) -> None:
    """Mark in `mask` (8 bytes of memory shared with the fork server, bit s-1 for signal s) each
    signal the program sends to this process through os.kill, os.killpg or signal.pthread_kill
    (Python's audit events, seen in the processes it forks too): to itself, its process group,
    or every process it may signal.  When this process then dies of such a signal, the judge
    says the program killed itself, not that a limit did (judge.gone_verdict).  Signals sent
    other ways (signal.raise_signal, a shell's `kill`, ctypes) are not seen."""
    me = os.getpid()

    def hook(event, args):
        if event not in _SIGNAL_EVENTS:
            return
        try:
            target, sig = int(args[0]), int(args[1])
            group = os.getpgid(me)  # now: the program may have moved it (os.setsid, setpgid)
            ours = os.getpgrp() == group
            if event == "os.kill":  # (-1 spares the caller: it hits us from another process)
                hits = (target in (me, -group) or (target == 0 and ours)
                        or (target == -1 and os.getpid() != me))
            elif event == "os.killpg":
                hits = target == group or (target == 0 and ours)
            else:  # pthread_kill: a thread of the calling process
                hits = os.getpid() == me
            if hits and 0 < sig <= 64:
                mask[(sig - 1) // 8] |= 1 << ((sig - 1) % 8)
        except Exception:
            pass

    sys.addaudithook(hook)


def signals_marked(mask) -> list[int]:
    bits = int.from_bytes(mask[:8], "little")
    return [s for s in range(1, 65) if bits >> (s - 1) & 1]


# ----------------------------------------------------------------------------------------------
# The fork server


EXIT_BROKEN, EXIT_UNCONFINED = 70, 71  # the program broke its process / confinement failed


def _infra_reply(fd: int, message: str) -> None:
    """Answer the judge's first request (load) with the reason, so its verdict names it."""
    try:
        os.write(fd, (json.dumps({"re": 1, "ok": False, "infra": message[:500]}) + "\n").encode())
    except OSError:
        pass


def zygote_main(ctrl_fd: int) -> None:
    """Serve fork requests from judges: {"seq", "slot", "config"} plus two fds (read, write).

    Reports {"seq", "pid"} after the fork and {"seq", "exit", "sent"} when the child ends: its
    exit code, and the signals the program sent itself (watch_own_signals)."""
    from . import confinement

    confinement.set_dumpable(False)
    ctrl = socket.socket(fileno=ctrl_fd)
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(ctrl, 1 << 16, 2)
        except OSError:
            os._exit(0)
        if not data or len(fds) != 2:
            os._exit(0)
        req = json.loads(data)
        sent = mmap.mmap(-1, 8)  # shared with the child: the signals it sends itself
        pid = os.fork()
        if pid == 0:
            ctrl.close()
            try:
                confinement.confine(req["config"])
            except BaseException as exc:  # the sandbox's failure, never the program's
                _infra_reply(fds[1], f"the sandbox could not confine the candidate process: "
                                     f"{type(exc).__name__}: {exc}")
                os._exit(EXIT_UNCONFINED)
            try:
                candidate_main(fds[0], fds[1], sent)
            finally:
                os._exit(EXIT_BROKEN)
        for fd in fds:
            os.close(fd)
        try:
            socket.send_fds(ctrl, [json.dumps({"seq": req["seq"], "pid": pid}).encode()], [])
            _, status = os.waitpid(pid, 0)
            socket.send_fds(ctrl, [json.dumps({"seq": req["seq"],
                                               "exit": os.waitstatus_to_exitcode(status),
                                               "sent": signals_marked(sent)}).encode()], [])
        except OSError:
            os._exit(0)
        finally:
            sent.close()
