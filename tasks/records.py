"""Records: the small typed things stages hand each other, and the files they name.

An `Attempt` is one candidate program: who wrote it (agent, specialist, sample, debug turn), the
exact text the policy saw (`prompt`) and wrote (`response`), the program extracted from it
(`code`), and, once executed, its verdict. Every stage reads and writes attempts as JSONL rows.

A `Shard` names a file in the run store with its content hash and row count; stage records carry
shards instead of rows, so Prefect passes (and caches) a few hundred bytes, not the data.

Files are written atomically (temporary file + rename), so a crash never leaves half a file that a
re-run would mistake for a finished one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Iterable, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T", bound=BaseModel)


class Attempt(BaseModel):
    """One candidate program and, after execution, its verdict."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str  # "<problem>/<agent>/<specialist>/s<sample>/t<turn>", unique within a cycle
    problem_id: str
    cycle: int
    agent: str
    specialist: str
    sample: int  # index among the samples of one (agent, specialist) on one problem
    turn: int  # 0: first try; 1..K: self-debug turns
    parent: str | None = None  # id of the attempt this turn tries to fix
    policy_id: str  # content name of the policy that wrote it
    prompt: str  # the exact text the policy saw (rendered, with examples / feedback)
    response: str  # the part of the model's output the program was taken from
    code: str  # the whole program handed to the sandbox
    # -- verdict (None until executed) ----------------------------------------------------------
    status: str | None = None  # sandbox.contract.STATUSES
    passed: int = 0
    total: int = 0
    held_out_passed: int = 0  # of the cases held out of feedback (`sandbox.held_out`)
    held_out_total: int = 0
    feedback: str = ""
    duration_s: float = 0.0

    @property
    def executed(self) -> bool:
        return self.status is not None

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    @property
    def reward(self) -> float:
        """The execution reward (0 before execution): the fraction of test cases passed; for a
        self-debug fix (turn ≥ 1), the fraction of the held-out cases, which no feedback ever
        described: a fix earns nothing for special-casing a call it was shown."""
        if self.turn > 0 and self.held_out_total:
            return self.held_out_passed / self.held_out_total
        return self.passed / self.total if self.total else 0.0

    @property
    def visible_reward(self) -> float:
        """Fraction of the cases feedback may describe (all of them when none are held out)."""
        shown = self.total - self.held_out_total
        return (self.passed - self.held_out_passed) / shown if shown else 0.0


class CycleContext(BaseModel):
    """What every task of a cycle shares; the first argument of each stage task.

    `memory_version` is the LanceDB version sampling retrieves from (what the previous cycle
    consolidated; 0 when memory is off). Each stage writes under `stage_dir(<stage>)`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    run_dir: str
    cycle: int
    dtype: str  # policy.dtype: the weights' dtype for sampling ("hf") and training
    seed: int  # run.seed
    memory_dir: str
    memory_version: int
    draws_of: str | None = None  # run.draws_of: the run whose random draws this run makes
    device: str = "auto"  # policy.device, resolved by each stage where it runs (tasks/device.py)

    @property
    def draw_key(self) -> str:
        """What the cycle's random draws (training problems, sampling seeds) are keyed on: the
        run id, or `run.draws_of`."""
        return self.draws_of or self.run_id

    def stage_dir(self, stage: str) -> str:
        """`<run>/cycle-<n>/<stage>`."""
        return str(Path(self.run_dir) / f"cycle-{self.cycle}" / stage)


def attempt_id(problem_id: str, agent: str, specialist: str, sample: int, turn: int) -> str:
    return f"{problem_id}/{agent}/{specialist}/s{sample}/t{turn}"


class Shard(BaseModel):
    """A file in the run store: where, its sha256 and how many rows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    sha256: str
    rows: int

    def read(self, model: type[T]) -> list[T]:
        """The rows, checked against the hash: a file changed after it was written is an error."""
        path = Path(self.path)
        if not path.exists():
            raise FileNotFoundError(f"{path} is gone (a cached record names it): delete the run's "
                                    "cache entry or re-run with a new run id")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise ValueError(f"{path} changed after it was written (sha256 differs from the "
                             "record): the run store was edited by hand; re-run the stage")
        return [model.model_validate_json(line) for line in data.decode().splitlines() if line]


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it (`/proc/self/status` on Linux 4.7+): the
    `os.umask` round trip sets it for a moment, and a file another thread creates meanwhile
    would get the wrong mode. Elsewhere the round trip, under a lock (which orders only the
    callers of this function)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes) -> str:
    """Write `data` to `path` atomically; return its sha256.

    The file gets the mode `open()` would have given it (0666 less the umask: 0644 under the
    usual 022), not mkstemp's private 0600, so every file of a run store reads the same."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), file_mode())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return hashlib.sha256(data).hexdigest()


def file_mode() -> int:
    """The mode `write_atomic` gives a file: what `open()` would (0666 less the umask)."""
    return 0o666 & ~current_umask()


def as_opened(directory: Path) -> None:
    """Give every file under `directory` the mode of `file_mode`, for directories a library
    wrote: safetensors (0.8) writes its files 0600, beside the 0644 of the JSON next to them."""
    mode = file_mode()
    for path in Path(directory).rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(mode)


def write_rows(path: Path, rows: Iterable[BaseModel]) -> Shard:
    """Rows as JSONL, atomically; the shard naming them."""
    lines = [row.model_dump_json() + "\n" for row in rows]
    digest = write_atomic(path, "".join(lines).encode())
    return Shard(path=str(path), sha256=digest, rows=len(lines))


def write_json(path: Path, obj) -> str:
    """A JSON document (a manifest, a summary), atomically; its sha256."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    return write_atomic(path, text.encode())


def read_attempts(shards: Iterable[Shard]) -> list[Attempt]:
    return [a for shard in shards for a in shard.read(Attempt)]


def digest(*parts) -> str:
    """First 16 hex digits of the sha256 of `parts` as canonical JSON."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shard_suffix(problems: Shard) -> str:
    """`""` for the whole draw, `".<i>"` for its shard i: what a stage adds to its file names."""
    stem = Path(problems.path).stem
    return stem[len("train"):] if stem.startswith("train.") else ""
