"""Binomial data on the logit scale: posteriors against exact answers, baselines against their
formulas, and a prior that cannot apply says so instead of fitting.

Tolerances as in test_conjugate (``tests.checks``): posterior means, sds and quantiles within
z = 5 Monte Carlo standard errors from the fit's own ESS and MCSE, with the power against a
10 % error in the sds or a 0.1-sd shift of the means asserted from the same numbers.
"""

import jax
import numpy as np
import pandas as pd
from scipy import integrate, special, stats

import sim
from models import engine
from runs import job, store
from tests import checks
from tests.helpers import compose_study

INFERENCE = engine.Inference(chains=4, warmup=500, draws=1000)
QUANTILES = np.array(engine.QUANTILES)
S = np.array([[1, 3, 7, 12, 2, 19]], np.int32)
N = np.array([[4, 10, 9, 40, 25, 20]], np.int32)


def _fit(spec, hyper):
    keys = jax.random.split(jax.random.key(3), 1)
    return engine.fit(spec, {"successes": S, "trials": N}, keys, hyper, inference=INFERENCE)


def _failures(site, mean, sd, quantiles, density_at_quantiles):
    """``checks.moments`` of a one-data-set site against exact (P,) moments and (L, P)
    quantiles with the posterior density there."""
    return checks.moments(site, mean[None], sd[None], QUANTILES, quantiles[None],
                          density_at_quantiles[None])


def _assert_matches(site, mean, sd, quantiles, density_at_quantiles):
    assert _failures(site, mean, sd, quantiles, density_at_quantiles) == []
    power = checks.power(site, sd[None])
    assert min(power.values()) >= 0.95, power


def test_flat_prior_on_the_log_odds_gives_a_beta_posterior_for_p():
    """p(theta) ∝ 1 on the logit scale is p(p) ∝ 1 / (p (1 - p)): the posterior of p is
    Beta(s, n - s) (proper because 0 < s < n in every group here)."""
    fit = _fit("flat", {"sigma_scale": 1.0})
    a, b = S[0], N[0] - S[0]
    exact = stats.beta(a, b)
    q = exact.ppf(QUANTILES[:, None])
    _assert_matches(fit.sites["p"], exact.mean(), exact.std(), q, exact.pdf(q))
    # the same posterior on the log-odds scale: theta = logit(p) has density
    # Beta(e(t); a, b) e(t) (1 - e(t)) with e the inverse logit, mean psi(a) - psi(b) and variance
    # psi'(a) + psi'(b) (the log of a ratio of independent Gammas)
    t_q = special.logit(q)
    e = special.expit(t_q)
    _assert_matches(fit.sites["theta"], special.digamma(a) - special.digamma(b),
                    np.sqrt(special.polygamma(1, a) + special.polygamma(1, b)), t_q,
                    exact.pdf(e) * e * (1 - e))
    # a flat prior on p itself (Beta(s + 1, n - s + 1)) is another answer, and it fails
    wrong = stats.beta(a + 1, b + 1)
    assert _failures(fit.sites["p"], wrong.mean(), wrong.std(), wrong.ppf(QUANTILES[:, None]),
                     wrong.pdf(wrong.ppf(QUANTILES[:, None]))) != []


def test_normal_prior_on_the_log_odds_matches_quadrature():
    loc, scale = -0.5, 1.5
    fit = _fit("normal", {"loc": loc, "scale": scale, "sigma_scale": 1.0})
    grid = np.linspace(-12, 12, 20001)
    log_post = (
        stats.norm.logpdf(grid[:, None], loc, scale)
        + S[0] * special.log_expit(grid[:, None]) + (N[0] - S[0]) * special.log_expit(-grid[:, None])
    )
    dens = np.exp(log_post - log_post.max(axis=0))
    dens /= integrate.trapezoid(dens, grid, axis=0)
    mean = integrate.trapezoid(grid[:, None] * dens, grid, axis=0)
    sd = np.sqrt(integrate.trapezoid((grid[:, None] - mean) ** 2 * dens, grid, axis=0))
    cdf = integrate.cumulative_trapezoid(dens, grid, axis=0, initial=0)
    q = np.stack([[np.interp(qq, cdf[:, j], grid) for j in range(S.shape[1])] for qq in QUANTILES])
    at_q = np.stack([[np.interp(q[i, j], grid, dens[:, j]) for j in range(S.shape[1])]
                     for i in range(len(QUANTILES))])
    _assert_matches(fit.sites["theta"], mean, sd, q, at_q)


def test_closed_form_baselines_use_the_empirical_logit():
    """y = log((s + 1/2) / (n - s + 1/2)), v = 1/(s + 1/2) + 1/(n - s + 1/2): no pooling's
    Wald interval, and p as the inverse logit of its ends."""
    fit = engine.fit("no_pooling_ml", {"successes": S, "trials": N}, None, {})
    y = np.log((S + 0.5) / (N - S + 0.5))
    se = np.sqrt(1 / (S + 0.5) + 1 / (N - S + 0.5))
    np.testing.assert_allclose(fit.sites["theta"].mean, y, rtol=1e-12)
    i95 = list(engine.QUANTILES).index(0.975)
    np.testing.assert_allclose(fit.sites["theta"].quantiles[:, i95], y + 1.959964 * se, rtol=1e-6)
    np.testing.assert_allclose(fit.sites["p"].quantiles[:, i95], special.expit(y + 1.959964 * se),
                               rtol=1e-6)
    assert "sigma" not in fit.sites  # binomial data have no sigma


def test_flat_declines_data_with_no_or_all_successes(tmp_path):
    """Skipped, not crashed and not silently dropped: a row per estimand with status skipped,
    the reason, NaN estimates; the other replicates are fitted."""
    cfg = compose_study(tmp_path, "scenario=binomial", "scenario.group_size=3", "replicates=4",
                        "prior=flat")
    data, _ = sim.simulate("binomial", cfg.seed, 4, n_groups=3, group_size=3, tau=1.0, mu=-1.0)
    extreme = ((data["successes"] == 0) | (data["successes"] == 3)).any(axis=1)
    assert extreme.any() and not extreme.all()  # this seed gives both kinds
    df = pd.read_parquet(job.run(cfg))
    per_rep = df.groupby("replicate").first()
    np.testing.assert_array_equal(per_rep["status"].eq("skipped").to_numpy(), extreme)
    skipped = df[df["status"] == "skipped"]
    assert skipped["posterior_mean"].isna().all()
    assert skipped["skip_reason"].str.contains("improper posterior").all()
    assert set(skipped["param"]) == {"theta", "p"}
    fitted = df[df["status"] != "skipped"]
    assert fitted["posterior_mean"].notna().all() and (fitted["skip_reason"] == "").all()
    # the truth of p is the scenario's inverse-logit theta
    p_rows = df[df["param"] == "p"]
    theta_rows = df[df["param"] == "theta"]
    np.testing.assert_allclose(p_rows["true_value"], special.expit(theta_rows["true_value"]),
                               rtol=1e-5)


def test_a_data_set_no_replicate_of_which_can_be_fitted(tmp_path):
    fit = engine.fit("flat", {"successes": np.zeros((2, 3), np.int32),
                              "trials": np.full((2, 3), 5, np.int32)},
                     jax.random.split(jax.random.key(0), 2), {"sigma_scale": 1.0},
                     inference=engine.Inference(chains=2, warmup=10, draws=10))
    assert set(fit.sites) == {"theta", "p"} and np.isnan(fit.sites["theta"].mean).all()
    assert list(store.fit_status(fit)) == ["skipped", "skipped"]
