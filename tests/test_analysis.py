"""Performance measures and their Monte Carlo standard errors, against a hand computation and
against the spread of the estimates over repeated studies."""

import numpy as np
import pandas as pd
import pytest

from analysis.measures import summarize


def _rows(rng, n_rep, n_groups, shared_sd, own_sd, post_sd, job="a"):
    """Synthetic result rows: posterior means err by a shared (per-replicate) and an own error."""
    shared = rng.normal(0, shared_sd, size=(n_rep, 1))
    truth = rng.normal(size=(n_rep, n_groups))
    mean = truth + shared + rng.normal(0, own_sd, size=(n_rep, n_groups))
    half = 1.6448536269514722 * post_sd
    df = pd.DataFrame({
        "study": "s", "scenario": "normal_normal", "prior": "p", "replicate": np.repeat(np.arange(n_rep), n_groups),
        "param": "theta", "index": np.tile(np.arange(n_groups), n_rep), "true_value": truth.ravel(),
        "posterior_mean": mean.ravel(), "posterior_sd": post_sd, "lower_90": mean.ravel() - half,
        "upper_90": mean.ravel() + half, "status": "ok", "config_hash": job,
    })
    return df


def test_measures_equal_a_direct_computation():
    rng = np.random.default_rng(0)
    df = _rows(rng, 7, 4, 0.3, 0.5, 0.6)
    s = summarize(df).iloc[0]
    err = (df.posterior_mean - df.true_value).to_numpy().reshape(7, 4)
    m_r = (err**2).mean(axis=1)
    assert s.n_replicates == 7
    assert s.rmse == pytest.approx(np.sqrt(m_r.mean()))
    assert s.rmse_mcse == pytest.approx(m_r.std(ddof=1) / np.sqrt(7) / (2 * np.sqrt(m_r.mean())))
    assert s.bias == pytest.approx(err.mean())
    cover = (np.abs(err) <= 1.6448536269514722 * 0.6).mean(axis=1)
    assert s.coverage_90 == pytest.approx(cover.mean())
    assert s.coverage_90_mcse == pytest.approx(cover.std(ddof=1) / np.sqrt(7))
    assert s.posterior_variance == pytest.approx(0.36)


def test_mcse_matches_the_spread_over_repeated_studies():
    """Brute force: repeat a study 400 times; the sd of each estimate across repeats is what its
    MCSE claims to estimate. Groups share an error within a replicate, so an MCSE that treated
    the 10 groups as independent would be ~1.6x too small; here it must be within 15 %: the
    relative sd of an sd estimated from 400 repeats is ~1/sqrt(800) = 3.5 %, and the MCSEs
    themselves are estimated from 30 replicates each (~13 % relative sd, averaged over 400)."""
    rng = np.random.default_rng(1)
    estimates, mcses = [], []
    for _ in range(400):
        s = summarize(_rows(rng, 30, 10, 0.4, 0.5, 0.6)).iloc[0]
        estimates.append(s[["rmse", "coverage_90", "bias"]].to_numpy(float))
        mcses.append(s[["rmse_mcse", "coverage_90_mcse", "bias_mcse"]].to_numpy(float))
    spread = np.std(estimates, axis=0, ddof=1)
    claimed = np.sqrt(np.mean(np.square(mcses), axis=0))
    np.testing.assert_allclose(claimed, spread, rtol=0.15)


def test_one_row_per_job():
    rng = np.random.default_rng(2)
    df = pd.concat([_rows(rng, 5, 3, 0.1, 0.2, 0.3, job="a"), _rows(rng, 5, 3, 0.1, 0.2, 0.3, job="b")])
    out = summarize(df)
    assert sorted(out["config_hash"]) == ["a", "b"] and (out["n_replicates"] == 5).all()


def test_figure_lines_never_merge_two_jobs():
    """A setting that varies within a spec (here tau_family) splits its line; a setting that only
    differs between specs (parameterization) leaves the plain spec names."""
    from analysis.figures import _label_lines

    table = pd.DataFrame({
        "prior": ["flat", "hierarchical", "hierarchical"],
        "prior_parameterization": ["centered", "noncentered", "noncentered"],
        "prior_tau_family": [None, "half_normal", "half_cauchy"],
        "tau": [1.0, 1.0, 1.0],
    })
    lines = _label_lines(table, list(table.columns))["line"].tolist()
    assert lines == ["flat", "hierarchical, tau_family=half_normal",
                     "hierarchical, tau_family=half_cauchy"]
