"""No pooling under a fixed normal prior on each group effect.

    theta_j ~ N(loc, scale^2),   j = 1..J     (independent; loc and scale fixed in config)
    sigma ~ half-normal(0, sigma_scale)       (unknown-sigma data only)

With known sigma_j the posterior is conjugate: precision 1/scale^2 + 1/se_j^2, mean the
precision-weighted average of loc and y_j. A wide ``scale`` approaches ``flat``; a narrow one
shrinks every group toward ``loc`` by a fixed amount, whatever the data say about the spread.

Scales: ``loc``, ``scale`` and ``sigma_scale`` are absolute, in the units of the outcome.
References: Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., §2.5.
"""

import numpyro
import numpyro.distributions as dist

from models.likelihood import n_groups, observe

SPEC = True  # a prior spec (models.available), not machinery


def model(data, *, loc, scale, sigma_scale):
    with numpyro.plate("groups", n_groups(data)):
        theta = numpyro.sample("theta", dist.Normal(loc, scale))
    observe(theta, data, sigma_scale)
