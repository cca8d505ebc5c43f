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
