"""The runner's pure parts, without Docker: test preparation, the value codec, the seccomp
program, how sites are counted when the tests stop early, which sites are held out, and what
feedback shows of a returned value."""

import collections
import datetime
import decimal
import fractions
import hashlib
import json

import pytest

from sandbox.runner import confinement, syscalls
from sandbox.runner.batch import parse_request_line
from sandbox.runner.codec import CodecError, Decoder, Encoder
from sandbox.runner.judge import (InvalidTests, _counted, held_out_sites, prepare_tests, returned,
                                  unsatisfied)


def test_each_assert_is_a_case_and_self_calls_are_dropped():
    tests = """
METADATA = {}
def check(candidate):
    assert candidate(1) == 2
    assert True, "not a case"
    for x in range(3):
        assert candidate(x) >= 0

def test_check():
    check(f)

test_check()
"""
    _, total, free, scopes = prepare_tests(tests)
    assert total == 2
    assert free == []  # `f` only appears in the dropped test_check
    assert scopes == [(), (0,)]  # the second site sits in loop 0


def test_sites_in_nested_functions_are_marked():
    tests = ("def check(candidate):\n    def one(x):\n        assert candidate(x)\n"
             "    while True:\n        for i in range(2):\n            assert candidate(i)\n"
             "        break\n")
    _, total, _, scopes = prepare_tests(tests)
    assert total == 2 and scopes == [("def",), (0, 1)]


def test_free_names_are_the_programs_helpers():
    _, total, free, _ = prepare_tests("import math\ndef check(candidate):\n"
                                      "    assert math.fabs(poly([1], candidate([1]))) < 1e-4\n")
    assert (total, free) == (1, ["poly"])


@pytest.mark.parametrize("tests", ["def check(candidate):\n    pass\n", "x = 1\n", "def check(:"])
def test_tests_that_cannot_judge_are_refused(tests):
    with pytest.raises(InvalidTests):
        prepare_tests(tests)


def test_stopped_tests_never_score_every_site():
    # ran to the end: a site never reached (after an expected exception) is not a failure
    assert _counted([True, None], [(), ()], {}, aborted=False) == 2
    # stopped early: unreached sites fail, and a site whose loop did not finish fails
    assert _counted([True, None], [(), ()], {}, aborted=True) == 1
    assert _counted([True, True], [(), (0,)], {0: True}, aborted=True) == 1
    assert _counted([True, True], [(), (0,)], {0: False}, aborted=True) == 1  # never all
    assert _counted([True, True, True], [(), (0,), ()], {0: False}, aborted=True) == 2
    assert _counted([], [], {}, aborted=True) == 0  # no held-out sites: none passed


# ----------------------------------------------------------------------------------------------
# held-out sites and what feedback shows

TEN_SITES = "def check(candidate):\n" + "".join(f"    assert candidate({i}) == {i}\n"
                                                for i in range(10))


def test_held_out_sites_are_the_fraction_at_least_one_never_all():
    assert prepare_tests(TEN_SITES)[1] == 10
    assert held_out_sites(TEN_SITES, 10, 0.0) == frozenset()
    assert len(held_out_sites(TEN_SITES, 10, 0.3)) == 3
    assert len(held_out_sites(TEN_SITES, 10, 0.01)) == 1  # a positive fraction holds out one
    assert len(held_out_sites(TEN_SITES, 10, 0.99)) == 9  # one case always stays visible
    assert len(held_out_sites(TEN_SITES, 2, 0.5)) == 1
    assert len(held_out_sites(TEN_SITES, 3, 0.34)) == 1
    assert held_out_sites(TEN_SITES, 1, 0.9) == frozenset()  # a single case is never held out
    assert held_out_sites(TEN_SITES, 10, 0.3) <= set(range(10))


def _held_out_today(tests, total, fraction):
    """The rule before shown sites existed: round(f * total), at least one, never all."""
    if total < 2 or not fraction > 0:
        return frozenset()
    k = min(max(round(fraction * total), 1), total - 1)
    return frozenset(sorted(range(total), key=lambda i: hashlib.sha256(
        f"{i}:{tests}".encode()).hexdigest())[:k])


VARIANTS = [TEN_SITES + f"# variant {n}\n" for n in range(40)]
FRACTIONS = [0.0, 0.01, 0.2, 0.34, 0.5, 0.75, 0.99]


def test_held_out_sites_without_shown_sites_are_unchanged():
    for tests in VARIANTS:
        for total in (1, 2, 3, 4, 10):
            for fraction in FRACTIONS:
                today = _held_out_today(tests, total, fraction)
                assert held_out_sites(tests, total, fraction) == today
                assert held_out_sites(tests, total, fraction, ()) == today
                assert held_out_sites(tests, total, fraction, [total, total + 3]) == today


def test_a_shown_site_is_never_held_out_and_the_count_is_over_the_others():
    moved = 0
    for tests in VARIANTS:
        for total in (2, 3, 4, 10):
            for fraction in FRACTIONS[1:]:
                for shown in range(total):
                    held = held_out_sites(tests, total, fraction, [shown])
                    assert shown not in held
                    others = total - 1
                    assert len(held) == min(max(round(fraction * others), 1), others)
                    # the other sites keep their order: the first k of today's order without it
                    order = sorted(range(total), key=lambda i: hashlib.sha256(
                        f"{i}:{tests}".encode()).hexdigest())
                    assert held == frozenset([i for i in order if i != shown][:len(held)])
                    moved += shown in _held_out_today(tests, total, fraction)
    assert moved > 0  # some of these shown sites would be held out today


def test_shown_sites_leave_the_others_to_hold_out_and_never_all_of_them():
    # MBPP with two cases, the first shown: the other one is held out, as the first would be
    two = "def check(candidate):\n    assert candidate(1) == 1\n    assert candidate(2) == 2\n"
    assert held_out_sites(two, 2, 0.34, [0]) == {1}
    assert held_out_sites(two, 2, 0.34, [1]) == {0}
    assert held_out_sites(two, 2, 0.34, [0, 1]) == frozenset()  # every case shown: none
    assert held_out_sites(two, 1, 0.9, [0]) == frozenset()  # a single case: none, as today
    assert held_out_sites(two, 2, 0.0, [0]) == frozenset()
    assert held_out_sites(TEN_SITES, 10, 0.99, [0, 1]) == frozenset(range(2, 10))


@pytest.mark.parametrize("shown", ["0", [True], [-1], [1.0], {"0": 1}])
def test_runner_refuses_malformed_shown_sites(shown):
    line = json.dumps({"id": "a", "code": "", "tests": TEN_SITES, "entry_point": "f",
                       "shown": shown})
    assert "field 'shown'" in parse_request_line(line)["_invalid"]
    ok = json.loads(line) | {"shown": [0, 3]}
    assert "_invalid" not in parse_request_line(json.dumps(ok))


def test_held_out_sites_depend_only_on_the_tests():
    # the first k sites in the order of sha256("<index>:<tests>"): the same for every candidate
    order = sorted(range(10), key=lambda i: hashlib.sha256(f"{i}:{TEN_SITES}".encode())
                   .hexdigest())
    assert held_out_sites(TEN_SITES, 10, 0.3) == frozenset(order[:3])
    assert held_out_sites(TEN_SITES, 10, 0.3) <= held_out_sites(TEN_SITES, 10, 0.5)
    # other tests, other sites: no fixed position is always held out
    assert len({held_out_sites(TEN_SITES + f"# {n}\n", 10, 0.3) for n in range(20)}) > 1


def test_feedback_never_shows_a_returned_bool():
    # the test expected the other bool: showing the value would give the expected one away
    for value in (True, False):
        entry = {"call": "is_even(3)", "returned": value}
        assert unsatisfied(entry) == "is_even(3) returned a value that does not satisfy the test"
        assert returned(entry) == "is_even(3) returned a value"
    # any other value is shown: it does not name the one that would have held
    assert unsatisfied({"call": "add(10, 5)", "returned": 0}) == (
        "add(10, 5) returned 0, which does not satisfy the test")
    assert returned({"call": "f(1)", "returned": 1}) == "f(1) returned 1"  # 1 == True, not a bool


@pytest.mark.parametrize("held_out, ok", [(0, True), (0.5, True), (0.999, True), (1, False),
                                          (-0.1, False), (True, False), ("0.2", False),
                                          (float("nan"), False)])
def test_runner_checks_the_held_out_fraction(held_out, ok):
    line = ('{"id": "a", "code": "", "tests": "", "entry_point": "f", "held_out": %s}'
            % ("NaN" if held_out != held_out else json.dumps(held_out)))
    request = parse_request_line(line)
    assert ("_invalid" not in request) is ok
    if not ok:
        assert "field 'held_out'" in request["_invalid"]


# ----------------------------------------------------------------------------------------------
# codec

def _no_handles(obj):
    raise CodecError(f"no handle for {type(obj).__name__}")


def _round_trip(value, handle=_no_handles):
    return Decoder(lambda *a: pytest.fail("no handle expected")).decode(
        Encoder(handle).encode(value))


Point = collections.namedtuple("Point", "x y")


@pytest.mark.parametrize("value", [
    None, True, 3, pytest.param(10 ** 5000, id="10**5000"), -(2 ** 70), 2.5, float("inf"), "s", b"\x00", bytearray(b"ab"),
    [1, [2]], (1, (2,)), {1: "a", (1, 2): [3]}, {1, 2}, frozenset({"x"}), complex(1, -2),
    collections.Counter("abca"), collections.OrderedDict([("b", 1), ("a", 2)]),
    collections.deque([1, 2], maxlen=3), Point(1, 2), decimal.Decimal("1.10"),
    fractions.Fraction(3, 7), datetime.date(2024, 2, 29), datetime.datetime(2024, 1, 2, 3, 4, 5),
    datetime.timedelta(days=1, seconds=3), range(1, 9, 2), len, sorted])
def test_codec_round_trips_values_and_their_types(value):
    back = _round_trip(value)
    assert back == value and type(back).__name__ == type(value).__name__


def test_codec_keeps_defaultdict_factory_and_order():
    d = collections.defaultdict(list, {"b": [1], "a": [2]})
    back = _round_trip(d)
    assert list(back) == ["b", "a"] and back["missing"] == [] and back.default_factory is list


def test_codec_handles_depth_and_cycles_without_recursion():
    deep = []
    for _ in range(20_000):
        deep = [deep]
    back = _round_trip(deep)
    for _ in range(20_000):
        assert type(back) is list and len(back) == 1
        back = back[0]
    assert back == []
    loop = [1]
    loop.append(loop)
    again = _round_trip(loop)
    assert again[1] is again


def test_subclasses_travel_as_their_base_value():
    """The always-equal guard: what reaches the judge is a plain value, never the subclass."""
    class Sly(int):
        def __eq__(self, other):
            return True
        __hash__ = int.__hash__

    class Shout(str):
        def __eq__(self, other):
            return True
        __hash__ = str.__hash__

    for value, plain in ((Sly(1), 1), (Shout("a"), "a"), ([Sly(2)], [2])):
        back = _round_trip(value)
        assert back == plain and type(back) is type(plain)
        assert back != 12345


def test_objects_become_handles():
    class Anything:
        def __eq__(self, other):
            return True

    seen = []

    def handle(obj):
        seen.append(obj)
        return ["handle", "c", 7, "object", "Anything", None]

    data = Encoder(handle).encode([Anything()])
    resolved = Decoder(lambda owner, hid, kind, name, extra: ("proxy", owner, hid)).decode(data)
    assert resolved == [("proxy", "c", 7)] and isinstance(seen[0], Anything)


@pytest.mark.parametrize("bad", [{"r": [5], "n": [], "o": []}, {"r": [0], "n": [["nope"]],
                                                                 "o": [0]}, [1, 2],
                                 {"r": [0], "n": [["int", 3]], "o": [0]}])
def test_malformed_encodings_are_refused(bad):
    with pytest.raises(CodecError):
        Decoder(lambda *a: None).decode(bad)


# ----------------------------------------------------------------------------------------------
# seccomp program

@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_seccomp_program_is_valid_bpf(machine):
    prog = confinement.seccomp_program(machine)
    assert 10 < len(prog) < 4096
    for i, (code, jt, jf, _) in enumerate(prog):
        assert 0 <= jt < 256 and 0 <= jf < 256
        if code in (0x15, 0x35, 0x45):  # conditional jumps land inside the program
            assert i + 1 + max(jt, jf) < len(prog)
    assert prog[-1] == (0x06, 0, 0, 0x00050000 | 1)  # anything unlisted: EPERM


def test_seccomp_allowlist_leaves_out_the_dangerous_calls():
    numbers = syscalls.X86_64
    allowed = {k for code, jt, jf, k in confinement.seccomp_program("x86_64") if code == 0x15}
    for name in ("ptrace", "process_vm_readv", "process_vm_writev", "io_uring_setup", "bpf",
                 "perf_event_open", "unshare", "setns", "mount", "keyctl", "userfaultfd",
                 "sched_setaffinity", "pidfd_getfd"):
        assert numbers[name] not in allowed, name
    for name in ("read", "clone", "kill", "execve", "semop", "mq_open", "socket"):
        assert numbers[name] in allowed, name
