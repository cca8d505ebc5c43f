"""The runner's pure parts, without Docker: test splitting and the value codec."""

import pytest

from sandbox.runner import InvalidTests, Unserializable, decode, encode, prepare_tests


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
    _, total, free = prepare_tests(tests)
    assert total == 2
    assert free == []  # `f` only appears in the dropped test_check


def test_free_names_are_the_programs_helpers():
    _, total, free = prepare_tests("import math\ndef check(candidate):\n"
                                   "    assert math.fabs(poly([1], candidate([1]))) < 1e-4\n")
    assert (total, free) == (1, ["poly"])


@pytest.mark.parametrize("tests", ["def check(candidate):\n    pass\n", "x = 1\n", "def check(:"])
def test_tests_that_cannot_judge_are_refused(tests):
    with pytest.raises(InvalidTests):
        prepare_tests(tests)


@pytest.mark.parametrize("value", [None, True, 3, 10 ** 50, 2.5, float("inf"), "s", b"\x00",
                                   bytearray(b"ab"), [1, [2]], (1, (2,)), {1: "a", (1, 2): [3]},
                                   {1, 2}, frozenset({"x"}), complex(1, -2)])
def test_codec_round_trips_plain_values(value):
    back = decode(encode(value))
    assert back == value and type(back) is type(value)


def test_codec_refuses_subclasses_and_objects():
    class Sly(int):
        def __eq__(self, other):
            return True

    for value in (Sly(1), object(), [1, Sly(2)], lambda: 0):
        with pytest.raises(Unserializable):
            encode(value)
