"""What the prior does, and what the sampler adds: the fits held against their exact posteriors.

Where a spec has a quadrature reduction (``models.exact``) every result row carries the exact
posterior's mean, sd and P(x <= truth | y) beside the fit's. Then

* **what the prior does** is measured without sampling error: the RMSE of the exact posterior
  means and the coverage of the exact central 90 % intervals (|exact_truth_cdf - 1/2| <= 0.45),
  each with its Monte Carlo SE over replicates (Morris et al. 2019, Table 6);
* **what the sampler adds** is z = (posterior_mean - exact_mean) / mcse_mean, the fit's error in
  units of its own Monte Carlo SE, and z_sd = (posterior_sd - exact_sd) / mcse_sd: for a
  correct sampler whose MCSEs are right, z has mean 0 and sd 1 (to the MCSE's own error).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

GROUP = ["prior", "param"]
FIT = ["config_hash", "replicate"]
"""A fit: one replicate of one job. The estimands of a fit share its draws, so their z values are
correlated, and the intervals resample whole fits."""
BOOTSTRAP = 2000
"""Resamples of fits behind each interval (seeded: the same rows give the same intervals)."""
LEVEL = 0.95


def sampler_error(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (prior, estimand family): the count of estimands with an exact posterior and of fits,
    the mean, sd and largest |.| of z for the means with a 95 % interval for the mean and the sd
    (a bootstrap over fits, percentile intervals; the sd's is rough where z has heavy tails), and
    the mean and sd of z for the sds.

    For a correct sampler whose MCSEs are right, z_mean's interval holds 0 and z_sd's holds 1
    (in 95 % of studies); the intervals say how far a study of this size can tell."""
    columns = [*GROUP, "n", "fits", "z_mean", "z_mean_lo", "z_mean_hi", "z_sd", "z_sd_lo",
               "z_sd_hi", "z_abs_max", "z_sd_mean", "z_sd_sd"]
    have = rows.dropna(subset=["exact_mean", "posterior_mean", "mcse_mean"])
    have = have[have["mcse_mean"] > 0]
    if have.empty:
        return pd.DataFrame(columns=columns)
    z = (have["posterior_mean"] - have["exact_mean"]) / have["mcse_mean"]
    z_sd = (have["posterior_sd"] - have["exact_sd"]) / have["mcse_sd"]
    # without both columns no fit can be told apart: each estimand then counts as its own fit
    fit = (have.groupby(FIT, sort=False).ngroup().to_numpy() if all(c in have for c in FIT)
           else np.arange(len(have)))
    frame = have[GROUP].assign(z=z.to_numpy(), z_sd=z_sd.to_numpy(), fit=fit)
    out = []
    for key, g in frame.groupby(GROUP, sort=True):
        # each family's own seed: its intervals do not move when other priors are added
        seed = int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:8], "little")
        mean_ci, sd_ci = _fit_bootstrap(g["z"].to_numpy(), g["fit"].to_numpy(),
                                        np.random.default_rng(seed))
        out.append(dict(
            zip(GROUP, key), n=len(g), fits=g["fit"].nunique(), z_mean=g["z"].mean(),
            z_mean_lo=mean_ci[0], z_mean_hi=mean_ci[1], z_sd=g["z"].std(), z_sd_lo=sd_ci[0],
            z_sd_hi=sd_ci[1], z_abs_max=np.abs(g["z"]).max(), z_sd_mean=g["z_sd"].mean(),
            z_sd_sd=g["z_sd"].std(),
        ))
    return pd.DataFrame(out, columns=columns)


def _fit_bootstrap(z: np.ndarray, fit: np.ndarray, rng) -> tuple[tuple, tuple]:
    """Percentile intervals (LEVEL) of the mean and the sd of ``z`` over BOOTSTRAP resamples of
    whole fits (``fit`` labels each value's fit), from each fit's count, sum and sum of squares."""
    _, label = np.unique(fit, return_inverse=True)
    count = np.bincount(label).astype(float)
    total = np.bincount(label, weights=z)
    square = np.bincount(label, weights=z * z)
    if len(count) < 2:
        return (np.nan, np.nan), (np.nan, np.nan)
    times = rng.multinomial(len(count), np.full(len(count), 1 / len(count)), size=BOOTSTRAP)
    n = times @ count
    mean = (times @ total) / n
    var = (times @ square - n * mean**2) / np.maximum(n - 1, 1)
    tails = [(1 - LEVEL) / 2, (1 + LEVEL) / 2]
    return (tuple(np.quantile(mean, tails)),
            tuple(np.quantile(np.sqrt(np.maximum(var, 0)), tails)))


def prior_effect(rows: pd.DataFrame, cell: list[str], param: str = "theta") -> pd.DataFrame:
    """Per (prior, cell): RMSE and 90 % coverage of the exact posteriors of ``param`` and of the
    fits, each with its MCSE over replicates (the replicate-level mean squared error and share
    covered, their sd over sqrt(R))."""
    have = rows[(rows["param"] == param)].dropna(subset=["exact_mean", "true_value"])
    if have.empty:
        return pd.DataFrame()
    per_rep = have.assign(
        exact_sq=(have["exact_mean"] - have["true_value"]) ** 2,
        fit_sq=(have["posterior_mean"] - have["true_value"]) ** 2,
        exact_cover=(np.abs(have["exact_truth_cdf"] - 0.5) <= 0.45).astype(float),
        fit_cover=((have["lower_90"] <= have["true_value"])
                   & (have["true_value"] <= have["upper_90"])).astype(float),
    ).groupby(["prior", *cell, "replicate"])[["exact_sq", "fit_sq", "exact_cover", "fit_cover"]].mean()
    out = []
    for key, reps in per_rep.groupby(level=list(range(1 + len(cell)))):
        n = len(reps)
        row = dict(zip(["prior", *cell], key if isinstance(key, tuple) else (key,)), n_replicates=n)
        for kind in ("exact", "fit"):
            mse, mse_sd = reps[f"{kind}_sq"].mean(), reps[f"{kind}_sq"].std(ddof=1)
            row[f"{kind}_rmse"] = np.sqrt(mse)
            row[f"{kind}_rmse_mcse"] = mse_sd / np.sqrt(n) / (2 * np.sqrt(mse)) if n > 1 else np.nan
            row[f"{kind}_coverage_90"] = reps[f"{kind}_cover"].mean()
            row[f"{kind}_coverage_90_mcse"] = (reps[f"{kind}_cover"].std(ddof=1) / np.sqrt(n)
                                               if n > 1 else np.nan)
        out.append(row)
    return pd.DataFrame(out)
