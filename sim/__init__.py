"""Generate: simulators of replicate data sets, one file per scenario.

A scenario module ``sim/<name>.py`` defines ``simulate(keys, **params)`` returning
``(data, truth)``: two dicts of arrays whose leading axis is the replicate (one per key) and whose
second axis (where there is one) is the group. ``data`` holds sufficient statistics, so that what a
model costs does not grow with the group size; ``truth`` holds the parameter values that generated
it. Its parameters, with their defaults, live in ``conf/scenario/<name>.yaml``; a parameter with a
range other than "a finite number" says so in the module's ``CONSTRAINTS`` ({name: (what is
allowed, predicate)}). Adding a scenario is adding those two files. ``simulate`` runs as one
compiled program per scenario and integer parameters: the parameters its signature annotates
``float`` are the program's inputs, the others are compiled in.

``sim.datasets`` holds the real data sets, in the same data forms.

Seeds follow the common-random-numbers rule: the data of replicate ``r`` of a cell depend only on
the study seed, the scenario's name and parameters, and ``r`` — never on the prior being fitted,
nor on how many replicates are asked for. Every prior spec therefore sees the same data sets.

This package imports nothing else of hierbench.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import json
import pkgutil
from types import ModuleType

import jax
import numpy as np


def available() -> list[str]:
    """Names of the scenarios that ship with hierbench (one module each)."""
    return sorted(
        m.name
        for m in pkgutil.iter_modules(__path__)
        if not m.name.startswith("_") and not m.ispkg  # sim.datasets holds real data, not a scenario
    )


def load(name: str) -> ModuleType:
    """The scenario module ``sim/<name>.py``; a clear error names the known ones."""
    if name not in available():
        raise ValueError(f"unknown scenario {name!r}; known scenarios: {', '.join(available())}")
    return importlib.import_module(f"{__name__}.{name}")


def cell_key(seed: int, scenario: str, params: dict) -> jax.Array:
    """The PRNG key of one cell: a function of (study seed, scenario name, its parameters) only.

    Parameters are hashed in a canonical JSON form (sorted keys, floats written exactly), so that
    ``tau=1`` and ``tau=1.0`` name the same cell and the key is stable across Python processes.
    """
    canonical = json.dumps(
        {"scenario": scenario, **{k: _canonical(v) for k, v in params.items()}}, sort_keys=True
    )
    digest = int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:4], "little")
    return jax.random.fold_in(jax.random.key(int(seed)), digest)


DATA_STREAM, FIT_STREAM = 0, 1
"""A cell's key is split into two streams before any replicate index is folded in: one for the
data, one for whatever a fit needs (MCMC), so no replicate's data key can equal a fit key."""


def replicate_keys(cell: jax.Array, replicates: np.ndarray, stream: int = DATA_STREAM) -> jax.Array:
    """One key per replicate index of a stream: replicate ``r`` gets the same key whatever else
    is drawn."""
    base = jax.random.fold_in(cell, stream)
    return jax.vmap(lambda r: jax.random.fold_in(base, r))(np.asarray(replicates, dtype=np.uint32))


def simulate(name: str, seed: int, replicates, **params) -> tuple[dict, dict]:
    """Simulate the given replicate indices of a cell of scenario ``name``.

    ``replicates`` is an int R (meaning replicates 0..R-1) or an array of replicate indices.
    Returns ``(data, truth)`` as dicts of NumPy arrays with a leading replicate axis.
    """
    module = load(name)
    idx = np.arange(replicates) if np.ndim(replicates) == 0 else np.asarray(replicates)
    keys = replicate_keys(cell_key(seed, name, params), idx)
    floats = _float_params(module)
    static = tuple(sorted((k, (type(v), v)) for k, v in params.items() if k not in floats))
    dynamic = {k: np.float32(v) for k, v in params.items() if k in floats}
    try:
        program = _program(name, static)
    except TypeError:  # a parameter that cannot key the cache (a list): run it op by op
        program = functools.partial(module.simulate, **{k: v for k, (_, v) in static})
    data, truth = program(keys, **dynamic)
    return _to_numpy(data), _to_numpy(truth)


@functools.cache
def _float_params(module: ModuleType) -> frozenset:
    """The parameters the scenario's ``simulate`` annotates ``float``: inputs of its program;
    the others (``int``: group counts and sizes) fix shapes and are compiled in."""
    return frozenset(name for name, p in inspect.signature(module.simulate).parameters.items()
                     if p.annotation in ("float", float))


@functools.cache
def _program(name: str, static: tuple):
    """The scenario's simulation as one compiled program per (scenario, integer parameters):
    run op by op, its few dozen operations would each be compiled on their own."""
    return jax.jit(functools.partial(load(name).simulate, **{k: v for k, (_, v) in static}))


def _canonical(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value).hex()
    return value


def _to_numpy(tree: dict) -> dict:
    return {k: np.asarray(v) for k, v in tree.items()}
