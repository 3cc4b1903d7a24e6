"""Shared by the Gaussian scenarios: a group's sufficient statistics, drawn exactly.

For y_ij ~ N(theta_j, sigma^2), i = 1..n_j,

    ybar_j = mean_i y_ij               ~ N(theta_j, sigma^2 / n_j)
    ss_j   = sum_i (y_ij - ybar_j)^2   ~ sigma^2 * chi^2_{n_j - 1},   independent of ybar_j,

so simulating (and fitting) costs the same for n_j = 5 as for n_j = 5000. A group of one
observation has no within-group information: ss_j = 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def sufficient_stats(k_mean, k_ss, theta, n, sigma) -> dict:
    """``{"ybar", "n", "ss"}`` for group effects ``theta`` (J,) and sizes ``n`` (J,)."""
    n = jnp.asarray(n, jnp.int32)
    ybar = theta + sigma / jnp.sqrt(n) * jax.random.normal(k_mean, theta.shape)
    # chi^2_k = 2 * Gamma(k / 2)
    dof = jnp.maximum(n - 1, 1).astype(jnp.float32)
    ss = jnp.where(n > 1, sigma**2 * 2.0 * jax.random.gamma(k_ss, dof / 2.0), 0.0)
    return {"ybar": ybar, "n": n, "ss": ss}


def truth(theta, mu, tau, sigma=None) -> dict:
    """The true values every Gaussian scenario reports (``sigma`` where the data have one)."""
    out = {"theta": theta, "mu": jnp.asarray(mu, jnp.float32), "tau": jnp.asarray(tau, jnp.float32)}
    if sigma is not None:
        out["sigma"] = jnp.asarray(sigma, jnp.float32)
    return out
