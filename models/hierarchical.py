"""The normal hierarchical model: partial pooling with the between-group scale learned from data.

    mu      ~ N(mu_loc, mu_scale^2)   or   p(mu) ∝ 1                  (``mu_family``)
    tau     ~ one of half-normal, half-Cauchy, half-t, uniform(0, A),
              inverse-gamma(eps, eps) on tau^2, or fixed              (``tau_family``, models.priors)
    theta_j ~ N(mu, tau^2),               j = 1..J
    sigma   ~ half-normal(0, sigma_scale)                             (unknown-sigma data only)

Written centered. The non-centered form theta_j = mu + tau * eta_j, eta_j ~ N(0, 1), which avoids
the funnel when the data say little about each theta_j, is applied from outside by the engine
(``LocScaleReparam(0)`` on ``theta``) when the prior's ``parameterization`` is ``noncentered``.

Scales: all absolute, in the units of the outcome.
References: Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., §5.4–5.5;
Gelman (2006), Prior distributions for variance parameters in hierarchical models, Bayesian
Analysis 1(3); Betancourt & Girolami (2015), Hamiltonian Monte Carlo for hierarchical models.
"""

import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from models.likelihood import n_groups, observe
from models.priors import TAU_FAMILIES, sample_tau

SPEC = True  # a prior spec (models.available), not machinery

MU_FAMILIES = ("normal", "flat")
CHOICES = {"tau_family": TAU_FAMILIES, "mu_family": MU_FAMILIES}  # allowed string values


def model(data, *, mu_family, mu_loc, mu_scale, tau_family, tau_scale, tau_df, sigma_scale):
    if mu_family == "flat":
        mu = numpyro.sample("mu", dist.ImproperUniform(constraints.real, (), ()))
    else:
        mu = numpyro.sample("mu", dist.Normal(mu_loc, mu_scale))
    tau = sample_tau(tau_family, tau_scale, tau_df)
    with numpyro.plate("groups", n_groups(data)):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
    observe(theta, data, sigma_scale)
