"""Known standard errors, the eight-schools form: one estimate and its standard error per group.

    theta_j ~ N(mu, tau^2)
    se_j    = sigma / sqrt(group_size) * se_ratio^((j - 1) / (J - 1) - 1/2),   j = 1..J
    y_j     ~ N(theta_j, se_j^2)

The standard errors are fixed (known to the model, as in Rubin's eight schools) and spread
evenly on the log scale over a factor ``se_ratio`` around sigma / sqrt(group_size), their
geometric mean: the eight schools' run from 9 to 18, a ratio of 2. There is no sigma to estimate.

Reference: Rubin (1981), Estimation in parallel randomized experiments, J. Educ. Stat. 6(4);
Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., §5.5.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

CONSTRAINTS = {"se_ratio": ("a number >= 1 (largest over smallest standard error)", lambda v: v >= 1)}


def standard_errors(n_groups: int, group_size: int, sigma: float, se_ratio: float):
    position = jnp.linspace(0.0, 1.0, n_groups) - 0.5
    return sigma / jnp.sqrt(float(group_size)) * jnp.asarray(se_ratio, jnp.float32) ** position


def simulate(keys, *, n_groups: int, group_size: int, tau: float, sigma: float, mu: float,
             se_ratio: float):
    se = standard_errors(int(n_groups), group_size, sigma, se_ratio)
    return jax.vmap(lambda k: _one(k, int(n_groups), se, tau, mu))(keys)


def _one(key, n_groups, se, tau, mu):
    k_theta, k_y = jax.random.split(key)
    theta = mu + tau * jax.random.normal(k_theta, (n_groups,))
    y = theta + se * jax.random.normal(k_y, (n_groups,))
    truth = {"theta": theta, "mu": jnp.asarray(mu, jnp.float32), "tau": jnp.asarray(tau, jnp.float32)}
    return {"y": y, "se": se}, truth
