"""Performance measures of one estimand family per job, with Monte Carlo standard errors.

The replicate (one simulated data set) is the independent unit. Within a replicate the J group
effects share the data through mu and tau, so their errors are correlated: every measure is a
function of *replicate-level averages* over the family's estimands, and its Monte Carlo standard
error (MCSE) comes from the spread of those R averages. For a scalar estimand (mu, tau, sigma:
J = 1) the averages are the single values and the formulas are those of Morris, White & Crowther
(2019, Stat Med 38:2074, Table 6). With e = posterior mean - true value:

    bias           mean e                                MCSE: sd_r(b_r) / sqrt(R)
    empse          sd of all errors, sqrt(N/(N-1) (MSE - bias^2)), N = R J     MCSE: jackknife
    mse            mean e^2                              MCSE: sd_r(m_r) / sqrt(R)
    rmse           sqrt(MSE)                             MCSE: delta method, MCSE(MSE) / (2 RMSE)
    posterior_variance  mean posterior variance          MCSE: sd_r / sqrt(R)
    posterior_sd   mean posterior sd                     MCSE: sd_r / sqrt(R)
    model_se       sqrt(mean posterior variance)         MCSE: delta method (Table 6's ModSE)
    rel_se_error   model_se / empse - 1 (a fraction)     MCSE: jackknife
    coverage_L     share of L % intervals holding the truth   MCSE: sd_r / sqrt(R)
    width_L        mean width of the L % intervals       MCSE: sd_r / sqrt(R)
    coverage_clean_L  coverage over the fits with clean diagnostics (no divergent transition,
                   every R-hat of the family <= 1.01); ``n_clean`` of them
                                                         MCSE: sd_r / sqrt(n_clean)
    shrinkage      1 - the slope of the posterior means on the groups' own estimates, per
                   replicate (0: no pooling, 1: complete pooling; theta and p only)
    divergent_rate share of fits with a divergent transition     MCSE: sd_r / sqrt(R)
    nonconverged_rate, flagged_rate   share of the family's estimands with an R-hat > 1.01,
                   and with a status other than ok (``runs.store.estimand_status``: divergent,
                   high R-hat, low bulk or tail ESS, ...), averaged over fits: per estimand, so
                   that the rate does not grow with the number of groups, and per family, so
                   that one tau does not hide behind twenty thetas      MCSE: sd_r / sqrt(R)

For a mean over replicates, sd_r(x_r) / sqrt(R) with the ddof = 1 sd is Table 6's formula (for
coverage, Table 6 writes sqrt(p (1 - p) / R), the same up to a factor sqrt(R / (R - 1))). For a
smooth function of several such means (empse, rel_se_error, and the paired RMSE differences
below) the MCSE is the jackknife over replicates, leaving one replicate out at a time, which
needs no normality and keeps the within-replicate correlation.

Paired differences: every prior spec is fitted on the same data sets, so a spec's measure minus
the reference spec's (``reference``, default ``flat``) in the same cell is computed over the
replicates both fitted, and its MCSE from the paired replicate-level differences; it is far
smaller than the two MCSEs combined. Columns ``<measure>_diff`` and ``<measure>_diff_mcse``, and
``rmse_ratio`` (RMSE over the reference's RMSE) with its jackknife MCSE.

With ``replicates=auto`` (``runs.auto``) the specs of a cell may run different numbers of
replicates, 0..N_spec - 1: a paired difference uses the replicates both ran, 0..min(N) - 1
(``n_paired``), each the same data set for both specs. Its estimate stays unbiased, since each
N depends only on that spec's pilot, which is independent of the main replicates. The columns
that record the plan (``replicates_mode``, ``auto_*``) are copied into each job's summary row
and take no part in matching cells.

Data sets a spec declined (status skipped) are left out of every measure and counted in
``skipped_rate``; closed-form specs have no draws, so their divergence, convergence and clean
coverage columns are NaN, as is the coverage of a point estimate without an interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.load import identity_columns, plan_columns

LEVELS = (50, 80, 90, 95)
RHAT_LIMIT = 1.01
CURVE_LEVELS = tuple(np.round(np.arange(0.02, 0.995, 0.02), 2))
"""Nominal levels of the coverage curves (2 %, 4 %, ..., 98 %)."""

REFERENCE = "flat"

# replicate-level columns whose plain mean is a measure (name in the summary, column)
_MEANS = {
    "bias": "_err", "mse": "_sq_err", "posterior_variance": "_post_var",
    "posterior_sd": "_post_sd", "shrinkage": "_shrink",
    **{f"coverage_{lv}": f"_cover_{lv}" for lv in LEVELS},
    **{f"width_{lv}": f"_width_{lv}" for lv in LEVELS},
    **{f"coverage_clean_{lv}": f"_cover_clean_{lv}" for lv in LEVELS},
    "divergent_rate": "_divergent", "nonconverged_rate": "_nonconverged",
    "flagged_rate": "_flagged",
}
# measures compared with the reference spec, paired by replicate
_PAIRED = ("bias", "mse", "posterior_variance", "shrinkage", "coverage_90", "width_90")


def fit_diagnostics(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (job, replicate) of the rows ``df`` (one estimand family): whether the fit had
    a divergent transition, the share of the estimands with an R-hat over RHAT_LIMIT and with a
    status other than ok, clean diagnostics (no divergence, no R-hat over the limit), or was
    skipped. NaN for what does not apply (closed-form specs make no draws)."""
    flags = pd.DataFrame({
        "config_hash": df["config_hash"], "replicate": df["replicate"],
        "_divergent": df["n_divergent"] > 0,
        "_nonconverged": df["rhat"] > RHAT_LIMIT,
        "_flagged": df["status"] != "ok",
        "_skipped": df["status"] == "skipped",
        "_draws": df["rhat"].notna(),
    })
    groups = flags.groupby(["config_hash", "replicate"], sort=True)
    out = groups.max().astype(float)
    out["_clean"] = 1.0 - np.maximum(out["_divergent"], out["_nonconverged"])
    shares = groups[["_nonconverged", "_flagged"]].mean()
    out["_nonconverged"], out["_flagged"] = shares["_nonconverged"], shares["_flagged"]
    no_draws = out["_draws"] == 0
    out.loc[no_draws, ["_divergent", "_nonconverged", "_clean"]] = np.nan
    skipped = out["_skipped"] == 1
    out.loc[skipped, ["_divergent", "_nonconverged", "_clean", "_flagged"]] = np.nan
    return out.drop(columns="_draws")


def per_replicate(df: pd.DataFrame, param: str = "theta") -> pd.DataFrame:
    """One row per (job, replicate): the replicate-level averages over the family's estimands,
    with the fit's diagnostics; indexed by (config_hash, replicate)."""
    rows = df[df["param"] == param].copy()
    err = rows["posterior_mean"] - rows["true_value"]
    rows["_err"] = err
    rows["_sq_err"] = err**2
    rows["_post_var"] = rows["posterior_sd"] ** 2
    rows["_post_sd"] = rows["posterior_sd"]
    rows["_n"] = err.notna().astype(float)
    for lv in LEVELS:
        if f"lower_{lv}" in rows:
            covered = (rows[f"lower_{lv}"] <= rows["true_value"]) & (
                rows["true_value"] <= rows[f"upper_{lv}"]
            )
            # a point estimate without an interval (closed-form specs) covers nothing: NaN
            has_interval = rows[f"lower_{lv}"].notna() & rows[f"upper_{lv}"].notna()
            rows[f"_cover_{lv}"] = covered.astype(float).where(has_interval & err.notna())
            rows[f"_width_{lv}"] = rows[f"upper_{lv}"] - rows[f"lower_{lv}"]
    value_cols = [c for c in rows.columns if c.startswith("_")]
    keys = ["config_hash", "replicate"]
    out = rows.groupby(keys, sort=True)[value_cols].mean()
    out["_n"] = rows.groupby(keys, sort=True)["_n"].sum()
    out["_shrink"] = _shrinkage(rows)
    out = out.join(fit_diagnostics(rows), how="left")
    for lv in LEVELS:
        if f"_cover_{lv}" in out:
            out[f"_cover_clean_{lv}"] = out[f"_cover_{lv}"].where(out["_clean"] == 1)
    # a skipped data set has NaN estimates: it drops out of every average, not counted as flagged
    return out


def _shrinkage(rows: pd.DataFrame) -> pd.Series:
    """Per replicate, 1 - the least-squares slope of the posterior means on the groups' own
    estimates: the share of each group's distance from the mean that the estimate removes
    (exactly B = sigma_j^2 / (sigma_j^2 + tau^2) for a normal model with known tau and equal
    sigma_j). NaN for one-estimand families and where the own estimates do not vary."""
    keys = ["config_hash", "replicate"]
    if "raw_estimate" not in rows or rows.groupby(keys)["index"].nunique().max() < 2:
        return pd.Series(np.nan, index=rows.groupby(keys).size().index)
    x, y = rows["raw_estimate"], rows["posterior_mean"]
    ok = x.notna() & y.notna()
    frame = pd.DataFrame({"x": x.where(ok), "y": y.where(ok)}, index=rows.index)
    frame[keys] = rows[keys]
    g = frame.groupby(keys, sort=True)
    dx = frame["x"] - g["x"].transform("mean")
    dy = frame["y"] - g["y"].transform("mean")
    sxy = (dx * dy).groupby([rows[k] for k in keys], sort=True).sum(min_count=1)
    sxx = (dx * dx).groupby([rows[k] for k in keys], sort=True).sum(min_count=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1 - sxy / sxx.where(sxx > 1e-12 * (1 + sxx.abs().max()))


def _loo_means(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(full means (k,), leave-one-replicate-out means (R, k)) of an (R, k) array with NaNs."""
    present = np.isfinite(x)
    total = np.where(present, x, 0.0).sum(axis=0)
    count = present.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        full = total / count
        loo = (total - np.where(present, x, 0.0)) / (count - present)
    return full, loo


def _jackknife(stat, x: np.ndarray) -> tuple[float, float]:
    """(stat(means), its jackknife standard error over the R rows of x)."""
    full, loo = _loo_means(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        est = stat(full[None, :])[0]
        values = stat(loo)
    values = values[np.isfinite(values)]
    r = len(values)
    if r < 2:
        return float(est), np.nan
    return float(est), float(np.sqrt((r - 1) / r * np.sum((values - values.mean()) ** 2)))


def _by_job(reps: pd.DataFrame) -> dict:
    """{config_hash: (replicates, {column: values})} from the replicate-level frame."""
    values = reps.to_numpy(float)
    hashes = reps.index.get_level_values(0).to_numpy()
    replicates = reps.index.get_level_values(1).to_numpy()
    keys, first = np.unique(hashes, return_index=True)  # the frame is sorted by job
    bounds = [*first[1:], len(hashes)]
    return {
        h: (replicates[a:b], {c: values[a:b, i] for i, c in enumerate(reps.columns)})
        for h, a, b in zip(keys, first, bounds)
    }


def _mean_mcse(v: np.ndarray) -> tuple[float, float]:
    v = v[np.isfinite(v)]
    mean = v.mean() if len(v) else np.nan
    return mean, (v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan)


def _job_measures(cols: dict) -> dict:
    """The measures of one job from its replicate-level columns."""
    kept = cols["_skipped"] != 1
    fitted = {c: v[kept] for c, v in cols.items()}
    out = {"n_replicates": int(kept.sum()), "skipped_rate": float(cols["_skipped"].mean())}
    for name, col in _MEANS.items():
        if col in fitted:
            out[name], out[f"{name}_mcse"] = _mean_mcse(fitted[col])
    out["n_clean"] = int((fitted["_clean"] == 1).sum())
    out["rmse"] = np.sqrt(out["mse"])
    out["rmse_mcse"] = out["mse_mcse"] / (2 * out["rmse"]) if out["rmse"] > 0 else np.nan
    out["model_se"] = np.sqrt(out["posterior_variance"])
    out["model_se_mcse"] = (
        out["posterior_variance_mcse"] / (2 * out["model_se"]) if out["model_se"] > 0 else np.nan
    )
    # empse and rel_se_error: functions of the means of (e, e^2, posterior variance), by jackknife
    n_total = max(float(fitted["_n"].sum()), 2.0)
    x = np.column_stack([fitted["_err"], fitted["_sq_err"], fitted["_post_var"]])

    def empse(m):
        return np.sqrt(np.maximum(m[:, 1] - m[:, 0] ** 2, 0) * n_total / (n_total - 1))

    errors = x[np.isfinite(x[:, :2]).all(axis=1)]
    out["empse"], out["empse_mcse"] = _jackknife(empse, errors) if len(errors) else (np.nan, np.nan)
    both = x[np.isfinite(x).all(axis=1)]  # point estimates without an sd have no model SE
    out["rel_se_error"], out["rel_se_error_mcse"] = (
        _jackknife(lambda m: np.sqrt(m[:, 2]) / empse(m) - 1, both) if len(both) else (np.nan, np.nan)
    )
    return out


def _paired(job: tuple, ref: tuple) -> dict:
    """Each of _PAIRED and rmse minus the reference's, over the replicates both fitted."""
    (rep_a, a), (rep_b, b) = job, ref
    _, ia, ib = np.intersect1d(rep_a, rep_b, assume_unique=True, return_indices=True)
    keep = (a["_skipped"][ia] != 1) & (b["_skipped"][ib] != 1)
    ia, ib = ia[keep], ib[keep]
    out = {}
    for name in _PAIRED:
        col = _MEANS[name]
        if col in a and col in b:
            out[f"{name}_diff"], out[f"{name}_diff_mcse"] = _mean_mcse(a[col][ia] - b[col][ib])
    x = np.column_stack([a["_sq_err"][ia], b["_sq_err"][ib]])
    x = x[np.isfinite(x).all(axis=1)]
    if len(x):
        out["rmse_diff"], out["rmse_diff_mcse"] = _jackknife(
            lambda m: np.sqrt(m[:, 0]) - np.sqrt(m[:, 1]), x
        )
        out["rmse_ratio"], out["rmse_ratio_mcse"] = _jackknife(
            lambda m: np.sqrt(m[:, 0] / m[:, 1]), x
        )
    out["n_paired"] = len(x)
    return out


NOT_CELL = ("prior", "method", "fit_parameterization", "fit_target_accept", "fit_groups",
            "config_hash", "code_version", "package_versions")
"""Identity columns that tell specs apart within a cell (with every ``prior_*`` column)."""


def cell_columns(df: pd.DataFrame) -> list[str]:
    """The identity columns that name a cell and its settings, shared by every spec fitted on
    the same data sets with the same sampler settings."""
    return [
        c for c in identity_columns(df)
        if c not in NOT_CELL and not c.startswith("prior_") and c not in ("created_at", "job_seconds")
    ]


def summarize(df: pd.DataFrame, param: str = "theta", reference: str | None = REFERENCE) -> pd.DataFrame:
    """One row per job: identity columns, ``n_replicates``, each measure and its ``_mcse``, and
    the paired differences from the spec ``reference`` fitted in the same cell (NaN where the
    cell has no such fit, and for the reference itself: zero by construction)."""
    reps = per_replicate(df, param)
    ids = df.groupby("config_hash", sort=True)[identity_columns(df)].first()
    by_job = _by_job(reps)
    cells = cell_columns(df)
    ref_of = {}
    if reference is not None and "prior" in ids:
        key = (
            ids[cells].apply(lambda col: col.map(str)).agg("\x1f".join, axis=1)
            if cells else pd.Series("", ids.index)
        )
        ref_key = dict(zip(key[ids["prior"] == reference], ids.index[ids["prior"] == reference]))
        ref_of = {h: ref_key.get(k) for h, k in key.items()}
    rows = []
    for h, part in by_job.items():
        row = {"config_hash": h, **_job_measures(part[1])}
        ref = ref_of.get(h)
        if ref is not None and ref != h and ref in by_job:
            row.update(_paired(part, by_job[ref]))
        rows.append(row)
    out = ids.drop(columns="config_hash").join(
        pd.DataFrame(rows).set_index("config_hash"), how="inner"
    )
    out = out.reset_index()
    out.insert(0, "param", param)
    out.insert(1, "reference", reference if reference is not None else "")
    plan = plan_columns(df)
    if plan:  # how each job's replicate count was chosen (replicates=auto: the plan, the MCSEs)
        out = out.join(df.groupby("config_hash", sort=True)[plan].first(), on="config_hash")
    return out


def coverage_curves(df: pd.DataFrame, param: str = "theta", levels=CURVE_LEVELS) -> pd.DataFrame:
    """Actual against nominal coverage of central intervals at many levels, from ``truth_cdf``
    (the posterior probability below the true value: the L % central interval holds the truth
    exactly when |truth_cdf - 1/2| <= L / 2). One row per (job, level) with its MCSE over the
    replicate-level averages; jobs without ``truth_cdf`` (closed-form specs) have no rows."""
    if "truth_cdf" not in df:
        return pd.DataFrame()
    rows = df[(df["param"] == param) & df["truth_cdf"].notna()]
    if rows.empty:
        return pd.DataFrame()
    dist = (rows["truth_cdf"] - 0.5).abs().to_numpy()[:, None]
    levels = np.asarray(levels, float)
    covered = pd.DataFrame(
        (dist <= levels[None, :] / 2).astype(float), index=rows.index, columns=levels
    )
    keys = [rows["config_hash"], rows["replicate"]]
    per_rep = covered.groupby(keys).mean()
    g = per_rep.groupby(level=0)
    mean, sd, n = g.mean(), g.std(ddof=1), g.size()
    long = mean.stack().rename("coverage").to_frame()
    long["coverage_mcse"] = (sd.div(np.sqrt(n), axis=0)).stack()
    long.index.names = ["config_hash", "level"]
    long = long.reset_index()
    ids = df.groupby("config_hash")[identity_columns(df)].first().drop(columns="config_hash")
    long = long.join(ids, on="config_hash")
    long.insert(0, "param", param)
    return long
