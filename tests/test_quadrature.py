"""The quadrature reference (tests/quadrature.py) against truths computed independently of it.

Its accuracy is limited by the trapezoid rule on 20k points in log tau (~1e-7 relative) and by
the truncation of tau's range (~e^-30): tolerances below are those of the independent truths.
"""

import numpy as np
import pytest
from scipy import integrate, special, stats

from tests import quadrature as quad

# BDA3 Table 5.2 (eight schools, rounded as printed): estimated effects and standard errors.
Y8 = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SE8 = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def _brute_force_2d(y, se, log_prior_tau):
    """Posterior moments by the trapezoid rule on a linear (tau, mu) grid, theta integrated out."""
    tau = np.linspace(0.0, 200.0, 2001)
    mu = np.linspace(-250.0, 250.0, 2501)
    s2 = se**2 + tau[:, None] ** 2  # (T, J)
    log_p = np.empty((tau.size, mu.size))
    for rows in np.array_split(np.arange(tau.size), 20):
        r = (y - mu[:, None]) ** 2 / s2[rows, None, :]  # (rows, M, J)
        log_p[rows] = -0.5 * (r + np.log(s2[rows, None, :])).sum(-1)
    log_p += log_prior_tau(tau)[:, None]
    p = np.exp(log_p - log_p.max())
    tau2, mu2 = np.meshgrid(tau, mu, indexing="ij")
    theta1_mean = (y[0] * tau2**2 + mu2 * se[0] ** 2) / (se[0] ** 2 + tau2**2)  # eq. 5.17
    theta1_var = se[0] ** 2 * tau2**2 / (se[0] ** 2 + tau2**2)

    def expect(f):
        return integrate.trapezoid(integrate.trapezoid(p * f, mu, axis=1), tau)

    z = expect(1.0)
    out = {}
    for name, m1, m2 in [("tau", tau2, tau2**2), ("mu", mu2, mu2**2),
                         ("theta1", theta1_mean, theta1_var + theta1_mean**2)]:
        mean = expect(m1) / z
        out[name] = (mean, np.sqrt(expect(m2) / z - mean**2))
    return out


def test_matches_brute_force_2d_quadrature():
    ref = quad.posterior(Y8, SE8, tau_log_prior=quad.tau_log_prior("half_cauchy", scale=25.0))
    brute = _brute_force_2d(Y8, SE8, stats.halfcauchy(scale=25.0).logpdf)
    got = {"tau": (ref.tau_mean, ref.tau_sd), "mu": (ref.mu_mean, ref.mu_sd),
           "theta1": (ref.theta_mean[0], ref.theta_sd[0])}
    # 1e-4: the 2-D trapezoid (steps 0.1 in tau, 0.2 in mu) is accurate to ~2e-5; its cut at
    # tau = 200, where p(tau | y) ~ tau^-9, loses < 1e-8 of the mass.
    for name in got:
        np.testing.assert_allclose(got[name], brute[name], rtol=1e-4, err_msg=name)


def test_matches_importance_sampling_from_the_prior():
    """Draw (tau, mu, theta) from a proper prior, weight by the likelihood of y given theta."""
    prior_tau, mu_prior = quad.tau_log_prior("half_normal", scale=5.0), ("normal", 0.0, 10.0)
    ref = quad.posterior(Y8, SE8, tau_log_prior=prior_tau, mu_prior=mu_prior)
    rng = np.random.default_rng(20240611)
    n = 1_000_000
    tau = np.abs(rng.normal(0.0, 5.0, n))
    mu = rng.normal(0.0, 10.0, n)
    theta = mu[:, None] + tau[:, None] * rng.standard_normal((n, Y8.size))
    log_w = -0.5 * (((Y8 - theta) / SE8) ** 2).sum(1)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    assert 1 / (w**2).sum() > 1e5  # effective sample size (~2.7e5)
    checks = [(tau, ref.tau_mean), (tau**2, ref.tau_sd**2 + ref.tau_mean**2),
              (mu, ref.mu_mean), (mu**2, ref.mu_sd**2 + ref.mu_mean**2)]
    checks += [(theta[:, j], ref.theta_mean[j]) for j in range(Y8.size)]
    checks += [(theta[:, j] ** 2, ref.theta_sd[j] ** 2 + ref.theta_mean[j] ** 2)
               for j in range(Y8.size)]
    for draws, exact in checks:
        estimate = w @ draws
        mcse = np.sqrt(w**2 @ (draws - estimate) ** 2)  # self-normalised importance sampling
        # 5 MC standard errors: a chance failure ~6e-7 per comparison (20 here); seeded.
        assert abs(estimate - exact) < 5 * mcse, (estimate, exact, mcse)


def _gaussian_conditioning(y, se, tau, m0, v0):
    """Known tau, mu ~ N(m0, v0): (theta, y) jointly normal; condition on y (no B_j shortcut)."""
    ones = np.ones(y.size)
    c = tau**2 * np.eye(y.size) + v0 * np.outer(ones, ones)  # Cov(theta) = Cov(theta, y)
    s = c + np.diag(se**2)  # Cov(y)
    gain = np.linalg.solve(s, c).T  # C S^-1
    theta_mean = m0 + gain @ (y - m0)
    theta_var = np.diag(c - gain @ c)
    mu_gain = np.linalg.solve(s, v0 * ones)  # S^-1 Cov(y, mu)
    mu_mean, mu_var = m0 + mu_gain @ (y - m0), v0 - v0 * ones @ mu_gain
    log_lik = stats.multivariate_normal(m0 * ones, s).logpdf(y)
    return log_lik, mu_mean, mu_var, theta_mean, theta_var


@pytest.mark.parametrize("tau", [0.3, 4.0, 25.0])
@pytest.mark.parametrize("mu_prior", [("normal", 2.0, 7.0), ("nix", -1.0, 0.5), ("flat",)])
def test_conditional_on_tau_is_gaussian_conditioning(tau, mu_prior):
    kind, *args = mu_prior
    m0, v0 = {"normal": lambda: (args[0], args[1] ** 2), "nix": lambda: (args[0], tau**2 / args[1]),
              "flat": lambda: (0.0, 1e9)}[kind]()  # flat: the limit v0 -> inf
    got = quad.conditional(Y8, SE8, tau, mu_prior)
    want = _gaussian_conditioning(Y8, SE8, tau, m0, v0)
    if kind == "flat":  # p(y | tau) under mu ~ N(0, v0) -> (2 pi v0)^-1/2 the flat one, v0 -> inf
        want = (want[0] + 0.5 * np.log(2 * np.pi * v0), *want[1:])
    # 1e-9; for flat 1e-6, and 1e-6 absolute (y ~ 10): the limit is off by O(1 / (v0 sum w)) <= 1e-7
    tol = {"rtol": 1e-6, "atol": 1e-6} if kind == "flat" else {"rtol": 1e-9}
    for name, g, w in zip(["log p(y|tau)", "E mu", "Var mu", "E theta", "Var theta"], got, want):
        np.testing.assert_allclose(g, w, **tol, err_msg=name)


def test_bda3_conditional_numbers_at_tau_10():
    # BDA3 §5.5: "even at tau = 10, the probability that the effect in school A is less than 28
    # points is Phi[(28 - 14.5)/9.1] = 93%". These numbers come from Rubin's (1981, Table 1)
    # unrounded data (copied in Rdatasets' stevedata/eight_schools; BDA3 quotes A as 28.4 +- 14.9),
    # not from the rounded Table 5.2, which gives 14.2. Tolerance: half a unit in the last digit.
    y = np.array([28.39, 7.94, -2.75, 6.82, -0.64, 0.63, 18.01, 12.16])
    se = np.array([14.9, 10.2, 16.3, 11.0, 9.4, 11.4, 10.4, 17.6])
    _, _, _, mean, var = quad.conditional(y, se, 10.0)
    assert abs(mean[0] - 14.5) <= 0.05 and abs(np.sqrt(var[0]) - 9.1) <= 0.05
    assert abs(stats.norm.cdf((28 - mean[0]) / np.sqrt(var[0])) - 0.93) <= 0.005


def test_tau_concentrated_at_a_point_gives_the_known_tau_posterior():
    tau0, mu_prior = 6.0, ("normal", 1.0, 8.0)
    # tau^2 ~ Scaled-Inv-chi^2(2e4, tau0^2): tau = tau0 (1 + O(0.5 %)).
    prior = quad.tau_log_prior("scaled_inv_chi2", df=2e4, scale=tau0)
    ref = quad.posterior(Y8, SE8, tau_log_prior=prior, mu_prior=mu_prior)
    _, mu_mean, mu_var, theta_mean, theta_var = _gaussian_conditioning(Y8, SE8, tau0, 1.0, 64.0)
    # 2e-4: tau's spread (sd 0.5 %) moves the moments by O(Var(tau) / tau^2) ~ 2e-5.
    np.testing.assert_allclose(ref.tau_mean, tau0, rtol=2e-4)
    np.testing.assert_allclose([ref.mu_mean, ref.mu_sd], [mu_mean, np.sqrt(mu_var)], rtol=2e-4)
    np.testing.assert_allclose(ref.theta_mean, theta_mean, rtol=2e-4)
    np.testing.assert_allclose(ref.theta_sd, np.sqrt(theta_var), rtol=2e-4)


def test_tau_concentrated_near_zero_pools_completely():
    # half-normal(1e-4): tau ~ 1e-4, so theta_j = mu to O(tau^2 / se^2) = 1e-10.
    ref = quad.posterior(Y8, SE8, tau_log_prior=quad.tau_log_prior("half_normal", scale=1e-4))
    precision = (1 / SE8**2).sum()
    pooled = (Y8 / SE8**2).sum() / precision
    np.testing.assert_allclose(ref.theta_mean, pooled, rtol=1e-6)
    np.testing.assert_allclose(ref.theta_sd, precision**-0.5, rtol=1e-6)
    np.testing.assert_allclose([ref.mu_mean, ref.mu_sd], [pooled, precision**-0.5], rtol=1e-6)
    # BDA3 §5.5: the pooled estimate is 7.7 with posterior variance 16.6 (printed rounding).
    assert abs(pooled - 7.7) <= 0.05 and abs(1 / precision - 16.6) <= 0.05


def test_small_se_recovers_the_normal_inverse_chi2_conjugate_posterior():
    """With se -> 0, theta = y is observed: (mu, tau^2) has the NIX posterior (BDA3 §3.3)."""
    y = np.array([1.3, -0.4, 2.2, 0.9, 3.1, 1.7])
    mu0, kappa0, nu0, s0 = 0.5, 2.0, 4.0, 1.5
    ref = quad.posterior(y, np.full(y.size, 1e-3), mu_prior=("nix", mu0, kappa0),
                         tau_log_prior=quad.tau_log_prior("scaled_inv_chi2", df=nu0, scale=s0))
    n, ybar = y.size, y.mean()
    kappa_n, nu_n = kappa0 + n, nu0 + n
    mu_n = (kappa0 * mu0 + n * ybar) / kappa_n
    s2_n = (nu0 * s0**2 + (n - 1) * y.var(ddof=1) + kappa0 * n / kappa_n * (ybar - mu0) ** 2) / nu_n
    tau2 = stats.invgamma(nu_n / 2, scale=nu_n * s2_n / 2)  # tau^2 | y
    mu = stats.t(nu_n, mu_n, np.sqrt(s2_n / kappa_n))  # mu | y
    a, b = nu_n / 2, nu_n * s2_n / 2
    tau_mean = np.sqrt(b) * np.exp(special.gammaln(a - 0.5) - special.gammaln(a))
    # 1e-5: se = 1e-3 perturbs by O(se^2 / tau^2) ~ 1e-6; the rest is quadrature (~1e-7)
    np.testing.assert_allclose([ref.mu_mean, ref.mu_sd], [mu.mean(), mu.std()], rtol=1e-5)
    tau_sd = np.sqrt(tau2.mean() - tau_mean**2)
    np.testing.assert_allclose([ref.tau_mean, ref.tau_sd], [tau_mean, tau_sd], rtol=1e-5)
    q = np.array([0.025, 0.25, 0.5, 0.75, 0.975])
    np.testing.assert_allclose(ref.tau_quantile(q), np.sqrt(tau2.ppf(q)), rtol=1e-5)
    np.testing.assert_allclose(ref.mu_quantile(q), mu.ppf(q), rtol=1e-5, atol=1e-6)


def test_bda3_table_5_3():
    """BDA3 Table 5.3: quantiles of theta_j | y from 200 draws, p(mu, tau) ∝ 1, Table 5.2 data.

    Numbers as printed in Gelman et al. (2013), BDA 3rd ed., §5.5, Table 5.3, read from a text
    transcript of the book's chapter 5 (MinerU OCR) in a public GitHub repository.
    """
    bda = np.array([[-2, 7, 10, 16, 31], [-5, 3, 8, 12, 23], [-11, 2, 7, 11, 19],
                    [-7, 4, 8, 11, 21], [-9, 1, 5, 10, 18], [-7, 2, 6, 10, 28],
                    [-1, 7, 10, 15, 26], [-6, 3, 8, 13, 33]])  # schools A-H; 2.5 %, ..., 97.5 %
    q = np.array([0.025, 0.25, 0.5, 0.75, 0.975])
    ref = quad.posterior(Y8, SE8, tau_log_prior=quad.tau_log_prior("flat"))
    exact = ref.theta_quantile(q).T  # (J, 5)
    # MC sd of a q-quantile of 200 draws: sqrt(q (1-q) / 200) / density there (0.5-2.8 here);
    # allow 4 of them plus 0.5 for the rounding to integers.
    mc_sd = np.sqrt(q * (1 - q) / 200) / ref.theta_density(exact.T).T
    ok = np.abs(bda - exact) <= 4 * mc_sd + 0.5
    # All agree (|error| <= 3 MC sds) but school F's 97.5 %, printed as 28: the exact one is 18.6
    # and P(theta_F > 28 | y) = 0.001: 5 of 200 draws above 28 has probability 2e-6 (a misprint?).
    assert ok.sum() == 39 and not ok[5, 4], np.round(exact, 1)
    assert ref.weights @ special.ndtr((ref.theta_m[:, 5] - 28) / ref.theta_s[:, 5]) < 0.002


def test_tau_mode_is_the_closed_form_reml_estimate_when_balanced():
    rng = np.random.default_rng(7)
    se = np.full(12, 2.0)
    y = rng.normal(1.0 + 4.0 * rng.standard_normal(12), se)
    tau_hat = np.sqrt(y.var(ddof=1) - 4.0)  # REML: s_b^2 - se^2, when positive
    assert tau_hat > 1.0
    # 1e-6: the bounded scalar minimisation refines the grid's argmax to ~1e-8 relative.
    np.testing.assert_allclose(quad.reml_tau(y, se), tau_hat, rtol=1e-6)


def test_tau_mode_solves_the_reml_score_equation_when_unbalanced():
    rng = np.random.default_rng(3)
    se = rng.uniform(0.5, 3.0, 15)
    y = rng.normal(2.0 + 2.5 * rng.standard_normal(15), se)
    t2 = quad.reml_tau(y, se) ** 2
    assert t2 > 1.0
    # d/d tau^2 of the restricted log-likelihood is 0 at the REML estimate, i.e.
    # tau^2 = sum w^2 ((y - M)^2 - se^2) / sum w^2 + 1 / sum w with w = 1/(se^2 + tau^2)
    w = 1 / (se**2 + t2)
    m = (w * y).sum() / w.sum()
    fixed_point = (w**2 * ((y - m) ** 2 - se**2)).sum() / (w**2).sum() + 1 / w.sum()
    np.testing.assert_allclose(t2, fixed_point, rtol=1e-6)


def test_eight_schools_reml_is_zero():
    # BDA3 §5.5: with p(tau) ∝ 1 "zero is the most likely value" of tau (chi^2 4.6 < 7 df).
    assert quad.reml_tau(Y8, SE8) == 0.0


def test_quantiles_invert_the_densities():
    ref = quad.posterior(Y8, SE8, tau_log_prior=quad.tau_log_prior("half_cauchy", scale=25.0))
    q = np.array([0.025, 0.5, 0.975])
    # 1e-6: quad's own error ~1e-9; the tau CDF is a trapezoid sum interpolated between points
    assert integrate.quad(ref.tau_density, 0, np.inf)[0] == pytest.approx(1, abs=1e-6)
    tau_mean = integrate.quad(lambda t: t * ref.tau_density(t), 0, np.inf)[0]
    assert tau_mean == pytest.approx(ref.tau_mean, rel=1e-6)
    for p, t in zip(q, ref.tau_quantile(q)):
        assert integrate.quad(ref.tau_density, 0, t)[0] == pytest.approx(p, abs=1e-6)
    mu_q = ref.mu_quantile(q)
    for p, x in zip(q[1:], mu_q[1:]):
        assert integrate.quad(ref.mu_density, mu_q[0], x)[0] == pytest.approx(p - q[0], abs=1e-6)
    assert integrate.quad(ref.mu_density, -np.inf, np.inf)[0] == pytest.approx(1, abs=1e-6)
    lo, hi = ref.theta_quantile(0.025), ref.theta_quantile(0.975)  # (J,): all schools at once
    mass = integrate.quad_vec(lambda s: ref.theta_density(lo + s * (hi - lo)) * (hi - lo), 0, 1)[0]
    np.testing.assert_allclose(mass, 0.95, atol=1e-6)


def test_uniform_prior_truncates_the_flat_posterior():
    flat = quad.posterior(Y8, SE8, tau_log_prior=quad.tau_log_prior("flat"))
    uniform = quad.posterior(Y8, SE8, tau_log_prior=quad.tau_log_prior("uniform", upper=10.0))
    assert uniform.tau[-1] == 10.0  # the grid stops at the prior's upper bound
    below = integrate.quad(flat.tau_density, 0, 10)[0]  # P(tau < 10 | y) under p(tau) ∝ 1
    q = np.array([0.1, 0.5, 0.9])
    # 1e-6: both quantiles are interpolated trapezoid CDFs (~1e-7)
    np.testing.assert_allclose(uniform.tau_quantile(q), flat.tau_quantile(q * below), rtol=1e-6)


def test_warns_when_tau_has_no_second_moment():
    # flat tau, flat mu, J = 4: p(tau | y) ~ tau^-3 for large tau, so E[tau^2] is infinite
    with pytest.warns(UserWarning, match="heavy a tail"):
        quad.posterior(Y8[:4], SE8[:4], tau_log_prior=quad.tau_log_prior("flat"))


@pytest.mark.parametrize("family, params", [
    ("half_normal", {"scale": 3.0}), ("half_cauchy", {"scale": 2.0}),
    ("half_t", {"df": 3.0, "scale": 2.0}), ("uniform", {"upper": 7.0}),
    ("inv_gamma", {"shape": 3.0, "scale": 2.0}),
    ("scaled_inv_chi2", {"df": 5.0, "scale": 1.5})])
def test_tau_priors_are_normalised_densities(family, params):
    density = lambda t: np.exp(quad.tau_log_prior(family, **params)(t))  # noqa: E731
    upper = params.get("upper", np.inf)
    assert integrate.quad(density, 0, upper)[0] == pytest.approx(1, abs=1e-8)
    assert density(-1.0) == 0 and (upper == np.inf or density(upper * 1.01) == 0)


def test_tau_prior_transforms():
    # tau^2 ~ InvGamma(a, b): P(tau <= t) = InvGamma cdf at t^2
    ig = quad.tau_log_prior("inv_gamma", shape=3.0, scale=2.0)
    p = integrate.quad(lambda t: np.exp(ig(t)), 0, 1.3)[0]
    assert p == pytest.approx(stats.invgamma(3.0, scale=2.0).cdf(1.3**2), abs=1e-10)
    # Scaled-Inv-chi^2(nu, s^2) = InvGamma(nu/2, nu s^2/2); half-t with 1 df = half-Cauchy
    t = np.array([0.1, 0.7, 2.0, 9.0])
    np.testing.assert_allclose(quad.tau_log_prior("scaled_inv_chi2", df=5.0, scale=1.5)(t),
                               quad.tau_log_prior("inv_gamma", shape=2.5, scale=5 * 1.5**2 / 2)(t))
    np.testing.assert_allclose(quad.tau_log_prior("half_t", df=1.0, scale=2.0)(t),
                               quad.tau_log_prior("half_cauchy", scale=2.0)(t))
    with pytest.raises(ValueError, match="half_laplace"):
        quad.tau_log_prior("half_laplace", scale=1.0)
