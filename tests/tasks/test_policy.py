"""Policies: the embedded default model loads offline and writes code that passes in the sandbox;
the tiny test model is real; adapters change what a policy computes and what it is named."""

import json

import pytest

from tasks.names import DEFAULT_BASE, TINY_BASE
from tasks.policy import Policy, PolicyError, base_policy, dir_hash, load_policy, resolve_base


@pytest.fixture(scope="module")
def tiny():
    return base_policy(TINY_BASE)


def test_tiny_model_is_a_two_layer_qwen2_with_the_real_tokenizer(tiny):
    model, tokenizer = load_policy(tiny, dtype="float32")
    assert model.config.model_type == "qwen2"
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 64
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    ids = tokenizer("def add(a, b):", return_tensors="pt").input_ids
    assert tokenizer.decode(ids[0]) == "def add(a, b):"
    logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer))


def test_an_adapter_changes_the_policy_and_its_name(tiny, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load_policy(tiny, dtype="float32")
    ids = tokenizer("def add(a, b):", return_tensors="pt").input_ids
    before = model(ids).logits.detach()
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8,
                                                  target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # a trained adapter's B is non-zero
    peft_model.save_pretrained(tmp_path / "adapter")

    adapted = tiny.with_adapter(tmp_path / "adapter")
    assert adapted.id != tiny.id
    assert adapted.adapter_hashes == (dir_hash(tmp_path / "adapter"),)
    model2, _ = load_policy(adapted, dtype="float32")
    after = model2(ids).logits.detach()
    assert not torch.allclose(before, after)
    # the record is small and serialisable: tasks pass it, never a model
    assert Policy.model_validate_json(adapted.model_dump_json()) == adapted


def test_the_merged_policy_computes_what_the_unmerged_adapter_does(tiny, tmp_path):
    """No lost update: asked for bf16, a policy with adapters is still merged and kept in fp32,
    so its logits are the unmerged adapter's; merged into bf16 weights, a small LoRA update
    (the size training makes) would be partly rounded away."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    model, tokenizer = load_policy(tiny, dtype="float32")
    ids = tokenizer("def add(a, b):\n    return", return_tensors="pt").input_ids
    base_logits = model(ids).logits.detach()
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 2e-3)  # a small update, as a few DPO steps give
    peft_model.save_pretrained(tmp_path / "adapter")
    adapted = tiny.with_adapter(tmp_path / "adapter")

    base, _ = load_policy(tiny, dtype="float32")
    unmerged = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    reference = unmerged(ids).logits.detach()
    assert (reference - base_logits).abs().max() > 1e-3  # the update is there to lose

    merged, _ = load_policy(adapted, dtype="bfloat16")
    assert next(merged.parameters()).dtype == torch.float32
    logits = merged(ids).logits.detach().float()
    assert (logits - reference).abs().max() < 1e-4


def test_unknown_base_is_a_clear_error(tmp_path):
    with pytest.raises(PolicyError) as info:
        resolve_base(str(tmp_path / "no-model-here"))
    assert "never fetched from a hub" in str(info.value)


def test_default_model_manifest_pins_its_source():
    path = resolve_base(DEFAULT_BASE)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["source"]["sha256"] == (
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32")
    assert manifest["dtype"] == "bfloat16"
    assert manifest["hash"] == dir_hash(path)


@pytest.mark.docker
@pytest.mark.model
def test_default_model_loads_offline_and_writes_passing_code(sandbox, monkeypatch):
    """The sampling and execution stages on the real default model: a few short HumanEval
    problems, one specialist, greedy; at least one candidate passes in the sandbox."""
    from tasks.schema import AgentConfig, SamplingConfig, SandboxConfig, SpecialistConfig
    from tasks.execution import judge
    from tasks.problems.humaneval import load_humaneval
    from tasks.engines import open_backend
    from tasks.sampling import sample

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    policy = base_policy(DEFAULT_BASE)
    backend = open_backend(policy, "hf", "bfloat16")
    problems = {p.id: p for p in load_humaneval()}
    chosen = [problems[i] for i in ("HumanEval/23", "HumanEval/28", "HumanEval/53")]  # short ones
    specialist = SpecialistConfig(name="careful", temperature=0.0,
                                  system_prompt="You are a careful Python programmer.")
    attempts = sample(chosen, backend, backend.tokenizer, policy.id,
                      [AgentConfig(name="A", policy="current", seed=0)], [specialist],
                      SamplingConfig(max_new_tokens=64, batch_size=3), cycle=1)
    judged = judge(attempts, problems, sandbox, SandboxConfig())
    assert any(a.ok for a in judged), [(a.id, a.status, a.feedback) for a in judged]
