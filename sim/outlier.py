"""One outlying group among normal ones.

    theta_j = mu + tau z_j,  z_j ~ N(0, 1),   j = 1..J-1
    theta_J = mu + shift tau                  (the last group: the outlier)
    y_ij    ~ N(theta_j, sigma^2),            i = 1..n (balanced)

``mu`` and ``tau`` (the true values reported) describe the J - 1 regular groups; the outlier sits
``shift`` of their standard deviations away. A normal prior drags the outlier toward the others
and inflates tau to accommodate it; heavy-tailed priors (student_t, hierarchical_t) are meant to
let it go. Which group is the outlier does not matter to an exchangeable prior.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sim._gaussian import sufficient_stats, truth

def simulate(keys, *, n_groups: int, group_size: int, tau: float, sigma: float, mu: float,
             shift: float):
    return jax.vmap(lambda k: _one(k, int(n_groups), int(group_size), tau, sigma, mu, shift))(keys)


def _one(key, n_groups, group_size, tau, sigma, mu, shift):
    k_theta, k_mean, k_ss = jax.random.split(key, 3)
    z = jax.random.normal(k_theta, (n_groups,))
    z = z.at[-1].set(shift)
    theta = mu + tau * z
    n = jnp.full((n_groups,), group_size, dtype=jnp.int32)
    return sufficient_stats(k_mean, k_ss, theta, n, sigma), truth(theta, mu, tau, sigma)
