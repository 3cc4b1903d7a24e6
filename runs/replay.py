"""``python -m runs.replay <result file> replicate=<r>``: refit one replicate of a study job.

A result file's rows say everything that made them: the study, seed, scenario and its parameters,
prior and hyperparameters, NUTS settings, and the replicate index. ``job_config`` rebuilds the
job's config from them and checks it against the file's ``config_hash`` (a file written by
another results version cannot be replayed: its hash no longer matches). ``replay`` then
simulates that one data set and fits it alone with its own sampler key: since every data set's
data and key depend only on (seed, cell, replicate) and the engine fits each data set on its own,
this gives the stored rows, the floats to float32 rounding (``reproduced``; ``tests/test_resume.py``
checks it). A divergent,
non-finite or failed fit can so be looked at on its own, and refitted with other settings:

    python -m runs.replay results/default/<file>.parquet replicate=7
    python -m runs.replay results/default/<file>.parquet replicate=7 inference.target_accept=0.95

prints, per estimand, the stored and the replayed posterior mean and sd, R-hat, and the fits'
status, and says whether the replay reproduced the stored rows. Nothing is written.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

import models
import sim
from models.engine import Inference
from runs import config, job
from runs.checks import ConfigError, require

COMPARED = ["true_value", "posterior_mean", "posterior_sd", "posterior_median", "lower_50",
            "upper_50", "lower_80", "upper_80", "lower_90", "upper_90", "lower_95", "upper_95",
            "truth_cdf", "rhat", "ess_bulk", "n_divergent", "n_max_treedepth", "n_leapfrog",
            "status", "skip_reason"]
"""The columns a replay must reproduce."""


def job_config(table: pd.DataFrame, path) -> DictConfig:
    """The config of the job whose rows are ``table`` (from file ``path``); ConfigError if it
    cannot be rebuilt exactly."""
    first = table.iloc[0]
    scenario = str(first["scenario"])
    require(scenario in sim.available(), "scenario", scenario,
                    f"one of {', '.join(sim.available())}")
    spec = str(first["prior_spec"])
    require(spec in models.available(), "prior_spec", spec,
                    f"one of {', '.join(models.available())}")
    module = models.load(spec)
    function = module.estimate if hasattr(module, "estimate") else module.model
    cfg = {
        "study": first["study"],
        "seed": first["seed"],
        "replicates": table["replicate"].nunique(),
        "results_root": str(Path(path).resolve().parent.parent),
        "force": False,
        "memory_budget_gb": 2.0,
        "compilation_cache": None,
        "scenario": {"name": scenario, **{
            k: first[k] for k in _keyword_only(sim.load(scenario).simulate)
        }},
        "prior": {
            "name": first["prior"], "spec": spec,
            "parameterization": first["prior_parameterization"],
            "hyper": {k: first[f"prior_{k}"] for k in _keyword_only(function)},
        },
        "inference": {f.name: first[f.name] for f in dataclasses.fields(Inference)},
    }
    if first.get("replicates_mode") == "auto":  # the count came from the job's auto block
        cfg["replicates"] = "auto"
        cfg["auto"] = {
            "estimand": first["auto_estimand"], "pilot": first["auto_pilot"],
            "batch": first["auto_batch"], "cap": first["auto_cap"],
            "targets": {c[len("auto_target_"):]: first[c] for c in table.columns
                        if c.startswith("auto_target_")},
        }
    cfg = OmegaConf.create(_plain(cfg))
    stored = str(first["config_hash"])
    rebuilt = config.config_hash(config.identity(cfg))
    require(
        rebuilt == stored, "config_hash", stored,
        f"the hash of the rebuilt job ({rebuilt}); the file was written by another results "
        "version of the code, so a replay would not reproduce it",
    )
    return cfg


def _keyword_only(function) -> list[str]:
    return [n for n, p in inspect.signature(function).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY]


def _plain(value):
    """numpy scalars as Python numbers, so OmegaConf takes them and checks see their types."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value.item() if isinstance(value, np.generic) else value


def replay(path, replicate: int, overrides: list[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(stored rows, replayed rows) of replicate ``replicate`` of the job in file ``path``, the
    replay with ``overrides`` (``key=value``, e.g. ``inference.target_accept=0.95``) applied."""
    path = Path(path)
    table = pd.read_parquet(path)
    cfg = job_config(table, path)
    replicates = sorted(table["replicate"].unique())
    require(replicate in replicates, "replicate", replicate,
                    f"a replicate of the file: 0 to {max(replicates)}")
    for word in overrides:
        key, sep, value = word.partition("=")
        require(bool(sep) and OmegaConf.select(cfg, key) is not None, key, value,
                        "a key of the job's config, as key=value (e.g. inference.draws=2000)")
        OmegaConf.update(cfg, key, _parse(value))
    config.validate(cfg, writable=False)
    job.use_compilation_cache(None)
    stored = table[table["replicate"] == replicate].reset_index(drop=True)
    # the sampler runs on as many groups as it ran in the job (``fit_groups``: padded where the
    # job's study padded it, ``models.padding``), which its rounding depends on
    fit_groups = int(stored["fit_groups"].iloc[0])
    replayed = job.compute(cfg, np.array([replicate]), fit_groups).reset_index(drop=True)
    return stored, replayed


def _parse(value: str):
    """A command-line value as Hydra reads it (int, float, bool, null or text)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_override(f"x={value}").value()


ROUNDING = 1e-5
"""Relative difference allowed in a float column: a data set refitted alone runs in a program of
another batch size, whose float32 reductions may round differently in the last digits."""


def reproduced(stored: pd.DataFrame, replayed: pd.DataFrame) -> bool:
    """Whether the replay gives the stored rows: every column that is not a float exactly, the
    floats to float32 rounding (``ROUNDING``), NaN where they have NaN."""
    for column in COMPARED:
        a, b = stored[column].to_numpy(), replayed[column].to_numpy()
        if a.shape != b.shape:
            return False
        if np.issubdtype(a.dtype, np.floating) and np.issubdtype(b.dtype, np.floating):
            if not np.allclose(a, b, rtol=ROUNDING, atol=0.0, equal_nan=True):
                return False
        elif not stored[column].equals(replayed[column]):
            return False
    return True


def describe(stored: pd.DataFrame, replayed: pd.DataFrame) -> str:
    first = stored.iloc[0]
    side = pd.DataFrame({
        "param": stored["param"], "index": stored["index"], "truth": stored["true_value"],
        "stored mean": stored["posterior_mean"], "replayed mean": replayed["posterior_mean"],
        "stored sd": stored["posterior_sd"], "replayed sd": replayed["posterior_sd"],
        "stored rhat": stored["rhat"], "replayed rhat": replayed["rhat"],
    })
    lines = [
        f"replicate {first['replicate']} of {first['scenario']} / prior {first['prior']} "
        f"(seed {first['seed']}, config_hash {first['config_hash']})",
        side.to_string(index=False, float_format=lambda v: f"{v:.4g}"),
        f"status: stored {first['status']} ({first['n_divergent']} divergent), replayed "
        f"{replayed['status'].iloc[0]} ({replayed['n_divergent'].iloc[0]} divergent)"
        + (f"; {replayed['skip_reason'].iloc[0]}" if replayed["skip_reason"].iloc[0] else ""),
        "reproduced: the replay gives the stored rows (floats to float32 rounding)" if reproduced(stored, replayed)
        else "not reproduced: the replay differs from the stored rows",
    ]
    return "\n".join(lines)


HELP = """python -m runs.replay <result file> replicate=<r> [key=value ...]: refit one replicate of a
study job alone and print its stored and replayed summaries side by side. Nothing is written.

  <result file>     a job's parquet file, e.g. results/default/<file>.parquet
  replicate=<r>     the replicate index (an integer >= 0) of a row of that file
  key=value         any key of the job's config, to refit with other settings,
                    e.g. inference.target_accept=0.95 or inference.draws=2000

Commands:
  python -m runs.replay results/default/<file>.parquet replicate=7
  python -m runs.replay results/default/<file>.parquet replicate=7 inference.target_accept=0.95

Its own parser, not Hydra: the config it refits is rebuilt from the rows of a result file, which
no config file composes."""


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("--help", "-h") for a in argv):
        print(HELP)
        return
    files = [a for a in argv if "=" not in a]
    rest = [a for a in argv if "=" in a]
    replicate = [a.partition("=")[2] for a in rest if a.startswith("replicate=")]
    overrides = [a for a in rest if not a.startswith("replicate=")]
    try:
        require(len(files) == 1 and Path(files[0]).is_file(), "file",
                files[0] if files else None, "one result file (a .parquet path)")
        require(len(replicate) == 1 and replicate[0].isdigit(), "replicate",
                replicate[0] if replicate else None, "one integer >= 0")
        stored, replayed = replay(files[0], int(replicate[0]), overrides)
    except ConfigError as err:
        sys.exit(f"error: {err}")
    print(describe(stored, replayed))


if __name__ == "__main__":
    main()
