"""What a stage's cache key hashes (tasks/caching.py): the code it can run, and no more, so that
editing a problem source re-runs the stages that read it and leaves the learning stages cached."""

import ast
import inspect
from pathlib import Path

import pytest

from tasks.caching import ROOT, _imports, dependencies

SOURCES = ["tasks/problems/codeio.py", "tasks/problems/codeio_driver.py",
           "tasks/problems/mbpp.py", "tasks/problems/humaneval.py", "tasks/problems/split.py",
           "tasks/problems/curriculum.py"]


def files_of(module_file: str) -> set[str]:
    files, _ = dependencies(str(ROOT / module_file))
    return {str(Path(f).relative_to(ROOT)) for f in files}


@pytest.mark.parametrize("stage", ["tasks/pairs.py", "tasks/training.py", "tasks/memory.py",
                                   "tasks/execution.py", "tasks/sampling.py",
                                   "tasks/debugging.py", "tasks/explore.py",
                                   "tasks/evaluation.py"])
def test_the_stages_that_read_problems_do_not_depend_on_their_sources(stage):
    files = files_of(stage)
    assert not files & set(SOURCES), sorted(files & set(SOURCES))
    assert "tasks/progress.py" not in files  # it only reports: editing it re-runs nothing
    if stage not in ("tasks/pairs.py", "tasks/training.py"):
        assert "tasks/problems/records.py" in files  # the record they read does count


def test_the_problems_package_re_exports_nothing():
    """Importing a name from `tasks.problems` itself would make the importer depend on every
    module the package imports: the package's __init__ imports nothing."""
    tree = ast.parse((ROOT / "tasks/problems/__init__.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    with pytest.raises(ImportError):
        exec("from tasks.problems import Problem", {})


def test_a_modules_command_line_is_not_part_of_its_key(tmp_path):
    module = tmp_path / "stage.py"
    module.write_text("import json\n\n\ndef work():\n    from tasks.names import SUITES\n\n\n"
                      "def main():\n    from tasks.problems.split import load_suite\n"
                      "    def inner():\n        import tasks.memory\n")
    names = _imports(module)
    assert {"json", "tasks.names", "tasks.names.SUITES"} <= names
    assert not {n for n in names if n.startswith(("tasks.problems", "tasks.memory"))}, names


def test_the_codeio_build_key_covers_the_code_the_build_runs():
    from tasks.problems.codeio import build_problems

    files, _ = dependencies(inspect.getsourcefile(build_problems))
    files = {str(Path(f).relative_to(ROOT)) for f in files}
    assert {"tasks/problems/codeio.py", "tasks/problems/codeio_driver.py",
            "tasks/problems/records.py", "tasks/records.py", "sandbox/engine.py",
            "sandbox/runner/program.py", "sandbox/runner/judge.py"} <= files
    assert not files & {"tasks/problems/curriculum.py", "tasks/problems/split.py",
                        "tasks/memory.py"}
