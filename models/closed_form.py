"""Specs that make no draws: closed-form estimators reported in the same rows as the fits.

A closed-form spec defines ``estimate(data, **hyper)`` instead of ``model``: ``data`` holds the
arrays of all R data sets (leading replicate axis) and it returns ``{site: SiteSummary}``. For its
rows, ``posterior_mean`` holds the point estimate, ``posterior_sd`` its standard error and the
interval ends are those of the spec's confidence (or empirical Bayes) intervals; ``rhat`` and
``ess_bulk`` are NaN and the divergence and leapfrog counts 0, and the job's ``method`` column says
``closed_form``. Those specs declare ``PARAMETERIZATIONS = ("none",)``.

The data's standard errors come from ``group_estimates``: with known sigma_j (``y``, ``se``) they
are ``se``; with sufficient statistics (``ybar``, ``n``, ``ss``) sigma is estimated by the pooled
within-group variance s^2 = sum_j ss_j / (N - J), the standard error of ybar_j is s / sqrt(n_j),
and intervals use t quantiles with N - J degrees of freedom. With binomial counts (``successes``
out of ``trials``) they work on the logit scale through the normal approximation to the empirical
logit (Haldane's correction keeps it finite at 0 and all successes; Cox & Snell 1989, §2.1.6):

    y_j = log((s_j + 1/2) / (n_j - s_j + 1/2)),   v_j = 1 / (s_j + 1/2) + 1 / (n_j - s_j + 1/2),

and report ``p`` = logit^-1 of theta's estimate and interval ends (its sd by the delta method).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from models.engine import QUANTILES, FitSummary, SiteSummary


def fit(module, data: dict, hyper: dict) -> FitSummary:
    data = {k: np.asarray(v, np.float64) for k, v in data.items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        sites = module.estimate(data, **hyper)
    if "trials" in data and "theta" in sites:
        sites["p"] = _inverse_logit(sites["theta"])
    n_rep = next(iter(sites.values())).mean.shape[0]
    zeros = np.zeros(n_rep, np.int64)
    return FitSummary(sites=sites, n_divergent=zeros, n_max_treedepth=zeros, n_leapfrog=zeros)


def group_estimates(data: dict):
    """(estimate, its variance, degrees of freedom or None) per group; arrays (R, J)."""
    if "se" in data:
        return data["y"], data["se"] ** 2, None
    if "trials" in data:
        s, n = data["successes"], data["trials"]
        return np.log((s + 0.5) / (n - s + 0.5)), 1 / (s + 0.5) + 1 / (n - s + 0.5), None
    ss, df = _pooled(data)
    return data["ybar"], ss / df / data["n"], df


def raw_estimates(data: dict) -> dict:
    """Each group's own estimate, before any pooling, per site; arrays (R, J): ``theta`` is
    ``ybar`` or ``y`` (the empirical logit for binomial counts, as in ``group_estimates``) and,
    for binomial counts, ``p`` is successes / trials."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {"theta": np.asarray(group_estimates(data)[0], float)}
        if "trials" in data:
            out["p"] = np.asarray(data["successes"], float) / np.asarray(data["trials"], float)
    return out


def _pooled(data: dict):
    """(within-group sum of squares, its degrees of freedom N - J) per replicate; (R, 1) each."""
    return data["ss"].sum(axis=-1, keepdims=True), (data["n"] - 1).sum(axis=-1, keepdims=True)


def interval_site(point, sd, df=None) -> SiteSummary:
    """Intervals point ± quantile x sd, from the normal (df None) or the t_df distribution."""
    point, sd = np.broadcast_arrays(np.asarray(point, float), np.asarray(sd, float))
    q = np.asarray(QUANTILES)[None, :, None]
    z = stats.norm.ppf(q) if df is None else stats.t.ppf(q, np.asarray(df, float)[..., None])
    return _site(point, sd, point[:, None, :] + z * sd[:, None, :])


def point_site(point) -> SiteSummary:
    """A point estimate with no standard error or interval."""
    point = np.asarray(point, float)
    nan = np.full_like(point, np.nan)
    return _site(point, nan, np.repeat(nan[:, None, :], len(QUANTILES), axis=1))


def sigma_site(data: dict) -> dict:
    """With sufficient statistics: sigma-hat = s and its exact chi-square interval
    sqrt(SS / chi2_{N-J}(1 - q)); nothing with known sigma_j."""
    if "ss" not in data:
        return {}
    ss, df = _pooled(data)
    q = np.asarray(QUANTILES)[None, :, None]
    quantiles = np.sqrt(ss[:, None, :] / stats.chi2.ppf(1 - q, df[:, None, :]))
    point = np.sqrt(ss / df)
    return {"sigma": _site(point, point / np.sqrt(2 * df), quantiles)}


def _inverse_logit(theta: SiteSummary) -> SiteSummary:
    p = 1 / (1 + np.exp(-theta.mean))
    return _site(p, p * (1 - p) * theta.sd, 1 / (1 + np.exp(-theta.quantiles)))


def _site(mean, sd, quantiles) -> SiteSummary:
    nan = np.full_like(mean, np.nan)
    return SiteSummary(mean=mean, sd=sd, quantiles=quantiles, rhat=nan, ess_bulk=nan, mcse_sd=nan,
                       mcse_mean=nan, ess_tail=nan)
