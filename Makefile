# Two commands do everything on a fresh Debian-like machine with Python 3.11:
#   make run    set up, then one smoke self-training cycle on the real default model
#   make test   set up, then run the whole test suite
VENV := .venv
PY := $(VENV)/bin/python
AUTODIDACT := $(VENV)/bin/autodidact

.PHONY: setup run test bench clean-sandbox deploy worker

setup:
	@bash scripts/setup.sh

run: setup
	$(AUTODIDACT) cycle --config smoke

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/sandbox_throughput.py
	$(PY) benchmarks/sampling_throughput.py
	$(PY) benchmarks/training_throughput.py

# remove sandbox containers left by a killed process
clean-sandbox:
	-docker rm -f $$(docker ps -aq --filter label=autodidact.sandbox=1) 2>/dev/null

# Register the deployments of prefect.yaml (nightly-self-training, evaluate) with the local
# Prefect server, then `make worker` runs them (leave it running, e.g. under systemd or tmux).
deploy: setup
	$(AUTODIDACT) server
	PREFECT_API_URL=http://127.0.0.1:4200/api $(VENV)/bin/prefect work-pool inspect autodidact-process >/dev/null 2>&1 || \
	  PREFECT_API_URL=http://127.0.0.1:4200/api $(VENV)/bin/prefect work-pool create autodidact-process --type process
	AUTODIDACT_ROOT=$(CURDIR) PREFECT_API_URL=http://127.0.0.1:4200/api $(VENV)/bin/prefect --no-prompt deploy --all

worker: setup
	$(AUTODIDACT) server
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH PREFECT_API_URL=http://127.0.0.1:4200/api $(VENV)/bin/prefect worker start --pool autodidact-process
