"""Control for the learning measurements: does the path a trained policy takes to evaluation
(its adapter merged in fp32, exported to OpenVINO int8, sampled) change the model by itself?

A LoRA adapter that was never trained (peft initializes B to zero, so the adapter adds nothing)
goes through exactly that path: `policy.base` + the adapter, merged, exported, evaluated on the
test problems with the config's evaluation settings. Its per-problem outcomes are paired against
the base policy's. If the path is neutral the two agree on (nearly) every problem; a drop here
would be the pipeline's, not training's.

    python benchmarks/eval_path_control.py [--config efficacy] [--base-result RESULT.json]
        [--out benchmarks/results/eval_path_control]

`--base-result`: the base policy's `result.json` on test from a run of the same config (its
`evaluations/<base id>/test/`), instead of evaluating the base again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OUT = Path(__file__).resolve().parent / "results" / "eval_path_control"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="efficacy")
    parser.add_argument("--base-result", help="the base policy's test result.json of a run")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)

    from tasks.config import load_config
    from tasks.engines import open_backend
    from tasks.evaluation import EvalResult, compare_results, evaluate
    from tasks.execution import open_sandbox
    from tasks.policy import base_policy
    from tasks.problems.split import load_suite

    cfg = load_config(args.config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = base_policy(cfg.policy.base)
    adapter = null_adapter(base.base, cfg.training, out / "null-adapter")
    control = base.with_adapter(adapter)
    problems = load_suite(cfg.problems.test)

    def result(policy, where: Path) -> EvalResult:
        if (where / "result.json").exists():
            return EvalResult.model_validate_json((where / "result.json").read_text())
        backend = open_backend(policy, cfg.sampling.backend, cfg.policy.dtype)
        with open_sandbox(cfg.sandbox) as box:
            r = evaluate(problems, backend, policy.id, cfg.problems.test, cfg.evaluation,
                         cfg.sampling, cfg.sandbox, box, where, "test")
        (where / "result.json").write_text(r.model_dump_json())
        return r

    if args.base_result:
        base_result = EvalResult.model_validate_json(Path(args.base_result).read_text())
        if base_result.policy_id != base.id:
            parser.error(f"{args.base_result} is policy {base_result.policy_id}'s, not the "
                         f"base's ({base.id})")
    else:
        base_result = result(base, out / "base")
    control_result = result(control, out / "control")
    p = compare_results(control_result, base_result)
    same = sum(a.greedy_passed == b.greedy_passed and a.samples_passed == b.samples_passed
               for a, b in zip(sorted(control_result.outcomes, key=lambda o: o.problem_id),
                               sorted(base_result.outcomes, key=lambda o: o.problem_id)))
    report = {
        "base": base.id, "control": control.id, "problems": p.score.n,
        "identical_outcomes": same,
        "greedy": {"base": base_result.pass1_greedy, "control": control_result.pass1_greedy,
                   "mcnemar_b_c": [p.greedy.b, p.greedy.c], "mcnemar_p": p.greedy.mcnemar_p},
        "score": {"base": p.score.old_mean, "control": p.score.new_mean, "diff": p.score.diff,
                  "ci95": [p.score.ci_low, p.score.ci_high],
                  "p_two_sided": p.score.p_two_sided}}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


def null_adapter(base_dir: str, training, out: Path) -> Path:
    """A LoRA adapter of the training config's shape, saved untrained (B = 0: it adds nothing)."""
    if (out / "adapter_config.json").exists():
        return out
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
    lora = LoraConfig(r=training.lora_r, lora_alpha=training.lora_alpha,
                      lora_dropout=training.lora_dropout,
                      target_modules=list(training.lora_target_modules), task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lora)
    for name, weight in peft_model.named_parameters():
        if "lora_B" in name:
            assert torch.count_nonzero(weight) == 0, f"{name}: peft no longer starts B at zero"
    peft_model.save_pretrained(str(out))
    return out


if __name__ == "__main__":
    sys.exit(main())
