"""The reference model as the peers' users write it (``runs.bench.common``'s workload: mu ~
N(0, 10), tau ~ half-normal(5), sigma ~ half-normal(5), the likelihood of the sufficient
statistics ``ybar``, ``n``, ``ss`` without the data's constants), in two forms:

- ``noncentered``: theta_j = mu + tau * eta_j, eta_j ~ N(0, 1), the form users write;
- ``collapsed``: what the engine samples (``models.collapse``), written by hand as a skilled user
  would: theta and mu integrated out, ybar_j | tau, sigma ~ N(mu, tau^2 + sigma^2 / n_j) with mu
  ~ N(0, 10^2) marginalized in closed form, sigma keeping its ``ss`` factor; then for every draw
  mu | tau, sigma, y and theta_j | mu, tau, sigma, y drawn exactly (Stan: generated quantities;
  PyMC/nutpie: after sampling, in NumPy, timed with the fit).

With v_j = tau^2 + sigma^2 / n_j, A = 1/10^2 + sum 1/v_j, B = sum ybar_j / v_j, the marginal log
density of ybar is, up to a constant, -1/2 sum log v_j - 1/2 log A - 1/2 (sum ybar_j^2 / v_j -
B^2 / A); mu | rest ~ N(B / A, 1 / A); theta_j | mu, rest ~ N(m_j, w_j) with 1/w_j = 1/tau^2 +
n_j / sigma^2 and m_j = w_j (mu / tau^2 + n_j ybar_j / sigma^2).
"""

from __future__ import annotations

from runs.bench.common import HYPER

FORMS = ("noncentered", "collapsed")

assert HYPER["mu_loc"] == 0.0 and HYPER["tau_family"] == "half_normal"  # as written below

STAN = {
    "noncentered": """
data { int<lower=1> J; vector[J] ybar; vector[J] n; vector[J] ss; }
parameters { real mu; real<lower=0> tau; real<lower=0> sigma; vector[J] eta; }
transformed parameters { vector[J] theta = mu + tau * eta; }
model {
  mu ~ normal(0, MU_SCALE); tau ~ normal(0, TAU_SCALE); sigma ~ normal(0, SIGMA_SCALE);
  eta ~ std_normal();
  target += -sum(n) * log(sigma)
            - (dot_product(n, square(ybar - theta)) + sum(ss)) / (2 * square(sigma));
}
""",
    "collapsed": """
data { int<lower=1> J; vector[J] ybar; vector[J] n; vector[J] ss; }
parameters { real<lower=0> tau; real<lower=0> sigma; }
model {
  vector[J] v = square(tau) + square(sigma) ./ n;
  real a = 1 / square(MU_SCALE) + sum(inv(v));
  real b = sum(ybar ./ v);
  tau ~ normal(0, TAU_SCALE); sigma ~ normal(0, SIGMA_SCALE);
  target += -0.5 * sum(log(v)) - 0.5 * log(a) - 0.5 * (sum(square(ybar) ./ v) - square(b) / a);
  target += -sum(n - 1) * log(sigma) - sum(ss) / (2 * square(sigma));
}
generated quantities {
  real mu;
  vector[J] theta;
  {
    vector[J] v = square(tau) + square(sigma) ./ n;
    real a = 1 / square(MU_SCALE) + sum(inv(v));
    mu = normal_rng(sum(ybar ./ v) / a, sqrt(1 / a));
    for (j in 1:J) {
      real w = 1 / (1 / square(tau) + n[j] / square(sigma));
      theta[j] = normal_rng(w * (mu / square(tau) + n[j] * ybar[j] / square(sigma)), sqrt(w));
    }
  }
}
""",
}


def stan_code(form: str) -> str:
    code = STAN[form]
    for key in ("mu_scale", "tau_scale", "sigma_scale"):
        code = code.replace(key.upper(), repr(float(HYPER[key])))
    return code


def pymc_model(form: str, first: dict):
    """The PyMC model of ``form`` with ``pm.Data`` containers holding data set ``first``."""
    import pymc as pm
    import pytensor.tensor as pt

    with pm.Model() as model:
        ybar = pm.Data("ybar", first["ybar"])
        n = pm.Data("n", first["n"])
        ss = pm.Data("ss", first["ss"])
        tau = pm.HalfNormal("tau", HYPER["tau_scale"])
        sigma = pm.HalfNormal("sigma", HYPER["sigma_scale"])
        if form == "noncentered":
            mu = pm.Normal("mu", HYPER["mu_loc"], HYPER["mu_scale"])
            eta = pm.Normal("eta", 0.0, 1.0, shape=len(first["ybar"]))
            theta = pm.Deterministic("theta", mu + tau * eta)
            squares = pt.sum(n * (ybar - theta) ** 2) + pt.sum(ss)
            pm.Potential("ybar_ss", -pt.sum(n) * pt.log(sigma) - squares / (2.0 * sigma**2))
        else:
            v = tau**2 + sigma**2 / n
            a = 1.0 / HYPER["mu_scale"] ** 2 + pt.sum(1.0 / v)
            b = pt.sum(ybar / v)
            pm.Potential("ybar_marginal", -0.5 * pt.sum(pt.log(v)) - 0.5 * pt.log(a)
                         - 0.5 * (pt.sum(ybar**2 / v) - b**2 / a))
            pm.Potential("ss_sigma", -pt.sum(n - 1) * pt.log(sigma) - pt.sum(ss) / (2.0 * sigma**2))
    return model


def exact_draws(tau, sigma, data: dict, rng):
    """mu and theta drawn exactly given (chains, draws) arrays of tau and sigma: (chains, draws)
    and (chains, draws, J)."""
    import numpy as np

    ybar, n = data["ybar"], data["n"]
    t2, s2 = tau[..., None] ** 2, sigma[..., None] ** 2
    v = t2 + s2 / n
    a = 1.0 / HYPER["mu_scale"] ** 2 + (1.0 / v).sum(-1)
    mu = (ybar / v).sum(-1) / a + rng.standard_normal(tau.shape) / np.sqrt(a)
    w = 1.0 / (1.0 / t2 + n / s2)
    theta = w * (mu[..., None] / t2 + n * ybar / s2) + np.sqrt(w) * rng.standard_normal(v.shape)
    return mu, theta
