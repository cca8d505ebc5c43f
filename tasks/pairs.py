"""Pairs: preference pairs mined from executed attempts, for DPO (+SFT) training.

Takes: executed `Attempt`s of one cycle (first tries and self-debug fixes, every one with a verdict)
and the `pairs` section of the config (`PairsConfig`).
Gives: `Mined`, the pairs plus a count of every item dropped, by reason, and of the pairs, by kind.
Writes: `write_pairs` stores the pairs as JSONL (every `Pair` field, `PAIR_COLUMNS` first);
`load_pair_dataset` reads them back as a `datasets.Dataset` with exactly `PAIR_COLUMNS`, the
columns the trainer consumes.

Run alone, from the repository root:

    python -m tasks.pairs attempts.jsonl [more.jsonl ...] --out pairs.jsonl
    python -m tasks.pairs attempts.jsonl --out pairs.jsonl --config smoke --set pairs.keep_sft=true

Three kinds of rows:

- `best_vs_worse`: per problem, over the first tries (turn 0). Chosen always passes every test
  (a failing "best" would be imitated by the SFT term); rejected are candidates whose reward is
  strictly lower, by at least `min_reward_gap`. Pairs come from one prompt (one specialist with
  its retrieved examples) whenever a prompt has both a passing and a worse candidate: per such
  prompt, up to `distinct_chosen` distinct passing programs (distinct after normalizing the code;
  preferred first: fewer debug turns, then the code length nearest the median of the problem's
  passing candidates, or with `chosen_length: shortest` the shortest, then id), each against the
  worse candidates beside it; the chosen take turns, so every distinct chosen gets its pair before
  any gets a second. Only when no prompt has both are the best passing programs set against worse
  ones written under other prompts; those pairs carry `same_prompt=False` and are counted
  (`Mined.cross_prompt`). With `hard_negatives` each chosen's rejected is the worse candidate most
  similar to its code, else the lowest reward; rejected responses are distinct, except that a
  chosen whose eligible rejected were all taken by others is paired with its most similar one
  again rather than left out. At most `max_pairs_per_problem` (default: `distinct_chosen`).
- `debug`: per failed attempt that got fixes. Prompt = the debug prompt the fix was written under,
  chosen = the best passing fix, rejected = a non-passing fix under the same prompt, or, when there
  is none, the failed attempt's own response (the debug prompt shows exactly that code failing, so
  repeating it is a genuine wrong answer to it). At most `max_pairs_per_problem` per failed attempt.
- `sft` (only with `keep_sft`): the best solution of a problem where every first try passed;
  `rejected` is "". Meant for the SFT term; `load_pair_dataset` leaves it out by default, so
  training does not read it yet.

The prompt of a pair is always the chosen attempt's prompt: exactly the context the policy saw
when it wrote the chosen code (in chat style the rendered chat template up to the assistant's
turn, so training sees what sampling saw). First tries and debug fixes are never mixed in one
pair, for the same reason.

The random-pair control (`random_swap`): after mining, a seeded random half of the pairs have
chosen and rejected swapped (`swapped=True`), everything else equal, so a run trained on them
shows what fine-tuning on the loop's data does without the reward's signal.

Reasons for dropped items (keys of `Mined.dropped`; each counts what is named):

- per problem: `all_passed`, `all_failed` (every reward 0), `no_passing_chosen` (partial
  credit only: no candidate passes every test);
- per problem or failed attempt whose best candidate has an empty response: `empty_chosen`;
- per failed attempt whose fixes all fail: `no_passing_fix`;
- per would-be rejected candidate: `below_reward_gap`, `not_worse`, `style_mismatch` (one response
  fenced with ``` and the other not: different prompt styles), `identical_responses`,
  `duplicate_rejected`, `prompt_mismatch` (a failing fix written under another debug prompt than
  the chosen fix), `over_max_pairs_per_problem`;
- per chosen or rejected whose training sequence (prompt + completion) is longer than
  `training.dpo.max_length` tokens: `over_max_length` (trl would cut or drop it unannounced).
"""

from __future__ import annotations

import argparse
import difflib
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Iterable, Literal, Sequence

from prefect import task
from pydantic import BaseModel, ConfigDict

from tasks.caching import cached
from tasks.records import Attempt, CycleContext, Shard, read_attempts, write_json, write_rows
from tasks.schema import PairsConfig

PAIR_COLUMNS = ("prompt", "chosen", "rejected", "problem_id", "kind", "chosen_reward",
                "rejected_reward")
KINDS = ("best_vs_worse", "debug", "sft")
TRAINING_KINDS = ("best_vs_worse", "debug")

# Rewards are fractions of small integers; a gap of exactly `min_reward_gap` (e.g. 1 - 2/3 against
# 1/3) must not fall through on rounding.
_EPS = 1e-9


class Pair(BaseModel):
    """One training row. The first fields are `PAIR_COLUMNS`, in that order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: str  # the chosen attempt's prompt: what the policy saw when it wrote `chosen`
    chosen: str
    rejected: str  # "" for kind "sft"
    problem_id: str
    kind: Literal["best_vs_worse", "debug", "sft"]
    chosen_reward: float
    rejected_reward: float  # 0.0 for kind "sft"
    chosen_id: str  # attempt ids, for lineage
    rejected_id: str | None  # None for kind "sft"
    similarity: float | None = None  # difflib ratio of the two programs' code; None for "sft"
    # the rejected answer was written under the chosen one's prompt (False for the cross-prompt
    # fallbacks, including a debug pair's "repeat the broken code"); None for "sft"
    same_prompt: bool | None = None
    # the random-pair control (`pairs.random_swap`) swapped chosen and rejected of this pair
    swapped: bool = False


assert tuple(Pair.model_fields)[: len(PAIR_COLUMNS)] == PAIR_COLUMNS


class Mined(BaseModel):
    """What `mine_pairs` found: pairs in a fixed order, dropped items by reason, pairs by kind."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pairs: list[Pair]
    dropped: dict[str, int]  # reason -> count, only reasons that occurred, sorted by name
    by_kind: dict[str, int]  # every kind of KINDS -> count of pairs (0 included)
    cross_prompt: int = 0  # pairs whose rejected answer was written under another prompt
    distinct_chosen: int = 0  # distinct chosen programs among the pairs (first tries and fixes)
    swapped: int = 0  # pairs the random-pair control swapped


# ---------------------------------------------------------------------------------------------
# Mining
# ---------------------------------------------------------------------------------------------


Fits = Callable[[str, str], bool]
"""`fits(prompt, completion)`: whether the training sequence prompt + completion fits
`training.dpo.max_length` (see `token_budget`)."""


def token_budget(tokenizer, max_length: int | None) -> Fits | None:
    """`fits` for a tokenizer and `training.dpo.max_length`, counted as trl counts a sequence:
    the tokens of prompt + completion + end-of-sequence. None when there is no limit."""
    if max_length is None:
        return None
    eos = tokenizer.eos_token or ""

    def fits(prompt: str, completion: str) -> bool:
        return len(tokenizer(prompt + completion + eos)["input_ids"]) <= max_length
    return fits


def mine_pairs(attempts: list[Attempt], cfg: PairsConfig, fits: Fits | None = None) -> Mined:
    """Pairs from executed attempts. The same attempts in any order give the same result.

    With `fits`, a pair whose chosen or rejected sequence is longer than the training limit is
    never mined (counted as `over_max_length`), rather than cut or dropped later by the trainer
    without a word."""
    by_id = _check(attempts, need_parents=cfg.debug_pairs)
    dropped: Counter[str] = Counter()
    pairs: list[Pair] = []

    first_tries: dict[str, list[Attempt]] = defaultdict(list)
    for a in attempts:
        if a.turn == 0:
            first_tries[a.problem_id].append(a)
    for problem_id in sorted(first_tries):
        pairs += _first_try_pairs(first_tries[problem_id], cfg, dropped, fits)

    if cfg.debug_pairs:
        fixes: dict[str, list[Attempt]] = defaultdict(list)
        for a in attempts:
            if a.turn >= 1:
                fixes[a.parent].append(a)
        for parent_id in sorted(fixes):
            pairs += _debug_pairs(by_id[parent_id], fixes[parent_id], cfg, dropped, fits)

    pairs.sort(key=lambda p: (p.problem_id, p.chosen_id, p.rejected_id or ""))
    distinct = len({(p.problem_id, code_key(p.chosen)) for p in pairs})
    if cfg.random_swap:
        pairs = random_swap(pairs, cfg.swap_seed)
    kinds = Counter(p.kind for p in pairs)
    return Mined(pairs=pairs, dropped={r: n for r, n in sorted(dropped.items()) if n},
                 by_kind={kind: kinds[kind] for kind in KINDS},
                 cross_prompt=sum(p.same_prompt is False for p in pairs),
                 distinct_chosen=distinct, swapped=sum(p.swapped for p in pairs))


def code_key(text: str) -> str:
    """What makes two programs the same program: their code after normalization (comments,
    blank lines and formatting do not count; tasks/memory.py `normalize_code`)."""
    from tasks.memory import code_hash

    return code_hash(text)


def random_swap(pairs: Sequence[Pair], seed: int) -> list[Pair]:
    """The random-pair control: chosen and rejected (and their rewards and ids) swapped in a
    seeded random half of the pairs (`len // 2` of them, drawn by `random.Random(seed)` over the
    pairs in their mined order). `sft` rows have no rejected answer and are left as they are."""
    import random

    swappable = [i for i, p in enumerate(pairs) if p.kind != "sft"]
    flip = set(random.Random(seed).sample(swappable, len(swappable) // 2))
    out = []
    for i, p in enumerate(pairs):
        if i in flip:
            p = p.model_copy(update={
                "chosen": p.rejected, "rejected": p.chosen, "chosen_reward": p.rejected_reward,
                "rejected_reward": p.chosen_reward, "chosen_id": p.rejected_id,
                "rejected_id": p.chosen_id, "swapped": True})
        out.append(p)
    return out


def _check(attempts: Sequence[Attempt], need_parents: bool) -> dict[str, Attempt]:
    """Refuse input no pair can honestly come from; the attempts by id."""
    unexecuted = sorted(a.id for a in attempts if a.status is None)
    if unexecuted:
        more = f" (and {len(unexecuted) - 1} more)" if len(unexecuted) > 1 else ""
        raise ValueError(f"attempt {unexecuted[0]!r}{more} has no verdict (status is None): "
                         "execute it first (the execution stage), then mine pairs from the "
                         "executed attempts")
    by_id: dict[str, Attempt] = {}
    for a in attempts:
        if a.id in by_id:
            raise ValueError(f"attempt id {a.id!r} appears twice: pass each attempt once (were "
                             "the same shard's rows given twice?)")
        by_id[a.id] = a
    if need_parents:
        for a in sorted(attempts, key=lambda a: a.id):
            if a.turn == 0:
                continue
            parent = by_id.get(a.parent) if a.parent is not None else None
            if parent is None:
                raise ValueError(f"debug attempt {a.id!r} (turn {a.turn}) names parent "
                                 f"{a.parent!r}, which is not among the attempts: pass the "
                                 "attempts of every turn together, or set pairs.debug_pairs=false")
            if parent.problem_id != a.problem_id:
                raise ValueError(f"debug attempt {a.id!r} (problem {a.problem_id!r}) names parent "
                                 f"{parent.id!r} of another problem ({parent.problem_id!r}): the "
                                 "debug stage wrote inconsistent records; re-run it")
    return by_id


def _rank(a: Attempt) -> tuple:
    """Sort key, best first: reward, a passing status, fewer debug turns, shorter code, id."""
    return (-a.reward, not a.ok, a.turn, len(a.code), a.id)


def _preference(passing: Sequence[Attempt], cfg: PairsConfig) -> Callable[[Attempt], tuple]:
    """Sort key among passing candidates, the one to choose first: fewer debug turns, then by
    `cfg.chosen_length` — "typical": code length nearest the median length of `passing` (the
    problem's passing candidates); "shortest": shorter code — then id.

    Why "typical" is the default: choosing the shortest passing program of every problem, against
    a failing one that is usually longer, teaches "shorter is better" on top of "correct is
    better". Over chained cycles the policy's answers shrank (HumanEval responses 217 -> 190 -> 174
    characters) and the problems it lost were shortcuts; the typical passing program carries the
    correctness signal without that push."""
    if cfg.chosen_length == "shortest":
        return lambda a: (a.turn, len(a.code), a.id)
    median = statistics.median_low([len(a.code) for a in passing]) if passing else 0
    return lambda a: (a.turn, abs(len(a.code) - median), a.id)


def _first_try_pairs(candidates: list[Attempt], cfg: PairsConfig, dropped: Counter,
                     fits: Fits | None = None) -> list[Pair]:
    """`best_vs_worse` pairs (or one `sft` row) of one problem.

    Chosen always passes every test: a failing "best" would teach (and, through the SFT term,
    imitate) wrong code. Pairs come from one prompt whenever a prompt has both a passing and a
    worse candidate (same specialist, same retrieved examples); only when none has do the rejected
    come from other prompts, and those pairs say so (`same_prompt=False`)."""
    ranked = sorted(candidates, key=_rank)
    best = ranked[0]
    if all(a.ok for a in ranked):
        if not cfg.keep_sft:
            dropped["all_passed"] += 1
            return []
        best = min(ranked, key=_preference(ranked, cfg))
        if not best.response.strip():
            dropped["empty_chosen"] += 1
            return []
        return [Pair(prompt=best.prompt, chosen=best.response, rejected="",
                     problem_id=best.problem_id, kind="sft", chosen_reward=best.reward,
                     rejected_reward=0.0, chosen_id=best.id, rejected_id=None)]
    if all(a.reward == 0.0 for a in ranked):
        dropped["all_failed"] += 1
        return []
    if not best.ok:
        dropped["no_passing_chosen"] += 1
        return []
    prefer = _preference([a for a in ranked if a.ok], cfg)
    # per prompt: its preferred distinct passing programs, each with the worse ones beside it
    # (strictly lower reward: a "failed" verdict with every case passed is neither)
    by_prompt: dict[str, list[Attempt]] = defaultdict(list)
    for a in ranked:
        by_prompt[a.prompt].append(a)
    groups = []
    for members in by_prompt.values():
        worse = [a for a in members if a.reward < 1.0 - _EPS]
        if worse:
            groups += [(chosen, worse) for chosen in _distinct(members, prefer, cfg)]
    if not groups:  # no prompt has both: the best answers against worse ones of other prompts
        worse = [a for a in ranked if a.reward < 1.0 - _EPS]
        groups = [(chosen, worse) for chosen in _distinct(ranked, prefer, cfg)]
    # one copy of each distinct program before any repeat (the same program written under two
    # prompts), then by preference
    copies: Counter[str] = Counter()
    order = []
    for chosen, worse in sorted(groups, key=lambda g: prefer(g[0])):
        key = code_key(chosen.code)
        order.append((copies[key], prefer(chosen), chosen, worse))
        copies[key] += 1
    groups = [(chosen, worse) for _, _, chosen, worse in sorted(order, key=lambda o: o[:2])]
    drops = _Drops()
    usable = []
    for chosen, worse in groups:
        if not chosen.response.strip():
            dropped["empty_chosen"] += 1
        elif fits is not None and not fits(chosen.prompt, chosen.response):
            dropped["over_max_length"] += 1
        else:
            usable.append((chosen, _eligible(chosen, worse, cfg, drops, fits)))
    taken = _take(usable, cfg, drops)
    drops.count_into(dropped, used={r.id for _, r, _ in taken})
    return [_pair(c, r, sim, "best_vs_worse") for c, r, sim in taken]


class _Drops:
    """Why would-be rejected candidates were not used, counted once per candidate: every chosen
    program of a problem considers the same candidates, and a candidate one chosen could not use
    may be another's rejected."""

    def __init__(self):
        self.reason: dict[str, str] = {}

    def __call__(self, reason: str, candidate: Attempt) -> None:
        self.reason.setdefault(candidate.id, reason)

    def count_into(self, dropped: Counter, used: set[str]) -> None:
        for candidate_id, reason in self.reason.items():
            if candidate_id not in used:
                dropped[reason] += 1


def _distinct(candidates: Iterable[Attempt], prefer, cfg: PairsConfig) -> list[Attempt]:
    """Up to `cfg.distinct_chosen` passing candidates, most preferred first, no two of them the
    same program (`code_key`) or the same response."""
    out, seen = [], set()
    for a in sorted((a for a in candidates if a.ok), key=prefer):
        key = code_key(a.code)
        if key in seen or len(out) >= cfg.distinct_chosen:
            continue
        seen.add(key)
        out.append(a)
    return out


def _debug_pairs(parent: Attempt, fixes: list[Attempt], cfg: PairsConfig, dropped: Counter,
                 fits: Fits | None = None) -> list[Pair]:
    """`debug` pairs of one failed attempt, from the fixes written for it."""
    passing = [f for f in fixes if f.ok]
    if not passing:
        dropped["no_passing_fix"] += 1
        return []
    best = min(passing, key=_preference(passing, cfg))
    if not best.response.strip():
        dropped["empty_chosen"] += 1
        return []
    if fits is not None and not fits(best.prompt, best.response):
        dropped["over_max_length"] += 1
        return []
    failing = [f for f in fixes if not f.ok]
    same_prompt = [f for f in failing if f.prompt == best.prompt]
    # A failing fix under another prompt answered another question: it cannot be the rejected
    # answer to this one.
    if len(same_prompt) < len(failing):
        dropped["prompt_mismatch"] += len(failing) - len(same_prompt)
    if not failing:
        same_prompt = [parent]  # "repeat the broken code": the wrong answer the prompt shows
    drops = _Drops()
    taken = _take([(best, _eligible(best, same_prompt, cfg, drops, fits))], cfg, drops)
    drops.count_into(dropped, used={r.id for _, r, _ in taken})
    return [_pair(c, r, sim, "debug") for c, r, sim in taken]


def _eligible(chosen: Attempt, candidates: Iterable[Attempt], cfg: PairsConfig,
              drop: Callable[[str, Attempt], None],
              fits: Fits | None = None) -> list[tuple[Attempt, float]]:
    """The candidates that may be rejected against `chosen`, best teachers first, with their code
    similarity; what may not is passed to `drop` with its reason."""
    eligible: list[tuple[Attempt, float]] = []
    fenced = "```" in chosen.response
    for r in candidates:
        gap = chosen.reward - r.reward
        if gap <= 0:
            drop("not_worse", r)
        elif gap < cfg.min_reward_gap - _EPS:
            drop("below_reward_gap", r)
        elif ("```" in r.response) != fenced:
            # A fenced answer against a bare continuation differs in format, not correctness:
            # DPO would learn the style of the prompt that produced it.
            drop("style_mismatch", r)
        elif r.response.strip() == chosen.response.strip():
            drop("identical_responses", r)
        elif fits is not None and not fits(chosen.prompt, r.response):
            drop("over_max_length", r)
        else:
            eligible.append((r, _similarity(chosen.code, r.code)))
    if cfg.hard_negatives:
        # Negatives most like the chosen program isolate what made it right: the pair differs
        # in little besides the mistake (hard negatives, as in CodeLutra).
        eligible.sort(key=lambda rs: (-rs[1], rs[0].reward, rs[0].id))
    else:
        eligible.sort(key=lambda rs: (rs[0].reward, rs[0].id))
    return eligible


def _take(groups: list[tuple[Attempt, list[tuple[Attempt, float]]]], cfg: PairsConfig,
          drop: Callable[[str, Attempt], None]) -> list[tuple[Attempt, Attempt, float]]:
    """Up to `cfg.pair_limit` (chosen, rejected, similarity), one from each group (a distinct
    chosen program) in turn, so every chosen gets a pair before any gets a second. Each rejected
    response is distinct from the others and from every chosen one, except that a chosen whose
    eligible rejected were all taken by earlier groups gets its first (most similar) one again:
    a distinct correct program is the scarce part of the signal. The assignment is greedy, in
    the groups' order: it does not search for one in which every rejected is distinct."""
    chosen_texts = {chosen.response.strip() for chosen, _ in groups}
    seen = set(chosen_texts)
    taken: list[tuple[Attempt, Attempt, float]] = []
    queues = [(chosen, list(eligible), list(eligible)) for chosen, eligible in groups]
    paired: set[int] = set()
    while any(queue for _, queue, _ in queues):
        for g, (chosen, queue, every) in enumerate(queues):
            pick = None
            while queue and pick is None:
                r, sim = queue.pop(0)
                if r.response.strip() in seen:
                    drop("duplicate_rejected", r)
                else:
                    pick = (r, sim)
            if pick is None and g not in paired and len(taken) < cfg.pair_limit:
                pick = next(((r, sim) for r, sim in every
                             if r.response.strip() not in chosen_texts), None)
            if pick is None:
                continue
            if len(taken) >= cfg.pair_limit:
                drop("over_max_pairs_per_problem", pick[0])
                continue
            seen.add(pick[0].response.strip())
            taken.append((chosen, *pick))
            paired.add(g)
    return taken


def _similarity(a: str, b: str) -> float:
    # autojunk off: in code, spaces are "popular" enough that the heuristic would ignore them and
    # distort the ratio of any program longer than 200 characters.
    return round(difflib.SequenceMatcher(None, a, b, autojunk=False).ratio(), 4)


def _pair(chosen: Attempt, rejected: Attempt, similarity: float, kind: str) -> Pair:
    return Pair(prompt=chosen.prompt, chosen=chosen.response, rejected=rejected.response,
                problem_id=chosen.problem_id, kind=kind, chosen_reward=chosen.reward,
                rejected_reward=rejected.reward, chosen_id=chosen.id, rejected_id=rejected.id,
                similarity=similarity, same_prompt=rejected.prompt == chosen.prompt)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def write_pairs(pairs: list[Pair], path: Path) -> Shard:
    """The pairs as JSONL (every field, `PAIR_COLUMNS` first), atomically; the shard naming them."""
    return write_rows(Path(path), pairs)


def load_pair_dataset(path: str | Path, kinds: Sequence[str] = TRAINING_KINDS):
    """The pairs of `kinds` in a JSONL file written by `write_pairs`, as a `datasets.Dataset` with
    exactly `PAIR_COLUMNS`. `sft` rows are left out unless asked for."""
    import datasets  # heavy: only the training stage needs it

    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {list(KINDS)}; got {list(kinds)}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: mine pairs first (python -m tasks.pairs "
                                "ATTEMPTS.jsonl --out PATH)")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(Pair.model_validate_json(line))
        except ValueError as err:
            raise ValueError(f"{path}, line {number}: not a pair row ({err}); write the file with "
                             "tasks.pairs.write_pairs") from None
    selected = [p for p in rows if p.kind in kinds]
    if not selected:
        found = Counter(p.kind for p in rows)
        held = ", ".join(f"{n} {k}" for k, n in sorted(found.items())) or "no rows"
        raise ValueError(f"{path} holds no pairs of kinds {list(kinds)} ({held}): no pairs were "
                         "mined, because every problem had all candidates pass or all fail (or "
                         "equal rewards). Raise sampling.samples_per_specialist, add "
                         "specialists, or use more problems; see the dropped counts of the pairs "
                         "stage")
    features = datasets.Features({
        "prompt": datasets.Value("string"), "chosen": datasets.Value("string"),
        "rejected": datasets.Value("string"), "problem_id": datasets.Value("string"),
        "kind": datasets.Value("string"), "chosen_reward": datasets.Value("float64"),
        "rejected_reward": datasets.Value("float64"),
    })
    return datasets.Dataset.from_list(
        [{column: getattr(p, column) for column in PAIR_COLUMNS} for p in selected],
        features=features)


# ---------------------------------------------------------------------------------------------
# Prefect task
# ---------------------------------------------------------------------------------------------


class PairSet(BaseModel):
    """What the mine-pairs task gives: the pairs file and its counts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pairs: Shard
    by_kind: dict[str, int]
    dropped: dict[str, int]
    cross_prompt: int = 0
    distinct_chosen: int = 0
    swapped: int = 0

    @property
    def trainable(self) -> int:
        return sum(self.by_kind.get(kind, 0) for kind in TRAINING_KINDS)


@task(name="mine-pairs", **cached())
def mine_pairs_task(ctx: CycleContext, attempts: list[Shard], pairs: PairsConfig,
                    tokenizer_dir: str, max_length: int | None,
                    held_out_ids: tuple[str, ...]) -> PairSet:
    """Preference pairs from every attempt of the cycle, each fitting `max_length` tokens of
    the policy's tokenizer, with a manifest of their lineage. Refuses attempts at a held-out
    (dev or test) problem: those never become training data."""
    from tasks.problems.leaks import check_not_held_out

    rows = read_attempts(attempts)
    check_not_held_out([a.problem_id for a in rows], held_out_ids, "preference pairs")
    fits = None
    if max_length is not None:
        from transformers import AutoTokenizer

        fits = token_budget(AutoTokenizer.from_pretrained(tokenizer_dir), max_length)
    out_dir = Path(ctx.stage_dir("pairs"))
    mined = mine_pairs(rows, pairs, fits)
    shard = write_pairs(mined.pairs, out_dir / "pairs.jsonl")
    write_json(out_dir / "manifest.json",
               {"pairs": shard.model_dump(), "by_kind": mined.by_kind, "dropped": mined.dropped,
                "cross_prompt": mined.cross_prompt, "distinct_chosen": mined.distinct_chosen,
                "swapped": mined.swapped, "max_length": max_length,
                "parents": [s.sha256 for s in attempts], "config": pairs.model_dump()})
    return PairSet(pairs=shard, by_kind=mined.by_kind, dropped=mined.dropped,
                   cross_prompt=mined.cross_prompt, distinct_chosen=mined.distinct_chosen,
                   swapped=mined.swapped)


# ---------------------------------------------------------------------------------------------
# Run alone
# ---------------------------------------------------------------------------------------------


def read_attempt_files(paths: Iterable[str | Path]) -> list[Attempt]:
    """Attempts from JSONL files (no hash to check, unlike `Shard.read`)."""
    attempts = []
    for path in paths:
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    attempts.append(Attempt.model_validate_json(line))
                except ValueError as err:
                    raise ValueError(f"{path}, line {number}: not an attempt row ({err})") from None
    return attempts


def main(argv: list[str] | None = None) -> None:
    from tasks.config import load_config

    parser = argparse.ArgumentParser(description="Mine preference pairs from executed attempts.")
    parser.add_argument("attempts", nargs="+", help="JSONL files of executed attempts")
    parser.add_argument("--out", required=True, help="where to write the pairs (JSONL)")
    parser.add_argument("--config", default="default", help="preset name or YAML path")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value, e.g. pairs.keep_sft=true")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.set).pairs
        mined = mine_pairs(read_attempt_files(args.attempts), cfg)
    except (ValueError, OSError) as err:  # messages already say what to do
        sys.exit(str(err))
    shard = write_pairs(mined.pairs, Path(args.out))
    print(f"{shard.rows} rows -> {shard.path} (sha256 {shard.sha256[:12]})")
    print("by kind: " + ", ".join(f"{k}={n}" for k, n in mined.by_kind.items())
          + f"; distinct chosen programs {mined.distinct_chosen}"
          + (f"; swapped (random-pair control) {mined.swapped}" if mined.swapped else ""))
    print("dropped: " + (", ".join(f"{r}={n}" for r, n in mined.dropped.items()) or "nothing"))


if __name__ == "__main__":
    main()
