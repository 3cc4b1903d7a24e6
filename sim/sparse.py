"""Sparse group effects: most groups sit exactly at mu, a few far away.

    theta_j = mu + s_j b_j tau / sqrt(fraction),   b_j ~ Bernoulli(fraction),  s_j = ±1 (equally likely)
    y_ij    ~ N(theta_j, sigma^2),                 i = 1..n (balanced)

Each group is "away" with probability ``fraction``, at distance tau / sqrt(fraction) on a random
side, so the effects have mean mu and standard deviation tau, as in ``normal_normal``: a normal
hierarchical model's tau aims at the same number, and only the shape differs. This is the
setting the horseshoe is built for (Carvalho, Polson & Scott 2010): shrink the many nulls hard,
leave the few signals alone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sim._gaussian import sufficient_stats, truth

CONSTRAINTS = {"fraction": ("a number in (0, 1]", lambda v: 0 < v <= 1)}


def simulate(keys, *, n_groups: int, group_size: int, tau: float, sigma: float, mu: float,
             fraction: float):
    return jax.vmap(
        lambda k: _one(k, int(n_groups), int(group_size), tau, sigma, mu, fraction)
    )(keys)


def _one(key, n_groups, group_size, tau, sigma, mu, fraction):
    k_away, k_sign, k_mean, k_ss = jax.random.split(key, 4)
    away = jax.random.bernoulli(k_away, fraction, (n_groups,))
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (n_groups,)), 1.0, -1.0)
    theta = mu + jnp.where(away, sign * tau / jnp.sqrt(fraction), 0.0)
    n = jnp.full((n_groups,), group_size, dtype=jnp.int32)
    return sufficient_stats(k_mean, k_ss, theta, n, sigma), truth(theta, mu, tau, sigma)
