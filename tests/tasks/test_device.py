"""`policy.device`: which device a stage runs on, the refusal of `cuda` without CUDA, the run's
identity on any device, and the QLoRA settings that reach trl, peft and bitsandbytes on CUDA
(built and inspected here, without a GPU)."""

import json
import logging

import pytest

from tasks.device import DeviceError, placement, resolve_device, sampling_engine


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


needs_no_cuda = pytest.mark.skipif("_cuda()", reason="this machine has CUDA: nothing to refuse")


@pytest.mark.parametrize("requested, available, expected", [
    ("auto", True, "cuda"), ("auto", False, "cpu"),
    ("cpu", True, "cpu"), ("cpu", False, "cpu"),
    ("cuda", True, "cuda"),
])
def test_the_device_follows_the_request_and_what_the_machine_has(requested, available, expected):
    assert resolve_device(requested, available) == expected


def test_cuda_without_cuda_names_the_key_and_the_fix():
    with pytest.raises(DeviceError) as err:
        resolve_device("cuda", False, "torch 2.13.0+cpu is a CPU build")
    message = str(err.value)
    assert "policy.device is 'cuda' but CUDA is not available" in message
    assert "(torch 2.13.0+cpu is a CPU build)" in message
    assert "--set policy.device=cpu" in message and "make setup" in message
    with pytest.raises(ValueError, match="policy.device 'gpu': use one of auto, cpu, cuda"):
        resolve_device("gpu", True)


def test_on_cuda_sampling_is_transformers_on_the_gpu_and_openvino_stays_on_the_cpu():
    assert sampling_engine("openvino", "cpu") == "openvino"
    assert sampling_engine("hf", "cpu") == "hf"
    assert sampling_engine("openvino", "cuda") == "hf"
    assert placement("cpu") == {}  # loads as before devices existed
    assert placement("cuda") == {"device_map": {"": 0}}


@pytest.mark.parametrize("preset", ["default", "smoke", "tiny", "efficacy", "codeio", "gpu"])
def test_the_device_is_not_part_of_the_run_identity(preset):
    from tasks.config import load_config
    from tasks.schema import SECTIONS

    configs = [load_config(preset, [f"policy.device={d}"]) for d in ("auto", "cpu", "cuda")]
    assert {c.policy.device for c in configs} == {"auto", "cpu", "cuda"}
    assert len({c.hash() for c in configs}) == 1
    for name in SECTIONS:
        assert len({c.section_hash(name) for c in configs}) == 1, name
    other_dtype = "bfloat16" if configs[0].policy.dtype == "float32" else "float32"
    assert load_config(preset, [f"policy.dtype={other_dtype}"]).hash() != configs[0].hash()


def test_the_tiny_preset_keeps_the_id_it_had_before_the_device_existed():
    """The hashes `python -m tasks.config tiny` printed before `policy.device` was added."""
    from tasks.config import load_config

    cfg = load_config("tiny")
    assert (cfg.hash(), cfg.section_hash("policy")) == ("14805b2a86094802", "bc884f201b2eae98")


@needs_no_cuda
def test_the_commands_refuse_cuda_here_before_anything_runs(tmp_path):
    from flows.inputs import InputError, check_device

    check_device("auto")  # run anywhere
    check_device("cpu")
    with pytest.raises(InputError, match="policy.device is 'cuda' but CUDA is not available"):
        check_device("cuda")


@needs_no_cuda
def test_a_stage_asked_for_cuda_refuses_and_one_on_the_cpu_records_where_it_ran(tmp_path):
    from tasks.engines import open_backend, record_engine
    from tasks.names import TINY_BASE
    from tasks.policy import base_policy

    policy = base_policy(TINY_BASE)
    with pytest.raises(DeviceError, match="policy.device is 'cuda'"):
        open_backend(policy, "hf", "float32", "cuda")
    backend = open_backend(policy, "hf", "float32", "auto")
    record_engine(backend, tmp_path / "engine.json")
    assert json.loads((tmp_path / "engine.json").read_text()) == {"engine": "hf",
                                                                  "device": "cpu"}


# ----------------------------------------------------------------------------------------------
# Training: what reaches trl's DPOConfig and bitsandbytes


def _training(**update):
    from tasks.schema import TrainingConfig

    return TrainingConfig(**update)


def test_on_the_cpu_training_is_configured_as_it_always_was(tmp_path):
    from trl import DPOConfig

    from tasks.training import quantization_config, trainer_arguments

    trl_default = DPOConfig(output_dir=str(tmp_path), use_cpu=True).optim
    for quantization in ("none", "nf4"):
        cfg = _training(quantization=quantization)
        kwargs = trainer_arguments(cfg, "bfloat16", "cpu")
        assert (kwargs["use_cpu"], kwargs["bf16"], kwargs["gradient_checkpointing"]) == \
            (True, False, False)
        assert "optim" not in kwargs
        args = DPOConfig(output_dir=str(tmp_path), **kwargs)
        assert args.use_cpu and not args.bf16 and args.optim == trl_default
        assert args.precompute_ref_log_probs is (quantization == "none")
    quant = quantization_config(_training(quantization="nf4"), "bfloat16", "cpu")
    assert quant.load_in_4bit and quant.bnb_4bit_quant_type == "nf4"
    assert not quant.bnb_4bit_use_double_quant
    assert quantization_config(_training(), "bfloat16", "cpu") is None


def test_qlora_on_cuda_is_nf4_double_quantised_paged_and_checkpointed():
    import torch
    from transformers.training_args import OptimizerNames

    from tasks.training import quantization_config, trainer_arguments

    cfg = _training(quantization="nf4", lora_r=8)
    kwargs = trainer_arguments(cfg, "bfloat16", "cuda")
    assert (kwargs["use_cpu"], kwargs["bf16"], kwargs["gradient_checkpointing"]) == \
        (False, True, True)
    assert OptimizerNames(kwargs["optim"]) == OptimizerNames.PAGED_ADAMW_8BIT
    assert kwargs["precompute_ref_log_probs"] is False  # beside every step, as on the CPU
    assert kwargs["learning_rate"] == cfg.dpo["learning_rate"]  # training.dpo still reaches trl
    quant = quantization_config(cfg, "bfloat16", "cuda")
    assert quant.load_in_4bit and quant.bnb_4bit_quant_type == "nf4"
    assert quant.bnb_4bit_use_double_quant
    assert quant.bnb_4bit_compute_dtype == torch.bfloat16
    # an optimizer named in training.dpo wins over the paged default
    mine = _training(quantization="nf4", dpo={"optim": "adamw_torch"})
    assert trainer_arguments(mine, "bfloat16", "cuda")["optim"] == "adamw_torch"


def test_lora_on_cuda_is_bf16_mixed_precision_without_quantisation():
    from tasks.training import quantization_config, trainer_arguments

    kwargs = trainer_arguments(_training(), "bfloat16", "cuda")
    assert (kwargs["use_cpu"], kwargs["bf16"], kwargs["gradient_checkpointing"]) == \
        (False, True, False)
    assert "optim" not in kwargs and quantization_config(_training(), "bfloat16", "cuda") is None
    assert trainer_arguments(_training(), "float32", "cuda")["bf16"] is False  # fp32: none


def test_the_cuda_quantisation_config_builds_a_double_quantised_nf4_model():
    """The config meant for CUDA, applied on this CPU: every LoRA target is a 4-bit NF4 layer
    whose quantisation constants are quantised again (bitsandbytes' `nested` state)."""
    import bitsandbytes as bnb
    import torch
    from transformers import AutoModelForCausalLM

    from tasks.names import TINY_BASE
    from tasks.policy import base_policy
    from tasks.training import loaded_quantization, quantization_config

    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    cfg = _training(quantization="nf4")
    model = AutoModelForCausalLM.from_pretrained(
        base_policy(TINY_BASE).base, dtype=torch.float32,
        quantization_config=quantization_config(cfg, "float32", "cuda"))
    layers = {name.rsplit(".", 1)[-1]: module for name, module in model.named_modules()
              if isinstance(module, bnb.nn.Linear4bit)}
    assert set(cfg.lora_target_modules) <= set(layers)
    for module in layers.values():
        assert module.weight.quant_state.quant_type == "nf4"
        assert module.weight.quant_state.nested  # double quantisation
    # what the adapter's manifest records is read back from these layers, not from the config
    four_bit = sum(isinstance(module, bnb.nn.Linear4bit) for module in model.modules())
    assert loaded_quantization(model) == {"layers": four_bit, "bnb_4bit_quant_type": "nf4",
                                          "bnb_4bit_use_double_quant": True}
    single = AutoModelForCausalLM.from_pretrained(
        base_policy(TINY_BASE).base, dtype=torch.float32,
        quantization_config=quantization_config(cfg, "float32", "cpu"))
    assert loaded_quantization(single)["bnb_4bit_use_double_quant"] is False
    assert loaded_quantization(AutoModelForCausalLM.from_pretrained(
        base_policy(TINY_BASE).base, dtype=torch.float32)) is None
