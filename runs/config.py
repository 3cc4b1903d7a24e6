"""Checks on a job's config, made before any compute, and the job's identity.

Every check raises ``ConfigError`` with one line that names the key, the offending value and what
is allowed.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math

from omegaconf import DictConfig, OmegaConf

import models
import sim
from models.engine import PARAMETERIZATIONS, RESULTS_VERSION, Inference


class ConfigError(ValueError):
    """A config value that cannot be run."""


def _require(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_INFERENCE_MINIMA = {  # key: (smallest allowed value, why if not obvious)
    "chains": (2, " (R-hat compares chains)"),
    "warmup": (1, ""),
    "draws": (4, " (split R-hat, ESS)"),
    "max_tree_depth": (1, ""),
}


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError on the first value of ``cfg`` that cannot be run (a study job's config,
    or ``runs.fit``'s, which has a dataset instead of a scenario and replicates)."""
    if "scenario" in cfg:
        _validate_scenario(cfg.scenario)
    validate_prior(cfg.prior)
    inf = cfg.inference
    for key, (least, why) in _INFERENCE_MINIMA.items():
        _require(isinstance(inf[key], int) and inf[key] >= least, f"inference.{key}", inf[key],
                 f"an integer >= {least}{why}")
    _require(_is_number(inf.target_accept) and 0 < inf.target_accept < 1,
             "inference.target_accept", inf.target_accept, "a number in (0, 1)")
    if "replicates" in cfg:
        _require(isinstance(cfg.replicates, int) and cfg.replicates >= 1, "replicates",
                 cfg.replicates, "an integer >= 1")
    _require(isinstance(cfg.seed, int) and cfg.seed >= 0, "seed", cfg.seed, "an integer >= 0")


def _validate_scenario(sc) -> None:
    """The scenario exists; its parameters are those of its simulator, each finite, with the
    common ones in range and the others as the simulator's ``CONSTRAINTS`` say."""
    _require(sc.name in sim.available(), "scenario", sc.name, f"one of {', '.join(sim.available())}")
    module = sim.load(sc.name)
    wanted = {
        name for name, p in inspect.signature(module.simulate).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    given = {k for k in sc.keys() if k != "name"}
    for key in sorted(given - wanted):
        _require(False, f"scenario.{key}", sc[key],
                 f"not a parameter of scenario {sc.name}; it takes {', '.join(sorted(wanted))}")
    for key in sorted(wanted - given):
        _require(False, f"scenario.{key}", None, f"scenario {sc.name} needs a value for it")
    for key in sorted(given):
        _require(_is_number(sc[key]), f"scenario.{key}", sc[key], "a finite number")
    for key in ("tau", "sigma"):
        if key in sc:
            _require(sc[key] > 0, f"scenario.{key}", sc[key], "a number > 0")
    if "n_groups" in sc:
        _require(isinstance(sc.n_groups, int) and sc.n_groups >= 2, "scenario.n_groups",
                 sc.n_groups, "an integer >= 2")
    if "group_size" in sc:
        _require(isinstance(sc.group_size, int) and sc.group_size >= 1, "scenario.group_size",
                 sc.group_size, "an integer >= 1")
    for key, (allowed, ok) in getattr(module, "CONSTRAINTS", {}).items():
        _require(bool(ok(sc[key])), f"scenario.{key}", sc[key], allowed)


def validate_prior(prior) -> None:
    """The prior's name, spec, parameterization and hyperparameters."""
    _require(isinstance(prior.name, str) and prior.name.isidentifier(), "prior.name",
             prior.name, "a name of letters, digits and underscores")
    _require(prior.spec in models.available(), "prior.spec", prior.spec,
             f"one of {', '.join(models.available())}")
    spec = models.load(prior.spec)
    allowed = getattr(spec, "PARAMETERIZATIONS", PARAMETERIZATIONS)
    _require(prior.parameterization in allowed, "prior.parameterization",
             prior.parameterization, f"one of {', '.join(allowed)} for spec {prior.spec}")
    _validate_hyper(spec, prior.spec, prior.hyper)


def _validate_hyper(module, prior: str, hyper) -> None:
    """Hyperparameters: exactly the spec's keyword arguments; strings from the spec's
    ``CHOICES``; numbers finite, and > 0 for names ending in ``scale`` or ``df`` and those the
    spec lists in ``POSITIVE``."""
    function = module.estimate if hasattr(module, "estimate") else module.model
    positive = set(getattr(module, "POSITIVE", ()))
    wanted = {
        name for name, p in inspect.signature(function).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    given = set(hyper.keys())
    for key in sorted(given - wanted):
        _require(False, f"prior.hyper.{key}", hyper[key],
                 f"not a hyperparameter of {prior}; it takes {', '.join(sorted(wanted)) or 'none'}")
    for key in sorted(wanted - given):
        _require(False, f"prior.hyper.{key}", None, f"{prior} needs a value for it")
    choices = getattr(module, "CHOICES", {})
    for key, value in hyper.items():
        name = f"prior.hyper.{key}"
        if key in choices:
            _require(value in choices[key], name, value, f"one of {', '.join(choices[key])}")
        else:
            _require(_is_number(value), name, value, "a finite number")
            if key.endswith(("scale", "df")) or key in positive:
                _require(value > 0, name, value, "a number > 0")


def scenario_params(cfg: DictConfig) -> dict:
    """The scenario's parameters (everything in its config but its name)."""
    return {k: v for k, v in OmegaConf.to_container(cfg.scenario).items() if k != "name"}


def inference(cfg: DictConfig) -> Inference:
    return Inference(**OmegaConf.to_container(cfg.inference))


def identity(cfg: DictConfig) -> dict:
    """Everything that determines a job's results: its hash names the job's result file."""
    return {
        "results_version": RESULTS_VERSION,
        "study": cfg.study,
        "seed": int(cfg.seed),
        "replicates": int(cfg.replicates),
        "scenario": OmegaConf.to_container(cfg.scenario),
        "prior": OmegaConf.to_container(cfg.prior),
        "inference": OmegaConf.to_container(cfg.inference),
    }


def config_hash(ident: dict) -> str:
    """12 hex digits of the SHA-256 of the identity in canonical JSON (numbers as floats)."""
    canonical = json.dumps(ident, sort_keys=True, default=str, separators=(",", ":"))
    canonical = json.dumps(json.loads(canonical, parse_int=float), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]
