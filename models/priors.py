"""Prior building blocks that several specs share: the scale of the group effects, tau.

``tau_prior(tau_family, tau_scale, tau_df)`` is the distribution of tau for each choice that
Gelman (2006) compares; ``tau_scale`` is read by each family as stated:

    half_normal   tau ~ half-normal(0, tau_scale)
    half_cauchy   tau ~ half-Cauchy(0, tau_scale)
    half_t        tau ~ half-t_{tau_df}(0, tau_scale)
    uniform       tau ~ uniform(0, tau_scale)                 (tau_scale is the upper bound A)
    inv_gamma     tau^2 ~ inverse-gamma(tau_scale, tau_scale) (tau_scale is epsilon)
    fixed         tau = tau_scale                             (known tau: the oracle that shows
                                                               what learning tau costs)

``tau_df`` is read by ``half_t`` only. ``sample_tau`` adds the site ``tau`` to a model (a
deterministic site for ``fixed``). The site is always ``tau`` itself (for ``inv_gamma``, the
inverse-gamma on tau^2 pushed through the square root, Jacobian included), so every family
reports the same estimand.

Reference: Gelman (2006), Prior distributions for variance parameters in hierarchical models,
Bayesian Analysis 1(3), 515-534.
"""

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import transforms

TAU_FAMILIES = ("half_normal", "half_cauchy", "half_t", "uniform", "inv_gamma", "fixed")


def sample_tau(tau_family: str, tau_scale, tau_df):
    """The site ``tau`` drawn from its prior (or fixed at ``tau_scale``)."""
    if tau_family == "fixed":
        return numpyro.deterministic("tau", jnp.asarray(tau_scale, jnp.result_type(float)))
    return numpyro.sample("tau", tau_prior(tau_family, tau_scale, tau_df))


def tau_prior(tau_family: str, tau_scale, tau_df):
    if tau_family == "half_normal":
        return dist.HalfNormal(tau_scale)
    if tau_family == "half_cauchy":
        return dist.HalfCauchy(tau_scale)
    if tau_family == "half_t":
        return dist.FoldedDistribution(dist.StudentT(tau_df, 0.0, tau_scale))
    if tau_family == "uniform":
        return dist.Uniform(0.0, tau_scale)
    if tau_family == "inv_gamma":
        variance = dist.InverseGamma(tau_scale, tau_scale)
        return dist.TransformedDistribution(variance, transforms.PowerTransform(0.5))
    raise ValueError(f"tau_family={tau_family!r}; allowed: {', '.join(TAU_FAMILIES)}")
