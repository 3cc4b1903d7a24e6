"""Robust partial pooling: heavy-tailed group effects with the tail weight learned from data.

    mu      ~ N(mu_loc, mu_scale^2)
    tau     ~ tau_family(tau_scale)                   (as in ``hierarchical``; models.priors)
    nu      ~ Gamma(nu_shape, rate = nu_rate)         (degrees of freedom; Juárez & Steel 2010)
    theta_j ~ t_nu(mu, tau),              j = 1..J
    sigma   ~ half-normal(0, sigma_scale)             (unknown-sigma data only)

With normal effects the posterior of nu drifts to large values and this is ``hierarchical``; an
outlying group is shrunk less than under a normal population, without dragging the others.
Non-centering (``LocScaleReparam`` on ``theta``) writes theta_j = mu + tau * eta_j, eta_j ~ t_nu.

Scales: ``mu_loc``, ``mu_scale``, ``tau_scale`` and ``sigma_scale`` are absolute, in the units of
the outcome; ``nu_shape`` and ``nu_rate`` are unitless (Gamma(2, 0.1): prior mean 20).
References: Juárez & Steel (2010), Model-based clustering of non-Gaussian panel data based on
skew-t distributions, JBES 28(1); Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., §17.4.
"""

import numpyro
import numpyro.distributions as dist

from models.likelihood import n_groups, observe
from models.priors import TAU_FAMILIES, sample_tau

SPEC = True  # a prior spec (models.available), not machinery

THETA_SHAPE_PARAMS = ("df",)  # non-centering keeps the t's degrees of freedom
CHOICES = {"tau_family": TAU_FAMILIES}
# tau here is the scale of a t, whose sd is tau sqrt(nu / (nu - 2)): not a scenario's tau
NOT_SCENARIO_ESTIMANDS = ("tau",)
POSITIVE = ("nu_shape", "nu_rate")


def model(data, *, mu_loc, mu_scale, tau_family, tau_scale, tau_df, nu_shape, nu_rate,
          sigma_scale):
    mu = numpyro.sample("mu", dist.Normal(mu_loc, mu_scale))
    tau = sample_tau(tau_family, tau_scale, tau_df)
    nu = numpyro.sample("nu", dist.Gamma(nu_shape, nu_rate))
    with numpyro.plate("groups", n_groups(data)):
        theta = numpyro.sample("theta", dist.StudentT(nu, mu, tau))
    observe(theta, data, sigma_scale)
