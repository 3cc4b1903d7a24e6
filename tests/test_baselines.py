"""The closed-form baselines against independent truths: exact coverage, a published table,
statsmodels' REML, and the risk of the James-Stein estimator."""

import numpy as np
import pytest
import statsmodels.api as sm

import models
import sim
from models import engine, james_stein
from models.closed_form import fit

LEVEL_90 = tuple(int(np.argmin(np.abs(np.array(engine.QUANTILES) - q))) for q in (0.05, 0.95))


def _covered(site, truth):
    lo, hi = site.quantiles[:, LEVEL_90[0]], site.quantiles[:, LEVEL_90[1]]
    return ((lo <= truth) & (truth <= hi)).mean(axis=1)  # per replicate


def _assert_coverage(per_replicate, nominal):
    """Replicates are independent; groups within one share sigma-hat, so the MCSE is that of
    the R replicate-level averages. 5 MCSE: a chance failure ~6e-7."""
    mcse = per_replicate.std(ddof=1) / np.sqrt(len(per_replicate))
    assert abs(per_replicate.mean() - nominal) < 5 * mcse, (per_replicate.mean(), mcse)


@pytest.mark.parametrize("form", ["known_sigma", "sufficient"])
def test_no_pooling_wald_intervals_have_exact_coverage(form):
    """Normal data: the z interval (known sigma) and the t_{N-J} interval (pooled s) are exact
    90 % confidence intervals for every theta_j; the chi-square interval for sigma too."""
    data, truth = sim.simulate("normal_normal", 3, 4000, n_groups=5, group_size=4, tau=2.0,
                               sigma=1.5, mu=0.0)
    if form == "known_sigma":
        data = {"y": data["ybar"], "se": np.full_like(data["ybar"], 1.5 / 2.0)}
    out = fit(_module("no_pooling_ml"), data, {})
    _assert_coverage(_covered(out.sites["theta"], truth["theta"]), 0.9)
    if form == "sufficient":
        _assert_coverage(_covered(out.sites["sigma"], truth["sigma"][:, None]), 0.9)


def test_james_stein_mu_interval_is_an_exact_t_interval():
    """Equal variances: ybar - mu ~ N(0, (V + tau^2) / J) independent of
    S / (V + tau^2) ~ chi^2_{J-1}, so ybar ± t_{J-1} sqrt(S / (J (J - 1))) is exact, whatever tau."""
    for tau in (0.25, 4.0):
        data, truth = sim.simulate("normal_normal", 6, 4000, n_groups=5, group_size=4, tau=tau,
                                   sigma=1.0, mu=0.0)
        data = {"y": data["ybar"], "se": np.full_like(data["ybar"], 0.5)}
        _assert_coverage(_covered(james_stein.estimate(data)["mu"], truth["mu"][:, None]), 0.9)


def test_james_stein_with_three_groups_is_the_wald_interval():
    data = {"y": np.array([[1.0, 2.0, 2.0]]), "se": np.array([[0.5, 1.0, 2.0]])}
    out, wald = james_stein.estimate(data)["theta"], models.load("no_pooling_ml").estimate(data)["theta"]
    np.testing.assert_allclose(out.quantiles, wald.quantiles)


def test_james_stein_reproduces_efron_morris_1975():
    """Efron & Morris (1975), JASA 70, Table 1: 18 players' first 45 at-bats; grand mean .265,
    shrinking factor c = 1 - B = .212, Clemente's estimate .294 (three published digits: 5e-4).
    The hits are the shipped data set's, so this checks it against the paper too."""
    from sim import datasets

    ds = datasets.load("efron_morris")
    assert np.all(ds.data["trials"] == 45)
    y = ds.data["successes"] / 45
    se = np.sqrt(y.mean() * (1 - y.mean()) / 45)
    out = james_stein.estimate({"y": y[None], "se": np.full((1, 18), se)})
    theta = out["theta"].mean[0]
    assert abs(out["mu"].mean[0, 0] - 0.265) < 5e-4
    assert abs((theta[0] - y.mean()) / (y[0] - y.mean()) - 0.212) < 5e-4
    assert abs(theta[0] - 0.294) < 5e-4


def test_james_stein_risk_is_below_maximum_likelihood():
    """Known sigma = 1, theta_j ~ N(0, tau^2), J = 10: the plain James-Stein estimator toward the
    grand mean has Bayes risk J - (J - 3) / (1 + tau^2) (S ~ (1 + tau^2) chi^2_{J-1}); the
    positive part can only lower it. Maximum likelihood has risk J."""
    n_groups, tau = 10, 1.0
    data, truth = sim.simulate("normal_normal", 4, 4000, n_groups=n_groups, group_size=1,
                               tau=tau, sigma=1.0, mu=0.0)
    data = {"y": data["ybar"], "se": np.ones_like(data["ybar"])}
    theta = james_stein.estimate(data)["theta"].mean
    loss_js = ((theta - truth["theta"]) ** 2).sum(axis=1)
    loss_ml = ((data["y"] - truth["theta"]) ** 2).sum(axis=1)
    mcse = lambda x: x.std(ddof=1) / np.sqrt(len(x))  # noqa: E731
    plain_js_risk = n_groups - (n_groups - 3) / (1 + tau**2)
    assert loss_js.mean() < plain_js_risk + 3 * mcse(loss_js)
    gain = loss_ml - loss_js
    assert gain.mean() > 5 * mcse(gain)
    assert abs(loss_ml.mean() - n_groups) < 5 * mcse(loss_ml)


def test_reml_matches_statsmodels_mixedlm():
    """Balanced one-way random effects on raw data: statsmodels' MixedLM (REML) against the
    sufficient-statistics estimator (pooled s^2, then tau by REML): tau^2, sigma^2, mu and its
    standard error agree to 1e-4 relative (the optimizer's tolerance, not ours)."""
    rng = np.random.default_rng(5)
    n_groups, size = 12, 6
    theta = rng.normal(1.0, 1.2, n_groups)
    y = theta[:, None] + rng.normal(0, 1.0, (n_groups, size))
    groups = np.repeat(np.arange(n_groups), size)
    mixed = sm.MixedLM(y.ravel(), np.ones((y.size, 1)), groups).fit(reml=True)
    data = {"ybar": y.mean(1)[None], "n": np.full((1, n_groups), size),
            "ss": ((y - y.mean(1, keepdims=True)) ** 2).sum(1)[None]}
    out = fit(_module("empirical_bayes"), data, {})
    assert float(np.asarray(mixed.cov_re)[0, 0]) > 0
    np.testing.assert_allclose(out.sites["tau"].mean[0, 0] ** 2, np.asarray(mixed.cov_re)[0, 0], rtol=1e-4)
    np.testing.assert_allclose(out.sites["sigma"].mean[0, 0] ** 2, mixed.scale, rtol=1e-4)
    np.testing.assert_allclose(out.sites["mu"].mean[0, 0], mixed.fe_params[0], rtol=1e-4)
    np.testing.assert_allclose(out.sites["mu"].sd[0, 0], mixed.bse_fe[0], rtol=1e-4)
    # the group effects are MixedLM's BLUPs plus mu
    blup = np.array([np.asarray(mixed.random_effects[g])[0] for g in range(n_groups)]) + mixed.fe_params[0]
    np.testing.assert_allclose(out.sites["theta"].mean[0], blup, rtol=1e-4)


def test_baseline_rows_say_they_make_no_draws():
    data, _ = sim.simulate("normal_normal", 1, 3, n_groups=6, group_size=3, tau=1.0, sigma=1.0,
                           mu=0.0)
    for spec in ("no_pooling_ml", "james_stein", "empirical_bayes"):
        assert engine.method(spec) == "closed_form"
        out = engine.fit(spec, data, None, {})
        assert np.isnan(out.sites["theta"].rhat).all() and (out.n_leapfrog == 0).all()
    assert engine.method("hierarchical") == "nuts"


def _module(name):
    import models

    return models.load(name)
