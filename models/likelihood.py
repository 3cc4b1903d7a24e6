"""The likelihood every prior spec shares: group data given the group effects ``theta``.

Two data forms (the batch contract between ``sim`` and ``models``):

* unknown sigma, Gaussian sufficient statistics per group: ``ybar`` (group mean), ``n`` (group
  size) and ``ss`` (within-group sum of squares). With sigma ~ half-normal(0, sigma_scale),

      ybar_j | theta_j, sigma ~ N(theta_j, sigma^2 / n_j)
      ss_j   | sigma          ~ Gamma((n_j - 1) / 2, rate = 1 / (2 sigma^2))   (= sigma^2 chi^2_{n_j-1})

  whose product is proportional, in (theta, sigma), to the likelihood of the raw observations.
  Groups of size one carry no within-group information and their ``ss`` term is masked out.

* known sigma_j (the eight-schools form): ``y`` (estimate) and ``se`` (its standard error),

      y_j | theta_j ~ N(theta_j, se_j^2).

An observed value given as ``None`` (``y``, or ``ybar`` and ``ss``) is drawn instead of
conditioned on, so the same model serves prior predictive draws (simulation-based calibration).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist


def n_groups(data: dict) -> int:
    """J, the number of groups of one data set."""
    return (data["se"] if "se" in data else data["n"]).shape[-1]


def observe(theta, data: dict, sigma_scale: float) -> None:
    """Add the likelihood of ``data`` given ``theta``; call it outside the ``groups`` plate."""
    if "se" in data:
        with numpyro.plate("groups", n_groups(data)):
            numpyro.sample("y", dist.Normal(theta, data["se"]), obs=data.get("y"))
        return
    sigma = numpyro.sample("sigma", dist.HalfNormal(sigma_scale))
    n = data["n"]
    informative = n > 1
    shape = jnp.where(informative, (n - 1) / 2.0, 1.0)
    with numpyro.plate("groups", n_groups(data)):
        numpyro.sample("ybar", dist.Normal(theta, sigma / jnp.sqrt(n)), obs=data.get("ybar"))
        ss = data.get("ss")
        numpyro.sample(
            "ss",
            dist.Gamma(shape, 0.5 / sigma**2).mask(informative),
            obs=None if ss is None else jnp.where(informative, ss, 1.0),
        )
