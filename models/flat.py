"""No pooling under an improper flat prior on each group effect.

    p(theta_j) ∝ 1,           j = 1..J
    sigma ~ half-normal(0, sigma_scale)       (unknown-sigma data only)

With known sigma_j the posterior is theta_j | y ~ N(y_j, se_j^2): the no-pooling estimate with its
sampling standard error, which is why a flat prior is the natural "let the data speak" baseline.

Scales: ``sigma_scale`` is absolute, in the units of the outcome.
References: Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., §2.8 and §5.5 (no pooling).
"""

import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from models.likelihood import n_groups, observe

# A flat prior has no location and scale to non-center on.
PARAMETERIZATIONS = ("centered",)


def model(data, *, sigma_scale):
    with numpyro.plate("groups", n_groups(data)):
        theta = numpyro.sample("theta", dist.ImproperUniform(constraints.real, (), ()))
    observe(theta, data, sigma_scale)
