"""Training hyperparameters, chosen on dev: one cycle's attempts, mined and trained under each
setting, each trained policy evaluated on the dev set against the start policy.

Takes the executed attempts of a finished cycle (`<run>/cycle-<n>/execute/attempts.jsonl` and the
`debug/*.jsonl` beside it), so every setting learns from the same candidates; only attempts at
problems of the training pool are kept (not dev's, nor their near-duplicates). Each point changes
one thing against the defaults (learning rate, epochs, warmup, LoRA on the MLP too, pairs per
problem, the SFT weight, LD-DPO's down-weighting of the longer answer's tail); the last point
combines the two best single changes. Per point: pairs
mined, seconds of training (the trainer's runtime), the epoch's mean reward accuracy and margin,
and dev: greedy and sampled pass@1, the per-problem score's paired difference against the start
policy with its 95% bootstrap CI and the one-sided sign-flip p.

    python benchmarks/hparam_sweep.py --cycle-dir STORE/RUN/cycle-1 [--points default,mlp] \
        [--samples 2] [--out benchmarks/results/hparam_sweep]

Finished points are kept in `--out` (one directory each) and not trained again; the table is
`--out/table.md`, the raw per-problem dev outcomes `--out/<point>/dev.json`. Test (HumanEval) is
never looked at: choosing on it would spoil it as a measure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OUT = Path(__file__).resolve().parent / "results" / "hparam_sweep"

# What every point starts from: the defaults as they were when the first sweep ran (learning
# rate 2e-4, one epoch, SFT weight 1, beta 0.1), so the points keep their meaning if the defaults
# change. A point trained before is reused only if its adapter's manifest records these settings.
BASELINE_TRAINING = {"sft_weight": 1.0, "dpo_weight": 1.0}
BASELINE_DPO = {"learning_rate": 2e-4, "num_train_epochs": 1, "beta": 0.1}

# name -> (training overrides, training.dpo overrides, pairs overrides). The learning rate was
# swept first (5e-5, the old default, against 2e-4, now the default); every other point changes
# one thing against the baseline, learning rate 2e-4 included.
POINTS = {
    "lr5e-5": ({}, {"learning_rate": 5e-5}, {}),
    "default": ({}, {}, {}),
    "epochs2": ({}, {"num_train_epochs": 2}, {}),
    # transformers 5 dropped `warmup_ratio`: a `warmup_steps` below 1 is the fraction of steps
    "warmup": ({}, {"warmup_steps": 0.1}, {}),
    "mlp": ({"lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                     "up_proj", "down_proj"]}, {}, {}),
    "pairs4": ({}, {}, {"max_pairs_per_problem": 4}),
    "sft0.2": ({"sft_weight": 0.2}, {}, {}),
    # LD-DPO (https://arxiv.org/abs/2409.06411): tokens past the shorter answer's length count
    # half, against the length bias the efficacy run measured (chosen answers are shorter)
    "ld0.5": ({}, {"ld_alpha": 0.5}, {}),
    # the two best single changes together: the candidate for the efficacy run
    "epochs2+sft0.2": ({"sft_weight": 0.2}, {"num_train_epochs": 2}, {}),
    # after the appended-EOS fix (tasks/training.py, `without_appended_eos`): the SFT term alone
    # (rejection-sampling fine-tuning), and DPO held closer to its reference
    "sft-only": ({"dpo_weight": 0.0}, {}, {}),
    "beta0.5": ({}, {"beta": 0.5}, {}),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycle-dir", required=True, help="a finished cycle's directory")
    parser.add_argument("--config", default="default")
    parser.add_argument("--points", default=",".join(POINTS))
    parser.add_argument("--samples", type=int, default=2, help="dev samples besides greedy")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)

    from tasks.config import load_config
    from tasks.engines import open_backend
    from tasks.evaluation import compare_results, evaluate
    from tasks.execution import open_sandbox
    from tasks.memory import Embedder
    from tasks.pairs import mine_pairs, read_attempt_files, token_budget, write_pairs
    from tasks.policy import base_policy
    from tasks.problems.split import split_problems
    from tasks.report import markdown_table, mean_response_chars
    from tasks.training import train
    from transformers import AutoTokenizer

    cfg = load_config(args.config)
    names = [p for p in args.points.split(",") if p]
    unknown = [p for p in names if p not in POINTS]
    if unknown:
        parser.error(f"unknown points {unknown}: choose from {', '.join(POINTS)}")
    cycle = Path(args.cycle_dir)
    files = [cycle / "execute" / "attempts.jsonl"] + sorted((cycle / "debug").glob("*.jsonl"))
    missing = [f for f in files if not f.exists()]
    if missing:
        parser.error(f"{missing[0]} is missing: give the directory of a finished cycle")
    out = Path(args.out)
    evaluation = cfg.evaluation.model_copy(update={"n_samples": args.samples, "k": [1]})
    split = split_problems(cfg.problems, Embedder(cfg.memory.embedder).embed)
    dev, pool = split.dev, {p.id for p in split.pool}
    attempts = read_attempt_files(files)
    # a cycle of another split may hold dev problems or their near-duplicates: never train on them
    kept = [a for a in attempts if a.problem_id in pool]
    print(f"{len(kept)} of {len(attempts)} attempts are of training-pool problems "
          f"({len({a.problem_id for a in kept})} problems); the rest are left out", flush=True)
    attempts = kept
    start = base_policy(cfg.policy.base)
    tokenizer = AutoTokenizer.from_pretrained(start.base)

    def dev_result(policy, where: Path):
        if (where / "dev.json").exists():
            from tasks.evaluation import EvalResult

            return EvalResult.model_validate_json((where / "dev.json").read_text())
        backend = open_backend(policy, cfg.sampling.backend, cfg.policy.dtype)
        with open_sandbox(cfg.sandbox) as box:
            result = evaluate(dev, backend, policy.id, cfg.problems.dev, evaluation,
                              cfg.sampling, cfg.sandbox, box, where, "dev")
        (where / "dev.json").write_text(result.model_dump_json())
        return result

    base_dev = dev_result(start, out / "start")
    rows = []
    for name in names:
        training, dpo, pairs_cfg = POINTS[name]
        where = out / name
        tcfg = cfg.training.model_copy(update={
            **BASELINE_TRAINING, **training,
            "dpo": {**cfg.training.dpo, **BASELINE_DPO, **dpo}})
        pcfg = cfg.pairs.model_copy(update=pairs_cfg)
        trained_with = where / "train" / "adapter" / "manifest.json"
        if trained_with.exists():
            recorded = json.loads(trained_with.read_text())["training"]
            wanted = tcfg.model_dump(mode="json")
            if recorded != wanted:
                changed = sorted(k for k in {**recorded, **wanted}
                                 if recorded.get(k) != wanted.get(k))
                sys.exit(f"{where} was trained with other settings (differing: "
                         f"{', '.join(changed)}): remove that directory to train the point "
                         "again, or give another --out")
        mined = mine_pairs(attempts, pcfg, token_budget(tokenizer, tcfg.dpo.get("max_length")))
        shard = write_pairs(mined.pairs, where / "pairs.jsonl")
        trained = train(shard.path, start, tcfg, cfg.policy.dtype, where / "train", cfg.run.seed,
                        pairs_sha256=shard.sha256)
        # the trainer's own measure, kept in the adapter's manifest: right for a point trained
        # in an earlier invocation too
        seconds = trained.metrics.get("train_runtime_s", 0.0)
        result = dev_result(trained.policy, where)
        p = compare_results(result, base_dev)
        rows.append({"point": name, "pairs": shard.rows, "train s": round(seconds),
                     "reward acc": round(trained.metrics.get("mean_rewards_accuracies", 0), 3),
                     "margin": round(trained.metrics.get("mean_rewards_margins", 0), 3),
                     "dev greedy": round(result.pass1_greedy, 4),
                     "dev sampled": round(result.pass1_sampled or 0, 4),
                     "score diff": round(p.score.diff, 4),
                     "95% CI": f"[{p.score.ci_low:+.3f}, {p.score.ci_high:+.3f}]",
                     "p (better)": round(p.score.p_greater, 4),
                     "response chars": mean_response_chars(where / "attempts.jsonl")})
        (out / "table.md").write_text(
            f"Start policy on dev: greedy {base_dev.pass1_greedy:.4f}, sampled "
            f"{base_dev.pass1_sampled or 0:.4f} ({base_dev.problems} problems, greedy + "
            f"{args.samples} samples; mean response "
            f"{mean_response_chars(out / 'start' / 'attempts.jsonl')} "
            "characters)\n\n" + markdown_table(rows))
        (out / "points.json").write_text(json.dumps({
            "baseline": {"config": args.config, "training": BASELINE_TRAINING,
                         "dpo": BASELINE_DPO},
            "points": {n: {"training": POINTS[n][0], "dpo": POINTS[n][1], "pairs": POINTS[n][2]}
                       for n in names}}, indent=2) + "\n")
        print(markdown_table(rows[-1:]), flush=True)
    print((out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
