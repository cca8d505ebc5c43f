"""Evaluation and promotion: held-out pass@1 of a policy, and whether a new policy replaces the
champion.

Takes: held-out problems (dev or test: never trained on, never in memory), a policy behind a
backend, an open sandbox; the `evaluation` config section.
Gives: an `EvalResult`: greedy pass@1 (one deterministic candidate per problem) and, from
`evaluation.n_samples` sampled candidates per problem, sampled pass@1 and the unbiased pass@k of
Chen et al. (https://arxiv.org/abs/2107.03374), with per-problem outcomes (the raw numbers every
comparison is recomputed from). `compare_results` pairs two results problem by problem;
`decide` turns a dev comparison into a promotion `Decision` that records its statistics.

The prompt is the problem as published (signature + docstring), with no retrieved examples (the
score measures the policy, not the memory), in the style the policy trains in
(`evaluation.prompt_style`, by default the specialists'): completion style shows the problem alone;
chat style puts it through the chat template with the model's default system message, and the
answer stops at its code block's closing fence, as in sampling.

Promotion (`decide`), on the **dev** set only (the test set is reported, never used to choose):

- each problem's *score* is the fraction of its 1 + n candidates that pass (greedy and sampled
  together: less variance than greedy alone); the new and the previous policy's scores are paired
  by problem;
- `evaluation.promote: significant` promotes when the one-sided paired sign-flip test of "new
  better" gives p < `evaluation.level`; `non_inferior` promotes when the lower end of the 95%
  bootstrap CI of the mean paired difference is above −`evaluation.margin` (a documented choice
  for runs that would rather keep moving than wait for significance);
- identical results never promote, nor does an unchanged policy, nor a collapsed one (its
  reasons are recorded); the decision carries the comparison (difference, CI, p-values, McNemar's
  exact test on greedy pass@1) so anyone can check it.

Run alone (any policy, any suite): `autodidact evaluate --config smoke [--adapter DIR]`.
"""

from __future__ import annotations

from math import comb
from pathlib import Path
from typing import Sequence

from prefect import task
from pydantic import BaseModel, ConfigDict

from sandbox import Sandbox
from tasks.caching import cached
from tasks.execution import ENGINE_RETRIES, judge, open_sandbox
from tasks.generation import Backend, Settings, extract, render
from tasks.policy import Policy
from tasks.problems.records import Problem
from tasks.records import Attempt, CycleContext, Shard, write_json, write_rows
from tasks.schema import (EvaluationConfig, SamplingConfig, SandboxConfig,
                          evaluation_style)
from tasks.stats import BinaryComparison, Comparison, compare, compare_binary

EVAL_SEED = 20_240_501  # fixed: both policies of a comparison see the same sampling noise


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 ≤ c ≤ n and 1 ≤ k ≤ n; got n={n}, c={c}, k={k}")
    if n - c < k:  # every draw of k samples contains a passing one
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


class ProblemOutcome(BaseModel):
    """What one policy did on one problem: the raw numbers behind every statistic."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    problem_id: str
    greedy_passed: bool
    greedy_status: str
    samples: int  # n sampled candidates (0 when evaluation.n_samples is 0)
    samples_passed: int
    distinct_passing: int = 0  # distinct passing programs among the samples (normalized code)

    @property
    def score(self) -> float:
        """Fraction of the 1 + n candidates (greedy and sampled) that passed."""
        return (self.greedy_passed + self.samples_passed) / (1 + self.samples)


class EvalResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    policy_id: str
    suite: str  # the suite the problems came from ("humaneval", "mbpp", a file)
    split: str = "test"  # "dev" (gates promotion) or "test" (reported only)
    problems: int
    pass1_greedy: float
    pass1_sampled: float | None = None  # mean fraction of samples passing; None without samples
    pass_at_k: dict[int, float]  # from samples; empty without samples
    diversity: float | None = None  # mean distinct passing programs over problems with a pass
    outcomes: list[ProblemOutcome]


class Paired(BaseModel):
    """Two results on the same problems, compared problem by problem."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    split: str
    new_policy: str
    old_policy: str
    greedy: BinaryComparison  # greedy pass@1: McNemar's exact test, bootstrap CI, sign flips
    score: Comparison  # per-problem fraction of greedy + sampled candidates passing
    gained: list[str]  # problems the new policy solves greedily and the old one does not
    lost: list[str]


def compare_results(new: EvalResult, old: EvalResult, seed: int = 0) -> Paired:
    """Pair two results by problem; refuses results on different problems."""
    ids = [o.problem_id for o in new.outcomes]
    if ids != [o.problem_id for o in old.outcomes]:
        raise ValueError("the two evaluations cover different problems: compare policies on the "
                         "same held-out set (same problems.dev_n/dev_seed or test_n/test_seed)")
    before = {o.problem_id: o.greedy_passed for o in old.outcomes}
    return Paired(
        split=new.split, new_policy=new.policy_id, old_policy=old.policy_id,
        greedy=compare_binary([o.greedy_passed for o in new.outcomes],
                              [o.greedy_passed for o in old.outcomes], seed=seed),
        score=compare([o.score for o in new.outcomes], [o.score for o in old.outcomes],
                      seed=seed),
        gained=[o.problem_id for o in new.outcomes if o.greedy_passed and not before[o.problem_id]],
        lost=[o.problem_id for o in new.outcomes if before[o.problem_id] and not o.greedy_passed])


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    promoted: bool
    reason: str
    new_policy: str
    previous_policy: str
    mode: str  # evaluation.promote
    level: float
    margin: float
    dev: Paired  # the comparison the decision rests on
    collapse: list[str] = []  # why the new policy counts as collapsed (empty: it does not)


def describe(p: Paired) -> str:
    """One line: the paired difference with its CI and p-values."""
    s, g = p.score, p.greedy
    return (f"{p.split} score {s.new_mean:.3f} vs {s.old_mean:.3f} (diff {s.diff:+.3f}, 95% CI "
            f"[{s.ci_low:+.3f}, {s.ci_high:+.3f}], p(better) {s.p_greater:.3g}; "
            f"{s.improved} problems up, {s.worsened} down of {s.n}); greedy pass@1 "
            f"{g.new_mean:.3f} vs {g.old_mean:.3f} (McNemar {g.b}:{g.c}, p {g.mcnemar_p:.3g})")


def decide(new: EvalResult, previous: EvalResult, cfg: EvaluationConfig,
           collapse: Sequence[str] = ()) -> Decision:
    """Promote `new` over `previous` (both on dev) by `cfg.promote`; see the module docstring."""
    if new.split != "dev" or previous.split != "dev":
        raise ValueError(f"promotion is decided on dev results only (got {new.split} and "
                         f"{previous.split}): the test set is reported, never used to choose")
    paired = compare_results(new, previous)
    s = paired.score
    stats = describe(paired)
    if new.policy_id == previous.policy_id:
        promoted, reason = False, "training left the policy unchanged: nothing to promote"
    elif s.identical and paired.greedy.identical:
        promoted, reason = False, "identical results on every dev problem never promote: " + stats
    elif collapse:
        promoted, reason = False, "collapse: " + "; ".join(collapse) + ". " + stats
    elif cfg.promote == "significant":
        promoted = s.p_greater < cfg.level
        reason = (("a significant dev gain" if promoted else
                   f"no significant dev gain (needs p < {cfg.level:g})") + ": " + stats)
    else:
        promoted = s.ci_low > -cfg.margin
        reason = ((f"non-inferior within margin {cfg.margin:g}" if promoted else
                   f"not shown non-inferior within margin {cfg.margin:g}") + ": " + stats)
    return Decision(promoted=promoted, reason=reason, new_policy=new.policy_id,
                    previous_policy=previous.policy_id, mode=cfg.promote, level=cfg.level,
                    margin=cfg.margin, dev=paired, collapse=list(collapse))


def evaluate(problems: Sequence[Problem], backend: Backend, policy_id: str, suite: str,
             cfg: EvaluationConfig, sampling: SamplingConfig, sandbox_cfg: SandboxConfig,
             box: Sandbox, out_dir: str | Path | None = None, split: str = "test") -> EvalResult:
    """Greedy pass@1, and sampled pass@1 and pass@k from `cfg.n_samples` samples per problem;
    the judged candidates go to `<out_dir>/attempts.jsonl` when `out_dir` is given. Progress:
    "evaluate <split> greedy" and "... sampled" (prompts), "... judge" (candidates)."""
    from tasks.memory import code_hash
    from tasks.progress import Progress

    if not problems:
        raise ValueError(f"no {split} problems: check problems.{split}_n")
    style = evaluation_style(cfg, sampling)
    tokenizer = getattr(backend, "tokenizer", None)
    prompts = [render(p.prompt, style, "", tokenizer) for p in problems]
    base = dict(max_new_tokens=sampling.max_new_tokens, top_p=sampling.top_p, seed=EVAL_SEED,
                batch_size=sampling.batch_size, stop_early=True, style=style)
    with Progress(f"evaluate {split} greedy", len(prompts), "prompts") as progress:
        greedy = backend.generate(prompts, Settings(temperature=0.0, n=1, **base), progress)
    sampled = [[] for _ in problems]
    if cfg.n_samples > 0:
        with Progress(f"evaluate {split} sampled", len(prompts), "prompts") as progress:
            sampled = backend.generate(prompts, Settings(temperature=cfg.temperature,
                                                         n=cfg.n_samples, **base), progress)
    attempts = []
    for problem, prompt, g, s in zip(problems, prompts, greedy, sampled):
        for k, text in enumerate(g + s):
            response, code = extract(problem.prompt, text, problem.entry_point, style)
            attempts.append(Attempt(
                id=f"{problem.id}/eval/{'greedy' if k == 0 else f's{k - 1}'}",
                problem_id=problem.id, cycle=0, agent="eval", specialist="none",
                sample=k, turn=0, policy_id=policy_id, prompt=prompt,
                response=response, code=code))
    with Progress(f"evaluate {split} judge", len(attempts), "candidates") as progress:
        judged = judge(attempts, {p.id: p for p in problems}, box, sandbox_cfg, progress)
    if out_dir is not None:  # the candidates behind the score, for inspection
        write_rows(Path(out_dir) / "attempts.jsonl", judged)
    outcomes = []
    for problem in problems:
        mine = [a for a in judged if a.problem_id == problem.id]
        outcomes.append(ProblemOutcome(
            problem_id=problem.id, greedy_passed=mine[0].ok, greedy_status=mine[0].status,
            samples=len(mine) - 1, samples_passed=sum(a.ok for a in mine[1:]),
            distinct_passing=len({code_hash(a.code) for a in mine[1:] if a.ok})))
    n = len(outcomes)
    pass_k, sampled_pass1, diversity = {}, None, None
    if cfg.n_samples > 0:
        pass_k = {k: sum(pass_at_k(o.samples, o.samples_passed, k) for o in outcomes) / n
                  for k in cfg.k}
        sampled_pass1 = sum(o.samples_passed / o.samples for o in outcomes) / n
        solved = [o.distinct_passing for o in outcomes if o.samples_passed]
        diversity = sum(solved) / len(solved) if solved else 0.0
    return EvalResult(policy_id=policy_id, suite=suite, split=split, problems=n,
                      pass1_greedy=sum(o.greedy_passed for o in outcomes) / n,
                      pass1_sampled=sampled_pass1, pass_at_k=pass_k, diversity=diversity,
                      outcomes=outcomes)


def collapse_reasons(new: EvalResult, previous: EvalResult, training: dict[str, float],
                     cfg: EvaluationConfig) -> list[str]:
    """Why the new policy counts as collapsed, from its dev samples and its training record:

    - diversity: distinct passing programs per solved dev problem fell below
      (1 − `max_diversity_drop`) × the previous policy's;
    - likelihood: the mean per-token log-likelihood of earlier cycles' chosen solutions fell by
      more than `max_likelihood_drop` nats under the new policy (`training["earlier_chosen_drop"]`,
      measured by the training stage against the policy it trained from)."""
    reasons = []
    if new.diversity is not None and previous.diversity:
        floor = (1 - cfg.max_diversity_drop) * previous.diversity
        if new.diversity < floor - 1e-12:
            reasons.append(f"diversity of passing dev programs fell to {new.diversity:.2f} per "
                           f"solved problem from {previous.diversity:.2f} (floor {floor:.2f})")
    drop = training.get("earlier_chosen_drop")
    if drop is not None and drop > cfg.max_likelihood_drop:
        reasons.append(f"earlier chosen solutions lost {drop:.3f} nats/token of log-likelihood "
                       f"(limit {cfg.max_likelihood_drop:g})")
    return reasons


# ----------------------------------------------------------------------------------------------
# Prefect tasks


@task(name="evaluate", task_run_name="evaluate[policy={policy.id}, split={split}]",
      **ENGINE_RETRIES, **cached())
def evaluate_task(policy: Policy, problems: Shard, suite: str, split: str,
                  evaluation: EvaluationConfig, sampling: SamplingConfig, sandbox: SandboxConfig,
                  dtype: str, out_dir: str, device: str = "auto") -> EvalResult:
    """Evaluate one policy on one held-out set, on `device` (`policy.device`); the engine and
    the device it used go to `<out_dir>/engine.json`. Its key holds no cycle: a policy evaluated
    as cycle n's new policy is served from the cache as cycle n+1's starting point."""
    from tasks.engines import open_backend, record_engine

    rows = problems.read(Problem)
    backend = open_backend(policy, sampling.backend, dtype, device)
    record_engine(backend, Path(out_dir) / "engine.json")
    with open_sandbox(sandbox) as box:
        result = evaluate(rows, backend, policy.id, suite, evaluation, sampling, sandbox, box,
                          out_dir, split)
    write_json(Path(out_dir) / "result.json", result.model_dump(mode="json"))
    return result


@task(name="promote", **cached())
def promote_task(ctx: CycleContext, new: EvalResult, champion: EvalResult,
                 training: dict[str, float], evaluation: EvaluationConfig) -> Decision:
    """Whether the trained policy replaces the champion: paired on dev, with the collapse guard;
    written to `<run>/cycle-<n>/promote/decision.json`."""
    decision = decide(new, champion, evaluation,
                      collapse_reasons(new, champion, training, evaluation))
    write_json(Path(ctx.stage_dir("promote")) / "decision.json",
               decision.model_dump(mode="json"))
    return decision
