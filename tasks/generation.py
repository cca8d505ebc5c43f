"""Generation: prompts in, programs out, behind a small backend interface.

Takes: prompts (already rendered text), sampling settings (temperature, n, max_new_tokens, top_p,
seed).  Gives: completions cut at stop sequences, and whole programs extracted from them, whether
the model continued the function body or wrote a fenced block.

The backend interface is one method, `Backend.generate(prompts, settings, progress=None) ->
list[list[str]]` (n completions per prompt; `progress`, a `tasks.progress.Progress`, counts the
prompts whose completions are all written).  `HFBackend` runs transformers `generate` in batches
(several sequences per forward pass) with the model loaded once per backend; `tasks/engines.py`
opens it, or the faster OpenVINO engine, for a policy.

Rendering (what the model sees) lives here too, because training must see exactly the same text:

  completion style: the problem's prompt (signature + docstring), optionally preceded by retrieved
                    examples as comments; the model continues the body.
  chat style:       the instruct model's own format: its chat template, the specialist's system
                    prompt (`CHAT_SYSTEM` when it has none), and the problem in a fenced block;
                    the model answers with a fenced block holding the whole function. A
                    self-debug turn is the conversation itself: the failed answer as the
                    assistant's turn, the sandbox's feedback as the next user turn.
  chat_body style:  the chat style's conversation, with the assistant's answer begun for the
                    model: a ```python block holding the problem's prompt (signature and
                    docstring), so the model writes only the body, which ends at the block's
                    closing fence. The model does not spend tokens restating a long docstring
                    (a CodeI/O prompt's spec), and its answers are read as completion style's.

Where an answer ends: a completion-style body at its first stop sequence or top-level line; a
chat answer at the closing fence of its code block: whatever followed would be prose the
program never uses. (The default model mostly ends its turn right there on its own: after the
closing fence, log p(end of turn) ≈ 0 on 5 of 6 HumanEval prompts.)
"""

from __future__ import annotations

import ast
import re
import threading
from dataclasses import dataclass
from typing import Protocol, Sequence

STOP_SEQUENCES = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n```", "\nassert ",
                  "\n# Test", "\n#Test")
# A chat answer's code block closes with a fence on its own line; an opening fence carries the
# language ("```python"), so this string never matches one. Matched on the decoded text, it also
# holds when a blank line or prose follows ("\n```\n\nThis function ...").
CHAT_STOP = "\n```\n"
STYLES = ("completion", "chat", "chat_body")
BODY_STYLES = ("completion", "chat_body")  # the model writes the body after the prompt
# The system message of a chat prompt whose specialist gives none (the evaluation format): the
# instruct model's own default. With it, the base policy passes 96/164 HumanEval problems greedily
# against 72/164 in completion style (docs/results.md, "Prompt format").
CHAT_SYSTEM = "You are a helpful assistant."


@dataclass(frozen=True)
class Settings:
    temperature: float = 0.0  # 0 = greedy
    n: int = 1
    max_new_tokens: int = 256
    top_p: float = 0.95
    seed: int = 0
    batch_size: int = 8
    # stop a sequence once its answer is complete (see `answer_complete`): a completion-style
    # body at its first stop sequence, a chat answer at the closing fence of its code block
    stop_early: bool = False
    style: str = "completion"  # one of STYLES: where `stop_early` stops


class Backend(Protocol):
    def generate(self, prompts: Sequence[str], settings: Settings | Sequence[Settings],
                 progress=None) -> list[list[str]]:
        """n raw completions for each prompt, in order. `settings`: one for every prompt, or a
        sequence with one per prompt (several specialists' prompts in one batch). `progress`
        (a `tasks.progress.Progress`): advanced by the prompts done as they finish; it observes
        and changes nothing generated."""


def per_prompt(settings: Settings | Sequence[Settings], count: int) -> list[Settings]:
    """The settings of each of `count` prompts."""
    if isinstance(settings, Settings):
        return [settings] * count
    settings = list(settings)
    if len(settings) != count:
        raise ValueError(f"{len(settings)} settings for {count} prompts: give one Settings, or "
                         f"one per prompt")
    return settings


# ----------------------------------------------------------------------------------------------
# Cutting and extracting


# A line starting at column 0 that is not a comment: whatever it is ("X = [1, 2]", a call, a
# fence), it is not part of the function body the model was asked to continue.
_TOP_LEVEL = re.compile(r"\n(?=[^\s#])")


def _stops_in(text: str, stops: Sequence[str]):
    """Where a body continuation may end: the first of each stop sequence, and every line that
    starts at column 0 (other than a comment)."""
    for stop in stops:
        i = text.find(stop)
        if i != -1:
            yield i
    for match in _TOP_LEVEL.finditer(text):
        yield match.start()


def truncate_at_stops(text: str, stops: Sequence[str] = STOP_SEQUENCES) -> str:
    """Cut a completion-style continuation where the function body ends: at the first stop
    sequence or top-level line (another def, a main block, prints, tests, example usage)."""
    cut = min(_stops_in(text, stops), default=len(text))
    lines = text[:cut].rstrip().split("\n")
    while len(lines) > 1 and lines[-1].startswith("#"):  # a heading of what was cut
        lines.pop()
    return "\n".join(lines).rstrip() + "\n"


_FENCE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)(?:```|$)", re.S)


def extract(prompt: str, completion: str, entry_point: str, style: str) -> tuple[str, str]:
    """(response, program): the part of the model's output the program comes from (the training
    target of a pair) and the whole candidate program.

    completion and chat_body style: the body continuation cut at the first stop sequence (which
    include a closing fence and "# Test" lines), when it is non-empty and prompt + body is valid
    Python, or when there is no fenced block to fall back on. Otherwise the model opened a fenced
    block (or restated the function in one): that block is the program, with the prompt's
    imports.
    chat style: the first fenced block that defines `entry_point` (else the first block, else the
    raw text), with the prompt's imports and helper definitions prepended.
    """
    if style == "chat_body" and not prompt.endswith("\n"):
        prompt += "\n"  # as `render` began the answer: the body starts on a line of its own
    if style in BODY_STYLES:
        body = truncate_at_stops(completion)
        if "```" not in completion or (body.strip() and _compiles(prompt + body)):
            return body, prompt + body
    defines = re.compile(rf"\bdef\s+{re.escape(entry_point)}\s*\(")
    blocks = [m for m in _FENCE.finditer(completion) if m.group(1).strip()]
    match = next((m for m in blocks if defines.search(m.group(1))), blocks[0] if blocks else None)
    if match is None:
        return completion, prompt + truncate_at_stops(completion)
    response, code = completion[:match.end()], match.group(1)
    if not defines.search(code):
        return response, prompt + truncate_at_stops(code)  # a bare body after all
    return response, _prompt_preamble(prompt, entry_point) + code.strip() + "\n"


def extract_program(prompt: str, completion: str, entry_point: str, style: str) -> str:
    """The whole candidate program from what the model wrote (see `extract`)."""
    return extract(prompt, completion, entry_point, style)[1]


def body_complete(text: str, stops: Sequence[str] = STOP_SEQUENCES) -> bool:
    """Whether a completion-style continuation is finished: a fenced answer has closed its block;
    a body continuation has hit a stop sequence after some code. Generation stops there instead
    of writing tests and explanations up to `max_new_tokens` that `extract` would cut anyway."""
    head = text.lstrip()
    if head.startswith("```"):
        return "```" in head[3:]
    return any(i > 0 and text[:i].strip() for i in _stops_in(text, stops))


def chat_complete(text: str) -> bool:
    """Whether a chat answer has closed its first code block (see `CHAT_STOP`)."""
    return CHAT_STOP in text


def answer_complete(text: str, style: str) -> bool:
    """`chat_complete` in chat style, `body_complete` in the others (the body styles)."""
    return chat_complete(text) if style == "chat" else body_complete(text)


def _compiles(source: str) -> bool:
    try:
        compile(source, "<candidate>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _prompt_preamble(prompt: str, entry_point: str) -> str:
    """Imports and helper definitions of the prompt, without the entry point's own stub."""
    try:
        tree = ast.parse(prompt + "\n    pass\n")
    except SyntaxError:
        return ""
    keep = []
    lines = prompt.splitlines(True)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            continue
        keep.append("".join(lines[node.lineno - 1:node.end_lineno]))
    return "".join(keep) + ("\n" if keep else "")


# ----------------------------------------------------------------------------------------------
# Rendering


def render(prompt: str, style: str, system_prompt: str, tokenizer=None,
           examples: Sequence[str] = (), feedback: tuple[str, str] | None = None) -> str:
    """The exact text the policy sees.  `examples`: retrieved solutions (RAG); `feedback`: for a
    self-debug turn, (the failed answer, sandbox feedback) — in completion style the failed
    program, in chat style the failed answer as the model wrote it (its assistant turn), in
    chat_body style the failed program (the assistant's turn as a whole block)."""
    if style == "completion":
        parts = []
        if system_prompt:
            parts.append("# " + system_prompt.replace("\n", "\n# ") + "\n")
        for ex in examples:
            parts.append("# Example of a verified solution:\n" + ex.strip() + "\n\n")
        if feedback:
            code, fb = feedback
            parts.append("# A previous attempt:\n" + code.strip() + "\n# It failed:\n# "
                         + fb.strip().replace("\n", "\n# ") + "\n# A corrected version:\n")
        return "".join(parts) + prompt
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r}: use one of {', '.join(STYLES)}")
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError("chat style needs the tokenizer's chat template: the policy's tokenizer "
                         "has none; use prompt_style: completion")
    user = "Complete this Python function. Answer with one ```python block holding the whole " \
           "function.\n\n```python\n" + prompt.rstrip() + "\n```"
    if examples:
        user = "Verified solutions of similar problems:\n\n" + "\n\n".join(
            f"```python\n{e.strip()}\n```" for e in examples) + "\n\n" + user
    messages = [{"role": "system", "content": system_prompt or CHAT_SYSTEM},
                {"role": "user", "content": user}]
    if feedback:
        answer, fb = feedback
        if "```" not in answer:  # an answer with no block (or a bare program): show it as one
            answer = f"```python\n{answer.strip()}\n```"
        messages += [{"role": "assistant", "content": answer.strip()},
                     {"role": "user", "content": f"That failed:\n{fb.strip()}\nFix it. Answer "
                                                 f"with one ```python block holding the whole "
                                                 f"function."}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if style == "chat_body":  # the answer begun: its block opens with the problem's prompt
        text += "```python\n" + prompt + ("" if prompt.endswith("\n") else "\n")
    return text


# ----------------------------------------------------------------------------------------------
# HF transformers backend


# transformers samples with torch's one global generator: a batch seeds it and then draws from it
# token by token. Two batches generating at once in one process (shards of a cycle on the thread
# pool, a sampling task beside a self-debug task) would draw from each other's stream, and what a
# seed gives would depend on thread timing. A batch owns the generator from seeding to its last
# token; batches of different threads take turns.
_GLOBAL_RNG = threading.Lock()


class HFBackend:
    """transformers `generate`, batched; the model is loaded once (by the caller) and reused,
    on the device it was loaded on (the CPU, or a CUDA GPU: `policy.device`), where the prompts
    go too. Safe to call from several threads: what a seed gives does not depend on what else
    runs."""

    engine = "hf"

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"  # generation continues on the right

    @property
    def device(self) -> str:
        """Where the model's weights are: `cpu` or `cuda`."""
        from tasks.device import model_device

        return model_device(self.model)

    def generate(self, prompts: Sequence[str], settings: Settings | Sequence[Settings],
                 progress=None) -> list[list[str]]:
        """Prompts with equal settings are batched together (a batch shares its sampling
        parameters); each group is generated as if alone. `progress` counts a prompt once the
        batch holding its last sample is done."""
        each = per_prompt(settings, len(prompts))
        out: list[list[str]] = [[] for _ in prompts]
        groups: dict[Settings, list[int]] = {}
        for i, s in enumerate(each):
            groups.setdefault(s, []).append(i)
        for s, members in groups.items():
            for i, texts in zip(members, self._generate([prompts[i] for i in members], s,
                                                        progress)):
                out[i] = texts
        return out

    def _generate(self, prompts: Sequence[str], settings: Settings,
                  progress=None) -> list[list[str]]:
        import torch

        out: list[list[str]] = [[] for _ in prompts]
        jobs = [(i, j) for i in range(len(prompts)) for j in range(settings.n)]
        greedy = settings.temperature <= 0
        for start in range(0, len(jobs), settings.batch_size):
            batch = jobs[start:start + settings.batch_size]
            texts = [prompts[i] for i, _ in batch]
            enc = self.tokenizer(texts, return_tensors="pt", padding=True).to(self.model.device)
            kwargs = dict(max_new_tokens=settings.max_new_tokens,
                          pad_token_id=self.tokenizer.pad_token_id)
            if settings.stop_early:
                kwargs.update(stopping_criteria=_stop_when_complete(
                    self.tokenizer, enc.input_ids.shape[1], settings.style))
            if greedy:
                kwargs.update(do_sample=False)
            else:
                kwargs.update(do_sample=True, temperature=settings.temperature,
                              top_p=settings.top_p)
            with _GLOBAL_RNG, torch.no_grad():
                # seeds: one per batch, derived from the settings seed and the job index
                torch.manual_seed(settings.seed * 1_000_003 + start)
                generated = self.model.generate(**enc, **kwargs)
            new = generated[:, enc.input_ids.shape[1]:]
            for (i, _), row in zip(batch, new):
                text = self.tokenizer.decode(row, skip_special_tokens=True)
                if settings.stop_early and settings.style == "chat":
                    text = cut_chat(text)  # as OpenVINO's stop string leaves it
                out[i].append(text)
            if progress is not None:  # prompts whose last sample was in this batch
                end = start + len(batch)
                progress.advance(end // settings.n - start // settings.n)
        return out


def cut_chat(text: str) -> str:
    """A chat answer up to and including its closing fence (`CHAT_STOP`), what a stop at the
    closing fence leaves whichever engine stopped it; unchanged when the block never closed."""
    i = text.find(CHAT_STOP)
    return text if i == -1 else text[:i + len(CHAT_STOP)]


def _stop_when_complete(tokenizer, prompt_length: int, style: str = "completion"):
    """A transformers stopping criterion: per sequence, `answer_complete` on what it wrote."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class BodyComplete(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            texts = tokenizer.batch_decode(input_ids[:, prompt_length:], skip_special_tokens=True)
            return torch.tensor([answer_complete(t, style) for t in texts], dtype=torch.bool,
                                device=input_ids.device)

    return StoppingCriteriaList([BodyComplete()])
