"""The exact posterior of a collapsed fit, by quadrature over what is left after the collapse.

Where ``models.collapse`` leaves at most two scalar latent values (tau and sigma: ``flat``,
``normal``, ``hierarchical`` with every tau family and a normal or flat mu, ``normal_inv_chi2``;
known or unknown sigma), everything else is Gaussian given them, so the posterior is a mixture
of normals over a grid of those values (BDA3 §5.4, eq. 5.21 and its extension to sigma):

    p(h | y) ∝ exp(-U(h))   on the sampler's own unconstrained scale h (log tau, log sigma, ...,
                            with U the collapsed model's potential energy, Jacobian included),
    E[theta_j | y] = sum_h w_h m_j(h),   Var[theta_j | y] = sum_h w_h (v_j(h) + B_j(h)^2 V(h)
                                          + m_j(h)^2) - E[theta_j | y]^2,

and likewise for mu (mu_hat(h), V(h)) and for tau and sigma themselves. P(x <= x_true | y) is the
mixture's normal CDF (theta, mu) or the grid's cumulative weight (tau, sigma), which gives the
exact coverage of a central interval of any level. The weights w_h are trapezoid weights on a
grid refined twice around the mass (points within e^-40 of the largest value), in double
precision: the result is exact to far below any Monte Carlo error. A spec with more latent
values after the collapse (local scales, a t's mixing weights and degrees of freedom) has no
such reduction: ``moments`` returns None for it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr
from numpyro.infer.util import constrain_fn, potential_energy

from models import collapse, engine

SPAN = 30.0
"""The first grid spans (-SPAN, SPAN) of each unconstrained value around the estimates' scale."""
POINTS = (61, 41)
"""Points per axis of the coarse grid and of the first refinement around the mass."""
FINAL = {1: 161, 2: 101}
"""Points per axis of the last grid, by the number of latent values: over the mass within e^-KEEP
of the peak, a step of a fifth to a third of a posterior sd (agreement with an independent
quadrature to 1e-8 and better, ``tests/test_exact.py``)."""
KEEP = 40.0
"""A refinement keeps the points whose log density is within KEEP of the largest."""


def _layout(spec, hyper, data):
    """(form, static hyperparameters, latent names) where the spec's posterior on ``data`` (a
    batch) has this reduction, else None."""
    if engine.method(spec) != "nuts":
        return None
    first = {k: np.asarray(v)[0] for k, v in data.items()}
    static, dynamic = engine._split_hyper(hyper)
    try:
        form = engine.resolve(spec, "auto", first, static, dynamic)
    except ValueError:
        return None
    if form not in ("collapsed", "collapsed_theta"):
        return None
    latent = engine._latent_shapes(spec, static, form, first, dynamic)
    if len(latent) > 2 or any(shape != () for _, shape in latent):
        return None
    return form, static, tuple(name for name, _ in latent)


def moments(spec: str, hyper: dict, data: dict, truth: dict | None = None) -> dict | None:
    """{site: (mean, sd, cdf)} of the exact posterior of every data set of ``data`` (a batch),
    each (R, P); ``cdf`` is P(site <= truth | y) where ``truth`` ({site: (R, P)}) gives a value,
    else NaN. None where the spec has no reduction."""
    with engine.TRACE_LOCK:
        layout = _layout(spec, hyper, data)
    if layout is None:
        return None
    form, static, names = layout
    _, dynamic = engine._split_hyper(hyper)
    n_rep = len(next(iter(data.values())))
    with jax.enable_x64(True):
        dynamic = {k: jnp.asarray(v, jnp.float64) for k, v in dynamic.items()}
        data = {k: jnp.asarray(np.asarray(v), _dtype(v)) for k, v in data.items()}
        truth = {k: jnp.asarray(np.asarray(v, float).reshape(n_rep, -1)) for k, v in (truth or {}).items()}
        log_density, summarize = _functions(spec, form, static, names)
        dims = len(names)
        lo = np.repeat(_centre(data)[:, None] - SPAN, dims, axis=1)
        hi = lo + 2 * SPAN
        # the programs traced under the engine's lock (the model runs while they are traced),
        # then compiled and run without it
        with engine.TRACE_LOCK:
            for points in POINTS if dims else ():
                log_density.trace(dynamic, data, jnp.asarray(lo), jnp.asarray(hi), points)
            summarize.trace(dynamic, data, truth, jnp.asarray(lo), jnp.asarray(hi),
                            FINAL.get(dims, 1))
        for points in POINTS if dims else ():
            logp = np.asarray(log_density(dynamic, data, jnp.asarray(lo), jnp.asarray(hi), points))
            lo, hi = _box(logp, lo, hi, points)
        out = summarize(dynamic, data, truth, jnp.asarray(lo), jnp.asarray(hi), FINAL.get(dims, 1))
        return {site: tuple(np.asarray(a, float) for a in values) for site, values in out.items()}


def _dtype(v):
    return jnp.int64 if np.issubdtype(np.asarray(v).dtype, np.integer) else jnp.float64


@functools.lru_cache(maxsize=None)
def _functions(spec, form, static, names):
    """(log density on a grid, summaries over a grid) of the collapsed model, vectorized over
    the data sets of a batch; the grid of each data set is the product of ``points`` values
    spaced evenly from its ``lo`` to its ``hi`` (one of each per latent value)."""
    model = engine.build_model(spec, form)
    dims = len(names)

    def mesh(lo, hi, points):
        axes = [jnp.linspace(lo[d], hi[d], points) for d in range(dims)]
        return jnp.stack(jnp.meshgrid(*axes, indexing="ij"), -1).reshape(-1, dims)

    def log_density_one(dynamic, data, grid):
        engine._require_trace_lock()
        kwargs = {"data": data, **dynamic, **dict(static)}
        params = lambda p: {name: p[i] for i, name in enumerate(names)}  # noqa: E731
        logp = jax.vmap(lambda p: -potential_energy(model, (), kwargs, params(p)))(grid)
        return jnp.where(jnp.isfinite(logp), logp, -jnp.inf)

    @functools.partial(jax.jit, static_argnames="points")
    def log_density(dynamic, data, lo, hi, points):
        return jax.vmap(lambda d, a, b: log_density_one(dynamic, d, mesh(a, b, points)))(data, lo, hi)

    def summarize_one(dynamic, data, truth, lo, hi, points):
        engine._require_trace_lock()
        kwargs = {"data": data, **dynamic, **dict(static)}
        grid = mesh(lo, hi, points) if dims else jnp.zeros((1, 0))
        if dims:
            logp = log_density_one(dynamic, data, grid).reshape((points,) * dims)
            weights = jnp.exp(logp - logp.max()) * _trapezoid(points, dims)
            weights = (weights / weights.sum()).reshape(-1)
        else:
            weights = jnp.ones(1)
        run = functools.partial(constrain_fn, model, (), kwargs, return_deterministic=True)
        values = jax.vmap(lambda p: run({name: p[i] for i, name in enumerate(names)}))(grid)
        out = {}
        theta_var = values[collapse.COND_VAR]
        if collapse.MU_VAR in values:
            mu_var = values[collapse.MU_VAR]
            theta_var = theta_var + values[collapse.SHRINK] ** 2 * mu_var[:, None]
            out["mu"] = _mixture(weights, values[collapse.MU_MEAN][:, None], mu_var[:, None],
                                 truth.get("mu"))
        out["theta"] = _mixture(weights, values[collapse.COND_MEAN], theta_var, truth.get("theta"))
        for name in ("tau", "sigma"):
            if name in values:
                out[name] = _mixture(weights, values[name][:, None], jnp.zeros((len(weights), 1)),
                                     truth.get(name))
        return out

    @functools.partial(jax.jit, static_argnames="points")
    def summarize(dynamic, data, truth, lo, hi, points):
        return jax.vmap(lambda d, t, a, b: summarize_one(dynamic, d, t, a, b, points))(
            data, truth, lo, hi)

    return log_density, summarize


def _trapezoid(points: int, dims: int):
    """Trapezoid weights of a product grid: halved on each axis's first and last point."""
    axis = jnp.ones(points).at[0].set(0.5).at[-1].set(0.5)
    out = jnp.ones(())
    for _ in range(dims):
        out = out[..., None] * axis
    return out


def _centre(data) -> np.ndarray:
    """(R,) the log of each data set's estimates' scale: where its first grid is centred."""
    own = np.asarray(data["y"] if "y" in data else data["ybar"], float)
    return np.log(own.std(axis=1) + 1e-3 * (np.abs(own).max(axis=1) + 1.0))


def _box(logp, lo, hi, points):
    """The next grid's (lo, hi) per data set: one step beyond the points whose log density is
    within KEEP of the largest, on each axis."""
    n_rep, dims = lo.shape
    logp = logp.reshape(n_rep, *(points,) * dims)
    step = (hi - lo) / (points - 1)
    new_lo, new_hi = lo.copy(), hi.copy()
    for r in range(n_rep):
        inside = logp[r] > logp[r].max() - KEEP
        for d in range(dims):
            hits = np.flatnonzero(inside.any(axis=tuple(i for i in range(dims) if i != d)))
            new_lo[r, d] = lo[r, d] + (hits[0] - 1) * step[r, d]
            new_hi[r, d] = lo[r, d] + (hits[-1] + 1) * step[r, d]
    return new_lo, new_hi


def _mixture(weights, mean, var, true):
    """(mean, sd, cdf at ``true``) of sum_h w_h N(mean_h, var_h) per column (var_h = 0: a point
    mass at mean_h); ``true`` None gives a NaN cdf."""
    total = weights @ mean
    sd = jnp.sqrt(jnp.maximum(weights @ (var + mean**2) - total**2, 0.0))
    if true is None:
        return total, sd, jnp.full(total.shape, jnp.nan)
    spread = jnp.sqrt(var)
    below = jnp.where(spread > 0, ndtr((true - mean) / jnp.where(spread > 0, spread, 1.0)),
                      (mean <= true).astype(mean.dtype))
    return total, sd, weights @ below
