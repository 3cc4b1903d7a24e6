"""Heavy-tailed group effects: a Student-t population with few degrees of freedom.

    theta_j = mu + tau * sqrt((df - 2) / df) * t_j,   t_j ~ t_df,      j = 1..J
    y_ij    ~ N(theta_j, sigma^2),                    i = 1..n (balanced)

The t draws are rescaled so that ``tau`` stays the standard deviation of the effects (as in
``normal_normal``; it needs df > 2): a normal hierarchical model's tau then aims at the same
number, and what changes is only the shape. With df = 3 most groups sit closer to mu than under
a normal of the same sd, and a few sit much further out, which a normal prior shrinks too hard.

Reference: Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., §17.4 (t models for
hierarchical effects).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sim._gaussian import sufficient_stats, truth

CONSTRAINTS = {"df": ("a number > 2 (tau is the effects' sd, which needs df > 2)", lambda v: v > 2)}


def simulate(keys, *, n_groups: int, group_size: int, tau: float, sigma: float, mu: float,
             df: float):
    return jax.vmap(lambda k: _one(k, int(n_groups), int(group_size), tau, sigma, mu, df))(keys)


def _one(key, n_groups, group_size, tau, sigma, mu, df):
    k_theta, k_mean, k_ss = jax.random.split(key, 3)
    t = jax.random.t(k_theta, df, (n_groups,))
    theta = mu + tau * jnp.sqrt((df - 2.0) / df) * t
    n = jnp.full((n_groups,), group_size, dtype=jnp.int32)
    return sufficient_stats(k_mean, k_ss, theta, n, sigma), truth(theta, mu, tau, sigma)
