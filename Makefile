# Two commands do everything on a fresh Debian-like machine with Python 3.11:
#   make run    set up, then run the project's main job on the embedded default
#   make test   set up, then run the whole test suite
VENV := .venv
PY := $(VENV)/bin/python
AUTODIDACT := $(VENV)/bin/autodidact

.PHONY: setup run test bench clean-sandbox

setup:
	@bash scripts/setup.sh

run: setup
	$(AUTODIDACT) sandbox canonical --suite humaneval

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/sandbox_throughput.py

# remove sandbox containers left by a killed process
clean-sandbox:
	-docker rm -f $$(docker ps -aq --filter label=autodidact.sandbox=1) 2>/dev/null
