"""models.diagnostics returns ArviZ's rank-normalized split R-hat, bulk ESS and Monte Carlo error of
the sd on the same draws."""

import warnings

import arviz as az
import jax.numpy as jnp
import numpy as np
import pytest

from models import diagnostics


def _ar1(rng, phi, chains, draws):
    x = np.zeros((chains, draws))
    e = rng.normal(size=(chains, draws))
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


def _cases():
    rng = np.random.default_rng(1)
    return {
        "iid": rng.normal(size=(4, 1000)),
        "autocorrelated": _ar1(rng, 0.9, 4, 1000),
        "anticorrelated": _ar1(rng, -0.5, 4, 1000),
        "barely_moving": _ar1(rng, 0.99, 4, 200),
        "one_chain_elsewhere": rng.normal(size=(4, 500)) + np.array([[0], [0], [0], [3]]),
        "ties": np.round(rng.normal(size=(4, 400)), 1),
        "short_odd": rng.normal(size=(2, 9)),
        "stuck_repeats": np.repeat(rng.normal(size=(4, 50)), 20, axis=1),
        "skewed": rng.exponential(size=(3, 700)),
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_matches_arviz(name):
    x = _cases()[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want_ess = az.ess(x, method="bulk")
        want_rhat = az.rhat(x, method="rank")
        want_mcse_sd = az.mcse(x, method="sd")
    got_ess = float(diagnostics.ess_bulk(jnp.asarray(x, jnp.float32)))
    got_rhat = float(diagnostics.rhat_rank(jnp.asarray(x, jnp.float32)))
    got_mcse_sd = float(diagnostics.mcse_sd(jnp.asarray(x, jnp.float32)))
    # float32 against ArviZ's float64: ranks are exact, sums agree to ~1e-6 relative; folded
    # draws with ties ("stuck_repeats") can order differently in float32, moving R-hat by 1e-3;
    # float32 sums of squared deviations: ~1e-5 relative at most.
    assert got_ess == pytest.approx(want_ess, rel=1e-4)
    assert got_rhat == pytest.approx(want_rhat, abs=1e-3)
    assert got_mcse_sd == pytest.approx(want_mcse_sd, rel=1e-3)


def test_bad_mixing_is_flagged():
    rng = np.random.default_rng(2)
    stuck = rng.normal(size=(4, 500)) + np.array([[0], [0], [0], [3]])
    assert float(diagnostics.rhat_rank(jnp.asarray(stuck))) > 1.1
    assert float(diagnostics.ess_bulk(jnp.asarray(stuck))) < 100


def test_mcse_of_the_sd_of_independent_normal_draws():
    """For N independent normal draws the sample sd has standard error sigma / sqrt(2N) (its
    variance is sigma^2 / (2N) to first order). The estimate carries the noise of the fourth
    moment and of the ESS (a few % at N = 20,000); 10 % is far outside it, and an MCSE of the
    variance rather than of the sd would be 2 sigma = 6 times off."""
    x = np.random.default_rng(3).normal(scale=3.0, size=(4, 5000))
    got = float(diagnostics.mcse_sd(jnp.asarray(x, jnp.float32)))
    assert got == pytest.approx(3.0 / np.sqrt(2 * x.size), rel=0.10)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_draws_give_arviz_answers(bad):
    """A NaN draw makes ArviZ's R-hat, bulk ESS and MCSE of the sd NaN (its ``_not_valid``), and
    its rank normalization leaves the NaN in place and ranks the other draws among themselves;
    an infinite draw is ranked (R-hat and ESS finite) and makes the MCSE of the sd NaN. The port
    must say the same, not report a finite ESS of draws that contain a NaN."""
    from arviz.stats.diagnostics import _z_scale

    x = np.random.default_rng(4).normal(size=(4, 200))
    x[1, 17] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = {"ess": az.ess(x, method="bulk"), "rhat": az.rhat(x, method="rank"),
                "mcse_sd": az.mcse(x, method="sd"), "z": _z_scale(x)}
    xj = jnp.asarray(x, jnp.float32)
    got = {"ess": float(diagnostics.ess_bulk(xj)), "rhat": float(diagnostics.rhat_rank(xj)),
           "mcse_sd": float(diagnostics.mcse_sd(xj)), "z": np.asarray(diagnostics.z_scale(xj))}
    for name in ("ess", "rhat", "mcse_sd"):
        assert np.isnan(got[name]) == np.isnan(want[name]), (name, got[name], want[name])
    if np.isnan(bad):
        assert np.isnan(got["ess"]) and np.isnan(got["rhat"])
    else:  # finite answers, ArviZ's to float32 precision (as in test_matches_arviz)
        assert got["ess"] == pytest.approx(want["ess"], rel=1e-4)
        assert got["rhat"] == pytest.approx(want["rhat"], abs=1e-3)
    np.testing.assert_array_equal(np.isnan(got["z"]), np.isnan(want["z"]))
    finite = ~np.isnan(want["z"])
    np.testing.assert_allclose(got["z"][finite], want["z"][finite], rtol=1e-4, atol=1e-4)


def test_sort_and_rank_is_scipy_rankdata_with_ties_signed_zeros_and_non_finite_draws():
    """The packed-integer sort gives the sorted values and SciPy's average ranks exactly: tied
    runs, -0.0 tied with 0.0 (equal as floats), infinities in place, and NaNs (either sign) last,
    ranked after every other draw as ``rankdata(nan_policy="omit")`` leaves them out."""
    from scipy.stats import rankdata

    rng = np.random.default_rng(6)
    x = np.round(rng.normal(size=1001), 1).astype(np.float32)
    x[:5] = [0.0, -0.0, np.inf, -np.inf, 0.0]
    x[7], x[9] = np.nan, -np.nan
    ordered, rank = diagnostics.sort_and_rank(jnp.asarray(x))
    finite = ~np.isnan(x)
    np.testing.assert_array_equal(np.asarray(ordered)[: finite.sum()], np.sort(x[finite]))
    assert np.isnan(np.asarray(ordered)[finite.sum():]).all()
    np.testing.assert_array_equal(np.asarray(rank)[finite], rankdata(x[finite]))
    assert (np.asarray(rank)[~finite] > finite.sum()).all()


@pytest.mark.parametrize("name", list(_cases()))
def test_fused_summary_matches_arviz_and_numpy(name):
    """``diagnostics.summary`` (two sorts per series) returns what ArviZ returns for each
    diagnostic, and NumPy's quantiles: tolerances as in test_matches_arviz (float32 against
    float64); the tail ESS and the mean's MCSE are ESS-type sums like the bulk ESS."""
    x = _cases()[name]
    probs = (0.025, 0.05, 0.5, 0.9, 0.975)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = {"ess": az.ess(x, method="bulk"), "rhat": az.rhat(x, method="rank"),
                "mcse_sd": az.mcse(x, method="sd"), "mcse_mean": az.mcse(x, method="mean"),
                "tail": az.ess(x, method="tail")}
    mean, sd, quantiles, rhat, ess, mcse_sd, mcse_mean, tail = (
        np.asarray(a) for a in diagnostics.summary(jnp.asarray(x, jnp.float32), probs))
    assert mean == pytest.approx(x.mean(), rel=1e-5, abs=1e-6)
    assert sd == pytest.approx(x.std(ddof=1), rel=1e-5)
    np.testing.assert_allclose(quantiles, np.quantile(x, probs), rtol=1e-5, atol=1e-6)
    assert ess == pytest.approx(want["ess"], rel=1e-4)
    assert rhat == pytest.approx(want["rhat"], abs=1e-3)
    assert mcse_sd == pytest.approx(want["mcse_sd"], rel=1e-3)
    assert mcse_mean == pytest.approx(want["mcse_mean"], rel=1e-4)
    assert tail == pytest.approx(want["tail"], rel=1e-4)
