"""Progress of the long stages: done/total, rate and ETA in the task's log at a steady cadence, a
Prefect progress artifact on the task run, and a bar on a terminal.

    with Progress("sample", len(prompts), "prompts") as progress:
        completions = backend.generate(prompts, settings, progress=progress)

A line when it starts, each time another tenth is done or 30 s have passed since the last line
(whichever comes first, checked as work is counted), and when the count reaches the total:

    sample: 0/512 prompts
    sample: 120/512 prompts (23%), 1.9/s, ETA 3 min 25 s
    sample: 512/512 prompts (100%), 2.0/s, done in 4 min 16 s

Inside a Prefect task run the lines go to the run's logger (the task's log in the UI) and a
progress artifact on the task run follows them; outside a run (a stage called as a function by a
test or a benchmark) they go to this module's logger. When stdout is a terminal a tqdm bar shows
the same count, and the lines are kept off the terminal (they still reach the task's log).

Progress is observation only: a stage counts what it did, and nothing it computes depends on a
`Progress` (the engines count batches or finished requests; see `Backend.generate`).
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time

LOG = logging.getLogger(__name__)
EVERY_FRACTION = 0.1  # a line each time another tenth is done ...
EVERY_S = 30.0  # ... or this long after the last line
# on log records of progress lines: the console filter keeps them off a terminal that shows a bar
RECORD_FLAG = "autodidact_progress"


def run_logger():
    """The Prefect run logger inside a flow or task run, else this module's logger."""
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # MissingContextError: called as a plain function
        return LOG


def duration(seconds: float) -> str:
    """'45 s', '3 min 25 s', '1 h 05 min'."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def rate_text(per_s: float) -> str:
    """'1.9/s', '3.0/min', '12.0/h' ('240/s' from 100 up)."""
    if per_s >= 100:
        return f"{per_s:.0f}/s"
    if per_s >= 1:
        return f"{per_s:.1f}/s"
    if per_s * 60 >= 1:
        return f"{per_s * 60:.1f}/min"
    return f"{per_s * 3600:.1f}/h"


def _in_task_run() -> bool:
    try:
        from prefect.context import TaskRunContext

        return TaskRunContext.get() is not None
    except Exception:
        return False


def _stdout_is_a_terminal() -> bool:
    try:
        return sys.stdout is not None and sys.stdout.isatty()
    except Exception:  # a closed or replaced stdout
        return False


class _OffTheTerminal(logging.Filter):
    """Drops progress lines from a handler that writes to the terminal the bar is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, RECORD_FLAG, False)


_FILTER = _OffTheTerminal()
_FILTER_GUARD = threading.Lock()


def _keep_lines_off_the_terminal() -> None:
    """Add the filter to every handler that writes to a terminal (Prefect's console handler on
    the root logger, or whatever a script configured); once per handler."""
    with _FILTER_GUARD:
        loggers = [logging.getLogger()] + [logging.getLogger(name) for name in
                                           ("prefect", "prefect.task_runs", "prefect.flow_runs",
                                            __name__)]
        for logger in loggers:
            for handler in logger.handlers:
                stream = getattr(handler, "stream", None)
                try:
                    terminal = stream is not None and stream.isatty()
                except Exception:  # a closed or odd stream
                    terminal = False
                if terminal and _FILTER not in handler.filters:
                    handler.addFilter(_FILTER)


class Progress:
    """A count of `total` units of work, reported as the module docstring shows.

    `advance(n)` counts n more; `grow(n)` adds n to the total (work found on the way);
    `report(note)` writes a line now, with `note` after it (training: the step's loss);
    `close()` writes the last line if the count moved since the one before. As a context
    manager it closes on a normal exit; on an exception it only stops the bar.

    `done`: units already done before this process started (a resumed training): they count
    toward the total but not toward the rate. `bar`: None = when stdout is a terminal.
    `artifact`: None = inside a Prefect task run. Safe to call from several threads.
    """

    def __init__(self, what: str, total: int, unit: str = "items", *, logger=None,
                 done: int = 0, every_fraction: float = EVERY_FRACTION,
                 every_s: float = EVERY_S, bar: bool | None = None,
                 artifact: bool | None = None):
        self.what, self.total, self.unit = what, int(total), unit
        self.done = self._initial = int(done)
        self.every_fraction, self.every_s = every_fraction, every_s
        self.log = logger if logger is not None else run_logger()
        self._lock = threading.Lock()
        self._started = self._logged_at = time.monotonic()
        self._logged_done: int | None = None
        self._logged_tenth = self._tenth(self.done)
        self._closed = False
        self._artifact_id = None
        self._artifact = _in_task_run() if artifact is None else artifact
        self._bar = None
        if bar if bar is not None else _stdout_is_a_terminal():
            self._bar = self._open_bar()
        self._emit(self.line())

    # -- counting ---------------------------------------------------------------------------
    def advance(self, n: int = 1) -> None:
        """Count `n` more units; a line when the cadence says so."""
        if n <= 0:
            return
        with self._lock:
            self.done += n
            due = self._due()
        if self._bar is not None:
            self._bar.update(n)
        if due:
            self._emit(self.line())

    def grow(self, n: int) -> None:
        """`n` more units of work than the total said (e.g. prompts generated again)."""
        if n <= 0:
            return
        with self._lock:
            self.total += n
            self._logged_tenth = self._tenth(self.done)
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

    def update_to(self, done: int) -> None:
        """Set the count (never backwards)."""
        self.advance(int(done) - self.done)

    def report(self, note: str = "", done: int | None = None) -> None:
        """A line now, whatever the cadence, with `note` after the count (set to `done` first
        when given, never backwards)."""
        with self._lock:
            moved = max(0, int(done) - self.done) if done is not None else 0
            self.done += moved
            self._mark()
        if moved and self._bar is not None:
            self._bar.update(moved)
        self._emit(self.line() + (f"; {note}" if note else ""))

    def close(self) -> None:
        """The last line (if the count moved since the one before) and the end of the bar."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            last = self._logged_done != self.done
            if last:
                self._mark()
        if last:
            self._emit(self.line())
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        elif self._bar is not None:
            self._closed = True
            self._bar.close()

    # -- the line ---------------------------------------------------------------------------
    def line(self) -> str:
        """'sample: 120/512 prompts (23%), 1.9/s, ETA 3 min 25 s'."""
        done, total = self.done, self.total
        text = f"{self.what}: {done}/{total} {self.unit}"
        elapsed = time.monotonic() - self._started
        counted = done - self._initial
        if counted <= 0 or total <= 0:  # nothing counted yet in this process
            return text + (f" ({math.floor(100 * done / total)}%)" if 0 < done and total else "")
        rate = counted / elapsed if elapsed > 0 else 0.0
        text += f" ({math.floor(100 * done / total)}%)"
        if rate > 0:
            text += f", {rate_text(rate)}"
        if done >= total:
            return text + f", done in {duration(elapsed)}"
        if rate > 0:
            text += f", ETA {duration((total - done) / rate)}"
        return text

    def _tenth(self, done: int) -> int:
        if self.total <= 0:
            return 0
        return math.floor(done / self.total / self.every_fraction + 1e-9)

    def _due(self) -> bool:
        """Whether the count (just moved) deserves a line; marks it logged if so. Under the
        lock."""
        finished = self.done >= self.total and self._logged_done != self.done
        crossed = self._tenth(self.done) > self._logged_tenth
        late = time.monotonic() - self._logged_at >= self.every_s
        if finished or crossed or late:
            self._mark()
            return True
        return False

    def _mark(self) -> None:
        self._logged_done = self.done
        self._logged_tenth = self._tenth(self.done)
        self._logged_at = time.monotonic()

    def _emit(self, text: str) -> None:
        if self._logged_done is None:  # the first line
            self._logged_done = self.done
        self.log.info(text, extra={RECORD_FLAG: True})
        if self._artifact:
            self._publish(text)

    # -- the artifact and the bar -----------------------------------------------------------
    def _publish(self, text: str) -> None:
        """Create or update the task run's progress artifact; a failure (the API away) is
        logged once and ends publishing, never the stage."""
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        percent = 100.0 * min(self.done, self.total) / self.total if self.total > 0 else 100.0
        try:
            if self._artifact_id is None:
                self._artifact_id = create_progress_artifact(progress=percent,
                                                             description=text, _sync=True)
            else:
                update_progress_artifact(self._artifact_id, progress=percent,
                                         description=text, _sync=True)
        except Exception as exc:
            self._artifact = False
            LOG.warning("%s: the progress artifact could not be published (%s: %s); the log "
                        "lines go on", self.what, type(exc).__name__, exc)

    def _open_bar(self):
        try:
            from tqdm import tqdm
        except ImportError:  # no tqdm: the lines stay on the terminal
            return None
        _keep_lines_off_the_terminal()
        return tqdm(total=self.total, initial=self.done, desc=self.what, unit=self.unit,
                    file=sys.stdout, dynamic_ncols=True, leave=True, mininterval=1.0)


# ----------------------------------------------------------------------------------------------
# Step observers: the numbers of each logging step, to whoever watches (MLflow's live curves)

_STEP_OBSERVERS: list = []
_OBSERVERS_LOCK = threading.Lock()


class observe_steps:
    """`with observe_steps(fn):` calls `fn(stage, step, numbers)` for each step a stage reports
    (training: each logging step's loss, rewards, margins, learning rate) while the block runs.
    An observer that raises is dropped with a warning: watching never fails the stage."""

    def __init__(self, fn):
        self.fn = fn

    def __enter__(self):
        with _OBSERVERS_LOCK:
            _STEP_OBSERVERS.append(self.fn)
        return self

    def __exit__(self, *exc):
        with _OBSERVERS_LOCK:
            if self.fn in _STEP_OBSERVERS:
                _STEP_OBSERVERS.remove(self.fn)
        return False


def report_step(stage: str, step: int, numbers: dict) -> None:
    """Hand one step's numbers (the plain numbers among them) to the observers."""
    with _OBSERVERS_LOCK:
        observers = list(_STEP_OBSERVERS)
    if not observers:
        return
    plain = {k: float(v) for k, v in numbers.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for fn in observers:
        try:
            fn(stage, step, plain)
        except Exception as exc:
            run_logger().warning("%s: a step observer failed and stops watching: %s", stage, exc)
            with _OBSERVERS_LOCK:
                if fn in _STEP_OBSERVERS:
                    _STEP_OBSERVERS.remove(fn)
