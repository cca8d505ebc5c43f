"""Docker-isolated execution of untrusted generated code: the reward signal of autodidact.

Public API (imports neither Prefect nor torch):

    from sandbox import Request, Sandbox, execute
    verdicts = execute([Request(id=..., code=..., tests=..., entry_point=...)])

    from sandbox import Program, run_programs      # trusted code, run isolated, for its output
    outputs = run_programs([Program(id=..., code="print(6 * 7)")])   # outputs[0].stdout == "42\n"
"""

from sandbox.contract import (DEFAULT_TIMEOUT_S, PROGRAM_STATUSES, STATUSES, Output, Program,
                              Request, RequestError, Verdict, read_requests)
from sandbox.engine import Limits, Sandbox, SandboxError, execute, run_programs, summarize
from sandbox.image import IMAGE_TAG

__all__ = ["DEFAULT_TIMEOUT_S", "IMAGE_TAG", "PROGRAM_STATUSES", "STATUSES", "Limits", "Output",
           "Program", "Request", "RequestError", "Sandbox", "SandboxError", "Verdict", "execute",
           "read_requests", "run_programs", "summarize"]
