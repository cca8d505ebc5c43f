"""Entry point of the in-container runner (also `python -m sandbox.runner` on a host).

    batch [--workers N] [--memory-mb M] [--fsize-mb F] [--nproc P] [--nofile K] [--tmpfs-mb T]
            request lines (JSON) on stdin, one verdict line per request on stdout, in order
    programs [the same options]
            program lines (JSON) on stdin, one result line per program on stdout, in order
            (program.py: run a program confined like a candidate, give back what it printed)
    init    the container's PID 1: non-dumpable, reaps orphans until SIGTERM
    zygote  (internal) a slot's fork server
"""

from __future__ import annotations

import os
import signal
import sys
import time


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: runner batch|programs|init", file=sys.stderr)
        return 2
    mode, args = argv[0], argv[1:]
    if mode == "zygote":
        from .candidate import zygote_main

        zygote_main(int(args[0]))
        return 0
    if mode == "init":
        from .confinement import set_dumpable

        set_dumpable(False)
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        signal.signal(signal.SIGINT, lambda *_: os._exit(0))
        while True:
            try:
                os.wait()
            except ChildProcessError:
                time.sleep(1.0)
    if mode in ("batch", "programs"):
        from .batch import JUDGING, parse_request_line, run_batch
        from .program import PROGRAMS, parse_program_line
        from .protocol import DEFAULT_LIMITS

        if os.getuid() != 0:
            print("the runner must start as root inside the sandbox container: it hands each "
                  "worker slot its own uid and namespaces", file=sys.stderr)
            return 2
        limits = dict(DEFAULT_LIMITS)
        workers = os.cpu_count() or 1
        while args:
            if len(args) < 2:
                print(f"option {args[0]} needs a value", file=sys.stderr)
                return 2
            flag, value, args = args[0], args[1], args[2:]
            key = flag[2:].replace("-", "_")
            if flag == "--workers":
                workers = max(1, int(value))
            elif flag.startswith("--") and key in limits:
                limits[key] = int(value)
            else:
                print(f"unknown option {flag}", file=sys.stderr)
                return 2
        parse, work = ((parse_request_line, JUDGING) if mode == "batch"
                       else (parse_program_line, PROGRAMS))
        requests = [parse(line) for line in sys.stdin if line.strip()]
        run_batch(requests, limits, workers, sys.stdout, work)
        return 0
    print(f"unknown mode {mode!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
