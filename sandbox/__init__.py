"""Docker-isolated execution of untrusted generated code: the reward signal of autodidact.

Public API (imports neither Prefect nor torch):

    from sandbox import Request, Sandbox, execute
    verdicts = execute([Request(id=..., code=..., tests=..., entry_point=...)])
"""

from sandbox.contract import (DEFAULT_TIMEOUT_S, STATUSES, Request, RequestError, Verdict,
                              read_requests)
from sandbox.engine import Limits, Sandbox, SandboxError, execute, summarize
from sandbox.image import IMAGE_TAG

__all__ = ["DEFAULT_TIMEOUT_S", "IMAGE_TAG", "STATUSES", "Limits", "Request", "RequestError",
           "Sandbox", "SandboxError", "Verdict", "execute", "read_requests", "summarize"]
