"""``stan_collapsed``: Stan (PyStan) on the collapsed model the engine samples, written by hand
(``runs.bench.written``): tau and sigma sampled, mu and theta drawn exactly in generated
quantities."""

from __future__ import annotations

from runs.bench import stan

NAME = "stan_collapsed"
LABEL = "Stan (PyStan), collapsed model written by hand"
ALL_DATA_SETS = False
missing = stan.missing


def run(task) -> dict:
    return stan.run(task, form="collapsed")
