"""Run alone: `python -m tasks.problems [--fetch-mbpp] [SUITE or FILE.jsonl ...]` loads each
suite, checks every row and counts the problems (examples in the package docstring)."""

from __future__ import annotations

import argparse
import sys

from tasks.paths import data_dir
from tasks.problems.mbpp import fetch_mbpp
from tasks.problems.split import load_suite


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tasks.problems",
                                     description="Load and check problem sets.")
    parser.add_argument("suites", nargs="*", default=["humaneval", "mbpp"],
                        help="humaneval, mbpp, codeio (built in the sandbox if missing: "
                             "minutes), or paths to .jsonl files")
    parser.add_argument("--fetch-mbpp", action="store_true",
                        help=f"download MBPP into {data_dir()} first")
    args = parser.parse_args(argv)
    if args.fetch_mbpp:
        print(f"MBPP at {fetch_mbpp(data_dir())}")
    for spec in args.suites:
        try:
            problems = load_suite(spec)
        except (ValueError, OSError, ImportError) as err:  # messages already say what to do
            sys.exit(f"{spec}: {err}")
        solved = sum(p.solution is not None for p in problems)
        print(f"{spec}: {len(problems)} problems, {solved} with reference solutions")
