"""Devices: where the policy computes (`policy.device`), decided in one place.

`policy.device` is `auto`, `cpu` or `cuda`. `resolve_device` turns it into the device a stage
uses, from whether CUDA is available: a pure function, so the tests give it the availability.
`device_for` asks torch. Every stage that runs the policy goes through here: training (the model,
trl's reference log-probs, the collapse probe: `tasks/training.py`), sampling, self-debug, the
temperature sweep and evaluation (`tasks.engines.open_backend`), and the fp32 merge of a policy's
adapters (`tasks.policy.load_policy`).

On CUDA the stages sample with transformers' `generate` on the GPU (the `hf` engine), whatever
`sampling.backend` says: OpenVINO GenAI's engine here runs on the CPU, where it stays the default
(`sampling_engine`). Each stage records the device it actually used (the adapter's
`manifest.json`, an `engine.json` beside what a sampling stage writes), so a run that was meant
for the GPU can be checked for a stage that ran on the CPU (`scripts/gpu_check.sh`).

Only the standard library at import time: flows/inputs.py checks `policy.device` with it before a
command starts anything.
"""

from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda")


class DeviceError(RuntimeError):
    """`policy.device: cuda` where CUDA is not available."""


def resolve_device(requested: str, cuda_available: bool, why: str = "") -> str:
    """The device a stage runs on: `cpu` or `cuda`. `auto` is `cuda` when CUDA is available,
    else `cpu`; `cuda` without CUDA is a DeviceError naming the key and the fix (`why`, when
    given, says why CUDA is not available)."""
    if requested not in DEVICES:
        raise ValueError(f"policy.device {requested!r}: use one of {', '.join(DEVICES)}")
    if requested == "auto":
        return "cuda" if cuda_available else "cpu"
    if requested == "cuda" and not cuda_available:
        raise DeviceError("policy.device is 'cuda' but CUDA is not available"
                          + (f" ({why})" if why else "") + ": set policy.device to auto or cpu "
                          "(--set policy.device=cpu) to run on the CPU, or run on a machine with "
                          "an NVIDIA GPU and the CUDA build of torch (`make setup` installs it "
                          "when nvidia-smi answers)")
    return requested


def cuda_status() -> tuple[bool, str]:
    """(whether torch can use a CUDA GPU, why not when it cannot)."""
    import torch

    if torch.cuda.is_available():
        return True, ""
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} is a CPU build"
    return False, (f"torch {torch.__version__} is built for CUDA {torch.version.cuda} but sees no "
                   "GPU: check nvidia-smi and CUDA_VISIBLE_DEVICES")


def device_for(requested: str) -> str:
    """`resolve_device` on this machine."""
    return resolve_device(requested, *cuda_status())


def sampling_engine(backend: str, device: str) -> str:
    """The engine a stage samples with on `device` (resolved): `sampling.backend` on the CPU;
    `hf` (transformers' `generate`) on CUDA."""
    return "hf" if device == "cuda" else backend


def placement(device: str) -> dict:
    """Keyword arguments of `from_pretrained` that load a model onto `device` (resolved): none on
    the CPU, as before devices existed; on CUDA a `device_map` putting the whole model on the
    first GPU torch sees (`CUDA_VISIBLE_DEVICES` chooses which), so the weights, and
    bitsandbytes' quantization of them, go straight there. GPU 0, not "cuda": transformers'
    Trainer compares the map with its own device, `cuda:0`, and would otherwise take the model
    for one split over several GPUs."""
    return {} if device == "cpu" else {"device_map": {"": 0}}


def model_device(model) -> str:
    """Where a model's weights are: `cpu` or `cuda` (what a stage records as the device it used)."""
    return next(model.parameters()).device.type
