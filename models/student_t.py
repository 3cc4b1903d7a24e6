"""No pooling under a fixed heavy-tailed prior on each group effect.

    theta_j ~ t_df(loc, scale),           j = 1..J     (independent; df, loc, scale fixed)
    sigma   ~ half-normal(0, sigma_scale)              (unknown-sigma data only)

The answer to "why not just a fat-tailed prior?": like ``normal`` it shrinks each group toward a
fixed ``loc`` with no information shared between groups, but far-out effects escape the
shrinkage. Compare with ``normal_inv_chi2``, whose marginal prior on each theta_j is also a t.

Scales: ``loc``, ``scale`` and ``sigma_scale`` are absolute, in the units of the outcome.
References: Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., §17.2 (the t model);
Fúquene, Cook & Pericchi (2009), A case for robust Bayesian priors, Bayesian Analysis 4(4).
"""

import numpyro
import numpyro.distributions as dist

from models.likelihood import n_groups, observe

SPEC = True  # a prior spec (models.available), not machinery

THETA_SHAPE_PARAMS = ("df",)  # non-centering keeps the t's degrees of freedom


def model(data, *, df, loc, scale, sigma_scale):
    with numpyro.plate("groups", n_groups(data)):
        theta = numpyro.sample("theta", dist.StudentT(df, loc, scale))
    observe(theta, data, sigma_scale)
