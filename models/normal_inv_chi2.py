"""Partial pooling under the conjugate Normal–Inverse-chi^2 prior.

    tau^2   ~ Scaled-Inv-chi^2(tau_df, tau_scale^2)   (= inverse-gamma(tau_df/2, tau_df tau_scale^2/2))
    mu      | tau ~ N(mu_loc, tau^2 / kappa0)
    theta_j | mu, tau ~ N(mu, tau^2),                 j = 1..J
    sigma   ~ half-normal(0, sigma_scale)             (unknown-sigma data only)

The prior on (mu, tau^2) is the conjugate one for normal draws theta_j (BDA3 §3.3), so the
marginal prior of each theta_j is a Student-t with tau_df degrees of freedom, location mu_loc and
scale tau_scale sqrt(1 + 1/kappa0): a heavy-tailed prior like ``student_t``, but one that learns
its location and scale from all groups. The site ``tau`` is the square root of tau^2.

Scales: ``mu_loc``, ``tau_scale`` and ``sigma_scale`` are absolute, in the units of the outcome;
``kappa0`` (prior sample size of mu) and ``tau_df`` (prior degrees of freedom) are unitless.
References: Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., §3.3 (eqs. 3.6-3.7), §5.4.
"""

import numpyro
import numpyro.distributions as dist
from numpyro.distributions import transforms

from models.likelihood import n_groups, observe

SPEC = True  # a prior spec (models.available), not machinery

POSITIVE = ("kappa0",)  # hyperparameters that must be > 0 besides *scale and *df


def model(data, *, mu_loc, kappa0, tau_df, tau_scale, sigma_scale):
    variance = dist.InverseGamma(tau_df / 2, tau_df * tau_scale**2 / 2)
    tau = numpyro.sample(
        "tau", dist.TransformedDistribution(variance, transforms.PowerTransform(0.5))
    )
    mu = numpyro.sample("mu", dist.Normal(mu_loc, tau / kappa0**0.5))
    with numpyro.plate("groups", n_groups(data)):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
    observe(theta, data, sigma_scale)
