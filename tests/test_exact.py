"""The exact posterior beside every fit (``models.exact``) against independent truths.

Known standard errors: the reference quadrature of ``tests/quadrature.py`` (numpy and scipy
only, integrated on its own grid in log tau). Unknown sigma: scipy's adaptive quadrature of the
integrated likelihood written with numpy and scipy (the multivariate normal of the group means
with theta and mu integrated out, and sigma^2 chi^2 for the within-group sums of squares). Both
are deterministic, so the tolerances are those of the quadratures, not Monte Carlo ones.
"""

import numpy as np
import pytest
from scipy import integrate, stats

import tests.quadrature as quad
from models import exact
# the cases of the NUTS-against-quadrature tests: every tau family, flat mu, normal_inv_chi2
from tests.test_posterior_quadrature import CASES, SE8, Y8


@pytest.mark.parametrize("case", list(CASES))
def test_known_sigma_matches_the_reference_quadrature(case):
    """Means and sds of theta, mu and tau to 1e-6 of the posterior sd (the reference's own
    trapezoid error on its 20,000-point grid is far below that), and P(theta_j <= 0 | y)."""
    spec, hyper, (family, params), mu_prior = CASES[case]
    data = {"y": Y8[None], "se": SE8[None]}
    truth = {"theta": np.zeros((1, 8)), "mu": np.zeros((1, 1))}
    got = exact.moments(spec, hyper, data, truth)
    ref = quad.posterior(Y8, SE8, tau_log_prior=quad.tau_log_prior(family, **params),
                         mu_prior=mu_prior)
    for site, mean, sd in (("theta", ref.theta_mean, ref.theta_sd),
                           ("mu", ref.mu_mean, ref.mu_sd), ("tau", ref.tau_mean, ref.tau_sd)):
        np.testing.assert_allclose(got[site][0][0], np.atleast_1d(mean), atol=1e-6 * np.max(sd))
        np.testing.assert_allclose(got[site][1][0], np.atleast_1d(sd), rtol=1e-6)
    below = (ref.weights[:, None] * stats.norm.cdf(0.0, ref.theta_m, ref.theta_s)).sum(0)
    np.testing.assert_allclose(got["theta"][2][0], below, atol=1e-6)


def _sufficient():
    n = np.array([2, 4, 6, 9, 12])
    ybar = np.array([-1.2, 0.3, 0.8, 2.1, -0.4])
    ss = np.array([0.7, 3.1, 4.0, 9.5, 12.2])
    return n, ybar, ss


def _log_likelihood(tau, sigma, mu_loc, mu_scale):
    """log p(ybar, ss | tau, sigma), theta and mu integrated out: the multivariate normal of the
    group means (numpy's determinant and solve) and scipy's gamma density of the sums of
    squares (sigma^2 chi^2_{n_j - 1}), up to a constant."""
    n, ybar, ss = _sufficient()
    cov = np.diag(tau**2 + sigma**2 / n) + mu_scale**2
    dev = ybar - mu_loc
    _, logdet = np.linalg.slogdet(cov)
    return (-0.5 * (logdet + dev @ np.linalg.solve(cov, dev))
            + stats.gamma.logpdf(ss, (n - 1) / 2, scale=2 * sigma**2).sum())


def test_unknown_sigma_matches_adaptive_quadrature():
    """hierarchical, half-normal tau, unknown sigma: E and sd of tau and sigma, and E[mu], by
    scipy's nested adaptive quadrature (``quad_vec``, epsrel 1e-8) over (tau, sigma) of prior x
    integrated likelihood; E[mu | y] is the average of mu_hat(tau, sigma). Tolerance 1e-5
    relative for means, 1e-4 for sds: far above both quadratures' errors (the grid's is 1e-8
    and better on the known-sigma cases)."""
    hyper = dict(mu_family="normal", mu_loc=0.5, mu_scale=3.0, tau_family="half_normal",
                 tau_scale=2.0, tau_df=3.0, sigma_scale=3.0)
    n, ybar, ss = _sufficient()
    got = exact.moments("hierarchical", hyper, {"ybar": ybar[None], "n": n[None], "ss": ss[None]})
    peak = _log_likelihood(1.0, 1.2, 0.5, 3.0)

    def integrand(tau, sigma):
        """(1, tau, sigma, mu_hat, tau^2, sigma^2) x the unnormalized posterior density."""
        prior = stats.halfnorm.logpdf(tau, scale=2.0) + stats.halfnorm.logpdf(sigma, scale=3.0)
        density = np.exp(prior + _log_likelihood(tau, sigma, 0.5, 3.0) - peak)
        w = 1 / (tau**2 + sigma**2 / n)
        mu_hat = (0.5 / 9.0 + (w * ybar).sum()) / (1 / 9.0 + w.sum())
        return density * np.array([1.0, tau, sigma, mu_hat, tau**2, sigma**2])

    def inner(sigma):
        return integrate.quad_vec(lambda t: integrand(t, sigma), 0, 15, epsrel=1e-8)[0]

    total, tau, sigma, mu, tau2, sigma2 = integrate.quad_vec(inner, 0.05, 15, epsrel=1e-8)[0]
    for site, mean, second in (("tau", tau, tau2), ("sigma", sigma, sigma2), ("mu", mu, None)):
        np.testing.assert_allclose(got[site][0][0, 0], mean / total, rtol=1e-5, err_msg=site)
        if second is not None:
            sd = np.sqrt(second / total - (mean / total) ** 2)
            np.testing.assert_allclose(got[site][1][0, 0], sd, rtol=1e-4, err_msg=site)


def test_flat_prior_unknown_sigma_is_a_scale_mixture():
    """flat theta, unknown sigma: theta_j | sigma, y ~ N(ybar_j, sigma^2 / n_j), so
    E[theta_j | y] = ybar_j and Var[theta_j | y] = E[sigma^2 | y] / n_j, with p(sigma | y) from
    the sums of squares alone (one-dimensional scipy quadrature)."""
    n, ybar, ss = _sufficient()
    got = exact.moments("flat", {"sigma_scale": 3.0}, {"ybar": ybar[None], "n": n[None], "ss": ss[None]})

    def density(s):
        return np.exp(stats.halfnorm.logpdf(s, scale=3.0)
                      + stats.gamma.logpdf(ss, (n - 1) / 2, scale=2 * s**2).sum())

    total = integrate.quad(density, 0, 20, epsabs=0, epsrel=1e-11, limit=200)[0]
    sigma2 = integrate.quad(lambda s: s**2 * density(s), 0, 20, epsabs=0, epsrel=1e-11,
                            limit=200)[0] / total
    np.testing.assert_allclose(got["theta"][0][0], ybar, rtol=1e-9)
    np.testing.assert_allclose(got["theta"][1][0], np.sqrt(sigma2 / n), rtol=1e-7)


def test_specs_without_a_reduction_have_none():
    data = {"y": Y8[None], "se": SE8[None]}
    horseshoe = dict(mu_loc=0.0, mu_scale=10.0, tau_scale=1.0, sigma_scale=1.0)
    assert exact.moments("horseshoe", horseshoe, data) is None
    assert exact.moments("james_stein", {}, data) is None
    binomial = {"successes": np.ones((1, 4), int), "trials": np.full((1, 4), 5)}
    assert exact.moments("hierarchical", CASES["half_normal"][1], binomial) is None
