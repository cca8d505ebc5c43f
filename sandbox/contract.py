"""The sandbox contract: what goes in (a request) and what comes out (a verdict).

A request is one candidate program with its tests:

    {"id": "HumanEval/0", "code": "<full program>", "tests": "def check(candidate): ...",
     "entry_point": "has_close_elements", "timeout_s": 10, "context": "<trusted code>",
     "held_out": 0.0, "shown": []}

`code` is the whole candidate program (prompt + completion); `tests` defines `check(candidate)`,
and every `assert` inside it is one test case.  `timeout_s` (optional, default 10) bounds the
whole evaluation of that request: loading the program and running every case.  `context`
(optional) is trusted code the judge executes itself before the tests, typically the helper
functions a problem's prompt defines (HumanEval's `poly`, `encode_cyclic`): names the tests use
from it are bound from it, never from the candidate program.  `held_out` (optional, default 0,
0 <= held_out < 1) is the fraction of the cases whose failures the feedback never describes:
round(held_out * cases) of them, at least one when held_out > 0, never all (with fewer than two
cases, none); which ones depends only on the tests (sandbox.runner.judge.held_out_sites), so every
candidate of a problem meets the same ones.  `shown` (optional, default []) lists the cases the
prompt shows as examples, as site indices: the i-th assert of `check`, counting from 0 and
skipping `assert <true constant>` (sandbox.runner.judge.prepare_tests).  A shown case is never
held out (its expected value is in the prompt); the count is then taken over the other cases:
round(held_out * others), at least one, and at most all the others, since the shown cases stay
visible.  Without shown cases (or with indices beyond the last case, which show nothing), the
held-out cases are the same as without the field.

A verdict answers one request, in the same order:

    {"id": "HumanEval/0", "status": "passed", "passed": 7, "total": 7, "feedback": "",
     "duration_s": 0.021, "held_out_passed": 2, "held_out_total": 2}

status is one of: passed (every case ran and held), failed (the program loaded, some case did not
hold), error (the program raised while loading, lacks the entry point, crashed or exited),
syntax_error, timeout, resource_exceeded (memory, file size or value size limits), and
sandbox_error: the sandbox itself failed (a runner that stopped answering twice, a process it
could not confine); never the candidate's fault, and never trained on (tasks/execution.py raises).
`passed` counts only cases that ran to the end: a verdict other than passed has passed < total.
`held_out_passed` / `held_out_total` count the held-out cases alone, by the same rules (0 / 0
without held-out cases).  `feedback` is what self-debug shows the model: exception type and
message, the tail of the traceback inside the candidate's code, and the call that failed and what
it returned, never the expected value.  So a returned bool is not shown ("f(3) returned a value
that does not satisfy the test"): the expected value would be the other one.  A failing held-out
case is never described (no call, no value, no exception text); when only held-out cases failed,
the feedback says how many cases failed and that those are held out.
"""

from __future__ import annotations

import ast
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from sandbox.runner.protocol import (  # noqa: F401  (the runner writes them: their home)
    DEFAULT_MAX_OUTPUT, PROGRAM_STATUSES, STATUSES)

DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 600.0


class RequestError(ValueError):
    """A request that cannot be judged: the message names the request (and line) and the fix."""


@dataclass(frozen=True)
class Request:
    id: str
    code: str
    tests: str
    entry_point: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    context: str = ""
    held_out: float = 0.0
    shown: tuple[int, ...] = ()  # site indices the prompt shows: never held out

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass(frozen=True)
class Verdict:
    id: str
    status: str
    passed: int
    total: int
    feedback: str
    duration_s: float
    held_out_passed: int = 0
    held_out_total: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    @property
    def reward(self) -> float:
        """Fraction of test cases passed: the execution reward."""
        return self.passed / self.total if self.total else 0.0

    @property
    def held_out_reward(self) -> float:
        """Fraction of the held-out test cases passed: what feedback could not have taught.
        Without held-out cases (held_out_total == 0) it is `reward`, over every case."""
        return self.held_out_passed / self.held_out_total if self.held_out_total else self.reward

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def make_request(obj: object, where: str) -> Request:
    """Validate one decoded request object; `where` names it in errors (e.g. 'requests.jsonl:3')."""
    if not isinstance(obj, dict):
        raise RequestError(f"{where}: a request must be a JSON object, got {type(obj).__name__}")
    known = {"id", "code", "tests", "entry_point", "timeout_s", "context", "held_out", "shown"}
    unknown = sorted(set(obj) - known)
    if unknown:
        raise RequestError(f"{where}: unknown field(s) {unknown}; a request has {sorted(known)}")
    for field in ("id", "code", "tests", "entry_point"):
        if field not in obj:
            raise RequestError(f"{where}: missing field {field!r}")
        if not isinstance(obj[field], str):
            raise RequestError(f"{where}: field {field!r} must be a string, "
                               f"got {type(obj[field]).__name__}")
    if not obj["entry_point"].isidentifier():
        raise RequestError(f"{where}: field 'entry_point' must be a Python identifier, "
                           f"got {obj['entry_point']!r}")
    timeout = obj.get("timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (
            0 < timeout <= MAX_TIMEOUT_S):
        raise RequestError(f"{where}: field 'timeout_s' must be a number in (0, {MAX_TIMEOUT_S:g}]"
                           f", got {timeout!r}")
    held_out = obj.get("held_out", 0.0)
    if isinstance(held_out, bool) or not isinstance(held_out, (int, float)) or not (
            0 <= held_out < 1):
        raise RequestError(f"{where}: field 'held_out' must be a fraction of the test cases in "
                           f"[0, 1), got {held_out!r}")
    shown = obj.get("shown", [])
    if not isinstance(shown, (list, tuple)) or not all(
            type(site) is int and site >= 0 for site in shown):
        raise RequestError(f"{where}: field 'shown' must be a list of test case (assert site) "
                           f"indices, ints >= 0, got {shown!r}")
    check_tests(obj["tests"], where)
    context = obj.get("context", "")
    if not isinstance(context, str):
        raise RequestError(f"{where}: field 'context' must be a string, "
                           f"got {type(context).__name__}")
    try:
        compile(context, "<context>", "exec")
    except SyntaxError as exc:
        raise RequestError(f"{where}: field 'context' is not valid Python: {exc.msg} "
                           f"(line {exc.lineno})") from None
    return Request(obj["id"], obj["code"], obj["tests"], obj["entry_point"], float(timeout),
                   context, float(held_out), tuple(shown))


def check_tests(tests: str, where: str) -> None:
    """The tests are trusted input: reject ones that cannot judge anything, naming the fix."""
    try:
        tree = ast.parse(tests)
    except SyntaxError as exc:
        raise RequestError(f"{where}: field 'tests' is not valid Python: {exc.msg} "
                           f"(line {exc.lineno})") from None
    checks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if not checks:
        raise RequestError(f"{where}: field 'tests' must define a function check(candidate)")
    if not any(isinstance(n, ast.Assert) for n in ast.walk(checks[0])):
        raise RequestError(f"{where}: check(candidate) in field 'tests' contains no assert; each "
                           f"assert is one test case")


def read_requests(path: str | Path) -> list[Request]:
    """Read a requests JSONL file; a malformed line is an error naming the file and line."""
    path = Path(path)
    requests = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RequestError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})"
                                   ) from None
            requests.append(make_request(obj, where))
    return requests


def verdict_from_json(line: str) -> Verdict:
    obj = json.loads(line)
    if obj.get("status") not in STATUSES:
        raise ValueError(f"the sandbox returned an unknown status: {obj.get('status')!r}")
    return Verdict(str(obj["id"]), obj["status"], int(obj["passed"]), int(obj["total"]),
                   str(obj["feedback"]), float(obj["duration_s"]),
                   int(obj.get("held_out_passed", 0)), int(obj.get("held_out_total", 0)))


# ---------------------------------------------------------------------------------------------
# Programs: trusted code run isolated, for what it prints (sandbox/runner/program.py)


@dataclass(frozen=True)
class Program:
    """A program to run in the sandbox, confined like a candidate, for what it prints: code we
    trust to be what we mean (a problem set's reference solution and input generator, wrapped by
    its builder) but will not run on the host.  `timeout_s` bounds the whole run (wall clock and
    CPU); `max_output` the characters of `sys.stdout` kept (beyond: resource_exceeded)."""

    id: str
    code: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_output: int = DEFAULT_MAX_OUTPUT

    def __post_init__(self):
        if not isinstance(self.id, str) or not isinstance(self.code, str):
            raise RequestError(f"program {self.id!r}: id and code must be strings")
        if isinstance(self.timeout_s, bool) or not isinstance(self.timeout_s, (int, float)) or \
                not 0 < self.timeout_s <= MAX_TIMEOUT_S:
            raise RequestError(f"program {self.id!r}: timeout_s must be a number in "
                               f"(0, {MAX_TIMEOUT_S:g}], got {self.timeout_s!r}")
        if type(self.max_output) is not int or self.max_output < 1:
            raise RequestError(f"program {self.id!r}: max_output must be a positive int, got "
                               f"{self.max_output!r}")

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass(frozen=True)
class Output:
    """What one program did: `status` (PROGRAM_STATUSES: ok, error, syntax_error, timeout,
    resource_exceeded, sandbox_error), what it printed (also when it failed), and for a program
    that did not end well, why (`error`: the exception and the tail of its traceback)."""

    id: str
    status: str
    stdout: str
    error: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def output_from_json(line: str) -> Output:
    obj = json.loads(line)
    if obj.get("status") not in PROGRAM_STATUSES:
        raise ValueError(f"the sandbox returned an unknown program status: {obj.get('status')!r}")
    return Output(str(obj["id"]), obj["status"], str(obj.get("stdout", "")),
                  str(obj.get("error", "")), float(obj["duration_s"]))
