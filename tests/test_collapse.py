"""Integrating the group effects (and mu) out exactly: ``models.collapse``.

Independent truths: the Gaussian conditionals of BDA3 §5.4 as ``tests/quadrature.py`` writes them
(numpy), scipy's multivariate normal and gamma densities for the marginal likelihood of the
sufficient statistics, and the law of total variance for the Rao–Blackwell estimates. The
formulas are compared in double precision (``x64``), where agreement to 1e-9 is expected.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from numpyro.infer.util import log_density
from scipy import stats

import tests.quadrature as quad
from models import collapse, engine, likelihood

Y8 = np.array([28, 8, -3, 7, -1, 1, 18, 12], float)
SE8 = np.array([15, 10, 16, 11, 9, 11, 10, 18], float)
TAUS = np.array([0.01, 0.5, 3.0, 10.0, 40.0])


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("mu_prior", [("flat",), ("normal", 2.0, 7.0), ("nix", 1.0, 0.5)])
def test_conditionals_equal_bda3_closed_form(mu_prior, x64):
    """mu | tau, y and theta | tau, y (mu integrated out) and log p(y | tau) up to a constant
    in tau: the functions the engine draws from, against the reference's formulas."""
    log_lik, mu_mean, mu_var, theta_mean, theta_var = quad.conditional(Y8, SE8, TAUS, mu_prior)
    got = []
    kind, *args = mu_prior
    for tau in TAUS:
        if kind == "flat":
            loc, var = 0.0, np.inf
        elif kind == "normal":
            loc, var = args[0], args[1] ** 2
        else:  # mu | tau ~ N(loc, tau^2 / kappa0)
            loc, var = args[0], tau**2 / args[1]
        theta = collapse.Collapsed(jnp.full(8, collapse.PROBE), jnp.full(8, tau**2),
                                   jnp.asarray(loc), jnp.asarray(var))
        got.append([np.asarray(a, float) for a in collapse.integrate_mu(
            theta, jnp.asarray(Y8), jnp.asarray(SE8**2))])
    log_m, m, v, shrink, mu_hat, mu_v = (np.stack(a) for a in zip(*got))
    np.testing.assert_allclose(mu_hat, mu_mean, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(mu_v, mu_var, rtol=1e-9)
    np.testing.assert_allclose(m, theta_mean, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(v + shrink**2 * mu_v[:, None], theta_var, rtol=1e-9)
    np.testing.assert_allclose(log_m - log_m[0], log_lik - log_lik[0], rtol=1e-9, atol=1e-9)


def test_theta_conditional_given_mu_is_the_conjugate_posterior(x64):
    """theta_j | mu, s_j, y ~ N(m_j, v_j): the normal-normal conjugate update, by precisions;
    s_j -> 0 gives theta_j = mu, s_j = inf (a flat prior) gives N(y_j, e_j)."""
    rng = np.random.default_rng(0)
    y, e = rng.normal(0, 3, 6), rng.uniform(0.5, 4, 6)
    mu, s2 = 1.3, rng.uniform(0.1, 9, 6)
    _, m, v = collapse.marginal_and_conditional(
        collapse.Collapsed(jnp.full(6, mu), jnp.asarray(s2)), jnp.asarray(y), jnp.asarray(e))
    precision = 1 / s2 + 1 / e
    np.testing.assert_allclose(v, 1 / precision, rtol=1e-12)
    np.testing.assert_allclose(m, (mu / s2 + y / e) / precision, rtol=1e-12)
    edge = collapse.Collapsed(jnp.full(2, mu), jnp.array([0.0, jnp.inf]))
    log_m, m, v = collapse.marginal_and_conditional(edge, jnp.asarray(y[:2]), jnp.asarray(e[:2]))
    np.testing.assert_allclose(m, [mu, y[1]], rtol=1e-12)
    np.testing.assert_allclose(v, [0.0, e[1]], rtol=1e-12)
    # the flat group adds nothing: the marginal is the first group's N(y_0 | mu, e_0), unnormalized
    np.testing.assert_allclose(log_m, -0.5 * np.log(e[0]) - 0.5 * (y[0] - mu) ** 2 / e[0])


def _sufficient_data():
    rng = np.random.default_rng(7)
    n = np.array([1, 3, 5, 8, 12], np.int32)
    ybar = rng.normal(0.5, 1.5, 5)
    ss = np.where(n > 1, rng.chisquare(np.maximum(n - 1, 1)) * 1.2**2, 0.0)
    return {"ybar": ybar, "n": n, "ss": ss}


def _true_log_likelihood(data, tau_scale_per_group, mu_prior, sigma):
    """log of the integral over theta (and mu ~ N(m0, s0^2)) of the raw likelihood of the
    sufficient statistics: ybar ~ MVN(m0, diag(s_j^2 + sigma^2 / n_j) + s0^2 11'), and
    ss_j ~ sigma^2 chi^2_{n_j - 1} for groups of two or more (scipy's densities)."""
    n, ybar, ss = data["n"], data["ybar"], data["ss"]
    m0, s0 = mu_prior
    cov = np.diag(tau_scale_per_group**2 + sigma**2 / n) + s0**2
    out = stats.multivariate_normal(np.full(len(n), m0), cov).logpdf(ybar)
    big = n > 1
    return out + stats.gamma.logpdf(ss[big], (n[big] - 1) / 2, scale=2 * sigma**2).sum()


@pytest.mark.parametrize("spec", ["hierarchical", "horseshoe", "normal_inv_chi2"])
def test_collapsed_model_is_the_integrated_likelihood(spec, x64):
    """The collapsed model's log density at several (tau, sigma, local scales) minus the log
    priors of the sampled sites equals the integrated raw likelihood up to one constant."""
    data = {k: jnp.asarray(v) for k, v in _sufficient_data().items()}
    hyper = {
        "hierarchical": dict(mu_family="normal", mu_loc=0.3, mu_scale=2.0, tau_family="half_normal",
                             tau_scale=2.0, tau_df=3.0, sigma_scale=2.0),
        "horseshoe": dict(mu_loc=0.3, mu_scale=2.0, tau_scale=1.0, sigma_scale=2.0),
        "normal_inv_chi2": dict(mu_loc=0.3, kappa0=0.5, tau_df=3.0, tau_scale=1.0, sigma_scale=2.0),
    }[spec]
    model = engine.build_model(spec, "collapsed")
    rng = np.random.default_rng(1)
    diffs = []
    for _ in range(6):
        tau, sigma = rng.uniform(0.2, 3.0), rng.uniform(0.5, 2.5)
        lam = rng.uniform(0.2, 3.0, 5)
        params = {"tau": tau, "sigma": sigma}
        if spec == "horseshoe":
            params["lambda"] = lam
        joint, trace = log_density(model, (), {"data": data, **hyper}, params)
        priors = sum(site["fn"].log_prob(site["value"]).sum() for name, site in trace.items()
                     if site["type"] == "sample" and name in params)
        scale = tau * (lam if spec == "horseshoe" else 1.0)
        mu_sd = tau / np.sqrt(hyper["kappa0"]) if spec == "normal_inv_chi2" else hyper["mu_scale"]
        truth = _true_log_likelihood(_sufficient_data(), np.broadcast_to(scale, 5),
                                     (hyper["mu_loc"], mu_sd), sigma)
        diffs.append(float(joint - priors) - truth)
    assert np.ptp(diffs) < 1e-6, diffs


def test_exact_draws_and_rao_blackwell_moments():
    """For every kept draw, mu ~ N(mu_hat, V) and theta_j ~ N(m_j + B_j (mu - mu_hat), v_j):
    the draws' mean and variance equal the Rao–Blackwell ones (mean of the conditional means;
    mean conditional variance plus the variance of the conditional means, with v_j + B_j^2 V
    for theta) to Monte Carlo error. 400,000 draws: the sd of a sample variance is
    var sqrt(2 / N) ~ 0.2 %, so 1.5 % is over 6 sds."""
    rng = np.random.default_rng(3)
    shape = (4, 100_000)
    values = {
        collapse.MU_MEAN: rng.normal(1.0, 0.5, shape), collapse.MU_VAR: rng.uniform(0.2, 1.0, shape),
        collapse.COND_MEAN: rng.normal(0.0, 1.0, (*shape, 3)),
        collapse.COND_VAR: rng.uniform(0.5, 2.0, (*shape, 3)),
        collapse.SHRINK: rng.uniform(0.0, 1.0, (*shape, 3)),
    }
    values = {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}
    draws, conditional = engine._exact_draws(values, jax.random.key(0))
    for site in ("mu", "theta"):
        x = np.asarray(draws[site], float).reshape(-1, *draws[site].shape[2:])
        mean, var = (np.asarray(a, float).reshape(x.shape[0], -1) for a in conditional[site])
        x = x.reshape(x.shape[0], -1)
        np.testing.assert_allclose(x.mean(0), mean.mean(0), atol=0.01)
        np.testing.assert_allclose(x.var(0), var.mean(0) + mean.var(0), rtol=0.015)


def _gaussian(form):
    return ({"y": np.zeros(4), "se": np.ones(4)} if form == "known"
            else {"ybar": np.zeros(4), "n": np.full(4, 3), "ss": np.ones(4)})


@pytest.mark.parametrize("form", ["known", "sufficient"])
def test_auto_picks_each_form_where_it_applies(form):
    gauss, binom = _gaussian(form), {"successes": np.ones(4, int), "trials": np.full(4, 5)}
    hier = dict(mu_family="normal", mu_loc=0.0, mu_scale=10.0, tau_family="half_normal",
                tau_scale=5.0, tau_df=3.0, sigma_scale=5.0)
    assert engine.form("hierarchical", "auto", {k: v[None] for k, v in gauss.items()}, hier) == "collapsed"
    assert engine.form("flat", "auto", {k: v[None] for k, v in gauss.items()}, {"sigma_scale": 5.0}) == "collapsed"
    # t effects: a scale mixture, and mu integrated out too
    t_hyper = dict(mu_loc=0.0, mu_scale=10.0, tau_family="half_normal", tau_scale=5.0, tau_df=3.0,
                   nu_shape=2.0, nu_rate=0.1, sigma_scale=5.0)
    assert engine.form("hierarchical_t", "auto", {k: v[None] for k, v in gauss.items()}, t_hyper) == "collapsed"
    # theta = mu: nothing random to integrate out
    pool = dict(mu_loc=0.0, mu_scale=10.0, sigma_scale=5.0)
    assert engine.form("complete_pooling", "auto", {k: v[None] for k, v in gauss.items()}, pool) == "centered"
    # binomial data: partially centered where the spec allows a non-centered theta
    assert engine.form("hierarchical", "auto", {k: v[None] for k, v in binom.items()}, hier) == "partial"
    assert engine.form("flat", "auto", {k: v[None] for k, v in binom.items()}, {"sigma_scale": 5.0}) == "centered"
    with pytest.raises(ValueError, match="does not apply to hierarchical: the data are not Gaussian"):
        engine.form("hierarchical", "collapsed", {k: v[None] for k, v in binom.items()}, hier)
    # explicit forms are kept
    assert engine.form("hierarchical", "noncentered", {k: v[None] for k, v in gauss.items()}, hier) == "noncentered"


def _shifted(shift, observed=True):
    """theta ~ N(mu + shift, tau): mu enters theta's location other than as itself where
    shift != 0; with ``observed`` False theta never reaches ``likelihood.observe``."""
    import numpyro
    import numpyro.distributions as dist

    from models.likelihood import observe

    def model(data, *, sigma_scale):
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        tau = numpyro.sample("tau", dist.HalfNormal(5.0))
        with numpyro.plate("groups", data["ybar"].shape[-1]):
            theta = numpyro.sample("theta", dist.Normal(mu + shift, tau))
        if observed:
            observe(theta, data, sigma_scale)
        else:
            numpyro.sample("y", dist.Normal(0.0, 1.0), obs=data["ybar"])

    return model


@pytest.mark.parametrize(("shift", "observed", "blocked", "reason"), [
    (0.0, True, (), None),
    (1.0, True, ("collapsed",), "theta's location is not mu itself"),
    (0.0, False, ("collapsed", "collapsed_theta"), "not a random sample site handed to"),
])
def test_collapse_blocker_names_what_stops_each_form(monkeypatch, shift, observed, blocked, reason):
    """The probe program (``engine._probe``) finds mu entering theta's location other than as
    itself (theta ~ N(mu + 1, tau): only theta can be integrated out) and a theta that never
    reaches the likelihood (nothing can); theta ~ N(mu, tau) takes both forms."""
    model = _shifted(shift, observed)
    monkeypatch.setattr(engine, "build_model", lambda spec, form: collapse.collapse(
        model, integrate_mu=form == "collapsed"))
    example = _gaussian("sufficient")
    if observed:  # the probe program returns theta's location for the check: mu + shift
        _, loc = engine._probe(engine.build_model("any", "collapsed"), example,
                               (("sigma_scale", 5.0),), {})
        np.testing.assert_allclose(np.asarray(loc), collapse.PROBE + shift, rtol=1e-6)
    spec = f"shifted_{shift}_{observed}"
    for form in ("collapsed", "collapsed_theta"):
        got = engine.collapse_blocker(spec, example, (("sigma_scale", 5.0),), {}, form)
        if form in blocked:
            assert reason in got
        else:
            assert got is None


def test_group_information_is_the_fisher_information_at_the_data_estimate():
    """``likelihood.information``: n p (1 - p) at the half-count estimate for binomial counts,
    1 / se^2 for known standard errors, n_j / s^2 with the pooled within-group variance."""
    got = np.asarray(likelihood.information({"successes": np.array([0, 3, 10]),
                                             "trials": np.array([10, 10, 10])}))
    p = (np.array([0, 3, 10]) + 0.5) / 11
    np.testing.assert_allclose(got, 10 * p * (1 - p), rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(likelihood.information({"y": np.zeros(3), "se": np.array([0.5, 1.0, 2.0])})),
        [4.0, 1.0, 0.25], rtol=1e-6)
    n, ss = np.array([1, 3, 5]), np.array([7.0, 4.0, 8.0])  # a group of one has no ss term
    np.testing.assert_allclose(
        np.asarray(likelihood.information({"ybar": np.zeros(3), "n": n, "ss": ss})),
        n / ((4.0 + 8.0) / (2 + 4)), rtol=1e-6)
    # data not given (prior predictive draws), or silent on the variance: p = 1/2, s^2 = 1
    np.testing.assert_allclose(np.asarray(likelihood.information(
        {"successes": None, "trials": np.array([4, 8])})), [1.0, 2.0])
    np.testing.assert_allclose(np.asarray(likelihood.information(
        {"ybar": np.zeros(2), "n": np.array([3, 5]), "ss": np.zeros(2)})), [3.0, 5.0])


def test_partial_weights_stay_in_the_unit_interval_at_extremes():
    """w = s^2 I / (s^2 I + 1): 1/2 at s^2 I = 1, and 0 or 1, never NaN, for a scale or an
    information of 0, a float32 overflow or infinity (a horseshoe's half-Cauchy scales)."""
    import numpyro.distributions as dist

    info = jnp.array([1.0, 4.0, jnp.inf, 1e-30, 1.0], jnp.float32)
    scale = jnp.array([1.0, 0.5, 1e-20, 1e30, jnp.inf], jnp.float32)
    w = np.asarray(engine.partial_weights(dist.Normal(0.0, scale), info))
    np.testing.assert_allclose(w[:2], [0.5, 0.5], rtol=1e-6)
    assert np.all(np.isfinite(w)) and np.all((w >= 0) & (w <= 1))
    assert w[2] == 1.0 and w[4] == 1.0


@pytest.mark.parametrize("spec", ["hierarchical", "horseshoe", "hierarchical_t"])
def test_partial_centering_is_a_change_of_variables_of_the_centered_model(spec, x64):
    """The partially centered model's density at (rest, eta) is the centered model's at
    (rest, theta) times the Jacobian |d theta / d eta| = prod_j s_j^(1 - w_j), theta_j =
    loc_j + s_j^(1 - w_j) (eta_j - w_j loc_j), with w_j = s_j^2 / (s_j^2 + 1 / I_j): the same
    posterior, exactly (up to float64 rounding), whatever the weights."""
    data = {"successes": jnp.array([0, 2, 5, 9, 3]), "trials": jnp.array([10, 4, 12, 9, 30])}
    hyper = {
        "hierarchical": dict(mu_family="normal", mu_loc=0.0, mu_scale=2.0, tau_family="half_normal",
                             tau_scale=2.0, tau_df=3.0, sigma_scale=1.0),
        "horseshoe": dict(mu_loc=0.0, mu_scale=2.0, tau_scale=1.0, sigma_scale=1.0),
        "hierarchical_t": dict(mu_loc=0.0, mu_scale=2.0, tau_family="half_normal", tau_scale=2.0,
                               tau_df=3.0, nu_shape=2.0, nu_rate=0.1, sigma_scale=1.0),
    }[spec]
    partial = engine.build_model(spec, "partial")
    centered = engine.build_model(spec, "centered")
    rng = np.random.default_rng(5)
    trace = numpyro.handlers.trace(numpyro.handlers.seed(partial, 0)).get_trace(data, **hyper)
    for _ in range(3):
        params = {name: jnp.asarray(rng.uniform(0.3, 2.0, np.shape(site["value"])))
                  for name, site in trace.items()
                  if site["type"] == "sample" and not site["is_observed"]}
        params["mu"] = jnp.asarray(rng.normal())
        params["theta_decentered"] = jnp.asarray(rng.normal(size=5))
        lp_partial, tr = log_density(partial, (data,), hyper, params)
        theta = tr["theta"]["value"]
        scale = params["tau"] * params.get("lambda", 1.0)
        info = np.asarray(likelihood.information(data))
        w = scale**2 / (scale**2 + 1 / info)
        np.testing.assert_allclose(
            theta, params["mu"] + scale ** (1 - w) * (params["theta_decentered"] - w * params["mu"]),
            rtol=1e-12)
        rest = {k: v for k, v in params.items() if k != "theta_decentered"}
        lp_centered, _ = log_density(centered, (data,), hyper, {**rest, "theta": theta})
        np.testing.assert_allclose(lp_partial, lp_centered + np.sum((1 - w) * np.log(scale)),
                                   rtol=1e-10)
