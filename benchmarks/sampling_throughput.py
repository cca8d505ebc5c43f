"""Sampling throughput, several ways in one run on the same workload and the real default model:

  plain        transformers `generate`, batches of 8, every sequence run to `max_new_tokens`;
  hf           our transformers backend: batches of 8, each sequence stopped once its body is
               complete (a batch still waits for its slowest sequence);
  openvino     our OpenVINO GenAI backend: int8 weights, continuous batching, stop strings;
with --chat, the instruct model's own format on the OpenVINO backend:
  chat         the chat template (tasks/generation.py `render`, default system message), each
               answer stopped at its code block's closing fence, as every stage samples;
  chat-nostop  the same prompts, answers run to the end of the turn (or `max_new_tokens`): the
               prose after the code that the closing-fence stop saves;
  chat_body    the chat template with the answer begun (a ```python block holding the prompt),
               so the model writes only the body, stopped at the block's closing fence.

The workload is a cycle's: HumanEval prompts, k samples each at temperature 0.7, top-p 0.95.
Every side's programs are judged in the sandbox, so speed cannot come from cutting programs short:
the pass counts must stay within noise of each other (chat against completion differ by the
format's own pass rate). "Useful tokens" are the tokens of what a candidate keeps (the body or
block `extract` takes); raw tokens are all the tokens generated. The ratios compare sides of the
same run.

    python benchmarks/sampling_throughput.py [-n 16] [--samples 2] [--max-new-tokens 256]
        [--chat] [--skip-plain] [--skip-hf]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=16, help="HumanEval problems")
    parser.add_argument("--samples", type=int, default=2, help="samples per problem")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--skip-plain", action="store_true", help="leave out the slowest side")
    parser.add_argument("--skip-hf", action="store_true", help="leave out both HF sides")
    parser.add_argument("--chat", action="store_true",
                        help="add the chat-format sides (OpenVINO: chat with and without "
                             "the stop, and chat_body)")
    args = parser.parse_args()

    from sandbox import Request, Sandbox
    from tasks.engines import open_backend, openvino_model
    from tasks.generation import Settings, extract, render
    from tasks.names import DEFAULT_BASE
    from tasks.policy import base_policy
    from tasks.problems.humaneval import load_humaneval
    from tasks.problems.records import select

    problems = select(load_humaneval(), args.n, seed=1)
    prompts = [p.prompt for p in problems]
    policy = base_policy(DEFAULT_BASE)
    openvino_model(policy)  # the one-time export is not part of the measurement
    settings = Settings(temperature=args.temperature, n=args.samples,
                        max_new_tokens=args.max_new_tokens, top_p=0.95, seed=0, batch_size=8)

    sides, style = {}, {}
    if not args.skip_hf:
        hf = open_backend(policy, "hf", "bfloat16")
        # plain: the same backend without the stopping criterion, i.e. `generate` as it comes
        for name, stop in ((() if args.skip_plain else (("plain", False),)) + (("hf", True),)):
            start = time.perf_counter()
            outs = hf.generate(prompts, replace(settings, stop_early=stop))
            sides[name], style[name] = (time.perf_counter() - start, outs), "completion"
        del hf
    ov = open_backend(policy, "openvino")
    tokenizer = ov.tokenizer
    start = time.perf_counter()
    outs = ov.generate(prompts, replace(settings, stop_early=True))
    sides["openvino"], style["openvino"] = (time.perf_counter() - start, outs), "completion"
    if args.chat:
        chat_prompts = [render(p, "chat", "", tokenizer) for p in prompts]
        for name, stop in (("chat", True), ("chat-nostop", False)):
            # a fresh pipeline per side: its prefix cache would hold the other side's prompts
            del ov
            ov = open_backend(policy, "openvino")
            start = time.perf_counter()
            outs = ov.generate(chat_prompts, replace(settings, stop_early=stop, style="chat"))
            sides[name], style[name] = (time.perf_counter() - start, outs), "chat"
        del ov
        ov = open_backend(policy, "openvino")
        body_prompts = [render(p, "chat_body", "", tokenizer) for p in prompts]
        start = time.perf_counter()
        outs = ov.generate(body_prompts, replace(settings, stop_early=True, style="chat_body"))
        sides["chat_body"], style["chat_body"] = (time.perf_counter() - start, outs), "chat_body"

    def count(texts: list[str]) -> int:
        return sum(len(tokenizer(t).input_ids) for t in texts)

    rows = {}
    with Sandbox() as box:
        for name, (seconds, outs) in sides.items():
            requests, raw, useful = [], [], []
            for p, texts in zip(problems, outs):
                for k, text in enumerate(texts):
                    response, program = extract(p.prompt, text, p.entry_point, style[name])
                    raw.append(text)
                    useful.append(response)
                    requests.append(Request(f"{p.id}/{k}", program, p.tests, p.entry_point,
                                            10.0, p.context))
            passed = sum(v.ok for v in box.run(requests))
            rows[name] = dict(seconds=seconds, candidates=len(requests),
                              per_s=len(requests) / seconds, useful=count(useful) / seconds,
                              raw=count(raw) / seconds, passed=passed)

    print(f"{args.n} HumanEval prompts x {args.samples} samples, T {args.temperature}, top-p "
          f"0.95, <= {args.max_new_tokens} new tokens, 2 CPU cores")
    print(f"  {'side':<11} {'time s':>7} {'cand/s':>7} {'useful tok/s':>13} {'raw tok/s':>10} "
          f"{'passing':>8}")
    for name, r in rows.items():
        print(f"  {name:<11} {r['seconds']:7.1f} {r['per_s']:7.3f} {r['useful']:13.1f} "
              f"{r['raw']:10.1f} {r['passed']:>4}/{r['candidates']}")
    fast = rows["openvino"]
    for name in ("hf", "plain"):
        if name in rows:
            print(f"  ratio openvino / {name}: {fast['per_s'] / rows[name]['per_s']:.2f} "
                  f"candidates/s, {fast['useful'] / rows[name]['useful']:.2f} useful tokens/s")
    if "plain" in rows:
        print(f"  ratio hf / plain: {rows['hf']['per_s'] / rows['plain']['per_s']:.2f} "
              f"candidates/s")
    if "chat" in rows:
        chat = rows["chat"]
        for name in ("openvino", "chat-nostop"):
            print(f"  ratio chat / {name}: {chat['per_s'] / rows[name]['per_s']:.2f} "
                  f"candidates/s")
        print(f"  ratio chat_body / chat: {rows['chat_body']['per_s'] / chat['per_s']:.2f} "
              "candidates/s")


if __name__ == "__main__":
    main()
