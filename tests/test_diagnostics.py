"""models.diagnostics returns ArviZ's rank-normalized split R-hat and bulk ESS on the same draws."""

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
    got_ess = float(diagnostics.ess_bulk(jnp.asarray(x, jnp.float32)))
    got_rhat = float(diagnostics.rhat_rank(jnp.asarray(x, jnp.float32)))
    # float32 against ArviZ's float64: ranks are exact, sums agree to ~1e-6 relative; folded
    # draws with ties ("stuck_repeats") can order differently in float32, moving R-hat by 1e-3.
    assert got_ess == pytest.approx(want_ess, rel=1e-4)
    assert got_rhat == pytest.approx(want_rhat, abs=1e-3)


def test_bad_mixing_is_flagged():
    rng = np.random.default_rng(2)
    stuck = rng.normal(size=(4, 500)) + np.array([[0], [0], [0], [3]])
    assert float(diagnostics.rhat_rank(jnp.asarray(stuck))) > 1.1
    assert float(diagnostics.ess_bulk(jnp.asarray(stuck))) < 100
