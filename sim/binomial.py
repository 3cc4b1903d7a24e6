"""Binomial outcomes, group effects on the logit scale (batting averages, tumour rates).

    theta_j     ~ N(mu, tau^2)                        (log-odds of success)
    successes_j ~ Binomial(group_size, p_j),   p_j = 1 / (1 + exp(-theta_j))

``mu`` and ``tau`` are on the logit scale: mu = -1 is a typical rate of 0.27, and tau = 0.25, 1, 4
spread the groups' rates by roughly ±5 %, ±20 % (one sd either side) and over nearly all of (0, 1). The true values include
``p`` (the success probabilities) next to ``theta``. With small ``group_size`` some groups have 0
or all successes, where a flat prior on theta has no proper posterior (``models/flat.py`` skips
those data sets, with the reason in the rows).

Reference: Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., §5.3 (rat tumours), and
Efron & Morris (1975) (batting averages).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def simulate(keys, *, n_groups: int, group_size: int, tau: float, mu: float):
    return jax.vmap(lambda k: _one(k, int(n_groups), int(group_size), tau, mu))(keys)


def _one(key, n_groups, group_size, tau, mu):
    k_theta, k_y = jax.random.split(key)
    theta = mu + tau * jax.random.normal(k_theta, (n_groups,))
    p = jax.nn.sigmoid(theta)
    trials = jnp.full((n_groups,), group_size, dtype=jnp.int32)
    successes = jax.random.binomial(k_y, trials.astype(jnp.float32), p).astype(jnp.int32)
    truth = {"theta": theta, "p": p, "mu": jnp.asarray(mu, jnp.float32),
             "tau": jnp.asarray(tau, jnp.float32)}
    return {"successes": successes, "trials": trials}, truth
