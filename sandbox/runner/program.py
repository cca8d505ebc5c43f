"""The `programs` mode: run trusted-but-isolated programs and give back what they printed.

A problem set that makes its tests from reference solutions (tasks/problems/codeio.py) must run
code it did not write (the reference, its input generator) and read the result: never on the
host, so here.  Each program gets exactly what a candidate gets (batch.py, confinement.py): its
own process forked from its slot's fork server, the slot's uid, CPU and private namespaces,
rlimits, the seccomp allowlist, and the request's wall-clock `timeout_s`.

    {"id": "p1", "code": "print(6 * 7)", "timeout_s": 10, "max_output": 1048576}
      -> {"id": "p1", "status": "ok", "stdout": "42\\n", "error": "", "duration_s": 0.004}

The program runs as a script (`__name__ == "__main__"`) with `sys.stdout` kept in memory, at
most `max_output` characters of it (default 1 MiB; more is `resource_exceeded`): that text is
`stdout`.  What it writes to file descriptor 1 itself, or to stderr, is discarded.

status: ok (ran to its end, or `sys.exit()` / `sys.exit(0)`), error (raised, or exited with
another code; `error` holds the exception and the traceback tail), syntax_error, timeout,
resource_exceeded (memory, file size, or output over `max_output`), sandbox_error (never the
program's fault).  A program that fails still returns what it printed until then.
"""

from __future__ import annotations

import time

from .batch import Work
from .candidate import SOURCE_NAME
from .judge import Candidate, feedback_for_error, gone_verdict
from .protocol import DEFAULT_MAX_OUTPUT, PROGRAM_STATUSES, Endpoint, PeerGone

ERROR_CHARS = 2000


class ProgramEndpoint(Endpoint):
    """The runner's side of one program's process: it asks `run`, and answers nothing (the
    program holds no handle of ours)."""

    owner = "j"

    def __init__(self, fd_in, fd_out, deadline, max_output):
        super().__init__(fd_in, fd_out, deadline)
        self.max_message = 8 * max_output + (1 << 16)  # JSON escapes at most ~6 bytes a char

    def serve(self, msg: dict) -> dict:
        return {"re": 1, "ok": False, "exc": {"type": "TypeError",
                                             "message": "a program may ask nothing"}}


def result(status: str, stdout: str = "", error: str = "") -> dict:
    """The result fields of one program (the runner adds id and duration_s)."""
    return {"status": status, "stdout": stdout, "error": error[:ERROR_CHARS]}


def run_program(request: dict, config: dict, zygote, seq: int) -> dict:
    """Run one program in a confined process of the slot; its result fields."""
    max_output = int(request.get("max_output") or DEFAULT_MAX_OUTPUT)
    cand = Candidate(zygote, seq, config)
    ep = ProgramEndpoint(cand.from_r, cand.to_w, time.monotonic() + config["timeout_s"],
                         max_output)
    try:
        reply = ep.request({"op": "run", "code": request["code"], "max_output": max_output})
    except PeerGone as gone:
        status, message = gone_verdict(gone, cand, "running the program")
        return result(status, "", message)
    finally:
        cand.close()
    stdout = reply.get("stdout") if type(reply.get("stdout")) is str else ""
    if reply.get("ok"):
        return result("ok", stdout)
    if reply.get("fatal") == "output":
        return result("resource_exceeded", "", f"the program printed more than {max_output} "
                                                "characters")
    if reply.get("fatal") == "resource":
        return result("resource_exceeded", stdout, "MemoryError")
    if reply.get("infra"):
        return result("sandbox_error", "", str(reply["infra"]))
    info = reply.get("exc") if type(reply.get("exc")) is dict else {}
    status = "syntax_error" if reply.get("syntax") else "error"
    return result(status, stdout, feedback_for_error(info).replace(SOURCE_NAME, "<program>"))


def parse_program_line(line: str) -> dict:
    """One program request; a malformed one carries `_invalid` (its result is an error)."""
    import json

    request = None
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise ValueError("not a JSON object")
        if not isinstance(request.get("code"), str):
            raise ValueError("field 'code' must be a string")
        limit = request.get("max_output", DEFAULT_MAX_OUTPUT)
        if type(limit) is not int or limit < 1:
            raise ValueError(f"field 'max_output' must be a positive int, got {limit!r}")
        return request
    except ValueError as exc:
        rid = request.get("id") if isinstance(request, dict) else None
        return {"id": rid, "_invalid": f"malformed program: {exc}"}


PROGRAMS = Work(run_program, lambda status, message: result(status, "", message),
                PROGRAM_STATUSES)
"""The `programs` mode of the runner."""
