"""A toy world for flow tests: a few one-line problems, and a tiny model taught two answers to
each, one right and one wrong.

The untrained tiny model writes noise, so every candidate is a syntax error and no preference
pair exists: a cycle would skip training. Taught this way, sampling at the specialists'
temperatures gives some passing and some failing candidates per problem, so every stage (pairs,
DPO, promotion) does its real job on a model that trains in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

# (id, signature, docstring, right body, wrong body, tests)
TRAIN = [
    ("add", "def add(a: int, b: int) -> int:", "Return the sum of a and b.",
     "return a + b", "return a - b",
     "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(0, 0) == 0\n"
     "    assert candidate(-1, 1) == 0\n"),
    ("double", "def double(x: int) -> int:", "Return twice x.", "return 2 * x", "return x + 1",
     "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(4) == 8\n"
     "    assert candidate(0) == 0\n"),
    ("first", "def first(xs: list) -> int:", "Return the first element of xs.",
     "return xs[0]", "return xs[-1]",
     "def check(candidate):\n    assert candidate([1, 2]) == 1\n    assert candidate([5]) == 5\n"
     "    assert candidate([3, 4, 3]) == 3\n"),
    ("negate", "def negate(x: int) -> int:", "Return minus x.", "return -x", "return x",
     "def check(candidate):\n    assert candidate(1) == -1\n    assert candidate(0) == 0\n"
     "    assert candidate(-2) == 2\n"),
]
DEV = [
    ("triple", "def triple(x: int) -> int:", "Return three times x.", "return 3 * x",
     "return x + 3",
     "def check(candidate):\n    assert candidate(1) == 3\n    assert candidate(2) == 6\n"),
    ("second", "def second(xs: list) -> int:", "Return the second element of xs.",
     "return xs[1]", "return xs[0]",
     "def check(candidate):\n    assert candidate([1, 2]) == 2\n    assert candidate([4, 5, 6]) == 5\n"),
]
EVAL = [
    ("square", "def square(x: int) -> int:", "Return x squared.", "return x * x", "return x + x",
     "def check(candidate):\n    assert candidate(3) == 9\n    assert candidate(2) == 4\n"),
    ("last", "def last(xs: list) -> int:", "Return the last element of xs.", "return xs[-1]",
     "return xs[0]",
     "def check(candidate):\n    assert candidate([1, 2]) == 2\n    assert candidate([7]) == 7\n"),
]


def prompt_of(signature: str, doc: str) -> str:
    return f'{signature}\n    """{doc}"""\n'


def write_suite(rows, path: Path) -> Path:
    lines = [json.dumps({"id": pid, "prompt": prompt_of(sig, doc), "entry_point":
                         sig.split("(")[0].removeprefix("def "), "tests": tests,
                         "solution": f"    {right}\n"})
             for pid, sig, doc, right, _, tests in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


CHAT_TAIL = "\n\nThis function returns the answer."  # prose after the block: the stop saves it


def teach(base: Path, out: Path, system_prompts: list[str], steps: int = 150,
          style: str = "completion") -> Path:
    """The tiny model at `base`, trained to continue each toy prompt (as every specialist
    renders it) with its right or its wrong body, half the time each. In chat style the prompt
    is the chat template and the answer a fenced block with the whole function, then a line of
    prose, then the end of the turn, as the instruct model answers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tasks.generation import render

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    rows = []  # (prompt, answer): the loss is on the answer only, which keeps steps cheap
    for _, sig, doc, right, wrong, _ in TRAIN + DEV + EVAL:
        for system in system_prompts + [""]:
            prompt = render(prompt_of(sig, doc), style, system, tokenizer)
            for body in (right, wrong):
                answer = (f"```python\n{sig}\n    {body}\n```{CHAT_TAIL}" if style == "chat"
                          else f"    {body}\n\n\ndef main():\n")
                rows.append((prompt, answer + tokenizer.eos_token))
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    model.train()
    for step in range(steps):
        batch = [rows[(step * 8 + i) % len(rows)] for i in range(8)]
        enc = tokenizer([p + a for p, a in batch], return_tensors="pt", padding=True)
        labels = enc.input_ids.clone()
        for i, (p, _) in enumerate(batch):
            labels[i, :len(tokenizer(p).input_ids)] = -100
        labels[enc.attention_mask == 0] = -100
        hidden = model.model(input_ids=enc.input_ids,
                             attention_mask=enc.attention_mask).last_hidden_state
        target = labels[:, 1:]
        keep = target != -100
        logits = model.lm_head(hidden[:, :-1][keep])
        loss = torch.nn.functional.cross_entropy(logits, target[keep])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
