"""Analyse: prior specifications (one NumPyro model per file) and the engine that fits them.

A prior spec is a module ``models/<name>.py`` that says so with ``SPEC = True`` (the other modules
are machinery) and defines ``model(data, **hyper)``: a NumPyro
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
import re
from pathlib import Path
from types import ModuleType

_MARKER = re.compile(r"^SPEC\s*=\s*True\b", re.M)


def available() -> list[str]:
    """Names of the prior specs: the modules of this package that set ``SPEC = True`` (read from
    their source, so listing them imports none)."""
    folder = Path(__path__[0])
    return sorted(
        m.name
        for m in pkgutil.iter_modules(__path__)
        if not m.name.startswith("_")
        and _MARKER.search((folder / f"{m.name}.py").read_text(encoding="utf-8"))
    )


def load(name: str) -> ModuleType:
    """The prior-spec module ``models/<name>.py``; a clear error names the known ones."""
    if name not in available():
        raise ValueError(f"unknown prior spec {name!r}; known prior specs: {', '.join(available())}")
    return importlib.import_module(f"{__name__}.{name}")
