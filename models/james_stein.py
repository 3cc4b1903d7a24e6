"""Baseline, no draws: positive-part James–Stein toward the grand mean, with Morris's intervals.

With J group estimates y_j of variances v_j, V their mean (v_j = V in a balanced design: the
James–Stein setting), grand mean ybar and S = sum_j (y_j - ybar)^2,

    B       = min(1, (J - 3) V / S)      (V replaced by nu V / (nu + 2) when it is estimated with
                                          nu = N - J degrees of freedom: James & Stein 1961)
    theta_j = ybar + (1 - B) (y_j - ybar)
    s_j^2   = v_j (1 - (J - 1) / J * B) + 2 / (J - 3) * B^2 (y_j - ybar)^2   (Morris 1983, eq. 4.1)

and the interval theta_j ± z_q s_j, which widens Efron–Morris's naive plug-in interval for the
uncertainty in B. With J <= 3 nothing is shrunk (B = 0: the Wald interval) and no tau is
reported. ``mu`` is ybar with the standard error sqrt(S / (J (J - 1))) (unbiased for
(V + tau^2) / J) and t_{J-1} quantiles; ``tau`` is the implied sqrt(V / B - V) (0 when B = 1), a
point only.

Scales: none (no hyperparameters). References: James & Stein (1961); Efron & Morris (1975),
JASA 70(350); Morris (1983), Parametric empirical Bayes inference: theory and applications,
JASA 78(381).
"""

import numpy as np

from models.closed_form import group_estimates, interval_site, point_site, sigma_site

SPEC = True  # a prior spec (models.available), not machinery

PARAMETERIZATIONS = ("none",)  # no draws, nothing to parameterize


def estimate(data):
    est, var, df = group_estimates(data)
    n_groups = est.shape[-1]
    v = var.mean(axis=-1, keepdims=True)
    grand = est.mean(axis=-1, keepdims=True)
    spread = ((est - grand) ** 2).sum(axis=-1, keepdims=True)
    mu = interval_site(grand, np.sqrt(spread / (n_groups * (n_groups - 1))), n_groups - 1)
    if n_groups <= 3:
        return {"theta": interval_site(est, np.sqrt(var), df), "mu": mu, **sigma_site(data)}
    shrink_v = v if df is None else v * df / (df + 2)
    b = np.minimum(1.0, (n_groups - 3) * shrink_v / spread)
    theta = grand + (1 - b) * (est - grand)
    sd = np.sqrt(var * (1 - (n_groups - 1) / n_groups * b) + 2 / (n_groups - 3) * b**2 * (est - grand) ** 2)
    return {
        "theta": interval_site(theta, sd),
        "mu": mu,
        "tau": point_site(np.sqrt(v / b - v)),
        **sigma_site(data),
    }
