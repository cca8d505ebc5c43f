"""Training: LoRA DPO with an SFT term on the chosen code, against the previous policy.

Takes: a pair dataset (tasks/pairs.py: `prompt, chosen, rejected, ...`), the policy it was mined
with (base + adapters), the `training` config section and a directory of its own in the run store.
Gives: a new LoRA adapter in `<dir>/adapter/` with a `manifest.json` (parents, data hash, config
hash, library versions, metrics) and a model card `README.md`, and the new `Policy` = previous
policy + that adapter.

The loss is trl's `loss_type=["sigmoid", "sft"]`, `loss_weights=[1, training.sft_weight]`: DPO
plus negative log-likelihood of the chosen code (CodeLutra's dual loss). The previous policy's
adapters are merged into the weights first and the new adapter goes on top, so "adapter disabled"
is exactly the previous policy: that is the DPO reference (iterative DPO). With
`training.quantization: nf4` the (merged) base is loaded 4-bit NF4 through bitsandbytes (QLoRA).
It trains on `policy.device` (tasks/device.py): on the CPU as it always has; on CUDA with bf16
mixed precision, or, for NF4, double quantisation, a paged 8-bit AdamW and gradient
checkpointing (`trainer_arguments`, `quantization_config`); previous adapters are merged on the
CPU in fp32 before the 4-bit load. The manifest records the device the weights trained on and the
4-bit settings read back from the loaded layers (`loaded_quantization`).

Checkpoints go to `<dir>/checkpoints/` every `training.checkpoint_steps` optimizer steps; a
training killed mid-way resumes from the newest one when it is run again with the same inputs.
The adapter is written to a staging directory and renamed into place, so `<dir>/adapter/` exists
only when complete.

The adapter's `README.md` is its model card (`model_card`): the policy, its parent, the pairs
(path, sha256, rows by kind), the settings, trl's metrics and the commands that reproduce it. It is
written after the content hash is taken and is not part of it (tasks/policy.py, `NOT_HASHED`).

Run alone: `python -m tasks.training PAIRS.jsonl OUT_DIR --config tiny [--adapter DIR ...]`.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

from prefect import task
from pydantic import BaseModel, ConfigDict

from tasks.caching import cached, source_hash
from tasks.device import device_for, model_device, placement
from tasks.policy import Policy, _offline, dir_hash, file_sha256, load_policy
from tasks.records import CycleContext, Shard, as_opened, write_atomic, write_json
from tasks.schema import TrainingConfig

ADAPTER = "adapter"
CHECKPOINTS = "checkpoints"
# Score (LM head + log-softmax over the 151k-token vocabulary) only the completion tokens whose
# log-probs the loss uses, as trl does on GPUs; on other devices trl scores every position,
# prompt and padding included. The numbers are the same; `benchmarks/training_throughput.py`
# turns it off to measure the difference.
COMPLETIONS_ONLY = True


class TrainingError(RuntimeError):
    pass


class TrainResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: Policy  # previous policy + the new adapter
    adapter: str
    adapter_hash: str
    pairs: int
    steps: int
    resumed_from: str | None  # checkpoint a killed run resumed from
    metrics: dict[str, float]


@contextmanager
def completions_scored_only(enabled: bool = True):
    """While inside, trl's fused LM head scores only the labelled (completion) positions on the
    CPU too. trl 1.16 picks that "compact" path only where its Triton kernels run (CUDA, XPU)
    because elsewhere (Neuron) varying shapes would recompile; on the CPU nothing recompiles and
    the prompt's positions are pure waste. Restored on exit."""
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if not enabled or original is None:  # another trl: leave it as it is
        yield
        return
    trl_utils._use_triton = lambda device: device.type == "cpu" or original(device)
    try:
        yield
    finally:
        trl_utils._use_triton = original


def chat_generation_suffix(tokenizer) -> str | None:
    """What the tokenizer's chat template puts after the last message to open the assistant's
    turn (Qwen: "<|im_start|>assistant\n"): a chat-style prompt ends with it. None without a
    chat template."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    messages = [{"role": "user", "content": "x"}]
    closed = tokenizer.apply_chat_template(messages, tokenize=False)
    opened = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if len(opened) > len(closed) and opened.startswith(closed):
        return opened[len(closed):]
    return None


def without_appended_eos(dataset, tokenizer):
    """Take the end-of-sequence token trl appended off the chosen and rejected ids of every
    completion-style row (a prompt that does not end where the assistant's turn opens: completion
    style, and chat_body style, whose answer is a body cut at a stop sequence).

    trl appends `tokenizer.eos_token` to every non-conversational completion. In completion style
    the policy never writes it: generation continues the function body and is cut at a stop
    sequence. So the appended token (Qwen's `<|im_end|>`, about -15 nats after a body under the
    policy) was an off-policy target that dominated the SFT term: one cycle raised it by 14.5 nats
    and taught the policy to end — or open a new chat turn (`<|im_start|>`) — right after the
    docstring. 109 of 500 dev candidates came out empty. Chat-style rows keep it: a chat answer
    does end with that token (the default model, greedy, after the closing fence of its block:
    log p(`<|im_end|>`) ≈ 0.000 on 5 of 6 HumanEval prompts; the sixth hit the token limit)."""
    suffix = chat_generation_suffix(tokenizer)
    eos = tokenizer.eos_token_id

    def strip(row):
        chat = suffix is not None and row["prompt"].endswith(suffix)
        return {key: row[key][:-1] if not chat and row[key] and row[key][-1] == eos
                else row[key] for key in ("chosen_ids", "rejected_ids")}

    return dataset.map(strip, desc="Completion-style rows: no appended EOS")


def _trainer_class():
    """trl's DPOTrainer, training completion-style rows without the appended EOS (see
    `without_appended_eos`). The rows are fixed right after trl tokenizes them, before the
    reference log-probs are precomputed on them."""
    from trl import DPOTrainer

    class CompletionAwareDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            return without_appended_eos(dataset,
                                        getattr(processing_class, "tokenizer", processing_class))

    return CompletionAwareDPOTrainer


def _progress_callback():
    """A transformers callback reporting training through tasks/progress.py: a line per
    logging step (every optimizer step here) with the step, the loss, trl's reward accuracy and
    reward margin, the rate and the ETA, in the task's log and its progress artifact; and each
    step's numbers to the step observers (MLflow's live training curves)."""
    from transformers import TrainerCallback

    from tasks.progress import Progress, report_step

    class TrainingProgress(TrainerCallback):
        def __init__(self):
            self.progress: Progress | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.progress = Progress("train", state.max_steps, "steps", done=state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.progress is None or not logs or "loss" not in logs:
                return  # the summary at the end (train_runtime, ...) has no step loss
            report_step("train", state.global_step, logs)  # live curves (flows/tracking.py)
            parts = [f"loss {float(logs['loss']):.4f}"]
            if "rewards/accuracies" in logs:
                parts.append(f"reward accuracy {float(logs['rewards/accuracies']):.2f}")
            if "rewards/margins" in logs:
                parts.append(f"margin {float(logs['rewards/margins']):+.4f}")
            self.progress.report(", ".join(parts), done=state.global_step)

        def on_train_end(self, args, state, control, **kwargs):
            if self.progress is not None:
                self.progress.update_to(state.global_step)
                self.progress.close()

    return TrainingProgress()


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    return {name: md.version(name) for name in
            ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes")}


def quantization_config(cfg: TrainingConfig, dtype: str, device: str):
    """The bitsandbytes config of an NF4 base (`training.quantization: nf4`), or None: NF4 that
    computes and stores in `dtype`; on CUDA (`device`, resolved) also double quantisation, as
    QLoRA does. A plain config object: built, and inspected by the tests, without a GPU."""
    if cfg.quantization == "none":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    torch_dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_compute_dtype=torch_dtype,
                              bnb_4bit_quant_storage=torch_dtype,
                              bnb_4bit_use_double_quant=device == "cuda")


def trainer_arguments(cfg: TrainingConfig, dtype: str, device: str) -> dict:
    """`DPOConfig` keyword arguments of the training section on `device` (resolved), less
    output_dir, seed and logging: `cfg.dpo_kwargs()`, and the keys the stage owns. On the CPU:
    `use_cpu`, no mixed precision, no gradient checkpointing. On CUDA: bf16 mixed precision when
    `dtype` is bfloat16, and for QLoRA (`nf4`) gradient checkpointing and a paged 8-bit AdamW,
    unless `training.dpo` names another `optim`. A dict (trl refuses `bf16` where no GPU is, so
    a `DPOConfig` for CUDA cannot be built here; the tests inspect this)."""
    kwargs = cfg.dpo_kwargs()
    nf4 = cfg.quantization == "nf4"
    if nf4:
        # trl's precomputing pass breaks the NF4 model's backward afterwards ("a view of a
        # leaf Variable ... in-place operation", trl 1.16 + bitsandbytes 0.50): the
        # reference log-probs are computed beside every step instead
        kwargs["precompute_ref_log_probs"] = False
    kwargs.setdefault("report_to", "none")  # the curves go to the manifest
    if device == "cpu":
        return {**kwargs, "use_cpu": True, "bf16": False, "gradient_checkpointing": False}
    if nf4:
        kwargs.setdefault("optim", "paged_adamw_8bit")
    return {**kwargs, "use_cpu": False, "bf16": dtype == "bfloat16",
            "gradient_checkpointing": nf4}


def loaded_quantization(model) -> dict | None:
    """The 4-bit settings read back from the loaded model's bitsandbytes layers, not from the
    config that asked for them (what the manifest records and scripts/gpu_check.sh checks), or
    None when no layer is 4-bit."""
    import bitsandbytes as bnb

    states = [getattr(m.weight, "quant_state", None) for m in model.modules()
              if isinstance(m, bnb.nn.Linear4bit)]
    if not states:
        return None
    kinds = sorted({getattr(state, "quant_type", None) or "none" for state in states})
    return {"layers": len(states),
            "bnb_4bit_quant_type": kinds[0] if len(kinds) == 1 else kinds,
            "bnb_4bit_use_double_quant": all(bool(getattr(state, "nested", False))
                                             for state in states)}


def _load_model(policy: Policy, cfg: TrainingConfig, dtype: str, work: Path, device: str):
    """The previous policy with adapters merged, quantized to NF4 when asked, on `device`
    (resolved)."""
    if cfg.quantization == "none":
        return load_policy(policy, dtype=dtype, merge=True, device=device)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = policy.base
    if policy.adapters:  # bitsandbytes quantizes at load time: load the merged weights from disk
        merged = work / "merged-previous-policy"
        if not (merged / "config.json").exists():
            # merged on the CPU: in fp32 a 7B model would not fit beside its own 4-bit copy
            model, tokenizer = load_policy(policy, dtype=dtype, merge=True, device="cpu")
            staging = work / ".merged-staging"
            shutil.rmtree(staging, ignore_errors=True)
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            staging.rename(merged)
            del model
        source = str(merged)
    torch_dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]
    model = AutoModelForCausalLM.from_pretrained(
        source, dtype=torch_dtype, quantization_config=quantization_config(cfg, dtype, device),
        **placement(device))
    return model, AutoTokenizer.from_pretrained(source)


def epoch_means(log_history: Sequence[dict]) -> dict[str, float]:
    """trl's per-step training metrics averaged over every logged step (`mean_<name>`): reward
    accuracy and margins over the whole epoch, not the last step's few pairs."""
    logs = [entry for entry in log_history if "loss" in entry]
    out = {}
    for key in ("rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected",
                "nll_loss", "logps/chosen", "logps/rejected"):
        values = [float(entry[key]) for entry in logs if key in entry]
        if values:
            out["mean_" + key.replace("/", "_")] = sum(values) / len(values)
    return out


def completion_logps(model, tokenizer, examples: Sequence[tuple[str, str]]) -> list[float]:
    """Mean per-token log-likelihood of each completion after its prompt, on the model's
    device."""
    import torch

    out = []
    with torch.inference_mode():
        for prompt, completion in examples:
            start = len(tokenizer(prompt)["input_ids"])
            ids = tokenizer(prompt + completion, return_tensors="pt")["input_ids"].to(
                model_device(model))
            if ids.shape[1] <= start:
                continue
            logits = model(input_ids=ids).logits[0, start - 1:-1].float()
            target = ids[0, start:]
            logp = torch.log_softmax(logits, dim=-1).gather(1, target[:, None]).mean()
            out.append(float(logp))
    return out


def earlier_chosen_logps(model, tokenizer, earlier: Sequence[tuple[str, str]]) -> dict:
    """The collapse probe: mean per-token log-likelihood of earlier cycles' chosen solutions
    under the new policy (adapter on) and the one it was trained from (adapter off), and the drop
    (positive: the new policy finds them less likely)."""
    model.eval()
    after = completion_logps(model, tokenizer, earlier)
    with model.disable_adapter():
        before = completion_logps(model, tokenizer, earlier)
    if not after:
        return {}
    mean_after, mean_before = sum(after) / len(after), sum(before) / len(before)
    return {"earlier_chosen_logp_before": mean_before, "earlier_chosen_logp_after": mean_after,
            "earlier_chosen_drop": mean_before - mean_after, "earlier_chosen_n": len(after)}


def last_complete_checkpoint(checkpoints: Path) -> str | None:
    """The newest checkpoint that was written to the end, or None. transformers writes a
    checkpoint's `trainer_state.json` after its weights, optimizer and RNG state, so one without
    a readable state was cut short (the process killed, the disk full): it is removed, and
    training resumes from the one before."""
    if not checkpoints.is_dir():
        return None
    found = sorted((p for p in checkpoints.glob("checkpoint-*") if p.name[11:].isdigit()),
                   key=lambda p: int(p.name[11:]), reverse=True)
    for checkpoint in found:
        try:
            json.loads((checkpoint / "trainer_state.json").read_text())
            return str(checkpoint)
        except (OSError, ValueError):
            shutil.rmtree(checkpoint, ignore_errors=True)
    return None


def train(pairs_path: str | Path, policy: Policy, cfg: TrainingConfig, dtype: str,
          out_dir: str | Path, seed: int = 0, pairs_sha256: str = "", config_hash: str = "",
          callbacks: Sequence = (), earlier: Sequence[tuple[str, str]] = (),
          config_file: str | None = None, run: tuple[str, str] | None = None,
          device: str = "cpu") -> TrainResult:
    """Train a new adapter on the pairs; resume from `<out_dir>/checkpoints` when one is there.
    `device`: `policy.device` (auto, cpu or cuda), where the model trains, the reference
    log-probs and the collapse probe are computed; the device used goes into the manifest.

    `callbacks` are transformers `TrainerCallback`s (progress reporting, or a test stopping the
    run to show that it resumes). `earlier`: (prompt, chosen) of earlier cycles, whose likelihood
    before and after training goes into the metrics (the collapse guard reads the drop).
    `config_file` (the config the settings came from) and `run` ((run id, store) of the run that
    trains) go into the adapter's model card, `README.md`, as the commands that reproduce it.
    """
    _offline()
    # bitsandbytes warns at import that an optional CPU kernel package is missing; NF4 works
    # without it (measured), so the warning is noise in every training log
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    from peft import LoraConfig
    from transformers import PrinterCallback, ProgressCallback
    from trl import DPOConfig

    from tasks.pairs import load_pair_dataset
    from tasks.progress import run_logger

    out = Path(out_dir)
    adapter_dir = out / ADAPTER
    if (adapter_dir / "manifest.json").exists():  # finished before: the adapter is the result
        return _result_from(adapter_dir, policy)
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_pair_dataset(pairs_path)
    device = device_for(device)
    model, tokenizer = _load_model(policy, cfg, dtype, out, device)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    checkpoints = out / CHECKPOINTS
    with warnings.catch_warnings():
        # trl turns gradient checkpointing on by default and transformers 5 renamed the flag:
        # switching it off (it is slower on the CPU) warns on every run, to no purpose
        warnings.filterwarnings("ignore", message=".*gradient_checkpointing.* is deprecated",
                                category=FutureWarning)
        kwargs = trainer_arguments(cfg, dtype, device)
        try:
            args = DPOConfig(output_dir=str(checkpoints), seed=seed, logging_steps=1,
                             save_total_limit=2, **kwargs)
        except (TypeError, ValueError) as exc:
            raise TrainingError(f"training.dpo is not accepted by trl's DPOConfig: {exc}. Fix the "
                                "key in your config (see tasks/schema.py, TrainingConfig.dpo)"
                                ) from exc
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=list(cfg.lora_target_modules), task_type="CAUSAL_LM")
        # peft draws the new LoRA A matrices from torch's global generator while trl wraps the
        # model, before the trainer seeds anything: seed it here, or the adapter depends on what
        # the process did before (a resumed run in a new process trained another adapter)
        from transformers import set_seed

        set_seed(seed)
        if kwargs.get("precompute_ref_log_probs", False):
            run_logger().info(f"train: {len(dataset)} pairs; their reference log-probs first")
        with completions_scored_only(COMPLETIONS_ONLY):  # the reference pass scores too
            trainer = _trainer_class()(model=model, args=args, train_dataset=dataset,
                                       processing_class=tokenizer, peft_config=lora,
                                       callbacks=[*callbacks, _progress_callback()])
        # the progress callback reports instead of transformers' bar and printed log dicts
        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)
        resume = last_complete_checkpoint(checkpoints)
        try:
            with completions_scored_only(COMPLETIONS_ONLY):
                output = trainer.train(resume_from_checkpoint=resume)
        except BaseException:
            last_complete_checkpoint(checkpoints)  # a checkpoint cut short does not stay behind
            raise

    metrics = {"train_loss": float(output.training_loss),
               "train_runtime_s": float(output.metrics.get("train_runtime", 0.0)),
               **epoch_means(trainer.state.log_history)}
    if earlier:
        metrics.update(earlier_chosen_logps(trainer.model, tokenizer, earlier))

    staging = out / ".adapter-staging"
    shutil.rmtree(staging, ignore_errors=True)
    trainer.model.save_pretrained(str(staging))
    as_opened(staging)  # safetensors writes the weights 0600
    _canonical_adapter_config(staging / "adapter_config.json")
    adapter_hash = dir_hash(staging)  # README.md is not hashed: the card may name the run
    pairs_sha256 = pairs_sha256 or file_sha256(Path(pairs_path))
    write_json(staging / "manifest.json", {
        "adapter_hash": adapter_hash,
        "parents": {"policy": policy.id, "base_hash": policy.base_hash,
                    "adapter_hashes": list(policy.adapter_hashes)},
        "data": {"pairs": str(pairs_path), "sha256": pairs_sha256, "rows": len(dataset)},
        "config_hash": config_hash,
        "training": cfg.model_dump(mode="json"),
        "dtype": dtype,
        # where it trained (the trained weights' device, not the one asked for), the optimizer,
        # and the 4-bit settings its layers really have: scripts/gpu_check.sh reads them
        "device": model_device(trainer.model),
        "optimizer": str(getattr(args.optim, "value", args.optim)),
        "bitsandbytes": (loaded_quantization(trainer.model) if cfg.quantization != "none"
                         else None),
        "steps": trainer.state.global_step,
        "resumed_from": Path(resume).name if resume else None,
        "metrics": metrics,
        # trl's log of every step (loss, rewards, margins, learning rate): the training curves
        # flows/tracking.py logs to MLflow
        "log_history": [{k: v for k, v in entry.items() if isinstance(v, (int, float))}
                        for entry in trainer.state.log_history],
        "versions": _versions(),
    })
    write_atomic(staging / "README.md", model_card(
        policy=policy, adapter_hash=adapter_hash, adapter_dir=adapter_dir, pairs_path=pairs_path,
        pairs_sha256=pairs_sha256, kinds=Counter(dataset["kind"]),
        problems=len(set(dataset["problem_id"])), cfg=cfg, dtype=dtype, seed=seed,
        steps=trainer.state.global_step, resumed_from=resume, metrics=metrics,
        log_history=trainer.state.log_history, config_file=config_file, run=run).encode())
    staging.rename(adapter_dir)
    shutil.rmtree(checkpoints, ignore_errors=True)  # the adapter is complete: no resume needed
    shutil.rmtree(out / "merged-previous-policy", ignore_errors=True)
    return _result_from(adapter_dir, policy)


def _flat(settings: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Nested settings as (dotted key, value) rows, sorted."""
    rows = []
    for key, value in sorted(settings.items()):
        if isinstance(value, dict):
            rows += _flat(value, f"{prefix}{key}.")
        else:
            rows.append((prefix + key, value))
    return rows


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return f"`{json.dumps(value)}`" if isinstance(value, (list, bool)) or value is None \
        else str(value).replace("|", "\\|")


# trl's per-step names, shown with the value of the last logged step
FINAL_STEP = (("loss", "loss (DPO + SFT)"), ("rewards/accuracies", "reward accuracy"),
              ("rewards/margins", "reward margin"), ("nll_loss", "SFT (NLL) loss"))


def model_card(*, policy: Policy, adapter_hash: str, adapter_dir: Path, pairs_path, pairs_sha256,
               kinds: dict[str, int], problems: int, cfg: TrainingConfig, dtype: str, seed: int,
               steps: int, resumed_from: str | None, metrics: dict[str, float],
               log_history: Sequence[dict], config_file: str | None,
               run: tuple[str, str] | None) -> str:
    """The adapter's `README.md` (in place of peft's blank template): the policy it makes and the
    one it was trained from, the pairs it was trained on, the settings, trl's metrics and the
    commands that reproduce it. Not part of the adapter's content hash (tasks/policy.py,
    `NOT_HASHED`), so it may name the run, paths and timings."""
    new = Policy(base=policy.base, base_hash=policy.base_hash,
                 adapters=policy.adapters + (str(adapter_dir),),
                 adapter_hashes=policy.adapter_hashes + (adapter_hash,))
    parent = (f"`{policy.id}`: the base model with {len(policy.adapters)} adapter(s), oldest "
              "first:\n" + "".join(f"    - `{a}` (hash `{h}`)\n"
                                   for a, h in zip(policy.adapters, policy.adapter_hashes))
              if policy.adapters else f"`{policy.id}`: the base model alone\n")
    logged = [entry for entry in log_history if "loss" in entry]
    final = logged[-1] if logged else {}
    metric_rows = [(f"{label}, final step ({final.get('step', steps)})", float(final[key]))
                   for key, label in FINAL_STEP if key in final]
    metric_rows += sorted(metrics.items())
    kind_text = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
    adapters = "".join(f" --adapter {a}" for a in policy.adapters)
    config = config_file or "CONFIG"
    lines = [
        f"# Policy {new.id}",
        "",
        "A LoRA adapter trained by autodidact (`tasks/training.py`): DPO with an SFT term on the "
        "chosen code (trl `DPOTrainer`), against the policy it was trained from as reference. "
        "`manifest.json` beside this file holds the same facts as JSON.",
        "",
        "## Lineage",
        "",
        f"- policy: `{new.id}` (this adapter on top of its parent)",
        f"- adapter content hash: `{adapter_hash}` (every file here but `manifest.json` and "
        "this `README.md`)",
        f"- parent policy: {parent}".rstrip("\n"),
        f"- base model: `{policy.base}` (hash `{policy.base_hash}`)",
    ]
    if run is not None:
        lines.append(f"- trained in run `{run[0]}` of the store `{run[1]}`")
    lines += [
        "",
        "## Data",
        "",
        f"- pairs file: `{pairs_path}`",
        f"- sha256: `{pairs_sha256}`",
        f"- rows trained: {sum(kinds.values())} ({kind_text}), from {problems} problems",
        "",
        "## Training settings",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {key} | {_cell(value)} |" for key, value in
          _flat(cfg.model_dump(mode="json")) + [("dtype", dtype), ("seed", seed)]),
        "",
        f"{steps} optimizer steps" + (f", resumed from `{Path(resumed_from).name}`"
                                      if resumed_from else "") + ".",
        "",
        "## Metrics (as trl reported them)",
        "",
        "`mean_*`: the mean over every logged step; `train_loss`: trl's mean loss over the run "
        "(a resumed training counts only the steps after its checkpoint); `earlier_chosen_*`: "
        "the likelihood of earlier cycles' chosen code before and after (the collapse probe).",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {name} | {_cell(value)} |" for name, value in metric_rows),
        "",
        "## Reproduce",
        "",
    ]
    if run is not None:
        lines += ["The run again (this training, finished, comes from the cache):", "",
                  f"    autodidact resume {run[0]} --store {run[1]}", ""]
    lines += ["This training again, into a new directory OUT (the same pairs, parent policy, "
              "settings, dtype and seed)" + ("" if config_file else
                                             f", CONFIG being a config with policy.dtype {dtype}, "
                                             f"run.seed {seed} and the training settings above")
              + ":", "",
              f"    python -m tasks.training {pairs_path} OUT --config {config}{adapters}", ""]
    return "\n".join(lines)


def _canonical_adapter_config(path: Path) -> None:
    """Sort the lists peft keeps as sets: it writes them in the set's iteration order, which
    follows Python's per-process string hashing, so the same adapter trained in two processes
    got two `adapter_config.json`s, two hashes and two policy ids (a run resumed after its
    training finished evaluated a "different" policy than an uninterrupted run)."""
    config = json.loads(path.read_text())
    for key in ("target_modules", "exclude_modules"):
        if isinstance(config.get(key), list):
            config[key] = sorted(config[key])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _result_from(adapter_dir: Path, policy: Policy) -> TrainResult:
    import json

    manifest = json.loads((adapter_dir / "manifest.json").read_text())
    new = policy.with_adapter(adapter_dir)
    if new.adapter_hashes[-1] != manifest["adapter_hash"]:
        raise TrainingError(f"{adapter_dir} does not match its manifest (files changed after "
                            "training): delete the directory and re-run the training task")
    return TrainResult(policy=new, adapter=str(adapter_dir),
                       adapter_hash=manifest["adapter_hash"], pairs=manifest["data"]["rows"],
                       steps=manifest["steps"], resumed_from=manifest["resumed_from"],
                       metrics=manifest["metrics"])


# ----------------------------------------------------------------------------------------------
# Prefect task


EARLIER_PROBE = 32  # earlier chosen solutions whose likelihood the collapse probe follows


def earlier_examples(shards: Sequence[Shard], n: int = EARLIER_PROBE) -> list[tuple[str, str]]:
    """(prompt, chosen) of earlier cycles' pairs: n of them, spread by a hash of their text so
    the sample does not favour one cycle or one problem."""
    import hashlib

    from tasks.pairs import Pair

    seen = {(p.prompt, p.chosen) for shard in shards for p in shard.read(Pair)}
    ranked = sorted(seen, key=lambda pc: hashlib.sha256("\0".join(pc).encode()).hexdigest())
    return ranked[:n]


@task(name="train", task_run_name="train[policy={policy.id}]", **cached())
def train_task(ctx: CycleContext, pairs: Shard, policy: Policy, training: TrainingConfig,
               held_out_ids: tuple[str, ...], earlier: list[Shard]) -> TrainResult:
    """A new adapter on this cycle's pairs. Not retried: a failure here is not transient. Run
    it again (resume the run) and it continues from its last checkpoint.

    Refuses pairs of a held-out (dev or test) problem. `earlier`: the pairs of the run's earlier
    cycles, for the collapse probe (see `earlier_chosen_logps`)."""
    from tasks.pairs import Pair
    from tasks.problems.leaks import check_not_held_out
    from tasks.records import digest

    check_not_held_out([p.problem_id for p in pairs.read(Pair)], held_out_ids, "training data")
    config_hash = digest(training.model_dump(mode="json"))
    # a directory per input and per version of the training code: a finished adapter (or a
    # checkpoint) of other inputs, or of training code since changed, is never reused, while a
    # killed training resumed with the same code finds its checkpoints
    where = Path(ctx.stage_dir("train")) / digest(pairs.sha256, policy.id, config_hash,
                                                  ctx.dtype, ctx.seed, source_hash(train))[:12]
    return train(pairs.path, policy, training, ctx.dtype, where, ctx.seed,
                 pairs_sha256=pairs.sha256, config_hash=config_hash,
                 earlier=earlier_examples(earlier),
                 config_file=str(Path(ctx.run_dir) / "config.yaml"),
                 run=(ctx.run_id, str(Path(ctx.run_dir).parent)), device=ctx.device)


def main(argv: list[str] | None = None) -> None:
    import argparse

    from tasks.config import load_config
    from tasks.policy import base_policy

    parser = argparse.ArgumentParser(description="train a LoRA adapter on a pair file")
    parser.add_argument("pairs")
    parser.add_argument("out_dir")
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--adapter", action="append", default=[],
                        help="an adapter of the policy to train from, on policy.base (repeat, "
                             "oldest first); the model card of an adapter lists its parent's")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    policy = base_policy(cfg.policy.base)
    for adapter in args.adapter:
        policy = policy.with_adapter(Path(adapter).expanduser().resolve())
    result = train(args.pairs, policy, cfg.training, cfg.policy.dtype, args.out_dir,
                   cfg.run.seed, config_hash=cfg.section_hash("training"),
                   config_file=args.config, device=cfg.policy.device)
    print(result.model_dump_json(indent=2))


if __name__ == "__main__":
    main()
