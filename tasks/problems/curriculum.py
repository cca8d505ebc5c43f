"""The curriculum by pass rate: each cycle's training draw prefers problems of intermediate
difficulty for the policy, read from every problem's pass history.

Takes: the training pool, `problems.curriculum` (tasks/schema.py, `CurriculumConfig`), the
draw's seed (`split.draw_seed`: `train_seed`, the run id or `run.draws_of`, the cycle) and the
pass history. Gives: the cycle's training problems and, for every pool problem, why it was drawn
or not (`Draw`). Writes: the pass history, `<run>/history/passes.jsonl` (`record_passes`, which
the `record-passes` task runs after a cycle's execution; `inherit_history`, which a new run runs
once).

`split.draw_train` calls `curriculum_draw` when `problems.curriculum.enabled`; the tasks
`draw-train` and `record-passes` are in `stages.py`, and the parent flow's `open_run` calls
`inherit_history`. No CLI: each cycle's `cycle-<n>/problems/draw.json` shows its draw, and
`read_passes(history_path(run_dir))` reads a run's history.

The history
-----------

One row per (run, cycle, problem drawn): the problem's first tries that cycle (turn 0, every
agent and specialist; the temperature sweep's candidates are not counted), how many passed every
test case, and their rate. A cycle run again (a resume, an edited stage) replaces its own rows, so
no row is ever counted twice. Rows are ordered by `(run_seq, run, cycle)`: `run_seq` is the run's
place in the chain of runs the history spans, since a new run starts with a copy of the history
of the newest earlier run of the same `run.name` in the store (`inherit_history`, with
`curriculum.inherit`): each nightly run is a new run, and its history continues the nights before
it. A cycle's draw reads the history *as of the cycle*, the rows of earlier runs and of this
run's earlier cycles only (`history_before`), so a resumed cycle draws the same problems even
after later cycles have written theirs.

The draw
--------

A pool problem's observations are its rows, oldest first. Its standing:

- *untried*: no observation (difficulty unknown);
- *retired*: in each of its last `retire_after` observations every first try passed (pair mining
  skips a problem whose every candidate passes: it teaches nothing);
- *parked*: `park_after` observations or more, and no first try ever passed;
- *in-band*: the pass rate of its last `window` observations (passing first tries over first
  tries) lies in [`low`, `high`];
- *out-of-band*: any other rate.

The draw of n = `train_n` problems fills its places in this order, each with its reason:

1. *parked-retry*: up to `floor(parked_share × n)` parked problems, those seen longest ago first;
2. *in-band*: all of them, or a seeded sample when there are more than places;
3. *untried*: the same;
4. *filler*, only when the above leave places: the out-of-band problems nearest the band, then
   the other parked problems (seen longest ago first), then the retired ones.

A problem left out is *retired*, *parked*, *out-of-band*, or *not-needed* (in-band or untried,
but the draw was full). Ties are broken by a hash of the seed and the problem id, never by the
order of the history's rows. With no history every problem is untried, and step 3 is the plain
draw's own `select(pool, n, seed)`: the curriculum then draws what the plain draw draws. The
drawn problems keep the pool's order.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Iterable, Sequence

from pydantic import BaseModel, ConfigDict

from tasks.problems.records import Problem
from tasks.problems.records import select
from tasks.records import Attempt, write_rows
from tasks.schema import CurriculumConfig

HISTORY = Path("history") / "passes.jsonl"
"""The pass history, relative to a run's directory."""

DRAWN = ("parked-retry", "in-band", "untried", "filler")
NOT_DRAWN = ("retired", "parked", "out-of-band", "not-needed")
PLAIN = "seeded"
"""The reason of every problem the plain draw (curriculum off) draws."""


# ---------------------------------------------------------------------------------------------
# The history
# ---------------------------------------------------------------------------------------------


class PassRow(BaseModel):
    """One observation: a problem drawn in one cycle, and how its first tries fared."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run: str  # the run that drew it
    run_seq: int  # the run's place in the chain of runs the history spans (0: the first)
    cycle: int
    problem_id: str
    candidates: int  # first tries (turn 0) of every agent and specialist
    passed: int  # of them, those passing every test case
    pass_rate: float  # passed / candidates, rounded to 4 digits

    @property
    def when(self) -> tuple[int, str, int]:
        return (self.run_seq, self.run, self.cycle)


def history_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / HISTORY


def read_passes(path: str | Path) -> list[PassRow]:
    """The rows of a history file (none when it does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return []
    return [PassRow.model_validate_json(line) for line in path.read_text().splitlines() if line]


def canonical(rows: Iterable[PassRow]) -> list[PassRow]:
    """The rows oldest first, one per (run, cycle, problem): the order every reader uses, so the
    order of a file's lines never matters. Two different rows for one key are an error."""
    by_key: dict[tuple, PassRow] = {}
    for row in rows:
        key = (row.run, row.cycle, row.problem_id)
        if key in by_key and by_key[key] != row:
            raise ValueError(f"the pass history holds two different rows for problem "
                             f"{row.problem_id!r} of {row.run} cycle {row.cycle}: it was edited "
                             "by hand; keep one of them (a cycle's rows are written by its "
                             "record-passes task)")
        by_key[key] = row
    return sorted(by_key.values(), key=lambda r: (r.when, r.problem_id))


def rows_digest(rows: Iterable[PassRow]) -> str:
    """sha256 of the canonical rows as JSONL."""
    text = "".join(r.model_dump_json() + "\n" for r in canonical(rows))
    return hashlib.sha256(text.encode()).hexdigest()


def before(rows: Iterable[PassRow], run_id: str, cycle: int) -> list[PassRow]:
    """The history as cycle `cycle` of `run_id` sees it: earlier runs' rows, and this run's rows
    of earlier cycles."""
    return [r for r in rows if r.run != run_id or r.cycle < cycle]


class PassHistory(BaseModel):
    """The pass history as one cycle's draw sees it (`before`), named by the hash of its rows:
    the draw's cache key holds the hash, so the draw is served from the cache exactly when the
    rows it would read are the same."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str  # <run>/history/passes.jsonl
    run_id: str
    cycle: int
    rows: int
    sha256: str  # of the rows before the cycle (`rows_digest`)

    def read(self) -> list[PassRow]:
        """The rows, checked against the hash."""
        rows = canonical(before(read_passes(self.path), self.run_id, self.cycle))
        if rows_digest(rows) != self.sha256:
            raise ValueError(f"{self.path}: the rows before cycle {self.cycle} changed after the "
                             "cycle read them (sha256 differs from the record): the history was "
                             "edited by hand; re-run the cycle")
        return rows


def history_before(run_dir: str | Path, run_id: str, cycle: int) -> PassHistory:
    """The run's history as cycle `cycle` begins (read, like memory, as of a version)."""
    path = history_path(run_dir)
    rows = canonical(before(read_passes(path), run_id, cycle))
    return PassHistory(path=str(path), run_id=run_id, cycle=cycle, rows=len(rows),
                       sha256=rows_digest(rows))


class PassRecord(BaseModel):
    """What `record_passes` wrote for one cycle."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    cycle: int
    problems: int  # rows written: the problems with at least one first try
    candidates: int
    passed: int
    replaced: int  # rows of the same cycle written before (a re-run cycle), now replaced


def passes_of(attempts: Iterable[Attempt], run_id: str, run_seq: int,
              cycle: int) -> list[PassRow]:
    """One row per problem with first tries among `attempts` (debug turns are not counted)."""
    counts: dict[str, list[int]] = {}
    for a in attempts:
        if a.turn == 0:
            seen = counts.setdefault(a.problem_id, [0, 0])
            seen[0] += 1
            seen[1] += a.ok
    return [PassRow(run=run_id, run_seq=run_seq, cycle=cycle, problem_id=pid, candidates=n,
                    passed=ok, pass_rate=round(ok / n, 4))
            for pid, (n, ok) in sorted(counts.items())]


def _run_seq(rows: Sequence[PassRow], run_id: str) -> int:
    """The run's place in the chain: what its rows already say, else one after the runs it
    inherited (0 for a run that inherited none)."""
    own = {r.run_seq for r in rows if r.run == run_id}
    if own:
        return own.pop()
    return 1 + max((r.run_seq for r in rows), default=-1)


def record_passes(path: str | Path, run_id: str, cycle: int,
                  attempts: Iterable[Attempt]) -> PassRecord:
    """Write a cycle's rows into the history, atomically, replacing the rows that cycle wrote
    before: running a cycle again never counts a problem twice."""
    path = Path(path)
    old = read_passes(path)
    new = passes_of(attempts, run_id, _run_seq(old, run_id), cycle)
    kept = [r for r in old if (r.run, r.cycle) != (run_id, cycle)]
    write_rows(path, canonical(kept + new))
    return PassRecord(path=str(path), cycle=cycle, problems=len(new),
                      candidates=sum(r.candidates for r in new),
                      passed=sum(r.passed for r in new), replaced=len(old) - len(kept))


def inherit_history(store: str | Path, run_dir: str | Path, run_name: str) -> dict:
    """Start a new run's history with a copy of the newest earlier run's of the same `run.name`
    in the store (newest by `run.json`'s `created`), so nightly runs, each a new run, continue
    one another. Returns what `run.json` records under `history`: the run it came from (None:
    no earlier run kept a history), its rows and their sha256."""
    run_dir = Path(run_dir)
    own_id = re.compile(rf"{re.escape(run_name)}-(\d{{8}}-)?[0-9a-f]{{8}}")
    earlier = []
    for meta_path in Path(store).glob("*/run.json"):
        other = meta_path.parent
        if (other.resolve() != run_dir.resolve() and own_id.fullmatch(other.name)
                and history_path(other).exists()):
            earlier.append((json.loads(meta_path.read_text()).get("created", ""), other.name))
    if not earlier:
        return {"from": None, "rows": 0, "sha256": None}
    source = max(earlier)[1]
    rows = canonical(read_passes(history_path(Path(store) / source)))
    shard = write_rows(history_path(run_dir), rows)
    return {"from": source, "rows": shard.rows, "sha256": shard.sha256}


# ---------------------------------------------------------------------------------------------
# The draw
# ---------------------------------------------------------------------------------------------


class Why(BaseModel):
    """Why a pool problem was drawn or not."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    drawn: bool
    reason: str  # DRAWN or NOT_DRAWN (PLAIN for the plain draw)
    standing: str | None = None  # untried, in-band, out-of-band, retired, parked (None: plain)
    draws: int = 0  # observations in the history
    recent_pass_rate: float | None = None  # over the last `window` observations


class Draw(BaseModel):
    """A cycle's training problems (in pool order) and the reason of every pool problem."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    problems: list[Problem]
    why: list[Why]

    @classmethod
    def plain(cls, pool: Sequence[Problem], drawn: Sequence[Problem]) -> "Draw":
        """The plain seeded draw, explained: drawn `seeded`, the rest `not-needed`."""
        ids = {p.id for p in drawn}
        return cls(problems=list(drawn),
                   why=[Why(id=p.id, drawn=p.id in ids,
                            reason=PLAIN if p.id in ids else "not-needed") for p in pool])

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """(drawn, not drawn): problems per reason, in the order of DRAWN and NOT_DRAWN."""
        drawn: dict[str, int] = {}
        left: dict[str, int] = {}
        for w in self.why:
            side = drawn if w.drawn else left
            side[w.reason] = side.get(w.reason, 0) + 1
        order = {r: i for i, r in enumerate((PLAIN,) + DRAWN + NOT_DRAWN)}
        return (dict(sorted(drawn.items(), key=lambda kv: order[kv[0]])),
                dict(sorted(left.items(), key=lambda kv: order[kv[0]])))


def recent_rate(observations: Sequence[PassRow], window: int) -> float:
    recent = observations[-window:]
    tries = sum(r.candidates for r in recent)
    return sum(r.passed for r in recent) / tries if tries else 0.0


def standing(observations: Sequence[PassRow], cfg: CurriculumConfig) -> str:
    """A problem's standing from its observations, oldest first (module docstring)."""
    if not observations:
        return "untried"
    last = observations[-cfg.retire_after:]
    if (len(observations) >= cfg.retire_after
            and all(r.candidates and r.passed == r.candidates for r in last)):
        return "retired"
    if len(observations) >= cfg.park_after and not any(r.passed for r in observations):
        return "parked"
    return ("in-band" if cfg.low <= recent_rate(observations, cfg.window) <= cfg.high
            else "out-of-band")


def curriculum_draw(pool: Sequence[Problem], n: int, seed: int, cfg: CurriculumConfig,
                    history: Iterable[PassRow]) -> Draw:
    """`n` problems of `pool` by the rules of the module docstring. `history`: the rows the
    cycle sees, in any order (rows of problems outside the pool are ignored)."""
    pool = list(pool)
    seen: dict[str, list[PassRow]] = {}
    for row in canonical(history):
        seen.setdefault(row.problem_id, []).append(row)
    stand = {p.id: standing(seen.get(p.id, []), cfg) for p in pool}
    group = {s: [p for p in pool if stand[p.id] == s]
             for s in ("untried", "in-band", "out-of-band", "parked", "retired")}

    def tie(p: Problem) -> str:  # a seeded order, whatever the order of the pool or the rows
        return hashlib.sha256(f"{seed}|{p.id}".encode()).hexdigest()

    def longest_ago(p: Problem) -> tuple:
        return (seen[p.id][-1].when, tie(p))

    def from_band(p: Problem) -> tuple:
        rate = recent_rate(seen[p.id], cfg.window)
        return (max(cfg.low - rate, rate - cfg.high), tie(p))

    reason: dict[str, str] = {}

    def take(problems: Sequence[Problem], why: str, at_most: int | None = None) -> None:
        room = n - len(reason)
        if at_most is not None:
            room = min(room, at_most)
        for p in problems[:max(room, 0)]:
            reason[p.id] = why

    parked = sorted(group["parked"], key=longest_ago)
    take(parked, "parked-retry", at_most=math.floor(cfg.parked_share * n))
    for s in ("in-band", "untried"):
        room = n - len(reason)
        if 0 < room < len(group[s]):
            take(select(group[s], room, seed), s)
        else:
            take(group[s], s)
    take(sorted(group["out-of-band"], key=from_band), "filler")
    take([p for p in parked if p.id not in reason], "filler")
    take(sorted(group["retired"], key=longest_ago), "filler")

    left = {"untried": "not-needed", "in-band": "not-needed", "out-of-band": "out-of-band",
            "parked": "parked", "retired": "retired"}
    why = []
    for p in pool:
        observations = seen.get(p.id, [])
        why.append(Why(id=p.id, drawn=p.id in reason,
                       reason=reason.get(p.id, left[stand[p.id]]), standing=stand[p.id],
                       draws=len(observations),
                       recent_pass_rate=round(recent_rate(observations, cfg.window), 4)
                       if observations else None))
    return Draw(problems=[p for p in pool if p.id in reason], why=why)


def draw_report(draw: Draw, cycle: int, cfg: CurriculumConfig | None,
                history: PassHistory | None) -> dict:
    """What `draw.json`, beside the cycle's `train.jsonl`, holds: the settings, the history read,
    the counts per reason and every pool problem's reason."""
    drawn, left = draw.counts()
    return {"cycle": cycle, "curriculum": cfg.model_dump(mode="json") if cfg else None,
            "history": history.model_dump(mode="json") if history else None,
            "drawn": drawn, "not_drawn": left,
            "problems": [w.model_dump(mode="json") for w in draw.why]}

