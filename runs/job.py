"""One job: simulate a cell's replicate data sets, fit one prior spec on all of them, store rows.

``run(cfg)`` is a plain function of the composed config, so tests call it directly; the Hydra
entry point ``runs.study`` is three lines around it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf

import models
import sim
from models import closed_form, engine
from runs import config, store

log = logging.getLogger(__name__)

def result_path(cfg: DictConfig, config_hash: str) -> Path:
    """``<results_root>/<study>/<scenario>-<cell>-<prior>-<hash>.parquet``: readable and unique."""
    params = config.scenario_params(cfg)
    cell = "_".join(f"{k}{_short(v)}" for k, v in params.items() if k in _CELL_KEYS)
    name = f"{cfg.scenario.name}-{cell}-{cfg.prior.name}-{config_hash}.parquet"
    return Path(cfg.results_root) / cfg.study / name


_CELL_KEYS = ("n_groups", "group_size", "tau")


def _short(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def run(cfg: DictConfig) -> Path:
    """Run the job ``cfg`` unless its result file exists (then say so); return the file's path."""
    config.validate(cfg)
    ident = config.identity(cfg)
    chash = config.config_hash(ident)
    path = result_path(cfg, chash)
    if path.exists() and not cfg.force:
        log.info("skip %s: result exists (force=true recomputes)", path)
        return path
    _use_compilation_cache(cfg.get("compilation_cache"))

    started = time.perf_counter()
    params = config.scenario_params(cfg)
    replicates = np.arange(cfg.replicates)
    data, truth = sim.simulate(cfg.scenario.name, cfg.seed, replicates, **params)
    cell = sim.cell_key(cfg.seed, cfg.scenario.name, params)
    # MCMC keys: a stream of their own, the same for every prior spec (so paired comparisons
    # share the sampler's randomness too)
    fit_keys = sim.replicate_keys(cell, replicates, stream=sim.FIT_STREAM)
    hyper = OmegaConf.to_container(cfg.prior.hyper)
    # a spec whose site means something else than the scenario's parameter of that name gets
    # no true value for it (NaN), so no measure compares the two
    mismatched = getattr(models.load(cfg.prior.spec), "NOT_SCENARIO_ESTIMANDS", ())
    truth = {k: v for k, v in truth.items() if k not in mismatched}
    inference = config.inference(cfg)
    # the rank of each true value among all kept draws: the posterior probability below it
    # (``truth_cdf``), which gives the coverage of a central interval of any level
    reference = {
        k: np.asarray(v, float).reshape(len(replicates), -1)
        for k, v in truth.items() if k in engine.ESTIMANDS
    }
    fit = engine.fit(
        cfg.prior.spec,
        data,
        fit_keys,
        hyper,
        parameterization=cfg.prior.parameterization,
        inference=inference,
        memory_budget_bytes=cfg.memory_budget_gb * 1e9,
        rank_against=reference,
        rank_draws=inference.chains * inference.draws,
    )
    seconds = time.perf_counter() - started
    identity_cols = {
        "study": cfg.study,
        "scenario": cfg.scenario.name,
        **params,
        "prior": cfg.prior.name,
        "prior_spec": cfg.prior.spec,
        "method": engine.method(cfg.prior.spec),
        "prior_parameterization": cfg.prior.parameterization,
        **{f"prior_{k}": v for k, v in hyper.items()},
        **OmegaConf.to_container(cfg.inference),
        "seed": int(cfg.seed),
    }
    table = store.rows(
        fit, truth, replicates, identity_cols,
        raw=closed_form.raw_estimates(data), n_draws=inference.chains * inference.draws,
    )
    for k, v in store.provenance(chash, seconds).items():
        table[k] = v
    store.write_atomic(table, path)
    status = store.fit_status(fit)
    if (status == "skipped").any():
        log.warning(
            "%s skipped %d of %d data sets: %s", cfg.prior.name, (status == "skipped").sum(),
            len(status), next(r for r in fit.skipped if r),
        )
    n_bad = int(((status != "ok") & (status != "skipped")).sum())
    log.info(
        "wrote %s: %d fits in %.1f s (%.3f s/fit), %d flagged (divergent, high R-hat or nonfinite)",
        path, cfg.replicates, seconds, seconds / cfg.replicates, n_bad,
    )
    return path


def _use_compilation_cache(directory) -> None:
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(directory))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
