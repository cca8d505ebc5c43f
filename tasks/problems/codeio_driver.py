"""What the CodeI/O builder runs in the sandbox for one problem: draw inputs from the problem's
generator, run its reference on each of them twice, and print what it found as one JSON object.

Never imported: `tasks/problems/codeio.py` reads this file, appends `main(<the job>)` and runs the
whole text as a sandbox program (`sandbox.Program`), one program per problem, so the dataset's
code (the reference solution and the input generator) runs only there. Standard library only.

The job (JSON): `reference` and `generator` (the sources), `generator_name`, `seed` (an int; the
generator draws with `random.Random(seed)`), `inputs` (how many to draw), `max_repr` (the
longest repr of an input or an output that is kept), `call_timeout_s` (per generator or
reference call), and `driver` (this file's text: the second run starts it again).

The report (JSON, one line):

    {"cases": [{"input": "<repr of the kwargs dict>", "output": "<repr of the result>"}, ...],
     "dropped": {"<reason>": count, ...}, "details": {"<reason>": "<the first one's detail>"},
     "error": null or ["<reason>", "<detail>"]}    (error: nothing could be drawn or run at all)

An input is kept when the generator returned a dict of plain values keyed by identifiers, it is
new, and both runs of the reference returned the same plain value (the same repr). The first run
is in this process; the second in a fresh interpreter (`rerun`), with its own random state and
str hash seed, other objects allocated around each call, on the inputs in reverse order, so a
result that depends on unseeded randomness, on `id()`, on the order of a set of strings or on
what earlier calls left behind differs between them.
Plain values: None, bool, int, float (finite), str, and lists, tuples and dicts of them (dict keys
plain and hashable), nested; exact types only (no subclasses: their repr is not a literal).
"""

import ast
import copy
import io
import json
import math
import random
import signal
import subprocess
import sys
import types

MAX_DEPTH = 50
# how a second run can fail without saying anything about the reference: it ran out of time (a
# busy machine) or the fresh interpreter gave no answer. Any other failure there (it raised, or
# returned a value that is not plain or too large) where the first run returned a value is the
# reference behaving differently: `non_deterministic`.
RERUN_FAILURES = ("reference_timeout", "rerun_failed")


class CallTimeout(BaseException):
    """A generator or reference call ran past `call_timeout_s`."""


def _alarm(signum, frame):
    raise CallTimeout()


def timed(limit_s, fn, /, *args, **kwargs):
    """fn(*args, **kwargs), stopped with CallTimeout after `limit_s` seconds (wall clock)."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    try:
        return fn(*args, **kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


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


def outputs_of(solution, inputs, limit, seconds, ballast=0):
    """One run of the reference on each input: its output's repr, or ["<reason>", "<detail>"].
    `ballast` objects stay allocated during each call, so new objects get other addresses."""
    results = []
    for given in inputs:
        held = [object() for _ in range(ballast)]
        try:
            value = timed(seconds, solution, **copy.deepcopy(given))
        except CallTimeout:
            results.append(["reference_timeout", f"a call ran past {seconds:g} s"])
            continue
        except BaseException as exc:
            results.append(["reference_error", describe(exc)])
            continue
        finally:
            del held
        why = not_plain(value)
        text = text_of(value, limit) if why is None else None
        results.append(text if text is not None else (
            ["output_not_plain", f"the reference returned {why}"] if why is not None else
            ["output_too_large", f"an output's repr is longer than {limit} characters"]))
    return results


# ---------------------------------------------------------------------------------------------
# The program: draw, run, run again elsewhere, report


def main(job):
    report = {"cases": [], "dropped": {}, "details": {}, "error": None}
    real_stdout, sys.stdout = sys.stdout, io.StringIO()  # what the code prints is not ours

    def drop(reason, detail):
        report["dropped"][reason] = report["dropped"].get(reason, 0) + 1
        report["details"].setdefault(reason, detail)

    try:
        report["error"] = draw(job, report, drop)
    finally:
        sys.stdout = real_stdout
    print(json.dumps(report))


def draw(job, report, drop):
    """Fill report["cases"]; the problem-level error, if any."""
    seconds, limit = job["call_timeout_s"], job["max_repr"]
    try:
        namespace = timed(seconds, load, "reference", job["reference"])
    except CallTimeout:
        return ["reference_timeout", "loading the reference timed out"]
    except BaseException as exc:
        return ["reference_error", f"loading the reference raised {describe(exc)}"]
    solution = namespace.get("main_solution")
    if not callable(solution):
        return ["reference_error", "the reference defines no function main_solution"]
    # the generator sees the reference's imports and helpers (reasoning-gym runs both in one
    # namespace, and its generators rely on that), and `Random`, without changing them
    try:
        scope = timed(seconds, load, "generator", job["generator"],
                      dict(namespace, Random=random.Random))
    except CallTimeout:
        return ["generator_timeout", "loading the generator timed out"]
    except BaseException as exc:
        return ["generator_error", f"loading the generator raised {describe(exc)}"]
    generate = scope.get(job["generator_name"])
    if not callable(generate):
        return ["generator_error", f"the generator defines no function {job['generator_name']}"]

    rng = random.Random(job["seed"])
    drawn, shown = [], []
    for _ in range(job["inputs"]):
        try:
            inputs = timed(seconds, generate, rng)
        except CallTimeout:
            drop("generator_timeout", f"a call ran past {seconds:g} s")
            continue
        except BaseException as exc:
            drop("generator_error", describe(exc))
            continue
        if type(inputs) is not dict or not all(type(k) is str and k.isidentifier()
                                               for k in inputs):
            drop("generator_not_dict", f"it returned {text_of(inputs, 120) or type(inputs)}")
            continue
        why = not_plain(inputs)
        if why is not None:
            drop("input_not_plain", f"an input holds {why}")
            continue
        text = text_of(inputs, limit)
        if text is None:
            drop("input_too_large", f"an input's repr is longer than {limit} characters")
            continue
        if text in shown:
            drop("duplicate_input", "the generator drew the same input again")
            continue
        drawn.append(inputs)
        shown.append(text)

    first = outputs_of(solution, drawn, limit, seconds)
    again = [i for i, out in enumerate(first) if isinstance(out, str)]
    second = dict(zip(again, rerun_elsewhere(job, [shown[i] for i in again])))
    for i, out in enumerate(first):
        if not isinstance(out, str):
            drop(*out)
        elif not isinstance(second[i], str) and second[i][0] in RERUN_FAILURES:
            # the second run ran out of time or never answered: nothing was compared
            reason, detail = second[i]
            drop("rerun_failed", f"the second run on {shown[i][:120]}: {reason}: {detail[:150]}")
        elif second[i] != out:
            drop("non_deterministic", f"two runs on {shown[i][:120]} returned {out[:80]} and "
                                      f"{str(second[i])[:80]}")
        else:
            report["cases"].append({"input": shown[i], "output": out})
    return None


def rerun_elsewhere(job, inputs):
    """The reference's outputs on `inputs` (reprs) from a fresh interpreter; for an input whose
    run failed there, ["<reason>", "<detail>"] (the reasons of `outputs_of`, or `rerun_failed`
    when the interpreter gave no answer at all)."""
    if not inputs:
        return []
    child = {"reference": job["reference"], "inputs": inputs[::-1], "max_repr": job["max_repr"],
             "call_timeout_s": job["call_timeout_s"]}
    budget = job["call_timeout_s"] * (len(inputs) + 1) + 10
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", job["driver"] + "\nrerun()\n"],
                              input=json.dumps(child), capture_output=True, text=True,
                              timeout=budget)
    except subprocess.TimeoutExpired:
        return [["rerun_failed", f"the fresh interpreter ran past {budget:g} s"]] * len(inputs)
    except (subprocess.SubprocessError, OSError) as exc:
        return [["rerun_failed", f"the fresh interpreter did not start: {describe(exc)}"]
                ] * len(inputs)
    try:
        outputs = json.loads(done.stdout)
    except ValueError:
        return [["rerun_failed", f"the fresh interpreter (exit {done.returncode}) printed no "
                                 f"answer; stderr: {done.stderr[-200:]}"]] * len(inputs)
    if not isinstance(outputs, list) or len(outputs) != len(inputs):
        return [["rerun_failed", "the fresh interpreter's answer has the wrong shape"]
                ] * len(inputs)
    return [out if isinstance(out, str) else
            [str(out[0]), str(out[1])] if isinstance(out, list) and len(out) == 2 else
            ["rerun_failed", "an answer of the wrong shape"] for out in outputs[::-1]]


def rerun():
    """In the fresh interpreter: the job on stdin, a JSON list of output reprs (or errors)."""
    job = json.loads(sys.stdin.read())
    real_stdout, sys.stdout = sys.stdout, io.StringIO()
    try:
        namespace = timed(job["call_timeout_s"], load, "reference", job["reference"])
        inputs = [ast.literal_eval(text) for text in job["inputs"]]
        results = outputs_of(namespace["main_solution"], inputs, job["max_repr"],
                             job["call_timeout_s"], ballast=101)
    except BaseException as exc:
        results = [["reference_error", describe(exc)]] * len(job["inputs"])
    finally:
        sys.stdout = real_stdout
    print(json.dumps(results))
