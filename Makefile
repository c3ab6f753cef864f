# Everything runs in ./.venv, created from nothing on first use (only python3 is needed).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: help demo test test-live lint format clean

help:
	@echo "make demo       run a chain and a streamed answer against the bundled local emulator"
	@echo "make test       run every test offline (unit, emulator, integration, notebooks)"
	@echo "make test-live  also run the tests against the real https://chatgpt.es"
	@echo "make lint       ruff and mypy"
	@echo "make format     ruff format and import sorting"

$(VENV)/.installed-%: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$*]"
	touch $@

demo: $(VENV)/.installed-emulator
	$(PY) examples/demo.py

test: $(VENV)/.installed-test
	$(PY) -m pytest tests

test-live: $(VENV)/.installed-test
	CHATGPTES_LIVE=1 $(PY) -m pytest tests/integration_tests/test_live.py

lint: $(VENV)/.installed-lint $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy langchain_chatgptes tests examples

format: $(VENV)/.installed-lint
	$(PY) -m ruff format .
	$(PY) -m ruff check --select I --fix .

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache
