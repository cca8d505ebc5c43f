"""The curriculum by pass rate (tasks/problems/curriculum.py): the training draw prefers problems
of intermediate difficulty from each problem's pass history, deterministically; retired problems
stay out, parked ones come back at a bounded rate; the history never counts a cycle twice; and
with the curriculum off every draw is exactly what it was before it existed.

Plain functions and the draw task's function: no Docker, no model.
"""

import hashlib
import json
import random
import re
import shlex
from pathlib import Path

import pytest

from tasks.problems.records import Problem
from tasks.problems.curriculum import (
    PassRow,
    curriculum_draw,
    history_before,
    history_path,
    inherit_history,
    read_passes,
    record_passes,
)
from tasks.problems.records import select
from tasks.problems.split import draw_train
from tasks.records import Attempt, CycleContext, write_rows
from tasks.schema import CurriculumConfig, ProblemsConfig

REPO = Path(__file__).resolve().parents[2]


def problem(pid: str) -> Problem:
    return Problem(id=pid, prompt=f"def {pid}():\n    '''Return 1.'''\n", entry_point=pid,
                   source="test", tests="def check(candidate):\n    assert candidate() == 1\n")


POOL = [problem(f"p{i:02d}") for i in range(40)]


def row(pid: str, cycle: int, passed: int, candidates: int = 8, run: str = "run-a",
        run_seq: int = 0) -> PassRow:
    return PassRow(run=run, run_seq=run_seq, cycle=cycle, problem_id=pid, candidates=candidates,
                   passed=passed, pass_rate=round(passed / candidates, 4))


def ids(problems) -> list[str]:
    return [p.id for p in problems]


def reasons(draw) -> dict[str, str]:
    return {w.id: w.reason for w in draw.why}


ON = ProblemsConfig(train_n=10, curriculum=CurriculumConfig(enabled=True))


# ---------------------------------------------------------------------------------------------
# Off: today's draw, exactly
# ---------------------------------------------------------------------------------------------


def todays_draw(pool, cfg, run_id, cycle):
    """draw_train as it was before the curriculum existed (commit 886dcde)."""
    seed = cfg.train_seed
    if cfg.rotate:
        text = f"{cfg.train_seed}|{run_id}|{cycle}"
        seed = int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)
    return select(list(pool), cfg.train_n, seed)


def test_with_the_curriculum_off_every_draw_is_todays_byte_for_byte(tmp_path):
    from tasks.problems.stages import draw_train_task

    history = [row("p03", 1, 8), row("p03", 2, 8), row("p04", 1, 0), row("p04", 2, 0)]
    for cfg in (ProblemsConfig(train_n=10), ProblemsConfig(train_n=7, train_seed=3),
                ProblemsConfig(train_n=10, rotate=False), ProblemsConfig()):
        for run_id, cycle in (("run-a", 1), ("run-a", 2), ("run-b", 1)):
            want = todays_draw(POOL, cfg, run_id, cycle)
            assert draw_train(POOL, cfg, run_id, cycle) == want
            # a history changes nothing while the curriculum is off
            assert draw_train(POOL, cfg, run_id, cycle, history) == want
    # the task writes the same train.jsonl, byte for byte
    pool = write_rows(tmp_path / "pool.jsonl", POOL)
    ctx = CycleContext(run_id="run-a", run_dir=str(tmp_path / "run-a"), cycle=2, dtype="float32",
                       seed=0, memory_dir="", memory_version=0)
    drawn = draw_train_task.fn(ctx, pool, ProblemsConfig(train_n=10))
    reference = write_rows(tmp_path / "reference.jsonl",
                           todays_draw(POOL, ProblemsConfig(train_n=10), "run-a", 2))
    assert Path(drawn.train.path).read_bytes() == Path(reference.path).read_bytes()
    assert (drawn.drawn, drawn.not_drawn) == ({"seeded": 10}, {"not-needed": 30})


def _mbpp_in_file_order() -> list[Problem]:
    from tasks import paths
    from tasks.problems.mbpp import MBPP_FILENAME, load_mbpp

    for where in (paths.data_dir(), Path("/tmp")):
        if (where / MBPP_FILENAME).is_file():
            return load_mbpp(where)
    return load_mbpp()  # fetches it (make setup does this once)


@pytest.mark.parametrize("run", ["efficacy-b458b370", "efficacy-56c789c4", "efficacy-07d0736e"])
def test_the_registered_efficacy_runs_keep_their_identity_and_their_draws(run):
    """The registered runs' config hash (hence run id) and cycle-1 draw are what their
    pre-registration says, with the `problems.curriculum` section in the schema."""
    from tasks.config import load_config

    registration = json.loads((REPO / "benchmarks/results/learning_efficacy" / run /
                               "preregistration.json").read_text())
    words = shlex.split(registration["command"])
    overrides = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    cfg = load_config("efficacy", overrides)
    assert cfg.hash() == registration["config_hash"]
    problems = registration["problems"]
    registered = problems["train_draws"]["1"]
    in_pool = set(problems["unseen"]) | set(registered)
    pool = [p for p in _mbpp_in_file_order() if p.id in in_pool]  # the split keeps file order
    assert len(pool) == len(in_pool)
    assert ids(draw_train(pool, cfg.problems, cfg.run.draws_of or run, 1)) == registered


# ---------------------------------------------------------------------------------------------
# On: the draw
# ---------------------------------------------------------------------------------------------


def test_with_no_history_the_curriculum_draws_what_the_plain_draw_draws():
    for run_id, cycle in (("run-a", 1), ("run-b", 3)):
        plain = draw_train(POOL, ProblemsConfig(train_n=10), run_id, cycle)
        assert draw_train(POOL, ON, run_id, cycle, []) == plain
    with pytest.raises(ValueError, match="depends on the pass history"):
        draw_train(POOL, ON, "run-a", 1)


def test_the_draw_is_deterministic_and_the_order_of_the_history_does_not_matter():
    rng = random.Random(0)
    # more draws than the window (4), so which ones are the last matters
    history = [row(p.id, c, rng.choice([0, 1, 4, 8])) for c in range(1, 8)
               for p in rng.sample(POOL, 25)]
    one = curriculum_draw(POOL, 10, 123, ON.curriculum, history)
    for _ in range(5):
        shuffled = rng.sample(history, len(history))
        again = curriculum_draw(POOL, 10, 123, ON.curriculum, shuffled)
        assert again == one  # the problems and every reason
    assert curriculum_draw(POOL, 10, 124, ON.curriculum, history).problems != one.problems
    # the draw keeps the pool's order, like the plain draw
    assert ids(one.problems) == sorted(ids(one.problems))


def test_in_band_problems_come_first_then_untried_then_the_nearest_out_of_band():
    history = ([row(f"p{i:02d}", 1, 4) for i in range(0, 4)]  # rate 0.5: in-band
               + [row(f"p{i:02d}", 1, 1) for i in range(4, 8)]  # 0.125: out of band, near
               + [row(f"p{i:02d}", 1, 7) for i in range(8, 12)]  # 0.875: out of band, near
               + [row(f"p{i:02d}", 1, 8, run_seq=0) for i in range(12, 40)])  # 1.0: far
    tried_only = POOL[:40]
    four = curriculum_draw(tried_only, 4, 7, ON.curriculum, history)
    assert ids(four.problems) == ["p00", "p01", "p02", "p03"]
    assert set(reasons(four).values()) >= {"in-band", "out-of-band"}
    # the in-band ones first, then the out-of-band nearest the band (0.125 and 0.875 are both
    # 0.075 away; 1.0 is 0.2 away) as filler
    twelve = curriculum_draw(tried_only, 12, 7, ON.curriculum, history)
    assert ids(twelve.problems) == [f"p{i:02d}" for i in range(12)]
    assert [reasons(twelve)[f"p{i:02d}"] for i in (0, 4, 8, 12)] == [
        "in-band", "filler", "filler", "out-of-band"]

    # untried problems come after the in-band ones and before any out-of-band one
    pool = POOL[:12] + [problem(f"new{i}") for i in range(3)]
    seven = curriculum_draw(pool, 7, 7, ON.curriculum, history)
    assert ids(seven.problems) == ["p00", "p01", "p02", "p03", "new0", "new1", "new2"]
    why = reasons(seven)
    assert (why["p00"], why["new0"], why["p04"]) == ("in-band", "untried", "out-of-band")


def test_retired_problems_are_skipped_and_only_fill_an_otherwise_short_draw():
    solved = {f"p{i:02d}" for i in range(10)}
    history = [row(pid, c, 8) for pid in solved for c in (1, 2)]  # every try passed, twice
    draw = curriculum_draw(POOL, 30, 5, ON.curriculum, history)
    assert not solved & set(ids(draw.problems))
    assert all(reasons(draw)[pid] == "retired" for pid in solved)
    # solved in the last draw only: not retired yet (retire_after 2)
    once = [row(pid, 1, 3) for pid in solved] + [row(pid, 2, 8) for pid in solved]
    assert not any(w.standing == "retired" for w in
                   curriculum_draw(POOL, 30, 5, ON.curriculum, once).why)
    # a draw of the whole pool has to take them: as filler
    everything = curriculum_draw(POOL, 40, 5, ON.curriculum, history)
    assert {reasons(everything)[pid] for pid in solved} == {"filler"}


def test_parked_problems_come_back_only_at_the_bounded_rate_longest_ago_first():
    cfg = CurriculumConfig(enabled=True, parked_share=0.2)
    parked = [f"p{i:02d}" for i in range(20)]
    history = [row(pid, c, 0) for pid in parked for c in (1, 2)]  # never solved, twice
    seen_at = {}
    for cycle in range(3, 9):
        draw = curriculum_draw(POOL, 10, cycle, cfg, history)
        back = [pid for pid in ids(draw.problems) if pid in parked]
        assert len(back) == 2  # floor(0.2 x 10), though 20 are parked
        assert all(reasons(draw)[pid] == "parked-retry" for pid in back)
        assert sum(w.reason == "parked" for w in draw.why) == 18
        for pid in back:  # the retry fails again: it stays parked, seen now
            assert pid not in seen_at, "a parked problem came back before the others did"
            seen_at[pid] = cycle
            history.append(row(pid, cycle, 0))
    assert len(seen_at) == 12  # six cycles, two at a time, each a different one
    # no share: never, unless nothing else is left
    none = curriculum_draw(POOL, 10, 3, CurriculumConfig(enabled=True, parked_share=0), history)
    assert not set(parked) & set(ids(none.problems))
    # once solved it is no longer parked
    history.append(row("p00", 9, 8))
    assert {w.id: w.standing for w in curriculum_draw(POOL, 10, 3, cfg, history).why}[
        "p00"] == "in-band"


def test_the_draw_task_says_why_each_pool_problem_was_drawn_or_not(tmp_path):
    from tasks.problems.stages import draw_train_task

    run = tmp_path / "run-a"
    record = history_path(run)
    write_rows(record, [row("p00", 1, 4), row("p01", 1, 8), row("p01", 2, 8),
                        row("p02", 1, 0), row("p02", 2, 0), row("p03", 2, 1),
                        row("p04", 1, 0), row("p04", 2, 0)])
    ctx = CycleContext(run_id="run-a", run_dir=str(run), cycle=3, dtype="float32", seed=0,
                       memory_dir="", memory_version=0)
    pool = write_rows(tmp_path / "pool.jsonl", POOL)
    drawn = draw_train_task.fn(ctx, pool, ON, history_before(run, "run-a", 3))
    assert drawn.train.rows == 10
    # one place of ten for a parked retry (parked_share 0.1), the in-band one, then untried
    assert drawn.drawn == {"parked-retry": 1, "in-band": 1, "untried": 8}
    assert drawn.not_drawn == {"retired": 1, "parked": 1, "out-of-band": 1, "not-needed": 27}
    report = json.loads(Path(drawn.why).read_text())
    assert Path(drawn.why).parent == Path(drawn.train.path).parent
    by_id = {w["id"]: w for w in report["problems"]}
    assert by_id["p00"] == {"id": "p00", "drawn": True, "reason": "in-band",
                            "standing": "in-band", "draws": 1, "recent_pass_rate": 0.5}
    assert (by_id["p01"]["reason"], by_id["p03"]["reason"]) == ("retired", "out-of-band")
    assert {by_id["p02"]["reason"], by_id["p04"]["reason"]} == {"parked-retry", "parked"}
    assert report["history"]["rows"] == 8 and report["curriculum"]["low"] == 0.2


# ---------------------------------------------------------------------------------------------
# The history
# ---------------------------------------------------------------------------------------------


def attempts(cycle: int, outcomes: dict[str, list[bool]], turn: int = 0) -> list[Attempt]:
    return [Attempt(id=f"{pid}/A/plain/s{i}/t{turn}", problem_id=pid, cycle=cycle, agent="A",
                    specialist="plain", sample=i, turn=turn, policy_id="p", prompt="", response="",
                    code="", status="passed" if ok else "failed", passed=int(ok), total=1)
            for pid, oks in outcomes.items() for i, ok in enumerate(oks)]


def test_the_history_does_not_count_a_cycle_run_again_twice(tmp_path):
    path = history_path(tmp_path / "run-a")
    one = attempts(1, {"p00": [True, False, False, False], "p01": [False] * 4})
    one += attempts(1, {"p00": [True] * 4}, turn=1)  # self-debug turns are not first tries
    first = record_passes(path, "run-a", 1, one)
    assert (first.problems, first.candidates, first.passed, first.replaced) == (2, 8, 1, 0)
    written = path.read_bytes()
    again = record_passes(path, "run-a", 1, one)  # a resumed cycle records the same cycle again
    assert path.read_bytes() == written and again.replaced == 2
    assert [(r.problem_id, r.candidates, r.passed, r.pass_rate) for r in read_passes(path)] == [
        ("p00", 4, 1, 0.25), ("p01", 4, 0, 0.0)]

    record_passes(path, "run-a", 2, attempts(2, {"p00": [True] * 4}))
    # cycle 1 run again with other candidates (an edited stage): its rows are replaced
    record_passes(path, "run-a", 1, attempts(1, {"p02": [True, True]}))
    assert sorted((r.cycle, r.problem_id) for r in read_passes(path)) == [(1, "p02"), (2, "p00")]


def test_a_resumed_cycle_reads_the_history_it_read_the_first_time(tmp_path):
    run = tmp_path / "run-a"
    path = history_path(run)
    record_passes(path, "run-a", 1, attempts(1, {"p00": [True, False]}))
    as_cycle_two = history_before(run, "run-a", 2)
    assert as_cycle_two.rows == 1
    record_passes(path, "run-a", 2, attempts(2, {"p01": [False, False]}))
    record_passes(path, "run-a", 3, attempts(3, {"p02": [True, True]}))
    # later cycles wrote rows; cycle 2 run again sees exactly what it saw: same key, same draw
    assert history_before(run, "run-a", 2) == as_cycle_two
    assert as_cycle_two.read() == [row("p00", 1, 1, candidates=2)]
    assert history_before(run, "run-a", 4).rows == 3
    path.write_text(path.read_text().replace('"passed":1', '"passed":2'))
    with pytest.raises(ValueError, match="changed after the cycle read them"):
        as_cycle_two.read()


def test_a_new_run_continues_the_history_of_the_newest_earlier_run_of_its_name(tmp_path):
    def earlier(run_id: str, created: str, rows: list[PassRow]) -> None:
        (tmp_path / run_id).mkdir()
        (tmp_path / run_id / "run.json").write_text(json.dumps({"created": created}))
        write_rows(history_path(tmp_path / run_id), rows)

    earlier("nightly-20260101-0123abcd", "2026-01-01T02:00:00+00:00",
            [row("p00", 1, 0, run="nightly-20260101-0123abcd")])
    earlier("nightly-20260102-89abcdef", "2026-01-02T02:00:00+00:00",
            [row("p00", 1, 0, run="nightly-20260101-0123abcd"),
             row("p00", 1, 0, run="nightly-20260102-89abcdef", run_seq=1)])
    earlier("nightly-qwen-20260103-00000000", "2026-01-03T02:00:00+00:00",  # another name
            [row("p09", 1, 8, run="nightly-qwen-20260103-00000000")])
    new = tmp_path / "nightly-20260103-fedcba98"
    new.mkdir()
    meta = inherit_history(tmp_path, new, "nightly")
    assert meta["from"] == "nightly-20260102-89abcdef" and meta["rows"] == 2
    # the new run's rows come after both nights: p00 is now parked (never solved, 3 draws)
    record_passes(history_path(new), new.name, 1, attempts(1, {"p00": [False, False]}))
    rows = read_passes(history_path(new))
    assert [(r.run_seq, r.run) for r in rows][-1] == (2, new.name)
    standing = {w.id: w.standing for w in curriculum_draw(
        POOL, 10, 1, ON.curriculum, history_before(new, new.name, 2).read()).why}
    assert standing["p00"] == "parked" and standing["p09"] == "untried"
    # the first run of a name inherits nothing
    alone = tmp_path / "other-0123abcd"
    alone.mkdir()
    assert inherit_history(tmp_path, alone, "other") == {"from": None, "rows": 0, "sha256": None}


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


def test_curriculum_settings_are_checked_and_errors_quote_the_numbers():
    from tasks.config import ConfigError, load_config

    on = ["problems.curriculum.enabled=true", "problems.train_n=8"]
    cfg = load_config("tiny", on + ["problems.curriculum.window=3"])
    assert cfg.problems.curriculum.enabled and cfg.problems.curriculum.window == 3
    with pytest.raises(ConfigError, match=re.escape("low (0.9) must be below high (0.5)")):
        load_config("tiny", on + ["problems.curriculum.low=0.9", "problems.curriculum.high=0.5"])
    with pytest.raises(ConfigError, match="train_n is null"):
        load_config("tiny", ["problems.curriculum.enabled=true", "problems.train_n=null"])
    with pytest.raises(ConfigError, match=r"problems\.curriculum\.parked_share: Input should be "
                                          r"less than or equal to 1 \(got 1\.5\)"):
        load_config("tiny", on + ["problems.curriculum.parked_share=1.5"])
    with pytest.raises(ConfigError, match=r"problems\.curriculum\.retire_after: .*\(got 0\)"):
        load_config("tiny", on + ["problems.curriculum.retire_after=0"])
    with pytest.raises(ConfigError, match="did you mean 'problems.curriculum.window'"):
        load_config("tiny", on + ["problems.curriculum.windo=3"])
    # the run's identity changes with the curriculum on, not with the section at its defaults
    tiny = load_config("tiny")
    assert load_config("tiny", ["problems.curriculum.low=0.2"]).hash() == tiny.hash()
    assert load_config("tiny", on).hash() != load_config("tiny", ["problems.train_n=8"]).hash()


def test_each_nightly_run_opens_with_the_history_of_the_night_before(tmp_path):
    """`open_run` (flows/self_training.py) copies the history when a night's run is created, and
    only with the curriculum on."""
    from flows.self_training import open_run
    from tasks.config import load_config

    model = tmp_path / "model"  # a base model directory, never loaded here
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "manifest.json").write_text(json.dumps({"hash": "0" * 16}))
    settings = [f"run.store={tmp_path / 'store'}", f"policy.base={model}", "run.name=nightly",
                "memory.enabled=false", "problems.train_n=8"]
    cfg = load_config("tiny", settings + ["problems.curriculum.enabled=true"])

    first, first_dir, meta = open_run(cfg, day="20260101")
    assert meta["history"] == {"from": None, "rows": 0, "sha256": None}
    record_passes(history_path(first_dir), first, 1, attempts(1, {"p00": [False, False]}))
    second, second_dir, meta = open_run(cfg, day="20260102")
    assert second != first and meta["history"]["from"] == first
    assert json.loads((second_dir / "run.json").read_text())["history"]["rows"] == 1
    assert [r.run for r in read_passes(history_path(second_dir))] == [first]
    # reopened (a resumed night): nothing copied again
    assert open_run(cfg, day="20260102")[2] == meta
    # with the curriculum off, a run neither inherits nor says anything about it
    _, off_dir, off_meta = open_run(load_config("tiny", settings), day="20260103")
    assert "history" not in off_meta and not history_path(off_dir).exists()
