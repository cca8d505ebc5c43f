"""The instruct model's chat format through every stage, on the toy model taught fenced answers
(tests/toy.py, `toy_chat`) and the real sandbox: what sampling saw is what a self-debug turn
continues, what a pair's prompt holds, what training tokenizes and what evaluation shows."""

import pytest

from tasks.config import load_config
from tasks.generation import CHAT_SYSTEM, render
from tasks.problems.jsonl import load_jsonl

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def chat_world(toy, toy_chat):
    from tasks.engines import open_backend
    from tasks.policy import base_policy

    cfg = load_config(toy_chat / "toy.yaml")
    problems = load_jsonl(toy / "train.jsonl")
    policy = base_policy(cfg.policy.base)
    return cfg, problems, policy, open_backend(policy, "hf", "float32")


@pytest.fixture(scope="module")
def judged(chat_world, sandbox):
    from tasks.execution import judge
    from tasks.sampling import sample

    cfg, problems, policy, backend = chat_world
    many = cfg.sampling.model_copy(update={"samples_per_specialist": 3})
    attempts = sample(problems, backend, backend.tokenizer, policy.id, cfg.sampling.agents,
                      cfg.sampling.specialists, many, cycle=1)
    return judge(attempts, {p.id: p for p in problems}, sandbox, cfg.sandbox)


def test_a_chat_prompt_is_the_template_with_the_default_system_message(chat_world):
    cfg, problems, _, backend = chat_world
    text = render(problems[0].prompt, "chat", "", backend.tokenizer)
    assert CHAT_SYSTEM in text and problems[0].prompt.rstrip() in text
    assert text.endswith("<|im_start|>assistant\n")  # the assistant's turn is open
    creative = render(problems[0].prompt, "chat", "Be creative.", backend.tokenizer)
    assert "Be creative." in creative and CHAT_SYSTEM not in creative
    with pytest.raises(ValueError, match="unknown prompt style"):
        render(problems[0].prompt, "chatty", "", backend.tokenizer)


def test_chat_answers_stop_at_the_closing_fence_and_pass_and_fail(chat_world, judged):
    from tests.toy import CHAT_TAIL

    cfg, problems, _, backend = chat_world
    system = {s.name: s.system_prompt for s in cfg.sampling.specialists}
    by_id = {p.id: p for p in problems}
    for a in judged:
        # the prompt is exactly what the specialist renders for the problem
        assert a.prompt == render(by_id[a.problem_id].prompt, "chat", system[a.specialist],
                                  backend.tokenizer)
        assert CHAT_TAIL.strip() not in a.response  # generation stopped at the fence
    fenced = [a for a in judged if a.response.startswith("```python")]
    assert len(fenced) >= len(judged) // 2
    assert all(a.response.endswith("```") for a in fenced)
    statuses = {a.status for a in judged}
    assert "passed" in statuses and "failed" in statuses


def test_a_chat_debug_turn_continues_the_conversation(chat_world, judged, sandbox):
    from tasks.debugging import self_debug
    from tasks.schema import DebugConfig

    cfg, problems, policy, backend = chat_world
    by_id = {p.id: p for p in problems}
    every = DebugConfig(max_turns=1, per_problem=None, near_miss=0.0, budget=None)
    fixes, _ = self_debug(judged, by_id, backend, backend.tokenizer, policy.id,
                          cfg.sampling.agents, cfg.sampling.specialists, cfg.sampling,
                          cfg.sandbox, sandbox, every)
    assert fixes
    parents = {a.id: a for a in judged}
    suffix = "<|im_start|>assistant\n"
    for fix in fixes:
        parent = parents[fix.parent]
        # the first user turn, then the failed answer as the assistant's own turn, then the
        # feedback as the next user turn
        head = parent.prompt[:-len(suffix)]
        assert fix.prompt.startswith(head)
        turn = fix.prompt[len(head):]
        assert turn.startswith(suffix + parent.response.strip() + "<|im_end|>\n<|im_start|>user\n")
        assert parent.feedback.splitlines()[0] in turn and fix.prompt.endswith(suffix)


def test_a_chat_pair_holds_what_sampling_saw_and_trains_to_the_end_of_the_turn(
        chat_world, judged, tmp_path):
    from peft import LoraConfig
    from trl import DPOConfig

    from tasks.pairs import load_pair_dataset, mine_pairs, write_pairs
    from tasks.training import _trainer_class

    cfg, _, _, backend = chat_world
    mined = mine_pairs(judged, cfg.pairs)
    assert mined.pairs
    by_id = {a.id: a for a in judged}
    for pair in mined.pairs:
        chosen, rejected = by_id[pair.chosen_id], by_id[pair.rejected_id]
        assert pair.prompt == chosen.prompt == rejected.prompt  # one prompt, as sampled
        assert (pair.chosen, pair.rejected) == (chosen.response, rejected.response)
    tokenizer = backend.tokenizer
    dataset = load_pair_dataset(write_pairs(mined.pairs, tmp_path / "pairs.jsonl").path)
    args = DPOConfig(output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False,
                     report_to="none", max_length=512)
    trainer = _trainer_class()(model=backend.model, args=args, train_dataset=dataset,
                               processing_class=tokenizer,
                               peft_config=LoraConfig(r=2, task_type="CAUSAL_LM"))
    for row, pair in zip(trainer.train_dataset, mined.pairs):
        # the prompt's tokens are the sampled prompt's tokens, and the answer ends the turn
        assert row["prompt_ids"] == tokenizer(pair.prompt)["input_ids"]
        assert tokenizer.decode(row["chosen_ids"][:-1]) == pair.chosen
        assert row["chosen_ids"][-1] == tokenizer.eos_token_id


def test_evaluation_judges_in_the_specialists_chat_format(chat_world, sandbox, tmp_path):
    from tasks.evaluation import evaluate
    from tasks.records import Attempt

    cfg, problems, policy, backend = chat_world
    assert cfg.evaluation.prompt_style is None  # follows the specialists
    result = evaluate(problems, backend, policy.id, "toy", cfg.evaluation, cfg.sampling,
                      cfg.sandbox, sandbox, tmp_path, "dev")
    shown = [Attempt.model_validate_json(line)
             for line in (tmp_path / "attempts.jsonl").read_text().splitlines()]
    by_id = {p.id: p for p in problems}
    for a in shown:
        assert a.prompt == render(by_id[a.problem_id].prompt, "chat", "", backend.tokenizer)
    assert 0 < result.pass1_greedy + (result.pass1_sampled or 0)
    # asked for the other format, it shows the problem as published
    completion = cfg.evaluation.model_copy(update={"prompt_style": "completion"})
    evaluate(problems[:1], backend, policy.id, "toy", completion, cfg.sampling, cfg.sandbox,
             sandbox, tmp_path / "completion", "dev")
    first = Attempt.model_validate_json(
        (tmp_path / "completion" / "attempts.jsonl").read_text().splitlines()[0])
    assert first.prompt == problems[0].prompt
