"""Statistical checks of the engine's output against exact answers, shared by the tests.

Each check is a plain function that returns the list of what failed (empty: passed), so that
``tests/test_power.py`` can apply it both to a real answer and to the same answer perturbed by
the smallest error it must catch, and show that the real one passes and the perturbed one fails.

Monte Carlo tolerances are ``z`` Monte Carlo standard errors, the errors computed from the fit's
own effective sample sizes: the bulk ESS for means and quantiles, the Monte Carlo error of the
sd (``SiteSummary.mcse_sd``, ArviZ's, from the ESS of the squared deviations) for sds. A check
whose tolerance comes from the fit's ESS would lose its power silently if the sampler mixed
worse; ``power`` says what the tolerance still catches, and the tests assert it.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

Z = 5.0
"""Two-sided critical value per comparison: a chance failure has probability 5.7e-7 each, so
that a few hundred comparisons in a test fail by chance with probability below 1e-3."""

PERTURBATION = 0.1
"""The errors the checks must catch: a posterior sd off by 10 %, a mean off by 0.1 sd."""


def _quantile_se(levels, density, ess):
    """Monte Carlo sd of the q-quantile of ``ess`` independent draws: sqrt(q(1-q)/ESS) / f(x_q)."""
    return np.sqrt(levels * (1 - levels)) / (density * np.sqrt(ess))


def moments(site, mean, sd, levels=None, quantiles=None, density=None, z=Z) -> list[str]:
    """Failures of a fitted site (``models.engine.SiteSummary``; arrays (R, P), quantiles
    (R, len(levels), P)) against the exact posterior mean and sd (R, P) and, when given, the
    exact quantiles at ``levels`` and the posterior density there ((R, len(levels), P)): each
    element within ``z`` Monte Carlo standard errors."""
    out = []
    ess = np.asarray(site.ess_bulk, float)
    mean_se = sd / np.sqrt(ess)
    bad = np.abs(site.mean - mean) > z * mean_se
    if bad.any():
        out.append(f"mean at {np.argwhere(bad).tolist()[:5]}: max |error| / se "
                   f"{np.max(np.abs(site.mean - mean) / mean_se):.2f}")
    bad = np.abs(site.sd - sd) > z * site.mcse_sd
    if bad.any():
        out.append(f"sd at {np.argwhere(bad).tolist()[:5]}: max |error| / se "
                   f"{np.max(np.abs(site.sd - sd) / site.mcse_sd):.2f}")
    if quantiles is not None:
        levels = np.asarray(levels)[None, :, None]
        q_se = _quantile_se(levels, density, ess[:, None, :])
        bad = np.abs(site.quantiles - quantiles) > z * q_se
        if bad.any():
            out.append(f"quantiles at {np.argwhere(bad).tolist()[:5]}: max |error| / se "
                       f"{np.max(np.abs(site.quantiles - quantiles) / q_se):.2f}")
    return out


def power(site, sd, z=Z, size=PERTURBATION) -> dict:
    """Probability that ``moments`` fails on this fit had its sds been off by ``size`` (x 1.1 or
    x 0.9: the same distance) or its means shifted by ``size`` sd, with each element's Monte
    Carlo error normal with the se the fit reports: 1 - prod_i (1 - P(|N(d_i, 1)| > z)),
    d_i the error in se units of element i."""

    def any_fails(d):
        p = stats.norm.sf(z - d) + stats.norm.cdf(-z - d)
        return float(1 - np.prod(1 - p))

    return {
        "sd": any_fails(size * np.asarray(sd) / np.asarray(site.mcse_sd)),
        "mean": any_fails(size * np.sqrt(np.asarray(site.ess_bulk, float))),
    }


def normal_quantiles(mean, sd, levels):
    """Exact quantiles and densities there of independent normals (R, P): (R, len(levels), P)."""
    zq = stats.norm.ppf(np.asarray(levels))[None, :, None]
    q = mean[:, None, :] + zq * sd[:, None, :]
    return q, stats.norm.pdf(zq) / sd[:, None, :]


def coverage(covered, nominal, tol=0.02) -> list[str]:
    """Failures of interval coverage: the share of ``covered`` (independent indicators) within
    ``tol`` of ``nominal``. The check is only as good as its count: the binomial sd
    sqrt(p(1-p)/n) must be at most tol / 4, so a correct sampler fails by chance with
    probability below 6e-5, and a coverage off by 0.05 is (0.05 - tol) / sd >= 6 sds beyond
    the tolerance: caught with probability 1 - 1e-9."""
    covered = np.asarray(covered, float).ravel()
    n = covered.size
    sd = np.sqrt(nominal * (1 - nominal) / n)
    assert sd <= tol / 4, f"{n} indicators: binomial sd {sd:.4f} > {tol / 4}"
    got = covered.mean()
    return [] if abs(got - nominal) <= tol else [f"coverage {got:.4f}, nominal {nominal}"]


def two_sample_mean(x, y, z=Z) -> list[str]:
    """Failures of equal means of independent samples x, y (Welch's z, large samples)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    se = np.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)
    d = (x.mean() - y.mean()) / se
    return [] if abs(d) <= z else [f"means {x.mean():.4g} and {y.mean():.4g}: {d:.2f} se apart"]


def one_sample_mean(x, mean, sd, z=Z) -> list[str]:
    """Failures of E[x] = ``mean`` for independent draws x whose exact sd is ``sd``."""
    x = np.asarray(x, float)
    d = (x.mean() - mean) / (sd / np.sqrt(x.size))
    return [] if abs(d) <= z else [f"mean {x.mean():.4g}, exact {mean:.4g}: {d:.2f} se"]


def same_counts(a, b, alpha=1e-6) -> list[str]:
    """Failures of equal distributions of two independent samples of integers (leapfrog steps):
    the chi-square test of homogeneity on their 2 x k table, values with fewer than 10 in both
    samples together pooled into their neighbour."""
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    values = np.union1d(a, b)
    table = np.array([[np.sum(s == v) for v in values] for s in (a, b)])
    merged, acc = [], np.zeros(2, int)
    for col in table.T:
        acc = acc + col
        if acc.sum() >= 10:
            merged.append(acc)
            acc = np.zeros(2, int)
    if acc.sum() and merged:
        merged[-1] = merged[-1] + acc
    table = np.array(merged).T
    if table.shape[1] < 2:
        return []
    p = stats.chi2_contingency(table)[1]
    return [] if p >= alpha else [f"step counts differ: chi-square p = {p:.2e}"]


def exact_distribution(x, cdf, alpha=1e-6) -> list[str]:
    """Failures of independent draws x against an exact distribution (one-sample KS)."""
    p = stats.kstest(np.asarray(x, float), cdf).pvalue
    return [] if p >= alpha else [f"KS against the exact distribution: p = {p:.2e}"]
