"""The run lock: one live process per run, released however its holder dies."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HOLD = """
import sys, time
sys.path.insert(0, {root!r})
from flows.lineage import RunLock
RunLock({run_dir!r}, "r").acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_a_run_is_open_in_one_process_and_a_killed_holder_frees_it(tmp_path):
    from flows.lineage import RunBusy, RunLock

    holder = subprocess.Popen([sys.executable, "-c", HOLD.format(root=str(ROOT),
                                                                  run_dir=str(tmp_path))],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunBusy, match=rf"run r is already open in another process \(pid "
                                          rf"{holder.pid} on "):
            RunLock(tmp_path, "r").acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        holder.kill()
    with RunLock(tmp_path, "r"):  # the kernel released the dead holder's lock
        with pytest.raises(RunBusy, match="already open in this process"):
            RunLock(tmp_path, "r").acquire()
    with RunLock(tmp_path, "r"):  # and ours, on exit
        pass


def test_a_forked_child_does_not_keep_the_lock_of_a_dead_parent(tmp_path):
    """Sampling forks workers; if the parent is killed, a straggling child must not hold the run."""
    script = HOLD.format(root=str(ROOT), run_dir=str(tmp_path)).replace(
        'print("held", flush=True)',
        'import os\nif os.fork() == 0:\n    time.sleep(600)\nprint("held", flush=True)')
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        from flows.lineage import RunLock

        with RunLock(tmp_path, "r") as lock:  # the child is still alive, the lock is free
            assert str(os.getpid()) in lock.path.read_text()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)


# ----------------------------------------------------------------------------------------------
# What the lineage shows: the cycle's training problems and a few pairs, as markdown tables


def _cycle_dir(tmp_path: Path):
    """A cycle's files as the stages write them: the draw and its reasons, and the pairs."""
    import json
    from types import SimpleNamespace

    from tasks.pairs import Pair, write_pairs

    cycle = tmp_path / "run" / "cycle-1"
    (cycle / "problems").mkdir(parents=True)
    (cycle / "problems" / "train.jsonl").write_text("".join(
        json.dumps({"id": pid, "source": "mbpp", "prompt": "p"}) + "\n"
        for pid in ("mbpp/1", "mbpp/2", "mbpp/3")))
    (cycle / "problems" / "draw.json").write_text(json.dumps({"problems": [
        {"id": "mbpp/1", "drawn": True, "reason": "seeded"},
        {"id": "mbpp/2", "drawn": True, "reason": "seeded"},
        {"id": "mbpp/3", "drawn": True, "reason": "untried"},
        {"id": "mbpp/4", "drawn": False, "reason": "not-needed"}]}))
    pairs = [Pair(prompt="def f():\n", chosen=f"    return {i} | 1\n",
                  rejected="    return `x`\n" if i == 0 else "    pass\n",
                  problem_id=f"mbpp/{1 + i % 2}", kind="best_vs_worse" if i < 6 else "debug",
                  chosen_reward=1.0, rejected_reward=0.25, chosen_id=f"c{i}", rejected_id=f"r{i}")
             for i in range(8)]
    shard = write_pairs(pairs, cycle / "pairs" / "pairs.jsonl")
    return SimpleNamespace(directory=str(cycle), pairs_file=shard,
                           pairs={"best_vs_worse": 6, "debug": 2})


def test_the_lineage_shows_the_training_problems_and_sample_pairs(tmp_path):
    from flows.lineage import content_markdown, sample_pairs, training_problems

    r = _cycle_dir(tmp_path)
    problems = training_problems(r)
    assert [(p["problem"], p["drawn because"], p["pairs"]) for p in problems] == [
        ("mbpp/1", "seeded", 4), ("mbpp/2", "seeded", 4), ("mbpp/3", "untried", 0)]
    assert problems[0]["by kind"] == "best_vs_worse 3, debug 1"
    picked = sample_pairs(r, n=4)  # in turn from each kind, in the file's order
    assert [(p["kind"], p["chosen"]) for p in picked] == [
        ("best_vs_worse", "c0 (1.00)"), ("debug", "c6 (1.00)"), ("best_vs_worse", "c1 (1.00)"),
        ("debug", "c7 (1.00)")]
    assert picked[0]["rejected"] == "r0 (0.25)"
    assert picked[0]["chosen answer"] == "`return 0 | 1`"
    assert picked[0]["rejected answer"] == "`` return `x` ``"  # a backtick inside: a longer fence

    text = content_markdown(r)
    lines = text.splitlines()
    header = lines.index("| problem | source | drawn because | pairs | by kind |")
    assert lines[header + 2:header + 5] == [
        "| mbpp/1 | mbpp | seeded | 4 | best_vs_worse 3, debug 1 |",
        "| mbpp/2 | mbpp | seeded | 4 | best_vs_worse 3, debug 1 |",
        "| mbpp/3 | mbpp | untried | 0 |  |"]
    assert "### Sample pairs (6 of 8, from " in text
    assert ("| kind | problem | chosen | rejected | chosen answer | rejected answer |" in lines)
    # a pipe in the code stays in its cell
    assert r"| `return 0 \| 1` |" in text
    for row in (line for line in lines if line.startswith("| best_vs_worse")):
        assert row.replace(r"\|", "").count("|") == 7, row


def test_the_lineage_links_to_content_pages(tmp_path):
    """Given the ids of the cycle's artifacts, the lineage links to their content pages
    (`/artifacts/artifact/<id>`), not to their keys' timelines; without ids, to the keys."""
    from types import SimpleNamespace

    from flows.lineage import _link, cycle_links

    r = SimpleNamespace(run_id="Run-1", cycle=1, started_from=SimpleNamespace(adapters=(),
                                                                              id="p0"))
    links = cycle_links(r, {"pairs": "1111", "promotion": "2222"})
    assert _link(r, links, "pairs") == "/artifacts/artifact/1111"
    assert _link(r, links, "promotion") == "/artifacts/artifact/2222"
    assert _link(r, None, "pairs") == "/artifacts/key/run-1-cycle-1-pairs"
    r.cycle = 2
    assert _link(r, None, "previous summary") == "/artifacts/key/run-1-cycle-1-summary"
