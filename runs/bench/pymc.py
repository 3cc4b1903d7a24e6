"""``pymc``: PyMC, the model built once with ``pm.Data`` containers and ``pm.set_data`` per data
set, ``chains`` chains on ``pymc_cores`` processes (default 1). The one-off compile is the first
fit less a second fit of the same data set and seed; the child process compiles into a fresh
PyTensor folder, so it is cold. PyMC comes from the ``bench`` extra (``make bench`` installs it)."""

from __future__ import annotations

import logging
import time
import warnings

from runs.bench import common

NAME = "pymc"
LABEL = "PyMC, compiled once, pm.set_data"
ALL_DATA_SETS = False


def missing() -> str | None:
    try:
        import pymc  # noqa: F401
    except ImportError as error:
        return (f"PyMC is not installed ({error}); `make bench` installs it "
                "(uv sync --extra bench)")
    return None


def run(task) -> dict:
    import pymc as pm
    import pytensor.tensor as pt

    logging.getLogger("pymc").setLevel(logging.ERROR)  # "Sampling 4 chains ..." per fit
    lo, hi = common.baseline_share(task)
    as_float = {k: v.astype("float64") for k, v in common.data(task, hi).items()}
    hyper = common.HYPER

    def sample(r):
        start = time.perf_counter()
        with model:
            pm.set_data({k: v[r] for k, v in as_float.items()})
            idata = pm.sample(draws=task["draws"], tune=task["warmup"], chains=task["chains"],
                              cores=task["pymc_cores"], random_seed=r, progressbar=False,
                              compute_convergence_checks=False)
        fit = {site: idata.posterior[site].values for site in common.SITES}
        fit["diverging"] = idata.sample_stats["diverging"].values
        return fit, time.perf_counter() - start

    start = time.perf_counter()
    with pm.Model() as model:
        ybar = pm.Data("ybar", as_float["ybar"][lo])
        n_obs = pm.Data("n", as_float["n"][lo])
        ss = pm.Data("ss", as_float["ss"][lo])
        mu = pm.Normal("mu", hyper["mu_loc"], hyper["mu_scale"])
        tau = pm.HalfNormal("tau", hyper["tau_scale"])
        sigma = pm.HalfNormal("sigma", hyper["sigma_scale"])
        eta = pm.Normal("eta", 0.0, 1.0, shape=task["n_groups"])
        theta = pm.Deterministic("theta", mu + tau * eta)
        # the engine's likelihood of the sufficient statistics (models.likelihood.observe)
        squares = pt.sum(n_obs * (ybar - theta) ** 2) + pt.sum(ss)
        pm.Potential("ybar_ss", -pt.sum(n_obs) * pt.log(sigma) - squares / (2.0 * sigma**2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sample(lo)
        first = time.perf_counter() - start
        fits, seconds = zip(*(sample(r) for r in range(lo, hi)))
    notes = {f"pm.sample(cores={task['pymc_cores']}): chains run "
             + ("one after another in this process" if task["pymc_cores"] == 1
                else f"in {task['pymc_cores']} worker processes (peak RSS: this process only)")}
    result = common.baseline_result(list(fits), compile_s=max(first - seconds[0], 0.0),
                                    sampling_s=sum(seconds), compile_in_fit=False, notes=notes,
                                    first=lo)
    result["pymc_version"] = pm.__version__
    return result
