"""The value codec: what crosses the pipe between a judge and its candidate process.

A value is encoded as a flat table of nodes, so depth costs nothing (a list nested 10,000 deep is
10,000 nodes, not 10,000 stack frames), shared references and cycles survive, and the JSON that
carries it is never more than two levels deep:

    {"r": <root>, "n": [<node>, ...], "o": [<build order>]}

An *atom* (None, bool, str, a finite float, an int below 2**62) stands for itself; any other value
is a reference `[i]` to node i.  A node is a list `[tag, ...]`:

    list / tuple / set / frozenset     [tag, item, ...]
    dict / OrderedDict / Counter       [tag, key, value, key, value, ...]
    defaultdict                        ["defaultdict", factory, key, value, ...]
    deque                              ["deque", maxlen, item, ...]
    namedtuple                         ["namedtuple", typename, [field, ...], item, ...]
    int / float / complex              ["int", hex] / ["float", "nan"|"inf"|"-inf"] / ["complex", re, im]
    bytes / bytearray                  [tag, hex]
    Decimal / Fraction                 ["Decimal", str] / ["Fraction", numerator, denominator]
    date / datetime / time / timedelta [tag, isoformat] / ["timedelta", days, seconds, micros]
    range / slice                      [tag, start, stop, step]
    builtin / module                   [tag, name]: the receiver uses its own object of that name
    handle                             ["handle", owner, id, kind, typename, extra]: an object that stays
                                       where it lives ("c" candidate, "j" judge); the other side
                                       holds a proxy (see judge.py / candidate.py)
    argument                           ["arg", i]: the very object passed as argument i (identity)
    exception                          ["exc", ...]: see `Side.encode_exception`

Values are reduced to what they *are*, never what they claim: a subclass of int, str, float,
tuple, list, dict, set or bytes is sent as its base value (computed with the base type's own
methods, so an overridden __eq__, __iter__ or __int__ is never consulted), and the receiver rebuilds
standard types from its own classes.  So an object that compares equal to anything cannot reach
the judge as such: it becomes a plain value or a handle, and a handle equals a value of the tests
only when it is that very object (judge.py's `Remote`: the operator rule).

Standard library only: this package runs inside the sandbox image.
"""

from __future__ import annotations

import builtins
import collections
import datetime
import decimal
import fractions
import sys
import types

SMALL_INT = 1 << 62
_BUILTIN_NAMES = {id(v): k for k, v in vars(builtins).items()
                  if callable(v) and not k.startswith("_")}
_PLAIN_ATOMS = (type(None), bool, str)


class CodecError(ValueError):
    """A value could not be encoded, or an encoding is malformed."""


# ----------------------------------------------------------------------------------------------
# Encoding


class Encoder:
    """Encodes one value.  `handle(obj)` is asked for every object the codec cannot carry by value
    and returns ("handle", owner, id, kind, typename) or raises CodecError."""

    def __init__(self, handle, args=()):
        self.handle = handle
        self.args = {id(a): i for i, a in enumerate(args) if not _is_atom(a)}
        self.nodes: list = []
        self.order: list[int] = []
        self.memo: dict[int, int] = {}  # id(object) -> its node
        self.objects: list = []  # the object of each node
        self.keep: list = []  # keeps temporaries alive so their ids are not reused mid-encode

    def encode(self, value) -> dict:
        root = self._ref(value)
        return {"r": root, "n": self.nodes, "o": self.order}

    # The walk: `_ref` returns an atom or a reference; containers are expanded with an explicit
    # stack, children first, so the build order is a post-order of the value graph.
    def _ref(self, value):
        if _is_atom(value):
            return value
        key = id(value)
        if key in self.memo:
            return [self.memo[key]]
        stack = [(value, None)]
        while stack:
            obj, children = stack.pop()
            key = id(obj)
            if children is None:
                if key in self.memo:
                    continue
                index = len(self.nodes)
                self.memo[key] = index
                self.nodes.append(None)
                self.objects.append(obj)
                node, kids = self._shape(obj)
                self.nodes[index] = node
                stack.append((obj, (index, kids)))
                for kid in reversed(kids):
                    if not _is_atom(kid) and id(kid) not in self.memo:
                        stack.append((kid, None))
            else:
                index, kids = children
                node = self.nodes[index]
                node.extend(k if _is_atom(k) else [self.memo[id(k)]] for k in kids)
                self.order.append(index)
        return [self.memo[id(value)]]

    def _shape(self, obj):
        """(node without its child references, children) for one non-atom object."""
        t = type(obj)
        if id(obj) in self.args:
            return ["arg", self.args[id(obj)]], []
        if isinstance(obj, int):  # a big int, or an int subclass (IntEnum, ...) as its plain value
            return ["int", hex(int.__int__(obj))], []
        if t is float or isinstance(obj, float):
            value = float.__float__(obj)
            if value != value or value in (float("inf"), float("-inf")):
                return ["float", repr(value)], []
            self.keep.append(value)
            return ["plain"], [value]  # a float subclass, as its plain value
        if isinstance(obj, str):
            value = str.__str__(obj)
            self.keep.append(value)
            return ["plain"], [value]
        if t is complex:
            return ["complex", obj.real, obj.imag], []
        if t is bytes or t is bytearray:
            return [t.__name__, obj.hex()], []
        if isinstance(obj, bytes):
            return ["bytes", bytes.hex(obj)], []
        if t is list or t is tuple or t is set or t is frozenset:
            return [t.__name__], list(obj)
        if t is dict or t is collections.OrderedDict or t is collections.Counter:
            return [t.__name__], [x for kv in dict.items(obj) for x in kv]
        if t is collections.defaultdict:
            factory = obj.default_factory
            return ["defaultdict"], [factory] + [x for kv in dict.items(obj) for x in kv]
        if t is collections.deque:
            return ["deque", obj.maxlen], list(obj)
        if isinstance(obj, tuple):
            items = list(tuple.__iter__(obj))
            fields = getattr(t, "_fields", None)
            if (isinstance(fields, tuple) and len(fields) == len(items)
                    and all(type(f) is str and f.isidentifier() for f in fields)):
                return ["namedtuple", str(t.__name__), list(fields)], items
            return ["tuple"], items
        if isinstance(obj, list):
            return ["list"], list(list.__iter__(obj))
        if isinstance(obj, dict):
            return ["dict"], [x for kv in dict.items(obj) for x in kv]
        if isinstance(obj, (set, frozenset)):
            base = set if isinstance(obj, set) else frozenset
            return [base.__name__], list(base.__iter__(obj))
        if t is decimal.Decimal:
            return ["Decimal", str(obj)], []
        if t is fractions.Fraction:
            return ["Fraction"], [obj.numerator, obj.denominator]
        if t in (datetime.date, datetime.datetime, datetime.time):
            return [t.__name__, obj.isoformat()], []
        if t is datetime.timedelta:
            return ["timedelta", obj.days, obj.seconds, obj.microseconds], []
        if t is range:
            return ["range", obj.start, obj.stop, obj.step], []
        if t is slice:
            return ["slice"], [obj.start, obj.stop, obj.step]
        if obj is Ellipsis:
            return ["Ellipsis"], []
        if id(obj) in _BUILTIN_NAMES and getattr(builtins, _BUILTIN_NAMES[id(obj)]) is obj:
            return ["builtin", _BUILTIN_NAMES[id(obj)]], []
        if t is types.ModuleType and sys.modules.get(obj.__name__) is obj:
            return ["module", obj.__name__], []
        return list(self.handle(obj)), []


def _is_atom(value) -> bool:
    t = type(value)
    return (t in _PLAIN_ATOMS or (t is int and -SMALL_INT < value < SMALL_INT)
            or (t is float and value == value and value not in (float("inf"), float("-inf"))))


# ----------------------------------------------------------------------------------------------
# Decoding

WRITABLE = (list, dict, set, collections.OrderedDict, collections.Counter, collections.defaultdict,
            collections.deque)
"""The containers a value can be written back into (Decoder's `shells`)."""


class Decoder:
    """Decodes one encoded value.  `resolve(owner, id, kind, typename, extra)` turns a handle into the
    receiver's object (the original, or a proxy); `args` are the call's arguments (["arg", i]).

    `shells` ({node: object}) writes a value back into objects the receiver already holds: a
    mutable node listed there is not built anew but is that very object, emptied and refilled
    (when its type is exactly the node's), so every alias of it sees the new contents.  After a
    decode, `built` holds the object of each node."""

    MUTABLE = {"list", "dict", "set", "OrderedDict", "Counter", "defaultdict", "deque"}
    _CLASSES = {cls.__name__: cls for cls in WRITABLE}

    def __init__(self, resolve, args=(), shells=None):
        self.resolve = resolve
        self.args = args
        self.shells = shells or {}
        self.built: list = []

    def decode(self, data):
        try:
            return self._decode(data)
        except CodecError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError,
                RecursionError, decimal.InvalidOperation) as exc:
            raise CodecError(f"malformed value ({type(exc).__name__}: {exc})") from None

    def _decode(self, data):
        if type(data) is not dict or set(data) != {"r", "n", "o"}:
            raise CodecError("malformed value envelope")
        nodes, order, root = data["n"], data["o"], data["r"]
        if type(nodes) is not list or type(order) is not list:
            raise CodecError("malformed value envelope")
        built: list = [None] * len(nodes)
        self.built = built
        done = [False] * len(nodes)
        refilled = set()
        # 1. shells for mutable containers: cycles and shared references point at them
        for i, node in enumerate(nodes):
            if type(node) is not list or not node or type(node[0]) is not str:
                raise CodecError(f"malformed node {i}")
            tag = node[0]
            if tag in self.MUTABLE:
                kept = self.shells.get(i)
                if kept is not None and type(kept) is self._CLASSES[tag] and (
                        tag != "deque" or kept.maxlen == node[1]):
                    kept.clear()  # written back: the receiver's own object, refilled below
                    built[i] = kept
                    refilled.add(i)
                else:
                    built[i] = (collections.deque(maxlen=node[1]) if tag == "deque" else
                                self._CLASSES[tag]())
                done[i] = True

        def get(ref):
            if type(ref) is list:
                if len(ref) != 1 or type(ref[0]) is not int or not done[ref[0]]:
                    raise CodecError("reference to a node that is not built yet")
                return built[ref[0]]
            if ref is None or type(ref) in (bool, str, int, float):
                return ref
            raise CodecError("malformed atom")

        # 2. immutable nodes, children first (the encoder's post-order)
        for i in order:
            node = nodes[i]
            tag = node[0]
            if tag in self.MUTABLE:
                continue
            built[i] = self._atom_node(tag, node, get)
            done[i] = True
        # 3. fill mutable containers (their children all exist now)
        for i, node in enumerate(nodes):
            tag, target = node[0], built[i]
            if tag == "list":
                target.extend(get(x) for x in node[1:])
            elif tag == "set":
                target.update(get(x) for x in node[1:])
            elif tag == "deque":
                target.extend(get(x) for x in node[2:])
            elif tag == "defaultdict":
                factory = get(node[1])
                if factory is not None and not callable(factory):
                    raise CodecError("defaultdict factory is not callable")
                if i not in refilled:  # a written-back defaultdict keeps its own factory
                    target.default_factory = factory
                _fill_pairs(target, node[2:], get)
            elif tag in ("dict", "OrderedDict", "Counter"):
                _fill_pairs(target, node[1:], get)
        if not all(done):
            raise CodecError("a node was never built")
        return get(root)

    def _atom_node(self, tag, node, get):
        if tag == "tuple":
            return tuple(get(x) for x in node[1:])
        if tag == "frozenset":
            return frozenset(get(x) for x in node[1:])
        if tag == "plain":  # a subclass of float or str, sent as its plain value
            value = get(node[1])
            if type(value) not in (float, str):
                raise CodecError("malformed plain value")
            return value
        if tag == "int":
            return int(_str(node[1]), 16)
        if tag == "float":
            if node[1] not in ("nan", "inf", "-inf"):
                raise CodecError("malformed float")
            return float(node[1])
        if tag == "complex":
            return complex(_num(node[1]), _num(node[2]))
        if tag == "bytes":
            return bytes.fromhex(_str(node[1]))
        if tag == "bytearray":
            return bytearray.fromhex(_str(node[1]))
        if tag == "namedtuple":
            return _namedtuple_class(_str(node[1]), tuple(node[2]))(*(get(x) for x in node[3:]))
        if tag == "Decimal":
            return decimal.Decimal(_str(node[1]))
        if tag == "Fraction":
            num, den = get(node[1]), get(node[2])
            if type(num) is not int or type(den) is not int:
                raise CodecError("malformed Fraction")
            return fractions.Fraction(num, den)
        if tag in ("date", "datetime", "time"):
            return getattr(datetime, tag).fromisoformat(_str(node[1]))
        if tag == "timedelta":
            return datetime.timedelta(days=_int(node[1]), seconds=_int(node[2]),
                                      microseconds=_int(node[3]))
        if tag == "range":
            return range(_int(node[1]), _int(node[2]), _int(node[3]))
        if tag == "slice":
            return slice(get(node[1]), get(node[2]), get(node[3]))
        if tag == "Ellipsis":
            return Ellipsis
        if tag == "builtin":
            name = _str(node[1])
            if name.startswith("_") or not hasattr(builtins, name):
                raise CodecError(f"unknown builtin {name!r}")
            return getattr(builtins, name)
        if tag == "module":
            import importlib

            try:
                return importlib.import_module(_str(node[1]))
            except ImportError:
                raise CodecError(f"unknown module {node[1]!r}") from None
        if tag == "arg":
            index = _int(node[1])
            if not 0 <= index < len(self.args):
                raise CodecError("reference to an argument that was not passed")
            return self.args[index]
        if tag == "handle":
            return self.resolve(_str(node[1]), _int(node[2]), _str(node[3]), _str(node[4]),
                                node[5] if len(node) > 5 else None)
        raise CodecError(f"unknown tag {tag!r}")


def _fill_pairs(target, flat, get):
    if len(flat) % 2:
        raise CodecError("malformed mapping")
    for k in range(0, len(flat), 2):  # the receiver's own class: its __setitem__ is trusted
        target[get(flat[k])] = get(flat[k + 1])


def _str(value) -> str:
    if type(value) is not str:
        raise CodecError("expected a string")
    return value


def _int(value) -> int:
    if type(value) is not int:
        raise CodecError("expected an integer")
    return value


def _num(value):
    if type(value) not in (int, float):
        raise CodecError("expected a number")
    return value


_NAMEDTUPLES: dict = {}


def _namedtuple_class(typename: str, fields: tuple):
    """The receiver's own namedtuple class for (typename, fields): its __eq__ is tuple's."""
    key = (typename, fields)
    if key not in _NAMEDTUPLES:
        if len(_NAMEDTUPLES) > 256:
            raise CodecError("too many namedtuple types")
        if not all(type(f) is str for f in fields):
            raise CodecError("malformed namedtuple fields")
        if not typename.isidentifier():
            typename = "namedtuple"
        try:  # rename=True: a field name namedtuple refuses becomes _0, _1, ...
            _NAMEDTUPLES[key] = collections.namedtuple(typename, fields, rename=True)
        except (ValueError, TypeError) as exc:
            raise CodecError(f"malformed namedtuple: {exc}") from None
    return _NAMEDTUPLES[key]


# ----------------------------------------------------------------------------------------------
# Exceptions: sent as the class chain up to the first builtin, plus args and the feedback text


def exception_chain(cls) -> list:
    """[(name, is_builtin)] from the exception class up to and including its first builtin base."""
    chain = []
    for klass in cls.__mro__:
        if getattr(builtins, klass.__name__, None) is klass:
            chain.append((klass.__name__, True))
            break
        chain.append((str(klass.__name__), False))
    return chain


def short_repr(value, limit=160) -> str:
    try:
        text = repr(value)
    except Exception:  # a huge int, a value nested too deeply, a broken __repr__
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


