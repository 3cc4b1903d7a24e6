"""The normal-normal simulator: its truth and data have the distributions they claim, and the
seeding rule (data depend only on seed, scenario parameters and replicate index) holds."""

import numpy as np
import pytest
from scipy import stats

import sim

PARAMS = dict(n_groups=40, group_size=6, tau=2.0, sigma=3.0, mu=1.5)
R = 500  # 500 x 40 = 20,000 groups


@pytest.fixture(scope="module")
def draws():
    return sim.simulate("normal_normal", 7, R, **PARAMS)


def test_shapes_and_truth(draws):
    data, truth = draws
    assert data["ybar"].shape == data["n"].shape == data["ss"].shape == (R, 40)
    assert truth["theta"].shape == (R, 40)
    assert np.all(truth["mu"] == 1.5) and np.all(truth["tau"] == 2.0) and np.all(data["n"] == 6)


def test_group_effects_are_normal_mu_tau(draws):
    _, truth = draws
    theta = truth["theta"].ravel()
    n = theta.size
    # mean: sd of the sample mean is tau / sqrt(n) = 0.014; 5 of them is far past chance
    assert abs(theta.mean() - 1.5) < 5 * 2.0 / np.sqrt(n)
    # variance: sd of the sample variance ~ tau^2 sqrt(2 / n) = 0.04
    assert abs(theta.var(ddof=1) - 4.0) < 5 * 4.0 * np.sqrt(2 / n)
    # shape: Kolmogorov-Smirnov against N(1.5, 2^2); false-alarm rate 1e-6
    assert stats.kstest(theta, "norm", args=(1.5, 2.0)).pvalue > 1e-6


def test_sufficient_statistics_have_their_sampling_distributions(draws):
    data, truth = draws
    z = (data["ybar"] - truth["theta"]) / (3.0 / np.sqrt(6))  # should be N(0, 1)
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-6
    chi2 = data["ss"] / 3.0**2  # should be chi^2 with n - 1 = 5 degrees of freedom
    assert stats.kstest(chi2.ravel(), "chi2", args=(5,)).pvalue > 1e-6
    # independence of ybar and ss (Cochran): correlation of |z| and chi2 within 5 / sqrt(n)
    r = np.corrcoef(np.abs(z.ravel()), chi2.ravel())[0, 1]
    assert abs(r) < 5 / np.sqrt(z.size)


def test_replicate_depends_only_on_its_index_seed_and_parameters():
    a, _ = sim.simulate("normal_normal", 3, 6, **PARAMS)
    b, _ = sim.simulate("normal_normal", 3, np.array([4, 5]), **PARAMS)
    np.testing.assert_array_equal(a["ybar"][4:], b["ybar"])
    # the same parameters written as int or float name the same cell
    c, _ = sim.simulate("normal_normal", 3, 6, **{**PARAMS, "tau": 2})
    np.testing.assert_array_equal(a["ybar"], c["ybar"])
    # another seed, or another parameter value, gives other data
    d, _ = sim.simulate("normal_normal", 4, 6, **PARAMS)
    e, _ = sim.simulate("normal_normal", 3, 6, **{**PARAMS, "sigma": 3.5})
    assert not np.allclose(a["ybar"], d["ybar"]) and not np.allclose(a["ss"], e["ss"])


def test_group_size_one_has_no_within_group_information():
    data, _ = sim.simulate("normal_normal", 1, 3, **{**PARAMS, "group_size": 1})
    assert np.all(data["ss"] == 0)


def test_unknown_scenario_names_the_known_ones():
    with pytest.raises(ValueError, match="known scenarios: .*normal_normal"):
        sim.load("nope")
