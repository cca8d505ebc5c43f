"""Experiment tracking in MLflow (config section `tracking`): runs a person can compare side by
side, offline.

    MLflow experiment `tracking.experiment`
      run <run id>                 params: the resolved config (`section.key`); tags: the run id,
                                   the store, the config hash, the start policy, the Prefect flow
                                   run (id and URL); metrics at step = cycle (0: the start policy)
        run <run id>-cycle-<n>     child run: the cycle's training curves (trl's log, step = the
                                   optimizer step; live while it trains), its numbers, and a
                                   link to the cycle's Prefect summary
    registered model `tracking.model_name` (default `autodidact-<run.name>`)
      one version per policy (tag `policy_id`; source: its adapter directory, or the base model's)
      alias `champion`: moved to the trained policy when a cycle promotes it
      alias `challenger`: the policy the next cycle trains from

The default URI is a SQLite database under `$AUTODIDACT_HOME/mlflow` (artifacts beside it);
`autodidact tracking` serves its UI on loopback. A run resumed after a crash reopens its MLflow
run (found by its tags) and logs only the cycles it has not logged. The training curves grow
live while a cycle trains (the training stage hands each step to tasks/progress.py's step
observers); a training served from the cache, or one from before a crash, is logged from its
adapter's manifest (`log_history`) when the cycle ends. Tracking is extra, like the
lineage: a failure here is a warning in the log, never the run's failure.

Metrics of a cycle (step = cycle): `dev/pass1_greedy`, `dev/pass1_sampled`, `test/...` (the
policy the cycle ended with; step 0 is the start policy), `<split>/score_diff_vs_start` and
`_vs_cycle_start` with their 95% CI bounds and sign-flip p, `bstar/*` (pass@k, distinct passing
programs, reward AUC, balance, precision), `pairs/<kind>` and `pairs/total`, `train/*` (the
epoch means), `attempts`, `fixed_by_debug`, `promoted` (0 or 1), `explore/scale`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from tasks.paths import home

TAG = "autodidact."  # our tags' prefix
PARAM_LIMIT = 6000  # MLflow's longest parameter value (characters)
BATCH = 100  # params (and tags) per log_batch call; metrics go 1000 at a time


def default_uri() -> str:
    return f"sqlite:///{(home() / 'mlflow' / 'mlflow.db').resolve()}"


def artifact_root() -> Path:
    return home() / "mlflow" / "artifacts"


def tracking_uri(cfg) -> str:
    """`tracking.uri`, else the SQLite database under `$AUTODIDACT_HOME/mlflow` (created with its
    directory)."""
    if cfg.tracking.uri:
        return cfg.tracking.uri
    (home() / "mlflow").mkdir(parents=True, exist_ok=True)
    return default_uri()


def ui_base(cfg) -> str:
    uri = cfg.tracking.uri or ""
    return (uri if uri.startswith(("http://", "https://")) else cfg.tracking.ui_url).rstrip("/")


def model_name(cfg) -> str:
    return cfg.tracking.model_name or f"autodidact-{cfg.run.name}"


def _log():
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # outside a flow run
        return logging.getLogger(__name__)


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """`{"a": {"b": 1}}` -> `{"a.b": "1"}`; lists as JSON. Values longer than MLflow takes are
    cut, and say so."""
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    text = data if isinstance(data, str) else json.dumps(data, sort_keys=True)
    if len(text) > PARAM_LIMIT:
        text = text[:PARAM_LIMIT - 20] + " ... (cut by MLflow)"
    return {prefix.rstrip("."): text}


def _key(text: str) -> str:
    """A metric name MLflow takes: letters, digits and `_-./` (spaces and `@` become `_`)."""
    return "".join(c if c.isalnum() or c in "_-./" else "_" for c in text)


def cycle_metrics(r) -> dict[str, float]:
    """The numbers of one cycle (a `CycleResult`), by metric name."""
    m = r.monitoring
    out: dict[str, float] = {
        "dev/pass1_greedy": r.dev.pass1_greedy, "test/pass1_greedy": r.test.pass1_greedy,
        "attempts": r.attempts, "fixed_by_debug": r.fixed_by_debug,
        "promoted": float(r.promoted), "explore/scale": r.exploration.scale,
        "bstar/distinct_passing": m.distinct_passing, "bstar/balance": m.balance,
        "bstar/candidates_per_problem": m.candidates_per_problem,
        "pairs/total": sum(r.pairs.values()), "pairs/distinct_chosen": r.pairs_distinct_chosen,
        "pairs/cross_prompt": r.pairs_cross_prompt,
        "pairs/dropped": sum(r.pairs_dropped.values()),
        "memory/written": r.memory.written if r.memory else 0,
    }
    for split, result in (("dev", r.dev), ("test", r.test)):
        if result.pass1_sampled is not None:
            out[f"{split}/pass1_sampled"] = result.pass1_sampled
    for k, v in m.pass_at_k.items():
        out[f"bstar/pass_at_{k}"] = v
    for name, value in (("reward_auc", m.reward_auc), ("precision", m.precision)):
        if value is not None:
            out[f"bstar/{name}"] = value
    for kind, n in r.pairs.items():
        out[f"pairs/{kind}"] = n
    for name, value in r.training.items():
        out[f"train/{name}"] = value
    for row in r.report:
        against = _key(str(row.get("against", "")).replace(" ", "_"))
        for column, name in (("score diff", "score_diff"), ("CI low", "score_diff_ci_low"),
                             ("CI high", "score_diff_ci_high"), ("p (sign flip)", "p_sign_flip")):
            if isinstance(row.get(column), (int, float)):
                out[f"{row['split']}/{name}_vs_{against}"] = row[column]
    return {_key(k): float(v) for k, v in out.items()}


def start_metrics(r) -> dict[str, float]:
    """Step 0: the run's start policy on dev and test."""
    out = {"dev/pass1_greedy": r.start_dev.pass1_greedy,
           "test/pass1_greedy": r.start_test.pass1_greedy}
    for split, result in (("dev", r.start_dev), ("test", r.start_test)):
        if result.pass1_sampled is not None:
            out[f"{split}/pass1_sampled"] = result.pass1_sampled
    return out


def training_curves(adapter_dir: str | Path) -> list[tuple[int, dict[str, float]]]:
    """(step, numbers) of every logging step trl recorded, from the adapter's manifest
    (`log_history`; adapters trained before it was kept have none)."""
    path = Path(adapter_dir) / "manifest.json"
    if not path.exists():
        return []
    history = json.loads(path.read_text()).get("log_history") or []
    return [(int(entry["step"]), {_key(f"train/{k}"): float(v) for k, v in entry.items()
                                  if k != "step"})
            for entry in history if "step" in entry]


class Tracker:
    """One run's MLflow run, its cycles' child runs and the registry. Every public method logs
    a warning instead of raising: tracking never fails the run."""

    def __init__(self, cfg, run_id: str, store: Path):
        self.cfg = cfg
        self.run_id = run_id
        self.store = str(Path(store).resolve())
        self.client = None
        self.experiment_id: str | None = None
        self.mlflow_run: str | None = None

    # -- the run

    @classmethod
    def open(cls, cfg, run_id: str, store: Path, meta: dict,
             flow_run: tuple[str, str] | None = None) -> "Tracker | None":
        """The run's MLflow run, created (with the config as params) or reopened; None when
        tracking is off or MLflow cannot be reached (logged). `flow_run`: (id, UI URL) of the
        Prefect flow run, tagged on the MLflow run."""
        if not cfg.tracking.enabled:
            return None
        tracker = cls(cfg, run_id, store)
        try:
            tracker._open(meta, flow_run)
        except Exception as exc:
            _log().warning("tracking: MLflow at %s not used for run %s: %s",
                           cfg.tracking.uri or default_uri(), run_id, exc)
            return None
        return tracker

    def _open(self, meta: dict, flow_run: tuple[str, str] | None) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Param, RunTag

        uri = tracking_uri(self.cfg)
        self.client = client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        name = self.cfg.tracking.experiment
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            location = None
            if not self.cfg.tracking.uri:
                artifact_root().mkdir(parents=True, exist_ok=True)
                location = artifact_root().resolve().as_uri()
            self.experiment_id = client.create_experiment(name, artifact_location=location)
        else:
            self.experiment_id = experiment.experiment_id
        found = self._find({"run_id": self.run_id, "store": self.store, "cycle": None})
        tags = {f"{TAG}run_id": self.run_id, f"{TAG}store": self.store,
                f"{TAG}config": self.cfg.run.name, f"{TAG}config_hash": meta.get("config_hash", ""),
                f"{TAG}start_policy": meta.get("start_policy_id", ""),
                f"{TAG}run_dir": str(Path(self.store) / self.run_id)}
        if flow_run:
            tags.update({"prefect.flow_run_id": flow_run[0], "prefect.flow_run_url": flow_run[1]})
            tags["mlflow.note.content"] = (
                f"autodidact run `{self.run_id}`: [Prefect flow run]({flow_run[1]}); files in "
                f"`{Path(self.store) / self.run_id}` (its `index.md` lists them)")
        if found is None:
            run = client.create_run(self.experiment_id, run_name=self.run_id, tags=tags)
            self.mlflow_run = run.info.run_id
            params = [Param(k, v) for k, v in flatten(self.cfg.model_dump(mode="json")).items()]
            for i in range(0, len(params), BATCH):
                client.log_batch(self.mlflow_run, params=params[i:i + BATCH])
        else:  # a resumed run: same config (the run checked it), the new flow run's tags
            self.mlflow_run = found
            client.log_batch(found, tags=[RunTag(k, v) for k, v in tags.items()])
            client.update_run(found, status="RUNNING")

    def _find(self, tags: dict[str, Any], parent: str | None = None) -> str | None:
        clauses = [f"tags.`{TAG}{k}` = '{v}'" for k, v in tags.items() if v is not None]
        if parent:
            clauses.append(f"tags.`mlflow.parentRunId` = '{parent}'")
        runs = self.client.search_runs([self.experiment_id], filter_string=" and ".join(clauses),
                                       max_results=50)
        if "cycle" in tags and tags["cycle"] is None:  # the run itself, not a cycle's child
            runs = [r for r in runs if f"{TAG}cycle" not in r.data.tags]
        return runs[0].info.run_id if runs else None

    @property
    def url(self) -> str:
        """The MLflow UI page of the run."""
        return f"{ui_base(self.cfg)}/#/experiments/{self.experiment_id}/runs/{self.mlflow_run}"

    def finish(self, failed: bool = False) -> None:
        try:
            self.client.set_terminated(self.mlflow_run, status="FAILED" if failed else "FINISHED")
        except Exception as exc:
            _log().warning("tracking: run %s not closed in MLflow: %s", self.run_id, exc)

    # -- a cycle

    def cycle(self, r, summary_url: str | None = None) -> None:
        """Log a finished cycle: its metrics at step = cycle (and the start policy's at step 0
        with cycle 1), a child run with its training curves, the policies in the registry and
        the aliases the decision moved. A cycle logged before (a resumed run) is skipped."""
        try:
            self._cycle(r, summary_url)
        except Exception as exc:
            _log().warning("tracking: cycle %d of run %s not logged to MLflow: %s", r.cycle,
                           self.run_id, exc)

    def _cycle(self, r, summary_url: str | None) -> None:
        from mlflow.entities import Metric

        client = self.client
        logged = {m.step for m in client.get_metric_history(self.mlflow_run, "promoted")}
        if r.cycle not in logged:
            now = int(time.time() * 1000)
            metrics = [Metric(k, v, now, r.cycle) for k, v in cycle_metrics(r).items()]
            if r.cycle == 1:
                metrics += [Metric(k, v, now, 0) for k, v in start_metrics(r).items()]
            self._log_metrics(self.mlflow_run, metrics)
        child = self._child(r, summary_url)
        self._register(r, child)

    def _log_metrics(self, run: str, metrics: list) -> None:
        """`metrics` on `run`, 1000 a call (MLflow's batch limit)."""
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(run, metrics=metrics[i:i + 1000])

    def _child_run(self, cycle: int, challenger_id: str, champion_id: str) -> str:
        """The cycle's child run, found by its tags or created."""
        found = self._find({"run_id": self.run_id, "store": self.store, "cycle": str(cycle)},
                           parent=self.mlflow_run)
        if found is not None:
            return found
        tags = {"mlflow.parentRunId": self.mlflow_run, f"{TAG}run_id": self.run_id,
                f"{TAG}store": self.store, f"{TAG}cycle": str(cycle),
                f"{TAG}challenger": challenger_id, f"{TAG}champion": champion_id}
        return self.client.create_run(self.experiment_id, tags=tags,
                                      run_name=f"{self.run_id}-cycle-{cycle}").info.run_id

    @contextlib.contextmanager
    def live(self, cycle: int, challenger_id: str, champion_id: str):
        """While the block runs (the cycle), each training step's numbers go to the cycle's
        child run as they are logged: the curves grow in the MLflow UI during training."""
        from tasks.progress import observe_steps

        try:
            child = self._child_run(cycle, challenger_id, champion_id)
        except Exception as exc:
            _log().warning("tracking: no live curves for cycle %d of run %s: %s", cycle,
                           self.run_id, exc)
            yield
            return

        def log_step(stage: str, step: int, numbers: dict[str, float]) -> None:
            from mlflow.entities import Metric

            if stage != "train":
                return
            now = int(time.time() * 1000)
            self.client.log_batch(child, metrics=[Metric(_key(f"train/{k}"), v, now, step)
                                                  for k, v in numbers.items() if k != "step"])

        with observe_steps(log_step):
            yield

    def _child(self, r, summary_url: str | None) -> str:
        """The cycle's child run, finished: its curves (from the adapter's manifest, when they
        were not logged live: a cached or earlier training), its numbers and its links."""
        from mlflow.entities import Metric, RunTag

        client = self.client
        child = self._child_run(r.cycle, r.started_from.id, r.champion.id)
        now = int(time.time() * 1000)
        metrics = []
        if r.trained is not None and not client.get_metric_history(child, "train/loss"):
            metrics += [Metric(k, v, now, step) for step, numbers in
                        training_curves(r.trained.adapters[-1]) for k, v in numbers.items()]
        if not client.get_metric_history(child, "promoted"):
            metrics += [Metric(k, v, now, r.cycle) for k, v in cycle_metrics(r).items()]
        self._log_metrics(child, metrics)
        tags = {f"{TAG}decision": r.decision[:5000], f"{TAG}cycle_dir": r.directory}
        if r.trained is not None:
            tags[f"{TAG}trained"] = r.trained.id
        if summary_url:
            tags["prefect.cycle_summary_url"] = summary_url
            tags["mlflow.note.content"] = (f"cycle {r.cycle} of `{self.run_id}`: "
                                           f"[its Prefect summary]({summary_url})")
        client.log_batch(child, tags=[RunTag(k, v) for k, v in tags.items()])
        client.set_terminated(child, status="FINISHED")
        return child

    # -- the registry

    def _register(self, r, child: str) -> None:
        from mlflow.exceptions import MlflowException

        client = self.client
        name = model_name(self.cfg)
        try:
            model = client.get_registered_model(name)
        except MlflowException:
            model = client.create_registered_model(
                name, description=f"autodidact policies of config `{self.cfg.run.name}`: one "
                                  "version per policy; aliases `champion` (the promoted policy) "
                                  "and `challenger` (the policy the next cycle trains from)")
        aliases = dict(model.aliases or {})
        start = self._version(name, r.started_from, self.mlflow_run, None)
        champion = self._version(name, r.champion, self.mlflow_run, None)
        if r.trained is not None:
            self._version(name, r.trained, child, r)
        if "champion" not in aliases:
            client.set_registered_model_alias(name, "champion", champion)
        if "challenger" not in aliases:
            client.set_registered_model_alias(name, "challenger", start)
        if r.promoted:
            client.set_registered_model_alias(name, "champion",
                                              self._version(name, r.next_champion, child, r))
        client.set_registered_model_alias(name, "challenger",
                                          self._version(name, r.next_challenger, child, r))

    def _version(self, name: str, policy, mlflow_run: str, r) -> str:
        """The model version of `policy` (made once, tagged with its id)."""
        client = self.client
        found = client.search_model_versions(f"name='{name}' and tags.policy_id = '{policy.id}'")
        if found:
            return str(found[0].version)
        source = policy.adapters[-1] if policy.adapters else policy.base
        tags = {"policy_id": policy.id, "base": policy.base,
                "adapters": json.dumps(list(policy.adapters))}
        description = f"policy `{policy.id}`: base `{policy.base}`"
        if r is not None and r.trained is not None and policy.id == r.trained.id:
            tags.update({"run_id": self.run_id, "cycle": str(r.cycle),
                         "parent_policy": r.started_from.id})
            description += (f", trained in cycle {r.cycle} of `{self.run_id}` from "
                            f"`{r.started_from.id}`; its model card is `README.md` in {source}")
        version = client.create_model_version(name, source=str(source), run_id=mlflow_run,
                                              tags=tags, description=description)
        return str(version.version)


def serve(cfg, host: str, port: int) -> int:
    """`autodidact tracking`: the MLflow UI of `tracking.uri` (the local database by default)
    on `host:port`. This process becomes the server (exec), so Ctrl-C or a signal stops it."""
    import os
    import sys

    uri = tracking_uri(cfg)
    artifact_root().mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
               "--default-artifact-root", artifact_root().resolve().as_uri(),
               "--host", host, "--port", str(port), "--workers", "1"]
    print(f"MLflow UI: http://{host}:{port}  (tracking URI {uri}; Ctrl-C stops it)", flush=True)
    os.execv(sys.executable, command)
    return 0  # not reached: exec replaced this process
