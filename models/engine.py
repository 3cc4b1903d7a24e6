"""The engine: fit one prior spec on every replicate data set of a cell in compiled programs.

NUTS (``models.nuts``: NumPyro's algorithm and warmup, with chains that never wait for each
other) runs ``chains`` chains on each of R data sets at once, ``jit``-compiled once per (spec,
its non-numeric settings, parameterization, inference settings, data shapes): numeric
hyperparameters and the data are arguments of the program, so every cell of the same shape
reuses it. A second program (``_summaries``, compiled per the same key) turns the draws into
every site's draws, as rows of (chains x draws) series, and counts divergent transitions and
draws that hit the maximum tree depth; two small programs compiled once for every spec and
shape (``_series``, ``_conditional``) reduce blocks of those series to the posterior mean, sd,
the quantiles that bound the central 50/80/90/95 % intervals, rank-normalized split R-hat,
bulk and tail ESS and Monte Carlo errors (``models.diagnostics``).

Replicates run in chunks whose size follows from a memory budget and a cap (``BATCH``), all of
one size (the last one padded; the padding is not sampled) so that one compiled program serves
them all. In a chunk, the data sets queue for the sampler's ``LANE_ROWS`` rows of lanes: a row
runs one data set's chains and takes the next data set when they have all ended.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import itertools
import pathlib
import threading
from typing import NamedTuple

try:
    import fcntl
except ImportError:  # Windows has none: programs compile there without the inter-process lock
    fcntl = None

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.flatten_util import ravel_pytree
from numpyro.handlers import reparam
from numpyro.infer.reparam import LocScaleReparam
from numpyro.infer.util import constrain_fn, initialize_model, potential_energy

import models
from models import collapse, diagnostics, likelihood, nuts, padding

RESULTS_VERSION = 10
"""Part of every job's identity: bump it with any change to sim/ or models/ that changes what a
fit returns, so old result files are recomputed rather than mixed with new ones."""

LEVELS = (0.5, 0.8, 0.9, 0.95)
"""Central interval levels reported for every estimand."""

QUANTILES = tuple(sorted({q for lv in LEVELS for q in ((1 - lv) / 2, (1 + lv) / 2)} | {0.5}))
"""The posterior quantiles computed: both ends of every interval in LEVELS, and the median."""

BATCH = 100
"""At most this many data sets go to one program call unless ``fit(max_batch=)`` says otherwise
(fewer where the memory budget says so); their chains queue for the sampler's lanes, so more
data sets at once cost no more per fit: a chunk runs until its busiest chain is done, so fewer,
larger chunks wait less for their slowest chains."""

LANE_ROWS = 25
"""The sampler runs LANE_ROWS x chains lanes at once (``nuts.sample``): a row of lanes runs the
chains of one data set, then of the next one in the queue. A turn of the loop costs about the
same per lane; 25 rows x 4 chains is the fastest of 25, 50 and 100 rows on the reference
workload (``runs.bench``). A data set's fit is the same, to float32 rounding, whatever the
number of data sets in the program and whichever row it runs in."""

PARAMETERIZATIONS = ("centered", "noncentered", "partial", "collapsed", "auto")
"""How theta is sampled. ``centered``: as the spec writes it. ``noncentered``: theta = loc +
scale * eta (``LocScaleReparam(0)``). ``partial``: each group centered in proportion to how
much its data say (``partial_weights``: theta_j = loc + scale^(1 - w_j) (eta_j - w_j loc),
eta_j ~ N(w_j loc, scale^(2 w_j)); Papaspiliopoulos, Roberts & Sköld 2007). ``collapsed``:
theta, and mu where it is Gaussian given the rest, integrated out exactly and drawn from their
Gaussian conditionals for every kept draw (``models.collapse``; Gaussian data only; the form
``collapsed_theta`` where only theta can be). ``auto``: ``collapsed`` wherever it applies;
elsewhere (binomial data, a theta prior other than a Normal, a Student-t or a flat one)
``partial`` where the spec allows it, else ``noncentered`` where it allows that,
else ``centered``."""
ESTIMANDS = ("theta", "mu", "tau", "sigma", "p")
"""Sites summarized when a spec has them, in this order (``p``: success probabilities, binomial
data only)."""


@dataclasses.dataclass(frozen=True)
class Inference:
    """NUTS settings: Stan's and NumPyro's target_accept, max_tree_depth and draws; 500 warmup
    iterations (Stan's default is 1000) adapt the step size and the diagonal mass matrix of the
    low-dimensional posteriors a collapsed fit samples."""

    chains: int = 4  # independent chains per data set (R-hat needs at least 2)
    warmup: int = 500  # adaptation iterations per chain, discarded
    draws: int = 1000  # kept iterations per chain
    # dual-averaging target acceptance probability, or "auto" (``TARGET_ACCEPT_AUTO``)
    target_accept: float | str = 0.8
    max_tree_depth: int = 10  # NUTS tree depth cap (at most 2^depth - 1 leapfrog steps)


TARGET_ACCEPT_AUTO = (0.8, 0.95)
"""``target_accept="auto"`` (the default of ``conf/inference/``): 0.8, Stan's and NumPyro's
default, where every value the sampler moves is a scalar (a collapsed fit's mu, tau, sigma: a
smooth posterior of a few dimensions), and 0.95 where it moves a value per group (theta or its
non-centered eta, local scales, a t's mixing weights), whose scale follows a group-level scale:
smaller steps there keep the trajectories out of the funnel's neck. On the binomial scenario
(J = 10, n = 10, tau = 0.5, non-centered hierarchical), 16 of 20 fits had a divergent transition
at 0.8 and 1 of 20 at 0.95, for 1.5 times the leapfrog steps; the collapsed reference workload
keeps 0.8, its cost and its ESS per draw."""


def resolved_target_accept(target_accept, latent) -> float:
    """The target acceptance of a fit whose sampler moves ``latent`` ((site, unconstrained
    shape), ...): ``target_accept`` itself, or for ``auto`` ``TARGET_ACCEPT_AUTO``'s value."""
    if target_accept != "auto":
        return float(target_accept)
    per_group = any(shape != () for _, shape in latent)
    return TARGET_ACCEPT_AUTO[per_group]


def settings(spec: str, parameterization: str, data: dict, hyper: dict,
             inference: Inference) -> Inference:
    """``inference`` as ``fit`` runs it on ``data`` (a batch) with ``parameterization``:
    ``target_accept="auto"`` resolved (``resolved_target_accept``; a closed-form spec, which
    draws nothing, gets the value of scalar-only fits)."""
    latent = ()
    if method(spec) == "nuts":
        static, dynamic = _split_hyper(hyper)
        example = _first({k: np.asarray(v) for k, v in data.items()})
        fit_form = form(spec, parameterization, data, hyper)
        latent = _latent_shapes(spec, static, fit_form, example, dynamic)
    return dataclasses.replace(
        inference, target_accept=resolved_target_accept(inference.target_accept, latent))


class SiteSummary(NamedTuple):
    """Posterior summaries of one site; arrays of shape (R, P) or (R, len(QUANTILES), P)."""

    mean: np.ndarray
    sd: np.ndarray
    quantiles: np.ndarray
    rhat: np.ndarray
    ess_bulk: np.ndarray
    mcse_sd: np.ndarray  # Monte Carlo standard error of ``sd`` (NaN where there are no draws)
    mcse_mean: np.ndarray  # Monte Carlo standard error of ``mean`` (NaN where there are no draws)
    ess_tail: np.ndarray  # tail ESS: the smaller ESS of the 5 % and 95 % quantile indicators


class FitSummary(NamedTuple):
    """What the engine returns for R data sets: summaries per site and diagnostics per fit."""

    sites: dict  # site name -> SiteSummary
    n_divergent: np.ndarray  # (R,) divergent transitions after warmup, all chains
    n_max_treedepth: np.ndarray  # (R,) post-warmup draws whose tree hit max_tree_depth
    n_leapfrog: np.ndarray  # (R,) leapfrog steps (gradient evaluations) after warmup, all chains
    ranks: dict | None = None  # site -> (R, P) ranks of reference values (``fit(rank_against=)``)
    skipped: np.ndarray | None = None  # (R,) why a data set was not fitted ("" where it was)
    # (R,) largest rank R-hat and smallest bulk ESS over the coordinates the sampler moved (the
    # unconstrained latent values: with theta collapsed, mu, tau, sigma and local scales only)
    sampled_rhat: np.ndarray | None = None
    sampled_ess: np.ndarray | None = None


def fit(
    spec: str,
    data: dict,
    keys,
    hyper: dict,
    *,
    parameterization: str = "centered",
    inference: Inference = Inference(),
    memory_budget_bytes: float = 2e9,
    max_batch: int | None = None,
    lane_rows: int | None = None,
    rank_against: dict | None = None,
    rank_draws: int = 99,
    devices: int = 1,
    pad_groups: int | None = None,
) -> FitSummary:
    """Fit prior spec ``spec`` on every data set of ``data`` (arrays with leading axis R).

    ``keys`` holds one PRNG key per data set (shape (R,)); a data set's fit depends only on its
    own key and data, not on which other data sets share the batch (checked for chunks of up
    to 50 data sets; see ``BATCH``). Numeric ``hyper`` values are
    program inputs; strings and booleans select code and are compiled in. A closed-form spec
    (one that defines ``estimate``, see ``models.closed_form``) is computed directly, no keys used.

    Replicates run in chunks that fit ``memory_budget_bytes`` and hold at most ``max_batch``
    data sets (default ``BATCH``). In a chunk, the data sets queue for ``lane_rows`` (default
    ``LANE_ROWS``) rows of the sampler's lanes, one data set's chains to a row.

    ``devices`` > 1 splits the data sets over that many local devices (at most as many as JAX
    has: on the CPU, ``runs`` makes one per core), in at least one chunk per device, the chunks
    run at once by a thread per device. Each device runs the program compiled for it (the same
    program: a data set's fit is the same, bit for bit, on any device and in any chunk; a
    program split with ``shard_map`` instead compiles to other rounding).

    ``rank_against`` ({site: (R, P) values}) asks for the rank of each value among ``rank_draws``
    posterior draws spread evenly over the kept draws of all chains (thinned, so that they are
    close to independent): the statistic of simulation-based calibration (Talts et al. 2018).

    ``pad_groups`` (a number of groups, at least J) runs the sampler on the data padded with
    groups without data up to that number, where none of the sampler's coordinates grows with J
    (``models.padding``): every J up to it then shares one sampler program. The fit is the same
    but for float rounding; the summaries are of the real groups.

    A spec that cannot be fitted on some data sets says why in ``unsupported(data)`` (one data
    set; a reason, or None): those data sets are not fitted, their summaries are NaN and
    ``FitSummary.skipped`` holds the reason.
    """
    data = {k: np.asarray(v) for k, v in data.items()}
    reasons = _unsupported(models.load(spec), data)
    if reasons.any():
        kept = np.flatnonzero(reasons == "")
        if method(spec) == "nuts" and len(kept) == 0:
            return _all_skipped(spec, data, hyper, parameterization, reasons)
        if method(spec) == "nuts":
            part = fit(
                spec, {k: v[kept] for k, v in data.items()}, keys[jnp.asarray(kept)], hyper,
                parameterization=parameterization, inference=inference,
                memory_budget_bytes=memory_budget_bytes, max_batch=max_batch, lane_rows=lane_rows,
                rank_against=None if rank_against is None
                else {k: np.asarray(v)[kept] for k, v in rank_against.items()},
                rank_draws=rank_draws, devices=devices, pad_groups=pad_groups,
            )
        else:  # cheap: compute on every data set and blank the skipped ones
            from models import closed_form

            part, kept = closed_form.fit(models.load(spec), data, hyper), np.arange(len(reasons))
        return _scatter(part, kept, reasons)
    if method(spec) == "closed_form":
        from models import closed_form

        return closed_form.fit(models.load(spec), data, hyper)
    n_rep = _n_replicates(data)
    static, dynamic = _split_hyper(hyper)
    parameterization = resolve(spec, parameterization, _first(data), static, dynamic)
    latent = _latent_shapes(spec, static, parameterization, _first(data), dynamic)
    inference = dataclasses.replace(
        inference, target_accept=resolved_target_accept(inference.target_accept, latent))
    n_latent = draws_width(latent, parameterization, _first(data))
    sampled = _padded(spec, static, parameterization, data, dynamic, latent, pad_groups)
    n_devices = max(1, min(devices, len(jax.local_devices()), n_rep))
    # the devices' chunks are in memory at once: each gets its share of the budget
    budget = memory_budget_bytes / n_devices
    chunk = int(max(1, min(n_rep, budget // bytes_per_replicate(n_latent, inference))))
    chunk = max(1, min(chunk, BATCH if max_batch is None else max_batch))
    chunk = min(chunk, -(-n_rep // n_devices))  # at least one chunk per device
    statics = dict(
        spec=spec, static=static, parameterization=parameterization, inference=inference,
        latent=latent, rank_draws=rank_draws,
        lane_rows=LANE_ROWS if lane_rows is None else lane_rows,
    )

    def run(start, device):
        stop = min(start + chunk, n_rep)
        index = np.minimum(np.arange(start, start + chunk), n_rep - 1)  # pad with the last one
        args = (
            keys[index],
            {k: v[index] for k, v in data.items()},
            None if sampled is data else {k: v[index] for k, v in sampled.items()},
            dynamic,
            None if rank_against is None else {k: jnp.asarray(v)[index] for k, v in rank_against.items()},
            np.int32(stop - start),
        )
        keys_, data_, sampled_, dynamic_, reference_, n_real = jax.device_put(args, device)
        # the sampler's data may be padded (``pad_groups``); the summaries get the real groups
        sampler_args = (keys_, data_ if sampled_ is None else sampled_, dynamic_, n_real)
        draws = _compiled(_sampler, sampler_args, _STATIC, statics, device)(*sampler_args)
        summary_args = (*draws, keys_, data_, dynamic_, reference_)
        out = _compiled(_summaries, summary_args, _SUMMARY_STATIC, statics, device)(*summary_args)
        return jax.tree.map(lambda a: a[: stop - start], _summarized(out, device))

    starts = range(0, n_rep, chunk)
    devices_ = jax.local_devices()[:n_devices]
    if n_devices == 1:
        pieces = [run(start, devices_[0]) for start in starts]
    else:  # a thread per device; each compiles the program for its device, then they run at once
        with concurrent.futures.ThreadPoolExecutor(n_devices) as pool:
            pieces = list(pool.map(run, starts, itertools.cycle(devices_)))
    joined = jax.tree.map(lambda *a: np.concatenate(a, axis=0), *pieces)
    sites, n_div, n_depth, n_leapfrog, ranks, sampled_rhat, sampled_ess = joined
    return FitSummary(
        sites={name: SiteSummary(*s) for name, s in sites.items()},
        n_divergent=n_div,
        n_max_treedepth=n_depth,
        n_leapfrog=n_leapfrog,
        ranks=ranks,
        sampled_rhat=sampled_rhat,
        sampled_ess=sampled_ess,
    )


def sampler_groups(spec: str, parameterization: str, data: dict, hyper: dict,
                   pad_groups: int | None) -> int:
    """The number of groups ``fit`` runs the sampler on for ``data`` (a batch) and
    ``pad_groups``: ``pad_groups`` where it pads the data (``models.padding``), else J."""
    data = {k: np.asarray(v) for k, v in data.items()}
    real = likelihood.n_groups(_first(data))
    if method(spec) == "closed_form":
        return real
    static, dynamic = _split_hyper(hyper)
    fit_form = form(spec, parameterization, data, hyper)
    latent = _latent_shapes(spec, static, fit_form, _first(data), dynamic)
    sampled = _padded(spec, static, fit_form, data, dynamic, latent, pad_groups)
    return likelihood.n_groups(_first(sampled))


def form(spec: str, parameterization: str, data: dict, hyper: dict) -> str:
    """The form ``fit`` runs for ``parameterization`` on ``data`` (a batch): see ``resolve``;
    a closed-form spec's is its own (``none``)."""
    if method(spec) == "closed_form":
        return parameterization
    static, dynamic = _split_hyper(hyper)
    return resolve(spec, parameterization, _first({k: np.asarray(v) for k, v in data.items()}),
                   static, dynamic)


def resolve(spec: str, parameterization: str, example: dict, static=(), dynamic=None) -> str:
    """The form a fit runs: ``auto`` becomes ``collapsed`` where theta can be integrated out of
    ``example`` (one data set), else ``partial`` where the spec allows it (else ``noncentered``
    where it allows that, else ``centered``). ``collapsed`` asked for where it cannot apply is
    an error that says why."""
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization={parameterization!r}; allowed: {', '.join(PARAMETERIZATIONS)}"
        )
    if parameterization not in ("collapsed", "auto"):
        return parameterization
    for form in ("collapsed", "collapsed_theta"):
        reason = collapse_blocker(spec, example, static, dynamic, form)
        if reason is None:
            return form
    reason = collapse_blocker(spec, example, static, dynamic, "collapsed_theta")
    if parameterization == "collapsed":
        raise ValueError(f"parameterization='collapsed' does not apply to {spec}: {reason}")
    allowed = getattr(models.load(spec), "PARAMETERIZATIONS", PARAMETERIZATIONS)
    for fallback in ("partial", "noncentered"):
        if fallback in allowed:
            return fallback
    return "centered"


_BLOCKERS: dict = {}


def collapse_blocker(spec: str, example: dict, static=(), dynamic=None,
                     form: str = "collapsed") -> str | None:
    """Why ``form`` (``collapsed``: theta and mu; ``collapsed_theta``: theta) cannot be applied
    to the spec on data like ``example``, or None."""
    key = (spec, static, form, tuple(sorted((k, np.shape(v)) for k, v in example.items())))
    if key not in _BLOCKERS:
        reason = None
        if not collapse.gaussian_data(example):
            reason = "the data are not Gaussian (theta is integrated out of ybar, n, ss or y, se)"
        else:
            try:
                names, loc = _probe(build_model(spec, form), example, static, dynamic or {})
            except collapse.NotCollapsible as err:
                reason = str(err)
            else:
                if collapse.COND_MEAN not in names:
                    reason = "its theta is not a random sample site handed to likelihood.observe"
                elif loc is not None and not np.all(np.asarray(loc) == collapse.PROBE):
                    reason = "theta's location is not mu itself"
        _BLOCKERS[key] = reason
    return _BLOCKERS[key]


def _probe(model, example, static, dynamic):
    """(site names, theta's location where mu is integrated out, else None) of one run of
    ``model`` on ``example``, run as one small program: run op by op, the model's few dozen
    operations would each be compiled on their own."""
    names = []

    def run(data, dynamic):
        from numpyro.handlers import seed, trace

        _require_trace_lock()
        sites = trace(seed(model, jax.random.key(0))).get_trace(
            data=data, **dynamic, **dict(static))
        names.extend(sites)
        theta = sites.get(collapse.SITE, {}).get("value")
        if isinstance(theta, collapse.Collapsed) and theta.mu_loc is not None:
            return theta.loc
        return None

    with TRACE_LOCK:
        traced = jax.jit(run).trace(example, dynamic)
    return names, traced.lower().compile()(example, dynamic)


def _require_trace_lock():
    """Called where a program traces a model: a trace outside ``TRACE_LOCK`` is an error here
    rather than a trace that another thread may corrupt."""
    if not TRACE_LOCK._is_owned():
        raise RuntimeError("a NumPyro model traced without models.engine.TRACE_LOCK held")


_EXECUTABLES: dict = {}
"""This process's compiled programs, by (program, static arguments, argument shapes, device)."""


def _compiled(program, args, names, statics, device):
    """``program`` compiled for ``args`` and the ``statics`` it takes (those in ``names``), once
    per process: traced under ``TRACE_LOCK``, compiled without it.

    Where a persistent compilation cache is set, the processes that share it compile a given
    program one at a time (``_compile_lock``): a study's worker that meets a program another
    worker is compiling waits and then loads it from the cache, rather than compiling it too
    (two compiles of one program at once, on shared cores, each take about twice as long)."""
    statics = {k: v for k, v in statics.items() if k in names}
    shapes = tuple((np.shape(a), str(a.dtype if hasattr(a, "dtype") else np.result_type(a)))
                   for a in jax.tree.leaves(args))
    key = (program.__name__, tuple(sorted(statics.items())), str(jax.tree.structure(args)), shapes,
           device.id)
    compiled = _EXECUTABLES.get(key)
    if compiled is None:
        with TRACE_LOCK:
            traced = program.trace(*args, **statics)
        with _compile_lock(repr(key)):
            compiled = traced.lower().compile()
        _EXECUTABLES[key] = compiled
    return compiled


@contextlib.contextmanager
def _compile_lock(name: str):
    """An exclusive lock on a file named by ``name``'s hash beside the persistent compilation
    cache's folder. No lock where there is no cache, no ``fcntl`` or a cache that is not a local
    folder (``gs://...``), or where the folder takes none (read-only, or a network file system
    without locks): the program is then compiled unlocked, as it would be without a shared
    cache."""
    folder = jax.config.jax_compilation_cache_dir
    handle = None
    if folder and "://" not in str(folder) and fcntl is not None:  # a local folder only
        folder = pathlib.Path(folder)
        digest = hashlib.sha256(f"{jax.__version__} {name}".encode()).hexdigest()[:32]
        try:
            locks = folder.parent / f"{folder.name}-locks"
            locks.mkdir(parents=True, exist_ok=True)
            handle = open(locks / f"{digest}.lock", "a")
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:
            if handle is not None:
                handle.close()
            handle = None
    try:
        yield
    finally:
        if handle is not None:
            handle.close()  # closing the file releases its lock


TRACE_LOCK = threading.RLock()
"""Held while a NumPyro model runs or is traced: NumPyro's stack of effect handlers is one for
the process, so two threads that trace models at once corrupt each other's traces. ``fit``
traces its program under it and compiles and runs it without; ``models.exact`` holds it while
it traces its own programs, so that its quadrature can run in a thread beside a fit."""


def _unsupported(module, data) -> np.ndarray:
    """(R,) reasons why the spec cannot fit each data set ("" where it can)."""
    check = getattr(module, "unsupported", None)
    n_rep = _n_replicates(data)
    if check is None:
        return np.full(n_rep, "", dtype=object)
    return np.array(
        [check({k: v[r] for k, v in data.items()}) or "" for r in range(n_rep)], dtype=object
    )


def _scatter(part: FitSummary, kept: np.ndarray, reasons: np.ndarray) -> FitSummary:
    """A fit of the data sets ``kept``, spread over all of them; the others NaN and skipped."""
    n_rep = len(reasons)

    def spread(a, fill):
        a = np.asarray(a)
        out = np.full((n_rep, *a.shape[1:]), fill, dtype=np.result_type(a, type(fill)))
        out[kept] = a[kept] if len(a) == n_rep else a
        return out

    skipped = reasons != ""
    sites = {
        name: SiteSummary(*(np.where(_expand(skipped, a), np.nan, spread(a, np.nan)) for a in s))
        for name, s in part.sites.items()
    }
    return FitSummary(
        sites=sites,
        n_divergent=np.where(skipped, 0, spread(part.n_divergent, 0)),
        n_max_treedepth=np.where(skipped, 0, spread(part.n_max_treedepth, 0)),
        n_leapfrog=np.where(skipped, 0, spread(part.n_leapfrog, 0)),
        ranks=None if part.ranks is None else {
            k: np.where(_expand(skipped, v), np.nan, spread(v, np.nan)) for k, v in part.ranks.items()
        },
        skipped=reasons,
        sampled_rhat=None if part.sampled_rhat is None
        else np.where(skipped, np.nan, spread(part.sampled_rhat, np.nan)),
        sampled_ess=None if part.sampled_ess is None
        else np.where(skipped, np.nan, spread(part.sampled_ess, np.nan)),
    )


def _expand(mask, a):
    return mask.reshape(-1, *([1] * (np.ndim(a) - 1)))


def _split_hyper(hyper: dict):
    """(static, dynamic): strings and booleans select code and are compiled in; numbers are
    program inputs, so every value reuses the compiled program."""
    static = tuple(sorted((k, v) for k, v in hyper.items() if isinstance(v, (str, bool))))
    dynamic = {
        k: jnp.asarray(v, jnp.float32) for k, v in hyper.items() if not isinstance(v, (str, bool))
    }
    return static, dynamic


def _all_skipped(spec, data, hyper, parameterization, reasons) -> FitSummary:
    """No data set can be fitted: NaN summaries of the sites the spec would report."""
    static, dynamic = _split_hyper(hyper)
    kwargs = {"data": _first(data), **dynamic, **dict(static)}
    with TRACE_LOCK:
        info = initialize_model(
            jax.random.key(0), build_model(spec, parameterization), model_kwargs=kwargs
        )
    n_rep = len(reasons)
    sites = {}
    for name in ESTIMANDS:
        if name in info.model_trace:
            size = int(np.prod(np.shape(info.model_trace[name]["value"])))
            nan = np.full((n_rep, size), np.nan)
            quantiles = np.full((n_rep, len(QUANTILES), size), np.nan)
            sites[name] = SiteSummary(nan, nan, quantiles, nan, nan, nan, nan, nan)
    zeros = np.zeros(n_rep, np.int64)
    return FitSummary(sites, zeros, zeros, zeros, None, reasons)


def partial_weights(fn, info):
    """(J,) how far each theta_j is centered: w_j = s_j^2 I_j / (s_j^2 I_j + 1), with s_j the
    scale of theta_j's prior given the rest (tau; tau lambda_j for the horseshoe) and I_j the
    information of group j's data (``models.likelihood.information``): 1 (centered) where the
    data pin theta_j down, 0 (non-centered) where the prior does. A heuristic: it is the weight
    that makes theta_j - (1 - w_j) mu and mu independent in the normal model (Papaspiliopoulos,
    Roberts & Sköld 2007), used here in ``LocScaleReparam``'s form, which scales by s^w too
    (Gorinova, Moore & Hoffman 2019). It moves with the sampled scale, which the change of
    variables allows (its Jacobian, s^(1 - w_j), depends on the other latents only). Computed
    as a logistic of log(s^2 I), so that a huge scale or information gives 1, not inf / inf."""
    while isinstance(fn, (dist.ExpandedDistribution, dist.Independent)):
        fn = fn.base_dist
    log_scale = jnp.log(jnp.broadcast_to(fn.scale, info.shape))
    return jax.nn.sigmoid(2.0 * log_scale + jnp.log(info))


def method(spec: str) -> str:
    """How a spec is fitted: ``nuts`` (posterior draws) or ``closed_form`` (no draws)."""
    return "closed_form" if hasattr(models.load(spec), "estimate") else "nuts"


def build_model(spec: str, parameterization: str):
    """The spec's model, with ``theta`` reparameterized from outside: non-centered, or
    integrated out (``collapsed``)."""
    module = models.load(spec)
    model = module.model
    # parameters of theta's distribution other than loc and scale (a t's df) are named by the
    # spec, so that the standardized draw keeps them
    shape_params = getattr(module, "THETA_SHAPE_PARAMS", ())
    if parameterization == "noncentered":
        return reparam(
            model, config={"theta": LocScaleReparam(centered=0, shape_params=shape_params)}
        )
    if parameterization == "partial":
        def partially_centered(data, **kwargs):
            info = likelihood.information(data)

            def config(msg):
                if msg["name"] != collapse.SITE:
                    return None
                return LocScaleReparam(centered=partial_weights(msg["fn"], info),
                                       shape_params=shape_params)

            return reparam(model, config=config)(data, **kwargs)

        return partially_centered
    if parameterization in ("collapsed", "collapsed_theta"):
        return collapse.collapse(model, integrate_mu=parameterization == "collapsed")
    return model


_STATIC = ("spec", "static", "parameterization", "inference", "latent", "lane_rows")
_SUMMARY_STATIC = ("spec", "static", "parameterization", "inference", "latent", "rank_draws")

QUICK_COMPILE = {"xla_cpu_use_fusion_emitters": False}
"""XLA options of the summary program: CPU code from XLA's older loop emitters. They compile its
few hundred small kernels in a quarter to a third less time on a busy core (a program's compile
on the CPU is mostly a cost per kernel: 3.1-3.7 s against 4.3-5.9 s on one core, hierarchical
with J = 8 and normal with J = 5) and run them 5-15 % slower, a few percent of a fit. The sampler
keeps XLA's defaults: with the older emitters its compile gains 7-20 % and its loop, most of a
fit, runs about 10 % slower."""


def _sampler_body(keys, data, dynamic, n_real, *, spec, static, parameterization, inference,
                  latent, lane_rows):
    """The chains of every data set: kept draws z (R, C, N, d) on the flat unconstrained scale,
    and each iteration's divergence and leapfrog count (R, C, N)."""
    _require_trace_lock()
    model = build_model(spec, parameterization)
    n_chains = inference.chains
    settings = nuts.Settings(
        inference.warmup, inference.draws, inference.target_accept, inference.max_tree_depth
    )

    def start(chain_key):
        """A chain's sampler key and its start, NumPyro's init_to_uniform: U(-2, 2) on the
        unconstrained scale."""
        k_init, k_mcmc = jax.random.split(chain_key)
        init_keys = jax.random.split(k_init, len(latent))
        z0 = {
            name: jax.random.uniform(k, shape, minval=-2.0, maxval=2.0)
            for k, (name, shape) in zip(init_keys, latent)
        }
        return k_mcmc, ravel_pytree(z0)[0]

    # the sampler runs every chain of every data set at once, on (R, C, ...) arrays
    chain_keys = jax.vmap(lambda k: jax.random.split(k, n_chains))(keys)
    k_mcmc, z0 = jax.vmap(jax.vmap(start))(chain_keys)
    unravel = _unravel(latent)

    def potential(flat, data_r):
        return potential_energy(model, (), {"data": data_r, **dynamic, **dict(static)}, unravel(flat))

    def value_and_grad(z, row):  # positions (rows, C, d) of the chains of data sets `row`
        # (the data of a row shared by its chains: batching them per chain instead compiles code
        # that rounds differently as the number of data sets changes)
        data_rows = jax.tree.map(lambda a: a[row], data)
        return jax.vmap(jax.vmap(jax.value_and_grad(potential), in_axes=(0, None)))(z, data_rows)

    seeds = jax.random.key_data(k_mcmc)
    if latent:
        trace = nuts.sample(value_and_grad, z0, seeds, settings, rows=lane_rows, n_real=n_real)
        return tuple(trace)
    # nothing left to sample (theta collapsed under a fixed prior and known errors)
    shape = (keys.shape[0], n_chains, inference.draws)
    return jnp.zeros((*shape, 0)), jnp.zeros(shape, bool), jnp.zeros(shape, jnp.int32)


def _unravel(latent):
    return ravel_pytree({name: jnp.zeros(shape) for name, shape in latent})[1]


def _summary_body(z, diverging, num_steps, keys, data, dynamic, reference, *, spec, static,
                  parameterization, inference, latent, rank_draws):
    """What each data set's summaries are computed from (``_summarized``), from its draws
    (``_sampler_body``'s): every site's draws and the sampled coordinates z as rows of one
    array of (C, N) series, padded to whole blocks of ``SERIES_BLOCK`` rows, with {site: (R, P)
    row numbers}; likewise the conditional means of collapsed sites, with their average
    conditional variances {site: (R, P)} (their Rao–Blackwell summaries); counts of divergences,
    saturated trees and leapfrog steps; and SBC ranks against ``reference``."""
    _require_trace_lock()
    model = build_model(spec, parameterization)
    unravel = _unravel(latent)
    collapsed = parameterization in ("collapsed", "collapsed_theta")
    theta_keys = jax.vmap(lambda k: jax.random.fold_in(k, THETA_STREAM))(keys)

    def one_data_set(z, diverging, num_steps, data_r, reference_r, theta_key):
        kwargs = {"data": data_r, **dynamic, **dict(static)}
        constrain = functools.partial(constrain_fn, model, (), kwargs, return_deterministic=True)
        values = jax.vmap(jax.vmap(lambda f: constrain(unravel(f))))(z)
        conditional = {}
        if collapsed:
            draws, conditional = _exact_draws(values, theta_key)
            values.update(draws)

        def series(a):  # (C, N, *shape) -> (P, C, N)
            return jnp.moveaxis(a.reshape(*a.shape[:2], -1), -1, 0)

        sites = {name: series(values[name]) for name in ESTIMANDS if name in values}
        sites[SAMPLED] = series(z)
        means = {name: series(m) for name, (m, _) in conditional.items()}
        variances = {name: v.reshape(-1, v.shape[-1]).mean(axis=0)
                     for name, (_, v) in conditional.items()}
        saturated = nuts.hit_max_tree_depth(num_steps, inference.max_tree_depth)
        ranks = (
            None
            if reference_r is None
            else {
                name: _rank(values[name], ref, rank_draws)
                for name, ref in reference_r.items() if name in values
            }
        )
        return (sites, means, variances, diverging.sum(), saturated.sum(), num_steps.sum(),
                ranks)

    sites, means, variances, *rest = jax.vmap(one_data_set)(
        z, diverging, num_steps, data, reference, theta_keys)
    return (*_rows(sites), *_rows(means), variances, *rest)


def _rows(series: dict):
    """{site: (R, P, C, N)} as one (S, C, N) array of rows, S padded up to whole blocks of
    ``SERIES_BLOCK`` with zeros, and {site: (R, P) row numbers}."""
    if not series:
        return None, {}
    index, start = {}, 0
    for name, a in series.items():
        index[name] = start + jnp.arange(a.shape[0] * a.shape[1]).reshape(a.shape[:2])
        start += a.shape[0] * a.shape[1]
    rows = jnp.concatenate([a.reshape(-1, *a.shape[2:]) for a in series.values()])
    pad = -start % SERIES_BLOCK
    return jnp.pad(rows, ((0, pad), (0, 0), (0, 0))), index


SAMPLED = "_sampled"
"""The key of the sampled coordinates z among ``_summary_body``'s series."""

SERIES_BLOCK = 64
"""Series summarized per call of ``_series``: every site of every spec and J is summarized by
the same two small programs, compiled once (a summary program per spec and J compiled its own
copy of the sorts and FFTs); the last block of a fit is padded with zeros. 64 rows was the
fastest of 16 to 512 on the reference workload (a block's sort keys then stay in the cache),
and 10 % faster than one program over all of a chunk's series."""


def _series_body(x):
    """Every diagnostic of each (C, N) series of ``x`` (B, C, N): ``diagnostics.summary``."""
    return jax.vmap(lambda s: diagnostics.summary(s, QUANTILES))(x)


def _conditional_body(x):
    """Mean, variance (ddof 1) and Monte Carlo SE of the mean of each (C, N) series of ``x``
    (B, C, N): what the Rao–Blackwell summaries need of the conditional means."""
    flat = x.reshape(x.shape[0], -1)
    return flat.mean(axis=1), flat.var(axis=1, ddof=1), jax.vmap(diagnostics.mcse_mean)(x)


def _blocks(program, rows, device) -> tuple:
    """``program`` (``_series`` or ``_conditional``) on every block of ``SERIES_BLOCK`` rows of
    ``rows`` (S, C, N), S a whole number of blocks; its fields, (S, ...), as numpy arrays."""
    rows = np.asarray(rows)
    pieces = []
    for start in range(0, rows.shape[0], SERIES_BLOCK):
        block = jax.device_put(rows[start:start + SERIES_BLOCK], device)
        pieces.append(_compiled(program, (block,), (), {}, device)(block))
    return tuple(np.concatenate([np.asarray(p[i]) for p in pieces]) for i in range(len(pieces[0])))


def _summarized(out, device) -> tuple:
    """The summaries of ``_summary_body``'s output: ({site: SiteSummary fields}, divergences,
    saturated trees, leapfrog steps, ranks, largest R-hat and smallest bulk ESS of the sampled
    coordinates), as numpy arrays with the data sets first."""
    rows, index, rb_rows, rb_index, variances, n_div, n_depth, n_leapfrog, ranks = out
    index, rb_index, variances, n_div, n_depth, n_leapfrog, ranks = jax.tree.map(
        np.asarray, (index, rb_index, variances, n_div, n_depth, n_leapfrog, ranks))
    n_rep = n_div.shape[0]
    fields = _blocks(_series, rows, device)
    summaries = {}
    for name, at in index.items():
        mean, sd, quantiles, *rest = (f[at] for f in fields)  # (R, P, ...)
        summaries[name] = (mean, sd, np.swapaxes(quantiles, 1, 2), *rest)
    if rb_index:
        rb_fields = _blocks(_conditional, rb_rows, device)
        for name, at in rb_index.items():
            m_mean, m_var, m_mcse = (f[at] for f in rb_fields)
            summaries[name] = _rao_blackwell(summaries[name], m_mean, m_var, m_mcse,
                                             variances[name])
    sampled = summaries.pop(SAMPLED)
    if sampled[0].shape[1]:
        sampled_rhat, sampled_ess = sampled[3].max(axis=1), sampled[4].min(axis=1)
    else:
        sampled_rhat = sampled_ess = np.full(n_rep, np.nan, np.float32)
    return summaries, n_div, n_depth, n_leapfrog, ranks, sampled_rhat, sampled_ess


_sampler = jax.jit(_sampler_body, static_argnames=_STATIC)
_summaries = jax.jit(_summary_body, static_argnames=_SUMMARY_STATIC, compiler_options=QUICK_COMPILE)
_series = jax.jit(_series_body, compiler_options=QUICK_COMPILE)
_conditional = jax.jit(_conditional_body, compiler_options=QUICK_COMPILE)


THETA_STREAM = 1
"""The exact draws of a collapsed theta use the data set's key folded in with this number."""


def _exact_draws(values, key):
    """Exact draws of the collapsed sites for every kept draw of the rest (``models.collapse``),
    and {site: (conditional mean, conditional variance)} given the sampled rest, each (C, N, P):
    theta_j | rest ~ N(m_j, v_j); where mu is integrated out, mu | rest ~ N(mu_hat, V) and theta_j
    given mu too is N(m_j + B_j (mu - mu_hat), v_j), so that theta_j | rest has variance
    v_j + B_j^2 V."""
    cond_mean, cond_var = values[collapse.COND_MEAN], values[collapse.COND_VAR]
    k_theta, k_mu = jax.random.split(key)
    noise = jax.random.normal(k_theta, cond_mean.shape, cond_mean.dtype)
    theta = cond_mean + jnp.sqrt(cond_var) * noise
    if collapse.MU_MEAN not in values:
        return {"theta": theta}, {"theta": (cond_mean, cond_var)}
    mu_hat, mu_var = values[collapse.MU_MEAN], values[collapse.MU_VAR]  # (C, N)
    shrink = values[collapse.SHRINK]
    mu = mu_hat + jnp.sqrt(mu_var) * jax.random.normal(k_mu, mu_hat.shape, mu_hat.dtype)
    theta = theta + shrink * (mu - mu_hat)[..., None]
    conditional = {
        "theta": (cond_mean, cond_var + shrink**2 * mu_var[..., None]),
        "mu": (mu_hat[..., None], mu_var[..., None]),
    }
    return {"theta": theta, "mu": mu}, conditional


def _rao_blackwell(draws, m_mean, m_var, m_mcse, v_mean):
    """theta's summary with the Rao–Blackwell mean and sd: E[theta | y] as the average of the
    conditional means m, Var[theta | y] as the average of the conditional variances v plus the
    variance of m (the law of total variance); the Monte Carlo error of the mean is that of the
    average of m. Quantiles, R-hat and ESS stay those of the exact draws. Each (R, P): the mean,
    variance and MCSE of the mean of m's series, and v's average."""
    _, _, quantiles, rhat, ess_bulk, mcse_sd, _, ess_tail = draws
    sd = np.sqrt(v_mean + m_var)
    # an average of conditional means that hardly vary (a flat prior's theta_j = ybar_j) has a
    # Monte Carlo error below the float32 resolution of the program's arithmetic: the error
    # reported is never below that resolution
    resolution = np.finfo(np.float32).eps * (np.abs(m_mean) + sd)
    mcse_mean = np.sqrt(m_mcse**2 + resolution**2)
    return m_mean, sd, quantiles, rhat, ess_bulk, mcse_sd, mcse_mean, ess_tail


def _rank(draws, reference, n_draws):
    """Rank of ``reference`` (P,) among ``n_draws`` evenly spaced draws of (C, N, *shape)."""
    pooled = draws.reshape(draws.shape[0] * draws.shape[1], -1)
    pick = np.round(np.linspace(0, pooled.shape[0] - 1, n_draws)).astype(int)
    return (pooled[pick] < reference.reshape(1, -1)).sum(axis=0)


_LATENT_CACHE: dict = {}


def _latent_shapes(spec, static, parameterization, example, dynamic):
    """((site, unconstrained shape), ...) of the model's latent sites (its sample sites that are
    not observed, as ``numpyro.infer.util.initialize_model`` finds them), found once per shape.

    The model is traced abstractly (``jax.eval_shape``): nothing is computed or compiled, where
    ``initialize_model`` would run the model op by op and search for a valid start."""
    cache_key = (spec, static, parameterization, tuple((k, v.shape) for k, v in example.items()))
    if cache_key not in _LATENT_CACHE:
        from numpyro.distributions.transforms import biject_to
        from numpyro.handlers import seed, substitute, trace
        from numpyro.infer.initialization import init_to_uniform

        # values drawn as initialize_model draws its start (an improper prior cannot sample)
        model = substitute(
            seed(build_model(spec, parameterization), jax.random.key(0)),
            substitute_fn=init_to_uniform,
        )
        kwargs = {"data": example, **dynamic, **dict(static)}

        def unconstrained():
            sites = trace(model).get_trace(**kwargs)
            return {
                name: biject_to(site["fn"].support).inv(site["value"])
                for name, site in sites.items()
                if site["type"] == "sample" and not site["is_observed"]
            }

        with TRACE_LOCK:
            shapes = jax.eval_shape(unconstrained)
        _LATENT_CACHE[cache_key] = tuple((name, tuple(shapes[name].shape)) for name in sorted(shapes))
    return _LATENT_CACHE[cache_key]


def _padded(spec, static, parameterization, data, dynamic, latent, pad_groups):
    """The data the sampler runs on: ``data`` padded to ``pad_groups`` groups where that is more
    than J, the data's form allows it and the model's latent values are the same for the padded
    data (``latent`` for the real; ``models.padding``); else ``data`` itself."""
    if pad_groups is None or not padding.paddable(data):
        return data
    if pad_groups <= likelihood.n_groups(_first(data)):
        return data
    padded = padding.pad(data, int(pad_groups))
    if _latent_shapes(spec, static, parameterization, _first(padded), dynamic) != latent:
        return data  # a coordinate per group: it runs at its own J
    return padded


def draws_width(latent, parameterization: str, example: dict) -> int:
    """Values per draw that the program holds: the sampled coordinates, and where theta is
    collapsed its exact draws and conditional means too (one per group: the size of the
    largest data array of a data set)."""
    width = sum(int(np.prod(shape)) for _, shape in latent)
    if parameterization in ("collapsed", "collapsed_theta"):
        width += max(int(np.size(v)) for v in example.values())
    return width


def bytes_per_replicate(n_latent: int, inference: Inference) -> int:
    """Memory the program needs per replicate, which sets how many replicates run at once.

    Per chain and kept draw it holds the unconstrained latent values and their constrained
    values (float32), plus sort buffers for quantiles and ranks and XLA's temporaries: COPIES
    copies of (chains x draws x P x 4 bytes), P ~ 2 x the latent size.
    """
    return COPIES * inference.chains * inference.draws * 2 * max(n_latent, 1) * 4


COPIES = 10
"""Copies of the draws the program holds at its peak (``python -m runs.bench 'methods=[memory]'``
measures it: about 9 at J = 1000); 10 keeps the peak under the budget plus the process's base."""


def _n_replicates(data):
    sizes = {v.shape[0] for v in data.values()}
    if len(sizes) != 1:
        raise ValueError(f"data arrays disagree on the number of replicates: {sorted(sizes)}")
    return sizes.pop()


def _first(data):
    return {k: v[0] for k, v in data.items()}
