"""Evaluation and promotion: held-out pass@k of a policy, and whether a new policy may replace the
one it was trained from.

Takes: evaluation problems (never trained on, never in memory), a policy behind a backend, an
open sandbox; the `evaluation` config section.
Gives: an `EvalResult`: greedy pass@1 (one deterministic candidate per problem), and when
`evaluation.n_samples` > 1 the unbiased pass@k of Chen et al. (https://arxiv.org/abs/2107.03374)
from n sampled candidates per problem, with per-problem outcomes so two policies can be compared
problem by problem. `decide` turns two results into a promotion `Decision` with its reason.

The prompt is the problem as published (signature + docstring), with no system prompt and no
retrieved examples: the score measures the policy, not the memory.

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
from tasks.execution import engine_failed, judge, open_sandbox
from tasks.generation import Backend, Settings, extract
from tasks.policy import Policy
from tasks.problems import Problem
from tasks.records import Attempt, CycleContext, Shard, write_json, write_rows
from tasks.schema import EvaluationConfig, SamplingConfig, SandboxConfig

EVAL_SEED = 20_240_501  # fixed: both policies of a comparison see the same sampling noise


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 ≤ c ≤ n and 1 ≤ k ≤ n; got n={n}, c={c}, k={k}")
    if n - c < k:  # every draw of k samples contains a passing one
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


class ProblemOutcome(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    problem_id: str
    greedy_passed: bool
    greedy_status: str
    samples: int  # n sampled candidates (0 when n_samples == 1)
    samples_passed: int


class EvalResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    policy_id: str
    suite: str
    problems: int
    pass1_greedy: float
    pass_at_k: dict[int, float]  # from samples; empty when n_samples == 1
    outcomes: list[ProblemOutcome]


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    promoted: bool
    reason: str
    new_policy: str
    previous_policy: str
    new_pass1: float
    previous_pass1: float
    tolerance: float
    gained: list[str]  # problems the new policy solves greedily and the previous did not
    lost: list[str]


def evaluate(problems: Sequence[Problem], backend: Backend, policy_id: str, suite: str,
             cfg: EvaluationConfig, sampling: SamplingConfig, sandbox_cfg: SandboxConfig,
             box: Sandbox, out_dir: str | Path | None = None) -> EvalResult:
    """Greedy pass@1, and pass@k from `cfg.n_samples` samples when it is > 1; the judged
    candidates go to `<out_dir>/attempts.jsonl` when `out_dir` is given."""
    if not problems:
        raise ValueError("no evaluation problems: check problems.eval and problems.eval_n")
    prompts = [p.prompt for p in problems]
    base = dict(max_new_tokens=sampling.max_new_tokens, top_p=sampling.top_p, seed=EVAL_SEED,
                batch_size=sampling.batch_size, stop_early=True)
    greedy = backend.generate(prompts, Settings(temperature=0.0, n=1, **base))
    sampled = (backend.generate(prompts, Settings(temperature=cfg.temperature, n=cfg.n_samples,
                                                  **base))
               if cfg.n_samples > 1 else [[] for _ in problems])
    attempts = []
    for problem, prompt, g, s in zip(problems, prompts, greedy, sampled):
        for k, text in enumerate(g + s):
            response, code = extract(problem.prompt, text, problem.entry_point, "completion")
            attempts.append(Attempt(
                id=f"{problem.id}/eval/{'greedy' if k == 0 else f's{k - 1}'}",
                problem_id=problem.id, cycle=0, agent="eval", specialist="none",
                sample=k, turn=0, policy_id=policy_id, prompt=prompt,
                response=response, code=code))
    judged = judge(attempts, {p.id: p for p in problems}, box, sandbox_cfg)
    if out_dir is not None:  # the candidates behind the score, for inspection
        write_rows(Path(out_dir) / "attempts.jsonl", judged)
    outcomes = []
    for problem in problems:
        mine = [a for a in judged if a.problem_id == problem.id]
        outcomes.append(ProblemOutcome(
            problem_id=problem.id, greedy_passed=mine[0].ok, greedy_status=mine[0].status,
            samples=len(mine) - 1, samples_passed=sum(a.ok for a in mine[1:])))
    pass_k = {}
    if cfg.n_samples > 1:
        pass_k = {k: sum(pass_at_k(o.samples, o.samples_passed, k) for o in outcomes)
                  / len(outcomes) for k in cfg.k}
    return EvalResult(policy_id=policy_id, suite=suite, problems=len(problems),
                      pass1_greedy=sum(o.greedy_passed for o in outcomes) / len(outcomes),
                      pass_at_k=pass_k, outcomes=outcomes)


def decide(new: EvalResult, previous: EvalResult, tolerance: float) -> Decision:
    """Promote when new greedy pass@1 ≥ previous − tolerance, on the same problems."""
    new_ids = [o.problem_id for o in new.outcomes]
    if new_ids != [o.problem_id for o in previous.outcomes]:
        raise ValueError("the two evaluations cover different problems: compare policies on the "
                         "same evaluation set (same problems.eval, eval_n and eval_seed)")
    before = {o.problem_id: o.greedy_passed for o in previous.outcomes}
    gained = [o.problem_id for o in new.outcomes if o.greedy_passed and not before[o.problem_id]]
    lost = [o.problem_id for o in new.outcomes if before[o.problem_id] and not o.greedy_passed]
    promoted = new.pass1_greedy >= previous.pass1_greedy - tolerance - 1e-12
    comparison = (f"greedy pass@1 {new.pass1_greedy:.3f} vs {previous.pass1_greedy:.3f} "
                  f"(tolerance {tolerance:g}; {len(gained)} problems gained, {len(lost)} lost, "
                  f"of {new.problems})")
    if new.policy_id == previous.policy_id:
        promoted, reason = False, "training left the policy unchanged: nothing to promote"
    elif promoted:
        reason = "not worse than the previous policy beyond the tolerance: " + comparison
    else:
        reason = "worse than the previous policy beyond the tolerance, which is kept: " \
                 + comparison
    return Decision(promoted=promoted, reason=reason, new_policy=new.policy_id,
                    previous_policy=previous.policy_id, new_pass1=new.pass1_greedy,
                    previous_pass1=previous.pass1_greedy, tolerance=tolerance, gained=gained,
                    lost=lost)


# ----------------------------------------------------------------------------------------------
# Prefect tasks


@task(name="evaluate", task_run_name="evaluate[policy={policy.id}]", retries=1,
      retry_delay_seconds=5, retry_condition_fn=engine_failed, **cached())
def evaluate_task(policy: Policy, problems: Shard, suite: str, evaluation: EvaluationConfig,
                  sampling: SamplingConfig, sandbox: SandboxConfig, dtype: str,
                  out_dir: str) -> EvalResult:
    """Evaluate one policy. Its key holds no cycle: a policy evaluated as cycle n's new policy is
    served from the cache as cycle n+1's starting point."""
    from tasks.engines import open_backend

    rows = problems.read(Problem)
    backend = open_backend(policy, sampling.backend, dtype)
    with open_sandbox(sandbox) as box:
        result = evaluate(rows, backend, policy.id, suite, evaluation, sampling, sandbox, box,
                          out_dir)
    write_json(Path(out_dir) / "result.json", result.model_dump(mode="json"))
    return result


@task(name="promote", **cached())
def promote_task(ctx: CycleContext, new: EvalResult, previous: EvalResult,
                 tolerance: float) -> Decision:
    decision = decide(new, previous, tolerance)
    write_json(Path(ctx.stage_dir("promote")) / "decision.json",
               decision.model_dump(mode="json"))
    return decision
