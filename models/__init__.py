"""Analyse: prior specifications (one NumPyro model per file) and the engine that fits them.

A prior spec is a module ``models/<name>.py`` that defines ``model(data, **hyper)``: a NumPyro
model of one data set, whose group effects are the sample site ``theta`` (shape (J,)) and whose
group-level parameters, where the spec has them, are ``mu`` and ``tau``. ``data`` is the dict a
simulator returns for one replicate (see ``models.likelihood``). Its hyperparameters, with their
defaults, live in ``conf/prior/<name>.yaml``. Adding a spec is adding those two files. A spec
that cannot be non-centered says so with ``PARAMETERIZATIONS = ("centered",)``; a string
hyperparameter lists its allowed values in ``CHOICES``. Numeric hyperparameters whose name ends
in ``scale`` must be > 0.

This package never imports ``sim``.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

# Modules of this package that are machinery, not prior specs.
_MACHINERY = {"engine", "nuts", "diagnostics", "likelihood", "priors", "closed_form", "collapse", "exact"}


def available() -> list[str]:
    """Names of the prior specs that ship with hierbench."""
    return sorted(
        m.name
        for m in pkgutil.iter_modules(__path__)
        if not m.name.startswith("_") and m.name not in _MACHINERY
    )


def load(name: str) -> ModuleType:
    """The prior-spec module ``models/<name>.py``; a clear error names the known ones."""
    if name not in available():
        raise ValueError(f"unknown prior spec {name!r}; known prior specs: {', '.join(available())}")
    return importlib.import_module(f"{__name__}.{name}")
