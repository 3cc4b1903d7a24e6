"""Gaussian outcomes with normally distributed group effects (the normal-normal model).

    theta_j ~ N(mu, tau^2),            j = 1..J        (J = n_groups)
    y_ij    ~ N(theta_j, sigma^2),     i = 1..n        (n = group_size, balanced)

The raw observations are never drawn: their sufficient statistics are drawn exactly from their
sampling distributions,

    ybar_j = mean_i y_ij               ~ N(theta_j, sigma^2 / n)
    ss_j   = sum_i (y_ij - ybar_j)^2   ~ sigma^2 * chi^2_{n-1},   independent of ybar_j,

so simulating (and fitting) costs the same for n = 5 as for n = 5000.

Reference: Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., §5.4.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def simulate(keys, *, n_groups: int, group_size: int, tau: float, sigma: float, mu: float):
    """One data set per key: ``keys`` has shape (R,); returns (data, truth) with leading axis R."""
    return jax.vmap(lambda k: _one(k, int(n_groups), int(group_size), tau, sigma, mu))(keys)


def _one(key, n_groups, group_size, tau, sigma, mu):
    k_theta, k_mean, k_ss = jax.random.split(key, 3)
    theta = mu + tau * jax.random.normal(k_theta, (n_groups,))
    n = jnp.full((n_groups,), group_size, dtype=jnp.int32)
    ybar = theta + sigma / jnp.sqrt(n) * jax.random.normal(k_mean, (n_groups,))
    # chi^2_{k} = 2 * Gamma(k / 2); for n = 1 there is no within-group information: ss = 0.
    dof = jnp.maximum(n - 1, 1).astype(jnp.float32)
    ss = jnp.where(n > 1, sigma**2 * 2.0 * jax.random.gamma(k_ss, dof / 2.0), 0.0)
    data = {"ybar": ybar, "n": n, "ss": ss}
    truth = {
        "theta": theta,
        "mu": jnp.asarray(mu, jnp.float32),
        "tau": jnp.asarray(tau, jnp.float32),
        "sigma": jnp.asarray(sigma, jnp.float32),
    }
    return data, truth
