"""prefect.yaml: each deployment's entrypoint is a flow of ours, its parameters bind to the flow's
signature and name a config that loads, and the nightly schedule is 02:00 every day. The Docker
and Kubernetes templates are checked against what Prefect 3.8.8 accepts (the file's schema, the
work pools' job variables), never scheduled by default, and consistent with where the sandbox
engine and AUTODIDACT_HOME expect things. Nothing here starts a worker or a container."""

import importlib
import inspect
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROCESS = {"nightly-self-training": "autodidact-process", "evaluate": "autodidact-process"}
TEMPLATES = {"nightly-self-training-docker": "autodidact-docker",
             "nightly-self-training-k8s": "autodidact-k8s"}
K8S_TEMPLATE = ROOT / "deploy" / "kubernetes-gpu-base-job-template.json"
CODE = "/opt/autodidact"  # where the flow-run image holds the checkout
RUNNER = f"{CODE}/sandbox/runner"


def spec():
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())


def deployments():
    return {d["name"]: d for d in spec()["deployments"]}


def shipped_worker_template(collection: str, worker: str) -> dict:
    """The default base job template Prefect 3.8.8 uses for a worker type it has not installed
    (`prefect work-pool create --type ...`)."""
    import prefect

    views = Path(prefect.__file__).parent / "server/api/collections_data/views"
    metadata = json.loads((views / "aggregate-worker-metadata.json").read_text())
    return metadata[collection][worker]["default_base_job_configuration"]


def check_job_variables(job_variables: dict, template: dict) -> None:
    """What the server checks when a deployment is created (server/api/validation.py)."""
    from prefect.utilities.schema_tools import validate

    properties = template["variables"]["properties"]
    assert set(job_variables) <= set(properties), set(job_variables) - set(properties)
    validate(job_variables, template["variables"], raise_on_error=True, preprocess=True,
             ignore_required=True, allow_none_with_default=True)


def test_entrypoints_are_flows_and_parameters_bind():
    from prefect import Flow

    from tasks.config import load_config

    found = deployments()
    assert set(found) == set(PROCESS) | set(TEMPLATES)
    for name, d in found.items():
        path, func = d["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, func)
        assert isinstance(flow, Flow), name
        inspect.signature(flow.fn).bind(**d.get("parameters", {}))
        load_config(d["parameters"]["config"])
        assert d["work_pool"]["name"] == {**PROCESS, **TEMPLATES}[name]


def test_prefect_deploy_reads_every_deployment():
    # `prefect deploy` skips the whole file, with a warning only, when this model rejects it
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(spec())
    assert {d.name for d in model.deployments} == set(PROCESS) | set(TEMPLATES)


def test_nightly_runs_at_two_and_continues_from_the_promoted_policy():
    import asyncio
    from datetime import datetime, timezone

    from prefect.server.schemas.schedules import CronSchedule

    nightly = deployments()["nightly-self-training"]
    assert nightly["entrypoint"] == "flows/self_training.py:self_training"
    assert nightly["parameters"]["start"] == "promoted"
    (schedule,) = nightly["schedules"]
    assert schedule["active"] is True
    cron = CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    start = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
    runs = asyncio.run(cron.get_dates(n=2, start=start))
    assert [(r.day, r.hour, r.minute) for r in runs] == [(23, 2, 0), (24, 2, 0)]


def test_templates_are_the_nightly_flow_registered_paused_running_the_image_code():
    found = deployments()
    nightly = found["nightly-self-training"]
    for name in TEMPLATES:
        d = found[name]
        assert d["entrypoint"] == nightly["entrypoint"]
        assert d["parameters"] == nightly["parameters"]
        assert d["concurrency_limit"] == 1
        (schedule,) = d["schedules"]
        assert schedule["active"] is False, f"{name} would be scheduled by `prefect deploy`"
        assert (schedule["cron"], schedule["timezone"]) == ("0 2 * * *", "UTC")
        (step,) = d["pull"]
        assert step == {"prefect.deployments.steps.set_working_directory": {"directory": CODE}}
        assert d["work_pool"]["job_variables"]["command"].startswith(f"{CODE}/.venv/bin/python ")


def test_docker_template_fits_the_docker_work_pool():
    job_variables = deployments()["nightly-self-training-docker"]["work_pool"]["job_variables"]
    check_job_variables(job_variables, shipped_worker_template("prefect-docker", "docker"))
    mounts = {}
    for volume in job_variables["volumes"]:
        host, container, *_ = volume.split(":")
        mounts[container] = host
    assert mounts["/var/run/docker.sock"] == "/var/run/docker.sock"
    # the sandbox engine bind-mounts the runner from its own path, resolved by the host's engine
    assert mounts[RUNNER] == RUNNER
    home = job_variables["env"]["AUTODIDACT_HOME"]
    assert home in mounts


def test_k8s_template_renders_a_gpu_job_with_the_shared_home_and_the_node_docker():
    from prefect.server.schemas.actions import validate_base_job_template
    from prefect.utilities.templating import apply_values
    from prefect.workers.base import BaseJobConfiguration

    template = json.loads(K8S_TEMPLATE.read_text())
    validate_base_job_template(template)
    shipped = shipped_worker_template("prefect-kubernetes", "kubernetes")
    # Prefect's own variables are unchanged; the template only adds its own
    for key, value in shipped["variables"]["properties"].items():
        assert template["variables"]["properties"][key] == value, key
    job_variables = deployments()["nightly-self-training-k8s"]["work_pool"]["job_variables"]
    check_job_variables(job_variables, template)

    # what the worker does before building its configuration (workers/base.py)
    values = BaseJobConfiguration._get_base_config_defaults(template["variables"]["properties"])
    values.update(job_variables)
    rendered = apply_values(template["job_configuration"], values)
    manifest = rendered["job_manifest"]
    assert "{{" not in json.dumps(manifest)
    pod = manifest["spec"]["template"]["spec"]
    # what the Kubernetes worker requires of a manifest (_get_base_job_manifest)
    assert (pod["parallelism"], pod["completions"], pod["restartPolicy"]) == (1, 1, "Never")
    job = pod["containers"][0]
    assert job["name"] == "prefect-job"
    assert job["resources"]["limits"]["nvidia.com/gpu"] == job_variables["gpu_count"]
    assert job["args"] == job_variables["command"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in job["volumeMounts"]}
    home = job_variables["env"]["AUTODIDACT_HOME"]
    assert volumes[mounts[home]]["persistentVolumeClaim"]["claimName"] == job_variables["home_pvc"]
    assert volumes[mounts["/var/run/docker.sock"]]["hostPath"]["path"] == "/var/run/docker.sock"
    assert volumes[mounts[RUNNER]]["hostPath"]["path"] == RUNNER
    (init,) = pod["initContainers"]
    assert init["image"] == job_variables["image"]
    assert f"{RUNNER}/." in init["command"][-1]
