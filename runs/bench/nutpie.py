"""``nutpie``: nutpie (Rust NUTS, numba-compiled gradients) on the PyMC model as users write it
(non-centered, ``runs.bench.written``): ``compile_pymc_model`` once, ``with_data`` per data set,
``chains`` chains on every core (``cores`` = the CPU count), nutpie's default adaptation. The
one-off compile is timed on its own; the child compiles into a fresh PyTensor folder, so it is
cold. From the ``bench`` extra."""

from __future__ import annotations

import time
import warnings

from runs import threads
from runs.bench import common, written

NAME = "nutpie"
LABEL = "nutpie, PyMC model compiled once, with_data per data set"
ALL_DATA_SETS = False
FORM = "noncentered"


def missing() -> str | None:
    try:
        import nutpie  # noqa: F401
        import pymc  # noqa: F401
    except ImportError as error:
        return f"nutpie or PyMC is not installed ({error}); `make bench` installs them"
    return None


def run(task, form: str = FORM) -> dict:
    import numpy as np
    import nutpie

    lo, hi = common.baseline_share(task)
    sets = {k: v.astype("float64") for k, v in common.data(task, hi).items()}
    cores = threads.usable_cpus()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        compiled = nutpie.compile_pymc_model(written.pymc_model(form, {k: v[lo] for k, v in sets.items()}))
        compile_s = time.perf_counter() - start
        fits, seconds = [], []
        for r in range(lo, hi):
            start = time.perf_counter()
            one = {k: v[r] for k, v in sets.items()}
            idata = nutpie.sample(compiled.with_data(**one), draws=task["draws"],
                                  tune=task["warmup"], chains=task["chains"], cores=cores,
                                  seed=r, progress_bar=False)
            post = idata.posterior
            fit = {site: post[site].values for site in ("tau", "sigma")}
            if form == "collapsed":
                fit["mu"], fit["theta"] = written.exact_draws(
                    fit["tau"], fit["sigma"], one, np.random.default_rng(r))
            else:
                fit["mu"], fit["theta"] = post["mu"].values, post["theta"].values
            fit["diverging"] = idata.sample_stats["diverging"].values
            seconds.append(time.perf_counter() - start)
            fits.append(fit)
    result = common.baseline_result(
        fits, compile_s=compile_s, sampling_s=sum(seconds), compile_in_fit=False,
        notes={f"nutpie.sample(cores={cores}), {form} model"}, first=lo)
    result["nutpie_version"] = nutpie.__version__
    return result
