"""Baseline, no draws: empirical Bayes with tau estimated by REML (restricted maximum likelihood).

For the normal–normal model y_j ~ N(theta_j, v_j), theta_j ~ N(mu, tau^2), REML maximizes the
likelihood of tau^2 with mu integrated out under a flat prior. Its estimating equation, solved by
the fixed point (Viechtbauer 2005, eq. 12), truncated at 0,

    w_j = 1 / (v_j + tau^2),   mu-hat = sum w y / sum w,
    tau^2 <- max(0, sum w^2 ((y - mu-hat)^2 - v) / sum w^2 + 1 / sum w),

which for equal v_j is tau^2 = max(0, s_b^2 - v), s_b^2 = sum (y_j - ybar)^2 / (J - 1). Then
the plug-in posterior (Morris 1983): B_j = v_j / (v_j + tau^2),

    theta_j = (1 - B_j) y_j + B_j mu-hat,   sd_j^2 = v_j (1 - B_j) + B_j^2 / sum w,

normal intervals, which ignore the uncertainty in tau (the known weakness that a fully Bayesian
``hierarchical`` fixes). ``mu``: mu-hat with sd 1 / sqrt(sum w); ``tau``: a point only. With
sufficient statistics v_j = s^2 / n_j with the pooled s^2 (models.closed_form), which for equal
group sizes is REML for (sigma, tau) jointly whenever tau-hat > 0.

Scales: none (no hyperparameters). References: Viechtbauer (2005), Bias and efficiency of
meta-analytic variance estimators in the random-effects model, JEBS 30(3); Morris (1983), JASA
78(381); Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., §5.4 (the marginal posterior of tau
under flat priors is the restricted likelihood).
"""

import numpy as np

from models.closed_form import group_estimates, interval_site, point_site, sigma_site

PARAMETERIZATIONS = ("none",)  # no draws, nothing to parameterize
ITERATIONS = 500  # fixed-point steps; converged to ~1e-12 relative on the tested data


def reml_tau2(est, var):
    """REML estimate of tau^2 per row of (R, J) arrays."""
    n_groups = est.shape[-1]
    grand = est.mean(axis=-1, keepdims=True)
    tau2 = np.maximum(((est - grand) ** 2).sum(-1, keepdims=True) / (n_groups - 1) - var.mean(-1, keepdims=True), 0.0)
    for _ in range(ITERATIONS):
        w = 1 / (var + tau2)
        mu = (w * est).sum(-1, keepdims=True) / w.sum(-1, keepdims=True)
        step = (w**2 * ((est - mu) ** 2 - var)).sum(-1, keepdims=True) / (w**2).sum(-1, keepdims=True)
        tau2 = np.maximum(step + 1 / w.sum(-1, keepdims=True), 0.0)
    return tau2


def estimate(data):
    est, var, _ = group_estimates(data)
    tau2 = reml_tau2(est, var)
    w = 1 / (var + tau2)
    mu = (w * est).sum(-1, keepdims=True) / w.sum(-1, keepdims=True)
    mu_var = 1 / w.sum(-1, keepdims=True)
    b = var * w
    theta = (1 - b) * est + b * mu
    return {
        "theta": interval_site(theta, np.sqrt(var * (1 - b) + b**2 * mu_var)),
        "mu": interval_site(mu, np.sqrt(mu_var)),
        "tau": point_site(np.sqrt(tau2)),
        **sigma_site(data),
    }
