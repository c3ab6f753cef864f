# Everything runs in ./.venv, created from nothing on first use (only python3 is needed).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

BENCH_VENV := .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python

# make dist: build and twine in .venv-dist; the built wheel is tried in a fresh .venv-dist-check.
DIST_VENV := .venv-dist
DIST_PY := $(DIST_VENV)/bin/python
DIST_CHECK_VENV := .venv-dist-check

# make test-deps: the unit and emulator suites with the lowest versions pyproject allows and
# with the newest available, each in an environment of its own.
LOWEST_VENV := .venv-lowest
NEWEST_VENV := .venv-newest

# make docs: mkdocs in an environment of its own, the site in site/ (--strict: a broken link
# or reference fails the build).
DOCS_VENV := .venv-docs

.PHONY: help demo test test-live test-deps soak bench lint format docs dist clean

help:
	@echo "make demo       run a chain and a streamed answer against the bundled local emulator"
	@echo "make test       run every test offline (unit, emulator, integration, notebooks)"
	@echo "make test-live  run the live tests against https://chatgpt.es (or CHATGPTES_LIVE_URLS)"
	@echo "make soak       2,000 calls at concurrency 64 with 5% random faults (loopback)"
	@echo "make bench      side-by-side benchmark vs g4f's ChatGptEs and a raw POST (writes docs/assets/benchmarks.*)"
	@echo "make test-deps  the unit and emulator suites with the lowest and the newest dependencies"
	@echo "make docs       build the documentation site into site/ (strict)"
	@echo "make lint       ruff and mypy"
	@echo "make format     ruff format and import sorting"
	@echo "make dist       build sdist and wheel into dist/, twine check, check their contents,"
	@echo "                install the wheel in a fresh venv and run its CLI against the emulator"
	@echo "make clean      remove the virtual environments, dist/ and caches"

$(VENV)/.installed-%: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$*]"
	touch $@

demo: $(VENV)/.installed-emulator
	$(PY) examples/demo.py

# One worker per core (pytest-xdist): about half the time on this 2-core machine.
test: $(VENV)/.installed-test
	$(PY) -m pytest tests -n auto --benchmark-disable --ignore=tests/soak

# $(call suites,VENV,PIP-ARGS): a fresh environment with these requirements, then the suites.
define suites
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install -q --upgrade pip
	$(1)/bin/python -m pip install -q $(2)
	$(1)/bin/python -m pip list 2>/dev/null | grep -E "^(curl_cffi|langchain-core|json-repair) "
	$(1)/bin/python -m pytest tests/unit_tests tests/emulator_tests -n auto --benchmark-disable -q
endef

test-deps:
	rm -rf $(LOWEST_VENV) $(NEWEST_VENV)
	$(call suites,$(LOWEST_VENV),-e ".[test]" $$($(PYTHON) scripts/lowest_requirements.py))
	$(call suites,$(NEWEST_VENV),--upgrade --upgrade-strategy eager -e ".[test]")

$(DOCS_VENV)/.installed: pyproject.toml
	test -x $(DOCS_VENV)/bin/python || $(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/python -m pip install -q --upgrade pip
	$(DOCS_VENV)/bin/python -m pip install -q -e ".[docs]"
	touch $@

docs: $(DOCS_VENV)/.installed
	$(DOCS_VENV)/bin/python -m mkdocs build --strict

soak: $(VENV)/.installed-test
	$(PY) -m pytest tests/soak -s

# Against chatgpt.es, or the sites listed in CHATGPTES_LIVE_URLS when it is set.
test-live: $(VENV)/.installed-test
	CHATGPTES_LIVE=1 $(PY) -m pytest tests/integration_tests/test_live.py

# The benchmark has its own environment; g4f (the seed implementations) goes into --target
# folders on PYTHONPATH of their own client processes only, never into an environment.
$(BENCH_VENV)/.installed: pyproject.toml
	test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install -q --upgrade pip
	$(BENCH_PY) -m pip install -q -e ".[bench]"
	$(BENCH_PY) -m pip install -q --upgrade --target .bench/g4f-0.5.2.0 "g4f==0.5.2.0"
	$(BENCH_PY) -m pip install -q --upgrade --target .bench/g4f-0.4.8.0 "g4f==0.4.8.0" "aiohttp==3.11.11"
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_PY) benchmarks/bench.py
	$(BENCH_PY) -m pytest tests/benchmarks --benchmark-only --benchmark-columns=min,median,iqr,ops

lint: $(VENV)/.installed-lint $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy langchain_chatgptes tests examples benchmarks scripts

format: $(VENV)/.installed-lint
	$(PY) -m ruff format .
	$(PY) -m ruff check --select I --fix .

# The release tools have their own environment (nothing of the package is installed there).
$(DIST_VENV)/.installed: Makefile
	test -x $(DIST_PY) || $(PYTHON) -m venv $(DIST_VENV)
	$(DIST_PY) -m pip install -q --upgrade pip
	$(DIST_PY) -m pip install -q --upgrade "build>=1.2" "twine>=6.1" "readme-renderer[md]>=44"
	touch $@

# Build from a clean dist/, check both files, then install the wheel (not the checkout) with
# its emulator extra into a venv made anew each time, and run its command line from a folder
# outside the checkout, so that only what the wheel carries can answer.
dist: $(DIST_VENV)/.installed
	rm -rf dist
	$(DIST_PY) -m build --outdir dist .
	$(DIST_PY) -m twine check --strict dist/*
	$(DIST_PY) scripts/check_dist.py contents dist
	$(DIST_PY) scripts/check_dist.py readme dist
	rm -rf $(DIST_CHECK_VENV)
	$(PYTHON) -m venv $(DIST_CHECK_VENV)
	$(DIST_CHECK_VENV)/bin/python -m pip install -q "$$(ls dist/*.whl)[emulator]"
	$(DIST_PY) scripts/check_dist.py smoke $(DIST_CHECK_VENV)

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(DIST_VENV) $(DIST_CHECK_VENV) $(LOWEST_VENV) $(NEWEST_VENV) \
		$(DOCS_VENV) .bench build dist site .cache *.egg-info .mypy_cache .ruff_cache
