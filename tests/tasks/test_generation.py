"""Generation: cutting at stops, extracting programs whichever way the model wrote them, rendering,
and the batched HF backend on the tiny model."""

import pytest

from tasks.generation import HFBackend, Settings, extract_program, render, truncate_at_stops

PROMPT = 'import math\n\n\ndef area(r: float) -> float:\n    """Area of a circle."""\n'


def test_body_continuation_is_cut_at_the_first_stop():
    body = "    return math.pi * r * r\n\n\ndef other():\n    pass\nprint(area(1))\n"
    assert truncate_at_stops(body) == "    return math.pi * r * r\n"
    program = extract_program(PROMPT, body, "area", "completion")
    assert program == PROMPT + "    return math.pi * r * r\n"
    compile(program, "<p>", "exec")


def test_main_block_and_test_asserts_are_cut():
    body = "    return 1.0\n\nif __name__ == '__main__':\n    print(area(2))\n"
    assert extract_program(PROMPT, body, "area", "completion").endswith("return 1.0\n")
    body = "    return 1.0\n\nassert area(0) == 0\n"
    assert "assert" not in extract_program(PROMPT, body, "area", "completion")


def test_fenced_block_with_the_whole_function_keeps_the_prompt_imports():
    text = ("Here is the solution:\n```python\ndef area(r):\n    return math.pi * r ** 2\n```\n"
            "It uses the formula.")
    for style in ("chat", "completion"):
        program = extract_program(PROMPT, text, "area", style)
        assert program.startswith("import math\n")
        assert "def area(r):\n    return math.pi * r ** 2\n" in program
        assert "It uses" not in program and '"""Area' not in program
        namespace = {}
        exec(program, namespace)
        assert namespace["area"](1.0) == pytest.approx(3.14159, rel=1e-4)


def test_the_block_defining_the_entry_point_wins():
    text = "```python\nx = 1\n```\n```python\ndef area(r):\n    return 0.0\n```\n"
    assert "def area(r):" in extract_program(PROMPT, text, "area", "chat")


def test_completion_rendering_with_examples_and_feedback_ends_on_the_prompt():
    text = render(PROMPT, "completion", "Think step by step.", examples=["def f():\n    return 1"],
                  feedback=("def area(r):\n    return r", "area(1.0) returned 1.0"))
    assert text.endswith(PROMPT)
    assert "# Think step by step." in text and "def f():" in text
    assert "area(1.0) returned 1.0" in text
    compile(text + "    pass\n", "<rendered>", "exec")  # the comments keep it valid Python


@pytest.fixture(scope="module")
def tiny_backend():
    from tasks.names import TINY_BASE
    from tasks.policy import base_policy, load_policy

    model, tokenizer = load_policy(base_policy(TINY_BASE), dtype="float32")
    return HFBackend(model, tokenizer)


def test_chat_rendering_uses_the_template_and_system_prompt(tiny_backend):
    text = render(PROMPT, "chat", "You are careful.", tokenizer=tiny_backend.tokenizer)
    assert "You are careful." in text and "def area" in text
    assert text.rstrip().endswith("assistant")


def test_chat_body_rendering_begins_the_answer_with_the_prompt(tiny_backend):
    """chat_body: the chat conversation, and the assistant's answer begun as a block holding the
    problem's prompt; the model's continuation is a body, read as completion style reads one."""
    from tasks.generation import answer_complete, extract

    tokenizer = tiny_backend.tokenizer
    chat = render(PROMPT, "chat", "You are careful.", tokenizer=tokenizer)
    text = render(PROMPT, "chat_body", "You are careful.", tokenizer=tokenizer)
    assert text == chat + "```python\n" + PROMPT
    no_newline = render(PROMPT.rstrip("\n"), "chat_body", "", tokenizer=tokenizer)
    assert no_newline.endswith('"""Area of a circle."""\n')
    program = extract(PROMPT.rstrip("\n"), "    return r\n```", "area", "chat_body")[1]
    assert program == PROMPT + "    return r\n"  # the body on a line of its own, as rendered
    answer = "    return math.pi * r * r\n```\n\nThis function computes the area."
    assert not answer_complete(answer[:20], "chat_body")
    assert answer_complete(answer[:answer.index("```") + 3], "chat_body")
    response, program = extract(PROMPT, answer, "area", "chat_body")
    assert response == "    return math.pi * r * r\n" and program == PROMPT + response
    # a self-debug turn shows the failed program as the assistant's whole block, then begins
    # the next answer the same way
    fix = render(PROMPT, "chat_body", "", tokenizer=tokenizer,
                 feedback=(PROMPT + "    return r\n", "area(1.0) returned 1.0"))
    assert "```python\n" + PROMPT + "    return r\n```" in fix
    assert fix.endswith("```python\n" + PROMPT) and "area(1.0) returned 1.0" in fix


def test_backend_returns_n_completions_per_prompt_in_batches(tiny_backend):
    prompts = [PROMPT, "def add(a, b):\n", "def neg(x):\n"]
    out = tiny_backend.generate(prompts, Settings(temperature=0.8, n=3, max_new_tokens=8,
                                                  seed=1, batch_size=4))
    assert [len(c) for c in out] == [3, 3, 3]
    assert all(isinstance(c, str) for cs in out for c in cs)
    again = tiny_backend.generate(prompts, Settings(temperature=0.8, n=3, max_new_tokens=8,
                                                    seed=1, batch_size=4))
    assert again == out  # same seed, same samples
    other = tiny_backend.generate(prompts, Settings(temperature=0.8, n=3, max_new_tokens=8,
                                                    seed=2, batch_size=4))
    assert other != out


def test_a_seed_gives_the_same_samples_while_another_thread_generates(tiny_backend):
    """Shards on the thread pool sample side by side in one process; transformers draws from
    torch's global generator, so without the backend's lock they drew from each other's stream
    (5 of 5 concurrent runs differed from the same runs alone)."""
    from concurrent.futures import ThreadPoolExecutor

    prompts = ["def add(a, b):\n", "def neg(x):\n", "def sq(x):\n"]

    def run(seed):
        return tiny_backend.generate(prompts, Settings(temperature=1.0, n=4, max_new_tokens=24,
                                                       seed=seed, batch_size=2))

    alone = [run(1), run(2)]
    assert alone[0] != alone[1]
    for _ in range(3):
        with ThreadPoolExecutor(2) as pool:
            assert list(pool.map(run, (1, 2))) == alone


def test_greedy_is_deterministic_and_independent_of_batching(tiny_backend):
    prompts = ["def add(a, b):\n", "def neg(x):\n"]
    one = tiny_backend.generate(prompts, Settings(temperature=0.0, max_new_tokens=8,
                                                  batch_size=1))
    two = tiny_backend.generate(prompts, Settings(temperature=0.0, max_new_tokens=8,
                                                  batch_size=2))
    assert one == two


def test_prose_after_a_closing_fence_is_cut_and_the_body_kept():
    """What Qwen writes in completion style: the body, a stray fence, then an explanation."""
    from tasks.generation import extract

    text = ("    return math.pi * r * r\n\n# Test the function\nprint(area(1))\n```\n\n"
            "This code snippet defines a function `area` that ...")
    response, program = extract(PROMPT, text, "area", "completion")
    assert response == "    return math.pi * r * r\n"
    assert program == PROMPT + response
    text = "    return math.pi * r * r\n```\nThe function uses ```math.pi```."
    assert extract(PROMPT, text, "area", "completion")[1] == PROMPT + "    return math.pi * r * r\n"


def test_a_fenced_answer_in_completion_style_gives_the_block_as_the_response():
    from tasks.generation import extract

    text = "\n```python\ndef area(r):\n    return 3.0 * r * r\n```\nDone."
    response, program = extract(PROMPT, text, "area", "completion")
    assert response == "\n```python\ndef area(r):\n    return 3.0 * r * r\n```"
    assert program.startswith("import math\n") and program.endswith(
        "def area(r):\n    return 3.0 * r * r\n")
    assert "Done" not in program


def test_a_body_is_complete_at_a_stop_after_code_or_when_its_fence_closes():
    from tasks.generation import body_complete

    assert not body_complete("    return 1")
    assert body_complete("    return 1\n\ndef other():")
    assert not body_complete("\ndef f():")  # a stop before any code is not an end
    assert not body_complete("```python\ndef f():\n    return 1\n")
    assert body_complete("```python\ndef f():\n    return 1\n```")


def test_early_stopping_gives_what_extraction_would_keep(tiny_backend):
    """Stopping at a complete body changes nothing that `extract` keeps."""
    from tasks.generation import extract

    prompts = [PROMPT, 'def f(x):\n    """Return x."""\n']
    full = tiny_backend.generate(prompts, Settings(temperature=0.0, n=1, max_new_tokens=48))
    early = tiny_backend.generate(prompts, Settings(temperature=0.0, n=1, max_new_tokens=48,
                                                    stop_early=True))
    for prompt, (a,), (b,) in zip(prompts, full, early):
        assert len(b) <= len(a)
        assert extract(prompt, a, "area", "completion") == extract(prompt, b, "area", "completion")


def test_top_level_example_code_after_the_body_is_cut():
    """What made a real candidate fail: example usage cut off by max_new_tokens."""
    text = ("    return x * 2\n\n# Example usage\nX = [1, 2\n")
    assert truncate_at_stops(text) == "    return x * 2\n"
    body = "    # a comment\n    y = 1\n# a top-level comment is fine\n    return y\n"
    assert truncate_at_stops(body) == body  # only code at column 0 ends the body
