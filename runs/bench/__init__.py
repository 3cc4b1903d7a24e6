"""``python -m runs.bench``: fits per second of hierbench's engine against the usual ways of
fitting the same model, on one machine, in one run (docs/benchmark.md is the reference).

On the reference workload (``runs.bench.common``), the engine fits ``replicates`` data sets and
each peer the first ``baseline_replicates`` of them; the report gives each method's s/fit,
ESS/s and peak memory, the ratios of the engine's fits per second to each peer's against the
targets, a check that the methods agree on the posterior means and sds of the same data sets,
and the engine's cost as J and the group size grow and its memory on many groups. Every method
runs in a child process of its own (``runs.bench.child``), in rounds that interleave them
(``runs.bench.__main__``); ``runs.bench.report`` builds the report.

A method is a module of this package, registered in ``METHODS`` below, with::

    NAME = "pymc"                      # its key in conf/bench.yaml's `methods`
    LABEL = "PyMC, compiled once, pm.set_data"   # its row label in the report
    ALL_DATA_SETS = False              # True: it fits all `replicates` data sets (the engine's
                                       # rows); False: the round's share of the
                                       # `baseline_replicates` data sets (common.baseline_share)
    def missing() -> str | None: ...   # None if it can run here, else a one-line reason (the
                                       # row is skipped with it)
    def run(task: dict) -> dict: ...   # the fits; returns the result (common.baseline_result)

``missing`` and ``run`` are called in the method's child process, ``missing`` first. ``task``
holds the settings of conf/bench.yaml and ``baseline_share``. A new peer is one such module and
its name in ``METHODS`` (and in the default ``methods`` of conf/bench.yaml to run it by default).
The sections ``scaling`` and ``memory`` make no row: they have ``NAME`` and ``run`` only.
"""

from __future__ import annotations

import importlib


def _modules(*names: str) -> dict:
    """{NAME: module} of the modules ``runs.bench.<name>``."""
    modules = [importlib.import_module(f"{__name__}.{name}") for name in names]
    return {module.NAME: module for module in modules}


METHODS = _modules("engine", "engine_processes", "nutpie", "nutpie_collapsed", "stan",
                   "stan_collapsed", "numpyro_loop", "numpyro_reused", "pymc")
"""The report's rows, in the order a round runs them (and the next round reverses)."""
SECTIONS = _modules("cold", "scaling", "memory")
"""The engine alone, once, after the rounds."""
ENGINES = tuple(name for name, m in METHODS.items() if m.ALL_DATA_SETS)
BASELINES = tuple(name for name, m in METHODS.items() if not m.ALL_DATA_SETS)


def label(name: str, settings: dict) -> str:
    """A row's name and LABEL in the report (engine_processes' with its number of processes)."""
    if name not in METHODS:
        return name
    processes = METHODS["engine_processes"].n_processes(settings)
    return f"{name}: {METHODS[name].LABEL.format(processes=processes)}"
