"""Sampling throughput: our backend (batched, stopping each sequence once its body is complete)
against plain one-prompt-at-a-time `generate` to `max_new_tokens`, in the same run, on the real
default model.

Both write one greedy candidate for the same HumanEval problems; the figure that matters is
candidates per second, and both sides' programs are judged in the sandbox so that the speed does
not come from cutting programs short (the pass counts must match closely).

    python benchmarks/sampling_throughput.py [-n 8] [--max-new-tokens 192]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=8, help="HumanEval problems")
    parser.add_argument("--max-new-tokens", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    from sandbox import Request, Sandbox
    from tasks.generation import HFBackend, Settings, extract_program
    from tasks.policy import DEFAULT_BASE, base_policy, load_policy
    from tasks.problems import load_humaneval, select

    problems = select(load_humaneval(), args.n, seed=1)
    prompts = [p.prompt for p in problems]
    backend = HFBackend(*load_policy(base_policy(DEFAULT_BASE)))

    def run(settings: Settings, one_at_a_time: bool) -> tuple[float, list[str]]:
        start = time.perf_counter()
        if one_at_a_time:
            outs = [backend.generate([p], settings)[0][0] for p in prompts]
        else:
            outs = [o[0] for o in backend.generate(prompts, settings)]
        return time.perf_counter() - start, outs

    base = dict(temperature=0.0, n=1, max_new_tokens=args.max_new_tokens)
    ref_s, ref_out = run(Settings(**base, batch_size=1), one_at_a_time=True)
    our_s, our_out = run(Settings(**base, batch_size=args.batch_size, stop_early=True), False)

    def passes(outs: list[str]) -> int:
        requests = [Request(p.id, extract_program(p.prompt, o, p.entry_point, "completion"),
                            p.tests, p.entry_point, 10.0) for p, o in zip(problems, outs)]
        with Sandbox() as box:
            return sum(v.ok for v in box.run(requests))

    n = len(problems)
    print(f"{n} HumanEval problems, greedy, max_new_tokens {args.max_new_tokens}, 2 CPU cores")
    print(f"  reference (one prompt at a time, to max_new_tokens): {ref_s:7.1f} s "
          f"{n / ref_s:6.3f} candidates/s, {passes(ref_out)} pass")
    print(f"  ours (batch {args.batch_size}, stop at a complete body):       {our_s:7.1f} s "
          f"{n / our_s:6.3f} candidates/s, {passes(our_out)} pass")
    print(f"  ratio ours / reference: {ref_s / our_s:.2f}")


if __name__ == "__main__":
    main()
