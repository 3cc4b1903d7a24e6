"""No pooling under an improper flat prior on each group effect.

    p(theta_j) ∝ 1,           j = 1..J
    sigma ~ half-normal(0, sigma_scale)       (unknown-sigma data only)

With known sigma_j the posterior is theta_j | y ~ N(y_j, se_j^2): the no-pooling estimate with its
sampling standard error, which is why a flat prior is the natural "let the data speak" baseline.
With binomial data (theta_j the log-odds) the posterior of p_j is Beta(s_j, n_j - s_j), proper
only when 0 < s_j < n_j: a data set with a group of no or all successes is not fitted (skipped,
with that reason in its rows), because NUTS would drift off toward infinity on it.

Scales: ``sigma_scale`` is absolute, in the units of the outcome.
References: Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., §2.8 and §5.5 (no pooling).
"""

import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from models.likelihood import n_groups, observe

SPEC = True  # a prior spec (models.available), not machinery

# A flat prior has no location and scale to non-center on; with Gaussian data theta is
# integrated out (models.collapse: theta_j | sigma, y ~ N(ybar_j, sigma^2 / n_j)).
PARAMETERIZATIONS = ("centered", "collapsed", "auto")


def model(data, *, sigma_scale):
    with numpyro.plate("groups", n_groups(data)):
        theta = numpyro.sample("theta", dist.ImproperUniform(constraints.real, (), ()))
    observe(theta, data, sigma_scale)


def unsupported(data):
    """Why the flat prior has no proper posterior on this data set, or None."""
    if "successes" not in data:
        return None
    s, n = np.asarray(data["successes"]), np.asarray(data["trials"])
    extreme = np.flatnonzero((s == 0) | (s == n))
    if len(extreme) == 0:
        return None
    return (
        f"improper posterior: a flat prior on the log-odds needs 0 < successes < trials, and "
        f"{len(extreme)} group(s) have none or all (first: the group at index {extreme[0]}, "
        f"{s[extreme[0]]} of {n[extreme[0]]})"
    )
