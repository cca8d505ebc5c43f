"""What the CodeI/O builder runs in the sandbox for one problem: draw inputs from the problem's
generator and run its reference on each, twice, in two fresh interpreters, and print what it
found as one JSON object.

Never imported: `tasks/problems/codeio.py` reads this file, appends `main(<the job>)` and runs the
whole text as a sandbox program (`sandbox.Program`), one program per problem, so the dataset's
code (the reference solution and the input generator) runs only there. Standard library only.

The job (JSON): `reference` and `generator` (the sources), `generator_name`, `seed` (an int; the
generator draws with `random.Random(seed)`), `inputs` (how many to draw), `max_repr` (the
longest repr of an input or an output that is kept), `min_inputs` (fewer kept drop the problem),
`call_line_budget` and `call_timeout_s` (per generator or reference call, and per loading of
either, below), `run_timeout_s` (the wall-clock limit of one run's interpreter, half the program's
limit less 5 s), and `driver` (this file's text: each run starts it again in a fresh
interpreter).

The report (JSON, one line):

    {"cases": [{"input": "<repr of the kwargs dict>", "output": "<repr of the result>",
                "lines": <line events of the reference's call>}, ...],
     "dropped": {"<reason>": count, ...}, "details": {"<reason>": "<the first one's detail>"},
     "error": null or ["<reason>", "<detail>"]}    (error: the problem as a whole is dropped)

The same every time. Both runs are fresh interpreters with a fixed str hash seed and a fixed seed
of the `random` module (run 1: 0 and 0, run 2: 1 and 1), and a call is limited by what it does,
not by how long a busy machine takes: at most `call_line_budget` Python line events (counted by
a trace function: the same count on any machine), and `call_timeout_s` seconds of CPU time
(ITIMER_PROF, for time spent in C, such as one huge `sorted`) with a wall-clock backstop of
`3 * call_timeout_s + 1` (for a call that sleeps or waits). So a build keeps the same inputs and
the same tests every time; only a call near the CPU limit, a run near `run_timeout_s` (a
reference whose calls spend seconds each in C) or code that reads the clock or object addresses
can still differ between builds.

Each run loads the reference and the generator, draws the inputs with `random.Random(seed)` and
runs the reference on them: run 1 in order, run 2 in reverse order, with other objects allocated
around each call and without `-B` (so a result that depends on unseeded randomness, on `id()`,
on the order of a set of strings, on what earlier calls left behind or on the interpreter's flags
differs between them). The second run calls the reference only on the inputs the first answered
with a value, and does not run at all when fewer than `min_inputs` of them did (the problem is
dropped either way; so a generator that draws differently is caught only when the first run
answered at least `min_inputs` inputs). The problem is dropped (`generator_non_deterministic`)
when the two runs drew different inputs. An input is kept when the generator returned a dict of plain values keyed
by identifiers, it is new, and both runs of the reference returned the same plain value (the
same repr).
Plain values: None, bool, int, float (finite), str, and lists, tuples and dicts of them (dict keys
plain and hashable), nested; exact types only (no subclasses: their repr is not a literal).
"""

import ast
import copy
import io
import json
import math
import os
import random
import signal
import subprocess
import sys
import types

MAX_DEPTH = 50
# how run 2 can fail on an input without saying anything about the reference: it ran out of
# its budget where run 1 did not. Any other failure there (it raised, or returned a value that
# is not plain or too large) where run 1 returned a value is the reference behaving
# differently: `non_deterministic`.
RERUN_FAILURES = ("reference_timeout",)
# the two runs: str hash seed, seed of the `random` module, objects held around each call,
# reference calls in reverse order, interpreter flags
RUNS = ({"hash_seed": 0, "random_seed": 0, "ballast": 0, "reverse": False, "flags": ["-B"]},
        {"hash_seed": 1, "random_seed": 1, "ballast": 101, "reverse": True, "flags": []})


class CallTimeout(BaseException):
    """A generator or reference call ran past its line budget, its CPU time or the backstop."""


class Limited:
    """Runs calls within a budget of Python line events and of CPU seconds (wall-clock backstop);
    `lines` is the line events of the last call, `over` why it was stopped (None: it was not).

    A call stopped by its limit gets CallTimeout, raised inside it. Code that catches it and
    carries on is still over: the call ends in CallTimeout whatever it returns, and when it
    keeps running, the timers fire again every `REPEAT_S` seconds and the interpreter exits
    (`STOPPED_EXIT`) instead of running until the build's own timeouts. A call whose tracing
    stopped (CPython drops a trace function that fails, e.g. with RecursionError at the depth
    limit) is over too: its count would be too low."""

    REPEAT_S = 0.5
    STOPPED_EXIT = 86

    def __init__(self, line_budget, cpu_s):
        self.line_budget, self.cpu_s = line_budget, cpu_s
        self.lines, self.over, self.armed = 0, None, False
        self.what = "reference"  # what is being called: the reason's prefix

    def _count(self, frame, event, arg):
        if event == "line":
            self.lines += 1
            if self.lines > self.line_budget:
                self.over = f"a call ran past {self.line_budget} line events"
                raise CallTimeout()
        return self._count

    def _enter(self, frame, event, arg):
        return self._count

    def _signal(self, signum, frame):
        if not self.armed:  # a timer that fired as the call ended
            return
        if self.over is not None:  # stopped once already, and it caught that and went on
            sys.stdout = sys.__stdout__
            print(json.dumps([f"{self.what}_timeout",
                              f"{self.over}, caught that and kept running"]))
            sys.stdout.flush()
            os._exit(self.STOPPED_EXIT)
        self.over = (f"a call ran past {self.cpu_s:g} s of CPU time" if signum == signal.SIGPROF
                     else f"a call ran past {3 * self.cpu_s + 1:g} s of wall-clock time")
        raise CallTimeout()

    def __call__(self, fn, /, *args, **kwargs):
        """fn(*args, **kwargs), or CallTimeout (also when the call caught it and went on)."""
        self.lines, self.over = 0, None
        signal.signal(signal.SIGPROF, self._signal)
        signal.signal(signal.SIGALRM, self._signal)
        try:
            self.armed = True
            signal.setitimer(signal.ITIMER_PROF, self.cpu_s, self.REPEAT_S)
            signal.setitimer(signal.ITIMER_REAL, 3 * self.cpu_s + 1, self.REPEAT_S)
            sys.settrace(self._enter)
            result = fn(*args, **kwargs)
            traced = sys.gettrace() == self._enter  # bound methods: equal, never the same
        finally:
            # here, not in a method: a new frame would be traced, and its lines counted
            while True:  # a timer handled before `armed` is False raises CallTimeout here
                try:
                    self.armed = False
                    sys.settrace(None)
                    signal.setitimer(signal.ITIMER_PROF, 0)
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    break
                except CallTimeout:
                    continue
        if self.over is None and not traced:
            self.over = "a call stopped being traced (its line count would be too low)"
        if self.over is not None:
            raise CallTimeout()
        return result


def not_plain(value):
    """Why `value` is not made of plain values (a short text), or None when it is."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH}"
        if item is None or kind in (bool, int, str):
            continue
        if kind is float:
            if not math.isfinite(item):
                return f"a non-finite float ({item!r})"
            continue
        if kind in (list, tuple):
            stack.extend((x, depth + 1) for x in item)
            continue
        if kind is dict:
            for key, x in item.items():
                if not (key is None or type(key) in (bool, int, float, str, tuple)):
                    return f"a dict key of type {type(key).__name__}"
                stack.append((key, depth + 1))
                stack.append((x, depth + 1))
            continue
        return f"a value of type {kind.__name__}"
    return None


def describe(exc):
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:300]


def text_of(value, limit):
    """repr(value), or None when it is longer than `limit` (or too large to write)."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int beyond the digit limit; a deep value
        return None
    return text if len(text) <= limit else None


def load(name, source, namespace=None):
    """Run `source` as the module `name` (registered in sys.modules: dataclasses and pickle look
    a class's module up there); its namespace."""
    module = types.ModuleType(name)
    module.__dict__.update(namespace or {})
    module.__name__ = name
    sys.modules[name] = module
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module.__dict__


def outputs_of(solution, inputs, limit, limited, ballast=0):
    """One run of the reference on each input: [its output's repr, its line events], or
    ["<reason>", "<detail>"]. `ballast` objects stay allocated during each call, so new objects
    get other addresses."""
    results = []
    for given in inputs:
        held = [object() for _ in range(ballast)]
        try:
            value = limited(solution, **copy.deepcopy(given))
        except CallTimeout:
            results.append(["reference_timeout", limited.over])
            continue
        except BaseException as exc:
            results.append(["reference_error", describe(exc)])
            continue
        finally:
            del held
        why = not_plain(value)
        text = text_of(value, limit) if why is None else None
        results.append([text, limited.lines] if text is not None else (
            ["output_not_plain", f"the reference returned {why}"] if why is not None else
            ["output_too_large", f"an output's repr is longer than {limit} characters"]))
    return results


def is_output(result):
    return isinstance(result[0], str) and isinstance(result[1], int)


# ---------------------------------------------------------------------------------------------
# One run, in a fresh interpreter: load, draw, call


def run():
    """In a fresh interpreter: the job on stdin; prints {"error", "draws", "outputs"}: the
    problem-level error or None, each draw's input repr (or ["<reason>", "<detail>"]), and the
    reference's result on each drawn input in the order drawn (see `outputs_of`)."""
    job = json.loads(sys.stdin.read())
    random.seed(job["random_seed"])
    real_stdout, sys.stdout = sys.stdout, io.StringIO()  # what the code prints is not ours
    try:
        answer = load_draw_and_call(job)
    finally:
        sys.stdout = real_stdout
    print(json.dumps(answer))
    real_stdout.flush()
    os._exit(0)  # nothing the code left behind (atexit, __del__) runs or prints after the answer


def load_draw_and_call(job):
    limited = Limited(job["call_line_budget"], job["call_timeout_s"])
    limit = job["max_repr"]

    def failed(reason, detail):
        return {"error": [reason, detail], "draws": [], "outputs": []}

    try:
        namespace = limited(load, "reference", job["reference"])
    except CallTimeout:
        return failed("reference_timeout", f"loading the reference: {limited.over}")
    except BaseException as exc:
        return failed("reference_error", f"loading the reference raised {describe(exc)}")
    solution = namespace.get("main_solution")
    if not callable(solution):
        return failed("reference_error", "the reference defines no function main_solution")
    # the generator sees the reference's imports and helpers (reasoning-gym runs both in one
    # namespace, and its generators rely on that), and `Random`, without changing them
    limited.what = "generator"
    try:
        scope = limited(load, "generator", job["generator"],
                        dict(namespace, Random=random.Random))
    except CallTimeout:
        return failed("generator_timeout", f"loading the generator: {limited.over}")
    except BaseException as exc:
        return failed("generator_error", f"loading the generator raised {describe(exc)}")
    generate = scope.get(job["generator_name"])
    if not callable(generate):
        return failed("generator_error", f"the generator defines no function "
                                         f"{job['generator_name']}")

    rng = random.Random(job["seed"])
    draws, drawn = [], []
    for _ in range(job["inputs"]):
        try:
            inputs = limited(generate, rng)
        except CallTimeout:
            draws.append(["generator_timeout", limited.over])
            continue
        except BaseException as exc:
            draws.append(["generator_error", describe(exc)])
            continue
        if type(inputs) is not dict or not all(type(k) is str and k.isidentifier()
                                               for k in inputs):
            draws.append(["generator_not_dict",
                          f"it returned {text_of(inputs, 120) or type(inputs)}"])
            continue
        why = not_plain(inputs)
        if why is not None:
            draws.append(["input_not_plain", f"an input holds {why}"])
            continue
        text = text_of(inputs, limit)
        if text is None:
            draws.append(["input_too_large", f"an input's repr is longer than {limit} characters"])
            continue
        if text in draws:
            draws.append(["duplicate_input", "the generator drew the same input again"])
            continue
        draws.append(text)
        drawn.append(inputs)
    limited.what = "reference"
    calls = [i for i in range(len(drawn)) if job["only"] is None or i in job["only"]]
    order = calls[::-1] if job["reverse"] else calls
    outputs = dict(zip(order, outputs_of(solution, [drawn[i] for i in order], limit, limited,
                                         job["ballast"])))
    return {"error": None, "draws": draws,
            "outputs": [outputs.get(i, ["not_called", ""]) for i in range(len(drawn))]}


def run_elsewhere(job, how, only=None):
    """`run()` in a fresh interpreter started as `how` (one of RUNS) says, calling the reference
    on the drawn inputs numbered `only` (None: all): its answer, or ["rerun_failed", "<detail>"]
    when it gave none."""
    child = {k: job[k] for k in ("reference", "generator", "generator_name", "seed", "inputs",
                                 "max_repr", "call_line_budget", "call_timeout_s")}
    child.update(random_seed=how["random_seed"], ballast=how["ballast"], reverse=how["reverse"],
                 only=only)
    budget = job["run_timeout_s"]
    # what `-I` does (no user site, no current directory on the path, no PYTHON* variables from
    # outside) but with this run's str hash seed
    command = [sys.executable, "-s", "-S", "-P", *how["flags"], "-c", job["driver"] + "\nrun()\n"]
    try:
        done = subprocess.run(command, input=json.dumps(child), capture_output=True, text=True,
                              timeout=budget, env={"PYTHONHASHSEED": str(how["hash_seed"]),
                                                   "LANG": "C.UTF-8"})
    except subprocess.TimeoutExpired:
        return ["rerun_failed", f"the interpreter ran past {budget:g} s"]
    except (subprocess.SubprocessError, OSError) as exc:
        return ["rerun_failed", f"the interpreter did not start: {describe(exc)}"]
    if done.returncode == Limited.STOPPED_EXIT:  # a call caught its limit and kept running
        try:
            reason, detail = json.loads(done.stdout.splitlines()[-1])
            return [str(reason), str(detail)]
        except (ValueError, IndexError, TypeError):
            return ["rerun_failed", "a call kept running past its limit"]
    try:
        answer = json.loads(done.stdout)
        if not isinstance(answer, dict) or set(answer) != {"error", "draws", "outputs"}:
            raise ValueError("not an answer")
    except ValueError:
        return ["rerun_failed", f"the interpreter (exit {done.returncode}) printed no answer; "
                                f"stderr: {done.stderr[-200:]}"]
    return answer


# ---------------------------------------------------------------------------------------------
# The program: run twice, compare, report


def main(job):
    report = {"cases": [], "dropped": {}, "details": {}, "error": None}

    def drop(reason, detail):
        report["dropped"][reason] = report["dropped"].get(reason, 0) + 1
        report["details"].setdefault(reason, detail)

    report["error"] = compare(job, drop, report["cases"])
    print(json.dumps(report))


def compare(job, drop, cases):
    """Fill `cases` from the two runs; the problem-level error, if any."""
    first = run_elsewhere(job, RUNS[0])
    if isinstance(first, list):
        return first
    if first["error"] is not None:
        return first["error"]
    answered = [i for i, out in enumerate(first["outputs"]) if is_output(out)]
    if len(answered) < job["min_inputs"]:
        # too few inputs whatever a second run says: reported as they are, the problem is
        # dropped (`too_few_inputs`, or the commonest reason when none answered)
        shown = [d for d in first["draws"] if isinstance(d, str)]
        for draw in first["draws"]:
            if not isinstance(draw, str):
                drop(*draw)
        for given, out in zip(shown, first["outputs"]):
            if is_output(out):
                cases.append({"input": given, "output": out[0], "lines": out[1]})
            else:
                drop(*out)
        return None
    second = run_elsewhere(job, RUNS[1], answered)
    if isinstance(second, list):
        return second
    if second["error"] is not None:  # loading failed in the second run only
        reason, detail = second["error"]
        if reason.endswith("_timeout"):
            return ["rerun_failed", f"the second run: {reason}: {detail}"]
        return ["non_deterministic", f"loading failed in the second run only: {reason}: "
                                     f"{detail}"]
    if second["draws"] != first["draws"]:
        at = next((i for i, (a, b) in enumerate(zip(first["draws"], second["draws"])) if a != b),
                  min(len(first["draws"]), len(second["draws"])))
        return ["generator_non_deterministic",
                f"two runs drew different inputs: draw {at + 1} was "
                f"{str(first['draws'][at:at + 1])[:100]} and "
                f"{str(second['draws'][at:at + 1])[:100]}"]
    shown = [d for d in first["draws"] if isinstance(d, str)]
    for draw in first["draws"]:
        if not isinstance(draw, str):
            drop(*draw)
    if len(first["outputs"]) != len(shown) or len(second["outputs"]) != len(shown):
        return ["rerun_failed", "a run's answer has the wrong shape"]
    for given, out, again in zip(shown, first["outputs"], second["outputs"]):
        if not is_output(out):
            drop(*out)
        elif not is_output(again) and again[0] in RERUN_FAILURES:
            # the second run ran out of its budget: nothing was compared
            drop("rerun_failed", f"the second run on {given[:120]}: {again[0]}: "
                                 f"{str(again[1])[:150]}")
        elif again[0] != out[0]:
            drop("non_deterministic", f"two runs on {given[:120]} returned {out[0][:80]} and "
                                      f"{str(again[0])[:80]}")
        else:
            cases.append({"input": given, "output": out[0], "lines": out[1]})
    return None
