"""``stan``: Stan through PyStan (its NUTS with diagonal adaptation, Stan's defaults but the
workload's warmup and draws) on the model as users write it (non-centered,
``runs.bench.written``). PyStan builds a program per data set: the C++ compile happens once
(httpstan keeps the compiled model; the child's cache folder is fresh, so it is cold), and every
later build with new data reuses it and is part of the fit's time; chains run in parallel
processes. From the ``bench`` extra."""

from __future__ import annotations

import contextlib
import io
import time

from runs.bench import common, written

NAME = "stan"
LABEL = "Stan (PyStan), compiled once, built per data set"
ALL_DATA_SETS = False
FORM = "noncentered"


def missing() -> str | None:
    try:
        import stan  # noqa: F401
    except ImportError as error:
        return f"PyStan is not installed ({error}); `make bench` installs it"
    return None


def run(task, form: str = FORM) -> dict:
    import arviz
    import stan

    lo, hi = common.baseline_share(task)
    sets = common.data(task, hi)
    code = written.stan_code(form)

    def build(r):
        one = {k: v[r].astype(float).tolist() for k, v in sets.items()}
        with contextlib.redirect_stderr(io.StringIO()):  # "Building...", per build
            return stan.build(code, data={"J": task["n_groups"], **one}, random_seed=r)

    start = time.perf_counter()
    build(lo)  # the C++ compile
    compile_s = time.perf_counter() - start
    fits, seconds = [], []
    for r in range(lo, hi):
        start = time.perf_counter()
        posterior = build(r)
        with contextlib.redirect_stderr(io.StringIO()):  # progress and gradient timing
            draws = posterior.sample(num_chains=task["chains"], num_samples=task["draws"],
                                     num_warmup=task["warmup"])
        seconds.append(time.perf_counter() - start)
        idata = arviz.from_pystan(posterior=draws)
        fit = {site: idata.posterior[site].values for site in common.SITES}
        fit["diverging"] = idata.sample_stats["diverging"].values
        fits.append(fit)
    result = common.baseline_result(
        fits, compile_s=compile_s, sampling_s=sum(seconds), compile_in_fit=False,
        notes={f"PyStan {stan.__version__ if hasattr(stan, '__version__') else ''}".strip()
               + f", {form} model; chains in parallel processes"}, first=lo)
    return result
