"""What training did to the start and the end of the answers: a probe of one adapter on its pairs.

For every pair a LoRA adapter was trained on, under the adapter and under the policy it was
trained from (the adapter switched off), on the pair's prompt and chosen answer:

  - the most likely first token after the prompt (a trained policy that would rather end, or open
    a chat turn, than start the body writes empty answers);
  - the change in log-likelihood of the chosen answer's first token, and of the end-of-sequence
    token after it (which the policy never writes in completion style: generation is cut at a stop
    sequence).

This is how the appended-EOS target was measured (docs/results.md, "Learning efficacy"): an
adapter trained on it raised the EOS after the body by 13.8 nats on average and made
`<|im_start|>` the first token on 14 of its 64 prompts; one trained on the same pairs without it
does neither
(`benchmarks/results/eos_target/probe-*.json`).

    python benchmarks/completion_end_probe.py --adapter STORE/RUN/cycle-1/train/<dir>/adapter \
        --pairs STORE/RUN/cycle-1/pairs/pairs.jsonl [--config efficacy] [--out FILE.json]

The adapter must have been trained on the base model of `--config` (a cycle-1 adapter).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", required=True, help="a trained adapter directory")
    parser.add_argument("--pairs", required=True, help="the pairs it was trained on (JSONL)")
    parser.add_argument("--config", default="efficacy")
    parser.add_argument("--out", help="write the report here as JSON too")
    args = parser.parse_args(argv)
    for path in (Path(args.adapter) / "adapter_config.json", Path(args.pairs)):
        if not path.exists():
            parser.error(f"{path} does not exist")

    import torch
    from peft import PeftModel

    from tasks.config import load_config
    from tasks.pairs import Pair
    from tasks.policy import base_policy, load_policy

    cfg = load_config(args.config)
    model, tokenizer = load_policy(base_policy(cfg.policy.base), dtype="float32")
    model = PeftModel.from_pretrained(model, args.adapter).eval()
    pairs = [Pair.model_validate_json(line) for line in Path(args.pairs).read_text().splitlines()
             if line.strip()]
    eos = tokenizer.eos_token_id

    def logps(ids) -> torch.Tensor:
        with torch.inference_mode():
            return torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)

    first_tokens: Counter = Counter()
    first_change, eos_change = [], []
    for pair in pairs:
        start = len(tokenizer(pair.prompt)["input_ids"])
        ids = tokenizer(pair.prompt + pair.chosen, return_tensors="pt")["input_ids"]
        ids = torch.cat([ids, torch.tensor([[eos]])], dim=1)
        after = logps(ids)
        with model.disable_adapter():
            before = logps(ids)
        first_tokens[tokenizer.decode([int(after[start - 1].argmax())])] += 1
        first = int(ids[0, start])
        first_change.append(float(after[start - 1, first] - before[start - 1, first]))
        eos_change.append(float(after[-2, eos] - before[-2, eos]))

    def mean(xs):
        return round(sum(xs) / len(xs), 3) if xs else None

    report = {
        "adapter": str(args.adapter), "pairs": len(pairs),
        "most_likely_first_token": dict(first_tokens.most_common(5)),
        "first_token_logp_change": {"mean": mean(first_change),
                                    "min": round(min(first_change), 3)},
        "eos_after_chosen_logp_change": {"mean": mean(eos_change),
                                         "max": round(max(eos_change), 3)},
    }
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
