#!/usr/bin/env bash
# The GPU check: run it on a machine with an NVIDIA GPU (`make gpu-check`). About 10 minutes on
# one GPU, after set-up. It
#   1. checks that nvidia-smi answers, runs `make setup` (which installs the CUDA build of torch
#      when nvidia-smi answers) and checks that torch sees CUDA;
#   2. runs the smoke cycle (configs/smoke.yaml) with policy.device=cuda and QLoRA
#      (training.quantization=nf4) in a fresh run store: sampling, self-debug, the temperature
#      sweep, training on the cycle's pairs and the dev and test evaluations, all on the GPU;
#   3. evaluates the base policy greedily on all 164 HumanEval problems (configs/default.yaml's
#      chat format, no samples) on the GPU;
#   4. checks that every stage recorded the GPU: the `engine.json` of each sampling stage and
#      evaluation says device cuda, and the adapter's manifest says cuda, NF4 with double
#      quantisation and the paged optimizer;
#   5. prints the times and pass rates beside the CPU figures of docs/results.md.
# It exits 1 when CUDA is missing, a command fails, or a stage ran on the CPU. The store is kept
# (its path is printed): GPU_CHECK_STORE=DIR puts it there.
set -euo pipefail
cd "$(dirname "$0")/.."
AUTODIDACT=.venv/bin/autodidact
PY=.venv/bin/python
fail() { printf 'gpu_check: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf 'gpu_check: %s\n' "$*"; }

# -- 1. a GPU, and a torch that sees it ------------------------------------------------------
command -v nvidia-smi >/dev/null 2>&1 ||
    fail "nvidia-smi is not on PATH: this machine has no NVIDIA driver, so there is no GPU to check"
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1) ||
    fail "nvidia-smi does not answer: $gpu"
# set-up after the GPU is known to be there (a second time it takes about a second): it installs
# torch's CUDA build because nvidia-smi answers, and stops if that torch cannot use the GPU
bash scripts/setup.sh || fail "make setup failed (its message is above)"
"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' ||
    fail "torch $("$PY" -c 'import torch; print(torch.__version__)') does not see CUDA: run
  'make setup' again on this machine (it installs the CUDA build of torch when nvidia-smi answers;
  for a driver older than that build's CUDA, TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
  make setup, or the index of your driver's CUDA)"
say "GPU: $gpu"

STORE=${GPU_CHECK_STORE:-$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")}
mkdir -p "$STORE"
say "run store: $STORE"
GPU=(--set policy.device=cuda --set tracking.enabled=false)

# -- 2. the smoke cycle, QLoRA ------------------------------------------------------------------
t0=$(date +%s)
"$AUTODIDACT" cycle --config smoke --store "$STORE/smoke" "${GPU[@]}" \
    --set training.quantization=nf4 | tee "$STORE/smoke.log" ||
    fail "the smoke cycle failed (log: $STORE/smoke.log)"
smoke_s=$(( $(date +%s) - t0 ))

# -- 3. greedy HumanEval, 164 problems -----------------------------------------------------------
t0=$(date +%s)
"$AUTODIDACT" evaluate --config default --split test --store "$STORE/humaneval" "${GPU[@]}" \
    --set evaluation.n_samples=0 | tee "$STORE/humaneval.log" ||
    fail "the HumanEval evaluation failed (log: $STORE/humaneval.log)"
eval_s=$(( $(date +%s) - t0 ))

# -- 4 and 5. every stage on the GPU; the figures ------------------------------------------------
"$PY" - "$STORE" "$smoke_s" "$eval_s" <<'PY'
import json
import sys
from pathlib import Path

store, smoke_s, eval_s = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
problems = []
engines = sorted(store.rglob("*engine.json"))


def stage(path: Path) -> str:
    """smoke/<run>/cycle-1/<stage>/..., smoke/<run>/evaluations/..., humaneval/evaluations/..."""
    parts = path.relative_to(store).parts
    if parts[0] == "humaneval":
        return "humaneval"
    return parts[3] if parts[2] == "cycle-1" else parts[2]


for path in engines:
    record = json.loads(path.read_text())
    if record.get("device") != "cuda":
        problems.append(f"{path.relative_to(store)}: {record}")
for needed in sorted({"sample", "explore", "evaluations", "humaneval"}
                     - {stage(p) for p in engines}):
    problems.append(f"no engine record of {needed}: the stage did not sample")
adapters = sorted((store / "smoke").rglob("adapter/manifest.json"))
if not adapters:
    problems.append("no adapter was trained: the smoke cycle mined no trainable pairs, so QLoRA "
                    "was not exercised (see smoke.log)")
for path in adapters:
    manifest = json.loads(path.read_text())
    bnb = manifest.get("bitsandbytes") or {}
    got = (manifest.get("device"), bnb.get("bnb_4bit_quant_type"),
           bnb.get("bnb_4bit_use_double_quant"), manifest.get("optimizer"))
    if got != ("cuda", "nf4", True, "paged_adamw_8bit"):
        problems.append(f"{path.relative_to(store)}: trained with (device, quant type, double "
                        f"quant, optimizer) = {got}, not ('cuda', 'nf4', True, "
                        "'paged_adamw_8bit')")
if problems:
    print("gpu_check: FAILED: a stage did not run as it should on the GPU:", *problems,
          sep="\n  ", file=sys.stderr)
    sys.exit(1)

summary = json.loads(next((store / "smoke").glob("*/cycle-1/summary.json")).read_text())
trained = json.loads(adapters[-1].read_text())
result = json.loads(next((store / "humaneval").rglob("result.json")).read_text())
passed, total = sum(o["greedy_passed"] for o in result["outcomes"]), len(result["outcomes"])


def minutes(s: float) -> str:
    return f"{int(s) // 60} min {int(s) % 60:02d} s"


print(f"""
every stage ran on the GPU ({len(engines)} engine records, {len(adapters)} adapter(s)).

| measurement | this GPU | 2 CPU cores (docs/results.md) |
|---|---|---|
| smoke cycle, command to exit (NF4 QLoRA here; bf16 LoRA there) | {minutes(smoke_s)} | 3 min 14 s |
| its training: {trained['steps']} steps on {trained['data']['rows']} pairs | {trained['metrics'].get('train_runtime_s', 0):.0f} s | - |
| HumanEval 164, greedy, chat: whole command | {minutes(eval_s)} | 3 min 19 s (OpenVINO int8) |
| HumanEval 164, greedy pass@1 | {passed}/{total} = {passed / total:.3f} | 94/164 = 0.573 |

smoke cycle, dev greedy pass@1 {summary.get('dev', {}).get('pass1_greedy', float('nan')):.3f}, test greedy pass@1 {summary.get('test', {}).get('pass1_greedy', float('nan')):.3f} (8 problems each: a check, not a measurement)""")
PY
say "passed"
