"""``memory``: the engine on ``memory_groups`` groups and its peak resident memory.
``memory_replicates=chunk`` fits one chunk of the size the engine uses for ``replicates`` data
sets (chunks run one after another, so the peak is one chunk's)."""

from __future__ import annotations

import statistics
import time

from runs.bench import common

NAME = "memory"
MEMORY_LIMIT_MB = 4000.0  # the check: peak RSS at most 4 GB


def run(task) -> dict:
    from models import engine

    n_groups = task["memory_groups"]
    example = {k: v[0] for k, v in common.data(task, 1, n_groups=n_groups).items()}
    static, dynamic = engine._split_hyper(common.HYPER)
    form = engine.resolve("hierarchical", task["engine_parameterization"], example, static, dynamic)
    latent = engine._latent_shapes("hierarchical", static, form, example, dynamic)
    n_latent = engine.draws_width(latent, form, example)
    per_replicate = engine.bytes_per_replicate(n_latent, common.inference(task))
    cap = engine.BATCH  # the engine's cap on data sets at once

    def chunk_of(n_rep):  # as engine.fit chunks n_rep data sets
        return int(max(1, min(n_rep, common.budget(task) // per_replicate, cap)))

    full = task["replicates"]  # the reference: 100
    n = chunk_of(full) if task["memory_replicates"] == "chunk" else task["memory_replicates"]
    row = timed_engine_fit(task, common.data(task, n, n_groups=n_groups))
    return {"n_groups": n_groups, "replicates": n, "full_replicates": full, "n_latent": n_latent,
            "bytes_per_replicate": per_replicate, "budget_bytes": common.budget(task),
            "batch_cap": cap, "chunk": chunk_of(n), **row}


def timed_engine_fit(task, data) -> dict:
    """One engine.fit call: compile seconds from JAX's compile events, the rest is sampling."""
    n = len(data["n"])
    with common.CompileClock() as clock:
        start = time.perf_counter()
        fit = common.engine_fit(task, data, common.engine_keys(n))[0]
        total = time.perf_counter() - start
    sampling = total - clock.seconds
    return {"compile_s": clock.seconds, "sampling_s": sampling, "s_per_fit": sampling / n,
            "leapfrog_per_fit": float(fit.n_leapfrog.mean()),
            "min_ess_median": float(statistics.median(common.engine_min_ess(fit)))}
