"""The Prefect tasks of the problem sets.

`load-problems` splits the suites once per run (`split_problems`) and writes the training pool,
dev and test, `decontamination.json`, `examples.json` and `reference_lines.json` under
`<run>/problems/`; `draw-train` draws a cycle's training problems from the pool, and says why in
`draw.json`; `record-passes` adds a cycle's first tries to the run's pass history (the
curriculum's, `curriculum.py`);
`shard-train` cuts the draw into the sampling shards (`shard_suffix` is what a stage adds to its
file names for a shard).
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from pydantic import BaseModel, ConfigDict

from tasks.caching import cached
from tasks.problems.records import Problem
from tasks.problems.curriculum import (PassHistory, PassRecord, draw_report, history_path,
                                      record_passes)
from tasks.problems.split import draw_train_explained, split_problems
from tasks.records import CycleContext, Shard, read_attempts, write_json, write_rows
from tasks.schema import ProblemsConfig


class ProblemSets(BaseModel):
    """The problems of a run, as shards of its store: the training pool, dev and test."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pool: Shard
    dev: Shard
    test: Shard
    held_out_ids: tuple[str, ...]  # dev + test: never memory, pairs or training data
    excluded: int  # problems decontamination took out (decontamination.json lists them)
    without_example: int = 0  # MBPP problems whose prompt shows no example (examples.json: why)


@task(name="load-problems", **cached())
def load_problems_task(problems: ProblemsConfig, out_dir: str, embedder: str) -> ProblemSets:
    """Split the suites into the training pool, dev and test, without near-duplicates across
    them; write each set, `decontamination.json` (what was excluded, and why),
    `examples.json` (how many prompts show a test case, and why the others do not) and
    `reference_lines.json` (the pool problems `train_max_lines` left out, with their lengths)."""
    embed = None
    if problems.near_duplicate is not None:
        from tasks.memory import Embedder

        embed = Embedder(embedder).embed
    split = split_problems(problems, embed)
    out = Path(out_dir)
    write_json(out / "decontamination.json",
               {"near_duplicate": problems.near_duplicate, "embedder": embedder,
                "excluded": [e.model_dump() for e in split.excluded]})
    sets = split.pool + split.dev + split.test
    write_json(out / "examples.json",
               {"show_example": problems.show_example,
                "shown": sum(p.shown_site is not None for p in sets),
                "without_example": [e.model_dump() for e in split.without_example]})
    write_json(out / "reference_lines.json",
               {"train_max_lines": problems.train_max_lines, "kept": len(split.pool),
                "left_out": [t.model_dump() for t in split.too_long]})
    return ProblemSets(pool=write_rows(out / "pool.jsonl", split.pool),
                       dev=write_rows(out / "dev.jsonl", split.dev),
                       test=write_rows(out / "test.jsonl", split.test),
                       held_out_ids=tuple(p.id for p in split.dev + split.test),
                       excluded=len(split.excluded),
                       without_example=len(split.without_example))


class TrainDraw(BaseModel):
    """A cycle's training problems, and how many pool problems were drawn or left, per reason."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    train: Shard  # <run>/cycle-<n>/problems/train.jsonl
    why: str  # draw.json beside it: every pool problem's reason (curriculum.draw_report)
    drawn: dict[str, int]  # reason -> problems drawn for it (curriculum.DRAWN, or "seeded")
    not_drawn: dict[str, int]  # reason -> pool problems left out (curriculum.NOT_DRAWN)


@task(name="draw-train", task_run_name="draw-train[cycle={ctx.cycle}]", **cached())
def draw_train_task(ctx: CycleContext, pool: Shard, problems: ProblemsConfig,
                    history: PassHistory | None = None) -> TrainDraw:
    """This cycle's training problems, drawn from the pool (by pass history with
    `problems.curriculum`: `history` is the history as the cycle began); `train.jsonl` and
    `draw.json`, why each pool problem was drawn or not."""
    draw = draw_train_explained(pool.read(Problem), problems, ctx.draw_key, ctx.cycle,
                                history.read() if history is not None else None)
    out = Path(ctx.stage_dir("problems"))
    train = write_rows(out / "train.jsonl", draw.problems)
    curriculum = problems.curriculum if problems.curriculum.enabled else None
    write_json(out / "draw.json", draw_report(draw, ctx.cycle, curriculum, history))
    drawn, not_drawn = draw.counts()
    return TrainDraw(train=train, why=str(out / "draw.json"), drawn=drawn, not_drawn=not_drawn)


@task(name="record-passes", task_run_name="record-passes[cycle={ctx.cycle}]", **cached())
def record_passes_task(ctx: CycleContext, attempts: list[Shard]) -> PassRecord:
    """The pass history gets the cycle's first tries (one row per problem, `<run>/history/
    passes.jsonl`), replacing whatever this cycle wrote there before."""
    return record_passes(history_path(ctx.run_dir), ctx.run_id, ctx.cycle,
                         read_attempts(attempts))


@task(name="shard-train", task_run_name="shard-train[cycle={ctx.cycle}, shards={shards}]",
      **cached())
def shard_train_task(ctx: CycleContext, train: Shard, shards: int) -> list[Shard]:
    """The cycle's training problems in `shards` parts (round robin, so each gets easy and hard
    ones alike): `train.1.jsonl`, ... beside `train.jsonl`. One shard is the draw itself."""
    if shards == 1:
        return [train]
    rows = train.read(Problem)
    if shards > len(rows):
        raise ValueError(f"sampling.shards={shards} but the cycle has {len(rows)} training "
                         f"problems: use at most {len(rows)} shards")
    where = Path(ctx.stage_dir("problems"))
    return [write_rows(where / f"train.{i + 1}.jsonl", rows[i::shards]) for i in range(shards)]
