# hierbench: `make study` and `make test` set everything up on a fresh machine (Python >= 3.11).
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
SYNCED := $(VENV)/.synced
STUDY ?= default
ARGS ?=
WORKERS ?= 2
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# installed modules compiled to bytecode once, at install: every process (a study, each worker,
# a cold job) then starts without compiling the sources of JAX, NumPyro, pandas, SciPy ... again,
# also where PYTHONDONTWRITEBYTECODE keeps Python from caching them itself
export UV_COMPILE_BYTECODE := 1

.PHONY: env study smoke figures report scenarios sbc paper paper-efron-morris paper-rat-tumors paper-gelman2006 paper-bda3-eight-schools paper-funnel bench test test-slow test-all clean

env: $(SYNCED)

# uv itself lives in a small private venv, so nothing outside the checkout is touched.
$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The locked environment: exactly the versions in uv.lock, the project installed editable.
$(SYNCED): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

# The study, then its figures and report.html (analysis.report draws the figures it embeds). A
# report newer than every result file and every analysis module is kept: a rerun with nothing
# changed ends after the preflight. Extra overrides in ARGS, e.g. make study ARGS="scenario.tau=1".
study: env
	$(PY) -m runs.study study=$(STUDY) $(ARGS)
	@if [ -f results/$(STUDY)/report.html ] && [ -z "$$(find results/$(STUDY) -maxdepth 1 -name '*.parquet' -newer results/$(STUDY)/report.html; find analysis -name '*.py' -newer results/$(STUDY)/report.html)" ]; then \
		echo "results/$(STUDY)/report.html is newer than every result file: kept"; \
	else $(PY) -m analysis.report results_dir=results/$(STUDY); fi

# A first result in about a minute: conf/experiment/smoke.yaml, then its figures and report.
smoke: env
	$(PY) -m runs.study +experiment=smoke $(ARGS)
	$(PY) -m analysis.report results_dir=results/smoke reference=no_pooling_ml

figures: env
	$(PY) -m analysis.figures results_dir=results/$(STUDY)

report: env
	$(PY) -m analysis.report results_dir=results/$(STUDY)

# Every scenario (heavy tails, sparse, bimodal, outlier, unbalanced, known sigma, binomial) x every prior.
scenarios: env
	$(PY) -m runs.study +experiment=scenarios
	$(PY) -m analysis.report results_dir=results/scenarios

# Published figures reproduced (docs/paper.md); each PNG lands beside its data in results/paper/.
paper: paper-gelman2006 paper-efron-morris paper-bda3-eight-schools paper-funnel paper-rat-tumors

# Gelman (2006), Figures 1 and 2: posterior draws of tau under uniform, inverse-gamma and half-Cauchy priors.
paper-gelman2006: env
	$(PY) -m runs.paper +figure=gelman2006_fig1
	$(PY) -m analysis.paper.gelman2006 results_dir=results/paper/gelman2006_fig1
	$(PY) -m runs.paper +figure=gelman2006_fig2
	$(PY) -m analysis.paper.gelman2006 results_dir=results/paper/gelman2006_fig2

# BDA3 5.5 (Figures 5.5-5.7): p(tau | y), E and sd of theta_j | tau, y computed exactly; NUTS draws of tau beside them.
paper-bda3-eight-schools: env
	$(PY) -m runs.paper +figure=bda3_eight_schools
	$(PY) -m analysis.paper.bda3_eight_schools results_dir=results/paper/bda3_eight_schools

# Centered vs non-centered eight schools: the funnel of theta_1 against log tau, divergent transitions marked.
paper-funnel: env
	$(PY) -m runs.paper +figure=funnel
	$(PY) -m analysis.paper.funnel results_dir=results/paper/funnel

# Efron & Morris (1975): every prior on the 18 players' first 45 at-bats; shrinkage figure and TSE table.
paper-efron-morris: env
	$(PY) -m runs.fit -m +comparison=efron_morris
	$(PY) -m analysis.paper.efron_morris results_dir=results/paper/efron_morris

# BDA3 Figure 5.4: 71 rat-tumour rates, observed against posterior means with 95 % intervals.
paper-rat-tumors: env
	$(PY) -m runs.fit -m +comparison=rat_tumors
	$(PY) -m analysis.paper.rat_tumors results_dir=results/paper/rat_tumors

# Simulation-based calibration of every spec that makes draws: rank tables, test, histograms.
sbc: env
	$(PY) -m runs.sbc out=results/sbc
	$(PY) -m analysis.sbc results_dir=results/sbc

# Throughput benchmark (docs/benchmark.md): hierbench's engine against nutpie and Stan (PyStan)
# on the model as users write it and collapsed by hand, a NumPyro loop, a reused NumPyro MCMC
# and PyMC, then cold starts, scaling in J and memory.
# Extra overrides in ARGS, e.g. make bench ARGS="memory_replicates=100 baseline_replicates=5".
# PyMC comes from the optional `bench` extra, synced from the same uv.lock into an environment of
# its own: .venv keeps exactly what `make test` and `make study` install (uv sync installs no
# extras, and would take PyMC out of .venv again at the next sync).
BENCH_VENV := $(TOOLS)/bench-venv
BENCH_SYNCED := $(BENCH_VENV)/.synced

$(BENCH_SYNCED): pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(BENCH_VENV) $(UV) sync --frozen --extra bench --python $(PYTHON)
	@touch $@

bench: $(BENCH_SYNCED)
	$(BENCH_VENV)/bin/python -m runs.bench $(ARGS)

# Tests run on WORKERS processes (pytest-xdist): 2 unless given, e.g. make test WORKERS=8.
test: env
	$(PY) -m pytest -n $(WORKERS)

test-slow: env
	$(PY) -m pytest -n $(WORKERS) -m slow

test-all: env
	$(PY) -m pytest -n $(WORKERS) -m "slow or not slow"

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache
