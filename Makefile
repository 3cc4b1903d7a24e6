# hierbench: `make study` and `make test` set everything up on a fresh machine (Python >= 3.11).
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
SYNCED := $(VENV)/.synced
STUDY ?= default
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: env study figures test test-slow test-all clean

env: $(SYNCED)

# uv itself lives in a small private venv, so nothing outside the checkout is touched.
$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The locked environment: exactly the versions in uv.lock, the project installed editable.
$(SYNCED): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

study: env
	$(PY) -m runs.study study=$(STUDY)
	$(PY) -m analysis.figures results_dir=results/$(STUDY)

figures: env
	$(PY) -m analysis.figures results_dir=results/$(STUDY)

test: env
	$(PY) -m pytest

test-slow: env
	$(PY) -m pytest -m slow

test-all: env
	$(PY) -m pytest -m "slow or not slow"

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache
