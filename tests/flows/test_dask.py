"""Scale-out: a cycle's shards on a Dask cluster (prefect-dask's DaskTaskRunner, a local cluster
of 2 worker processes, given by address or started by the cycle itself) give the same outputs as
the default thread pool."""

import logging
import os

import pytest

from tests.flows.test_faults import outputs

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("prefect_api")]

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def test_a_cycle_on_a_dask_cluster_gives_the_outputs_of_the_default_runner(toy, tmp_path,
                                                                          request):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    from flows.lineage import store_tag
    from flows.self_training import self_training

    # the transformers engine: OpenVINO's int8 kernels may flip the toy model's near-tied tokens
    # when two pipelines share the cores (the thread pool runs both shards in one process), which
    # would make the runners differ for a reason that is not theirs (tasks/engines.py)
    common = ["run.cycles=1", "sampling.shards=2", "sampling.backend=hf"]
    threads = self_training(config=str(toy / "toy.yaml"),
                            overrides=common + [f"run.store={tmp_path / 'threads'}"])
    from dask import config as dask_config
    from distributed import Client, LocalCluster, get_task_stream

    # distributed's nanny sets OMP_NUM_THREADS=1 (and more) in this process's environment before
    # spawning workers, and leaves it there: later tests' child processes would train on one
    # thread. Put it back as it was afterwards.
    environ = dict(os.environ)
    request.addfinalizer(lambda: (os.environ.clear(), os.environ.update(environ)))

    # a cluster of our own, so the test can see what its workers ran; its workers keep this
    # process's thread settings (distributed would give each OMP_NUM_THREADS=1), as
    # `run.task_runner: dask` does for its own local cluster: the toy model's right and wrong
    # answers are near-ties, which a different thread count in the kernels can flip
    with dask_config.set({"distributed.nanny.pre-spawn-environ": {}}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster, \
            Client(cluster) as client, get_task_stream(client) as stream:
        dask = self_training(config=str(toy / "toy.yaml"),
                             overrides=common + [f"run.store={tmp_path / 'dask'}",
                                                 "run.task_runner=dask",
                                                 f"run.dask_address={cluster.scheduler_address}"])
        workers = set(client.scheduler_info()["workers"])
    ran = stream.data
    # 2 shards x (sample, execute, debug): each a task the cluster ran
    assert len(ran) >= 6, ran
    # the two shards ran side by side, one on each worker (each has one thread)
    assert len(workers) == 2 and {t["worker"] for t in ran} == workers, ran
    assert threads[0].run_id == dask[0].run_id  # the runner is not part of the run's identity

    expected, got = outputs(tmp_path / "threads"), outputs(tmp_path / "dask")
    assert {k for k in expected if k.startswith("execute/")} == {
        "execute/attempts.1.jsonl", "execute/attempts.2.jsonl"}  # two shards, each its own task
    fixes = [k for k in expected if k.startswith("debug/")]
    # each shard has its debug task; the toy model's samples (which depend on the machine's float
    # kernels) decide which shards have failures to debug, and at least one has
    assert len(fixes) == 2 and any(expected[k] for k in fixes), fixes
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == expected[key], f"{key} differs on Dask"

    # `run.dask_address: null`: the cycle starts a local cluster of `run.dask_workers` processes
    # of its own, and leaves this process's thread settings alone (distributed's nanny would
    # write OMP_NUM_THREADS=1 into it, and training here would then run on one thread)
    os.environ.clear()
    os.environ.update(environ)
    started = []
    handler = logging.Handler()
    handler.emit = lambda record: started.append(record.getMessage())
    runner_log = logging.getLogger("prefect.task_runner")
    runner_log.addHandler(handler)
    try:
        local = self_training(config=str(toy / "toy.yaml"),
                              overrides=common + [f"run.store={tmp_path / 'local'}",
                                                  "run.task_runner=dask", "run.dask_workers=2"])
    finally:
        runner_log.removeHandler(handler)
    assert any("LocalCluster" in m for m in started), started
    assert {k: os.environ.get(k) for k in THREAD_VARIABLES} == \
        {k: environ.get(k) for k in THREAD_VARIABLES}
    assert local[0].run_id == threads[0].run_id
    got = outputs(tmp_path / "local")
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == expected[key], f"{key} differs on the cycle's own local cluster"

    with get_client(sync_client=True) as api:
        runs = api.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[f"run:{dask[0].run_id}",
                                         store_tag(tmp_path / "dask")])))
    assert {r.state.name for r in runs} == {"Completed"}
