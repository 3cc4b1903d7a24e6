"""``models/_exact.py`` (BDA3 §5.5 as functions of tau) against truths computed independently.

The truths: brute-force quadrature of the model's joint density on grids (over (mu, tau), and
over (mu, theta_j) at fixed tau), the quadrature reference of the other tests
(``tests/quadrature.py``), the limits tau -> 0 and tau -> inf, and numbers printed in BDA3 §5.5.
"""

import numpy as np
import pytest
from scipy import integrate, stats

from models import _exact
from tests import quadrature as quad

# BDA3 Table 5.2 (eight schools, rounded as printed): estimated effects and standard errors.
Y8 = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SE8 = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def _log_marginal_y(y, se, mu, tau):
    """log prod_j N(y_j | mu, se_j^2 + tau^2) on a (tau, mu) grid: theta_j integrated out by
    the convolution of two normals, nothing else assumed."""
    s2 = se**2 + tau[:, None, None] ** 2  # (T, 1, J)
    return stats.norm.logpdf(y, mu[None, :, None], np.sqrt(s2)).sum(-1)  # (T, M)


def test_tau_density_and_mu_moments_match_brute_force_quadrature_over_mu_and_tau():
    """p(tau | y) under p(mu, tau) ∝ 1, and E, Var of mu | tau, y, by integrating the joint
    density over a linear grid of mu (step 0.2 on [-250, 250]) and tau (step 0.1 on [0, 300])."""
    mu = np.linspace(-250.0, 250.0, 2501)
    tau = np.linspace(0.0, 300.0, 3001)
    log_joint = np.concatenate([_log_marginal_y(Y8, SE8, mu, t) for t in np.array_split(tau, 30)])
    shift = log_joint.max()
    joint = np.exp(log_joint - shift)
    kernel = integrate.trapezoid(joint, mu, axis=1)  # p(tau | y), unnormalised
    density = kernel / integrate.trapezoid(kernel, tau)
    post = _exact.tau_posterior(Y8, SE8)
    # 1e-5: the trapezoid in tau (step 0.1, a smooth even function of tau) errs by ~h^2 f'' / 12
    # relative to the peak, ~1e-6 here; in mu (a Gaussian at least 4 wide) by far less; the cut
    # at tau = 300, where p(tau | y) ~ tau^-7, loses ~1e-13 of the mass.
    np.testing.assert_allclose(post.density(tau), density, rtol=1e-5, atol=1e-5 * density.max())
    pick = [0, 10, 50, 100, 300, 1000]
    mean = integrate.trapezoid(joint[pick] * mu, mu, axis=1) / kernel[pick]
    var = integrate.trapezoid(joint[pick] * (mu - mean[:, None]) ** 2, mu, axis=1) / kernel[pick]
    got_mean, got_var = _exact.mu_conditional(Y8, SE8, tau[pick])
    # 1e-9: the trapezoid on a Gaussian over its whole support is exact to rounding
    np.testing.assert_allclose(got_mean, mean, rtol=1e-9)
    np.testing.assert_allclose(got_var, var, rtol=1e-9)


@pytest.mark.parametrize("tau", [0.5, 5.0, 10.0, 30.0])
def test_theta_moments_match_brute_force_quadrature_over_mu_and_theta(tau):
    """E and sd of theta_j | tau, y from the joint density of (mu, theta_j) given tau,

        p(mu, theta_j | tau, y) ∝ N(y_j | theta_j, se_j^2) N(theta_j | mu, tau^2)
                                   prod_{k != j} N(y_k | mu, se_k^2 + tau^2),

    on a grid of mu (step 0.05 on [-80, 100], > 7 sds of mu | tau, y each way) and
    eta = (theta_j - mu) / tau (step 0.02 on [-9, 9]): the definition of the model, with no use
    of eqs. 5.17 or 5.20."""
    mu = np.linspace(-80.0, 100.0, 3601)[:, None]
    eta = np.linspace(-9.0, 9.0, 901)[None, :]
    got_mean, got_sd = _exact.theta_conditional(Y8, SE8, tau)
    for j in range(len(Y8)):
        others = np.delete(np.arange(len(Y8)), j)
        theta = mu + tau * eta
        log_p = (stats.norm.logpdf(Y8[j], theta, SE8[j]) + stats.norm.logpdf(eta)
                 + stats.norm.logpdf(Y8[others], mu, np.sqrt(SE8[others] ** 2 + tau**2)).sum(
                     -1, keepdims=True))
        p = np.exp(log_p - log_p.max())

        def expect(f):
            return integrate.trapezoid(integrate.trapezoid(p * f, eta[0], axis=1), mu[:, 0])

        z = expect(1.0)
        mean = expect(theta) / z
        sd = np.sqrt(expect((theta - mean) ** 2) / z)
        # 1e-6 relative, 1e-6 SAT points absolute (a mean near 0): trapezoid sums of a smooth,
        # Gaussian-tailed integrand over > 7 sds each way are exact to far less
        np.testing.assert_allclose([got_mean[j], got_sd[j]], [mean, sd], rtol=1e-6, atol=1e-6,
                                   err_msg=f"school {j}, tau {tau}")


def test_agrees_with_the_quadrature_reference_of_the_other_tests():
    """tests/quadrature.py (trapezoid in log tau on 20k points, flat mu and tau) is another
    implementation: the density, the conditional moments and the quantiles of tau must agree."""
    ref = quad.posterior(Y8, SE8, tau_log_prior=quad.tau_log_prior("flat"))
    post = _exact.tau_posterior(Y8, SE8)
    tau = np.array([0.0, 0.3, 2.0, 5.0, 12.0, 30.0, 60.0])
    # 1e-6: the reference's normalising constant is a trapezoid sum on 20k log-spaced points
    np.testing.assert_allclose(post.density(tau[1:]), ref.tau_density(tau[1:]), rtol=1e-6)
    _, mu_mean, mu_var, theta_mean, theta_var = quad.conditional(Y8, SE8, tau)
    got_mu = _exact.mu_conditional(Y8, SE8, tau)
    got_theta = _exact.theta_conditional(Y8, SE8, tau)
    np.testing.assert_allclose(got_mu[0], mu_mean, rtol=1e-12)
    np.testing.assert_allclose(got_mu[1], mu_var, rtol=1e-12)
    np.testing.assert_allclose(got_theta[0], theta_mean, rtol=1e-12)
    np.testing.assert_allclose(got_theta[1], np.sqrt(theta_var), rtol=1e-12)
    q = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    # 1e-5: the reference interpolates its trapezoid CDF linearly in log tau
    np.testing.assert_allclose(post.quantile(q), ref.tau_quantile(q), rtol=1e-5)
    np.testing.assert_allclose(post.cdf(post.quantile(q)), q, atol=1e-9)


def test_complete_pooling_at_tau_zero_and_no_pooling_as_tau_grows():
    mean, sd = _exact.theta_conditional(Y8, SE8, np.array([0.0, 1e5]))
    precision = (1 / SE8**2).sum()
    pooled = (Y8 / SE8**2).sum() / precision  # the precision-weighted mean, 7.6856
    np.testing.assert_allclose(mean[0], pooled, rtol=1e-12)
    np.testing.assert_allclose(sd[0], precision**-0.5, rtol=1e-12)
    # BDA3 §5.5: "the pooled estimate is 7.7 ... with posterior variance 16.6" (as printed)
    assert abs(pooled - 7.7) < 0.05 and abs(1 / precision - 16.6) < 0.05
    # tau = 1e5: shrinkage se^2 / (se^2 + tau^2) <= 3.3e-8 toward a mu_hat within 30 of each y_j
    np.testing.assert_allclose(mean[1], Y8, atol=1e-5)
    np.testing.assert_allclose(sd[1], SE8, rtol=1e-6)


def test_bda3_numbers_at_tau_10():
    """BDA3 §5.5: at tau = 10, school A's effect has conditional posterior mean 14.5 and sd 9.1
    (its "Phi[(28 - 14.5)/9.1]"). The book used Rubin's (1981) unrounded estimates (as
    tests/test_quadrature.py records); tolerance: half a unit in the last printed digit."""
    y = np.array([28.39, 7.94, -2.75, 6.82, -0.64, 0.63, 18.01, 12.16])
    se = np.array([14.9, 10.2, 16.3, 11.0, 9.4, 11.4, 10.4, 17.6])
    mean, sd = _exact.theta_conditional(y, se, 10.0)
    assert abs(mean[0] - 14.5) <= 0.05 and abs(sd[0] - 9.1) <= 0.05


def test_a_finite_upper_bound_truncates_and_renormalises():
    flat = _exact.tau_posterior(Y8, SE8)
    bounded = _exact.tau_posterior(Y8, SE8, upper=8.0)
    tau = np.array([0.0, 1.0, 4.0, 7.9, 8.1, 20.0])
    want = np.where(tau <= 8.0, flat.density(tau) / flat.cdf(8.0), 0.0)
    np.testing.assert_allclose(bounded.density(tau), want, rtol=1e-9)
    assert bounded.cdf(8.0) == pytest.approx(1.0, abs=1e-9)
    assert bounded.quantile(0.999) < 8.0


def test_tail_is_tau_to_the_one_minus_j_and_two_groups_are_improper():
    """With p(tau) ∝ 1, p(tau | y) ~ tau^(1 - J): J = 3 (Gelman 2006, Figure 2) is proper but
    heavy-tailed; J = 2 is improper, which the module refuses without an upper bound."""
    three = _exact.tau_posterior(Y8[:3], SE8[:3])
    t = np.array([1e4, 2e4])
    scaled = three.density(t) * t**2
    assert scaled[1] / scaled[0] == pytest.approx(1.0, abs=1e-3)
    # the density integrates to 1 on (0, inf) (a check of the normalisation by other means:
    # the trapezoid in log tau on 0.01 .. 1e8, plus the analytic tail c / tau beyond)
    u = np.linspace(np.log(1e-2), np.log(1e8), 400_001)
    mass = integrate.trapezoid(three.density(np.exp(u)) * np.exp(u), u)
    mass += 1e-2 * three.density(0.0) + three.density(1e8) * 1e8
    assert mass == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="improper"):
        _exact.tau_posterior(Y8[:2], SE8[:2])
    assert _exact.tau_posterior(Y8[:2], SE8[:2], upper=100.0).cdf(100.0) == pytest.approx(1.0)
