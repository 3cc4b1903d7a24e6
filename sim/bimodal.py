"""Bimodal group effects: two equally likely clusters either side of mu.

    theta_j = mu + s_j separation tau + sqrt(1 - separation^2) tau z_j,
              s_j = ±1 (equally likely),  z_j ~ N(0, 1)
    y_ij    ~ N(theta_j, sigma^2),        i = 1..n (balanced)

The effects have mean mu and standard deviation tau (as in ``normal_normal``), and the mixture
is bimodal when separation > 1 / sqrt(2) (the cluster centres lie further apart than twice the
within-cluster sd). A unimodal normal prior pulls both clusters toward the empty middle.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sim._gaussian import sufficient_stats, truth

CONSTRAINTS = {"separation": ("a number in [0, 1)", lambda v: 0 <= v < 1)}


def simulate(keys, *, n_groups: int, group_size: int, tau: float, sigma: float, mu: float,
             separation: float):
    return jax.vmap(
        lambda k: _one(k, int(n_groups), int(group_size), tau, sigma, mu, separation)
    )(keys)


def _one(key, n_groups, group_size, tau, sigma, mu, separation):
    k_side, k_theta, k_mean, k_ss = jax.random.split(key, 4)
    side = jnp.where(jax.random.bernoulli(k_side, 0.5, (n_groups,)), 1.0, -1.0)
    spread = jnp.sqrt(1.0 - separation**2)
    theta = mu + tau * (separation * side + spread * jax.random.normal(k_theta, (n_groups,)))
    n = jnp.full((n_groups,), group_size, dtype=jnp.int32)
    return sufficient_stats(k_mean, k_ss, theta, n, sigma), truth(theta, mu, tau, sigma)
