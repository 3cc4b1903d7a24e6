"""``nutpie_collapsed``: nutpie on the collapsed model the engine samples, written by hand in
PyMC (``runs.bench.written``), mu and theta drawn exactly after sampling, timed with the fit."""

from __future__ import annotations

from runs.bench import nutpie

NAME = "nutpie_collapsed"
LABEL = "nutpie, collapsed PyMC model written by hand"
ALL_DATA_SETS = False
missing = nutpie.missing


def run(task) -> dict:
    return nutpie.run(task, form="collapsed")
