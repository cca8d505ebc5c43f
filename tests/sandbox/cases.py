"""The small problem the sandbox tests share: add(a, b), three test cases."""

ADD_TESTS = """
def check(candidate):
    assert candidate(1, 2) == 3
    assert candidate(-1, 1) == 0
    assert candidate(10, 5) == 15
"""
GOOD_ADD = "def add(a, b):\n    return a + b\n"
