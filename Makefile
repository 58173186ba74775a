# Set-up and the two main jobs. TORCH_SPEC is installed first so pip never pulls a torch build
# you did not choose: the default is the CPU wheel; on a CUDA machine use e.g. `make demo TORCH_SPEC=torch`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install pmo-install demo test test-slow test-avx2 lint format docs clean

$(BIN)/molvae: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

# PyTDC (the PMO benchmark's reference oracles, `pmo:<task>` objectives) goes in with --no-deps:
# its declared dependencies pin numpy<2, pandas<3 and rdkit<2024 and would downgrade the stack;
# the second line adds the few packages its oracles import (setuptools<81 keeps pkg_resources).
PMO_STAMP := $(VENV)/.pmo-installed
$(PMO_STAMP): $(BIN)/molvae
	$(BIN)/python -m pip install --quiet --no-deps "PyTDC==1.1.15"
	$(BIN)/python -m pip install --quiet "setuptools<81" requests fuzzywuzzy huggingface_hub
	@touch $@

install: $(BIN)/molvae $(PMO_STAMP)  ## create the virtual environment and install molvae (and PyTDC)

pmo-install: $(PMO_STAMP)  ## PyTDC's PMO oracles for `pmo:<task>` objectives (part of install)

demo: install  ## the main job: a short BO campaign with the bundled model and data
	$(BIN)/molvae optimize --budget 100 --batch-size 25 --out campaigns/demo

test: install  ## the quick suite: every test but the end-to-end ones marked slow (CPU, minutes)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: install  ## the end-to-end tests (whole campaigns, kills and resumes, benchmark smokes)
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

# The tests float rounding could move (and the constrained acquisition), with PyTorch's and oneDNN's kernels capped at AVX2.
ROUNDING_TESTS := tests/test_conditional.py tests/test_model.py tests/test_codec.py tests/test_grammar.py tests/test_decoding.py tests/test_grammar_property.py tests/test_prior.py tests/test_train_gru.py tests/test_train_resume.py tests/test_constraints.py tests/test_bo_candidates.py
test-avx2: install  ## model/decoding/codec/grammar tests as on an AVX2-only CPU
	ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 $(BIN)/python -m pytest -q $(ROUNDING_TESTS)

lint: install
	$(BIN)/ruff check molvae tests pipelines
	$(BIN)/ruff format --check molvae tests pipelines

docs: install  ## the documentation site (mkdocs.yml, docs/) into site/; a warning fails it
	$(BIN)/mkdocs build --strict --site-dir site

format: install
	$(BIN)/ruff check --fix molvae tests pipelines
	$(BIN)/ruff format molvae tests pipelines

clean:
	rm -rf $(VENV) build dist site *.egg-info .pytest_cache .ruff_cache
