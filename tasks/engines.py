"""Engines: a policy loaded behind the generation interface, by the backend `sampling.backend`
names.

  "hf"        transformers `generate` on the policy's weights (adapters merged), batched; the
              reference, and the engine on a CUDA GPU (`policy.device`, tasks/device.py): plain
              batched `generate` with its dynamic KV cache (a static cache and vLLM were not
              measured on a GPU, so neither is used).
  "openvino"  OpenVINO GenAI's continuous-batching pipeline on an int8 copy of the policy. A
              finished sequence leaves the batch and the next one joins, the samples of a prompt
              share its prefill, and stop strings end a body as soon as it is complete. On 2 CPU
              cores it writes candidates about 6x faster than "hf" at the same pass rate
              (`benchmarks/sampling_throughput.py`).

The int8 copy is made once per policy and kept in `$AUTODIDACT_HOME/models/openvino/<policy id>/`:
the adapters are merged into the base in fp32 (merging in bf16 rounds away a sizeable part of a
LoRA update), and the merged model is exported with optimum-intel (int8 weights, per channel).
optimum-intel pins transformers < 5.6 while training needs a newer one, so the exporter lives in
its own environment, `.venv-export` at the repository root, which `make setup` builds; it runs as
a subprocess and writes into a staging directory that is moved into place only when complete.
A staging directory left by a killed process (a merged fp32 copy is 2.4 GB for the default
model) is removed by the next export on that machine.
An export takes about a minute for the default model, 15 s for the tiny one.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

from sandbox.engine import owner, owner_gone
from tasks.generation import (BODY_STYLES, CHAT_STOP, STOP_SEQUENCES, HFBackend, Settings,
                              per_prompt)
from tasks.device import device_for, sampling_engine
from tasks.paths import REPO_ROOT, models_dir
from tasks.policy import Policy, PolicyError, load_policy, _offline, _replace_dir
from tasks.records import write_json

BACKENDS = ("hf", "openvino")
EXPORT_VENV = REPO_ROOT / ".venv-export"
WEIGHT_FORMAT = "int8"
# KV cache of the continuous-batching pipeline, in GB: 16 sequences of ~1,000 tokens of a 0.5B
# model need well under 1 GB.
KV_CACHE_GB = 2
MAX_SEQUENCES = 32
# A generate call during which the process spends less than IDLE_CPU_S of CPU in HANG_S seconds
# has hung: a healthy one keeps both cores busy.
HANG_S = 300.0
IDLE_CPU_S = 1.0


class EngineHung(RuntimeError):
    """OpenVINO's generate stopped making progress (openvino-genai 2026.4.1: every thread waits on
    a futex inside `ov::genai::Sampler::sample`, the process uses no CPU, and it never returns).
    The stages that sample retry with a fresh pipeline; the stuck call's thread is left behind."""


def watched(fn, what: str, hang_s: float = HANG_S, idle_cpu_s: float = IDLE_CPU_S,
            poll=None, poll_s: float = 10.0):
    """`fn()`, run in a daemon thread and watched from this one: its result, its exception, or
    EngineHung once the process has used less than `idle_cpu_s` of CPU for `hang_s` seconds.
    `poll()`, when given, is called from this thread every `poll_s` seconds while `fn` runs
    (progress reporting)."""
    import time

    done: dict = {}

    def body():
        try:
            done["result"] = fn()
        except BaseException as exc:  # handed to the watching thread
            done["error"] = exc

    worker = threading.Thread(target=body, name=f"watched {what}", daemon=True)
    worker.start()
    cpu, since = time.process_time(), time.monotonic()
    while True:
        worker.join(timeout=min(10.0, hang_s / 4, poll_s))
        if not worker.is_alive():
            break
        if poll is not None:
            try:
                poll()
            except Exception:  # progress is observation: it never stops the work it observes
                poll = None
        now_cpu, now = time.process_time(), time.monotonic()
        if now_cpu - cpu >= idle_cpu_s:
            cpu, since = now_cpu, now
        elif now - since > hang_s:
            raise EngineHung(f"{what} made no progress for {now - since:.0f} s (the process used "
                             f"{now_cpu - cpu:.2f} s of CPU): OpenVINO GenAI's sampler has hung. "
                             "The stage retries with a fresh pipeline; if it keeps hanging, set "
                             "sampling.backend: hf")
    if "error" in done:
        raise done["error"]
    return done["result"]


def open_backend(policy: Policy, backend: str = "hf", dtype: str = "bfloat16",
                 device: str = "cpu"):
    """The policy loaded once behind the generation interface, on `device` (`policy.device`:
    auto, cpu or cuda). On CUDA the engine is `hf` on the GPU, whatever `backend` says
    (tasks/device.py). Both backends carry `.tokenizer`, the HF tokenizer that renders chat
    prompts, and `.engine` and `.device`, what `record_engine` writes."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown sampling.backend {backend!r}: use one of {', '.join(BACKENDS)}")
    where = device_for(device)
    if sampling_engine(backend, where) == "hf":
        model, tokenizer = load_policy(policy, dtype=dtype, merge=True, device=where)
        return HFBackend(model, tokenizer)
    return OpenVINOBackend(openvino_model(policy))


def record_engine(backend, path: Path) -> None:
    """Write the engine a stage sampled with and the device it ran on (`{"engine": "hf",
    "device": "cuda"}`) to `path`: what scripts/gpu_check.sh reads to catch a stage that ran on
    the CPU when it was meant for the GPU."""
    write_json(path, {"engine": backend.engine, "device": backend.device})


# ----------------------------------------------------------------------------------------------
# The int8 copy of a policy


def openvino_dir(policy: Policy, root: Path | None = None) -> Path:
    return (root or models_dir()) / "openvino" / f"{policy.id}-{WEIGHT_FORMAT}"


def _exporter() -> Path:
    cli = EXPORT_VENV / "bin" / "optimum-cli"
    if not cli.exists():
        raise PolicyError(f"the OpenVINO exporter is not installed ({cli} is missing): run "
                          f"`make setup`, which builds {EXPORT_VENV.name}, or set "
                          f"sampling.backend: hf")
    return cli


def openvino_model(policy: Policy, root: Path | None = None, log=print) -> Path:
    """The directory of the policy's int8 OpenVINO model, exported on first use."""
    target = openvino_dir(policy, root)
    if (target / "manifest.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.with_name(target.name + ".lock")):  # shards export a policy once
        if (target / "manifest.json").exists():  # another task exported it while we waited
            return target
        return _export(policy, target, log)


_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@contextmanager
def _exclusive(path: Path):
    """Held by one thread of one process at a time: a thread lock (record locks are per
    process) plus a POSIX lock on `path` (other processes: Dask workers, a second run)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(path, threading.Lock())
    with lock:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the record lock


STAGING_PREFIX = ".export-"
OWNER_FILE = "OWNER"  # in a staging directory: the process that made it (`sandbox.engine.owner`)


def remove_stale_staging(parent: Path) -> list[Path]:
    """Remove the export staging directories under `parent` whose process died without cleaning
    up (SIGKILL runs no clean-up); the ones removed. A directory whose owner is alive, unknown or
    on another machine is kept."""
    removed = []
    for staging in parent.glob(STAGING_PREFIX + "*"):
        try:
            label = (staging / OWNER_FILE).read_text().strip()
        except OSError:  # not written yet, or not ours
            continue
        if owner_gone(label):
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(staging)
    return removed


def _export(policy: Policy, target: Path, log) -> Path:
    cli = _exporter()
    _offline()
    remove_stale_staging(target.parent)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=STAGING_PREFIX) as tmp:
        tmp = Path(tmp)
        (tmp / OWNER_FILE).write_text(owner() + "\n")
        source = Path(policy.base)
        if policy.adapters:
            log(f"merging {len(policy.adapters)} adapter(s) into the base in fp32...")
            model, tokenizer = load_policy(policy, dtype="float32", merge=True)
            source = tmp / "merged"
            model.save_pretrained(source)
            tokenizer.save_pretrained(source)
            del model
        staging = tmp / "model"
        log(f"exporting policy {policy.id} to OpenVINO {WEIGHT_FORMAT} (about a minute)...")
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        done = subprocess.run(
            [str(cli), "export", "openvino", "--model", str(source), "--task",
             "text-generation-with-past", "--weight-format", WEIGHT_FORMAT, str(staging)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0 or not (staging / "openvino_model.xml").exists():
            tail = "\n".join(done.stdout.strip().splitlines()[-15:])
            raise PolicyError(f"exporting policy {policy.id} to OpenVINO failed (exit "
                              f"{done.returncode}):\n{tail}{_short_of_space(target.parent)}")
        (staging / "manifest.json").write_text(json.dumps({
            "policy": policy.id, "base": policy.base, "base_hash": policy.base_hash,
            "adapters": list(policy.adapters), "adapter_hashes": list(policy.adapter_hashes),
            "weight_format": WEIGHT_FORMAT, "merged_in": "float32",
            "exporter": _exporter_versions()}, indent=2) + "\n")
        _replace_dir(staging, target)
    return target


EXPORT_ROOM = 4 << 30  # a merged fp32 copy of the default model (2.4 GB), its export and slack


def _short_of_space(where: Path) -> str:
    """A hint when the disk under `where` is nearly full: the exporter then fails with an I/O
    error that does not say so ("basic_ios::clear: iostream error")."""
    free = shutil.disk_usage(where).free
    if free >= EXPORT_ROOM:
        return ""
    return (f"\nOnly {free / 2**30:.1f} GiB are free under {where}; an export needs about "
            f"{EXPORT_ROOM / 2**30:.0f} GiB. Free some space (the exports of old policies there "
            "may go: one is made again when it is needed), then run again.")


def _exporter_versions() -> dict[str, str]:
    python = EXPORT_VENV / "bin" / "python"
    code = ("import json, importlib.metadata as m; print(json.dumps({p: m.version(p) for p in "
            "('optimum-intel', 'openvino', 'nncf', 'transformers', 'torch')}))")
    done = subprocess.run([str(python), "-c", code], stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {}


# ----------------------------------------------------------------------------------------------
# OpenVINO GenAI backend


class OpenVINOBackend:
    """OpenVINO GenAI's `ContinuousBatchingPipeline` on an exported policy.

    Every prompt is one request; its n samples fork from one prefill (`num_return_sequences`)
    and its seed is derived from the settings' seed and the prompt's position among the prompts
    with the same settings, so a prompt's random draws do not depend on what else is in the batch.
    Its logits may, in the last bits (the batch's composition changes the int8 kernels' blocking):
    where two tokens are nearly tied a candidate can differ (tests: at least 90% identical on the
    toy model, whose right and wrong answers are near-ties by construction).
    Prompts are plain text: the chat template, when a specialist uses one, was applied by
    `render` already.
    """

    poll_s = 10.0  # how often a generate call with a progress reads the pipeline's counters
    engine, device = "openvino", "cpu"  # OpenVINO's CPU plugin

    def __init__(self, model_dir: Path):
        import openvino_genai as og
        from transformers import AutoTokenizer

        self.model_dir = Path(model_dir)
        scheduler = og.SchedulerConfig()
        scheduler.cache_size = KV_CACHE_GB
        scheduler.max_num_seqs = MAX_SEQUENCES
        scheduler.enable_prefix_caching = True  # a debug prompt shares its head with others
        self.pipe = og.ContinuousBatchingPipeline(str(self.model_dir), scheduler, "CPU", {})
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self._og = og

    def _config(self, settings: Settings, index: int):
        config = self._og.GenerationConfig()
        config.max_new_tokens = settings.max_new_tokens
        config.apply_chat_template = False  # GenAI templates plain strings unless told not to
        if settings.temperature > 0:
            config.do_sample = True
            config.temperature = settings.temperature
            config.top_p = settings.top_p
            config.num_return_sequences = settings.n
            config.rng_seed = (settings.seed * 1_000_003 + index) % (2 ** 31)
        else:
            config.do_sample = False
        if settings.stop_early and settings.style == "chat":
            # the answer ends at its block's closing fence, which stays in the text: it is what
            # the model wrote, and the training target of a pair ends with it
            config.stop_strings = {CHAT_STOP}
            config.include_stop_str_in_output = True
        elif settings.stop_early:
            config.stop_strings = set(STOP_SEQUENCES)
            config.include_stop_str_in_output = False
        return config

    def generate(self, prompts: Sequence[str], settings, progress=None) -> list[list[str]]:
        """`progress` counts finished requests (prompts) while the pipeline runs; the prompts
        run again with a closing fence as their stop (below) are added to its total."""
        if not prompts:
            return []
        each = per_prompt(settings, len(prompts))
        # a prompt's seed: its settings' seed and its position among the prompts sharing them,
        # so interleaving several specialists' prompts does not change anyone's candidates
        seen: dict[Settings, int] = {}
        index = []
        for s in each:
            index.append(seen.get(s, 0))
            seen[s] = index[-1] + 1
        out = self._run(prompts, [self._config(s, i) for s, i in zip(each, index)], each,
                        progress)
        # A body continuation stops at "\ndef " and the like; a fenced answer opened in a body
        # style (completion, chat_body) would stop right after its fence. Those prompts run again with the
        # closing fence as the only stop (same seeds), and their fenced samples are replaced.
        opened = [i for i, texts in enumerate(out)
                  if each[i].stop_early and each[i].style in BODY_STYLES
                  and any(_open_fence(t) for t in texts)]
        if opened:
            configs = []
            for i in opened:
                config = self._config(each[i], index[i])
                config.stop_strings = {"\n```"}
                configs.append(config)
            if progress is not None:
                progress.grow(len(opened))
            again = self._run([prompts[i] for i in opened], configs, [each[i] for i in opened],
                              progress)
            for i, texts in zip(opened, again):
                out[i] = [new if _open_fence(old) else old for old, new in zip(out[i], texts)]
        return out

    def _run(self, prompts, configs, each, progress=None) -> list[list[str]]:
        poll, counted = None, [0]
        if progress is not None:
            poll = self._counter(len(prompts), progress, counted)
        results = watched(lambda: self.pipe.generate(list(prompts), configs),
                          f"OpenVINO generate ({len(prompts)} prompts)", poll=poll,
                          poll_s=self.poll_s)
        if progress is not None:
            progress.advance(len(prompts) - counted[0])
        out = []
        for result, s in zip(results, each):
            texts = list(result.m_generation_ids)
            if s.temperature <= 0:
                texts = texts[:1] * s.n  # greedy: n identical candidates, one decoded
            if len(texts) != s.n:
                raise RuntimeError(f"OpenVINO returned {len(texts)} sequences for a prompt, "
                                   f"expected {s.n} (status {result.m_status})")
            out.append(texts)
        return out

    def _counter(self, total: int, progress, counted: list[int]):
        """A poll that advances `progress` by the requests the pipeline finished since the last
        poll. `PipelineMetrics.requests` is the number of unfinished requests as of the last
        step (0 before the first step of a new pipeline; after a generate call it keeps that
        call's last value until the next call's first step, so a value equal to the one before
        the call is not trusted until it has changed once). Read from this thread while the
        pipeline runs: a copy of a few counters, which changes nothing generated."""
        stale = self.pipe.get_metrics().requests
        fresh = [False]

        def poll() -> None:
            waiting = self.pipe.get_metrics().requests
            if not fresh[0] and waiting == stale:
                return
            fresh[0] = True
            if 0 < waiting <= total and total - waiting > counted[0]:
                progress.advance(total - waiting - counted[0])
                counted[0] = total - waiting
        return poll


def _open_fence(text: str) -> bool:
    head = text.lstrip()
    return head.startswith("```") and "```" not in head[3:]
