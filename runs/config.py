"""Checks on a job's config, made before any compute, and the job's identity.

The schema of a config is the dataclasses below (the keys besides the groups, with their types)
plus ``models.engine.Inference`` (the NUTS settings), each scenario's ``simulate`` signature and
``CONSTRAINTS``, and each prior spec's keyword arguments, ``CHOICES`` and ``POSITIVE``. Every check
raises ``ConfigError`` with one line that names the key, the offending value and what is allowed.
``check_group_choices`` checks the config-group names of a command line before Hydra composes it
(Hydra's own message for an unknown name runs over twenty lines), and ``check_keys`` that the keys
it sets exist.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, OmegaConf

import models
import sim
from models.engine import ESTIMANDS, PARAMETERIZATIONS, RESULTS_VERSION, Inference, method
from models.nuts import MAX_TREE_DEPTH
from runs.checks import ConfigError, is_int, is_number, require

CONF = Path(__file__).resolve().parent.parent / "conf"
"""The folder of the Hydra configs; a sub-folder of yaml files is a config group."""




@dataclasses.dataclass(frozen=True)
class Study:
    """The keys of a study job (``conf/study.yaml``) besides its groups."""

    study: str  # the study's name, its folder under results_root: letters, digits, _ - .
    seed: int  # study seed, >= 0: with the scenario and its parameters it fixes every data set
    replicates: int | str  # simulated data sets per cell, >= 1, or auto (see runs.auto)
    results_root: str  # folder of one sub-folder per study; must be a folder we can write in
    force: bool  # recompute a job whose result file exists
    memory_budget_gb: float  # memory the engine may use for draws at once, > 0
    compilation_cache: Optional[str]  # persistent XLA cache folder; null disables it
    auto: Optional[dict]  # settings of replicates=auto (runs.auto); may be absent otherwise


OPTIONAL_KEYS = ("auto",)
"""Keys of a schema that a config may leave out (``auto`` is needed with replicates=auto only)."""


@dataclasses.dataclass(frozen=True)
class Fit:
    """The keys of a ``runs.fit`` job (``conf/fit.yaml``) besides its groups."""

    dataset: str  # a shipped data set's name or a CSV path (sim.datasets checks it)
    seed: int  # sampler seed, >= 0
    results_root: str  # summaries land in results_root/fit/<dataset>/
    memory_budget_gb: float  # memory the engine may use for draws at once, > 0
    compilation_cache: Optional[str]  # persistent XLA cache folder; null disables it


GROUPS = ("scenario", "prior", "inference")
"""The config groups of a job; ``hydra`` (Hydra's own node) is not checked here."""

_STUDY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")

_RULES = {  # key: (check, what is allowed), beyond the type the schema gives
    "study": (lambda v: bool(_STUDY_NAME.fullmatch(v)),
              "a folder name of letters, digits, '_', '-' and '.' (not starting with '.')"),
    "seed": (lambda v: v >= 0, "an integer >= 0"),
    "replicates": (lambda v: v == "auto" or (is_int(v) and v >= 1),
                   "an integer >= 1, or auto (as many as the targets in auto need)"),
    "memory_budget_gb": (lambda v: v > 0, "a number > 0"),
    "results_root": (lambda v: v != "", "a folder"),
    "dataset": (lambda v: v != "", "a data set's name or a CSV path"),
}

_TYPES = {  # the schema's field types: (check, what is allowed)
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (is_int, "an integer"),
    "float": (is_number, "a finite number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "Optional[str]": (lambda v: v is None or isinstance(v, str), "a folder or null"),
    "int | str": (lambda v: is_int(v) or isinstance(v, str), "an integer"),
    "Optional[dict]": (lambda v: v is None or isinstance(v, (dict, DictConfig)),
                       "a block of settings or null"),
}


def _validate_keys(cfg: DictConfig, schema) -> None:
    """The keys besides the groups: exactly the schema's, each of its type and in range."""
    fields = {f.name: f.type for f in dataclasses.fields(schema)}
    given = [k for k in cfg.keys() if k not in GROUPS and k != "hydra"]
    for key in given:
        require(key in fields, key, cfg[key],
                 f"not a key of this config; its keys are {', '.join([*fields, *GROUPS])}")
    for key, kind in fields.items():
        if key in OPTIONAL_KEYS and key not in cfg:
            continue
        require(key in cfg, key, None, "a value is needed")
        value = cfg[key]
        ok, allowed = _TYPES[kind]
        require(ok(value), key, value, _RULES.get(key, (None, allowed))[1])
        if key in _RULES:
            require(_RULES[key][0](value), key, value, _RULES[key][1])


def validate(cfg: DictConfig, writable: bool = True) -> None:
    """Raise ConfigError on the first value of ``cfg`` that cannot be run (a study job's config,
    or ``runs.fit``'s, which has a dataset instead of a scenario and replicates). With
    ``writable``, the folder the job writes in must be one where files can be written."""
    _validate_keys(cfg, Study if "scenario" in cfg else Fit)
    if "scenario" in cfg:
        _validate_scenario(cfg.scenario)
        if cfg.replicates == "auto":
            validate_auto(cfg.get("auto"))
    validate_prior(cfg.prior)
    _validate_inference(cfg.inference)
    if writable:
        folder = Path(cfg.results_root) / (cfg.study if "scenario" in cfg else "fit")
        check_writable(folder, "results_root", cfg.results_root)


_INFERENCE_MINIMA = {  # key: (smallest allowed value, why if not obvious)
    "chains": (2, " (R-hat compares chains)"),
    "warmup": (1, ""),
    "draws": (4, " (split R-hat, ESS)"),
    "max_tree_depth": (1, ""),
}


def _validate_inference(inf) -> None:
    """Exactly the fields of ``models.engine.Inference``: integers above their minima and a
    target acceptance rate in (0, 1)."""
    fields = [f.name for f in dataclasses.fields(Inference)]
    for key in inf.keys():
        require(key in fields, f"inference.{key}", inf[key],
                 f"not a NUTS setting; the settings are {', '.join(fields)}")
    for key in fields:
        require(key in inf, f"inference.{key}", None, "a value is needed")
    for key, (least, why) in _INFERENCE_MINIMA.items():
        require(is_int(inf[key]) and inf[key] >= least, f"inference.{key}", inf[key],
                 f"an integer >= {least}{why}")
    require(inf.max_tree_depth <= MAX_TREE_DEPTH, "inference.max_tree_depth",
            inf.max_tree_depth, f"an integer from 1 to {MAX_TREE_DEPTH} (the deepest tree the "
            "sampler builds: models.nuts.MAX_TREE_DEPTH)")
    require(inf.target_accept == "auto"
            or (is_number(inf.target_accept) and 0 < inf.target_accept < 1),
            "inference.target_accept", inf.target_accept,
            "auto (models.engine.TARGET_ACCEPT_AUTO) or a number in (0, 1)")


def validate_auto(block) -> None:
    """The ``auto`` block of a job with replicates=auto (``runs.auto``): exactly its settings,
    an estimand family, at least one target (a known measure and an MCSE > 0), a pilot of at
    least 2 replicates, a batch of at least 1 and a cap of at least one batch."""
    from runs import auto

    if isinstance(block, dict):
        block = OmegaConf.create(block)
    settings = ", ".join(auto.SETTINGS)
    require(isinstance(block, (dict, DictConfig)), "auto", block,
             f"a block of settings with {settings}, needed with replicates=auto")
    for key in block.keys():
        require(key in auto.SETTINGS, f"auto.{key}", block[key],
                 f"not a setting of replicates=auto; the settings are {settings}")
    for key in auto.SETTINGS:
        require(key in block and block[key] is not None, f"auto.{key}", None,
                 "a value is needed with replicates=auto")
    require(block.estimand in ESTIMANDS, "auto.estimand", block.estimand,
             f"an estimand family: one of {', '.join(ESTIMANDS)}")
    targets = block.targets
    require(isinstance(targets, (dict, DictConfig)) and len(targets) > 0, "auto.targets",
             _plain(targets), "one or more measures, each with the Monte Carlo SE wanted, e.g. "
             "{coverage_90: 0.01, rmse_rel: 0.02}")
    for name, value in targets.items():
        require(name in auto.TARGETS, f"auto.targets.{name}", value,
                 f"a measure: one of {', '.join(auto.TARGETS)}")
        require(is_number(value) and value > 0, f"auto.targets.{name}", value,
                 "a number > 0 (the Monte Carlo SE wanted; relative for a name ending in _rel)")
    require(is_int(block.pilot) and 2 <= block.pilot <= auto.MAX_CAP, "auto.pilot", block.pilot,
             f"an integer from 2 (the pilot estimates a variance) to {auto.MAX_CAP}")
    require(is_int(block.batch) and block.batch >= 1, "auto.batch", block.batch,
             "an integer >= 1")
    require(is_int(block.cap) and block.batch <= block.cap <= auto.MAX_CAP, "auto.cap",
             block.cap, f"an integer from auto.batch ({block.batch}) to {auto.MAX_CAP}")


def _plain(value):
    return OmegaConf.to_container(value) if isinstance(value, DictConfig) else value


def check_writable(folder, key: str = "results_root", value=None) -> None:
    """``folder`` exists and takes files, or can be created: its nearest existing ancestor is a
    folder where a probe file can be created (and is removed at once). Nothing is left behind."""
    value = str(folder) if value is None else value
    existing = Path(folder).absolute()
    try:
        while not existing.exists():
            existing = existing.parent
    except OSError as err:
        require(False, key, value, f"a folder where files can be written ({err.strerror})")
    require(existing.is_dir(), key, value,
             f"a folder where files can be written; {existing} is a file")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".hierbench-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        require(False, key, value,
                 f"a folder where files can be written; no file can be created in {existing} "
                 f"({err.strerror})")


def parse_overrides(args: list[str]) -> list:
    """(Hydra override, its word) for each ``key=value`` word of a command line; none for a
    line with a syntax error (Hydra reports it with its position)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    words = [a for a in args if "=" in a and not a.startswith("-")]
    try:
        return list(zip(OverridesParser.create().parse_overrides(words), words))
    except Exception:  # noqa: BLE001
        return []


def check_group_choices(args: list[str], conf: Path = CONF) -> None:
    """The config-group choices on a command line (``prior=nope``, ``scenario=a,b``,
    ``+experiment=x``) name files that exist in ``conf/<group>/``; other words, and Hydra's own
    groups (``hydra/launcher=...``, whose choices come from plugins too), are left to Hydra."""
    from hydra.core.override_parser.types import ChoiceSweep

    for o, _ in parse_overrides(args):
        folder = conf / o.key_or_group
        if (o.package is not None or o.is_delete() or not folder.is_dir()
                or o.key_or_group.startswith("hydra")):  # Hydra's groups: plugins add choices
            continue
        value = o.value()
        if isinstance(value, ChoiceSweep):
            values = value.list
        elif isinstance(value, str):
            values = [value]
        else:  # glob(...) picks among the known ones; ranges are not names
            continue
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        for v in values:
            require(str(v) in known, o.key_or_group, v, f"one of {', '.join(known)}")


def check_command_line(args: list[str], config_name: str) -> None:
    """Before Hydra starts: ``runs.app.check_command_line`` (groups, choices and keys checked in
    one line each; ``--cfg`` on a sweep's first job)."""
    from runs import app

    app.check_command_line(args, config_name)


def first_job_words(args: list[str], conf: Path = CONF) -> list[str] | None:
    """The ``key=value`` words of a command line with each sweep (``a,b``, ``glob(*)``,
    ``range(...)``) replaced by its first value: the words of the sweep's first job. Hydra's own
    keys are left out; None where a value would need quoting (left to Hydra and the preflight)."""
    from hydra.core.override_parser.types import ChoiceSweep, Glob

    first = []
    for o, word in parse_overrides(args):
        if o.key_or_group.startswith("hydra"):  # Hydra's own settings and plugin groups
            continue
        value = o.value()
        if o.is_sweep_override():
            if isinstance(value, ChoiceSweep):
                v = value.list[0]
            elif isinstance(value, Glob):  # the first name it picks in the group's folder
                v = next(iter(value.filter(sorted(p.stem for p in (conf / o.key_or_group).glob(
                    "*.yaml")))), None)
            else:  # range(...), interval(...)
                v = getattr(value, "start", None)
            if v is None or not re.fullmatch(r"[\w.\-/]+", str(v)):
                return None
            word = f"{o.get_key_element()}={v}"
        first.append(word)
    return first


def check_keys(args: list[str], config_name: str, conf: Path = CONF) -> None:
    """The keys a command line sets without ``+`` (``replicates=5``, ``scenario.tau=1,4``) are
    keys of the config it composes (``+bogus=1`` adds a key; ``bogus=1`` is a typo). Checked on
    the sweep's first job, after ``check_group_choices``; the preflight composes the other jobs."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    if any(a.split("=")[0] in ("--config-name", "-cn", "--config-path", "-cp", "--config-dir",
                                "-cd") for a in args):
        return  # another primary config than config_name: left to Hydra
    words = first_job_words(args, conf)
    if words is None:
        return
    groups = {p.name for p in conf.iterdir() if p.is_dir()}
    given = {o.key_or_group: word.split("=", 1)[1] for o, word in parse_overrides(args)}
    plain, structural = [], []
    for o, word in parse_overrides(words):
        is_plain = not (o.package is not None or o.is_add() or o.is_delete()
                        or o.key_or_group in groups)
        (plain if is_plain else structural).append((o.key_or_group, word))
    absent = object()
    try:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
            cfg = compose(config_name, overrides=[w for _, w in structural])
            for key, word in plain:
                if OmegaConf.select(cfg, key, default=absent) is absent:
                    value = given.get(key, word.split("=", 1)[1])
                    require(False, key, value,
                            f"{key} is not a key of the {config_name} config (a typo? "
                            f"+{key}={value} adds a new key)")
            compose(config_name, overrides=words)
    except HydraException as err:
        raise ConfigError(" ".join(str(err).split())) from None


def _validate_scenario(sc) -> None:
    """The scenario exists; its parameters are those of its simulator, each finite, with the
    common ones in range and the others as the simulator's ``CONSTRAINTS`` say."""
    require(sc.name in sim.available(), "scenario", sc.name, f"one of {', '.join(sim.available())}")
    module = sim.load(sc.name)
    wanted = {
        name for name, p in inspect.signature(module.simulate).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    given = {k for k in sc.keys() if k != "name"}
    for key in sorted(given - wanted):
        require(False, f"scenario.{key}", sc[key],
                 f"not a parameter of scenario {sc.name}; it takes {', '.join(sorted(wanted))}")
    for key in sorted(wanted - given):
        require(False, f"scenario.{key}", None, f"scenario {sc.name} needs a value for it")
    for key in sorted(given):
        require(is_number(sc[key]), f"scenario.{key}", sc[key], "a finite number")
    for key in ("tau", "sigma"):
        if key in sc:
            require(sc[key] > 0, f"scenario.{key}", sc[key], "a number > 0")
    if "n_groups" in sc:
        require(isinstance(sc.n_groups, int) and sc.n_groups >= 2, "scenario.n_groups",
                 sc.n_groups, "an integer >= 2")
    if "group_size" in sc:
        require(isinstance(sc.group_size, int) and sc.group_size >= 1, "scenario.group_size",
                 sc.group_size, "an integer >= 1")
    for key, (allowed, ok) in getattr(module, "CONSTRAINTS", {}).items():
        require(bool(ok(sc[key])), f"scenario.{key}", sc[key], allowed)


def validate_prior(prior) -> None:
    """The prior's name, spec, parameterization and hyperparameters."""
    require(isinstance(prior.name, str) and prior.name.isidentifier(), "prior.name",
             prior.name, "a name of letters, digits and underscores")
    require(prior.spec in models.available(), "prior.spec", prior.spec,
             f"one of {', '.join(models.available())}")
    spec = models.load(prior.spec)
    allowed = getattr(spec, "PARAMETERIZATIONS", PARAMETERIZATIONS)
    require(prior.parameterization in allowed, "prior.parameterization",
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
        require(False, f"prior.hyper.{key}", hyper[key],
                 f"not a hyperparameter of {prior}; it takes {', '.join(sorted(wanted)) or 'none'}")
    for key in sorted(wanted - given):
        require(False, f"prior.hyper.{key}", None, f"{prior} needs a value for it")
    choices = getattr(module, "CHOICES", {})
    for key, value in hyper.items():
        name = f"prior.hyper.{key}"
        if key in choices:
            require(value in choices[key], name, value, f"one of {', '.join(choices[key])}")
        else:
            require(is_number(value), name, value, "a finite number")
            if key.endswith(("scale", "df")) or key in positive:
                require(value > 0, name, value, "a number > 0")


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
        "replicates": "auto" if cfg.replicates == "auto" else int(cfg.replicates),
        # the auto settings decide how many replicates run: part of the job when used
        **({"auto": OmegaConf.to_container(cfg.auto)} if cfg.replicates == "auto" else {}),
        "scenario": OmegaConf.to_container(cfg.scenario),
        "prior": OmegaConf.to_container(cfg.prior),
        "inference": OmegaConf.to_container(cfg.inference),
    }


def fit_columns(cfg: DictConfig, hyper: dict, fit_form: str, inference: Inference,
                fit_groups: int) -> dict:
    """The identity columns of a fit's rows that name its prior and sampler (``runs.job`` and
    ``runs.fit`` put the cell's or the data set's columns before them); ``fit_form`` is the
    parameterization the fits ran (``models.engine.form``: ``auto`` resolved), ``inference``
    the settings they ran (``models.engine.settings``: ``target_accept="auto"`` resolved),
    ``fit_groups`` the number of groups the sampler ran (``models.engine.sampler_groups``)."""
    return {
        "prior": cfg.prior.name,
        "prior_spec": cfg.prior.spec,
        "method": method(cfg.prior.spec),
        "prior_parameterization": cfg.prior.parameterization,
        "fit_parameterization": fit_form,
        "fit_target_accept": float(inference.target_accept),
        "fit_groups": int(fit_groups),
        **{f"prior_{k}": v for k, v in hyper.items()},
        **OmegaConf.to_container(cfg.inference),
        "seed": int(cfg.seed),
    }


def config_hash(ident: dict) -> str:
    """12 hex digits of the SHA-256 of the identity in canonical JSON (numbers as floats)."""
    canonical = json.dumps(ident, sort_keys=True, default=str, separators=(",", ":"))
    canonical = json.dumps(json.loads(canonical, parse_int=float), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]
