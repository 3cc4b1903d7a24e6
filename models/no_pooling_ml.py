"""Baseline, no draws: no-pooling maximum likelihood with Wald intervals.

    theta_j-hat = y_j (or ybar_j),   interval theta_j-hat ± z_q se_j   (t_{N-J} quantiles and
                                     se_j = s / sqrt(n_j) when sigma is estimated)

The frequentist twin of ``flat``: with known sigma_j its intervals are exact confidence intervals
and coincide with the flat prior's posterior intervals. With sufficient statistics it also
reports sigma-hat = s with its exact chi-square interval (models.closed_form).

Scales: none (no hyperparameters). Reference: Efron & Morris (1975), Data analysis using Stein's
estimator and its generalizations, JASA 70(350) (the "maximum likelihood" column).
"""

import numpy as np

from models.closed_form import group_estimates, interval_site, sigma_site

SPEC = True  # a prior spec (models.available), not machinery

PARAMETERIZATIONS = ("none",)  # no draws, nothing to parameterize


def estimate(data):
    est, var, df = group_estimates(data)
    return {"theta": interval_site(est, np.sqrt(var), df), **sigma_site(data)}
