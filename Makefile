# mmedge — one command each on a fresh CPU machine: `make demo`, `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install mutate demo test lint bench gpu-check clean

install: $(STAMP)

# Re-run when the project's dependencies change. The pinned CPU torch goes in first, so that
# the `train` extra's `torch>=…` is already satisfied and no multi-GB CUDA build is pulled.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[train,dev,serve,openvino]"
	# type stubs only: their `tensorrt` dependency cannot be installed without NVIDIA's index
	$(PY) -m pip install -q --no-deps "tensorrt-stubs>=10.0"
	touch $(STAMP)

# Mutation testing of the trust-boundary and numeric modules ([tool.mutmut] in pyproject.toml; results
# and the reasons for each surviving mutant: docs/mutation.md). Works in mutants/ (deleted first); the
# plugin in tests/reliability trains and exports the tiny model once instead of once per mutant.
MUTATE_JOBS ?= 2
mutate: install
	rm -rf mutants
	MMEDGE_TEST_FIXTURE_CACHE=$(CURDIR)/mutants/fixture-cache PYTHONPATH=$(CURDIR)/tests/reliability \
		$(VENV)/bin/mutmut run --max-children $(MUTATE_JOBS)
	$(VENV)/bin/mutmut results

demo: install
	$(VENV)/bin/mmedge demo

test: install
	$(PY) -m pytest -q --timeout=900

lint: install
	$(VENV)/bin/ruff check mmedge tests benchmarks
	$(PY) tests/runtime/backends/tensorrt/test_typing.py .mypy_stubs
	$(VENV)/bin/mypy mmedge

bench: install
	$(VENV)/bin/mmedge bench --suite benchmarks/suite.yaml

gpu-check: install
	bash benchmarks/gpu_check.sh

clean:
	rm -rf runs export/*/ .pytest_cache .mypy_cache .ruff_cache
