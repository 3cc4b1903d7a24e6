"""Unbalanced group sizes shaped like the radon data's counties: many tiny groups, a few large.

    n_j     = 1 + stochastic_round((c_j - 1) (group_size - 1) / (cbar - 1)),
              c_j drawn with replacement from the 85 Minnesota county sizes (cbar = 919 / 85)
    theta_j ~ N(mu, tau^2),        y_ij ~ N(theta_j, sigma^2),   i = 1..n_j

The county sizes (1 to 116 houses, median 5) are rescaled so that ``group_size`` is the mean
group size: E[n_j] = group_size exactly (stochastic rounding, floor(x + U), is unbiased), every
group has at least one observation, and the skew of the radon counties is kept. The sizes come
from the radon data set in the installed ArviZ package (``sim.datasets``).

Reference: Gelman & Hill (2007), Data Analysis Using Regression and Multilevel/Hierarchical
Models, §12.2.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from sim._gaussian import sufficient_stats, truth


@functools.cache
def county_sizes() -> np.ndarray:
    """Houses per county in the radon data (85 counties, 919 houses)."""
    from sim import datasets

    return np.asarray(datasets.load("radon").data["n"], np.int32)


def simulate(keys, *, n_groups: int, group_size: int, tau: float, sigma: float, mu: float):
    sizes = jnp.asarray(county_sizes(), jnp.float32)
    return jax.vmap(lambda k: _one(k, int(n_groups), group_size, tau, sigma, mu, sizes))(keys)


def _one(key, n_groups, group_size, tau, sigma, mu, sizes):
    k_pick, k_round, k_theta, k_mean, k_ss = jax.random.split(key, 5)
    c = jax.random.choice(k_pick, sizes, (n_groups,))
    scaled = (c - 1.0) * (group_size - 1.0) / (sizes.mean() - 1.0)
    n = 1 + jnp.floor(scaled + jax.random.uniform(k_round, (n_groups,))).astype(jnp.int32)
    theta = mu + tau * jax.random.normal(k_theta, (n_groups,))
    return sufficient_stats(k_mean, k_ss, theta, n, sigma), truth(theta, mu, tau, sigma)
