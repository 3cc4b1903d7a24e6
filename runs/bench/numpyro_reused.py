"""``numpyro_reused``: ``numpyro_loop``'s model and settings, with one NumPyro ``MCMC`` object
reused for every data set (``jit_model_args=True``). Its one-off compile is its first run less a
second run on the same data set and key."""

from __future__ import annotations

import time

from runs.bench import common, numpyro_loop

NAME = "numpyro_reused"
LABEL = "NumPyro, one MCMC, jit_model_args"
ALL_DATA_SETS = False


def missing() -> str | None:
    return None


def run(task) -> dict:
    """The MCMC object runs on the share's first data set first, then on every data set of the
    share."""
    lo, hi = common.baseline_share(task)
    n = hi - lo
    data = common.data(task, hi)
    notes = set()
    mcmc = numpyro_loop.new_mcmc(task, jit_model_args=True, notes=notes)
    start = time.perf_counter()
    numpyro_loop.sample(mcmc, data, lo)
    first = time.perf_counter() - start
    fits, seconds = [], []
    with common.CompileClock() as clock:
        for r in range(lo, hi):
            start = time.perf_counter()
            fits.append(numpyro_loop.sample(mcmc, data, r))
            seconds.append(time.perf_counter() - start)
    if clock.seconds > 0.05 * sum(seconds):
        notes.add(f"JAX compiled again in every run: {clock.seconds / n:.2f} s of its "
                  f"{sum(seconds) / n:.2f} s per fit (part of its sampling time)")
    return common.baseline_result(fits, compile_s=max(first - seconds[0], 0.0),
                                  sampling_s=sum(seconds), compile_in_fit=False, notes=notes,
                                  first=lo)
