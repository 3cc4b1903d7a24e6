"""``python -m runs.paper +figure=<name>``: the posterior draws behind a reproduced figure.

Each panel of a figure is one data set (or some of its groups) fitted with one prior by NumPyro's
NUTS (``numpyro.infer.MCMC``, chains vectorized); its draws are kept, not summarised, because the
figures are histograms and scatter plots of them. An experiment (``conf/figure/<name>.yaml``,
root config ``conf/paper.yaml``) says:

    name: gelman2006_fig1        # the folder results/paper/<name>/
    caption: "..."               # the figure's title line (paper, figure)
    tau_max: 30                  # tau shown on 0..tau_max; prior and exact curves cover it
    inference: {chains: 4, warmup: 1000, draws: 5000, target_accept: 0.8, max_tree_depth: 10}
    panels:                      # drawn in this order
      uniform:                   # the panel's name: letters, digits, underscores
        dataset: eight_schools   # a shipped data set (sim.datasets) or a CSV path
        groups: null             # null: every group; else a list of group labels, e.g. [A, B, C]
        prior: hierarchical      # a file of conf/prior/: its spec and default hyperparameters
        parameterization: noncentered   # default: the prior file's
        hyper: {mu_family: flat, tau_family: uniform, tau_scale: 100}   # overrides of its hyper
        inference: {draws: 2000} # overrides of the experiment's NUTS settings
    exact: {panel: uniform, n_grid: 601}   # optional: BDA3 §5.5 curves (models/_exact.py)

Every value is checked before any compute; a bad one stops the run with one line naming the key,
the value and what is allowed, and nothing is written. Every panel's sampler starts from the same
key (``seed``), as ``runs.fit`` does for its priors. Files, written atomically to
``<results_root>/paper/<name>/``:

* ``draws.parquet``: one row per kept draw: ``panel``, ``chain``, ``draw``, ``mu``, ``tau``,
  ``theta_1`` .. ``theta_J`` (groups in the panel's order), ``diverging``;
* ``panels.parquet``: one row per panel: its data, prior, NUTS settings, ``n_divergent``, R-hat
  and bulk ESS (of tau, and the worst over mu, tau, theta), ``tau_max``, the caption and provenance;
* ``curves.parquet``: tau on a grid and a curve's value there (``panel``, ``curve``, ``group``,
  ``tau``, ``value``): ``prior_density`` of tau for each panel, and with ``exact`` the BDA3 §5.5
  curves ``tau_density`` (p(tau | y), eq. 5.21), ``mu_mean``, ``mu_sd`` (eq. 5.20),
  ``theta_mean``, ``theta_sd`` (E and sd of theta_j | tau, y; Figures 5.6 and 5.7).

An experiment whose files exist with the same settings (their hash) is not recomputed unless
``force=true``. The figures are drawn by ``analysis.paper.<module>`` from these files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import sys
import time
from pathlib import Path

import hydra
import jax
import numpy as np
import pandas as pd
from numpyro.infer import MCMC, NUTS
from omegaconf import DictConfig, OmegaConf

from models import _exact, diagnostics, engine
from models.priors import tau_prior
from runs import app, config, job, store
from runs.checks import is_int, is_number, require
from sim import datasets

log = logging.getLogger(__name__)

CONF_PRIOR = Path(__file__).resolve().parent.parent / "conf" / "prior"
PANEL_KEYS = ("dataset", "groups", "prior", "parameterization", "hyper", "inference")
EXACT_KEYS = ("panel", "n_grid")
TOP_KEYS = ("name", "caption", "seed", "results_root", "tau_max", "force", "compilation_cache",
            "inference", "panels", "exact")
INFERENCE_KEYS = tuple(f.name for f in dataclasses.fields(engine.Inference))
FILES = ("draws.parquet", "panels.parquet", "curves.parquet")
PRIOR_GRID = 801  # points of each prior density curve
_RHAT = jax.jit(jax.vmap(diagnostics.rhat_rank))
_ESS = jax.jit(jax.vmap(diagnostics.ess_bulk))


@dataclasses.dataclass(frozen=True)
class Panel:
    """One panel, checked: its data (the chosen groups), prior and NUTS settings."""

    name: str
    dataset: datasets.Dataset
    prior: dict  # {name, spec, parameterization, hyper}, as a conf/prior file
    inference: engine.Inference


def validate(cfg: DictConfig) -> tuple[list[Panel], dict | None]:
    """The panels and the exact-curve settings of ``cfg``; ConfigError on the first bad value."""
    for key in cfg:
        if key not in TOP_KEYS:
            require(False, str(key), cfg[key],
                  f"not a key of a paper experiment; keys: {', '.join(TOP_KEYS)}")
    name = "???" if OmegaConf.is_missing(cfg, "name") else cfg.name
    require(isinstance(name, str) and name.isidentifier(), "name", name,
             "a name of letters, digits and underscores (pick one with +figure=<name>)")
    require(isinstance(cfg.caption, str), "caption", cfg.caption, "a string")
    require(is_int(cfg.seed) and cfg.seed >= 0, "seed", cfg.seed, "an integer >= 0")
    require(is_number(cfg.tau_max) and cfg.tau_max > 0, "tau_max", cfg.tau_max, "a number > 0")
    require(isinstance(cfg.force, bool), "force", cfg.force, "true or false")
    base = _inference(cfg.inference, "inference", {})
    panels = cfg.panels
    require(isinstance(panels, DictConfig) and len(panels) > 0, "panels",
             OmegaConf.to_container(panels) if isinstance(panels, DictConfig) else panels,
             "a mapping of at least one panel name to its settings")
    checked = [_panel(str(k), panels[k], base) for k in panels]
    exact = None if cfg.exact is None else _exact_settings(cfg.exact, checked)
    return checked, exact


def _inference(node, key: str, base: dict) -> dict:
    """NUTS settings: ``base`` (already checked) updated by ``node``, whose values are checked."""
    require(isinstance(node, DictConfig), key, node, "a mapping of NUTS settings")
    for k in node:
        require(k in INFERENCE_KEYS, f"{key}.{k}", node[k],
                 f"not a NUTS setting; settings: {', '.join(INFERENCE_KEYS)}")
    out = {**base, **OmegaConf.to_container(node)}
    least = {"chains": (2, " (R-hat compares chains)"), "warmup": (1, ""),
             "draws": (4, " (split R-hat, ESS)"), "max_tree_depth": (1, "")}
    for k, (low, why) in least.items():
        require(is_int(out.get(k)) and out[k] >= low, f"{key}.{k}", out.get(k),
                 f"an integer >= {low}{why}")
    ta = out.get("target_accept")
    require(is_number(ta) and 0 < ta < 1, f"{key}.target_accept", ta, "a number in (0, 1)")
    return out


def _panel(name: str, node, base_inference: dict) -> Panel:
    where = f"panels.{name}"
    require(name.isidentifier(), where, name, "a panel name of letters, digits and underscores")
    require(isinstance(node, DictConfig), where, node,
             f"a mapping with keys {', '.join(PANEL_KEYS)}")
    for k in node:
        require(k in PANEL_KEYS, f"{where}.{k}", node[k],
                 f"not a panel setting; settings: {', '.join(PANEL_KEYS)}")
    require(node.get("dataset") is not None, f"{where}.dataset", None,
             f"a shipped data set ({', '.join(datasets.available())}) or a CSV path")
    try:
        ds = datasets.load(str(node.dataset))
    except datasets.DataError as err:
        require(False, f"{where}.dataset", node.dataset, str(err))
    ds = _select_groups(ds, node.get("groups"), f"{where}.groups")

    prior_name = node.get("prior", "hierarchical")
    known = sorted(p.stem for p in CONF_PRIOR.glob("*.yaml"))
    require(prior_name in known, f"{where}.prior", prior_name, f"one of {', '.join(known)}")
    prior = OmegaConf.load(CONF_PRIOR / f"{prior_name}.yaml")
    hyper = node.get("hyper") or {}
    require(isinstance(hyper, (dict, DictConfig)), f"{where}.hyper", hyper,
             "a mapping of hyperparameter overrides")
    for k in hyper:
        require(k in prior.hyper, f"{where}.hyper.{k}", hyper[k],
                 f"not a hyperparameter of {prior_name}; it takes {', '.join(sorted(prior.hyper))}")
    prior = OmegaConf.merge(prior, {"hyper": hyper})
    if node.get("parameterization") is not None:
        prior.parameterization = node.parameterization
    # the figures show numpyro's MCMC draws of theta itself: no collapsed or automatic form
    require(prior.parameterization in ("centered", "noncentered"), f"{where}.parameterization",
            prior.parameterization, f"one of centered, noncentered for spec {prior.spec}")
    try:
        config.validate_prior(prior)
    except config.ConfigError as err:  # name the panel's key, not the prior file's
        raise config.ConfigError(str(err).replace("prior.", f"{where}.", 1)) from None
    require(engine.method(prior.spec) == "nuts", f"{where}.prior", prior_name,
             "a prior whose spec makes posterior draws (not a closed-form baseline)")
    settings = _inference(node.get("inference") or OmegaConf.create({}), f"{where}.inference",
                          base_inference)
    return Panel(name, ds, OmegaConf.to_container(prior), engine.Inference(**settings))


def _select_groups(ds: datasets.Dataset, groups, key: str) -> datasets.Dataset:
    if groups is None:
        return ds
    groups = OmegaConf.to_container(groups) if not isinstance(groups, (list, str)) else groups
    require(isinstance(groups, list) and len(groups) >= 2, key, groups,
             "null (every group) or a list of at least 2 group labels")
    labels = [str(g) for g in groups]
    for label in labels:
        require(label in ds.labels, key, label, f"a group of {ds.name}: {', '.join(ds.labels)}")
    require(len(set(labels)) == len(labels), key, groups, "each group at most once")
    index = np.array([ds.labels.index(g) for g in labels])
    return dataclasses.replace(
        ds,
        data={k: np.asarray(v)[index] for k, v in ds.data.items()},
        labels=tuple(labels),
        truth={k: np.asarray(v)[index] if np.ndim(v) else v for k, v in ds.truth.items()},
    )


def _exact_settings(node, panels: list[Panel]) -> dict:
    require(isinstance(node, DictConfig), "exact", node, "null or a mapping {panel, n_grid}")
    for k in node:
        require(k in EXACT_KEYS, f"exact.{k}", node[k],
                 f"not a setting; settings: {', '.join(EXACT_KEYS)}")
    by_name = {p.name: p for p in panels}
    target = node.get("panel")
    require(target in by_name, "exact.panel", target, f"one of the panels: {', '.join(by_name)}")
    panel = by_name[target]
    hyper = panel.prior["hyper"]
    require(panel.dataset.form == "known_se" and hyper.get("mu_family") == "flat"
             and hyper.get("tau_family") == "uniform", "exact.panel", target,
             "a panel with y, se data, mu_family flat and tau_family uniform (BDA3 §5.5)")
    n_grid = node.get("n_grid", 601)
    require(is_int(n_grid) and n_grid >= 2, "exact.n_grid", n_grid, "an integer >= 2")
    return {"panel": target, "n_grid": n_grid}


def sample(panel: Panel, seed: int) -> tuple[pd.DataFrame, dict]:
    """NUTS draws of one panel (a table, one row per draw) and its diagnostics."""
    inf = panel.inference
    kernel = NUTS(
        engine.build_model(panel.prior["spec"], panel.prior["parameterization"]),
        target_accept_prob=inf.target_accept, max_tree_depth=inf.max_tree_depth,
    )
    mcmc = MCMC(kernel, num_warmup=inf.warmup, num_samples=inf.draws, num_chains=inf.chains,
                chain_method="vectorized", progress_bar=False)
    data = {k: np.asarray(v) for k, v in panel.dataset.data.items()}
    started = time.perf_counter()
    mcmc.run(jax.random.key(seed), data=data, extra_fields=("diverging",), **panel.prior["hyper"])
    draws = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    diverging = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
    seconds = time.perf_counter() - started

    chains, n = diverging.shape
    cols = {"panel": panel.name, "chain": np.repeat(np.arange(chains), n),
            "draw": np.tile(np.arange(n), chains)}
    series = {}  # name -> (chains, draws)
    for site in ("mu", "tau"):
        if site in draws:
            series[site] = draws[site]
    for j in range(len(panel.dataset.labels)):
        series[f"theta_{j + 1}"] = draws["theta"][..., j]
    cols.update({k: v.reshape(-1).astype(float) for k, v in series.items()})
    cols["diverging"] = diverging.reshape(-1).astype(bool)
    stacked = np.stack(list(series.values()))  # (sites, chains, draws): one compiled call each
    rhat = dict(zip(series, np.asarray(_RHAT(stacked), float)))
    ess = dict(zip(series, np.asarray(_ESS(stacked), float)))
    diag = {
        "n_divergent": int(diverging.sum()),
        "rhat_tau": float(rhat.get("tau", np.nan)), "ess_bulk_tau": float(ess.get("tau", np.nan)),
        "rhat_max": float(max(rhat.values())), "ess_bulk_min": float(min(ess.values())),
        "panel_seconds": round(seconds, 3),
    }
    return pd.DataFrame(cols), diag


def prior_curve(panel: Panel, tau_max: float) -> pd.DataFrame | None:
    """The prior density of tau on (0, tau_max] (its first point 1e-6 tau_max, as the laws'
    support is tau > 0; dense near 0, where inverse-gamma(eps, eps) on tau^2 peaks), or None when
    the prior has no tau or fixes it."""
    hyper = panel.prior["hyper"]
    if "tau_family" not in hyper or hyper["tau_family"] == "fixed":
        return None
    grid = np.union1d(np.geomspace(1e-6 * tau_max, tau_max, PRIOR_GRID // 2),
                      np.linspace(0.0, tau_max, PRIOR_GRID)[1:])
    if hyper["tau_family"] == "uniform":  # numpyro's Uniform does not check its support
        grid = grid[grid <= hyper["tau_scale"]]
    law = tau_prior(hyper["tau_family"], float(hyper["tau_scale"]), float(hyper.get("tau_df", 1.0)))
    density = np.exp(np.asarray(law.log_prob(grid), float))
    return pd.DataFrame({"panel": panel.name, "curve": "prior_density", "group": "",
                         "tau": grid, "value": density})


def exact_curves(panel: Panel, tau_max: float, n_grid: int) -> pd.DataFrame:
    """BDA3 §5.5 on the panel's data, p(mu) ∝ 1 and p(tau) ∝ 1 on (0, A], tau on 0..tau_max."""
    y, se = (np.asarray(panel.dataset.data[k], float) for k in ("y", "se"))
    upper = float(panel.prior["hyper"]["tau_scale"])
    tau = np.linspace(0.0, min(tau_max, upper), n_grid)
    posterior = _exact.tau_posterior(y, se, upper=upper)
    mu_mean, mu_var = _exact.mu_conditional(y, se, tau)
    theta_mean, theta_sd = _exact.theta_conditional(y, se, tau)
    frames = [
        pd.DataFrame({"curve": "tau_density", "group": "", "tau": tau,
                      "value": posterior.density(tau)}),
        pd.DataFrame({"curve": "mu_mean", "group": "", "tau": tau, "value": mu_mean}),
        pd.DataFrame({"curve": "mu_sd", "group": "", "tau": tau, "value": np.sqrt(mu_var)}),
    ]
    for j, label in enumerate(panel.dataset.labels):
        frames.append(pd.DataFrame({"curve": "theta_mean", "group": label, "tau": tau,
                                    "value": theta_mean[:, j]}))
        frames.append(pd.DataFrame({"curve": "theta_sd", "group": label, "tau": tau,
                                    "value": theta_sd[:, j]}))
    return pd.concat(frames, ignore_index=True).assign(panel=panel.name)


def identity(cfg: DictConfig, panels: list[Panel]) -> dict:
    """What the experiment's files depend on (its hash is stored, and compared on a rerun): the
    panels as resolved (the prior files' defaults included, and the data themselves)."""
    resolved = {
        p.name: {"dataset": p.dataset.name, "groups": list(p.dataset.labels),
                 "data_sha256": hashlib.sha256(b"".join(
                     np.ascontiguousarray(v).tobytes() for _, v in sorted(p.dataset.data.items())
                 )).hexdigest(),
                 "prior": p.prior, "inference": dataclasses.asdict(p.inference)}
        for p in panels
    }
    exact = None if cfg.exact is None else OmegaConf.to_container(cfg.exact)
    return {"name": cfg.name, "caption": cfg.caption, "seed": cfg.seed, "tau_max": cfg.tau_max,
            "panels": resolved, "exact": exact, "results_version": engine.RESULTS_VERSION}


def run(cfg: DictConfig) -> Path:
    """Check ``cfg``, fit every panel, write the experiment's files; return their folder."""
    panels, exact = validate(cfg)
    folder = Path(cfg.results_root) / "paper" / cfg.name
    chash = config.config_hash(identity(cfg, panels))
    if not cfg.force and all((folder / f).exists() for f in FILES):
        done = pd.read_parquet(folder / "panels.parquet", columns=["config_hash"])
        if (done["config_hash"] == chash).all():
            log.info("skip %s: its files exist with these settings (force=true recomputes)", folder)
            return folder
    job.use_compilation_cache(cfg.get("compilation_cache"))
    started = time.perf_counter()
    draw_tables, rows, curves = [], [], []
    for panel in panels:
        table, diag = sample(panel, int(cfg.seed))
        draw_tables.append(table)
        rows.append({**_describe(panel), "seed": int(cfg.seed), **diag})
        curve = prior_curve(panel, float(cfg.tau_max))
        if curve is not None:
            curves.append(curve)
        log.info("%s/%s: %d draws, %d divergent, R-hat(tau) %.3f, bulk ESS(tau) %.0f, %.1f s",
                 cfg.name, panel.name, len(table), diag["n_divergent"], diag["rhat_tau"],
                 diag["ess_bulk_tau"], diag["panel_seconds"])
    if exact is not None:
        panel = next(p for p in panels if p.name == exact["panel"])
        curves.append(exact_curves(panel, float(cfg.tau_max), exact["n_grid"]))
    summary = pd.DataFrame(rows).assign(
        experiment=cfg.name, caption=cfg.caption, tau_max=float(cfg.tau_max),
        **store.provenance(chash, time.perf_counter() - started))
    curve_table = (pd.concat(curves, ignore_index=True)[["panel", "curve", "group", "tau", "value"]]
                   if curves else pd.DataFrame(columns=["panel", "curve", "group", "tau", "value"]))
    store.write_atomic(pd.concat(draw_tables, ignore_index=True), folder / "draws.parquet")
    store.write_atomic(curve_table, folder / "curves.parquet")
    store.write_atomic(summary, folder / "panels.parquet")  # last: it marks the set complete
    return folder


def _describe(panel: Panel) -> dict:
    prior = panel.prior
    return {
        "panel": panel.name,
        "dataset": panel.dataset.name,
        "groups": ",".join(map(str, panel.dataset.labels)),
        "n_groups": len(panel.dataset.labels),
        "prior": prior["name"],
        "prior_spec": prior["spec"],
        "prior_parameterization": prior["parameterization"],
        **{f"prior_{k}": v for k, v in prior["hyper"].items()},
        **dataclasses.asdict(panel.inference),
    }


@hydra.main(version_base="1.3", config_path=str(config.CONF), config_name="paper")
def main(cfg: DictConfig) -> None:
    try:
        folder = run(cfg)
    except config.ConfigError as err:
        sys.exit(f"error: {err}")
    print(f"written: {folder}")


def cli() -> None:
    """Check the command line, then run the Hydra app (``runs.app.start``)."""
    app.start(main, "paper")


if __name__ == "__main__":
    cli()
