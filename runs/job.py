"""One job: simulate a cell's replicate data sets, fit one prior spec on all of them, store rows.

``run(cfg)`` is a plain function of the composed config, so tests call it directly; the Hydra
entry point ``runs.study`` is three lines around it. ``compute(cfg, replicates)`` makes the rows of
any replicates of a job without writing them: ``runs.replay`` refits one replicate with it.

With ``replicates=auto`` (``runs.auto``) a job runs a pilot of its own replicate indices, plans
from it how many main replicates its Monte Carlo SE targets need, and runs those in batches of
one size; the pilot's rows land in ``<study>/pilot/``, the plan in the main rows' ``auto_*``
columns. Its result file appears at the end, as a fixed job's does.

A fit that raises (an XLA or NumPyro error) does not lose the job: its replicates are refitted one
at a time, and those that still fail get rows with ``status = failed``, NaN summaries, the error in
``skip_reason`` and their ``seed`` and ``replicate``, so that ``runs.replay`` can refit exactly that
data set. Only a job whose every replicate fails raises (and writes nothing).

A result file that exists is checked before the job is skipped (``runs.verify``), since a job can
start without the sweep's preflight (on a cluster, or alone): a damaged file is moved aside to
``<study>/damaged/`` and the job runs again (a file that cannot be moved ends the job as a
failed write does). A write that fails (no space left, permission lost, a
disk error) raises ``WriteError``, one line naming the file and the cause; no file and no
temporary file are left, so the next run computes the job.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

import models
import sim
from models import closed_form, engine, exact
from runs import auto, config, store, threads, verify
from runs.checks import require

log = logging.getLogger(__name__)


class WriteError(RuntimeError):
    """A result file that could not be written: one line naming the file and the cause."""


def result_path(cfg: DictConfig, config_hash: str) -> Path:
    """``<results_root>/<study>/<scenario>-<cell>-<prior>-<hash>.parquet``: readable and unique."""
    params = config.scenario_params(cfg)
    cell = "_".join(f"{k}{_short(v)}" for k, v in params.items() if k in _CELL_KEYS)
    name = f"{cfg.scenario.name}-{cell}-{cfg.prior.name}-{config_hash}.parquet"
    return Path(cfg.results_root) / cfg.study / name


_CELL_KEYS = ("n_groups", "group_size", "tau")


def _short(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def planned_path(cfg: DictConfig) -> Path:
    """The result file of job ``cfg`` (its config must be valid)."""
    return result_path(cfg, config.config_hash(config.identity(cfg)))


def pilot_path(path: Path) -> Path:
    """The file of the pilot rows of the replicates=auto job whose result file is ``path``: in
    the sub-folder ``pilot/``, which ``analysis.load.read_results`` of the study does not read."""
    return path.parent / "pilot" / path.name


def run(cfg: DictConfig) -> Path:
    """Run the job ``cfg`` unless its result file exists (then say so); return the file's path."""
    config.validate(cfg)
    chash = config.config_hash(config.identity(cfg))
    path = result_path(cfg, chash)
    for tmp in [*store.remove_stale_temps(path), *store.remove_stale_temps(pilot_path(path))]:
        log.info("removed %s, left by a writer that was killed", tmp.name)
    if path.exists() and not cfg.force:
        wanted = None if cfg.replicates == "auto" else int(cfg.replicates)
        damage = verify.problem(path, chash, wanted)
        if damage is None:
            log.info("skip %s: result exists (force=true recomputes)", path)
            return path
        try:
            aside = verify.set_aside(path, damage)
        except verify.CannotSetAside as err:
            raise WriteError(str(err)) from err
        log.warning("%s: damaged, %s; moved to %s, its job runs again", path, damage, aside)
    use_compilation_cache(cfg.get("compilation_cache"))

    started = time.perf_counter()
    if cfg.replicates == "auto":
        table = _compute_auto(cfg, chash, path)
    else:
        table = compute(cfg, np.arange(cfg.replicates))
    seconds = time.perf_counter() - started
    n_rep = table["replicate"].nunique()
    for k, v in store.provenance(chash, seconds).items():
        table[k] = v
    write(table, path)
    by_fit = table.groupby("replicate")["status"]
    skipped = by_fit.apply(lambda s: (s == "skipped").any())
    if skipped.any():
        log.warning(
            "%s skipped %d of %d data sets: %s", cfg.prior.name, skipped.sum(), len(skipped),
            table.loc[table["status"] == "skipped", "skip_reason"].iloc[0],
        )
    n_bad = int(by_fit.apply(lambda s: (~s.isin(("ok", "skipped"))).any()).sum())
    log.info(
        "wrote %s: %d fits in %.1f s (%.3f s/fit), %d flagged (a divergence, or an estimand with "
        "high R-hat, low ESS or nonfinite draws; or failed)", path, n_rep, seconds,
        seconds / n_rep, n_bad,
    )
    return path


def write(table: pd.DataFrame, path: Path) -> None:
    """``store.write_atomic``, whose ``OSError`` becomes a ``WriteError`` of one line."""
    try:
        store.write_atomic(table, path)
    except OSError as err:
        left = store.own_temps(path)
        after = (f"its temporary file {left[0].name} could not be removed (the next run of the job "
                 "removes it)" if left else "no file was left")
        raise WriteError(
            f"could not write {path}: {store.os_error(err)}; {after}, and the next run computes "
            "this job"
        ) from err


def _compute_auto(cfg: DictConfig, chash: str, path: Path) -> pd.DataFrame:
    """The main rows of a replicates=auto job, ``auto_*`` columns included; its pilot rows are
    written to ``pilot_path(path)`` (or read from there, when a run before wrote them)."""
    settings = auto.Settings.of(cfg.auto)

    def fit(indices: np.ndarray) -> pd.DataFrame:
        # every batch is ``batch`` data sets (a short one padded with copies of its last data
        # set, whose rows are dropped), so the engine cuts every batch into the same chunks:
        # one compiled program for the pilot and all the main batches
        padded = np.concatenate(
            [indices, np.repeat(indices[-1:], settings.batch - len(indices))]
        )
        rows = compute(cfg, padded)
        if len(padded) > len(indices):
            rows = rows.drop_duplicates(["replicate", "param", "index"], ignore_index=True)
        return rows

    def mcse(frames: list) -> dict:
        return auto.target_mcse(pd.concat(frames, ignore_index=True), settings)

    started = time.perf_counter()

    def report(stage, done, of, indices, seconds):
        log.info("auto: %s batch of replicates %d..%d in %.1f s: %d of %d done, %.1f s so far",
                 stage, indices[0], indices[-1], seconds, done, of, time.perf_counter() - started)

    # the pilot is written as soon as it is done, so that a job killed in its main run
    # starts again from the pilot's file (the same rows: they depend on the replicate indices)
    pilot_file = pilot_path(path)
    pilot = None if cfg.force else _stored_pilot(pilot_file, chash, settings)
    if pilot is not None:
        log.info("auto: the pilot's %d replicates read from %s", settings.pilot, pilot_file)
    else:
        rows = pd.concat(auto.run_pilot(fit, settings, on_batch=report), ignore_index=True)
        _check_estimand(rows, settings)
        rows["replicates_mode"] = "pilot"
        for k, v in store.provenance(chash, time.perf_counter() - started).items():
            rows[k] = v
        write(rows, pilot_file)
        pilot = [rows]
    outcome = auto.two_stage(fit, mcse, settings, pilot=pilot, on_batch=report)
    log.info("auto: the pilot's MCSEs, %s, plan %s main replicates (each target needs %s)",
             _numbers(outcome.pilot_mcse), outcome.plan.n, _numbers(outcome.plan.needed))
    table = pd.concat(outcome.main, ignore_index=True)
    at = table.columns.get_loc("replicates_mode") + 1
    for i, (k, v) in enumerate(auto.columns(outcome).items()):
        table.insert(at + i, k, v)
    log.info(auto.describe(outcome))
    return table


def _stored_pilot(file: Path, chash: str, settings: auto.Settings) -> list | None:
    """The pilot rows a run before wrote for this job, if ``file`` holds all of them."""
    try:
        rows = pd.read_parquet(file)
    except (OSError, ValueError):  # no file yet, or an unreadable one: compute the pilot again
        return None
    wanted = auto.PILOT_FIRST + np.arange(settings.pilot)
    whole = (
        len(rows) > 0 and (rows["config_hash"] == chash).all()
        and np.array_equal(np.sort(rows["replicate"].unique()), wanted)
    )
    return [rows] if whole else None


def _check_estimand(rows: pd.DataFrame, settings: auto.Settings) -> None:
    """The job reports the estimand family its targets are on (known after the pilot's fits)."""
    reported = [p for p in engine.ESTIMANDS if p in set(rows["param"])]
    require(settings.estimand in reported, "auto.estimand", settings.estimand,
                    f"an estimand family this job reports: one of {', '.join(reported)}")


def _numbers(values: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in values.items())


PAD_ENV = "HIERBENCH_PAD_GROUPS"
"""The number of groups a job's sampler pads its data to (``models.padding``: only where no
coordinate of the sampler grows with J), so that the jobs of one spec at different J share one
sampler program. The study's preflight sets it to the largest J of the sweep (``runs.study``),
and its workers inherit it; unset, every job runs at its own J. The value a job ran is the
result column ``fit_groups``."""


def pad_groups() -> int | None:
    """``HIERBENCH_PAD_GROUPS`` as an int, or None where it is unset or empty."""
    value = os.environ.get(PAD_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise config.ConfigError(f"{PAD_ENV}={value!r}: expected a positive integer or nothing")
    return int(value)


def compute(cfg: DictConfig, replicates: np.ndarray, fit_groups: int | None = None) -> pd.DataFrame:
    """The result rows (without provenance) of replicates ``replicates`` of job ``cfg``.

    A replicate's data and sampler key depend only on (seed, scenario, its parameters, the
    replicate index), and the engine fits each data set on its own key, so the rows of replicate
    r are the same whether it is computed alone or with the others. The sampler pads the data to
    ``fit_groups`` groups where it can (default: ``pad_groups()``; ``runs.replay`` gives the
    stored rows' ``fit_groups``).
    """
    if fit_groups is None:
        fit_groups = pad_groups()
    replicates = np.asarray(replicates)
    params = config.scenario_params(cfg)
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

    def fit(index: np.ndarray):
        return engine.fit(
            cfg.prior.spec,
            {k: v[index] for k, v in data.items()},
            fit_keys[index],
            hyper,
            parameterization=cfg.prior.parameterization,
            inference=inference,
            memory_budget_bytes=cfg.memory_budget_gb * 1e9,
            rank_against={k: v[index] for k, v in reference.items()},
            rank_draws=inference.chains * inference.draws,
            devices=threads.job_devices(),
            pad_groups=fit_groups,
        )

    # the form the fits run (``auto`` resolved); a form that cannot apply stops the job here
    fit_form = engine.form(cfg.prior.spec, cfg.prior.parameterization, data, hyper)
    # the settings the fits run (target_accept=auto resolved for this spec, form and data)
    inference = engine.settings(cfg.prior.spec, cfg.prior.parameterization, data, hyper,
                                inference)
    # the exact posterior's quadrature runs in a thread beside the fits: the sampler's program
    # compiles and runs on one core, the quadrature takes the other
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        exact_moments = pool.submit(exact_posterior, cfg.prior.spec, hyper, data, reference)
        summary, failures = _fit_or_isolate(fit, len(replicates))
        exact_moments = exact_moments.result()
    identity_cols = {
        "study": cfg.study,
        "scenario": cfg.scenario.name,
        **params,
        **config.fit_columns(cfg, hyper, fit_form, inference, engine.sampler_groups(
            cfg.prior.spec, cfg.prior.parameterization, data, hyper, fit_groups)),
        # fixed (a given count) or auto (runs.auto); the auto_* columns follow it
        "replicates_mode": "auto" if cfg.get("replicates") == "auto" else "fixed",
    }
    table = store.rows(
        summary, truth, replicates, identity_cols,
        raw=closed_form.raw_estimates(data), n_draws=inference.chains * inference.draws,
        chains=inference.chains, exact=exact_moments,
    )
    for i, reason in failures.items():
        failed = table["replicate"] == replicates[i]
        table.loc[failed, _result_columns(table)] = np.nan
        table.loc[failed, ["n_divergent", "n_max_treedepth", "n_leapfrog"]] = 0
        table.loc[failed, "status"] = "failed"
        table.loc[failed, "skip_reason"] = reason
    return table


def exact_posterior(spec: str, hyper: dict, data: dict, truth: dict) -> dict | None:
    """The exact posterior's summaries where the spec has a quadrature reduction
    (``models.exact``), else None; a quadrature that fails is said in one line, and its columns
    stay NaN (the fits are kept)."""
    try:
        return exact.moments(spec, hyper, data, truth)
    except Exception as err:  # noqa: BLE001  (the exact columns are optional; the fits are not)
        log.warning("exact posterior of %s not computed: %s", spec, _line(err))
        return None


def _result_columns(table: pd.DataFrame) -> list[str]:
    """The columns a fit computes (NaN for a fit that failed)."""
    return [
        c for c in table.columns
        if c.startswith(("posterior_", "lower_", "upper_", "mcse_", "ess_"))
        or c in ("truth_cdf", "rhat", "sampled_rhat", "sampled_ess")
    ]


def _fit_or_isolate(fit, n: int):
    """``fit`` on all ``n`` data sets; if that raises, on each alone. Return the summary and
    {position: error} of the data sets whose fit failed (their summary values are placeholders)."""
    try:
        return fit(np.arange(n)), {}
    except Exception as err:  # noqa: BLE001  (any error of the fit: isolate the data set)
        log.warning("fit of %d data sets failed (%s); fitting them one at a time", n, _line(err))
    pieces, failures, error = [], {}, None
    for i in range(n):
        try:
            pieces.append(fit(np.array([i])))
        except Exception as err:  # noqa: BLE001
            failures[i], error = f"fit failed: {_line(err)}", err
            pieces.append(None)
    if len(failures) == n:
        raise error
    template = next(p for p in pieces if p is not None)
    pieces = [_normalized(p if p is not None else template) for p in pieces]
    return jax.tree.map(lambda *a: np.concatenate(a, axis=0), *pieces), failures


def _normalized(summary: engine.FitSummary) -> engine.FitSummary:
    """One data set's summary with ``skipped`` as an array, so that pieces concatenate."""
    skipped = summary.skipped if summary.skipped is not None else np.full(1, "", object)
    return summary._replace(skipped=np.asarray(skipped, object))


def _line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".strip()


def use_compilation_cache(directory) -> None:
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(directory))
        # every program, the small ones that eager JAX code (simulation, the model probes)
        # compiles op by op too: a warm one-job study of 100 fits took 21 s instead of 26 s
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
