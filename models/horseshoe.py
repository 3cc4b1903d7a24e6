"""The horseshoe: pooling for sparse effects, most groups near mu and a few far away.

    mu       ~ N(mu_loc, mu_scale^2)
    tau      ~ half-Cauchy(0, tau_scale)              (global scale)
    lambda_j ~ half-Cauchy(0, 1),          j = 1..J   (local scales)
    theta_j  ~ N(mu, lambda_j^2 tau^2)
    sigma    ~ half-normal(0, sigma_scale)            (unknown-sigma data only)

The half-Cauchy local scales have a pole at zero and Cauchy tails: small effects are shrunk hard
to mu and large ones hardly at all, where the normal population shrinks every group by the same
factor. Non-centering (``LocScaleReparam`` on ``theta``) writes theta_j = mu + lambda_j tau eta_j.

Scales: ``mu_loc``, ``mu_scale``, ``tau_scale`` and ``sigma_scale`` are absolute, in the units of
the outcome; the local scales are unitless.
References: Carvalho, Polson & Scott (2010), The horseshoe estimator for sparse signals,
Biometrika 97(2); Piironen & Vehtari (2017), Sparsity information and regularization in the
horseshoe and other shrinkage priors, EJS 11(2).
"""

import numpyro
import numpyro.distributions as dist

from models.likelihood import n_groups, observe

SPEC = True  # a prior spec (models.available), not machinery

# tau here is the global scale, not the sd of theta that a scenario's tau is: no truth for it
NOT_SCENARIO_ESTIMANDS = ("tau",)


def model(data, *, mu_loc, mu_scale, tau_scale, sigma_scale):
    mu = numpyro.sample("mu", dist.Normal(mu_loc, mu_scale))
    tau = numpyro.sample("tau", dist.HalfCauchy(tau_scale))
    with numpyro.plate("groups", n_groups(data)):
        lam = numpyro.sample("lambda", dist.HalfCauchy(1.0))
        theta = numpyro.sample("theta", dist.Normal(mu, lam * tau))
    observe(theta, data, sigma_scale)
