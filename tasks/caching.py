"""Content-keyed caching for the stage tasks.

Prefect's DEFAULT cache policy includes the flow run id, so a new flow run (a resumed night)
re-executes everything. Our key is instead the hash of

  - the task's name,
  - the source of the code it runs (its module, the records, generation, the sandbox runner),
  - its parameters: records carrying content hashes (`Shard.sha256`, `Policy.id`), the config
    sections it reads, and the directory it writes to,

so re-running the same run after a crash returns every finished task from the run store
(`Cached` in the Prefect UI) and executes the rest. Results are persisted (pickled records of a few
hundred bytes) under `<run>/.results/`; the data they name lives beside them in the run store.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
SHARED_SOURCES = ("tasks/records.py", "tasks/generation.py", "tasks/caching.py",
                  "tasks/policy.py", "sandbox/contract.py", "sandbox/engine.py",
                  "sandbox/runner/*.py")


@lru_cache(maxsize=None)
def _file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def source_hash(fn) -> str:
    """Hash of the module defining `fn` plus the code every stage shares."""
    files = [inspect.getsourcefile(fn)] + [str(p) for pattern in SHARED_SOURCES
                                           for p in sorted(ROOT.glob(pattern))]
    return hashlib.sha256("".join(_file_hash(f) for f in files).encode()).hexdigest()[:16]


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
