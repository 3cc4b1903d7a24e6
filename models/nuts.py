"""NUTS for the engine, with chains that never wait for each other.

The engine runs the chains of many data sets at once. ``vmap``-ing NumPyro's kernel steps them in
lockstep: every NUTS iteration lasts as long as the longest trajectory among all of them, so most
chains spend most of the time idle. Here one loop takes one leapfrog step of every chain
per turn, and a chain whose trajectory ends finishes its iteration in the same turn (it adapts,
records its draw, draws a new momentum) and starts the next trajectory at the next turn. The
loop ends when every chain has done its iterations, so it lasts as long as the busiest chain's
leapfrog steps, not as the sum over iterations of the longest trajectory. The random numbers
that start an iteration (a normal momentum: the dearest part of a turn's bookkeeping) are drawn
only for the chains that start one, at most one in ``RESTART_SHARE`` per turn (a chain beyond
that waits a turn), and for a block of lanes no larger than the turn needs. The lanes are a
work queue: a row of lanes runs the chains of one data set, and when the last of them ends the
row takes the next data set, so a program of many data sets runs about as long as their chains
take on average, not as long as the busiest one among them.

The transition is NumPyro's iterative NUTS (``numpyro.infer.hmc_util.build_tree``): multinomial
sampling of the proposal, uniform progressive sampling inside a subtree and biased progressive
sampling between the tree and a new subtree, the generalized U-turn criterion checked on the
whole tree at each doubling and on every subtree a new leaf completes (NumPyro's checkpoints), and
a trajectory that ends at a U-turn, a divergence (energy error above 1000) or the maximum tree
depth. Warmup is NumPyro's own ``warmup_adapter`` with NumPyro's defaults (dual averaging of the
step size from 1, no step-size heuristic; Stan's windows for a diagonal mass matrix), applied to
each chain when its iteration ends.

A chain's random numbers are threefry (the hash behind ``jax.random``) of its own seed and a
counter: the iteration and the leaf within it, so a chain's draws depend on nothing but its seed
and its data set, whatever else runs beside it and whenever its turns come. (NumPyro splits its
key at every leaf instead: the numbers differ, their distribution does not.)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from numpyro.infer.hmc_util import (
    IntegratorState,
    _leaf_idx_to_ckpt_idxs,
    warmup_adapter,
)

MAX_DELTA_ENERGY = 1000.0
"""A leapfrog step whose energy error exceeds this is divergent (NumPyro's and Stan's value)."""

RESTART_SHARE = 4
"""At most one chain in this many starts its next iteration in a given turn (the others whose
trees are complete wait a turn): the random numbers of a new iteration are drawn only for them."""

_MOMENTUM, _DIRECTIONS, _START = 0x10000, 0x20000, 0x30000
"""Counter offsets of a chain's random numbers within an iteration (leaves count from 0); a
redrawn start (``finite_start``) takes ``_START`` with its attempt in place of the iteration."""

MAX_TREE_DEPTH = 16
"""The deepest tree the sampler can build. A tree of depth D has at most 2^D - 1 leaves,
numbered 0 .. 2^D - 2 in the counter of the leaf's random numbers: at D = 17 that counter
reaches ``_MOMENTUM`` (2^16), so leaves would reuse the momentum's random bits. (Beyond that,
the doubling directions are bits of one uint32, exhausted at D = 33, and the int32 count of
leaves overflows at D = 32.)"""

START_TRIES = 100
"""Attempts at a start whose potential energy and gradient are finite (NumPyro's
``find_valid_initial_params`` makes as many)."""


class _SettingsFields(NamedTuple):
    warmup: int
    draws: int
    target_accept: float
    max_tree_depth: int


class Settings(_SettingsFields):
    """NUTS settings (static: part of the compiled program); ``max_tree_depth`` from 1 to
    ``MAX_TREE_DEPTH``."""

    __slots__ = ()

    def __new__(cls, warmup, draws, target_accept, max_tree_depth):
        if not 1 <= max_tree_depth <= MAX_TREE_DEPTH:
            raise ValueError(
                f"max_tree_depth={max_tree_depth}: the sampler supports 1 to {MAX_TREE_DEPTH}"
            )
        return super().__new__(cls, warmup, draws, target_accept, max_tree_depth)


class Trace(NamedTuple):
    """A chain's kept iterations."""

    z: jax.Array  # (draws, d) positions
    diverging: jax.Array  # (draws,) whether the trajectory diverged
    num_steps: jax.Array  # (draws,) its leapfrog steps


class _Chain(NamedTuple):
    """One lane: the chain it runs (its data set and seed), the chain's iteration, adaptation and
    the trajectory being built (``s_*``: the subtree being added to it)."""

    row: jax.Array  # the data set whose chain this is
    seed: jax.Array  # (2,) uint32: the chain's seed
    it: jax.Array  # iterations done (-1: a new chain whose start still needs its gradient)
    adapt: tuple  # NumPyro's HMCAdaptState
    energy0: jax.Array  # energy at the trajectory's start
    directions: jax.Array  # uint32: bit k is the direction of doubling k
    z_left: jax.Array
    r_left: jax.Array
    g_left: jax.Array
    z_right: jax.Array
    r_right: jax.Array
    g_right: jax.Array
    z: jax.Array  # the tree's proposal, its potential energy and gradient
    pe: jax.Array
    g: jax.Array
    log_w: jax.Array  # log of the tree's total weight (relative to the starting point)
    r_sum: jax.Array
    accept: jax.Array  # sum of the leaves' acceptance probabilities
    n: jax.Array  # leaves (leapfrog steps) so far
    depth: jax.Array  # doublings done
    going_right: jax.Array  # direction of the subtree being built
    s_z: jax.Array
    s_pe: jax.Array
    s_g: jax.Array
    s_log_w: jax.Array
    s_r_sum: jax.Array
    s_accept: jax.Array
    s_n: jax.Array  # the subtree's leaves so far
    ck_p: jax.Array  # (max_tree_depth, d) checkpoints of the subtree U-turn checks: see _turns
    ck_q: jax.Array
    ck_c: jax.Array  # (max_tree_depth,)
    diverging: jax.Array  # whether the last leaf diverged
    pending: jax.Array  # its tree is complete, the next iteration not started yet


def _threefry(key1, key2, x1, x2):
    """Threefry-2x32 (20 rounds; Salmon et al. 2011), written out so that XLA fuses it (JAX lowers
    its own to a loop on the CPU)."""
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    ks = (key1, key2, key1 ^ key2 ^ jnp.uint32(0x1BD11BDA))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for block in range(5):
        for rot in rotations[block % 2]:
            x1 = x1 + x2
            x2 = (x2 << jnp.uint32(rot)) | (x2 >> jnp.uint32(32 - rot))
            x2 = x1 ^ x2
        x1 = x1 + ks[(block + 1) % 3]
        x2 = x2 + ks[(block + 2) % 3] + jnp.uint32(block + 1)
    return x1, x2


def _bits(seed, it, counter):
    """uint32 bits, shape of ``counter`` x 2, of a chain's seed (2,), iteration and counter."""
    counter = jnp.asarray(counter, jnp.uint32)
    it = jnp.broadcast_to(jnp.asarray(it, jnp.uint32), counter.shape)
    return jnp.stack(_threefry(seed[0], seed[1], it, counter), axis=-1)


def _uniform(bits):
    """U[0, 1) float32 from uint32 bits (JAX's construction)."""
    return jax.lax.bitcast_convert_type((bits >> 9) | jnp.uint32(0x3F800000), jnp.float32) - 1.0


def _normal(seed, it, d):
    """(d,) standard normal draws (JAX's construction: the inverse error function of a uniform)."""
    u = _uniform(_bits(seed, it, _MOMENTUM + jnp.arange((d + 1) // 2)).reshape(-1)[:d])
    lo = jnp.nextafter(jnp.float32(-1.0), jnp.float32(1.0))
    return jnp.sqrt(2.0) * jax.lax.erf_inv(jnp.maximum(lo, 2.0 * u - 1.0))


def tree_depth(num_steps):
    """The depth of a tree (NumPyro's ``TreeInfo.depth``, Stan's ``treedepth__``) from its
    leapfrog steps: the bit length of ``num_steps``.

    Doubling k adds a subtree of at most 2^k leaves and at least one (a subtree ends at its
    first leaf that diverges or completes a U-turn, but its leaf counts and the doubling counts),
    and a tree ends only when a doubling ends. So a tree of depth D has 2^(D-1) to 2^D - 1 steps:
    a tree at the maximum depth is one of at least 2^(max_tree_depth - 1) steps, not only one of
    2^max_tree_depth - 1 (those whose last doubling ran its full length)."""
    n = jnp.asarray(num_steps)
    return jnp.where(n > 0, 32 - jax.lax.clz(n.astype(jnp.uint32)).astype(jnp.int32), 0)


def hit_max_tree_depth(num_steps, max_tree_depth):
    """Whether each tree reached ``max_tree_depth`` doublings (``tree_depth(num_steps)`` equal
    to it): the trajectories NUTS cut short, which Stan and NumPyro count."""
    return tree_depth(num_steps) >= max_tree_depth


def finite_start(value_and_grad, z0, seeds, radius=2.0, tries=START_TRIES):
    """Starts ``z0`` (R, C, d), each one whose potential energy or gradient is not finite
    replaced by a uniform draw in [-radius, radius]^d (NumPyro's ``init_to_uniform`` on the
    unconstrained scale, with its ``radius`` of 2), attempt after attempt, up to ``tries``
    draws in all, as NumPyro's ``find_valid_initial_params`` does. A finite start is kept as it
    is. Attempt a of chain k draws from threefry of the chain's seed (``seeds`` (R, C, 2)),
    counter ``_START`` and a in place of the iteration: numbers that the chain's transitions
    never use. ``value_and_grad(z, rows)`` as in ``sample``. A chain with no finite start after
    ``tries`` keeps its last draw: every one of its transitions diverges."""
    n_data, n_chains, d = z0.shape
    rows = jnp.arange(n_data)

    def bad(z):
        pe, g = value_and_grad(z, rows)
        return ~(jnp.isfinite(pe) & jnp.all(jnp.isfinite(g), axis=-1))

    def draw(seed, attempt):
        bits = _bits(seed, attempt, _START + jnp.arange((d + 1) // 2)).reshape(-1)[:d]
        return radius * (2.0 * _uniform(bits) - 1.0)

    def attempt(state):
        a, z, redo = state
        new = jax.vmap(jax.vmap(draw, in_axes=(0, None)), in_axes=(0, None))(seeds, a)
        z = jnp.where(redo[..., None], new.astype(z.dtype), z)
        return a + 1, z, redo & bad(z)

    _, z, _ = jax.lax.while_loop(
        lambda state: (state[0] < tries) & jnp.any(state[2]), attempt, (jnp.int32(1), z0, bad(z0))
    )
    return z


def _dot(a, b):
    return jnp.sum(a * b, axis=-1)


def _is_turning(inverse_mass, r_left, r_right, r_sum):
    """NumPyro's generalized U-turn criterion (Betancourt 2017, A.4.2)."""
    r_sum = r_sum - (r_left + r_right) / 2
    return (_dot(inverse_mass * r_left, r_sum) <= 0) | (_dot(inverse_mass * r_right, r_sum) <= 0)


def _turns(c, inverse_mass, r, s_r_sum):
    """(max_tree_depth,) U-turn criterion of the subtree from each checkpoint to the new leaf.

    NumPyro's check of checkpoint i, with r_i and R_i the momentum and the subtree's momentum sum
    stored at leaf i, is ``_is_turning(r_i, r, S - R_i + r_i)`` (S: the sum now). Its two dot
    products are P_i.w - c_i and v.w - v.Q_i, with P_i = M^-1 r_i, Q_i = R_i - r_i / 2,
    c_i = P_i.Q_i (stored when the checkpoint is written), v = M^-1 r and w = S - r / 2.
    """
    w = s_r_sum - r / 2
    v = inverse_mass * r
    left = c.ck_p @ w - c.ck_c
    right = _dot(v, w) - c.ck_q @ v
    return (left <= 0) | (right <= 0)


def _fresh(seed, it, d):
    """The random numbers that start a chain's iteration ``it``: a standard normal momentum (d,)
    and the directions of its doublings (uint32 bits)."""
    return _normal(seed, it, d), _bits(seed, it, _DIRECTIONS)[0]


def _trajectory(z, pe, g, adapt, it, normal, directions) -> dict:
    """The fields of a chain that start iteration ``it`` at (z, pe, g) with the random numbers of
    ``_fresh``: the proposal starts as (z, pe, g), which the chain already holds."""
    r = normal * adapt.mass_matrix_sqrt
    zero = jnp.zeros((), z.dtype)
    izero = jnp.zeros((), jnp.int32)
    return {
        "it": it, "energy0": pe + 0.5 * _dot(adapt.inverse_mass_matrix * r, r),
        "directions": directions, "going_right": (directions & 1) == 1,
        "z_left": z, "r_left": r, "g_left": g, "z_right": z, "r_right": r, "g_right": g,
        "log_w": zero, "r_sum": r, "accept": zero, "n": izero, "depth": izero,
        "s_z": z, "s_pe": pe, "s_g": g, "s_log_w": zero, "s_r_sum": r, "s_accept": zero,
        "s_n": izero, "pending": jnp.zeros((), bool),
    }


def _leaf_position(c: _Chain):
    """The position of the chain's next leaf and the half-step momentum that reaches it."""
    step_size = c.adapt.step_size
    eps = jnp.where(c.going_right, step_size, -step_size)
    z_e = jnp.where(c.going_right, c.z_right, c.z_left)
    r_e = jnp.where(c.going_right, c.r_right, c.r_left)
    g_e = jnp.where(c.going_right, c.g_right, c.g_left)
    r_half = r_e - 0.5 * eps * g_e
    return z_e + eps * c.adapt.inverse_mass_matrix * r_half, r_half


def _subtree_move_probability(subtree_log_w, tree_log_w):
    """Biased progressive sampling (Betancourt 2017, A.3.2): the proposal moves to the new
    subtree's with probability min(1, w_subtree / w_tree), favouring the far end of the
    trajectory; uniform progressive sampling would use w_subtree / (w_tree + w_subtree)."""
    return jnp.minimum(jnp.exp(subtree_log_w - tree_log_w), 1.0)


def _leaf(c: _Chain, z_new, r_half, pe_new, g_new, seed, settings):
    """The chain after its leaf at ``z_new``: the leaf joins the subtree and a complete subtree
    joins the tree. Returns the chain and whether its tree is complete (its iteration ends)."""
    active = (c.it < settings.warmup + settings.draws) & ~c.pending
    inverse_mass = c.adapt.inverse_mass_matrix
    step_size = c.adapt.step_size
    eps = jnp.where(c.going_right, step_size, -step_size)
    r_new = r_half - 0.5 * eps * g_new
    delta = pe_new + 0.5 * _dot(inverse_mass * r_new, r_new) - c.energy0
    delta = jnp.where(jnp.isnan(delta), jnp.inf, delta)
    log_w, div = -delta, delta > MAX_DELTA_ENERGY
    accept = jnp.minimum(jnp.exp(-delta), 1.0)
    # one threefry block per leaf: [0] for the leaf's transition, [1] for the doubling's
    u = _uniform(_bits(seed, c.it, c.n + c.s_n))

    # the leaf joins the subtree (uniform progressive sampling)
    first = c.s_n == 0
    take = first | (u[0] < jax.nn.sigmoid(log_w - c.s_log_w))
    s_z = jnp.where(take, z_new, c.s_z)
    s_pe = jnp.where(take, pe_new, c.s_pe)
    s_g = jnp.where(take, g_new, c.s_g)
    s_log_w = jnp.where(first, log_w, jnp.logaddexp(c.s_log_w, log_w))
    s_r_sum = jnp.where(first, r_new, c.s_r_sum + r_new)
    s_accept = jnp.where(first, accept, c.s_accept + accept)
    s_n = c.s_n + 1

    # U-turn checks of the subtrees this leaf completes (NumPyro's checkpoint scheme: at an even
    # leaf index no check is due, and the leaf is written to checkpoint idx_max)
    index = jnp.arange(settings.max_tree_depth)
    idx_min, idx_max = _leaf_idx_to_ckpt_idxs(c.s_n)
    due = (index >= idx_min) & (index <= idx_max)
    s_turning = jnp.any(_turns(c, inverse_mass, r_new, s_r_sum) & due)
    write = (index == idx_max) & (c.s_n % 2 == 0)
    p_new = inverse_mass * r_new
    q_new = s_r_sum - r_new / 2
    ck_p = jnp.where(write[:, None], p_new, c.ck_p)
    ck_q = jnp.where(write[:, None], q_new, c.ck_q)
    ck_c = jnp.where(write, _dot(p_new, q_new), c.ck_c)
    sub_done = active & ((s_n >= 2**c.depth) | s_turning | div)

    # a complete subtree joins the tree (biased progressive sampling)
    z_left = jnp.where(c.going_right, c.z_left, z_new)
    r_left = jnp.where(c.going_right, c.r_left, r_new)
    g_left = jnp.where(c.going_right, c.g_left, g_new)
    z_right = jnp.where(c.going_right, z_new, c.z_right)
    r_right = jnp.where(c.going_right, r_new, c.r_right)
    g_right = jnp.where(c.going_right, g_new, c.g_right)
    r_sum = c.r_sum + s_r_sum
    p_move = jnp.where(s_turning | div, 0.0, _subtree_move_probability(s_log_w, c.log_w))
    move = sub_done & (u[1] < p_move)
    depth = c.depth + 1
    turning = s_turning | _is_turning(inverse_mass, r_left, r_right, r_sum)
    tree_done = sub_done & ((depth >= settings.max_tree_depth) | turning | div)
    c = c._replace(
        z_left=z_left, r_left=r_left, g_left=g_left, z_right=z_right, r_right=r_right,
        g_right=g_right,
        z=jnp.where(move, s_z, c.z),
        pe=jnp.where(move, s_pe, c.pe),
        g=jnp.where(move, s_g, c.g),
        log_w=jnp.where(sub_done, jnp.logaddexp(c.log_w, s_log_w), c.log_w),
        r_sum=jnp.where(sub_done, r_sum, c.r_sum),
        accept=jnp.where(sub_done, c.accept + s_accept, c.accept),
        n=jnp.where(sub_done, c.n + s_n, c.n),
        depth=jnp.where(sub_done, depth, c.depth),
        diverging=jnp.where(active, div, c.diverging),
        going_right=jnp.where(
            sub_done, ((c.directions >> depth.astype(jnp.uint32)) & 1) == 1, c.going_right
        ),
        s_z=s_z, s_pe=s_pe, s_g=s_g, s_log_w=s_log_w, s_r_sum=s_r_sum, s_accept=s_accept,
        s_n=jnp.where(sub_done, 0, s_n), ck_p=ck_p, ck_q=ck_q, ck_c=ck_c,
    )
    return c, tree_done


def _end_iteration(c: _Chain, done, adapt, normal, directions, it) -> _Chain:
    """A lane whose tree is complete and whose turn it is (``done``) starts iteration ``it`` of
    its chain with the random numbers of ``_fresh``, from the chain's state (z, pe, g) and
    adaptation ``adapt`` (both already those of the lane's next chain where it takes one); the
    others go on."""
    restarted = _trajectory(c.z, c.pe, c.g, adapt, it, normal, directions)
    fields = {f: jnp.where(done, new, getattr(c, f)) for f, new in restarted.items()}
    return c._replace(adapt=adapt, **fields)


def sample(
    value_and_grad, z0, seeds, settings: Settings, rows: int, n_real=None, *,
    init_radius: float | None = 2.0, step_size: float = 1.0, inverse_mass_matrix=None,
) -> Trace:
    """Chain k of data set r, for R data sets x C chains: flat start positions ``z0`` (R, C, d)
    and one (2,) uint32 seed each, ``seeds`` (R, C, 2). ``value_and_grad(z, row)`` maps
    positions (n, C, d) of the chains of data sets ``row`` (n,) to their potential energies
    (negative log densities) (n, C) and gradients (n, C, d). Each chain runs ``settings.warmup``
    adapted iterations, then ``settings.draws`` kept ones.

    A start whose potential energy or gradient is not finite is redrawn uniformly in
    [-``init_radius``, ``init_radius``]^d (``finite_start``; None: starts used as given). The
    step size and the inverse of the diagonal mass matrix ((d,); default ones) start at
    ``step_size`` and ``inverse_mass_matrix``: with ``settings.warmup`` = 0 they stay there,
    and every iteration is a NUTS transition with them.

    The chains run on ``rows`` x C lanes (at most R x C): a row of lanes runs the C chains of one
    data set, and when the last of them ends, the row takes the next data set not yet started
    (a work queue), so that a program lasts about as long as its data sets' chains take on
    average, not as long as the slowest of them. Only data sets 0 .. ``n_real`` - 1 are run
    (default: all); the others (padding) keep zero draws. Returns the kept draws,
    (R, C, draws, ...)."""
    wa_init, wa_update = warmup_adapter(settings.warmup, target_accept_prob=settings.target_accept)
    n_data, n_chains, d = z0.shape
    rows = min(rows, n_data)
    n_real = n_data if n_real is None else n_real
    total = settings.warmup + settings.draws
    lane_shape = (rows, n_chains)
    n_lanes = rows * n_chains
    width = max(1, -(-n_lanes // RESTART_SHARE))
    column = jnp.broadcast_to(jnp.arange(n_chains), lane_shape)

    def lanes(f):
        return jax.vmap(jax.vmap(f))

    if init_radius is not None:
        z0 = finite_start(value_and_grad, z0, seeds, init_radius)
    # the first rows' gradients here; a later data set's when its lanes start it, in the lanes
    # (so that every gradient is computed in one layout: see _sampler_body in models.engine)
    pe0, g0 = value_and_grad(z0[:rows], jnp.arange(rows))
    # the adaptation every chain starts with (NumPyro's init does not look at the position)
    if inverse_mass_matrix is not None:
        inverse_mass_matrix = jnp.asarray(inverse_mass_matrix, z0.dtype)
    adapt0 = wa_init(
        IntegratorState(z0[0, 0], None, pe0[0, 0], g0[0, 0]), jax.random.key(0), step_size,
        inverse_mass_matrix=inverse_mass_matrix,
    )._replace(rng_key=None)
    adapt0 = jax.tree.map(lambda a: jnp.broadcast_to(a, (*lane_shape, *jnp.shape(a))), adapt0)

    def init(row, seed, z, pe, g, adapt, it):
        ckpts = jnp.zeros((settings.max_tree_depth, d), z.dtype)
        return _Chain(
            row=row, seed=seed, adapt=adapt, z=z, pe=pe, g=g, ck_p=ckpts, ck_q=ckpts,
            ck_c=jnp.zeros((settings.max_tree_depth,), z.dtype), diverging=jnp.zeros((), bool),
            **_trajectory(z, pe, g, adapt, it, *_fresh(seed, it, d)),
        )

    row0 = jnp.broadcast_to(jnp.arange(rows, dtype=jnp.int32)[:, None], lane_shape)
    # a row without a data set (fewer real ones than rows) starts done
    it0 = jnp.where(row0 < n_real, 0, total).astype(jnp.int32)
    chains = lanes(init)(row0, seeds[:rows], z0[:rows], pe0, g0, adapt0, it0)
    trace = Trace(
        jnp.zeros((n_data, n_chains, settings.draws, d), z0.dtype),
        jnp.zeros((n_data, n_chains, settings.draws), bool),
        jnp.zeros((n_data, n_chains, settings.draws), jnp.int32),
    )

    def flat(a):
        return a.reshape(n_lanes, *a.shape[2:])

    # the random numbers of the lanes that start an iteration are drawn for a block of lanes sized
    # to the turn's need: a quarter, a half or all of `width` (few lanes are ready in most turns;
    # the draws are the same whichever block is used)
    blocks = sorted({-(-width // 4), -(-width // 2), width})

    def restarts(w, ready, seed, it):
        """The first ``w`` of the ``ready`` lanes (flat) start an iteration: which they are, and
        their random numbers (``_fresh``), as lane arrays."""
        index = jnp.nonzero(ready, size=w, fill_value=n_lanes)[0]
        pick = jnp.minimum(index, n_lanes - 1)

        def spread(values, fill):
            blank = jnp.full((n_lanes, *values.shape[1:]), fill, values.dtype)
            return blank.at[index].set(values, mode="drop").reshape(*lane_shape, *values.shape[1:])

        normal, directions = jax.vmap(_fresh, in_axes=(0, 0, None))(seed[pick], it[pick], d)
        return spread(jnp.ones(w, bool), False), spread(normal, 0.0), spread(directions, 0)

    def turn(carry):
        c, trace, next_row = carry
        z_new, r_half = lanes(_leaf_position)(c)
        # a lane holding a new chain's start (iteration -1) evaluates its gradient there
        new_chain = c.it < 0
        z_new = jnp.where(new_chain[..., None], c.z, z_new)
        pe_new, g_new = value_and_grad(z_new, c.row[:, 0])
        c = c._replace(
            pe=jnp.where(new_chain, pe_new, c.pe), g=jnp.where(new_chain[..., None], g_new, c.g)
        )
        c, done = lanes(lambda *a: _leaf(*a, settings))(c, z_new, r_half, pe_new, g_new, c.seed)
        # at most `width` lanes start an iteration this turn; the others wait (pending)
        ready = flat(done | c.pending)
        it = c.it + 1
        n_ready = ready.sum(dtype=jnp.int32)
        block = sum((n_ready > w).astype(jnp.int32) for w in blocks[:-1])
        start, normal, directions = jax.lax.switch(
            block, [functools.partial(restarts, w) for w in blocks], ready, flat(c.seed), flat(it)
        )
        c = c._replace(pending=ready.reshape(lane_shape) & ~start)

        # the draw of an iteration that ends after warmup
        slot = jnp.where(start & (c.it >= settings.warmup), c.it - settings.warmup, settings.draws)
        trace = Trace(
            trace.z.at[c.row, column, slot].set(c.z, mode="drop"),
            trace.diverging.at[c.row, column, slot].set(c.diverging, mode="drop"),
            trace.num_steps.at[c.row, column, slot].set(c.n, mode="drop"),
        )

        # a row whose last chain ends takes the next data set, if one is left: its lanes hold
        # the new chains' starts at iteration -1, pending, and start iteration 0 when their turn
        # comes like any pending lane
        last = start & (c.it + 1 >= total)
        ends = jnp.any(last, axis=1) & jnp.all(last | (c.it >= total), axis=1)
        new_row = next_row + jnp.cumsum(ends, dtype=jnp.int32) - 1
        switch = jnp.broadcast_to((ends & (new_row < n_real))[:, None], lane_shape)
        next_row = next_row + ends.sum(dtype=jnp.int32)
        take = jnp.broadcast_to(jnp.minimum(new_row, n_data - 1)[:, None], lane_shape)

        def pick_new(old, new):
            return jnp.where(switch.reshape(*lane_shape, *([1] * (old.ndim - 2))), new, old)

        warm = start & (c.it >= 0) & (c.it < settings.warmup)

        def adapt_all(args):
            def one(it, accept, n, z, adapt, warm):
                # NumPyro's update reads the position only (not the energy or the gradient)
                new = wa_update(it, accept / n, IntegratorState(z, None, None, None), adapt)
                return jax.tree.map(lambda a, b: jnp.where(warm, a, b), new, adapt)
            return lanes(one)(*args, warm)

        # adaptation only in a turn where some chain ends a warmup iteration; the cond gets only
        # what the update reads, which keeps its operand small
        adapt = jax.lax.cond(
            jnp.any(warm), adapt_all, lambda args: args[-1], (c.it, c.accept, c.n, c.z, c.adapt)
        )
        c = lanes(_end_iteration)(c, start & ~switch, adapt, normal, directions, it)
        c = c._replace(
            row=pick_new(c.row, take), seed=pick_new(c.seed, seeds[take, column]),
            z=pick_new(c.z, z0[take, column]), adapt=jax.tree.map(pick_new, c.adapt, adapt0),
            it=jnp.where(switch, -1, c.it), pending=c.pending | switch,
        )
        return c, trace, next_row

    _, trace, _ = jax.lax.while_loop(
        lambda carry: jnp.any(carry[0].it < total), turn, (chains, trace, jnp.int32(rows))
    )
    return trace
