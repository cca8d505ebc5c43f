"""The conversation between a judge and its candidate process: JSON lines over two pipes.

Either side may ask and either side may answer.  A request is `{"op": ..., ...}`; its answer is
`{"re": 1, "ok": true, "v": <value>}` or `{"re": 1, "ok": false, ...}`.  While a side waits for
its answer it serves the other side's requests, so calls nest: the judge calls a candidate
function, which calls back a lambda the tests passed it, which calls another candidate function.

Objects that cannot travel by value stay where they live and travel as *handles* (codec.py); each
side keeps a table of the objects it exported and one proxy per handle it received, so the same
object always comes back as the same proxy (and `is` works).

What each side may ask is asymmetric (see candidate.py and judge.py): the judge may look at
candidate objects in many ways; the candidate may only call or iterate what the tests handed it,
never read attributes of it, so it can never reach the tests' globals or expected values.
"""

from __future__ import annotations

import json
import os
import select
import time

from .codec import CodecError, Decoder, Encoder, WRITABLE

STATUSES = ("passed", "failed", "error", "syntax_error", "timeout", "resource_exceeded",
            "sandbox_error")
"""Every status a verdict can have (the host's `sandbox.contract` reads them from here)."""

PROGRAM_STATUSES = ("ok", "error", "syntax_error", "timeout", "resource_exceeded",
                    "sandbox_error")
"""Every status a program's result can have (program.py, the `programs` mode)."""

DEFAULT_MAX_OUTPUT = 1 << 20
"""Characters of `sys.stdout` a program may print (program.py; the host's `Program` default)."""

DEFAULT_LIMITS = {  # the host's `sandbox.engine.Limits` defaults to these
    "memory_mb": 1024,  # RLIMIT_AS of each candidate process
    "fsize_mb": 16,  # largest file a candidate may write
    "nproc": 64,  # processes + threads of one request (RLIMIT_NPROC of its uid)
    "nofile": 64,  # open file descriptors of each candidate process
    "tmpfs_mb": 64,  # each request's private /tmp, and again its /dev/shm
}


class PeerGone(BaseException):
    """The other side closed its pipe, broke the protocol, or the deadline passed."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


class Endpoint:
    """One side of the conversation.  Subclasses define `owner` ("c" or "j"), `serve(msg)` (answer
    one request of the other side) and `proxy(id, kind, typename, extra)`, and may refine
    `kind_of(obj)`."""

    owner = "?"
    max_message = 1 << 30

    def __init__(self, fd_in: int, fd_out: int, deadline: float | None = None):
        self.fd_in, self.fd_out = fd_in, fd_out
        self.deadline = deadline
        self.buffer = bytearray()
        self.exported: dict[int, object] = {}  # handle id -> our object
        self.export_ids: dict[int, int] = {}  # id(our object) -> handle id
        self.handles: dict[int, list] = {}  # handle id -> its handle node
        self.proxies: dict[int, object] = {}  # their handle id -> our proxy for it
        self.proxy_ids: dict[int, int] = {}  # id(our proxy) -> their handle id
        self.depth = 0

    # -- values ------------------------------------------------------------------------------
    def encode(self, value, args=()):
        return Encoder(self.export, args).encode(value)

    def decode(self, data, args=()):
        return Decoder(self.resolve, args).decode(data)

    # In-place changes keep identity: the judge sends a call's arguments with `encode_sent`; the
    # candidate decodes them with `decode_sent` and sends a value that holds any of those
    # objects with `encode_back` ({"v": value, "same": [[node, node of the arguments], ...]});
    # `decode_back` then writes it into the judge's very objects, so `row = grid[0]` sees what
    # the program did to `grid[0]`.
    def encode_sent(self, value):
        """(encoding, the object of each node of it)."""
        encoder = Encoder(self.export)
        return encoder.encode(value), encoder.objects

    def decode_sent(self, data):
        """(value, {id(container): (its node, the container)}): the map keeps every container
        it names alive, so while it is held no other object can take one of their ids."""
        decoder = Decoder(self.resolve)
        value = decoder.decode(data)
        return value, {id(obj): (i, obj) for i, obj in enumerate(decoder.built)
                       if type(obj) in WRITABLE}

    def encode_back(self, value, nodes: dict, args=()) -> dict:
        encoder = Encoder(self.export, args)
        data = encoder.encode(value)
        same = [[node, nodes[key][0]] for key, node in encoder.memo.items() if key in nodes]
        return {"v": data, "same": same} if same else {"v": data}

    def decode_back(self, back: dict, sent, args=()):
        """A value from `encode_back`; each of its nodes the other side marks as the same as
        node k of what we sent is written into our object sent[k] (when its type allows)."""
        if type(back) is not dict:
            raise CodecError("malformed value")
        pairs, shells = back.get("same") or [], {}
        if type(pairs) is not list:
            raise CodecError("malformed write-back")
        for pair in pairs:
            if (type(pair) is not list or len(pair) != 2 or type(pair[0]) is not int
                    or type(pair[1]) is not int or not 0 <= pair[1] < len(sent)):
                raise CodecError("malformed write-back")
            shells[pair[0]] = sent[pair[1]]
        if len({id(obj) for obj in shells.values()}) != len(shells):
            raise CodecError("malformed write-back: one object in two places")
        return Decoder(self.resolve, args, shells).decode(back.get("v"))

    def handle_id(self, obj) -> int:
        """The id under which one of our objects is known to the other side (kept alive until
        the request ends)."""
        hid = self.export_ids.get(id(obj))
        if hid is None:
            hid = len(self.exported) + 1
            self.exported[hid] = obj
            self.export_ids[id(obj)] = hid
        return hid

    def export(self, obj):
        """The handle node for an object that cannot travel by value: one of ours, or a proxy
        of theirs going back (then the other side gets its very object)."""
        theirs = self.proxy_ids.get(id(obj))
        if theirs is not None:
            return ["handle", "c" if self.owner == "j" else "j", theirs, "", "", None]
        hid = self.handle_id(obj)
        if hid not in self.handles:
            kind, extra = self.kind_of(obj)
            self.handles[hid] = ["handle", self.owner, hid, kind, _label(obj), extra]
        return self.handles[hid]

    def resolve(self, owner, hid, kind, typename, extra):
        if owner == self.owner:  # one of ours coming back: the very object
            if hid not in self.exported:
                raise ValueError(f"unknown handle {hid}")
            return self.exported[hid]
        if hid not in self.proxies:
            proxy = self.proxy(hid, kind, typename, extra)
            self.proxies[hid] = proxy
            self.proxy_ids[id(proxy)] = hid
        return self.proxies[hid]

    # -- messages ----------------------------------------------------------------------------
    def send(self, msg: dict) -> None:
        data = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
        view = memoryview(data)
        while view:
            if self.deadline is not None:
                _, ready, _ = select.select([], [self.fd_out], [], self._left())
                if not ready:
                    raise PeerGone("timeout")
            try:
                view = view[os.write(self.fd_out, view):]
            except BlockingIOError:
                continue
            except OSError:
                raise PeerGone("closed") from None

    def receive(self) -> dict:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[:end + 1]
                try:
                    msg = json.loads(line)
                except (ValueError, RecursionError):
                    raise PeerGone("protocol", "a message is not valid JSON") from None
                if type(msg) is not dict:
                    raise PeerGone("protocol", "a message is not an object")
                return msg
            if self.deadline is not None:
                ready, _, _ = select.select([self.fd_in], [], [], self._left())
                if not ready:
                    raise PeerGone("timeout")
            try:
                chunk = os.read(self.fd_in, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                raise PeerGone("closed")
            self.buffer += chunk
            if len(self.buffer) > self.max_message:
                raise PeerGone("too_large")

    def request(self, msg: dict) -> dict:
        """Ask, serving the other side's requests until our answer comes."""
        self.send(msg)
        self.depth += 1
        try:
            while True:
                incoming = self.receive()
                if "re" in incoming:
                    return incoming
                self.send(self.serve(incoming))
        finally:
            self.depth -= 1

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise PeerGone("timeout")
        return left

    # -- to be defined by each side ----------------------------------------------------------
    def serve(self, msg: dict) -> dict:
        raise NotImplementedError

    def proxy(self, hid, kind, typename, extra):
        raise NotImplementedError

    def kind_of(self, obj):
        """(kind, extra) of an object sent as a handle: what the other side's proxy can do."""
        if callable(obj):
            return "callable", None
        if hasattr(type(obj), "__next__"):
            return "iterator", None
        return "object", None


def _label(obj) -> str:
    """How a handle is named in feedback: a function or class by its name, an object by type."""
    try:
        name = obj.__name__ if callable(obj) else None
    except Exception:  # a hostile __getattr__
        name = None
    return (name if type(name) is str else type(obj).__name__)[:80]
