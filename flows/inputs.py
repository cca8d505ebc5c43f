"""The checks every command makes of its inputs before a flow run is created or a model loads.

Each check raises `InputError`, whose message is one line: what is wrong and what to do. The CLI
(flows/cli.py) prints it as `error: <message>` and exits 2, having started nothing and written
nothing: the checks only look (a directory's write access is read with `os.access` on the
nearest directory that exists; nothing is created). The flows use the same checks where they
also take these inputs from a deployment (`adapter_problem`, `reopen_problem`).

Only the standard library at import time: `autodidact --help` and a refused command stay fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class InputError(ValueError):
    """An input of a command that cannot be used; the message is one line naming the fix."""


def writable_dir(path: str | Path, what: str, fix: str) -> Path:
    """`path` is a directory this process may write in, or one it could create (its nearest
    existing ancestor is a writable directory). Creates nothing. `what` names the input
    ("run store"); `fix` says what to do instead ("give --store a directory you can write")."""
    path = Path(path).expanduser()
    nearest = path
    while not nearest.exists():
        if nearest.is_symlink():
            raise InputError(f"{what} {path}: {nearest} is a broken symbolic link; {fix}")
        if nearest.parent == nearest:
            break
        nearest = nearest.parent
    if not nearest.is_dir():
        raise InputError(f"{what} {path}: {nearest} is a file, not a directory; {fix}")
    if not os.access(nearest, os.W_OK | os.X_OK):
        where = "it" if nearest == path else f"{nearest}, where it would be created,"
        raise InputError(f"{what} {path}: {where} is not writable by this user; {fix}")
    return path


def writable_file(path: str | Path, flag: str) -> Path:
    """`path` can be written as a file: not a directory, in an existing writable directory (the
    file is written beside itself under a temporary name, then renamed). Creates nothing."""
    path = Path(path).expanduser()
    parent = path.parent
    if path.is_dir():
        raise InputError(f"{flag} {path} is a directory: give the path of a file to write")
    if not parent.is_dir():
        what = "is a file" if parent.exists() else "does not exist"
        raise InputError(f"{flag} {path}: the directory {parent} {what}; create it, or give a "
                         "path in an existing directory")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists()
                                                    and not os.access(path, os.W_OK)):
        raise InputError(f"{flag} {path}: {parent} is not writable by this user; give a path "
                         "you can write")
    return path


def readable_file(path: str | Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists() or path.is_dir():  # a FIFO (/dev/stdin, <(...)) reads as a file does
        state = "is a directory" if path.is_dir() else "does not exist"
        raise InputError(f"{what} {path} {state}: give an existing file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{what} {path} is not readable by this user")
    return path


def check_store(store: str | Path, flag: str = "--store") -> Path:
    """The run store can be written (created if missing)."""
    return writable_dir(store, "run store", f"give {flag} (or run.store) a directory you can "
                                            "write")


def check_tracking(cfg) -> None:
    """With `tracking.enabled` and a local database (`tracking.uri` null or `sqlite:///`), its
    directory can be written. A remote server is not contacted here: when it does not answer, the
    run logs a warning and goes on untracked."""
    if not cfg.tracking.enabled:
        return
    from tasks.paths import home

    uri = cfg.tracking.uri
    if uri is None:
        where = home() / "mlflow"
    elif uri.startswith("sqlite:///"):
        where = Path(uri.removeprefix("sqlite:///")).expanduser().parent
        if not uri.removeprefix("sqlite:///").startswith("/"):
            where = Path.cwd() / where
    else:
        return
    writable_dir(where, "MLflow tracking database directory",
                 "set tracking.uri to a sqlite:///<path> you can write, or --set "
                 "tracking.enabled=false")


def check_suite(spec: str, what: str) -> None:
    """A suite known by name, or a JSONL file of problems that exists and reads (a malformed row
    is refused here, naming its line, not after a flow run started)."""
    from tasks.names import SUITES

    if spec.strip().lower() in SUITES:
        return
    if not spec.endswith(".jsonl"):
        raise InputError(f"{what} {spec!r} is not a problem suite: use one of "
                         f"{', '.join(SUITES)}, or the path of a .jsonl file of your own problems "
                         "(format at the top of tasks/problems/__init__.py)")
    readable_file(spec, f"{what}: the problem file")
    from tasks.problems.jsonl import load_jsonl

    try:
        load_jsonl(spec)
    except (ValueError, OSError) as exc:
        raise InputError(" ".join(str(exc).split())) from None


def check_count(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise InputError(f"{flag} {value}: give at least 1")


def adapter_problem(adapter: str | Path) -> str | None:
    """Why `adapter` is not a LoRA adapter directory PEFT can load (adapter_config.json naming
    its peft_type, and the weights beside it), or None when it is one."""
    path = Path(adapter).expanduser()
    hint = "give the adapter directory a cycle's training wrote (summary.json: trained.adapters)"
    if not path.is_dir():
        state = "is a file" if path.exists() else "does not exist"
        return f"{adapter} {state}, not a LoRA adapter directory: {hint}"
    config = path / "adapter_config.json"
    if not config.is_file():
        return f"{adapter} is not a LoRA adapter directory (no adapter_config.json): {hint}"
    try:
        peft_type = json.loads(config.read_text()).get("peft_type")
    except (OSError, ValueError, AttributeError) as exc:
        return f"{config} cannot be read as an adapter config ({' '.join(str(exc).split())})"
    if not peft_type:
        return f"{config} names no peft_type: not a PEFT adapter; {hint}"
    if not any((path / name).is_file() for name in ("adapter_model.safetensors",
                                                    "adapter_model.bin")):
        return (f"{adapter} is not a LoRA adapter directory (no adapter_model.safetensors): "
                f"{hint}")
    return None


def check_adapters(adapters: list[str]) -> None:
    for adapter in adapters:
        if (problem := adapter_problem(adapter)) is not None:
            raise InputError(f"--adapter {problem}")


def check_base(base: str) -> None:
    """`policy.base` names an embedded model or a directory holding an HF model (as
    tasks.policy.resolve_base takes it), without loading or provisioning anything."""
    from tasks.names import DEFAULT_BASE, TINY_BASE

    if base in (DEFAULT_BASE, TINY_BASE) or (Path(base).expanduser() / "config.json").is_file():
        return
    raise InputError(f"policy.base {base!r} is neither {DEFAULT_BASE!r}, {TINY_BASE!r} nor a "
                     "directory with an HF model (config.json): set policy.base (--set "
                     "policy.base=DIR); models are never fetched from a hub")


def check_device(device: str, resume: str = "") -> None:
    """`policy.device: cuda` needs CUDA on this machine (torch is asked only then; `auto` and
    `cpu` run anywhere). `resume`: the command that reopens the run on the CPU, for a run that
    keeps `cuda` in its own config (`autodidact resume` takes no --set)."""
    if device != "cuda":
        return
    from tasks.device import DeviceError, cuda_status, resolve_device

    try:
        resolve_device(device, *cuda_status())
    except DeviceError as exc:
        raise InputError(str(exc) + (f". This run was created with policy.device: cuda and "
                                     f"keeps it in its config; the device is not part of its "
                                     f"identity, so it reopens on the CPU with: {resume}"
                                     if resume else "")) from None


def reopen_problem(cfg, run_id: str, meta: dict) -> str | None:
    """Why the run `run_id` of the store (its `run.json` is `meta`) cannot be reopened with the
    config `cfg`, or None: it was created with another configuration, or in another store."""
    ours = {cfg.hash()} | cfg.legacy_hashes()
    store = cfg.run.store_dir()
    if meta.get("config_hash") not in ours:
        return (f"run {run_id} was created with another configuration (hash "
                f"{meta.get('config_hash')}, this one {cfg.hash()}): resume it with "
                f"`autodidact resume {run_id}`, or start a new run")
    created_in = Path(meta["memory_dir"]).parent
    if created_in.resolve() != store.resolve():
        # its records, cached results and memory snapshot name the store it was made in:
        # resumed here, it would read and write the memory at the old path
        return (f"run {run_id} was created in the store {created_in} and is now in {store}: a "
                f"run cannot move. Move the store back to {created_in} (or link that path to "
                "it) and resume there")
    return None


def check_run_id(cfg, run_id: str, flag: str = "--run-id") -> dict:
    """The run `run_id` exists in the config's store and can be reopened with `cfg`; its
    `run.json`."""
    store = cfg.run.store_dir()
    meta_path = store / run_id / "run.json"
    if not meta_path.is_file():
        runs = sorted(p.parent.name for p in store.glob("*/run.json")) if store.is_dir() else []
        there = (f"runs there: {', '.join(runs[:8])}{', ...' if len(runs) > 8 else ''}" if runs
                 else "it holds no runs")
        raise InputError(f"no run {run_id!r} in {store}; {there} (`autodidact runs --store "
                         f"{store}` lists them); {flag} reopens an existing run")
    try:
        meta = json.loads(meta_path.read_text())
        meta["memory_dir"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"run {run_id}: {meta_path} cannot be read ({exc}); the run's record "
                         "is damaged") from None
    if (problem := reopen_problem(cfg, run_id, meta)) is not None:
        raise InputError(problem)
    return meta
