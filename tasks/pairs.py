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

- `best_vs_worse`: per problem, over the first tries (turn 0). Chosen is the best candidate
  (highest reward; ties to a passing status, then fewer debug turns, then shorter code, then id);
  rejected are candidates whose reward is strictly lower, by at least `min_reward_gap`. With
  `hard_negatives` the rejected most similar to the chosen code come first, else the lowest
  rewards; at most `max_pairs_per_problem`, each with a distinct rejected response.
- `debug`: per failed attempt that got fixes. Prompt = the debug prompt the fix was written under,
  chosen = the best passing fix, rejected = a non-passing fix under the same prompt, or, when there
  is none, the failed attempt's own response (the debug prompt shows exactly that code failing, so
  repeating it is a genuine wrong answer to it). At most `max_pairs_per_problem` per failed attempt.
- `sft` (only with `keep_sft`): the best solution of a problem where every first try passed;
  `rejected` is "". Meant for the SFT term; `load_pair_dataset` leaves it out by default, so
  training does not read it yet.

The prompt of a pair is always the chosen attempt's prompt: exactly the context the policy saw
when it wrote the chosen code. First tries and debug fixes are never mixed in one pair, for the
same reason.

Reasons for dropped items (keys of `Mined.dropped`; each counts what is named):

- per problem: `all_passed`, `all_failed` (every reward 0), `equal_rewards` (no signal);
- per problem or failed attempt whose best candidate has an empty response: `empty_chosen`;
- per failed attempt whose fixes all fail: `no_passing_fix`;
- per would-be rejected candidate: `below_reward_gap`, `not_worse`, `style_mismatch` (one response
  fenced with ``` and the other not: different prompt styles), `identical_responses`,
  `duplicate_rejected`, `prompt_mismatch` (a failing fix written under another debug prompt than
  the chosen fix), `over_max_pairs_per_problem`.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Literal, Sequence

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


assert tuple(Pair.model_fields)[: len(PAIR_COLUMNS)] == PAIR_COLUMNS


class Mined(BaseModel):
    """What `mine_pairs` found: pairs in a fixed order, dropped items by reason, pairs by kind."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pairs: list[Pair]
    dropped: dict[str, int]  # reason -> count, only reasons that occurred, sorted by name
    by_kind: dict[str, int]  # every kind of KINDS -> count of pairs (0 included)


# ---------------------------------------------------------------------------------------------
# Mining
# ---------------------------------------------------------------------------------------------


def mine_pairs(attempts: list[Attempt], cfg: PairsConfig) -> Mined:
    """Pairs from executed attempts. The same attempts in any order give the same result."""
    by_id = _check(attempts, need_parents=cfg.debug_pairs)
    dropped: Counter[str] = Counter()
    pairs: list[Pair] = []

    first_tries: dict[str, list[Attempt]] = defaultdict(list)
    for a in attempts:
        if a.turn == 0:
            first_tries[a.problem_id].append(a)
    for problem_id in sorted(first_tries):
        pairs += _first_try_pairs(first_tries[problem_id], cfg, dropped)

    if cfg.debug_pairs:
        fixes: dict[str, list[Attempt]] = defaultdict(list)
        for a in attempts:
            if a.turn >= 1:
                fixes[a.parent].append(a)
        for parent_id in sorted(fixes):
            pairs += _debug_pairs(by_id[parent_id], fixes[parent_id], cfg, dropped)

    pairs.sort(key=lambda p: (p.problem_id, p.chosen_id, p.rejected_id or ""))
    kinds = Counter(p.kind for p in pairs)
    return Mined(pairs=pairs, dropped={r: n for r, n in sorted(dropped.items()) if n},
                 by_kind={kind: kinds[kind] for kind in KINDS})


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


def _first_try_pairs(candidates: list[Attempt], cfg: PairsConfig, dropped: Counter) -> list[Pair]:
    """`best_vs_worse` pairs (or one `sft` row) of one problem."""
    ranked = sorted(candidates, key=_rank)
    best = ranked[0]
    rewards = {a.reward for a in ranked}
    if all(a.ok for a in ranked):
        if not cfg.keep_sft:
            dropped["all_passed"] += 1
            return []
        if not best.response.strip():
            dropped["empty_chosen"] += 1
            return []
        return [Pair(prompt=best.prompt, chosen=best.response, rejected="",
                     problem_id=best.problem_id, kind="sft", chosen_reward=best.reward,
                     rejected_reward=0.0, chosen_id=best.id, rejected_id=None)]
    if rewards == {0.0}:
        dropped["all_failed"] += 1
        return []
    if len(rewards) == 1:
        dropped["equal_rewards"] += 1
        return []
    if not best.response.strip():
        dropped["empty_chosen"] += 1
        return []
    # Candidates as good as the best (another passing program) are not negatives; no drop.
    worse = [a for a in ranked if a.reward < best.reward]
    return [_pair(best, r, sim, "best_vs_worse") for r, sim in _pick_rejected(best, worse, cfg,
                                                                              dropped)]


def _debug_pairs(parent: Attempt, fixes: list[Attempt], cfg: PairsConfig,
                 dropped: Counter) -> list[Pair]:
    """`debug` pairs of one failed attempt, from the fixes written for it."""
    passing = sorted((f for f in fixes if f.ok), key=_rank)
    if not passing:
        dropped["no_passing_fix"] += 1
        return []
    best = passing[0]
    if not best.response.strip():
        dropped["empty_chosen"] += 1
        return []
    failing = [f for f in fixes if not f.ok]
    same_prompt = [f for f in failing if f.prompt == best.prompt]
    # A failing fix under another prompt answered another question: it cannot be the rejected
    # answer to this one.
    if len(same_prompt) < len(failing):
        dropped["prompt_mismatch"] += len(failing) - len(same_prompt)
    if not failing:
        same_prompt = [parent]  # "repeat the broken code": the wrong answer the prompt shows
    return [_pair(best, r, sim, "debug") for r, sim in _pick_rejected(best, same_prompt, cfg,
                                                                      dropped)]


def _pick_rejected(chosen: Attempt, candidates: Iterable[Attempt], cfg: PairsConfig,
                   dropped: Counter) -> list[tuple[Attempt, float]]:
    """The rejected candidates for `chosen`, best teachers first, with their code similarity."""
    eligible: list[tuple[Attempt, float]] = []
    for r in candidates:
        gap = chosen.reward - r.reward
        if gap <= 0:
            dropped["not_worse"] += 1
        elif gap < cfg.min_reward_gap - _EPS:
            dropped["below_reward_gap"] += 1
        else:
            eligible.append((r, _similarity(chosen.code, r.code)))
    if cfg.hard_negatives:
        # Negatives most like the chosen program isolate what made it right: the pair differs
        # in little besides the mistake (hard negatives, as in CodeLutra).
        eligible.sort(key=lambda rs: (-rs[1], rs[0].reward, rs[0].id))
    else:
        eligible.sort(key=lambda rs: (rs[0].reward, rs[0].id))

    fenced = "```" in chosen.response
    taken: list[tuple[Attempt, float]] = []
    seen = {chosen.response.strip()}
    for r, sim in eligible:
        text = r.response.strip()
        if ("```" in r.response) != fenced:
            # A fenced answer against a bare continuation differs in format, not correctness:
            # DPO would learn the style of the prompt that produced it.
            dropped["style_mismatch"] += 1
        elif text == chosen.response.strip():
            dropped["identical_responses"] += 1
        elif text in seen:
            dropped["duplicate_rejected"] += 1
        elif len(taken) >= cfg.max_pairs_per_problem:
            dropped["over_max_pairs_per_problem"] += 1
        else:
            seen.add(text)
            taken.append((r, sim))
    return taken


def _similarity(a: str, b: str) -> float:
    # autojunk off: in code, spaces are "popular" enough that the heuristic would ignore them and
    # distort the ratio of any program longer than 200 characters.
    return round(difflib.SequenceMatcher(None, a, b, autojunk=False).ratio(), 4)


def _pair(chosen: Attempt, rejected: Attempt, similarity: float, kind: str) -> Pair:
    return Pair(prompt=chosen.prompt, chosen=chosen.response, rejected=rejected.response,
                problem_id=chosen.problem_id, kind=kind, chosen_reward=chosen.reward,
                rejected_reward=rejected.reward, chosen_id=chosen.id, rejected_id=rejected.id,
                similarity=similarity)


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

    @property
    def trainable(self) -> int:
        return sum(self.by_kind.get(kind, 0) for kind in TRAINING_KINDS)


@task(name="mine-pairs", **cached())
def mine_pairs_task(ctx: CycleContext, attempts: list[Shard], pairs: PairsConfig) -> PairSet:
    """Preference pairs from every attempt of the cycle, with a manifest of their lineage."""
    out_dir = Path(ctx.stage_dir("pairs"))
    mined = mine_pairs(read_attempts(attempts), pairs)
    shard = write_pairs(mined.pairs, out_dir / "pairs.jsonl")
    write_json(out_dir / "manifest.json",
               {"pairs": shard.model_dump(), "by_kind": mined.by_kind, "dropped": mined.dropped,
                "parents": [s.sha256 for s in attempts], "config": pairs.model_dump()})
    return PairSet(pairs=shard, by_kind=mined.by_kind, dropped=mined.dropped)


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
    print("by kind: " + ", ".join(f"{k}={n}" for k, n in mined.by_kind.items()))
    print("dropped: " + (", ".join(f"{r}={n}" for r, n in mined.dropped.items()) or "nothing"))


if __name__ == "__main__":
    main()
