"""The checks used on the engine catch the errors they must: each is applied to a real answer,
which passes, and to the same answer perturbed (a posterior sd x 1.1 or x 0.9, a mean shifted by
0.1 sd, interval coverage 0.05 short, a transition with uniform in place of biased progressive
sampling between subtrees), which fails.

The perturbation -> check -> test that uses the check:
  sd x 1.1, sd x 0.9, mean + 0.1 sd  -> checks.moments   -> test_conjugate (every normal posterior)
  coverage - 0.05                    -> checks.coverage  -> test_nuts_intervals_have_exact_coverage
  draws x 1.1, x 0.9, + 0.1 sd       -> invariance_failures -> test_sampler (exact distribution kept)
  uniform progressive sampling       -> parity_failures  -> test_sampler (the transition is NumPyro's)
"""

import jax
import numpy as np
import pytest
from scipy import stats

from models import engine, nuts
from tests import checks, test_sampler

LEVELS = np.array(engine.QUANTILES)


# ------------------------------------------------------------------ posterior moments
@pytest.fixture(scope="module")
def conjugate():
    """The normal prior on known standard errors (test_conjugate's model): exact normal
    posteriors of 12 group effects, 4 chains x 1000 draws."""
    from tests.test_conjugate import SE, Y, _fit

    loc, scale = 1.0, 2.0
    precision = 1 / scale**2 + 1 / SE**2
    mean = (loc / scale**2 + Y / SE**2) / precision
    sd = 1 / np.sqrt(precision)
    fit = _fit("normal", {"y": Y, "se": SE}, {"loc": loc, "scale": scale, "sigma_scale": 1.0})
    return fit.sites["theta"], mean, sd


def _moment_failures(site, mean, sd):
    q, density = checks.normal_quantiles(mean, sd, LEVELS)
    return checks.moments(site, mean, sd, LEVELS, q, density)


def _scaled(site, factor):
    """The fit with every posterior sd times ``factor``: quantiles stretched about the mean."""
    mean = site.mean[:, None, :]
    return site._replace(sd=site.sd * factor, quantiles=mean + factor * (site.quantiles - mean))


def _shifted(site, shift):
    return site._replace(mean=site.mean + shift, quantiles=site.quantiles + shift[:, None, :])


def test_moments_pass_on_the_engine_and_fail_perturbed(conjugate):
    site, mean, sd = conjugate
    assert _moment_failures(site, mean, sd) == []
    # the power of the check on this fit, from its own ESS and MCSE: >= 0.95 against each error
    power = checks.power(site, sd)
    assert power["sd"] >= 0.95 and power["mean"] >= 0.95, power
    for name, perturbed in [("sd x 1.1", _scaled(site, 1.1)), ("sd x 0.9", _scaled(site, 0.9)),
                            ("mean + 0.1 sd", _shifted(site, 0.1 * sd)),
                            ("mean - 0.1 sd", _shifted(site, -0.1 * sd))]:
        assert _moment_failures(perturbed, mean, sd) != [], name


# ------------------------------------------------------------------ interval coverage
COVERAGE_REPLICATES, COVERAGE_GROUPS = 500, 20


@pytest.fixture(scope="module")
def coverage_fit():
    """theta_j ~ N(0, 1) drawn from the prior, y_j ~ N(theta_j, se_j^2) with known se_j: under
    the model the posterior intervals of every level cover theta_j with probability exactly
    their level, and the R x J indicators are independent (the posterior factorizes over j).
    NUTS's intervals are quantiles of N = 2 x 100 draws (``jnp.quantile``'s linear
    interpolation, at 1-based order statistic h = (N - 1) p + 1): for N independent draws of a
    continuous posterior E[F(X_(k))] = k / (N + 1), so such an interval covers with probability
    exactly level x (N - 1) / (N + 1) (0.9405 for 95 %); stationary, weakly correlated draws
    leave that unchanged to first order."""
    rng = np.random.default_rng(2024)
    se = np.linspace(0.5, 2.0, COVERAGE_GROUPS)
    theta = rng.normal(size=(COVERAGE_REPLICATES, COVERAGE_GROUPS))
    y = theta + se * rng.normal(size=theta.shape)
    data = {"y": y.astype(np.float32),
            "se": np.broadcast_to(se, y.shape).astype(np.float32)}
    keys = jax.random.split(jax.random.key(7), COVERAGE_REPLICATES)
    fit = engine.fit("normal", data, keys, {"loc": 0.0, "scale": 1.0, "sigma_scale": 1.0},
                     inference=engine.Inference(chains=2, warmup=100, draws=100))
    return fit.sites["theta"], theta


def _covered(site, theta, level, shrink=1.0):
    """Indicators that the central ``level`` interval covers theta; ``shrink`` scales its
    half-widths about the posterior median (a perturbation)."""
    lo, hi, mid = (int(np.argmin(np.abs(LEVELS - q))) for q in ((1 - level) / 2, (1 + level) / 2, 0.5))
    median = site.quantiles[:, mid]
    lower = median + shrink * (site.quantiles[:, lo] - median)
    upper = median + shrink * (site.quantiles[:, hi] - median)
    return (lower <= theta) & (theta <= upper)


N_DRAWS = 2 * 100


def _exact_coverage(level):
    return level * (N_DRAWS - 1) / (N_DRAWS + 1)


def test_nuts_intervals_have_exact_coverage(coverage_fit):
    """Every level within +-0.02 of its exact coverage over 500 x 20 = 10,000 independent
    indicators: the binomial sd is at most sqrt(0.25 / 10,000) = 0.005 (at the 50 % level;
    0.003 at 90 %), so 0.02 is 4 sds (a chance failure below 6e-5 per level) and a coverage
    0.05 short is 6 sds beyond it (never passes)."""
    site, theta = coverage_fit
    for level in engine.LEVELS:
        assert checks.coverage(_covered(site, theta, level), _exact_coverage(level)) == [], level


def test_coverage_check_fails_intervals_five_points_short(coverage_fit):
    """The same intervals narrowed about their median to cover 0.05 less: for the normal
    posteriors here, half-widths times z_((1 + level - 0.05) / 2) / z_((1 + level) / 2)."""
    site, theta = coverage_fit
    for level in engine.LEVELS:
        shrink = stats.norm.ppf((1 + level - 0.05) / 2) / stats.norm.ppf((1 + level) / 2)
        covered = _covered(site, theta, level, shrink)
        # the perturbation is what it says: 0.05 less, to the binomial noise (4 sds)
        assert abs(covered.mean() - (_exact_coverage(level) - 0.05)) < 0.02
        assert checks.coverage(covered, _exact_coverage(level)) != [], level


# ------------------------------------------------------------------ the transition
def test_invariance_check_fails_perturbed_draws(engine_chains):
    z, _ = engine_chains
    assert test_sampler.invariance_failures(z) == []
    means = np.array([[test_sampler.marginal(t, i)[1] for i in range(test_sampler.D)]
                      for t in test_sampler.TARGETS])[:, None, None, :]
    sds = np.sqrt([[test_sampler.marginal(t, i)[2] for i in range(test_sampler.D)]
                   for t in test_sampler.TARGETS])[:, None, None, :]
    for name, perturbed in [("x 1.1", means + 1.1 * (z - means)),
                            ("x 0.9", means + 0.9 * (z - means)),
                            ("+ 0.1 sd", z + 0.1 * sds)]:
        assert test_sampler.invariance_failures(perturbed) != [], name


def test_parity_check_fails_uniform_progressive_sampling(engine_chains, numpyro_chains,
                                                         starts, monkeypatch):
    """Uniform progressive sampling between subtrees (the subtree's share of the weight, in
    place of min(1, w_subtree / w_tree)) still leaves the target invariant, but moves less per
    transition: the parity test sees it, the invariance test need not."""
    ours, steps = engine_chains
    theirs, steps_theirs = numpyro_chains
    assert test_sampler.parity_failures(ours, steps, theirs, steps_theirs) == []
    monkeypatch.setattr(nuts, "_subtree_move_probability", lambda s, t: jax.nn.sigmoid(s - t))
    wrong, wrong_steps = test_sampler.run_engine(starts)
    failures = test_sampler.parity_failures(wrong, wrong_steps, theirs, steps_theirs)
    assert any("jump" in f for f in failures), failures

