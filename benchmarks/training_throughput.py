"""Training throughput: seconds per preference pair of the training stage as it was (trl scoring
every position with the 151k-token LM head, prompt and padding included; the reference
log-probs computed beside every step) against how it is now (only the completion tokens scored;
the reference log-probs computed once before training), in the same run, on the real default
model and the default sequence length. `--batched` adds a third side: four pairs per forward
pass, grouped by length (what the issue suggested; slower on these cores).

The pairs are real: HumanEval prompts, the canonical solution as chosen, and a wrong variant of
it (its last return statement dropped) as rejected, at the lengths the cycle trains on.

    python benchmarks/training_throughput.py [--pairs 16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BEFORE = {"precompute_ref_log_probs": False}
BATCHED = {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
           "train_sampling_strategy": "group_by_length"}


def pairs_of(n: int):
    from tasks.pairs import Pair
    from tasks.problems.humaneval import load_humaneval
    from tasks.problems.records import select

    pairs = []
    for p in select(load_humaneval(), n, seed=3):
        lines = p.solution.rstrip("\n").split("\n")
        returns = [i for i, line in enumerate(lines) if line.strip().startswith("return")]
        wrong = lines[:returns[-1]] + [lines[returns[-1]].split("return")[0] + "return None"] \
            if returns else lines + ["    return None"]
        pairs.append(Pair(prompt=p.prompt, chosen=p.solution, rejected="\n".join(wrong) + "\n",
                          problem_id=p.id, kind="best_vs_worse", chosen_reward=1.0,
                          rejected_reward=0.0, chosen_id=f"{p.id}/c", rejected_id=f"{p.id}/r"))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--batched", action="store_true", help="also measure batches of 4 pairs")
    args = parser.parse_args()

    import tasks.training as training_stage
    from tasks.config import load_config
    from tasks.pairs import write_pairs
    from tasks.names import DEFAULT_BASE
    from tasks.policy import base_policy

    cfg = load_config("default")
    policy = base_policy(DEFAULT_BASE)
    now = cfg.training
    sides = [("before", now.model_copy(update={"dpo": {**now.dpo, **BEFORE}}), False,
              "every position scored, reference beside every step"),
             ("now", now, True, "completion tokens scored, reference precomputed")]
    if args.batched:
        sides.append(("batched", now.model_copy(update={"dpo": {**now.dpo, **BATCHED}}), True,
                      "as now, 4 pairs per forward pass grouped by length"))
    timings = {}
    with tempfile.TemporaryDirectory() as tmp:
        shard = write_pairs(pairs_of(args.pairs), Path(tmp) / "pairs.jsonl")
        for name, training, completions_only, _ in sides:
            training_stage.COMPLETIONS_ONLY = completions_only
            start = time.perf_counter()
            result = training_stage.train(shard.path, policy, training, cfg.policy.dtype,
                                          Path(tmp) / name)
            timings[name] = (time.perf_counter() - start, result)
    print(f"{args.pairs} pairs (HumanEval prompts), default model ({cfg.policy.dtype}), "
          f"max_length {now.dpo['max_length']}, 2 CPU cores; model load included")
    for name, _, _, what in sides:
        seconds, result = timings[name]
        print(f"  {name:<8} {what:<58} {seconds:6.1f} s {seconds / args.pairs:6.2f} s/pair, "
              f"{result.steps} steps, loss {result.metrics['train_loss']:.3f}")
    for name in timings:
        if name != "before":
            print(f"  ratio before / {name}: {timings['before'][0] / timings[name][0]:.2f}")


if __name__ == "__main__":
    main()
