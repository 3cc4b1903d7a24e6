"""The specs compute the posteriors they claim: closed forms and a one-dimensional quadrature.

Tolerances are Monte Carlo ones. For a normal posterior with sd s estimated from ESS effectively
independent draws, the posterior mean has MC sd s/sqrt(ESS), the posterior sd about
s/sqrt(2 ESS), and the q-quantile sqrt(q(1-q)/ESS) / phi(z_q) * s. We allow 5 such sds (a chance
failure per comparison ~6e-7; about 500 comparisons here) and compute them with ESS = 3000
(1000 where the posterior is one-dimensional or correlated and NUTS gives less, said where),
having asserted that the fit's bulk ESS exceeds it (NUTS gives ~4700 from 4 x 1000 draws on
independent normal posteriors), so an over-estimated ESS cannot tighten the test into flakiness
and an under-estimated one cannot loosen it. An error of 10 % in a posterior sd is then
0.1 / sqrt(1 / 6000) = 7.7 MC sds: it fails (shown by a test below).
"""

import jax
import numpy as np
import pytest
from scipy import integrate, stats

from models import engine

INFERENCE = engine.Inference(chains=4, warmup=500, draws=1000)
Y = np.array([[2.0, -1.0, 0.5, 3.0, -2.5, 0.0], [1.0, 1.0, -4.0, 0.3, 2.0, -0.7]], np.float32)
SE = np.array([[1.0, 0.5, 2.0, 1.5, 0.8, 3.0], [0.7, 1.2, 1.0, 2.5, 0.4, 1.0]], np.float32)
QUANTILES = np.array(engine.QUANTILES)
ESS_FLOOR = 3000.0


def _fit(spec, data, hyper, parameterization="centered"):
    keys = jax.random.split(jax.random.key(11), next(iter(data.values())).shape[0])
    return engine.fit(spec, data, keys, hyper, parameterization=parameterization, inference=INFERENCE)


def _assert_normal_posterior(site, mean, sd, ess_floor=ESS_FLOOR):
    """Compare a fitted site with an exact N(mean, sd^2) posterior, elementwise."""
    assert np.all(site.ess_bulk > ess_floor), site.ess_bulk.min()
    ess = np.full_like(site.mean, ess_floor)
    np.testing.assert_array_less(np.abs(site.mean - mean), 5 * sd / np.sqrt(ess))
    np.testing.assert_array_less(np.abs(site.sd - sd), 5 * sd / np.sqrt(2 * ess))
    z = stats.norm.ppf(QUANTILES)[None, :, None]
    exact_q = mean[:, None, :] + z * sd[:, None, :]
    q_mcse = np.sqrt(QUANTILES * (1 - QUANTILES))[None, :, None] / stats.norm.pdf(z) * sd[:, None, :]
    np.testing.assert_array_less(
        np.abs(site.quantiles - exact_q), 5 * q_mcse / np.sqrt(ess[:, None, :])
    )


def test_flat_known_sigma_is_the_sampling_distribution():
    fit = _fit("flat", {"y": Y, "se": SE}, {"sigma_scale": 1.0})
    _assert_normal_posterior(fit.sites["theta"], Y, SE)
    assert set(fit.sites) == {"theta"}  # no sigma with known standard errors


@pytest.mark.parametrize("parameterization", ["centered", "noncentered"])
def test_normal_known_sigma_is_conjugate(parameterization):
    loc, scale = 1.0, 2.0
    precision = 1 / scale**2 + 1 / SE**2
    mean = (loc / scale**2 + Y / SE**2) / precision
    fit = _fit("normal", {"y": Y, "se": SE}, {"loc": loc, "scale": scale, "sigma_scale": 1.0},
               parameterization)
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

    fit = _fit("flat", {"ybar": ybar, "n": n, "ss": ss}, {"sigma_scale": s})
    theta, sigma = fit.sites["theta"], fit.sites["sigma"]
    # scale mixtures mix less well than the normal posteriors above: a floor of 1500
    assert theta.ess_bulk.min() > 1500 and sigma.ess_bulk.min() > 1500
    ess = 1500.0
    sd_theta = np.sqrt(e_sigma2 / n)
    np.testing.assert_array_less(np.abs(theta.mean - ybar), 5 * sd_theta / np.sqrt(ess))
    # theta_j's marginal is a scale mixture of normals (heavier tails than normal): its sd
    # estimate has a larger MC error; 5 x sd / sqrt(ESS) still bounds it generously.
    np.testing.assert_array_less(np.abs(theta.sd - sd_theta), 5 * sd_theta / np.sqrt(ess))
    sigma_ess = 1500.0
    assert abs(sigma.mean[0, 0] - e_sigma) < 5 * sd_sigma / np.sqrt(sigma_ess)
    assert abs(sigma.sd[0, 0] - sd_sigma) < 5 * sd_sigma / np.sqrt(sigma_ess)


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


@pytest.mark.parametrize("factor", [0.5, 1.1])
def test_misscaled_likelihood_fails_the_same_check(factor):
    """The check above has power: a posterior whose sd is off by 10 % must not pass."""
    fit = _fit("flat", {"y": Y, "se": SE * factor}, {"sigma_scale": 1.0})
    with pytest.raises(AssertionError):
        _assert_normal_posterior(fit.sites["theta"], Y, SE)


def test_complete_pooling_known_sigma_is_conjugate():
    """mu ~ N(m, s^2), y_j ~ N(mu, se_j^2): mu | y is normal with precision 1/s^2 + sum 1/se_j^2,
    and every theta_j is mu."""
    m, s = 1.0, 3.0
    precision = 1 / s**2 + (1 / SE**2).sum(axis=1, keepdims=True)
    mean = (m / s**2 + (Y / SE**2).sum(axis=1, keepdims=True)) / precision
    fit = _fit("complete_pooling", {"y": Y, "se": SE}, {"mu_loc": m, "mu_scale": s, "sigma_scale": 1.0})
    # one-dimensional: NUTS's bulk ESS is ~1600-1800 here, so the floor is 1000
    _assert_normal_posterior(fit.sites["mu"], mean, 1 / np.sqrt(precision), ess_floor=1000.0)
    for stat in ("mean", "sd"):
        np.testing.assert_allclose(getattr(fit.sites["theta"], stat),
                                   np.broadcast_to(getattr(fit.sites["mu"], stat), Y.shape), rtol=1e-6)


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
    fit = _fit("hierarchical", {"y": Y, "se": SE}, hyper, parameterization)
    # mu and theta are correlated a posteriori: bulk ESS ~1500-5000, so the floor is 1000
    _assert_normal_posterior(fit.sites["mu"], mu_mean, 1 / np.sqrt(precision), ess_floor=1000.0)
    _assert_normal_posterior(fit.sites["theta"], theta_mean, np.sqrt(theta_var), ess_floor=1000.0)
    np.testing.assert_allclose(fit.sites["tau"].mean, tau, rtol=1e-6)
