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

import numpy as np
import pandas as pd

GROUP = ["prior", "param"]


def sampler_error(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (prior, estimand family): the count of estimands with an exact posterior, the mean,
    sd and largest |.| of z for the means, and the mean and sd of z for the sds."""
    have = rows.dropna(subset=["exact_mean", "posterior_mean", "mcse_mean"])
    have = have[have["mcse_mean"] > 0]
    if have.empty:
        return pd.DataFrame(columns=[*GROUP, "n", "z_mean", "z_sd", "z_abs_max", "z_sd_mean", "z_sd_sd"])
    z = (have["posterior_mean"] - have["exact_mean"]) / have["mcse_mean"]
    z_sd = (have["posterior_sd"] - have["exact_sd"]) / have["mcse_sd"]
    frame = have[GROUP].assign(z=z, z_sd=z_sd)
    return frame.groupby(GROUP, sort=True).agg(
        n=("z", "size"), z_mean=("z", "mean"), z_sd=("z", "std"),
        z_abs_max=("z", lambda v: np.abs(v).max()), z_sd_mean=("z_sd", "mean"),
        z_sd_sd=("z_sd", "std"),
    ).reset_index()


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
