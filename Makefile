# cnnconv: `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev
ESTAMP := $(VENV)/.installed-experiments

.PHONY: help venv install install-dev lint typecheck doctest test demo bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The stamps are redone whenever pyproject.toml changes.
$(ESTAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[experiments]'
	touch $@

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(ESTAMP)

install: $(ESTAMP)  ## create .venv and install cnnconv with the experiments extra
install-dev: $(STAMP)  ## create .venv and install cnnconv with the dev extra

lint: $(STAMP)  ## ruff: lint and formatting of the library
	$(PY) -m ruff check cnnconv
	$(PY) -m ruff format --check cnnconv

typecheck: $(STAMP)  ## mypy on the library (settings in pyproject.toml)
	$(PY) -m mypy

doctest: $(STAMP)  ## run every example in the library's docstrings
	$(PY) -m pytest -q -p no:cacheprovider --doctest-modules cnnconv

test: lint typecheck doctest  ## lint, type check, doctests, then the whole test suite
	$(PY) -m pytest -q

demo: $(ESTAMP)  ## run the quick edge-learning experiment and write its report
	$(PY) -m experiments.demo

bench: $(STAMP)  ## print the filter and FFT benchmark tables
	$(PY) -m experiments.bench_filters
	$(PY) -m experiments.bench_fft

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .hypothesis
