"""The specs compute the posteriors they claim: closed forms and a one-dimensional quadrature.

Tolerances are Monte Carlo ones (``tests.checks``): each posterior mean, sd and quantile within
z = 5 of its Monte Carlo standard errors, computed from the fit's own effective sample sizes
(the bulk ESS for means and quantiles, the ESS of the squared deviations behind ArviZ's MCSE of
the sd), so a chance failure has probability 5.7e-7 per comparison (about 700 here). Since a
tolerance taken from the fit would widen if the sampler mixed worse, every comparison also
asserts its power from the same numbers (``checks.power``): a 10 % error in the posterior sds,
or means shifted by 0.1 sd, would fail it with probability >= 0.95; the draws are sized for
that (``tests/test_power.py`` shows such perturbed fits failing).
"""

import functools

import jax
import numpy as np
import pytest
from scipy import integrate, stats

from models import engine
from tests import checks

INFERENCE = engine.Inference(chains=4, warmup=500, draws=1000)
INFERENCE_LONG = engine.Inference(chains=4, warmup=500, draws=2500)
Y = np.array([[2.0, -1.0, 0.5, 3.0, -2.5, 0.0], [1.0, 1.0, -4.0, 0.3, 2.0, -0.7]], np.float32)
SE = np.array([[1.0, 0.5, 2.0, 1.5, 0.8, 3.0], [0.7, 1.2, 1.0, 2.5, 0.4, 1.0]], np.float32)
QUANTILES = np.array(engine.QUANTILES)


def _fit(spec, data, hyper, parameterization="centered", inference=INFERENCE):
    keys = jax.random.split(jax.random.key(11), next(iter(data.values())).shape[0])
    return engine.fit(spec, data, keys, hyper, parameterization=parameterization, inference=inference)


NORMAL_HYPER = {"loc": 1.0, "scale": 2.0, "sigma_scale": 1.0}


@functools.lru_cache
def normal_fit(parameterization="centered"):
    """The normal prior on known standard errors (also the fit tests/test_power.py perturbs)."""
    return _fit("normal", {"y": Y, "se": SE}, NORMAL_HYPER, parameterization)


def _assert_normal_posterior(site, mean, sd):
    """Compare a fitted site with an exact N(mean, sd^2) posterior, elementwise; the comparison
    must have the power it claims."""
    q, density = checks.normal_quantiles(mean, sd, QUANTILES)
    assert checks.moments(site, mean, sd, QUANTILES, q, density) == []
    power = checks.power(site, sd)
    assert min(power.values()) >= 0.95, power


def test_flat_known_sigma_is_the_sampling_distribution():
    fit = _fit("flat", {"y": Y, "se": SE}, {"sigma_scale": 1.0})
    _assert_normal_posterior(fit.sites["theta"], Y, SE)
    assert set(fit.sites) == {"theta"}  # no sigma with known standard errors


@pytest.mark.parametrize("parameterization", ["centered", "noncentered"])
def test_normal_known_sigma_is_conjugate(parameterization):
    loc, scale = NORMAL_HYPER["loc"], NORMAL_HYPER["scale"]
    precision = 1 / scale**2 + 1 / SE**2
    mean = (loc / scale**2 + Y / SE**2) / precision
    fit = normal_fit(parameterization)
    _assert_normal_posterior(fit.sites["theta"], mean, 1 / np.sqrt(precision))


def test_flat_unknown_sigma_matches_quadrature_over_sigma():
    """Raw-data likelihood through the sufficient statistics (ybar, n, ss) with sigma unknown.

    With flat priors on theta_j, integrating theta out gives
        p(sigma | y) ∝ halfnormal(sigma; s) sigma^-(N - J) exp(-SS / (2 sigma^2)),
    and theta_j | sigma, y ~ N(ybar_j, sigma^2 / n_j), so E[theta_j | y] = ybar_j and
    Var[theta_j | y] = E[sigma^2 | y] / n_j: exact references by quadrature over sigma.
    """
    ybar = np.array([[0.3, -1.2, 2.0, 0.8, 1.1]], np.float32)
    n = np.array([[4, 7, 3, 10, 2]], np.int32)
    ss = np.array([[5.1, 9.0, 1.7, 14.2, 0.6]], np.float32)
    s = 3.0
    big_n, n_groups, total_ss = n.sum(), n.shape[1], ss.sum()

    def log_post(sig):
        return stats.halfnorm.logpdf(sig, scale=s) - (big_n - n_groups) * np.log(sig) - total_ss / (2 * sig**2)

    grid_max = 20.0
    norm = integrate.quad(lambda v: np.exp(log_post(v) - log_post(1.3)), 1e-3, grid_max, limit=200)[0]
    moment = lambda k: integrate.quad(lambda v: v**k * np.exp(log_post(v) - log_post(1.3)), 1e-3, grid_max, limit=200)[0] / norm  # noqa: E731
    e_sigma, e_sigma2 = moment(1), moment(2)
    sd_sigma = np.sqrt(e_sigma2 - e_sigma**2)

    # sigma is one number whose bulk ESS is about 0.75 per draw: 4 x 2500 draws for power
    fit = _fit("flat", {"ybar": ybar, "n": n, "ss": ss}, {"sigma_scale": s}, inference=INFERENCE_LONG)
    theta, sigma = fit.sites["theta"], fit.sites["sigma"]
    sd_theta = np.sqrt(e_sigma2 / n)
    # theta_j's marginal is a scale mixture of normals, heavier-tailed than a normal: the MCSE of
    # its sd (ArviZ's, from the draws' own fourth moment and the ESS of their squared
    # deviations) is larger than sd / sqrt(2 ESS), and is the one the check uses
    assert checks.moments(theta, ybar, sd_theta) == []
    assert checks.moments(sigma, np.array([[e_sigma]]), np.array([[sd_sigma]])) == []
    for site, sd in ((theta, sd_theta), (sigma, np.array([[sd_sigma]]))):
        power = checks.power(site, sd)
        assert min(power.values()) >= 0.95, power


def test_sufficient_statistics_likelihood_is_the_raw_one_up_to_a_constant():
    """The factor ``ybar_ss`` (models.likelihood) against scipy's densities of its two parts,
    N(ybar_j; theta_j, sigma^2 / n_j) and Gamma(ss_j; (n_j - 1) / 2, scale 2 sigma^2) for groups of
    two or more: at random (theta, sigma) the two log-likelihoods differ by one constant (the
    data's terms the factor leaves out). A wrong power of sigma, a wrong weight n_j or a size-one
    group's ss counted would make the difference move with sigma or theta by far more than
    float32 rounding (~1e-4 here)."""
    import numpyro
    from numpyro.infer.util import log_density

    from models.likelihood import observe

    ybar = np.array([0.3, -1.2, 2.0, 0.8, 1.1], np.float32)
    n = np.array([4, 7, 1, 10, 2], np.int32)  # a group of one: its ss carries nothing
    ss = np.array([5.1, 9.0, 0.0, 14.2, 0.6], np.float32)
    data, scale = {"ybar": ybar, "n": n, "ss": ss}, 3.0

    def model(theta):
        observe(theta, data, scale)

    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(8):
        theta = rng.normal(0.0, 2.0, 5).astype(np.float32)
        sigma = float(rng.uniform(0.3, 4.0))
        ours = float(log_density(model, (theta,), {}, {"sigma": sigma})[0])
        ours -= stats.halfnorm.logpdf(sigma, scale=scale)
        raw = stats.norm.logpdf(ybar, theta, sigma / np.sqrt(n)).sum() + stats.gamma.logpdf(
            ss[n > 1], (n[n > 1] - 1) / 2, scale=2 * sigma**2
        ).sum()
        diffs.append(ours - raw)
    assert np.ptp(diffs) < 1e-3, diffs
    with numpyro.handlers.trace() as tr, numpyro.handlers.seed(rng_seed=0):
        model(ybar)
    assert tr["ybar_ss"]["is_observed"] and "ss" not in tr  # one factor, no Gamma site


def test_complete_pooling_known_sigma_is_conjugate():
    """mu ~ N(m, s^2), y_j ~ N(mu, se_j^2): mu | y is normal with precision 1/s^2 + sum 1/se_j^2,
    and so is every theta_j."""
    m, s = 1.0, 3.0
    precision = 1 / s**2 + (1 / SE**2).sum(axis=1, keepdims=True)
    mean = (m / s**2 + (Y / SE**2).sum(axis=1, keepdims=True)) / precision
    # one-dimensional: NUTS's bulk ESS is about 0.4 per draw here, so 4 x 2500 draws for power
    fit = _fit("complete_pooling", {"y": Y, "se": SE}, {"mu_loc": m, "mu_scale": s, "sigma_scale": 1.0},
               inference=INFERENCE_LONG)
    _assert_normal_posterior(fit.sites["mu"], mean, 1 / np.sqrt(precision))


@pytest.mark.parametrize("parameterization", ["centered", "noncentered"])
def test_hierarchical_with_tau_fixed_is_conjugate(parameterization):
    """tau known: (mu, theta) | y is Gaussian. mu | y ~ N(M, 1/P), P = 1/s^2 + sum_j w_j,
    w_j = 1/(se_j^2 + tau^2); theta_j | y ~ N((1 - B_j) y_j + B_j M, V_j + B_j^2 / P),
    B_j = se_j^2 w_j, V_j = 1/(1/se_j^2 + 1/tau^2) (BDA3 §5.4, with a normal prior on mu)."""
    m, s, tau = 0.5, 4.0, 1.3
    w = 1 / (SE**2 + tau**2)
    precision = 1 / s**2 + w.sum(axis=1, keepdims=True)
    mu_mean = (m / s**2 + (w * Y).sum(axis=1, keepdims=True)) / precision
    shrink = SE**2 * w
    theta_mean = (1 - shrink) * Y + shrink * mu_mean
    theta_var = 1 / (1 / SE**2 + 1 / tau**2) + shrink**2 / precision
    hyper = dict(mu_family="normal", mu_loc=m, mu_scale=s, tau_family="fixed", tau_scale=tau,
                 tau_df=3.0, sigma_scale=1.0)
    # mu and theta are correlated a posteriori: mu's bulk ESS is lower, so 4 x 2500 draws
    fit = _fit("hierarchical", {"y": Y, "se": SE}, hyper, parameterization, inference=INFERENCE_LONG)
    _assert_normal_posterior(fit.sites["mu"], mu_mean, 1 / np.sqrt(precision))
    _assert_normal_posterior(fit.sites["theta"], theta_mean, np.sqrt(theta_var))
