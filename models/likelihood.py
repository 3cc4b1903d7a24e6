"""The likelihood every prior spec shares: group data given the group effects ``theta``.

Three data forms (the batch contract between ``sim`` and ``models``):

* unknown sigma, Gaussian sufficient statistics per group: ``ybar`` (group mean), ``n`` (group
  size) and ``ss`` (within-group sum of squares). With sigma ~ half-normal(0, sigma_scale),

      ybar_j | theta_j, sigma ~ N(theta_j, sigma^2 / n_j)
      ss_j   | sigma          ~ Gamma((n_j - 1) / 2, rate = 1 / (2 sigma^2))   (= sigma^2 chi^2_{n_j-1})

  whose product is proportional, in (theta, sigma), to the likelihood of the raw observations.
  Groups of size one carry no within-group information and their ``ss`` term is masked out.
  When both are observed the model adds that log-likelihood as one factor (site ``ybar_ss``)
  without its terms that depend on the data only (log n_j, lgamma((n_j - 1) / 2), log ss_j):

      -(J + sum_j (n_j - 1)) log sigma - (sum_j n_j (ybar_j - theta_j)^2 + sum_j ss_j) / (2 sigma^2)

  (J: the groups with data; the sums over (n_j - 1) and ss_j over groups of two or more; a group
  with n_j = 0 has no data and adds nothing, which ``models.padding`` uses). A sampler sees the
  same posterior (a potential energy is defined up to a constant), and a gradient does not
  evaluate the data's constants at every leapfrog step. An ``ss_j`` of 0 in a group of two or more is
  allowed too.

* known sigma_j (the eight-schools form): ``y`` (estimate) and ``se`` (its standard error),

      y_j | theta_j ~ N(theta_j, se_j^2).

* binomial counts: ``successes`` out of ``trials``, theta_j on the logit scale,

      successes_j | theta_j ~ Binomial(trials_j, p_j),   p_j = 1 / (1 + exp(-theta_j)),

  and ``p`` is recorded as a deterministic site, so that every spec reports the success
  probabilities too. ``sigma_scale`` is unused.

An observed value given as ``None`` (``y``, ``ybar`` and ``ss``, or ``successes``) is drawn instead of
conditioned on, so the same model serves prior predictive draws (simulation-based calibration).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from models.collapse import Collapsed, NotCollapsible, condition


def n_groups(data: dict) -> int:
    """J, the number of groups of one data set."""
    for key in ("se", "trials", "n"):
        if key in data:
            return data[key].shape[-1]
    raise ValueError(f"data with keys {sorted(data)}: expected se, trials or n among them")


def information(data: dict) -> jnp.ndarray:
    """(J,) how much each group's data say about its theta_j: the Fisher information of the
    group's likelihood at an estimate from the data alone. Binomial: n_j p_j (1 - p_j) at
    p_j = (successes_j + 1/2) / (trials_j + 1) (the half-count keeps a 0-of-n group finite);
    known se: 1 / se_j^2; unknown sigma: n_j / s^2 with s^2 the pooled within-group variance
    sum_j ss_j / sum_j (n_j - 1). Where the data are not given (prior predictive draws) or say
    nothing of the variance (no group of two, or every ss_j 0), p_j = 1/2 and s^2 = 1."""
    real = jnp.result_type(float)  # float32, or float64 where x64 is on
    if "trials" in data:
        n = jnp.asarray(data["trials"], real)
        successes = data.get("successes")
        p = (jnp.full_like(n, 0.5) if successes is None
             else (jnp.asarray(successes, real) + 0.5) / (n + 1.0))
        return n * p * (1.0 - p)
    if "se" in data:
        return 1.0 / jnp.asarray(data["se"], real) ** 2
    n = jnp.asarray(data["n"], real)
    if data.get("ss") is None:
        return n
    dof = jnp.sum(jnp.maximum(n - 1.0, 0.0))
    ss = jnp.sum(jnp.where(n > 1, jnp.asarray(data["ss"], real), 0.0))
    return n / jnp.where((dof > 0) & (ss > 0), ss / jnp.maximum(dof, 1.0), 1.0)


def observe(theta, data: dict, sigma_scale: float) -> None:
    """Add the likelihood of ``data`` given ``theta``; call it outside the ``groups`` plate.

    ``theta`` may be a ``models.collapse.Collapsed`` (the model runs under ``collapse``): then
    the factor added is the likelihood with theta integrated out, and theta's exact conditional
    is recorded (``models.collapse``).
    """
    if isinstance(theta, Collapsed):
        _observe_collapsed(theta, data, sigma_scale)
        return
    if "se" in data:
        with numpyro.plate("groups", n_groups(data)):
            numpyro.sample("y", dist.Normal(theta, data["se"]), obs=data.get("y"))
        return
    if "trials" in data:
        with numpyro.plate("groups", n_groups(data)):
            numpyro.deterministic("p", jax.nn.sigmoid(theta))
            numpyro.sample(
                "successes",
                dist.Binomial(total_count=data["trials"], logits=theta),
                obs=data.get("successes"),
            )
        return
    sigma = numpyro.sample("sigma", dist.HalfNormal(sigma_scale))
    n = data["n"]
    informative = n > 1
    if data.get("ybar") is not None and data.get("ss") is not None:
        # a group of n_j >= 1 adds one degree of freedom for its ybar_j; a group without data
        # (n_j = 0: ``models.padding``) adds none, and n_j (ybar_j - theta_j)^2 = 0
        df = jnp.sum(n > 0) + jnp.sum(jnp.where(informative, n - 1, 0))
        squares = jnp.sum(n * (data["ybar"] - theta) ** 2) + jnp.sum(
            jnp.where(informative, data["ss"], 0.0)
        )
        numpyro.factor("ybar_ss", -df * jnp.log(sigma) - squares / (2.0 * sigma**2))
        return
    shape = jnp.where(informative, (n - 1) / 2.0, 1.0)
    with numpyro.plate("groups", n_groups(data)):
        numpyro.sample("ybar", dist.Normal(theta, sigma / jnp.sqrt(n)), obs=data.get("ybar"))
        ss = data.get("ss")
        numpyro.sample(
            "ss",
            dist.Gamma(shape, 0.5 / sigma**2).mask(informative),
            obs=None if ss is None else jnp.where(informative, ss, 1.0),
        )


def _observe_collapsed(theta: Collapsed, data: dict, sigma_scale: float) -> None:
    """The Gaussian likelihood with theta integrated out (``models.collapse``): known standard
    errors, or the sufficient statistics with sigma ~ half-normal(0, sigma_scale), whose ``ss``
    keeps the sigma-only factor -(sum_j (n_j - 1)) log sigma - sum_j ss_j / (2 sigma^2)."""
    if "se" in data and data.get("y") is not None:
        numpyro.factor("y", condition(theta, data["y"], data["se"] ** 2))
        return
    if "n" not in data or data.get("ybar") is None or data.get("ss") is None:
        raise NotCollapsible(
            f"data with keys {sorted(k for k, v in data.items() if v is not None)}: theta can be "
            "integrated out of observed Gaussian data only (ybar, n, ss or y, se)"
        )
    sigma = numpyro.sample("sigma", dist.HalfNormal(sigma_scale))
    n = data["n"]
    informative = n > 1
    # sigma^2 / n_j, infinite for a group without data (n_j = 0: see ``models.collapse``),
    # written so that its gradient is 0 there rather than 0 / 0
    observed = n > 0
    noise_var = jnp.where(observed, sigma**2 / jnp.where(observed, n, 1), jnp.inf)
    log_marginal = condition(theta, data["ybar"], noise_var)
    within_df = jnp.sum(jnp.where(informative, n - 1, 0))
    within_ss = jnp.sum(jnp.where(informative, data["ss"], 0.0))
    numpyro.factor(
        "ybar_ss", log_marginal - within_df * jnp.log(sigma) - within_ss / (2.0 * sigma**2)
    )
