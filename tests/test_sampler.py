"""models.nuts on its own: NumPyro's transition, the exact distribution kept, and its limits.

Parity and invariance run the transition at a fixed step size and mass matrix (no warmup) on
three 4-D targets at once (one compiled program each for the engine and for NumPyro): a
Gaussian with unequal scales, a multivariate Student t (5 df: heavy tails) and independent
log-Gamma(2) coordinates (skewed), each with an exact sampler, an exact CDF and exact moments.
C chains per target start from exact draws and take K transitions; the chains are independent,
so the last draws (and the last trees' step counts) are C independent draws of each quantity.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.hmc import hmc
from numpyro.infer.hmc_util import build_tree, velocity_verlet
from scipy import special, stats

from models import nuts
from tests import checks

D = 4
SCALES = np.array([1.0, 2.0, 0.5, 3.0])  # the Gaussian's sds
NU = 5.0  # the t's degrees of freedom
SHAPE = 2.0  # log of a Gamma(SHAPE, 1)
EPS = 0.4
INVERSE_MASS = np.array([1.0, 2.0, 0.5, 1.5])  # not the targets' variances: any fixed one will do
C, K = 2000, 3
TARGETS = ("gaussian", "student_t", "log_gamma")


def _potential(x, target):
    gauss = 0.5 * jnp.sum((x / SCALES) ** 2)
    student = 0.5 * (NU + D) * jnp.log1p(jnp.sum(x**2) / NU)
    log_gamma = jnp.sum(-SHAPE * x + jnp.exp(x))
    return jnp.stack([gauss, student, log_gamma])[target]


def exact_draws(rng, n):
    """(3, n, D) independent exact draws of the three targets."""
    gauss = rng.normal(size=(n, D)) * SCALES
    student = rng.normal(size=(n, D)) / np.sqrt(rng.chisquare(NU, size=(n, 1)) / NU)
    log_gamma = np.log(rng.gamma(SHAPE, size=(n, D)))
    return np.stack([gauss, student, log_gamma]).astype(np.float32)


def marginal(target, i):
    """(exact CDF, mean, variance, sd of the squared deviation) of coordinate i."""
    if target == "gaussian":
        s = SCALES[i]
        return stats.norm(scale=s).cdf, 0.0, s**2, np.sqrt(2) * s**2
    if target == "student_t":
        var = NU / (NU - 2)
        fourth = 3 * NU**2 / ((NU - 2) * (NU - 4))
        return stats.t(NU).cdf, 0.0, var, np.sqrt(fourth - var**2)
    var = special.polygamma(1, SHAPE)
    fourth = special.polygamma(3, SHAPE) + 3 * var**2  # cumulants of log Gamma: polygammas
    return (lambda x: stats.gamma(SHAPE).cdf(np.exp(x))), special.digamma(SHAPE), var, \
        np.sqrt(fourth - var**2)


def run_engine(z0, seed=0, draws=K, max_tree_depth=10):
    """The engine's chains (3 targets x C) from z0 (3, C, D): positions (3, C, draws, D) and
    leapfrog steps (3, C, draws)."""
    n_targets, n_chains = z0.shape[:2]

    def value_and_grad(z, rows):
        one = jax.value_and_grad(_potential)
        return jax.vmap(jax.vmap(one, in_axes=(0, None)))(z, rows)

    seeds = jax.random.key_data(jax.random.split(jax.random.key(seed), n_targets * n_chains))
    settings = nuts.Settings(0, draws, 0.8, max_tree_depth)
    run = jax.jit(functools.partial(
        nuts.sample, value_and_grad, settings=settings, rows=n_targets, step_size=EPS,
        inverse_mass_matrix=INVERSE_MASS,
    ))
    trace = run(jnp.asarray(z0), seeds.reshape(n_targets, n_chains, 2))
    return np.asarray(trace.z), np.asarray(trace.num_steps)


def run_numpyro(z0, seed=1, draws=K):
    """NumPyro's NUTS kernel (``numpyro.infer.hmc.hmc``), the same starts, step size and mass
    matrix: (3, C, draws, D) and (3, C, draws)."""

    def chain(target, z, key):
        init, step = hmc(potential_fn=lambda x: _potential(x, target), algo="NUTS")
        state = init(z, num_warmup=0, step_size=EPS, inverse_mass_matrix=jnp.asarray(INVERSE_MASS),
                     adapt_step_size=False, adapt_mass_matrix=False, rng_key=key)

        def body(state, _):
            state = step(state)
            return state, (state.z, state.num_steps)

        return jax.lax.scan(body, state, None, length=draws)[1]

    n_targets, n_chains = z0.shape[:2]
    keys = jax.random.split(jax.random.key(seed), n_targets * n_chains).reshape(n_targets, n_chains)
    targets = jnp.broadcast_to(jnp.arange(n_targets)[:, None], (n_targets, n_chains))
    z, steps = jax.jit(jax.vmap(jax.vmap(chain)))(targets, jnp.asarray(z0), keys)
    return np.asarray(z), np.asarray(steps)


def squared_jump(z, target):
    """Squared distance of the last transition, coordinates in units of their exact sds."""
    var = np.array([marginal(target, i)[2] for i in range(D)])
    return (((z[:, -1] - z[:, -2]) ** 2) / var).sum(axis=1)


def invariance_failures(z) -> list[str]:
    """The last draws of chains started at exact draws, against the exact targets: per target and
    coordinate, the KS test and the first two moments (z = 5 each; 12 KS tests at 1e-6, 24
    moment tests at 5.7e-7: a chance failure has probability below 3e-5)."""
    out = []
    for t, target in enumerate(TARGETS):
        for i in range(D):
            cdf, mean, var, sd_sq = marginal(target, i)
            x = z[t, :, -1, i]
            out += [f"{target}[{i}] {f}" for f in checks.exact_distribution(x, cdf)]
            out += [f"{target}[{i}] {f}" for f in checks.one_sample_mean(x, mean, np.sqrt(var))]
            out += [f"{target}[{i}] var {f}"
                    for f in checks.one_sample_mean((x - mean) ** 2, var, sd_sq)]
    return out


def parity_failures(ours, steps_ours, theirs, steps_theirs) -> list[str]:
    """The engine's chains against NumPyro's: per target the distribution of the last tree's
    leapfrog steps (chi-square, 1e-6), the mean squared jump of the last transition (how far
    a transition moves: what progressive sampling decides), and per coordinate the mean and
    the mean squared deviation of the last draws (Welch z = 5)."""
    out = []
    for t, target in enumerate(TARGETS):
        out += [f"{target} {f}" for f in checks.same_counts(steps_ours[t, :, -1], steps_theirs[t, :, -1])]
        out += [f"{target} jump {f}" for f in checks.two_sample_mean(
            squared_jump(ours[t], target), squared_jump(theirs[t], target))]
        for i in range(D):
            mean = marginal(target, i)[1]
            a, b = ours[t, :, -1, i], theirs[t, :, -1, i]
            out += [f"{target}[{i}] {f}" for f in checks.two_sample_mean(a, b)]
            out += [f"{target}[{i}] var {f}"
                    for f in checks.two_sample_mean((a - mean) ** 2, (b - mean) ** 2)]
    return out


# the fixtures ``starts``, ``engine_chains`` and ``numpyro_chains`` (tests/conftest.py, shared
# with tests/test_power.py): exact_draws(rng 20, C), then run_engine and run_numpyro from them


def test_the_transition_keeps_the_exact_distribution(engine_chains):
    """Geweke's check of invariance: chains started at exact draws and moved by K transitions
    are still exact draws. Power (tests/test_power.py): draws scaled by 1.1 about the mean fail
    the second-moment test of the Gaussian coordinates (a shift of 0.21 sigma^2 against an se of
    sqrt(2 / 2000) sigma^2: 6.6 se, beyond z = 5 with probability 0.95 in each of 4
    coordinates; by 0.9: 6.0 se, 0.84 each, 0.9993 for one of 4); draws shifted by 0.1 sd fail
    the mean test (0.1 sqrt(2000) = 4.5 se: 0.30 in each of 12 coordinates, 0.986 for one)."""
    z, _ = engine_chains
    assert np.isfinite(z).all()
    assert invariance_failures(z) == []


def test_the_transition_is_numpyros(engine_chains, numpyro_chains):
    """At the same step size and mass matrix, the engine's transition and NumPyro's give the
    same leapfrog steps, the same jumps and the same moments, on each target. Power: with
    2000 chains a side, the squared jump (coefficient of variation about 1 on the Gaussian and
    log-Gamma targets, 2 on the t) has a two-sample se of about 3 % of its mean (6 % on the t),
    so a change of (5 + 1.645) x 3 % = 20 % in how far a transition moves is caught with
    probability 0.95; uniform progressive sampling between subtrees in place of the biased one
    moves 31-39 % less, 6.7 to 12.4 se (tests/test_power.py shows it failing here)."""
    ours, steps_ours = engine_chains
    theirs, steps_theirs = numpyro_chains
    assert parity_failures(ours, steps_ours, theirs, steps_theirs) == []
    # the trees are not trivial: several depths occur on every target
    for t in range(len(TARGETS)):
        assert len(np.unique(nuts.tree_depth(steps_ours[t, :, -1]))) >= 3


# ------------------------------------------------------------------ limits and defects
def test_max_tree_depth_is_bounded_by_the_random_number_counters():
    """A tree of depth D numbers its leaves 0 .. 2^D - 2 in the counter of their random numbers;
    the momentum's numbers start at counter _MOMENTUM. MAX_TREE_DEPTH is the deepest tree whose
    leaves stay below it, and Settings refuses anything deeper."""
    assert 2**nuts.MAX_TREE_DEPTH - 2 < nuts._MOMENTUM <= 2 ** (nuts.MAX_TREE_DEPTH + 1) - 2
    assert nuts.Settings(10, 10, 0.8, nuts.MAX_TREE_DEPTH).max_tree_depth == nuts.MAX_TREE_DEPTH
    for bad in (0, nuts.MAX_TREE_DEPTH + 1, 33):
        with pytest.raises(ValueError, match="max_tree_depth"):
            nuts.Settings(10, 10, 0.8, bad)


def test_tree_depth_from_the_step_count_is_numpyros():
    """NumPyro's build_tree records each tree's depth; ``nuts.tree_depth`` of its number of
    leapfrog steps must give it back, including trees that reach the maximum depth with a last
    doubling cut short (a U-turn or a divergence inside it), which ``steps == 2^D - 1`` misses.
    A 4-D Gaussian with a small step size and max depth 4 makes many of both kinds."""
    max_depth = 4
    inverse_mass = jnp.ones(D)

    def potential(x):
        return _potential(x, 0)

    vv_init, vv_update = velocity_verlet(potential, lambda m, r: 0.5 * jnp.sum(m * r**2))

    def one(key, eps):
        k_z, k_r, k_tree = jax.random.split(key, 3)
        z = jax.random.normal(k_z, (D,)) * SCALES
        r = jax.random.normal(k_r, (D,))
        tree = build_tree(vv_update, lambda m, r: 0.5 * jnp.sum(m * r**2), vv_init(z, r),
                          inverse_mass, eps, k_tree, max_tree_depth=max_depth)
        return tree.depth, tree.num_proposals

    keys = jax.random.split(jax.random.key(0), 4000)
    eps = jnp.linspace(0.1, 3.0, 4000)  # from trees that reach the maximum to divergent ones
    depth, steps = map(np.asarray, jax.jit(jax.vmap(one))(keys, eps))
    np.testing.assert_array_equal(np.asarray(nuts.tree_depth(steps)), depth)
    at_max = depth == max_depth
    assert np.sum(at_max & (steps < 2**max_depth - 1)) >= 50  # cut short, still at the maximum
    assert np.sum(at_max & (steps == 2**max_depth - 1)) >= 50
    np.testing.assert_array_equal(np.asarray(nuts.hit_max_tree_depth(steps, max_depth)), at_max)


def test_a_start_where_the_density_is_not_finite_is_redrawn():
    """A target whose log density is NaN where x_0 > 1 (a standard normal cut there): starts in
    that region are redrawn uniformly in [-2, 2]^d until finite, as NumPyro's init_to_uniform
    does, and the others are kept as they are. The redrawn starts are then uniform on
    [-2, 1] x [-2, 2]^(d-1) (KS, p > 1e-6), and their chains move; without the redraw (the
    sampler given ``init_radius=None``) every transition diverges and every draw is the start."""
    n = 1000

    def potential(x):
        return 0.5 * jnp.sum(x**2) + jnp.where(x[0] > 1.0, jnp.nan, 0.0)

    def value_and_grad(z, rows):
        return jax.vmap(jax.vmap(jax.value_and_grad(potential)))(z)

    rng = np.random.default_rng(5)
    z0 = rng.uniform(-0.5, 0.5, size=(1, n, D)).astype(np.float32)
    z0[0, : n // 2, 0] = 1.5  # half of them where the density is NaN
    seeds = jax.random.key_data(jax.random.split(jax.random.key(1), n)).reshape(1, n, 2)
    z = np.asarray(jax.jit(nuts.finite_start, static_argnums=0)(value_and_grad, z0, seeds))
    np.testing.assert_array_equal(z[0, n // 2:], z0[0, n // 2:])
    redrawn = z[0, : n // 2]
    assert (redrawn[:, 0] <= 1.0).all() and (np.abs(redrawn) <= 2.0).all()
    assert stats.kstest(redrawn[:, 0], stats.uniform(-2, 3).cdf).pvalue > 1e-6
    assert stats.kstest(redrawn[:, 1:].ravel(), stats.uniform(-2, 4).cdf).pvalue > 1e-6

    # the sampler redraws by itself: chains given a start in the NaN region move
    settings = nuts.Settings(20, 20, 0.8, 5)
    start = np.full((1, 4, D), 1.5, np.float32)
    run = jax.jit(functools.partial(nuts.sample, value_and_grad, settings=settings, rows=1))
    draws = np.asarray(run(jnp.asarray(start), seeds[:, :4]).z)
    assert np.isfinite(draws).all() and (draws[..., 0] <= 1.0).all()
    assert (np.ptp(draws, axis=2) > 0).all()
