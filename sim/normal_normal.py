"""Gaussian outcomes with normally distributed group effects (the normal-normal model).

    theta_j ~ N(mu, tau^2),            j = 1..J        (J = n_groups)
    y_ij    ~ N(theta_j, sigma^2),     i = 1..n        (n = group_size, balanced)

The raw observations are never drawn: their sufficient statistics (ybar_j, ss_j) are drawn
exactly from their sampling distributions (``sim._gaussian``).

Reference: Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., §5.4.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sim._gaussian import sufficient_stats, truth


def simulate(keys, *, n_groups: int, group_size: int, tau: float, sigma: float, mu: float):
    """One data set per key: ``keys`` has shape (R,); returns (data, truth) with leading axis R."""
    return jax.vmap(lambda k: _one(k, int(n_groups), int(group_size), tau, sigma, mu))(keys)


def _one(key, n_groups, group_size, tau, sigma, mu):
    k_theta, k_mean, k_ss = jax.random.split(key, 3)
    theta = mu + tau * jax.random.normal(k_theta, (n_groups,))
    n = jnp.full((n_groups,), group_size, dtype=jnp.int32)
    return sufficient_stats(k_mean, k_ss, theta, n, sigma), truth(theta, mu, tau, sigma)
