"""Memory: episodes, consolidation into deduplicated verified solutions, retrieval by similarity.
Real LanceDB in tmp_path and the real all-MiniLM-L6-v2 embedder (no mocks)."""

import math

import pytest

from tasks.memory import Embedder, Memory, MemoryStoreError, normalize_code
from tasks.names import EMBEDDER
from tasks.problems.records import Problem
from tasks.records import Attempt, attempt_id

REVERSE = Problem(id="rev", entry_point="reverse_string", source="test",
                  prompt='def reverse_string(s: str) -> str:\n    """Return s reversed."""\n',
                  tests="def check(candidate):\n    assert candidate('ab') == 'ba'\n")
SUM = Problem(id="sum", entry_point="sum_list", source="test",
              prompt='def sum_list(xs: list[float]) -> float:\n'
                     '    """Return the sum of a list of numbers."""\n',
              tests="def check(candidate):\n    assert candidate([1, 2]) == 3\n")
EVAL = Problem(id="HumanEval/0", entry_point="f", source="humaneval",
               prompt="def f(x):\n    pass\n", tests="def check(candidate):\n    pass\n")
PROBLEMS = {p.id: p for p in (REVERSE, SUM, EVAL)}

REVERSE_CODE = "def reverse_string(s: str) -> str:\n    return s[::-1]\n"
SUM_CODE = "def sum_list(xs):\n    return sum(xs)\n"
# How a user words a new problem about reversing text: no word shared with REVERSE's name.
QUERY_REVERSE = ('def backwards(text: str) -> str:\n'
                 '    """Give the characters of text in opposite order."""\n')
QUERY_SUM = 'def total(values):\n    """Add up all the numbers in a list."""\n'


def attempt(problem: Problem, code: str, status: str | None = "passed", turn: int = 0,
            sample: int = 0, cycle: int = 1) -> Attempt:
    passed = 2 if status == "passed" else 0
    return Attempt(id=attempt_id(problem.id, "A", "logical", sample, turn), problem_id=problem.id,
                   cycle=cycle, agent="A", specialist="logical", sample=sample, turn=turn,
                   policy_id="base", prompt=problem.prompt, response=code, code=code,
                   status=status, passed=passed if status else 0, total=2 if status else 0,
                   feedback="" if status == "passed" else "AssertionError")


def test_normalize_code_ignores_comments_docstrings_and_layout():
    plain = "def f(x):\n    return x + 1\n"
    dressed = ('"""Module doc."""\n# a comment\ndef f( x ):\n    """Add one."""\n\n'
               "    return (x+1)  # why not\n")
    assert normalize_code(plain) == normalize_code(dressed)
    assert normalize_code(plain) != normalize_code("def f(x):\n    return x + 2\n")
    # A function that is only a docstring still normalizes to valid code.
    assert normalize_code('def g():\n    """Doc."""\n') == "def g():\n    pass"
    # Code that does not parse is compared with whitespace collapsed.
    assert normalize_code("def f(:\n    return  1") == normalize_code("def f(:  return 1")


def test_embedder_gives_unit_vectors_and_refuses_unknown_names():
    vectors = Embedder().embed(["reverse a string", "sum a list of numbers"])
    assert [len(v) for v in vectors] == [384, 384]
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)
    with pytest.raises(MemoryStoreError, match=EMBEDDER):  # the message names the one that works
        Embedder("all-mpnet-base-v2")


def test_episodes_written_twice_stay_one_row_each(tmp_path):
    memory = Memory(tmp_path / "mem")
    attempts = [attempt(REVERSE, REVERSE_CODE), attempt(SUM, "def sum_list(xs): return 0\n",
                                                         status="failed")]
    assert memory.write_episodes(attempts, run="r1") == 2
    assert memory.write_episodes(attempts, run="r1") == 2  # updated in place, not appended
    assert memory.count("episodes") == 2
    memory.write_episodes(attempts, run="r2")  # another run is another episode
    assert memory.count("episodes") == 4


def test_attempt_without_verdict_is_refused(tmp_path):
    memory = Memory(tmp_path / "mem")
    fresh = attempt(SUM, SUM_CODE, status=None)
    with pytest.raises(MemoryStoreError, match="sum/A/logical/s0/t0"):
        memory.write_episodes([attempt(REVERSE, REVERSE_CODE), fresh], run="r1")
    with pytest.raises(MemoryStoreError, match="sum/A/logical/s0/t0"):
        memory.consolidate([attempt(REVERSE, REVERSE_CODE), fresh], PROBLEMS, "r1", set())
    assert memory.count("episodes") == 0 and memory.count("semantic") == 0


def test_consolidation_keeps_passing_code_once(tmp_path):
    memory = Memory(tmp_path / "mem")
    fixed_by_debugging = "def reverse_string(s: str) -> str:\n    return s[::-1]  # fixed\n"
    attempts = [
        attempt(REVERSE, fixed_by_debugging, turn=1),  # same program as the next one, more turns
        attempt(REVERSE, REVERSE_CODE, sample=1),
        attempt(REVERSE, "def reverse_string(s):\n    return s\n", sample=2, status="failed"),
        attempt(SUM, SUM_CODE),
    ]
    stats = memory.consolidate(attempts, PROBLEMS, "r1", eval_ids={"HumanEval/0"})
    assert (stats.episodes, stats.verified, stats.written, stats.duplicates) == (4, 3, 2, 1)
    assert stats.version == memory.version() > 0
    assert memory.count("semantic") == 2
    # The first try is kept over the debugged copy of the same program.
    assert memory.retrieve([REVERSE.prompt], k=1) == [[REVERSE_CODE]]

    # Consolidating the same attempts again (a retried task) adds nothing.
    again = memory.consolidate(attempts, PROBLEMS, "r1", eval_ids={"HumanEval/0"})
    assert (again.written, again.duplicates) == (0, 3)
    assert memory.count("semantic") == 2 and memory.count("episodes") == 4
    # A later cycle re-finding a known program, reformatted, is a duplicate too.
    later = memory.consolidate([attempt(SUM, "def sum_list(xs):  # again\n    return sum(xs)",
                                        cycle=2)], PROBLEMS, "r1", eval_ids=set())
    assert (later.written, later.duplicates) == (0, 1)


def test_evaluation_problems_never_enter_memory(tmp_path):
    memory = Memory(tmp_path / "mem")
    attempts = [attempt(REVERSE, REVERSE_CODE), attempt(EVAL, "def f(x):\n    return x\n")]
    with pytest.raises(MemoryStoreError, match="HumanEval/0"):
        memory.consolidate(attempts, PROBLEMS, "r1", eval_ids=frozenset({"HumanEval/0"}))
    with pytest.raises(MemoryStoreError, match="missing"):  # a problem we were not given
        memory.consolidate([attempt(REVERSE.model_copy(update={"id": "missing"}), REVERSE_CODE)],
                           PROBLEMS, "r1", eval_ids=set())
    assert memory.count("episodes") == 0 and memory.count("semantic") == 0
    assert memory.version() == 0


def test_retrieve_nearest_first_without_own_problem_and_as_of_a_version(tmp_path):
    memory = Memory(tmp_path / "mem")
    first = memory.consolidate([attempt(REVERSE, REVERSE_CODE)], PROBLEMS, "r1", set())
    second = memory.consolidate([attempt(SUM, SUM_CODE, cycle=2)], PROBLEMS, "r1", set())
    assert second.version > first.version

    # Each query gets the memory of the problem most like it first.
    assert memory.retrieve([QUERY_REVERSE, QUERY_SUM], k=2) == [[REVERSE_CODE, SUM_CODE],
                                                                [SUM_CODE, REVERSE_CODE]]
    # A problem's own memory is never handed back to it, and k stays filled from the rest.
    assert memory.retrieve([REVERSE.prompt, SUM.prompt], k=1,
                           exclude_problem_ids=["rev", None]) == [[SUM_CODE], [SUM_CODE]]
    # Another run's dev or test problems (the memory is shared by a store) are never shown.
    assert memory.retrieve([QUERY_REVERSE, QUERY_SUM], k=2, never=["sum"]) == \
        [[REVERSE_CODE], [REVERSE_CODE]]
    assert memory.retrieve([QUERY_SUM], k=2, exclude_problem_ids=["rev"], never=["sum"]) == [[]]
    # Read as of the first consolidation: the sum memory did not exist yet.
    assert memory.retrieve([QUERY_SUM], k=2, version=first.version) == [[REVERSE_CODE]]
    assert memory.retrieve([QUERY_SUM], k=2, version=0) == [[]]
    with pytest.raises(MemoryStoreError, match="no version 999"):
        memory.retrieve([QUERY_SUM], k=2, version=999)


def test_nothing_to_retrieve_gives_empty_lists(tmp_path):
    memory = Memory(tmp_path / "mem")
    assert memory.retrieve([QUERY_REVERSE, QUERY_SUM], k=2) == [[], []]  # no memory yet
    memory.consolidate([attempt(REVERSE, REVERSE_CODE)], PROBLEMS, "r1", set())
    assert memory.retrieve([QUERY_REVERSE, QUERY_SUM], k=0) == [[], []]
    assert memory.retrieve([QUERY_REVERSE], k=3) == [[REVERSE_CODE]]  # fewer than k exist


WRITER = """
import sys
sys.path.insert(0, {root!r})
from tasks.memory import Memory
from tests.tasks.test_memory import attempts_for
attempts = attempts_for({n})
memory = Memory({db!r})
print("writing", flush=True)
memory.write_episodes(attempts, "r")
print("written", flush=True)
"""


def test_a_write_killed_at_any_moment_leaves_all_or_nothing_and_rewrites_cleanly(tmp_path):
    """A writer killed with SIGKILL at five moments spread over its write: every time the next
    reader sees the batch whole or not at all (LanceDB commits by writing its version manifest
    last), and the rewrite, as a resumed consolidation does it, holds each row exactly once."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import lancedb

    from tasks.memory import EPISODES, Memory
    from tasks.records import Attempt

    root = str(Path(__file__).resolve().parents[2])
    n = 30_000  # about 80 MB of rows

    def writer(db: Path) -> subprocess.Popen:
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER.format(root=root, db=str(db), n=n)],
            stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "writing"
        return child

    def fresh(name: str) -> Path:
        db = tmp_path / name
        Memory(db).write_episodes([Attempt(
            id="small", problem_id="p", cycle=1, agent="A", specialist="s", sample=0, turn=0,
            policy_id="x", prompt="", response="", code="y = 2\n", status="failed", passed=0,
            total=3, feedback="")], "r")
        return db

    # how long a whole write takes, from the moment the writer says it starts
    timed = writer(fresh("timed"))
    started = time.monotonic()
    assert timed.stdout.readline().strip() == "written"
    span = time.monotonic() - started
    timed.wait(timeout=60)

    outcomes = []
    for k in range(1, 6):
        db = fresh(f"killed-{k}")
        child = writer(db)
        time.sleep(span * k / 6)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        seen = Memory(db).count(EPISODES)
        assert seen in (1, n + 1), f"killed at {k}/6 of the write: {seen} rows visible"
        outcomes.append(seen)
        Memory(db).write_episodes(attempts_for(n), "r")  # the resumed consolidation
        ids = lancedb.connect(db).open_table(EPISODES).to_arrow().column("id").to_pylist()
        assert len(ids) == n + 1 and len(set(ids)) == n + 1
    assert 1 in outcomes, "no kill landed before the commit: the write was not interrupted"


def attempts_for(n: int):
    from tasks.records import Attempt

    return [Attempt(id=f"big-{i}", problem_id="p", cycle=1, agent="A", specialist="s", sample=i,
                    turn=0, policy_id="x", prompt="", response="", code="x = 1\n" * 400,
                    status="failed", passed=0, total=3, feedback="f" * 200) for i in range(n)]
