"""Every scenario's data and truth have the distributions its docstring claims.

Each check uses R x J independent groups (replicates and the groups within one are independent
given the scenario's parameters). Kolmogorov-Smirnov tests use a false-alarm level of 1e-6, and
moment checks allow 5 standard errors (a chance failure ~6e-7 each), so a correct simulator
passes; each file's claim also has a power check that the same draws reject the nearest wrong
distribution.
"""

import numpy as np
import pytest
from scipy import special, stats

import sim
from sim import unbalanced

R = 2000
BASE = dict(n_groups=10, group_size=8, tau=2.0, sigma=3.0, mu=1.5)
ALPHA = 1e-6


def _effects(name, **params):
    _, truth = sim.simulate(name, 5, R, **{**BASE, **params})
    return (truth["theta"] - BASE["mu"]) / BASE["tau"], truth


def test_t_effects_are_a_t_rescaled_to_sd_tau():
    z, truth = _effects("t_effects", df=3.0)
    t = z.ravel() / np.sqrt((3.0 - 2.0) / 3.0)  # back to a standard t_3
    assert stats.kstest(t, "t", args=(3.0,)).pvalue > ALPHA
    assert np.all(truth["tau"] == 2.0)
    # power: the same effects are not normal with sd tau
    assert stats.kstest(z.ravel(), "norm").pvalue < ALPHA


def test_sparse_effects_are_mu_or_a_fixed_distance_away():
    z, _ = _effects("sparse", fraction=0.2)
    away = np.abs(z.ravel()) > 0
    np.testing.assert_allclose(np.abs(z.ravel()[away]), 1 / np.sqrt(0.2), rtol=1e-5)
    n = away.size  # the share away is Binomial(n, 0.2) / n
    assert abs(away.mean() - 0.2) < 5 * np.sqrt(0.2 * 0.8 / n)
    # both sides equally likely, so the effects have mean mu and sd tau
    signs = np.sign(z.ravel()[away])
    assert abs(signs.mean()) < 5 / np.sqrt(away.sum())
    assert abs((z**2).mean() - 1.0) < 5 * np.sqrt((1 / 0.2 - 1) / n)  # Var(z^2) = 1/f - 1


def test_bimodal_effects_are_the_two_component_mixture():
    sep = 0.9
    z, _ = _effects("bimodal", separation=sep)
    w = np.sqrt(1 - sep**2)

    def mixture_cdf(x):
        return 0.5 * stats.norm.cdf((x - sep) / w) + 0.5 * stats.norm.cdf((x + sep) / w)

    assert stats.kstest(z.ravel(), mixture_cdf).pvalue > ALPHA
    assert abs((z**2).mean() - 1.0) < 5 * np.sqrt(2 * (1 - sep**4) / z.size)  # sd is tau
    assert stats.kstest(z.ravel(), "norm").pvalue < ALPHA  # power: not normal


def test_outlier_is_the_last_group_the_others_normal():
    z, _ = _effects("outlier", shift=4.0)
    np.testing.assert_allclose(z[:, -1], 4.0, rtol=1e-5)
    assert stats.kstest(z[:, :-1].ravel(), "norm").pvalue > ALPHA
    assert stats.kstest(z.ravel(), "norm").pvalue < ALPHA  # power: the outlier shows


@pytest.mark.parametrize("mean_size", [3, 11, 40])
def test_unbalanced_sizes_are_rescaled_radon_counties(mean_size):
    data, truth = sim.simulate("unbalanced", 5, R, **{**BASE, "group_size": mean_size})
    n = data["n"].ravel()
    c = unbalanced.county_sizes().astype(float)
    assert c.sum() == 919 and len(c) == 85  # Gelman & Hill's Minnesota data
    scaled = (c - 1) * (mean_size - 1) / (c.mean() - 1)
    # E[n] = group_size exactly; Var(n) = Var over counties of the scaled size + the rounding's
    frac = scaled - np.floor(scaled)
    var_n = scaled.var() + (frac * (1 - frac)).mean()
    assert abs(n.mean() - mean_size) < 5 * np.sqrt(var_n / n.size)
    # the share of groups of size one, from the county sizes directly
    p_one = np.mean(np.clip(1 - scaled, 0, 1))
    assert abs((n == 1).mean() - p_one) < 5 * np.sqrt(p_one * (1 - p_one) / n.size) + 1e-12
    # skewed like the counties: the mean is well above the median for every mean size
    assert np.median(n) < n.mean()
    # and the sufficient statistics follow their sizes: ss / sigma^2 ~ chi^2_{n-1}
    u = stats.chi2.cdf(data["ss"] / 9.0, np.maximum(data["n"] - 1, 1))[data["n"] > 1]
    assert stats.kstest(u, "uniform").pvalue > ALPHA
    zbar = (data["ybar"] - truth["theta"]) / (3.0 / np.sqrt(data["n"]))
    assert stats.kstest(zbar.ravel(), "norm").pvalue > ALPHA


def test_known_sigma_standard_errors_and_estimates():
    data, truth = sim.simulate("known_sigma", 5, R, **{**BASE, "se_ratio": 2.0})
    se = data["se"][0]
    np.testing.assert_allclose(np.exp(np.log(se).mean()), 3.0 / np.sqrt(8), rtol=1e-5)
    np.testing.assert_allclose(se.max() / se.min(), 2.0, rtol=1e-5)
    assert np.all(np.diff(np.log(se)) > 0) and np.all(data["se"] == se)  # fixed, spread evenly
    assert stats.kstest(((data["y"] - truth["theta"]) / data["se"]).ravel(), "norm").pvalue > ALPHA
    assert stats.kstest(((truth["theta"] - 1.5) / 2.0).ravel(), "norm").pvalue > ALPHA
    assert "sigma" not in truth  # nothing to estimate


def test_binomial_counts_and_logit_scale_truth():
    data, truth = sim.simulate("binomial", 5, R, n_groups=10, group_size=30, tau=1.0, mu=-1.0)
    np.testing.assert_allclose(truth["p"], special.expit(truth["theta"]), rtol=1e-5)
    assert stats.kstest((truth["theta"] + 1.0).ravel(), "norm").pvalue > ALPHA
    s, n, p = data["successes"], data["trials"], truth["p"]
    assert np.all(n == 30) and np.all((0 <= s) & (s <= n))
    # given p, successes ~ Binomial(30, p): the randomized PIT is uniform
    u = np.random.default_rng(0).uniform(size=s.shape)
    pit = stats.binom.cdf(s - 1, n, p) + u * stats.binom.pmf(s, n, p)
    assert stats.kstest(pit.ravel(), "uniform").pvalue > ALPHA
    # power: the PIT against the wrong rate (p shifted by 0.05) is far from uniform
    wrong = np.clip(p + 0.05, 0, 1)
    pit_wrong = stats.binom.cdf(s - 1, n, wrong) + u * stats.binom.pmf(s, n, wrong)
    assert stats.kstest(pit_wrong.ravel(), "uniform").pvalue < ALPHA


def test_every_scenario_ships_a_yaml_and_common_random_numbers_hold():
    from pathlib import Path

    import yaml

    conf = Path(__file__).resolve().parent.parent / "conf" / "scenario"
    assert sorted(p.stem for p in conf.glob("*.yaml")) == sim.available()
    for name in sim.available():
        params = yaml.safe_load((conf / f"{name}.yaml").read_text())
        assert params.pop("name") == name
        a, _ = sim.simulate(name, 3, 5, **params)
        b, _ = sim.simulate(name, 3, np.array([3, 4]), **params)
        for key in a:
            np.testing.assert_array_equal(a[key][3:], b[key])


def test_the_documented_example_scenario_is_picked_up_with_no_other_change(tmp_path):
    """The two files of docs/scenarios.md's "Adding a scenario", dropped into a copy of the
    project, run with ``scenario=uniform_effects`` as they are: nothing else is edited."""
    import os
    import re
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd

    root = Path(__file__).resolve().parent.parent
    page = (root / "docs" / "scenarios.md").read_text()
    section = page[page.index("## Adding a scenario"):]
    section = section[: section.index("\n## ", 1)]
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    yaml_text = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    copy = tmp_path / "project"
    for folder in ("sim", "models", "runs", "conf"):
        shutil.copytree(root / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "sim" / "uniform_effects.py").write_text(python)
    (copy / "conf" / "scenario" / "uniform_effects.yaml").write_text(yaml_text)
    cmd = [sys.executable, "-m", "runs.study", "scenario=uniform_effects", "scenario.n_groups=50",
           "scenario.group_size=3", "scenario.tau=2", "prior=no_pooling_ml", "replicates=4",
           f"results_root={tmp_path / 'results'}", "compilation_cache=null"]
    done = subprocess.run(cmd, cwd=copy, env={**os.environ, "PYTHONPATH": str(copy)},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    [result] = (tmp_path / "results" / "default").glob("uniform_effects-*.parquet")
    df = pd.read_parquet(result)
    theta = df.loc[df.param == "theta", "true_value"].to_numpy()
    assert len(theta) == 4 * 50 and set(df["scenario"]) == {"uniform_effects"}
    half = np.sqrt(3.0) * 2.0  # every truth inside the support, and it is filled out
    assert np.all(np.abs(theta) <= half + 1e-5) and np.abs(theta).max() > 0.8 * half
    assert stats.kstest(theta, "uniform", args=(-half, 2 * half)).pvalue > ALPHA
