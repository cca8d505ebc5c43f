"""Your own problems: a JSONL file, one JSON object per line (the format is in the package
docstring, tasks/problems/__init__.py). HumanEval, which ships as gzipped JSONL, is read with
`_jsonl_objects` too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from tasks.problems.records import (
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    Problem,
    ProblemFormatError,
    _problem_from_row,
    _reject_duplicate_ids,
)


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
    """Your own problems: one JSON object per line (format in the package docstring)."""
    path = Path(path)
    file = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"No problem file at {path}: check the path (the format is "
                                "described at the top of tasks/problems/__init__.py)")
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
                                 "tasks/problems/__init__.py)")
    _reject_duplicate_ids(rows, file, "id")
    return [problem for _, problem in rows]
