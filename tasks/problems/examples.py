"""MBPP examples: each prompt shows its first test case as a doctest at the end of its docstring
(`with_example`, `show_examples`); `NoExample` says why a problem could not show one."""

from __future__ import annotations

import ast
import builtins
import re
from typing import Sequence

from pydantic import BaseModel, ConfigDict

from tasks.problems.records import Problem

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
