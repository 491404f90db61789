# Two entry points, each installing what it needs into .venv on first use:
#   make demo   - the main job on the embedded CPU default
#   make test   - the test suite
VENV   ?= .venv
PYTHON ?= python3
# torch as the machine provides it: 2.13.0 is the local CPU wheel on our build machines.
TORCH_SPEC ?= torch==2.13.0
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.pirl-installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml Makefile scripts/install_system_deps.sh
	bash scripts/install_system_deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[train,sim,libero,log,export,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/pirl-train pipeline --config configs/cpu_demo.yaml --out runs/demo

test: $(STAMP)
	$(VENV)/bin/ruff check training deploy calibration tests benchmarks
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) benchmarks/policy_latency.py

clean:
	rm -rf $(VENV) runs
