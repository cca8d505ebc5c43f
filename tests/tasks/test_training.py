"""Training: trl's DPOTrainer with LoRA on the tiny model. The pair columns are the ones the
trainer reads, a step changes the adapter, the manifest records the lineage, NF4 works on this CPU,
and a training killed after a checkpoint resumes from it."""

import json
from pathlib import Path

import pytest
from transformers import TrainerCallback

from tasks.config import load_config
from tasks.pairs import PAIR_COLUMNS, Pair, load_pair_dataset, write_pairs
from tasks.names import TINY_BASE
from tasks.policy import base_policy

PROMPT = 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n'


def pairs_file(path: Path, n: int = 4):
    pairs = [Pair(prompt=PROMPT.replace("add", f"add{i}"), chosen="    return a + b\n",
                  rejected="    return a - b\n", problem_id=f"p{i}", kind="best_vs_worse",
                  chosen_reward=1.0, rejected_reward=0.0, chosen_id=f"c{i}", rejected_id=f"r{i}")
             for i in range(n)]
    return write_pairs(pairs, path)


@pytest.fixture
def tiny_cfg():
    cfg = load_config("tiny", ["training.checkpoint_steps=1",
                               "training.dpo.gradient_accumulation_steps=1",
                               "training.dpo.per_device_train_batch_size=1"])
    return cfg


def test_the_trainer_reads_the_columns_the_pairs_stage_writes(tmp_path, tiny_cfg):
    """DPOTrainer tokenizes our dataset: prompt/chosen/rejected are the columns it consumes."""
    from trl import DPOConfig, DPOTrainer

    from tasks.policy import load_policy

    shard = pairs_file(tmp_path / "pairs.jsonl")
    dataset = load_pair_dataset(shard.path)
    assert tuple(dataset.column_names) == PAIR_COLUMNS
    model, tokenizer = load_policy(base_policy(TINY_BASE), dtype="float32")
    args = DPOConfig(output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False,
                     report_to="none", max_length=128)
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset,
                         processing_class=tokenizer,
                         peft_config=__import__("peft").LoraConfig(r=2, task_type="CAUSAL_LM"))
    tokenized = trainer.train_dataset.column_names
    for column in ("prompt_ids", "chosen_ids", "rejected_ids"):
        assert any(c.startswith(column.split("_")[0]) for c in tokenized), tokenized
    row = trainer.train_dataset[0]
    ids = [v for k, v in row.items() if k.startswith("prompt") and k.endswith("ids")][0]
    assert tokenizer.decode(ids).startswith("def add0(")


def test_completion_style_rows_train_without_the_eos_trl_appends(tmp_path):
    """In completion style the policy never writes the end-of-sequence token (generation is cut
    at a stop sequence), so training must not target it: trl appends it to every plain-text
    completion, and on the real model one cycle of that taught the policy to end right after the
    docstring. A chat answer does end with it, so chat rows keep it; a chat_body answer is a body
    cut at a stop, as in completion style."""
    from peft import LoraConfig
    from trl import DPOConfig

    from tasks.generation import render
    from tasks.policy import load_policy
    from tasks.training import _trainer_class

    model, tokenizer = load_policy(base_policy(TINY_BASE), dtype="float32")
    chat_prompt = render(PROMPT, "chat", "You are careful.", tokenizer)
    pairs = [
        Pair(prompt=PROMPT, chosen="    return a + b\n", rejected="    return a - b\n",
             problem_id="p0", kind="best_vs_worse", chosen_reward=1.0, rejected_reward=0.0,
             chosen_id="c0", rejected_id="r0"),
        Pair(prompt=chat_prompt, chosen="```python\ndef add(a, b):\n    return a + b\n```",
             rejected="```python\ndef add(a, b):\n    return a - b\n```", problem_id="p1",
             kind="best_vs_worse", chosen_reward=1.0, rejected_reward=0.0, chosen_id="c1",
             rejected_id="r1"),
        # chat_body: the answer begun in the prompt, the body cut at the closing fence
        Pair(prompt=render(PROMPT, "chat_body", "You are careful.", tokenizer),
             chosen="    return a + b\n", rejected="    return a - b\n", problem_id="p2",
             kind="best_vs_worse", chosen_reward=1.0, rejected_reward=0.0, chosen_id="c2",
             rejected_id="r2")]
    dataset = load_pair_dataset(write_pairs(pairs, tmp_path / "pairs.jsonl").path)
    args = DPOConfig(output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False,
                     report_to="none", max_length=256)
    trainer = _trainer_class()(model=model, args=args, train_dataset=dataset,
                               processing_class=tokenizer,
                               peft_config=LoraConfig(r=2, task_type="CAUSAL_LM"))
    rows = {row["problem_id"]: row for row in trainer.train_dataset}
    eos = tokenizer.eos_token_id
    completion, chat = rows["p0"], rows["p1"]
    assert tokenizer.decode(completion["chosen_ids"]) == "    return a + b\n"
    assert tokenizer.decode(completion["rejected_ids"]) == "    return a - b\n"
    assert eos not in completion["chosen_ids"] and eos not in completion["rejected_ids"]
    assert chat["chosen_ids"][-1] == eos and chat["rejected_ids"][-1] == eos
    body = rows["p2"]
    assert tokenizer.decode(body["chosen_ids"]) == "    return a + b\n"
    assert eos not in body["chosen_ids"] and eos not in body["rejected_ids"]


def test_a_dpo_run_changes_the_adapter_and_records_its_lineage(tmp_path, tiny_cfg):
    import torch
    from safetensors.torch import load_file

    from tasks.training import train

    shard = pairs_file(tmp_path / "pairs.jsonl")
    policy = base_policy(TINY_BASE)
    result = train(shard.path, policy, tiny_cfg.training, "float32", tmp_path / "train",
                   pairs_sha256=shard.sha256, config_hash="cfg",
                   config_file="/runs/r-1/config.yaml", run=("r-1", "/runs"))
    assert result.steps == 4 and result.pairs == 4
    assert result.policy.adapters[:-1] == policy.adapters
    assert result.policy.id != policy.id
    weights = load_file(str(Path(result.adapter) / "adapter_model.safetensors"))
    lora_b = [w for k, w in weights.items() if "lora_B" in k]
    assert lora_b and any(torch.count_nonzero(w) > 0 for w in lora_b)  # B starts at zero
    manifest = json.loads((Path(result.adapter) / "manifest.json").read_text())
    assert manifest["parents"]["policy"] == policy.id
    assert manifest["data"] == {"pairs": shard.path, "sha256": shard.sha256, "rows": 4}
    assert manifest["config_hash"] == "cfg" and "trl" in manifest["versions"]
    assert manifest["device"] == "cpu" and manifest["bitsandbytes"] is None  # where it trained
    assert not (tmp_path / "train" / "checkpoints").exists()  # cleaned once complete
    # the loss the manifest records is the real one (DPO + SFT is positive)
    assert result.metrics["train_loss"] > 0


def test_the_adapter_carries_a_model_card_outside_its_content_hash(tmp_path, tiny_cfg, capsys):
    """README.md is our model card, not peft's blank template: the policy and its parent, the
    pairs (path, sha256, rows by kind), settings, trl's metrics and the commands that reproduce
    it. It names the run, so it is not hashed: editing it changes no policy id."""
    import yaml

    from tasks.policy import dir_hash
    from tasks.training import main, train

    shard = pairs_file(tmp_path / "pairs.jsonl")
    policy = base_policy(TINY_BASE)
    cfg = tiny_cfg.model_copy(update={"run": tiny_cfg.run.model_copy(update={"seed": 3})})
    config = tmp_path / "config.yaml"  # as a run keeps it
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    result = train(shard.path, policy, cfg.training, cfg.policy.dtype, tmp_path / "train",
                   seed=3, pairs_sha256=shard.sha256, config_file=str(config),
                   run=("r-1", "/runs"))
    card = (Path(result.adapter) / "README.md").read_text()
    assert "[More Information Needed]" not in card  # peft's template
    # every file of the adapter as open() makes it (safetensors writes its weights 0600)
    from tasks.records import file_mode

    assert {f.name: f.stat().st_mode & 0o777 for f in Path(result.adapter).iterdir()} == {
        name: file_mode() for name in ("README.md", "manifest.json", "adapter_config.json",
                                       "adapter_model.safetensors")}
    assert card.startswith(f"# Policy {result.policy.id}\n")
    assert f"- parent policy: `{policy.id}`: the base model alone" in card
    assert f"- pairs file: `{shard.path}`" in card and f"- sha256: `{shard.sha256}`" in card
    assert "- rows trained: 4 (best_vs_worse 4), from 4 problems" in card
    assert f"| lora_r | {cfg.training.lora_r} |" in card and "| seed | 3 |" in card
    assert f"| dpo.beta | {tiny_cfg.training.dpo['beta']:.6g} |" in card
    manifest = json.loads((Path(result.adapter) / "manifest.json").read_text())
    assert f"| train_loss | {manifest['metrics']['train_loss']:.6g} |" in card
    for metric in ("loss (DPO + SFT), final step (4)", "reward accuracy, final step (4)",
                   "reward margin, final step (4)", "mean_rewards_accuracies",
                   "mean_rewards_margins"):
        assert f"| {metric} | " in card, metric
    assert "    autodidact resume r-1 --store /runs\n" in card
    # the command it gives trains the same adapter again
    (command,) = [line.strip() for line in card.splitlines()
                  if line.startswith("    python -m tasks.training ")]
    assert command == f"python -m tasks.training {shard.path} OUT --config {config}"
    argv = [tmp_path / "again" if arg == "OUT" else arg for arg in command.split()[3:]]
    main([str(arg) for arg in argv])
    assert json.loads(capsys.readouterr().out)["adapter_hash"] == result.adapter_hash
    # not in the content hash: the policy id is the weights' and config's alone
    (Path(result.adapter) / "README.md").write_text("edited\n")
    assert dir_hash(Path(result.adapter)) == result.adapter_hash
    assert train(shard.path, policy, cfg.training, cfg.policy.dtype, tmp_path / "train",
                 seed=3).policy == result.policy  # the finished adapter, checked against its
    # manifest's hash


class Kill(TrainerCallback):
    """Stops the training once the checkpoint of step `after` is saved, as a kill would."""

    def __init__(self, after):
        self.after = after

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.after:
            raise KeyboardInterrupt("killed")


def test_a_killed_training_resumes_from_its_last_checkpoint(tmp_path, tiny_cfg):
    from tasks.training import train

    shard = pairs_file(tmp_path / "pairs.jsonl")
    policy = base_policy(TINY_BASE)
    out = tmp_path / "train"
    with pytest.raises(KeyboardInterrupt):
        train(shard.path, policy, tiny_cfg.training, "float32", out, callbacks=[Kill(2)])
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
    assert not (out / "adapter").exists()  # nothing half-written where the result goes
    result = train(shard.path, policy, tiny_cfg.training, "float32", out)
    assert result.resumed_from == "checkpoint-2" and result.steps == 4


def test_nf4_quantized_base_trains_on_this_cpu(tmp_path, tiny_cfg):
    from tasks.training import train

    shard = pairs_file(tmp_path / "pairs.jsonl", n=2)
    cfg = tiny_cfg.training.model_copy(update={"quantization": "nf4"})
    first = train(shard.path, base_policy(TINY_BASE), cfg, "float32", tmp_path / "one")
    # a second cycle on top: the previous adapter is merged, then quantized
    second = train(shard.path, first.policy, cfg, "float32", tmp_path / "two")
    assert len(second.policy.adapters) == 2 and second.steps == 2
    card = (Path(second.adapter) / "README.md").read_text()  # names the policy below it
    assert f"- parent policy: `{first.policy.id}`: the base model with 1 adapter(s)" in card
    assert f" --adapter {first.adapter}\n" in card
    assert not (tmp_path / "two" / "merged-previous-policy").exists()
    manifest = json.loads((Path(second.adapter) / "manifest.json").read_text())
    assert manifest["device"] == "cpu"
    assert manifest["bitsandbytes"]["bnb_4bit_quant_type"] == "nf4"
    assert manifest["bitsandbytes"]["bnb_4bit_use_double_quant"] is False  # on CUDA only


def test_bad_trainer_options_name_the_key(tmp_path, tiny_cfg):
    from tasks.training import TrainingError, train

    shard = pairs_file(tmp_path / "pairs.jsonl", n=1)
    cfg = tiny_cfg.training.model_copy(update={"dpo": {**tiny_cfg.training.dpo,
                                                       "no_such_option": 1}})
    with pytest.raises(TrainingError, match="no_such_option"):
        train(shard.path, base_policy(TINY_BASE), cfg, "float32", tmp_path / "t")


def test_a_checkpoint_cut_short_is_discarded_and_training_resumes_from_the_one_before(tmp_path):
    """A checkpoint whose trainer_state.json is missing or truncated (the process was killed, or
    the disk filled, while transformers wrote it) is not resumed from."""
    import json

    from tasks.training import last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path / "none") is None
    for step, state in ((2, json.dumps({"global_step": 2})), (4, '{"global_st'), (6, None)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        (d / "adapter_model.safetensors").write_bytes(b"weights")
        if state is not None:
            (d / "trainer_state.json").write_text(state)
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"]  # the cut ones: gone
