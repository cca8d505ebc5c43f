# Two commands do everything on a fresh Debian-like machine with Python 3.11:
#   make run    set up, then one smoke self-training cycle on the real default model
#   make test   set up, then run the whole test suite
VENV := .venv
PY := $(VENV)/bin/python
AUTODIDACT := $(VENV)/bin/autodidact

.PHONY: setup run test bench docs clean-sandbox deploy worker gpu-check

setup:
	@bash scripts/setup.sh

run: setup
	$(AUTODIDACT) cycle --config smoke

test: setup
	$(PY) -m pytest -q --durations=25

bench: setup
	$(PY) benchmarks/sandbox_throughput.py
	$(PY) benchmarks/sampling_throughput.py
	$(PY) benchmarks/training_throughput.py

# On a machine with an NVIDIA GPU: the smoke cycle with QLoRA and greedy HumanEval on the GPU,
# failing when a stage ran on the CPU; prints times and pass rates beside the CPU figures. The
# script runs the set-up itself, after it has seen a GPU (without one it fails at once)
gpu-check:
	bash scripts/gpu_check.sh

# The documentation site (mkdocs.yml, docs/), offline; --strict fails on a broken link or a missing
# page. `$(VENV)/bin/mkdocs serve` serves it while you edit. NO_MKDOCS_2_WARNING silences
# Material's banner announcing its end of life (May 2027) and its successor.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir .autodidact/site

# remove sandbox containers left by a killed process
clean-sandbox:
	-docker rm -f $$(docker ps -aq --filter label=autodidact.sandbox=1) 2>/dev/null

# Aliases of `autodidact deploy` (register prefect.yaml's nightly and evaluate deployments on the
# process work pool of the local Prefect server, or PREFECT_API_URL) and `autodidact worker` (runs
# them: leave it running, e.g. under systemd or tmux).
deploy: setup
	$(AUTODIDACT) deploy

worker: setup
	$(AUTODIDACT) worker
