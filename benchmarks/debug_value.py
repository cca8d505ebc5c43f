"""What self-debug buys per minute, before and after budgeting it by value, in one run on the
same cycle's failures.

Replays the first tries of a finished cycle (its `execute/attempts*.jsonl`, with verdicts)
through self-debug twice, with the same policy, engine, sandbox and seeds:

  before   every failing first try gets a chain of up to `max_turns` turns, no chain stops
           early, no budget (what the stage did before `debug.per_problem`, `near_miss`,
           `stop_at_fix` and `budget` existed);
  after    the `debug` section of the run's configuration with those keys at their defaults
           (or as `--set debug.KEY=VALUE` gives them; a run without self-debug, such as an
           efficacy run, is replayed with two turns).

For each it prints the fixes generated and passed, the minutes spent (generation and judging),
passing fixes per minute, the problems a fix gave their first chosen program (no first try of
them passed), and the debug pairs and distinct chosen programs that `mine_pairs` finds in the
first tries plus the fixes; then the ratio of fixes per minute, after / before.

    python benchmarks/debug_value.py RUN_DIR [--cycle 1] [--problems N] [--set debug.KEY=V]

RUN_DIR is a run of the store (`$AUTODIDACT_HOME/runs/<run id>`, or `--store`'s). Only a cycle
whose first tries the run's start policy wrote can be replayed (cycle 1, or a later cycle that
kept the start policy), since the adapters of later policies are not rebuilt here. With
`--problems N`, only N of the cycle's problems (seeded) are replayed: a quicker, noisier run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BEFORE = {"per_problem": None, "near_miss": 0.0, "stop_at_fix": False, "budget": None}


def replay(name, attempts, problems, backend, cfg, debug, box, run_id):
    """Self-debug of the first tries with `debug`: (fixes, report, seconds)."""
    from tasks.debugging import self_debug

    started = time.monotonic()
    fixes, report = self_debug(attempts, problems, backend, backend.tokenizer,
                               attempts[0].policy_id, cfg.sampling.agents,
                               cfg.sampling.specialists, cfg.sampling, cfg.sandbox, box, debug,
                               run_id, debug.budget)
    seconds = time.monotonic() - started
    print(f"  {name}: {report.chains} chains, {report.attempts} fixes generated "
          f"(turns {report.per_turn}), {report.fixes} passed, {seconds / 60:.1f} min",
          flush=True)
    return fixes, report, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--cycle", type=int, default=1)
    parser.add_argument("--problems", type=int, default=None,
                        help="replay only this many of the cycle's problems (seeded)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="debug.KEY=VALUE", help="the after setting's debug keys")
    args = parser.parse_args(argv)

    from tasks.config import load_config
    from tasks.engines import open_backend
    from tasks.execution import open_sandbox
    from tasks.pairs import mine_pairs
    from tasks.policy import base_policy
    from tasks.problems.records import Problem, select
    from tasks.records import Attempt

    cycle_dir = args.run_dir / f"cycle-{args.cycle}"
    shards = sorted((cycle_dir / "execute").glob("attempts*.jsonl"))
    if not (args.run_dir / "config.yaml").is_file() or not shards:
        print(f"error: {args.run_dir} is not a run with cycle {args.cycle} executed (it needs "
              f"config.yaml and cycle-{args.cycle}/execute/attempts*.jsonl)", file=sys.stderr)
        return 2
    bad = [o for o in args.overrides if not o.startswith("debug.")]
    if bad:
        print(f"error: --set {bad[0]}: only debug.KEY=VALUE changes the after setting",
              file=sys.stderr)
        return 2
    cfg = load_config(args.run_dir / "config.yaml", args.overrides)
    if cfg.debug.max_turns == 0:  # a run without self-debug (the efficacy runs): two turns
        cfg = cfg.model_copy(update={"debug": cfg.debug.model_copy(update={"max_turns": 2})})
    after = cfg.debug
    before = after.model_copy(update=BEFORE)

    attempts = [Attempt.model_validate_json(line) for path in shards
                for line in path.read_text().splitlines() if line.strip()]
    attempts = [a for a in attempts if a.turn == 0]
    problems = {p.id: p for p in (Problem.model_validate_json(line) for line in
                                  (cycle_dir / "problems" / "train.jsonl").read_text().splitlines()
                                  if line.strip())}
    if args.problems is not None:
        keep = {p.id for p in select(sorted(problems.values(), key=lambda p: p.id),
                                     args.problems, seed=0)}
        attempts = [a for a in attempts if a.problem_id in keep]
        problems = {k: v for k, v in problems.items() if k in keep}
    policy = base_policy(cfg.policy.base)
    writers = {a.policy_id for a in attempts}
    if writers != {policy.id}:
        print(f"error: cycle {args.cycle}'s first tries were written by {sorted(writers)}, not by "
              f"the run's start policy {policy.id}: replay cycle 1", file=sys.stderr)
        return 2
    run_id = args.run_dir.name

    failing = sum(not a.ok for a in attempts)
    unsolved = {a.problem_id for a in attempts} - {a.problem_id for a in attempts if a.ok}
    print(f"{args.run_dir.name} cycle {args.cycle}: {len(problems)} problems, {len(attempts)} "
          f"first tries, {failing} failing, {len(unsolved)} problems no first try passed; "
          f"max_turns {after.max_turns}; engine {cfg.sampling.backend}, 2 CPU cores", flush=True)
    backend = open_backend(policy, cfg.sampling.backend, cfg.policy.dtype)
    rows = {}
    with open_sandbox(cfg.sandbox) as box:
        for name, debug in (("before", before), ("after", after)):
            fixes, report, seconds = replay(name, attempts, problems, backend, cfg, debug, box,
                                            run_id)
            mined = mine_pairs(attempts + fixes, cfg.pairs)
            base = mine_pairs(attempts, cfg.pairs)
            rows[name] = dict(
                chains=report.chains, generated=report.attempts, passed=report.fixes,
                minutes=seconds / 60, per_min=report.fixes / (seconds / 60) if seconds else 0.0,
                first_chosen=len({f.problem_id for f in fixes if f.ok} & unsolved),
                debug_pairs=sum(p.kind == "debug" for p in mined.pairs),
                pairs_added=len([p for p in mined.pairs if p.kind != "sft"])
                - len([p for p in base.pairs if p.kind != "sft"]))

    print(f"  {'setting':<7} {'chains':>6} {'fixes':>6} {'passed':>6} {'min':>6} "
          f"{'fixes/min':>9} {'1st chosen':>10} {'debug pairs':>11} {'pairs added':>11}")
    for name, r in rows.items():
        print(f"  {name:<7} {r['chains']:>6} {r['generated']:>6} {r['passed']:>6} "
              f"{r['minutes']:6.1f} {r['per_min']:9.2f} {r['first_chosen']:>10} "
              f"{r['debug_pairs']:>11} {r['pairs_added']:>11}")
    b, a = rows["before"], rows["after"]
    ratio = a["per_min"] / b["per_min"] if b["per_min"] else float("inf")
    print(f"  ratio after / before: {ratio:.2f} passing fixes per minute; "
          f"{a['minutes'] / b['minutes']:.2f} of the time" if b["minutes"] else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
