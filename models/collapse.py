"""Gaussian group effects integrated out of a model exactly, applied from outside the spec.

For Gaussian data, every spec whose theta_j is Gaussian given the other latents,

    theta_j | mu, s_j ~ N(mu, s_j^2),

with s_j = tau (``hierarchical``, ``normal_inv_chi2``), tau lambda_j (``horseshoe``), a fixed
scale (``normal``), tau sqrt(w_j) for a Student-t written as a scale mixture (``hierarchical_t``,
``student_t``: w_j ~ inverse-gamma(nu / 2, nu / 2), sampled as the site ``theta_mix``), or
s_j = inf (``flat``), has theta integrated out in closed form. With e_j = sigma^2 / n_j (unknown
sigma) or se_j^2 (known standard errors) the data's Gaussian factor becomes

    ybar_j | mu, s_j, sigma ~ N(mu, s_j^2 + e_j)          (a factor of 1 when s_j = inf),

``ss_j`` keeps its sigma-only factor, and theta given everything else is Gaussian:

    theta_j | rest, y ~ N(m_j, v_j),   v_j = (1 / s_j^2 + 1 / e_j)^-1,
                                       m_j = v_j (mu / s_j^2 + ybar_j / e_j).

The sampler sees only the low-dimensional rest (mu, tau, sigma, local scales), so the funnel
between theta and its scale is gone; for each kept draw the engine draws theta exactly from
N(m_j, v_j) and reports the Rao–Blackwell estimates E[theta_j | y] ≈ mean of m_j and
Var[theta_j | y] ≈ mean of v_j + variance of m_j (``models.engine``).

How: ``collapse(model)`` intercepts the sample site ``theta``. In its place the model carries a
``Collapsed(loc, var)`` (the prior mean and variance of theta given the other latents), which
``models.likelihood.observe`` recognizes: it adds the marginal factor above and records m_j and
v_j as the deterministic sites ``theta_cond_mean`` and ``theta_cond_var``. A spec written
centered, that hands its ``theta`` to ``observe``, gets this with nothing written for it.

References: Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., §5.4 (eqs. 5.17, 5.20–5.21);
Andrews & Mallows (1974), Scale mixtures of normal distributions, JRSS B 36(1); Casella & Robert
(1996), Rao–Blackwellisation of sampling schemes, Biometrika 83(1).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.primitives import Messenger

SITE, MU_SITE = "theta", "mu"
MIX_SITE = "theta_mix"
COND_MEAN, COND_VAR, SHRINK = "theta_cond_mean", "theta_cond_var", "theta_shrink"
MU_MEAN, MU_VAR = "mu_cond_mean", "mu_cond_var"
PROBE = 1.2345
"""The value mu takes in a model where it is integrated out: theta's location must come out as
exactly this (mu enters the model as theta's location and nowhere else), which is checked."""
GAUSSIAN_KEYS = (("ybar", "n", "ss"), ("y", "se"))
"""The data forms with a Gaussian likelihood for theta: either set of keys, all present."""


class Collapsed(NamedTuple):
    """What stands in for theta in a collapsed model: theta_j | rest ~ N(loc_j, var_j), and,
    where mu is integrated out too, loc_j = mu with mu ~ N(mu_loc, mu_var)."""

    loc: jnp.ndarray  # (J,) prior mean of theta given the other latents (mu's, if it is integrated)
    var: jnp.ndarray  # (J,) prior variance given the other latents (inf: a flat prior)
    mu_loc: jnp.ndarray | None = None  # prior mean of mu, where mu is integrated out
    mu_var: jnp.ndarray | None = None  # prior variance of mu (inf: a flat prior)


class NotCollapsible(ValueError):
    """theta's prior is not Gaussian given the other latents, nor a scale mixture of them."""


def gaussian_data(data: dict) -> bool:
    """Whether ``data`` (one data set or a batch) has a Gaussian likelihood for theta."""
    return any(all(k in data for k in keys) for keys in GAUSSIAN_KEYS)


class collapse(Messenger):
    """Replace the sample site ``theta`` of a model by ``Collapsed(loc, var)`` (see the module);
    with ``integrate_mu``, a scalar site ``mu`` with a Normal or flat prior, sampled before
    theta, is integrated out too."""

    def __init__(self, fn=None, integrate_mu: bool = False):
        self.integrate_mu = integrate_mu
        self.mu_prior = None
        super().__init__(fn)

    def __enter__(self):
        self.mu_prior = None
        return super().__enter__()

    def process_message(self, msg):
        if msg["type"] != "sample" or msg.get("is_observed"):
            return
        if msg["name"] == MU_SITE and self.integrate_mu:
            self._integrate_mu(msg)
        if msg["name"] != SITE:
            return
        fn = msg["fn"]
        shape = fn.batch_shape
        while isinstance(fn, (dist.ExpandedDistribution, dist.Independent)):
            fn = fn.base_dist
        if isinstance(fn, dist.Normal):
            loc, var = fn.loc, fn.scale**2
        elif isinstance(fn, dist.StudentT):
            # t_nu(loc, scale) = N(loc, scale^2 w), w ~ inverse-gamma(nu / 2, nu / 2)
            half = jnp.broadcast_to(fn.df / 2.0, shape)
            mix = numpyro.sample(MIX_SITE, dist.InverseGamma(half, half))
            loc, var = fn.loc, fn.scale**2 * mix
        elif isinstance(fn, dist.ImproperUniform):
            loc, var = jnp.zeros(shape), jnp.full(shape, jnp.inf)
        else:
            raise NotCollapsible(
                f"theta ~ {type(fn).__name__}: only a Normal, a Student-t or a flat prior on "
                "theta can be integrated out"
            )
        mu_loc = mu_var = None
        if self.mu_prior is not None:
            # where the model runs on concrete values; ``engine.collapse_blocker`` checks the
            # location its probe program returns
            if not isinstance(loc, jax.core.Tracer) and not np.all(np.asarray(loc) == PROBE):
                raise NotCollapsible("theta's location is not mu itself")
            mu_loc, mu_var = self.mu_prior
        value = Collapsed(jnp.broadcast_to(loc, shape), jnp.broadcast_to(var, shape), mu_loc, mu_var)
        _make_deterministic(msg, value)

    def _integrate_mu(self, msg):
        fn = msg["fn"]
        if fn.batch_shape != () or fn.event_shape != ():
            raise NotCollapsible("mu is not a scalar")
        if isinstance(fn, dist.Normal):
            self.mu_prior = (fn.loc, fn.scale**2)
        elif isinstance(fn, dist.ImproperUniform):
            self.mu_prior = (jnp.zeros(()), jnp.full((), jnp.inf))
        else:
            raise NotCollapsible(f"mu ~ {type(fn).__name__}: only a Normal or flat mu is integrated")
        _make_deterministic(msg, jnp.asarray(PROBE, jnp.result_type(float)))


def _make_deterministic(msg, value):
    """Turn a sample site into a deterministic one holding ``value`` (as numpyro's reparam)."""
    msg["type"] = "deterministic"
    msg["value"] = value
    for key in list(msg):
        if key not in ("type", "name", "value", "cond_indep_stack"):
            del msg[key]


def marginal_and_conditional(theta: Collapsed, estimate, noise_var):
    """(log marginal density of ``estimate`` up to a constant, conditional mean m, variance v).

    ``estimate`` (J,) is ybar_j or y_j, ``noise_var`` (J,) its variance given theta_j (e_j). A
    group with an infinite prior variance adds nothing to the marginal (the integral of its
    likelihood over theta_j is 1) and has m_j = estimate_j, v_j = e_j. A group without data
    (e_j = inf: n_j = 0, or an infinite standard error; ``models.padding``) adds nothing either,
    and keeps its prior: m_j = loc_j, v_j = s_j^2. Written with the shrinkage weight
    B_j = e_j / (s_j^2 + e_j), so that s_j -> 0 (theta_j = loc_j) is exact too.
    """
    flat = jnp.isinf(theta.var)
    empty = jnp.isinf(noise_var)
    prior_var = jnp.where(flat, 1.0, theta.var)  # a finite stand-in; the flat case is masked
    noise = jnp.where(empty, 1.0, noise_var)  # likewise for a group without data
    total = prior_var + noise
    log_marginal = jnp.where(
        flat | empty, 0.0, -0.5 * jnp.log(total) - 0.5 * (estimate - theta.loc) ** 2 / total
    )
    # B_j, the weight of the prior mean
    weight = jnp.where(flat, 0.0, jnp.where(empty, 1.0, noise / total))
    mean = estimate - weight * (estimate - theta.loc)
    var = jnp.where(flat, noise_var, prior_var * weight)
    return log_marginal.sum(), mean, var


def integrate_mu(theta: Collapsed, estimate, noise_var):
    """(log marginal density of ``estimate`` with theta and mu integrated out, up to a constant;
    the conditionals of mu and theta), for ``theta.mu_loc`` set.

    With t_j = s_j^2 + e_j and mu ~ N(a, A): the precision of mu given the rest is
    P = 1 / A + sum_j 1 / t_j, its mean mu_hat = (a / A + sum_j estimate_j / t_j) / P, and

        log p(estimate | rest) = -1/2 sum_j log t_j - 1/2 log A - 1/2 log P
                                 - 1/2 (sum_j (estimate_j - mu_hat)^2 / t_j + (a - mu_hat)^2 / A)

    (A = inf: a flat mu, whose terms in A drop out; e_j = inf: a group without data, whose
    terms drop out, with B_j = 1). Given mu, theta_j ~ N(m_j(mu), v_j) with
    m_j(mu) = estimate_j - B_j (estimate_j - mu), B_j = e_j / t_j (``marginal_and_conditional``).
    """
    empty = jnp.isinf(noise_var)  # a group without data: its terms drop out, and B_j = 1
    noise = jnp.where(empty, 1.0, noise_var)  # a finite stand-in where empty
    total = theta.var + noise
    flat_mu = jnp.isinf(theta.mu_var)
    prior_precision = jnp.where(flat_mu, 0.0, 1.0 / jnp.where(flat_mu, 1.0, theta.mu_var))
    precision = prior_precision + jnp.sum(jnp.where(empty, 0.0, 1.0 / total))
    mu_hat = (prior_precision * theta.mu_loc
              + jnp.sum(jnp.where(empty, 0.0, estimate / total))) / precision
    quadratic = jnp.sum(jnp.where(empty, 0.0, (estimate - mu_hat) ** 2 / total)) + (
        prior_precision * (theta.mu_loc - mu_hat) ** 2
    )
    log_prior_var = jnp.where(flat_mu, 0.0, jnp.log(jnp.where(flat_mu, 1.0, theta.mu_var)))
    log_marginal = -0.5 * (
        jnp.sum(jnp.where(empty, 0.0, jnp.log(total))) + log_prior_var + jnp.log(precision)
        + quadratic
    )
    shrink = jnp.where(empty, 1.0, noise / total)  # B_j
    theta_at_mu = theta._replace(loc=jnp.broadcast_to(mu_hat, estimate.shape))
    _, mean, var = marginal_and_conditional(theta_at_mu, estimate, noise_var)
    return log_marginal, mean, var, shrink, mu_hat, 1.0 / precision


def condition(theta: Collapsed, estimate, noise_var):
    """The log marginal factor of ``estimate``; records what the engine draws theta (and mu)
    from: m_j and v_j, and where mu is integrated, mu_hat, its variance and B_j, so that a draw
    is mu = mu_hat + sqrt(V) z_0, theta_j = m_j + B_j (mu - mu_hat) + sqrt(v_j) z_j."""
    if theta.mu_loc is None:
        log_marginal, mean, var = marginal_and_conditional(theta, estimate, noise_var)
    else:
        log_marginal, mean, var, shrink, mu_hat, mu_var = integrate_mu(theta, estimate, noise_var)
        numpyro.deterministic(SHRINK, shrink)
        numpyro.deterministic(MU_MEAN, mu_hat)
        numpyro.deterministic(MU_VAR, mu_var)
    numpyro.deterministic(COND_MEAN, mean)
    numpyro.deterministic(COND_VAR, var)
    return log_marginal
