"""``numpyro_loop``: the way most people write it: a new ``numpyro.infer.MCMC(NUTS(model), ...)``
per data set, the model a plain NumPyro function of the data (``LocScaleReparam``), NumPyro's
default chain method (sequential chains on one device). It traces and compiles in every fit, so
that is part of its cost. ``model``, ``new_mcmc`` and ``sample`` serve ``numpyro_reused`` too."""

from __future__ import annotations

import time
import warnings

from runs.bench import common

NAME = "numpyro_loop"
LABEL = "NumPyro, new MCMC per data set"
ALL_DATA_SETS = False


def missing() -> str | None:
    return None


def run(task) -> dict:
    lo, hi = common.baseline_share(task)
    data = common.data(task, hi)
    fits, seconds, notes = [], [], set()
    with common.CompileClock() as clock:
        for r in range(lo, hi):
            start = time.perf_counter()
            fits.append(sample(new_mcmc(task, jit_model_args=False, notes=notes), data, r))
            seconds.append(time.perf_counter() - start)
    return common.baseline_result(fits, compile_s=clock.seconds,
                                  sampling_s=sum(seconds) - clock.seconds, compile_in_fit=True,
                                  notes=notes, first=lo)


def model(ybar, n, ss):
    """The reference model, non-centered by ``LocScaleReparam``, with the engine's likelihood of
    the sufficient statistics (``models.likelihood.observe``: sigma's half-normal prior and one
    factor without the data's constants), so that every method samples the same density."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer.reparam import LocScaleReparam

    from models.likelihood import observe

    hyper = common.HYPER
    mu = numpyro.sample("mu", dist.Normal(hyper["mu_loc"], hyper["mu_scale"]))
    tau = numpyro.sample("tau", dist.HalfNormal(hyper["tau_scale"]))
    with numpyro.plate("groups", ybar.shape[-1]):
        with numpyro.handlers.reparam(config={"theta": LocScaleReparam(centered=0)}):
            theta = numpyro.sample("theta", dist.Normal(mu, tau))
    observe(theta, {"ybar": ybar, "n": n, "ss": ss}, hyper["sigma_scale"])


def new_mcmc(task, jit_model_args, notes):
    """A new MCMC object of ``model``; NumPyro's warnings go into ``notes``."""
    from numpyro.infer import MCMC, NUTS

    with warnings.catch_warnings(record=True) as caught:  # "not enough devices ... sequentially"
        warnings.simplefilter("always")
        made = MCMC(NUTS(model), num_warmup=task["warmup"], num_samples=task["draws"],
                    num_chains=task["chains"], progress_bar=False, jit_model_args=jit_model_args)
    notes.update(f"NumPyro warned: {w.message}".split(". If")[0] for w in caught)
    return made


def sample(mcmc, data, r) -> dict:
    """Run ``mcmc`` on data set ``r`` with key ``r``: its draws by chain and divergences."""
    import jax
    import numpy as np

    mcmc.run(jax.random.PRNGKey(r), data["ybar"][r], data["n"][r], data["ss"][r])
    draws = mcmc.get_samples(group_by_chain=True)
    fit = {site: np.asarray(draws[site]) for site in common.SITES}
    fit["diverging"] = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
    return fit
