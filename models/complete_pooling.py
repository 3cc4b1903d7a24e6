"""Complete pooling: every group has the same effect.

    mu      ~ N(mu_loc, mu_scale^2)
    theta_j = mu,                         j = 1..J
    sigma   ~ half-normal(0, sigma_scale)       (unknown-sigma data only)

The other end from ``flat``: the hierarchical model with tau = 0. With known sigma_j the
posterior of mu is conjugate: precision 1/mu_scale^2 + sum_j 1/se_j^2. Its intervals for theta_j
are as narrow as the pooled mean's, so they cover only when the groups really are alike.

Scales: all absolute, in the units of the outcome.
References: Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., §5.5 (complete pooling).
"""

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from models.likelihood import n_groups, observe

SPEC = True  # a prior spec (models.available), not machinery

# theta is a deterministic copy of mu: nothing to non-center.
PARAMETERIZATIONS = ("centered",)


def model(data, *, mu_loc, mu_scale, sigma_scale):
    mu = numpyro.sample("mu", dist.Normal(mu_loc, mu_scale))
    theta = numpyro.deterministic("theta", jnp.broadcast_to(mu, (n_groups(data),)))
    observe(theta, data, sigma_scale)
