"""prefect.yaml: each deployment's entrypoint is a flow of ours, its parameters bind to the flow's
signature and name a config that loads, and the nightly schedule is 02:00 every day."""

import importlib
import inspect
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def deployments():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return {d["name"]: d for d in spec["deployments"]}


def test_entrypoints_are_flows_and_parameters_bind():
    from prefect import Flow

    from tasks.config import load_config

    found = deployments()
    assert set(found) == {"nightly-self-training", "evaluate"}
    for name, d in found.items():
        path, func = d["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, func)
        assert isinstance(flow, Flow), name
        inspect.signature(flow.fn).bind(**d.get("parameters", {}))
        load_config(d["parameters"]["config"])
        assert d["work_pool"]["name"] == "autodidact-process"


def test_nightly_runs_at_two_and_continues_from_the_promoted_policy():
    import asyncio
    from datetime import datetime, timezone

    from prefect.server.schemas.schedules import CronSchedule

    nightly = deployments()["nightly-self-training"]
    assert nightly["entrypoint"] == "flows/self_training.py:self_training"
    assert nightly["parameters"]["start"] == "promoted"
    (schedule,) = nightly["schedules"]
    cron = CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    start = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
    runs = asyncio.run(cron.get_dates(n=2, start=start))
    assert [(r.day, r.hour, r.minute) for r in runs] == [(23, 2, 0), (24, 2, 0)]
