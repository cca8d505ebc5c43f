"""Operators of the program's own objects, and a program that kills itself.

An object of a class the program defines reaches the tests as a proxy (judge.py's `Remote`).
The tests' own values must never reach it through an operator whose answer the judge cannot
check: HumanEval's tolerance form `abs(candidate(x) - expected) < 1e-6` would hand `expected` to
the program's `__sub__`, which could answer 0.0 whatever it returned.  Each attacker below
passed on the judge before this rule (the ordering one excepted, kept as a guard) and runs
beside a correct neighbour in the same batch.  The legitimate uses of operators (between two
objects of the program, and every operator on plain numbers) are in legitimate.py.
"""

import textwrap

import pytest

from sandbox import Request

pytestmark = pytest.mark.docker

GOOD = "def truncate(x):\n    return x - int(x)\n"
TOLERANCE = """
    import math

    def check(candidate):
        assert abs(candidate(3.5) - 0.5) < 1e-6
        assert abs(candidate(1.25) - 0.25) < 1e-6
"""

# name: (program, tests); every program returns an object of its own class
ATTACKS = {
    # the expected value reaches __sub__, which says "no difference"
    "sub_says_zero": ("""
        class Liar:
            def __sub__(self, other):
                return 0.0
        def truncate(x):
            return Liar()
    """, TOLERANCE),
    # the difference is the object again, and abs says "no difference"
    "abs_says_zero": ("""
        class Liar:
            def __sub__(self, other):
                return self
            def __abs__(self):
                return 0.0
        def truncate(x):
            return Liar()
    """, TOLERANCE),
    # expected - result: the expected value reaches the reflected operator
    "rsub_says_zero": ("""
        class Liar:
            def __rsub__(self, other):
                return 0.0
        def truncate(x):
            return Liar()
    """, """
        def check(candidate):
            assert abs(0.5 - candidate(3.5)) < 1e-6
            assert abs(0.25 - candidate(1.25)) < 1e-6
    """),
    # math.isclose on the difference
    "isclose_of_difference": ("""
        class Liar:
            def __sub__(self, other):
                return 0.0
        def truncate(x):
            return Liar()
    """, """
        import math

        def check(candidate):
            assert math.isclose(candidate(3.5) - 0.5, 0.0, abs_tol=1e-9)
            assert math.isclose(candidate(1.25) - 0.25, 0.0, abs_tol=1e-9)
    """),
    # a chain: the object scales to itself, then the difference is zero
    "chain_of_operators": ("""
        class Liar:
            def __mul__(self, other):
                return self
            def __neg__(self):
                return self
            def __add__(self, other):
                return 0.0
        def truncate(x):
            return Liar()
    """, """
        def check(candidate):
            assert abs(-(candidate(3.5) * 2) + 1.0) < 1e-6
            assert abs(-(candidate(1.25) * 4) + 1.0) < 1e-6
    """),
    # ordering against a bound (refused before too: a Remote never had __le__)
    "ordering_says_yes": ("""
        class Liar:
            def __le__(self, other):
                return True
            def __ge__(self, other):
                return True
        def truncate(x):
            return Liar()
    """, """
        def check(candidate):
            assert 0.5 - 1e-6 <= candidate(3.5) <= 0.5 + 1e-6
            assert 0.25 - 1e-6 <= candidate(1.25) <= 0.25 + 1e-6
    """),
}


@pytest.fixture(scope="module")
def attack_verdicts(sandbox):
    requests = []
    for name, (code, tests) in ATTACKS.items():
        requests.append(Request(name, textwrap.dedent(code), textwrap.dedent(tests), "truncate",
                                5.0))
        requests.append(Request(f"good-beside-{name}", GOOD, textwrap.dedent(tests), "truncate",
                                5.0))
    return {v.id: v for v in sandbox.run(requests)}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_an_operator_of_the_programs_object_never_decides_a_test(attack_verdicts, name):
    verdict = attack_verdicts[name]
    assert verdict.status == "failed" and verdict.passed == 0, verdict
    # the feedback says why, so a self-debug turn can fix it
    assert "return a plain value" in verdict.feedback, verdict.feedback


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_the_correct_neighbour_passes(attack_verdicts, name):
    verdict = attack_verdicts[f"good-beside-{name}"]
    assert verdict.status == "passed" and verdict.passed == verdict.total == 2, verdict


def test_a_hash_that_collides_with_an_expected_value_still_meets_identity(sandbox):
    """The program's objects hash as the program says (so its own objects work as set members and
    dict keys, legitimate.py's classes__own_hash), but a hash equal to an expected value's only
    brings the lookup to `==`, which is identity against the tests' values (a guard: identity
    hashing refused this too)."""
    liar = textwrap.dedent("""
        class Liar:
            def __init__(self, x):
                self.x = x
            def __hash__(self):
                return hash(self.x - int(self.x))
            def __eq__(self, other):
                return True
        def truncate(x):
            return Liar(x)
    """)
    tests = textwrap.dedent("""
        def check(candidate):
            assert candidate(3.5) in {0.5}
            assert {0.25: "yes"}.get(candidate(1.25)) == "yes"
    """)
    liar_verdict, good = sandbox.run([Request("hash-liar", liar, tests, "truncate", 5.0),
                                      Request("good-beside-hash", GOOD, tests, "truncate", 5.0)])
    assert liar_verdict.status == "failed" and liar_verdict.passed == 0, liar_verdict
    assert good.status == "passed" and good.passed == good.total == 2, good


# ----------------------------------------------------------------------------------------------
# A program that kills itself is told so, not that a limit killed it

ADD_TESTS = """
def check(candidate):
    assert candidate(1, 2) == 3
    assert candidate(10, 5) == 15
"""
SELF_KILLS = {
    "killpg_own_group": "os.killpg(0, signal.SIGKILL)",
    "kill_own_pid": "os.kill(os.getpid(), signal.SIGKILL)",
    # a group of its own first: the group it kills is the one it is in at the time
    "new_session_kills_its_group": "os.setsid()\nos.killpg(0, signal.SIGKILL)",
    "child_kills_group": "if os.fork() == 0:\n    os.kill(0, signal.SIGKILL)\ntime.sleep(5)",
    # kill(-1) spares its caller: the program dies by its child's hand
    "child_kills_everyone": ("if os.fork() == 0:\n    os.kill(-1, signal.SIGKILL)\n"
                             "    os._exit(0)\ntime.sleep(5)"),
}


@pytest.fixture(scope="module")
def self_kill_verdicts(sandbox):
    requests = []
    for name, how in SELF_KILLS.items():
        body = textwrap.indent(how, " " * 8)
        code = f"import os, signal, time\ndef add(a, b):\n    if a == 10:\n{body}\n    return a + b\n"
        requests.append(Request(name, code, ADD_TESTS, "add", 5.0))
        requests.append(Request(f"good-beside-{name}", "def add(a, b):\n    return a + b\n",
                                ADD_TESTS, "add", 5.0))
    return {v.id: v for v in sandbox.run(requests)}


@pytest.mark.parametrize("name", sorted(SELF_KILLS))
def test_a_self_inflicted_kill_is_named_truthfully(self_kill_verdicts, name):
    verdict = self_kill_verdicts[name]
    assert (verdict.status, verdict.passed, verdict.total) == ("error", 1, 2), verdict
    assert "killed by SIGKILL, a signal it sent itself, while running the tests" in (
        verdict.feedback), verdict.feedback
    assert "memory" not in verdict.feedback


@pytest.mark.parametrize("name", sorted(SELF_KILLS))
def test_the_neighbour_of_a_self_killer_passes(self_kill_verdicts, name):
    verdict = self_kill_verdicts[f"good-beside-{name}"]
    assert verdict.status == "passed", verdict
