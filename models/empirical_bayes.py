"""Baseline, no draws: empirical Bayes with tau estimated by REML (restricted maximum likelihood).

For the normal–normal model y_j ~ N(theta_j, v_j), theta_j ~ N(mu, tau^2), REML maximizes the
likelihood of tau^2 with mu integrated out under a flat prior (BDA3 eq. 5.21):

    l(t) = -1/2 [ sum_j log(v_j + t) + log sum_j w_j + sum_j w_j (y_j - mu-hat)^2 ],
    w_j = 1 / (v_j + t),   mu-hat = sum w y / sum w,

over t = tau^2 >= 0: on a grid of 0 and 400 log-spaced values up to 100 (S + max v), whose best
point (the global maximum, should l have several) is refined by golden-section search between
its neighbours. For equal v_j the answer is tau^2 = max(0, s_b^2 - v),
s_b^2 = sum (y_j - ybar)^2 / (J - 1). Then the plug-in posterior (Morris 1983): B_j = v_j w_j,

    theta_j = (1 - B_j) y_j + B_j mu-hat,   sd_j^2 = v_j (1 - B_j) + B_j^2 / sum w,

normal intervals, which ignore the uncertainty in tau (the known weakness that a fully Bayesian
``hierarchical`` fixes). ``mu``: mu-hat with sd 1 / sqrt(sum w); ``tau``: a point only. With
sufficient statistics v_j = s^2 / n_j with the pooled s^2 (models.closed_form), which for equal
group sizes is REML for (sigma, tau) jointly whenever tau-hat > 0.

Scales: none (no hyperparameters). References: Harville (1977), Maximum likelihood approaches to
variance component estimation, JASA 72(358); Morris (1983), JASA 78(381); Gelman et al. (2013),
Bayesian Data Analysis, 3rd ed., §5.4 (the marginal posterior of tau under flat priors is the
restricted likelihood).
"""

import numpy as np

from models.closed_form import group_estimates, interval_site, point_site, sigma_site

SPEC = True  # a prior spec (models.available), not machinery

PARAMETERIZATIONS = ("none",)  # no draws, nothing to parameterize
GRID = 400  # log-spaced grid points for tau^2
GOLDEN_STEPS = 100  # each shrinks the bracket by 0.618: 1e-21 of it is left


def restricted_loglik(t, est, var):
    """l(t) for t of shape (R,) and data of shape (R, J): shape (R,)."""
    w = 1 / (var + t[:, None])
    mu = (w * est).sum(-1, keepdims=True) / w.sum(-1, keepdims=True)
    return 0.5 * (np.log(w).sum(-1) - np.log(w.sum(-1)) - (w * (est - mu) ** 2).sum(-1))


def reml_tau2(est, var):
    """REML estimate of tau^2 per row of (R, J) arrays; shape (R, 1)."""
    spread = ((est - est.mean(-1, keepdims=True)) ** 2).sum(-1)
    top, low = 100 * (spread + var.max(-1)), 1e-10 * var.min(-1)
    grid = [np.zeros(len(est))] + [low * (top / low) ** f for f in np.linspace(0, 1, GRID)]
    loglik = np.stack([restricted_loglik(t, est, var) for t in grid], axis=1)
    grid = np.stack(grid, axis=1)
    best = np.argmax(loglik, axis=1)
    rows = np.arange(len(est))
    lo = grid[rows, np.maximum(best - 1, 0)]
    hi = grid[rows, np.minimum(best + 1, grid.shape[1] - 1)]
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(GOLDEN_STEPS):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        left = restricted_loglik(a, est, var) >= restricted_loglik(b, est, var)
        hi, lo = np.where(left, b, hi), np.where(left, lo, a)
    tau2 = (lo + hi) / 2
    zero_wins = restricted_loglik(np.zeros_like(tau2), est, var) >= restricted_loglik(tau2, est, var)
    return np.where(zero_wins, 0.0, tau2)[:, None]


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
