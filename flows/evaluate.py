"""Evaluate any policy on any suite: `autodidact evaluate`, or the `evaluate` deployment.

The policy is `policy.base` plus the adapters given (oldest first), e.g. the adapter a cycle wrote
to `<store>/<run>/cycle-<n>/train/<inputs hash>/adapter` (its path is also in the cycle's
`summary.json`, under `trained.adapters`). `split="test"` evaluates on `problems.test` (or the
suite given); `split="dev"` on the run's dev problems (`problems.dev`, `dev_n`, `dev_seed`, minus
near-duplicates of test, as a run draws them). The result (and every judged candidate) goes to
`<store>/evaluations/<policy id>-<problems hash>/`, and the task is content-keyed like the
cycle's: evaluating the same policy on the same problems twice is served from the cache.

The flow run is named `evaluate-<suite>-<split>-<policy id>` (a file suite by its file name) and
tagged `suite:<suite>`, `split:<split>` and `policy:<policy id>`, as are its task runs; the result
it returns carries the directory it wrote (`Evaluation.directory`).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, tags

from flows.inputs import adapter_problem, check_device
from flows.lineage import policy_tag
from tasks.config import load_config
from tasks.evaluation import EvalResult, evaluate_task
from tasks.policy import base_policy
from tasks.problems.records import select
from tasks.problems.split import load_suite, split_problems
from tasks.problems.examples import show_examples
from tasks.records import digest, write_rows
from tasks.schema import evaluation_style


class Evaluation(EvalResult):
    """An evaluation's result, and where it is."""

    directory: str
    """`<store>/evaluations/<policy id>-<problems hash>/`: result.json, problems.jsonl and every
    judged candidate."""


def suite_label(suite: str) -> str:
    """A suite as flow run names and tags show it: its name, or its file's name."""
    from tasks.names import SUITES

    name = suite.strip().lower()
    return name if name in SUITES else Path(suite).name


def _first_name() -> str:
    """The flow run's name until the policy is known: `evaluate-<suite>-<split>`."""
    from prefect.runtime import flow_run

    params = flow_run.parameters
    split = params.get("split") or "test"
    suite = params.get("suite")
    return "-".join(["evaluate"] + ([suite_label(suite)] if suite else []) + [split])


def _name_flow_run(name: str, labels: list[str]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    with get_client(sync_client=True) as client:
        mine = client.read_flow_run(flow_run.id)
        client.update_flow_run(flow_run.id, name=name, tags=sorted(set(mine.tags) | set(labels)))


@flow(name="evaluate", flow_run_name=_first_name)
def evaluate_flow(config: str = "default", overrides: list[str] | None = None,
                  adapters: list[str] | None = None, suite: str | None = None,
                  n: int | None = None, split: str = "test") -> Evaluation:
    log = get_run_logger()
    cfg = load_config(config, tuple(overrides or ()))
    check_device(cfg.policy.device)  # a deployment's config is checked here, not by the CLI
    policy = base_policy(cfg.policy.base)
    for adapter in adapters or ():
        if (problem := adapter_problem(adapter)) is not None:
            raise FileNotFoundError(problem)
        policy = policy.with_adapter(Path(adapter).expanduser().resolve())
    if split not in ("dev", "test"):
        raise ValueError(f"split {split!r}: use 'dev' or 'test'")
    if split == "dev":
        from tasks.memory import Embedder

        if suite is not None:
            raise ValueError("--suite applies to the test split; the dev split is the run's "
                             "(problems.dev, dev_n, dev_seed)")
        embed = Embedder(cfg.memory.embedder).embed if cfg.problems.near_duplicate else None
        suite = cfg.problems.dev
        problems = split_problems(cfg.problems, embed).dev[:n]
    else:
        suite = suite or cfg.problems.test
        problems = select(load_suite(suite), n or cfg.problems.test_n, cfg.problems.test_seed)
        if cfg.problems.show_example:  # MBPP shows its first case here as in a run
            problems = show_examples(problems)[0]
    store = cfg.run.store_dir()
    # one directory per policy, problems (their text: with or without examples) and format
    key = digest([p.model_dump(mode="json") for p in problems],
                 evaluation_style(cfg.evaluation, cfg.sampling))
    where = store / "evaluations" / f"{policy.id}-{key[:8]}"
    label = suite_label(suite)
    labels = [f"suite:{label}", f"split:{split}", policy_tag(policy.id)]
    _name_flow_run(f"evaluate-{label}-{split}-{policy.id}", labels)
    shard = write_rows(where / "problems.jsonl", problems)
    log.info("evaluating policy %s on %d problems of %s", policy.id, len(problems), suite)
    with tags(*labels):
        result = evaluate_task.with_options(result_storage=store / ".results")(
            policy, shard, suite, split, cfg.evaluation, cfg.sampling, cfg.sandbox,
            cfg.policy.dtype, str(where), cfg.policy.device)
    log.info("greedy pass@1 %.3f, sampled pass@1 %s %s", result.pass1_greedy,
             "-" if result.pass1_sampled is None else f"{result.pass1_sampled:.3f}",
             " ".join(f"pass@{k} {v:.3f}" for k, v in result.pass_at_k.items()))
    log.info("files: %s", where)
    return Evaluation(**result.model_dump(), directory=str(where))
