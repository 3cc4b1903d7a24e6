"""``python -m runs.sbc``: simulation-based calibration of every prior spec that makes draws.

Talts, Betancourt, Simpson, Vehtari & Gelman (2018), Validating Bayesian inference algorithms with
simulation-based calibration, arXiv:1804.06788. For each spec and data form: draw (mu, tau, theta,
sigma) from the spec's own prior and data from its own likelihood (``numpyro.infer.Predictive``
on the same model function the engine fits), fit every data set in one program, and record the
rank of each true value among ``rank_draws`` thinned posterior draws. If the spec and the engine
compute the posterior they claim, each rank is uniform on 0..rank_draws; ``analysis.sbc`` tests
that and draws the rank histograms.

``flat`` has no proper prior to draw from: its data come from ``normal`` with scale 10 instead.
That is exact, not an approximation: under a flat prior the posterior of theta_j - ybar_j does not
depend on theta_j (a location family), so the ranks are uniform whatever distribution theta has.

Its settings are ``conf/sbc.yaml`` (``python -m runs.sbc --help``); ``batch`` is the most data sets
in one program call: in a call the data sets queue for the sampler's rows of lanes, so that a hard
prior draw holds up its own row only, and a data set's fit does not depend on the batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import runs  # noqa: F401  (XLA threads)
import jax
import numpy as np
import pandas as pd
from numpyro.infer import Predictive
from omegaconf import OmegaConf

import models
from models import engine
from analysis import cli
from runs import store
from runs.checks import is_int

CONF_PRIOR = Path(__file__).resolve().parent.parent / "conf" / "prior"
FORMS = ("known_sigma", "sufficient", "binomial")
STAND_IN = {"flat": ("normal", {"loc": 0.0, "scale": 10.0})}  # spec -> (spec, hyper) to draw from


def prior_config(name: str) -> dict:
    """The prior's yaml (``conf/prior/<name>.yaml``) as a dict."""
    path = CONF_PRIOR / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in CONF_PRIOR.glob("*.yaml")))
        raise ValueError(f"unknown prior {name!r}; known priors: {known}")
    return OmegaConf.to_container(OmegaConf.load(path))


def drawing_priors() -> list[str]:
    """Every prior in conf/prior whose spec makes draws (SBC needs a posterior sample)."""
    names = sorted(p.stem for p in CONF_PRIOR.glob("*.yaml"))
    return [n for n in names if engine.method(prior_config(n)["spec"]) == "nuts"]


def form_blocker(spec: str, form: str) -> str | None:
    """Why ``spec`` cannot be calibrated on ``form``, or None: SBC must fit every data set its
    prior draws, and a spec that declines some binomial data sets (``unsupported``: ``flat``
    has no proper posterior for a group with no or all successes) would calibrate a selection."""
    if form == "binomial" and hasattr(models.load(spec), "unsupported"):
        return (f"{spec} declines some binomial data sets (models/{spec}.py: unsupported), and "
                "SBC must fit every data set its prior draws")
    return None


def template(form: str, n_groups: int, group_size: int) -> dict:
    """The fixed part of a data set: known standard errors from 1 to 4 (a mix of groups that
    are well and poorly measured), the group sizes, or the binomial trials (``group_size`` per
    group; theta on the logit scale)."""
    if form == "known_sigma":
        return {"se": np.linspace(1.0, 4.0, n_groups, dtype=np.float32)}
    if form == "sufficient":
        return {"n": np.full(n_groups, group_size, np.int32)}
    if form == "binomial":
        return {"trials": np.full(n_groups, group_size, np.int32)}
    raise ValueError(f"form={form!r}; allowed: {', '.join(FORMS)}")


def draw(spec: str, hyper: dict, fixed: dict, key, replicates: int):
    """(data, truth) of ``replicates`` data sets drawn from the spec's prior and likelihood."""
    if hyper.get("mu_family") == "flat":
        raise ValueError("SBC draws from the prior: mu_family=flat has no proper prior to draw from")
    draw_spec, draw_hyper = spec, hyper
    if spec in STAND_IN:
        draw_spec, stand_in = STAND_IN[spec]
        draw_hyper = {**stand_in, **{k: v for k, v in hyper.items() if k == "sigma_scale"}}
    model = models.load(draw_spec).model
    sample = Predictive(model, num_samples=replicates)(key, data=dict(fixed), **draw_hyper)
    data = {k: np.broadcast_to(v, (replicates, *v.shape)) for k, v in fixed.items()}
    for site in ("y", "ybar", "ss"):
        if site in sample:
            data[site] = np.asarray(sample[site], np.float32)
    if "successes" in sample:
        data["successes"] = np.asarray(sample["successes"], np.int32)
    truth = {
        site: np.asarray(sample[site], np.float32).reshape(replicates, -1)
        for site in engine.ESTIMANDS
        if site in sample
    }
    # a site fixed by the prior (tau_family=fixed) has nothing to calibrate: every rank would tie
    return data, {k: v for k, v in truth.items() if np.ptp(v, axis=0).max() > 0}


def calibrate(prior: dict, form: str, *, replicates: int, n_groups: int, group_size: int,
              inference: engine.Inference, rank_draws: int, seed: int, batch: int | None = None,
              fit_hyper: dict | None = None, fit_data=None) -> pd.DataFrame:
    """One row per (replicate, estimand) with the rank of the true value; ``fit_hyper`` and
    ``fit_data`` (a function of the data) let a test fit a deliberately wrong model."""
    reason = form_blocker(prior["spec"], form)
    if reason is not None:
        raise ValueError(reason)
    key_draw, key_fit = jax.random.split(jax.random.fold_in(jax.random.key(seed), FORMS.index(form)))
    data, truth = draw(prior["spec"], prior["hyper"], template(form, n_groups, group_size),
                       key_draw, replicates)
    fit = engine.fit(
        prior["spec"],
        data if fit_data is None else fit_data(data),
        jax.random.split(key_fit, replicates),
        prior["hyper"] if fit_hyper is None else fit_hyper,
        parameterization=prior["parameterization"],
        inference=inference,
        max_batch=batch,
        rank_against=truth,
        rank_draws=rank_draws,
    )
    status = store.fit_status(fit, inference.chains)
    frames = []
    for site, ranks in fit.ranks.items():
        n_par = ranks.shape[1]
        frames.append(pd.DataFrame({
            "prior": prior["name"], "spec": prior["spec"], "form": form,
            "replicate": np.repeat(np.arange(replicates), n_par),
            "param": site, "index": np.tile(np.arange(n_par), replicates),
            "true_value": truth[site].ravel(), "rank": np.asarray(ranks).ravel(),
            "rank_draws": rank_draws,
            # ranks of draws thinned to rank_draws are close to independent only if ESS >= that
            "ess_bulk": np.asarray(fit.sites[site].ess_bulk).ravel(),
            "n_divergent": np.repeat(fit.n_divergent, n_par),
            "status": np.repeat(status, n_par),
        }))
    return pd.concat(frames, ignore_index=True)


def run(cfg) -> None:
    """``python -m runs.sbc``: the rank table of every chosen prior and data form, written to ``out``."""
    ints = {k: _positive_int(k, cfg[k]) for k in INTEGER_KEYS}
    priors = drawing_priors() if cfg.priors == "all" else _names("priors", cfg.priors)
    forms = _names("forms", cfg.forms)
    for form in forms:
        if form not in FORMS:
            sys.exit(f"error: forms: {form!r} is not allowed; allowed: {', '.join(FORMS)}")
    configs = []
    blocked = {}  # (prior name, form) -> why it cannot be calibrated
    for name in priors:
        try:
            configs.append(prior_config(name))
        except ValueError as err:
            sys.exit(f"error: priors: {err}")
        if engine.method(configs[-1]["spec"]) != "nuts":
            sys.exit(f"error: priors: {name!r} makes no draws; SBC needs a posterior sample")
        for form in forms:
            reason = form_blocker(configs[-1]["spec"], form)
            if reason is not None and cfg.priors != "all":
                sys.exit(f"error: forms: {form!r} is not allowed with prior {name!r}: {reason}")
            if reason is not None:
                blocked[name, form] = reason
    # the target acceptance the studies use (conf/inference/default.yaml: auto)
    inference = engine.Inference(chains=ints["chains"], warmup=ints["warmup"], draws=ints["draws"],
                                 target_accept="auto")
    if ints["rank_draws"] > inference.chains * inference.draws or (ints["rank_draws"] + 1) % 10:
        sys.exit(f"error: rank_draws={ints['rank_draws']} is not allowed: at most chains x draws "
                 f"= {inference.chains * inference.draws}, and rank_draws + 1 a multiple "
                 "of 10 (analysis.sbc tests on 10 bins)")
    out = Path(cfg.out)
    for prior in configs:
        for form in forms:
            if (prior["name"], form) in blocked:  # priors=all: named, not calibrated
                print(f"not calibrated: {prior['name']} on {form}: {blocked[prior['name'], form]}",
                      flush=True)
                continue
            table = calibrate(prior, form, replicates=ints["replicates"],
                              n_groups=ints["n_groups"], group_size=ints["group_size"],
                              inference=inference, rank_draws=ints["rank_draws"], seed=ints["seed"],
                              batch=ints["batch"])
            path = out / f"{prior['name']}-{form}.parquet"
            store.write_atomic(table, path)
            flagged = table.groupby("replicate")["status"].first().ne("ok").mean()
            print(f"{path}: {table['replicate'].nunique()} fits, {flagged:.1%} flagged", flush=True)


INTEGER_KEYS = ("replicates", "n_groups", "group_size", "chains", "warmup", "draws", "rank_draws",
                "seed", "batch")


def _names(key: str, value) -> list[str]:
    """A list of names: ``[a,b]`` or one name."""
    names = [value] if isinstance(value, str) else list(value)
    if not names or not all(isinstance(n, str) for n in names):
        sys.exit(f"error: {key}={value!r} is not allowed: a list of names, e.g. {key}=[a,b]")
    return names


def _positive_int(key: str, value) -> int:
    if not is_int(value) or value < 1:
        sys.exit(f"error: {key}={value!r} is not allowed: a positive integer")
    return value


main = cli.app("sbc", run)


if __name__ == "__main__":
    main()
