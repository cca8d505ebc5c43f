"""The leak guard: held-out (dev and test) problems never become training data.

`check_not_held_out` is what every stage that learns (memory, pairs, training) runs on its input;
it raises `LeakError`. A module of its own, so that those stages' cache keys do not depend on the
problem sources (tasks/caching.py hashes every module an import reaches)."""

from __future__ import annotations

from typing import Iterable


class LeakError(ValueError):
    """A held-out (dev or test) problem reached a stage that must never see it."""


def check_not_held_out(problem_ids: Iterable[str], held_out: Iterable[str], what: str) -> None:
    """Raise `LeakError` when any of `problem_ids` is a held-out (dev or test) problem: the guard
    every stage that learns (memory, pairs, training) runs on its input."""
    leaked = sorted(set(problem_ids) & set(held_out))
    if leaked:
        raise LeakError(f"{len(leaked)} held-out (dev or test) problem(s) reached the {what}, "
                        f"e.g. {', '.join(leaked[:3])}: dev and test problems never become "
                        "training data; sample only the cycle's training problems (the "
                        "draw-train task), and do not mix attempts of another run in")
