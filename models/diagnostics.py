"""Convergence diagnostics computed inside the compiled program: rank-normalized split R-hat and
bulk effective sample size (Vehtari, Gelman, Simpson, Carpenter & Bürkner 2021, "Rank-normalization,
folding, and localization: an improved R-hat for assessing convergence of MCMC", Bayesian Analysis).

These are line-for-line translations into ``jax.numpy`` of ArviZ's ``rhat(method="rank")`` and
``ess(method="bulk")`` (``arviz.stats.diagnostics._rhat_rank`` and ``_ess_bulk``, ArviZ 0.23),
including Geyer's initial positive and initial monotone sequences. ArviZ's versions are NumPy with
Python loops (about 2 ms a series): calling them on every (replicate, parameter) would cost more
than the fits, and would need the draws out of the program. ``tests/test_diagnostics.py`` checks
that these return ArviZ's numbers on chains that mix, chains that do not, autocorrelated and
anticorrelated chains, and chains with ties.

Every function takes one series ``x`` of shape (chains, draws); vmap them over anything else.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.special import ndtri


def split_chains(x):
    """(C, N) -> (2C, N//2): the first and last halves of each chain as separate chains."""
    half = x.shape[1] // 2
    return jnp.concatenate([x[:, :half], x[:, x.shape[1] - half :]], axis=0)


def _sort_keys(flat):
    """int32 keys that order as the float32 values ``flat`` do (NaN last, -0.0 as 0.0)."""
    flat = jnp.where(flat == 0, jnp.zeros_like(flat), flat)
    flat = jnp.where(jnp.isnan(flat), jnp.full_like(flat, jnp.nan), flat)  # one NaN: positive
    bits = lax.bitcast_convert_type(flat, jnp.int32)
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


def _from_keys(keys):
    """The float32 values of sorted ``_sort_keys`` keys (the map is its own inverse)."""
    return lax.bitcast_convert_type(keys ^ ((keys >> 31) & 0x7FFFFFFF), jnp.float32)


def sort_and_rank(flat):
    """(sorted values, average 1-based rank of each value) of a 1-d series, NaNs last.

    XLA's CPU sort of floats, or of several operands, runs a general comparator and is about six
    times slower than its sort of one integer array. A float32 series is therefore sorted once as
    int64 keys, the value's order-preserving bits above its position: one integer sort gives the
    sorted values and the permutation, and the average rank of a run of tied values is the mean
    of its first and last position. Other dtypes take ``jnp.sort`` and ``jnp.searchsorted``."""
    n = flat.shape[0]
    if flat.dtype != jnp.float32:
        ordered = jnp.sort(flat)
        rank = (
            jnp.searchsorted(ordered, flat, side="left")
            + jnp.searchsorted(ordered, flat, side="right") + 1
        ) / 2.0
        return ordered, rank
    keys = _sort_keys(flat)
    with jax.enable_x64(True):  # the packed keys need 64 bits; only these lines use them
        packed = jnp.sort((keys.astype(jnp.int64) << 32) | jnp.arange(n, dtype=jnp.int64))
        order = (packed & 0xFFFFFFFF).astype(jnp.int32)
        ordered = (packed >> 32).astype(jnp.int32)
    position = jnp.arange(n, dtype=jnp.int32)
    change = ordered[1:] != ordered[:-1]
    first = lax.cummax(jnp.where(jnp.concatenate([jnp.ones(1, bool), change]), position, 0))
    last = lax.cummin(
        jnp.where(jnp.concatenate([change, jnp.ones(1, bool)]), position, n), reverse=True
    )
    rank = jnp.zeros(n, jnp.float32).at[order].set((first + last + 2) / 2.0)
    return _from_keys(ordered), rank


def quantile_sorted(ordered, q):
    """``jnp.quantile(x, q)`` (linear interpolation) from x's sorted values; NaN if x has one."""
    n = ordered.shape[0]
    at = jnp.asarray(q, jnp.float32) * (n - 1)
    lo = jnp.floor(at).astype(jnp.int32)
    hi = jnp.minimum(lo + 1, n - 1)
    frac = at - lo
    value = ordered[lo] * (1 - frac) + ordered[hi] * frac
    return jnp.where(jnp.isnan(ordered[-1]), jnp.nan, value)


def _z_from_rank(flat, rank):
    z = ndtri((rank - 0.375) / (flat.size + 0.25))
    return jnp.where(jnp.isnan(flat), jnp.nan, z)


def z_scale(x):
    """Rank-normalize: average ranks over all draws, then the normal quantile of Blom's
    (rank - 3/8) / (S + 1/4). A NaN draw stays NaN and the others are ranked among themselves,
    S still counting every draw (ArviZ's ``rankdata(nan_policy="omit")``), so that R-hat and ESS
    of a series with a NaN are NaN, as ArviZ's are."""
    flat = x.ravel()
    return _z_from_rank(flat, sort_and_rank(flat)[1]).reshape(x.shape)


def _rhat(x):
    n_draws = x.shape[1]
    chain_mean = x.mean(axis=1)
    between = n_draws * chain_mean.var(ddof=1)
    within = x.var(axis=1, ddof=1).mean()
    return jnp.sqrt((between / within + n_draws - 1) / n_draws)


def rhat_rank(x):
    """Rank-normalized split R-hat: max of the bulk and the folded (tail) R-hat."""
    split = split_chains(x)
    bulk = _rhat(z_scale(split))
    tail = _rhat(z_scale(jnp.abs(split - quantile_sorted(sort_and_rank(split.ravel())[0], 0.5))))
    return jnp.maximum(bulk, tail)


def _autocov(x):
    """Biased autocovariance of each chain at every lag, by FFT (as ArviZ's ``autocov``)."""
    n = x.shape[1]
    m = 1 << (2 * n - 1).bit_length()  # any length >= 2n - 1 avoids circular wrap-around
    centred = x - x.mean(axis=1, keepdims=True)
    f = jnp.fft.rfft(centred, n=m, axis=1)
    return jnp.fft.irfft(f * jnp.conj(f), n=m, axis=1)[:, :n] / n


def ess(x):
    """Effective sample size of a (C, N) series, Geyer's initial monotone sequence estimator."""
    n_chain, n_draw = x.shape
    acov = _autocov(x)
    mean_var = acov[:, 0].mean() * n_draw / (n_draw - 1.0)
    var_plus = mean_var * (n_draw - 1.0) / n_draw
    if n_chain > 1:
        var_plus = var_plus + x.mean(axis=1).var(ddof=1)
    rho = 1.0 - (mean_var - acov.mean(axis=0)) / var_plus
    rho = rho.at[0].set(1.0)

    # Sums of consecutive (even, odd) autocorrelation pairs, P_m = rho_2m + rho_2m+1.
    n_pairs = n_draw // 2
    pair = rho[: 2 * n_pairs].reshape(n_pairs, 2).sum(axis=1)
    m = jnp.arange(n_pairs)
    # ArviZ's loop computes pair m (m >= 1) while 2m - 1 < N - 3 and every earlier pair is > 0.
    earlier_positive = jnp.concatenate([jnp.array([True]), jnp.cumprod(pair[:-1] > 0).astype(bool)])
    runs = (m >= 1) & (2 * m - 1 < n_draw - 3) & earlier_positive
    m_last = runs.sum()  # number of pairs computed after the first
    # Initial monotone sequence: running minimum of the pair sums before the last computed pair.
    monotone = lax.cummin(pair)
    head = jnp.where(m < m_last, monotone, 0.0).sum()
    even_last = rho[2 * m_last]
    pair_last = pair[jnp.minimum(m_last, n_pairs - 1)]
    tail = jnp.where(
        m_last == 0, 1.0, jnp.where((even_last > 0) | (pair_last >= 0), even_last, 0.0)
    )
    tau_hat = -1.0 + 2.0 * head + tail
    size = n_chain * n_draw
    tau_hat = jnp.maximum(tau_hat, 1.0 / jnp.log10(size))
    out = size / tau_hat
    out = jnp.where(jnp.isnan(rho).any(), jnp.nan, out)
    constant = (x.max() - x.min()) < jnp.finfo(jnp.float64).resolution
    return jnp.where(constant, float(size), out)


def ess_bulk(x):
    """Bulk effective sample size: ESS of the rank-normalized split chains."""
    return ess(z_scale(split_chains(x)))


def mcse_sd(x):
    """Monte Carlo standard error of the posterior sd, ArviZ's ``mcse(method="sd")``: the delta
    method on the variance, whose error is that of the mean of the squared deviations, with their
    own ESS (split chains, not rank-normalized: a heavy tail makes it large, as it should)."""
    squared = (x - x.mean()) ** 2
    return _mcse_sd(squared, ess(split_chains(squared)))


def _mcse_sd(squared, ess_squared):
    variance = squared.mean()
    var_of_variance = ((squared**2).mean() - variance**2) / ess_squared
    return jnp.sqrt(var_of_variance / variance / 4)


def mcse_mean(x):
    """Monte Carlo standard error of the posterior mean, ArviZ's ``mcse(method="mean")``: the
    sd over the ESS of the split chains (not rank-normalized)."""
    return _mcse_mean(x, ess(split_chains(x)))


def _mcse_mean(x, ess_x):
    return x.std(ddof=1) / jnp.sqrt(ess_x)


def ess_tail(x):
    """Tail effective sample size, ArviZ's ``ess(method="tail")``: the smaller ESS of the
    indicators of the 5 % and 95 % quantiles, on split chains."""
    ordered = sort_and_rank(x.ravel())[0]
    lower = (x <= quantile_sorted(ordered, 0.05)).astype(x.dtype)
    upper = (x <= quantile_sorted(ordered, 0.95)).astype(x.dtype)
    return jnp.minimum(ess(split_chains(lower)), ess(split_chains(upper)))


def summary(x, quantiles):
    """Every diagnostic of one (C, N) series at once, each series sorted twice (its draws, and
    its folded draws) rather than once per diagnostic: (mean, sd, quantiles, rank R-hat, bulk
    ESS, MCSE of the sd, MCSE of the mean, tail ESS), each equal to the function of its name
    above (``quantiles`` as ``jnp.quantile`` of all draws; R-hat NaN for one chain)."""
    n_chains, n_draws = x.shape
    split = split_chains(x)
    flat = split.ravel()
    ordered, rank = sort_and_rank(flat)
    if n_draws % 2:  # split chains drop each chain's middle draw: quantiles need all draws
        ordered_all = sort_and_rank(x.ravel())[0]
    else:
        ordered_all = ordered
    z = _z_from_rank(flat, rank).reshape(split.shape)
    if n_chains > 1:
        folded = jnp.abs(flat - quantile_sorted(ordered, 0.5))
        z_folded = _z_from_rank(folded, sort_and_rank(folded)[1]).reshape(split.shape)
        rhat = jnp.maximum(_rhat(z), _rhat(z_folded))
    else:
        rhat = jnp.full((), jnp.nan, x.dtype)
    lower = (x <= quantile_sorted(ordered_all, 0.05)).astype(x.dtype)
    upper = (x <= quantile_sorted(ordered_all, 0.95)).astype(x.dtype)
    squared = (x - x.mean()) ** 2
    # the five ESS in one batched call: one copy of its FFTs and Geyer's sequences in the
    # compiled program instead of five (fewer kernels to compile), the same numbers
    series = jnp.stack([z, *(split_chains(s) for s in (lower, upper, squared, x))])
    ess_z, ess_lower, ess_upper, ess_squared, ess_x = jax.vmap(ess)(series)
    qs = jnp.stack([quantile_sorted(ordered_all, q) for q in quantiles])
    return (x.mean(), x.std(ddof=1), qs, rhat, ess_z, _mcse_sd(squared, ess_squared),
            _mcse_mean(x, ess_x), jnp.minimum(ess_lower, ess_upper))
