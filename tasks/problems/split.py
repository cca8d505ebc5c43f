"""Choosing problems, and the three disjoint sets of a run.

`load_suite` reads a suite by name or a JSONL file (a new source is added here), `select` draws a
seeded subset and `check_disjoint` refuses training and evaluation sets that share a problem.
`split_problems` splits the suites into the training pool, dev and test without near-duplicates
across them (`near_duplicates`; a training suite that is not the dev suite is also held against
all of HumanEval and MBPP, `BENCHMARKS`, by prompt and by reference code: `reference_key`),
and `draw_train` draws a cycle's training problems from the pool (by pass history with
`problems.curriculum`: curriculum.py). The guard every stage that learns runs on its input is in
leaks.py.
"""

from __future__ import annotations

import ast
import hashlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Sequence

from pydantic import BaseModel, ConfigDict

from tasks.names import SUITES
from tasks.problems.codeio import code_lines, load_codeio
from tasks.problems.examples import NoExample, show_examples
from tasks.problems.humaneval import load_humaneval
from tasks.problems.jsonl import load_jsonl
from tasks.problems.mbpp import load_mbpp
from tasks.problems.records import Problem, select
from tasks.schema import ProblemsConfig

if TYPE_CHECKING:  # curriculum.py imports this module
    from tasks.problems.curriculum import Draw, PassRow

# ---------------------------------------------------------------------------------------------
# Choosing problems
# ---------------------------------------------------------------------------------------------


def load_suite(spec: str) -> list[Problem]:
    """"humaneval", "mbpp", "codeio" (built in the sandbox the first time: minutes), or a path to
    a .jsonl file of your own problems."""
    name = spec.strip().lower()
    if name == "humaneval":
        return load_humaneval()
    if name == "mbpp":
        return load_mbpp()
    if name == "codeio":
        return load_codeio()
    if spec.endswith(".jsonl"):
        return load_jsonl(Path(spec))
    raise ValueError(f"Unknown problem suite {spec!r}: use one of {', '.join(SUITES)}, or a "
                     "path to a .jsonl file (format at the top of "
                     "tasks/problems/__init__.py)")


def _normalized(prompt: str) -> str:
    return " ".join(prompt.lower().split())


class ContaminationError(ValueError):
    """Training and evaluation sets share a problem; `clashes` holds (train id, eval id, reason)."""

    def __init__(self, clashes: list[tuple[str, str, str]]) -> None:
        self.clashes = clashes
        lines = "\n".join(f"  train {t!r} <-> eval {e!r}: {why}" for t, e, why in clashes)
        super().__init__(
            f"{len(clashes)} training problem(s) also appear in the evaluation set, which would "
            f"inflate the evaluation score. Remove them from one side:\n{lines}"
        )


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
# Held out: dev and test problems never become training data
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Decontamination, the split, the per-cycle draw
# ---------------------------------------------------------------------------------------------


BENCHMARKS = ("humaneval", "mbpp")
"""The suites a training suite that is not the dev suite is always decontaminated against, whole,
whatever the run's dev and test suites are: the published benchmarks the policy is measured on."""


class Excluded(BaseModel):
    """A problem decontamination took out, and the held-out problem it is too close to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    set: Literal["train", "dev"]  # the set it was taken out of ("dev" when train and dev share
    # a suite and it is too close to a test problem: it then leaves both)
    near: str  # the problem it duplicates (the nearest one, for the embedding rule)
    near_set: Literal["dev", "test", "benchmark"]  # "dev" and "test": of the dev or test suite
    # (drawn or not); "benchmark": of HumanEval or MBPP when neither is the run's dev or test suite
    similarity: float  # cosine of the two prompts' embeddings (1.0 for an exact match)
    reason: str


def _reference_tree(problem: Problem) -> ast.Module | None:
    """The parsed reference program; None when the problem has no reference (or an empty one) or
    it does not parse."""
    if problem.solution is None or not problem.solution.strip():
        return None
    with warnings.catch_warnings():  # invalid escape sequences in some references
        warnings.simplefilter("ignore")
        try:
            return ast.parse(problem.reference_program)
        except SyntaxError:
            return None


def reference_key(problem: Problem) -> str | None:
    """The problem's reference code, normalized: `ast.dump` of its entry point's body without the
    docstring (names kept; layout, comments and the function's own name ignored). None when it
    has no reference, or the reference does not parse or define the entry point."""
    tree = _reference_tree(problem)
    if tree is None:
        return None
    for node in tree.body:
        if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and node.name == problem.entry_point):
            body = node.body
            if ast.get_docstring(node, clean=False) is not None:
                body = body[1:]
            return ast.dump(ast.Module(body=body, type_ignores=[])) if body else None
    return None


def near_duplicates(problems: Sequence[Problem], references: Sequence[Problem],
                    threshold: float | None, embed=None,
                    code: bool = False) -> dict[str, tuple[str, float, str]]:
    """For each problem that duplicates a reference: (reference id, similarity, reason).

    Exact duplicates (same id, or same prompt ignoring case and whitespace; with `code`, also the
    same reference code, `reference_key`, where both have a reference) always count; with a
    `threshold`, so does a cosine similarity ≥ threshold between the prompts' embeddings
    (`embed(texts)` gives unit vectors), against the nearest reference."""
    found: dict[str, tuple[str, float, str]] = {}
    by_prompt = {_normalized(r.prompt): r.id for r in references}
    by_code: dict[str, str] = {}
    for r in references if code else ():
        key = reference_key(r)
        if key is not None:
            by_code.setdefault(key, r.id)
    ids = {r.id for r in references}
    for p in problems:
        key = reference_key(p) if by_code else None
        if p.id in ids:
            found[p.id] = (p.id, 1.0, "same id")
        elif _normalized(p.prompt) in by_prompt:
            found[p.id] = (by_prompt[_normalized(p.prompt)], 1.0, "same prompt")
        elif key is not None and key in by_code:
            found[p.id] = (by_code[key], 1.0, "same reference code (ast, names kept)")
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


def reference_lines(problem: Problem) -> int | None:
    """Lines of code of the problem's reference (`prompt + solution`), as the CodeI/O build's
    `max_lines` counts them (`code_lines`); None when it has no reference or it does not parse."""
    tree = _reference_tree(problem)
    return None if tree is None else code_lines(problem.reference_program, tree)


class TooLong(BaseModel):
    """A training problem `problems.train_max_lines` left out of the pool."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    lines: int  # its reference's lines of code (`reference_lines`)


def shorter_references(pool: Sequence[Problem],
                       max_lines: int | None) -> tuple[list[Problem], list[TooLong]]:
    """The pool less the problems whose reference is over `max_lines` lines of code, and those;
    the whole pool when `max_lines` is None. A problem without a parseable reference cannot be
    measured: it is an error, never a silent keep or drop."""
    if max_lines is None:
        return list(pool), []
    measured = [(p, reference_lines(p)) for p in pool]
    unmeasured = [p.id for p, n in measured if n is None]
    if unmeasured:
        raise ValueError(
            f"problems.train_max_lines is {max_lines}, but {len(unmeasured)} training problem(s) "
            f"have no reference solution that parses (first: {unmeasured[0]!r}): the filter "
            "counts the reference's lines. Use a training suite with references (codeio, or a "
            "JSONL file whose rows have `solution`), or set problems.train_max_lines to null")
    kept = [p for p, n in measured if n <= max_lines]
    if not kept:
        shortest = min(n for _, n in measured)
        raise ValueError(f"problems.train_max_lines is {max_lines}, but the shortest reference "
                         f"in the training pool has {shortest} lines of code: raise it")
    return kept, [TooLong(id=p.id, lines=n) for p, n in measured if n > max_lines]


class Split(BaseModel):
    """The three sets of a run: the training pool (each cycle draws from it), dev and test."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pool: list[Problem]
    dev: list[Problem]
    test: list[Problem]
    excluded: list[Excluded]
    without_example: list[NoExample] = []  # MBPP problems left without one (`show_example`)
    too_long: list[TooLong] = []  # left out of the pool by `problems.train_max_lines`


def _memoized(embed):
    seen: dict[str, list[float]] = {}

    def once(texts: list[str]) -> list[list[float]]:
        new = [t for t in dict.fromkeys(texts) if t not in seen]
        seen.update(zip(new, embed(new)) if new else ())
        return [seen[t] for t in texts]
    return once


def split_problems(cfg: ProblemsConfig, embed=None, load=None) -> Split:
    """Test drawn first; dev from the dev suite minus near-duplicates of any test-suite problem
    (all of what is left when `dev_n` is None); then the training pool:

    - training suite = dev suite (MBPP for both): what the dev draw left, minus near-duplicates
      of dev problems (and of any test-suite problem, already out of the dev suite);
    - another training suite (`codeio`): all of it, minus every problem that duplicates any
      problem of the test suite, of the dev suite (drawn or not, also those decontamination took
      out of dev) or of `BENCHMARKS` (HumanEval, MBPP), by id, prompt, reference code or prompt
      embedding (`near_duplicates` with `code`), each listed once with its nearest match;

    then, with `cfg.train_max_lines`, the pool less the problems whose reference is longer
    (`shorter_references`).

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

    def drop(problems, refs, from_set, ref_set, code=False):
        """`problems` less the near-duplicates of `refs`; `ref_set(id)` names a ref's set."""
        near = near_duplicates(problems, refs, cfg.near_duplicate, embed, code)
        where = ref_set if callable(ref_set) else (lambda rid: ref_set)
        excluded.extend(Excluded(id=pid, set=from_set, near=rid, near_set=where(rid),
                                 similarity=sim, reason=why)
                        for pid, (rid, sim, why) in sorted(near.items()))
        return [p for p in problems if p.id not in near]

    # against the whole test suite, not only the drawn test problems: a smaller test draw today
    # must not leave near-duplicates of the rest of the suite in training data
    dev_all = load(cfg.dev)
    dev_suite = drop(dev_all, test_suite, "dev", "test")
    if cfg.dev_n is not None and cfg.dev_n > len(dev_suite):
        raise ValueError(f"problems.dev_n is {cfg.dev_n}, but the dev suite {cfg.dev!r} has "
                         f"{len(dev_suite)} problems after decontamination: lower dev_n, or "
                         "set it to null for all of them")
    dev = select(dev_suite, cfg.dev_n, cfg.dev_seed)
    dev_ids = {p.id for p in dev}
    if cfg.train == cfg.dev:
        # one suite: the pool is what the dev draw left, already free of test's near-duplicates
        # (listed once, under "dev"); the dev problems themselves are not duplicates
        train_suite = [p for p in dev_suite if p.id not in dev_ids]
        pool = drop(train_suite, dev, "train", "dev")
    else:
        # another source: held against every problem anything is measured on, drawn or not
        refs: dict[str, tuple[Problem, str]] = {}
        suites = [(test_suite, "test"), (dev_all, "dev")] + [
            (load(name), "benchmark") for name in BENCHMARKS
            if name not in (cfg.train, cfg.dev, cfg.test)]
        for suite, role in suites:
            for r in suite:
                refs.setdefault(r.id, (r, role))
        pool = drop(load(cfg.train), [r for r, _ in refs.values()], "train",
                    lambda rid: refs[rid][1], code=True)
    if not pool:
        raise ValueError(f"no training problems are left in {cfg.train!r} after taking out the "
                         "dev problems and near-duplicates: use a larger suite or a smaller "
                         "problems.dev_n")
    pool, too_long = shorter_references(pool, cfg.train_max_lines)
    without: list[NoExample] = []
    if cfg.show_example:  # only now: decontamination compared the prompts without examples
        (pool, missing_pool), (dev, missing_dev), (test, missing_test) = (
            show_examples(s) for s in (pool, dev, test))
        without = missing_pool + missing_dev + missing_test
    return Split(pool=pool, dev=dev, test=test, excluded=excluded, without_example=without,
                 too_long=too_long)


def draw_seed(cfg: ProblemsConfig, run_id: str, cycle: int) -> int:
    """The seed of a cycle's training draw: `train_seed`, the run and the cycle mixed when
    `rotate`, else `train_seed`."""
    if not cfg.rotate:
        return cfg.train_seed
    text = f"{cfg.train_seed}|{run_id}|{cycle}"
    return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)


def draw_train(pool: Sequence[Problem], cfg: ProblemsConfig, run_id: str, cycle: int,
               history: Sequence[PassRow] | None = None) -> list[Problem]:
    """The training problems of one cycle: `train_n` of the pool (all of it when None), drawn
    with `draw_seed`. With `problems.curriculum.enabled`, by pass history (`history`: the rows
    the cycle sees, tasks/problems/curriculum.py)."""
    return draw_train_explained(pool, cfg, run_id, cycle, history).problems


def draw_train_explained(pool: Sequence[Problem], cfg: ProblemsConfig, run_id: str, cycle: int,
                         history: Sequence[PassRow] | None = None) -> Draw:
    """`draw_train`, with why each pool problem was drawn or not."""
    from tasks.problems.curriculum import Draw, curriculum_draw  # it builds on `select`

    seed = draw_seed(cfg, run_id, cycle)
    if cfg.train_n is not None and cfg.train_n > len(pool):
        raise ValueError(f"problems.train_n is {cfg.train_n}, but the training pool has "
                         f"{len(pool)} problems (after taking out dev problems and "
                         "near-duplicates, and problems.train_max_lines' longer references): "
                         "lower train_n, or leave it unset to use them all")
    if not cfg.curriculum.enabled:
        return Draw.plain(pool, select(list(pool), cfg.train_n, seed))
    if history is None:
        raise ValueError("problems.curriculum.enabled: the draw depends on the pass history, "
                         "which only the run itself knows cycle by cycle; pass `history` (the "
                         "rows the cycle sees, [] for none: tasks/problems/curriculum.py)")
    return curriculum_draw(pool, cfg.train_n, seed, cfg.curriculum, history)
