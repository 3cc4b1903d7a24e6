"""Performance measures of one estimand family per job, with Monte Carlo standard errors.

The replicate is the independent unit. Within a replicate, the J group effects share the data
through mu and tau, so their errors are correlated; each measure of ``theta`` is therefore first
averaged over groups within a replicate, and its MCSE is the standard error of those R
replicate-level averages (Morris, White & Crowther 2019, Stat Med 38:2074, Table 6, applied to
replicate-level means):

    bias        = mean_r b_r,          b_r = mean_j (post_mean_rj - true_rj)
    MSE         = mean_r m_r,          m_r = mean_j (post_mean_rj - true_rj)^2
    RMSE        = sqrt(MSE),           MCSE(RMSE) = MCSE(MSE) / (2 RMSE)     (delta method)
    coverage_L  = mean_r c_r,          c_r = share of j with lower_L <= true_rj <= upper_L
    post. var.  = mean_r v_r,          v_r = mean_j post_sd_rj^2
    MCSE(x)     = sd_r(x_r) / sqrt(R)

For a scalar estimand (mu, tau, sigma: J = 1) these are exactly Table 6's formulas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.load import identity_columns

LEVELS = (50, 80, 90, 95)


def per_replicate(df: pd.DataFrame, param: str = "theta") -> pd.DataFrame:
    """One row per (job, replicate): the replicate-level averages over the family's estimands."""
    rows = df[df["param"] == param].copy()
    err = rows["posterior_mean"] - rows["true_value"]
    rows["_bias"] = err
    rows["_sq_err"] = err**2
    rows["_post_var"] = rows["posterior_sd"] ** 2
    for lv in LEVELS:
        if f"lower_{lv}" in rows:
            covered = (rows[f"lower_{lv}"] <= rows["true_value"]) & (
                rows["true_value"] <= rows[f"upper_{lv}"]
            )
            # a point estimate without an interval (closed-form specs) covers nothing: NaN
            has_interval = rows[f"lower_{lv}"].notna() & rows[f"upper_{lv}"].notna()
            rows[f"_cover_{lv}"] = covered.astype(float).where(has_interval)
            rows[f"_width_{lv}"] = rows[f"upper_{lv}"] - rows[f"lower_{lv}"]
    # a data set the spec could not fit (status skipped) has NaN estimates, so it drops out of
    # every measure above; it is counted on its own, not as a flagged fit
    skipped = rows["status"] == "skipped"
    rows["_flagged"] = (rows["status"] != "ok").astype(float).mask(skipped)
    rows["_skipped"] = skipped.astype(float)
    value_cols = [c for c in rows.columns if c.startswith("_")]
    return (
        rows.groupby(["config_hash", "replicate"], sort=True)[value_cols].mean().reset_index()
    )


def summarize(df: pd.DataFrame, param: str = "theta") -> pd.DataFrame:
    """One row per job: identity columns, ``n_replicates``, each measure and its ``_mcse``."""
    reps = per_replicate(df, param)
    grouped = reps.groupby("config_hash")
    n = grouped.size().rename("n_replicates")
    mean = grouped.mean(numeric_only=True).drop(columns="replicate")
    # each measure's MCSE over the replicates that have it (a point estimate has no interval)
    counts = grouped.count().drop(columns="replicate")
    mcse = grouped.std(ddof=1, numeric_only=True).drop(columns="replicate") / np.sqrt(counts)
    out = pd.DataFrame(index=mean.index)
    out["n_replicates"] = n
    out["bias"], out["bias_mcse"] = mean["_bias"], mcse["_bias"]
    out["mse"], out["mse_mcse"] = mean["_sq_err"], mcse["_sq_err"]
    out["rmse"] = np.sqrt(mean["_sq_err"])
    out["rmse_mcse"] = mcse["_sq_err"] / (2 * out["rmse"])
    out["posterior_variance"] = mean["_post_var"]
    out["posterior_variance_mcse"] = mcse["_post_var"]
    for lv in LEVELS:
        if f"_cover_{lv}" in mean:
            out[f"coverage_{lv}"] = mean[f"_cover_{lv}"]
            out[f"coverage_{lv}_mcse"] = mcse[f"_cover_{lv}"]
            out[f"width_{lv}"] = mean[f"_width_{lv}"]
            out[f"width_{lv}_mcse"] = mcse[f"_width_{lv}"]
    out["flagged_rate"] = mean["_flagged"]
    out["flagged_rate_mcse"] = mcse["_flagged"]
    out["skipped_rate"] = mean["_skipped"]
    id_cols = [c for c in identity_columns(df) if c != "config_hash"]
    ids = df.groupby("config_hash")[id_cols].first()
    out = ids.join(out).reset_index(drop=False)
    out.insert(0, "param", param)
    return out
