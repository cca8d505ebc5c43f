"""A finished run's policies evaluated again after its flow, and the raw outcomes file both
`learning_efficacy.py` and `reevaluate.py` write.

- `read_problems` / `unseen`: a run's problem sets from its store (`<run>/problems/*.jsonl`), and
  the pool problems no cycle drew for training (`<run>/cycle-<n>/problems/train.jsonl`): held out
  from training and from every promotion decision, a second measurement on the training
  distribution;
- `evaluate_once`: one policy on a problem set, into a directory that keeps the judged candidates
  (`attempts.jsonl`) and the result (`result.json`); a result already there is read back, so an
  interrupted invocation goes on where it stopped;
- `write_outcomes`: `outcomes.csv`, one row per policy and problem (`OUTCOME_COLUMNS`); files of
  different splits or runs pool by concatenation.

No CLI: the two benchmarks call these.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Sequence

OUTCOME_COLUMNS = ("cycle", "policy", "split", "problem_id", "greedy_passed", "samples",
                   "samples_passed", "distinct_passing")


def read_problems(path: Path) -> list:
    """The `Problem`s of a JSONL file of the run store."""
    from tasks.problems.records import Problem

    return [Problem.model_validate_json(line) for line in Path(path).read_text().splitlines()
            if line]


def unseen(run_dir: Path, cycles: Iterable[int]) -> list:
    """The pool's problems that none of `cycles` drew for training, in pool order."""
    drawn: set[str] = set()
    for n in cycles:
        drawn |= {p.id for p in read_problems(run_dir / f"cycle-{n}" / "problems" / "train.jsonl")}
    return [p for p in read_problems(run_dir / "problems" / "pool.jsonl") if p.id not in drawn]


def evaluate_once(policy, problems: Sequence, suite: str, split: str, cfg, where: Path,
                  log=print):
    """`tasks.evaluation.evaluate` of `policy` on `problems` with the run's config `cfg`
    (greedy + `evaluation.n_samples` samples, its backend and sandbox), written to
    `<where>/attempts.jsonl` and `<where>/result.json`; read back from `result.json` when it is
    there (refused when that result covers other problems)."""
    from tasks.evaluation import EvalResult

    where = Path(where)
    done = where / "result.json"
    if done.exists():
        result = EvalResult.model_validate_json(done.read_text())
        theirs, ours = [o.problem_id for o in result.outcomes], [p.id for p in problems]
        if sorted(theirs) != sorted(ours):
            raise ValueError(f"{done} holds {len(theirs)} problems, not the {len(ours)} asked "
                             f"for now: it belongs to another problem set; move it away to "
                             f"evaluate again")
        return result
    from tasks.engines import open_backend
    from tasks.evaluation import evaluate
    from tasks.execution import open_sandbox
    from tasks.records import write_json

    where.mkdir(parents=True, exist_ok=True)
    backend = open_backend(policy, cfg.sampling.backend, cfg.policy.dtype)
    with open_sandbox(cfg.sandbox) as box:
        result = evaluate(problems, backend, policy.id, suite, cfg.evaluation, cfg.sampling,
                          cfg.sandbox, box, where, split)
    write_json(done, result.model_dump(mode="json"))
    sampled = "-" if result.pass1_sampled is None else f"{result.pass1_sampled:.3f}"
    log(f"{policy.id} on {split}: greedy {result.pass1_greedy:.3f}, sampled {sampled}")
    return result


def write_outcomes(path: Path, groups: Iterable[tuple[int, str, str, Sequence]]) -> Path:
    """`outcomes.csv` from `(cycle, policy id, split label, ProblemOutcomes)` groups, in order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(OUTCOME_COLUMNS)
        for cycle, policy_id, split, outcomes in groups:
            for o in outcomes:
                writer.writerow([cycle, policy_id, split, o.problem_id, int(o.greedy_passed),
                                 o.samples, o.samples_passed, o.distinct_passing])
    return path
