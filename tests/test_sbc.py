"""Simulation-based calibration (Talts et al. 2018) of every prior spec that makes draws.

Each spec's own prior and likelihood generate the data (runs.sbc); the rank of every true value
among 99 thinned posterior draws must be uniform. The test (analysis.sbc.check) is a chi-square on
10 bins per tested estimand with a Bonferroni threshold alpha / k, alpha = 0.001: a correct spec
fails with probability at most 0.001, so this file's ~12 fast checks raise a false alarm with
probability below 1.2 % in all (and the seeds are fixed, so a pass stays a pass). A wrong prior is
caught with p-values of 1e-40 to 1e-90 at this size (the misscaled-prior test).

Sizes: 100 data sets of J = 8 groups, 2 chains x (200 warmup + 250 draws): ~30 s a spec. The slow
variant runs 400 data sets, 4 chains, every data form (known sigma, sufficient statistics,
binomial; ``make test-slow``).
"""

import numpy as np
import pytest

from analysis.sbc import check
from models import engine
from runs import sbc

FAST = dict(replicates=100, n_groups=8, group_size=5, rank_draws=99, seed=7,
            inference=engine.Inference(chains=2, warmup=200, draws=250))
SLOW = dict(replicates=400, n_groups=8, group_size=5, rank_draws=99, seed=8,
            inference=engine.Inference(chains=4, warmup=500, draws=500))


def _assert_calibrated(table):
    result = check(table, alpha=1e-3)
    assert result["passes"].all(), result[["prior", "form", "param", "pvalue", "threshold"]]
    return result


@pytest.mark.parametrize("prior", sbc.drawing_priors())
def test_every_spec_is_calibrated_known_sigma(prior):
    _assert_calibrated(sbc.calibrate(sbc.prior_config(prior), "known_sigma", **FAST))


def test_hierarchical_is_calibrated_with_unknown_sigma():
    """The sufficient-statistics likelihood (ybar, n, ss with sigma unknown) too."""
    result = _assert_calibrated(sbc.calibrate(sbc.prior_config("hierarchical"), "sufficient", **FAST))
    assert "sigma" in set(result["param"])


def test_hierarchical_is_calibrated_on_binomial_data():
    """Binomial counts (theta on the logit scale), fitted in the partially centered form that
    ``auto`` picks for them; flat, which declines data sets with no or all successes, is not
    calibrated on them, and says so before any fit."""
    prior = sbc.prior_config("hierarchical")
    assert engine.form(prior["spec"], "auto", {"successes": np.ones((1, 4), int),
                                               "trials": np.full((1, 4), 5)},
                       prior["hyper"]) == "partial"
    _assert_calibrated(sbc.calibrate(prior, "binomial", **FAST))
    with pytest.raises(ValueError, match="flat declines some binomial data sets"):
        sbc.calibrate(sbc.prior_config("flat"), "binomial", **FAST)


def test_misscaled_prior_fails_the_same_test():
    """Data drawn with tau ~ half-normal(0, 5), fitted with half-normal(0, 1): caught."""
    prior = sbc.prior_config("hierarchical")
    wrong = {**prior["hyper"], "tau_scale": 1.0}
    result = check(sbc.calibrate(prior, "known_sigma", **FAST, fit_hyper=wrong), alpha=1e-3)
    assert not result["spec_passes"].any()
    assert result.loc[result["param"] == "tau", "pvalue"].item() < 1e-10


@pytest.mark.slow
@pytest.mark.parametrize("form", sbc.FORMS)
@pytest.mark.parametrize("prior", sbc.drawing_priors())
def test_every_spec_is_calibrated_large(prior, form):
    config = sbc.prior_config(prior)
    if sbc.form_blocker(config["spec"], form) is not None:
        pytest.skip(sbc.form_blocker(config["spec"], form))
    _assert_calibrated(sbc.calibrate(config, form, **SLOW))


def test_uniformity_test_and_histograms(tmp_path):
    """The chi-square p-value: ~1 for ranks spread exactly evenly, tiny for ranks piled at the
    ends (a posterior too narrow); the figure is written."""
    import numpy as np
    import pandas as pd

    from analysis.sbc import draw, uniformity_pvalue

    even = np.arange(400) % 100
    assert uniformity_pvalue(even, 99) > 0.999
    piled = np.concatenate([np.zeros(100, int), np.full(100, 99), even[:200]])
    assert uniformity_pvalue(piled, 99) < 1e-20
    with pytest.raises(ValueError, match="not divisible"):
        uniformity_pvalue(even, 100)
    table = pd.DataFrame({"prior": "p", "form": "known_sigma", "param": "theta", "index": 0,
                          "rank": even, "rank_draws": 99, "ess_bulk": 500.0, "status": "ok"})
    assert check(table)["spec_passes"].all()
    assert draw(table, tmp_path / "sbc.png").exists()
