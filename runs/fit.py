"""``python -m runs.fit dataset=<name> prior=<prior>``: fit one data set, print and store a summary.

``dataset`` is a shipped data set (``sim.datasets.available()``: eight_schools, efron_morris,
radon, rat_tumors) or the path of a CSV file (its columns: ``sim.datasets``, docs/scenarios.md "Fitting one
data set"). The summary (posterior mean, sd, 95 % interval, R-hat, bulk ESS per parameter, the
fit's divergences and status, and the error against the truth where the data set has one) is
printed and written to ``<results_root>/fit/<dataset>/<prior>-<hash>.parquet``. With
``-m prior=glob(*)`` every prior is fitted on the same data with the same sampler keys, and a
side-by-side table of posterior means (and total squared errors, where there is a truth) is
printed at the end and written as ``comparison.parquet`` in the multirun's folder.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from pathlib import Path

import hydra
import jax
import numpy as np
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import models
from models import closed_form, engine
from runs import app, config, job, store
from sim import datasets

log = logging.getLogger(__name__)

SHOWN_GROUPS = 20
"""Groups printed in a single fit's table (all of them are in the parquet file)."""


def dataset_identity(cfg: DictConfig, ds: datasets.Dataset) -> dict:
    """What names the data: the shipped name, or a CSV's path and the SHA-256 of its bytes."""
    ident = {"dataset": ds.name}
    if str(cfg.dataset).endswith(".csv"):
        ident["dataset_file"] = str(Path(cfg.dataset).resolve())
        ident["dataset_sha256"] = hashlib.sha256(Path(cfg.dataset).read_bytes()).hexdigest()
    return ident


def run(cfg: DictConfig) -> tuple[Path, pd.DataFrame]:
    """Fit ``cfg.prior`` on ``cfg.dataset``; write and return the summary table."""
    config.validate(cfg)
    ds = datasets.load(cfg.dataset)  # a DataError names the file, line, column and value
    ident = {
        **dataset_identity(cfg, ds),
        "results_version": engine.RESULTS_VERSION,
        "seed": int(cfg.seed),
        "prior": OmegaConf.to_container(cfg.prior),
        "inference": OmegaConf.to_container(cfg.inference),
    }
    chash = config.config_hash(ident)
    path = Path(cfg.results_root) / "fit" / ds.name / f"{cfg.prior.name}-{chash}.parquet"
    job.use_compilation_cache(cfg.get("compilation_cache"))

    hyper = OmegaConf.to_container(cfg.prior.hyper)
    # the same sampler key for every prior, so side-by-side differences are the priors'
    keys = jax.random.split(jax.random.key(int(cfg.seed)), 1)
    fit_form = engine.form(cfg.prior.spec, cfg.prior.parameterization, ds.batch(), hyper)
    inference = engine.settings(cfg.prior.spec, cfg.prior.parameterization, ds.batch(), hyper,
                                config.inference(cfg))
    started = time.perf_counter()
    fit = engine.fit(
        cfg.prior.spec, ds.batch(), keys, hyper,
        parameterization=cfg.prior.parameterization,
        inference=inference,
        memory_budget_bytes=cfg.memory_budget_gb * 1e9,
    )
    seconds = time.perf_counter() - started
    mismatched = getattr(models.load(cfg.prior.spec), "NOT_SCENARIO_ESTIMANDS", ())
    truth = {k: np.asarray(v)[None] for k, v in ds.truth.items() if k not in mismatched}
    identity_cols = {
        **dataset_identity(cfg, ds),
        **config.fit_columns(cfg, hyper, fit_form, inference,
                             engine.sampler_groups(cfg.prior.spec, cfg.prior.parameterization,
                                                   ds.batch(), hyper, None)),
    }
    table = store.rows(
        fit, truth, np.array([0]), identity_cols, raw=closed_form.raw_estimates(ds.batch()),
        chains=cfg.inference.chains,
        exact=job.exact_posterior(cfg.prior.spec, hyper, ds.batch(),
                                  {k: v for k, v in truth.items() if k in engine.ESTIMANDS}),
    ).drop(columns="replicate")
    per_group = table["param"].isin(("theta", "p"))
    table.insert(
        table.columns.get_loc("index") + 1, "group",
        np.where(per_group, np.asarray(ds.labels, dtype=object)[table["index"]], ""),
    )
    table.insert(
        table.columns.get_loc("true_value") + 1, "error",
        table["posterior_mean"] - table["true_value"],
    )
    for k, v in store.provenance(chash, seconds).items():
        table[k] = v
    store.write_atomic(table, path)
    return path, table


def describe(table: pd.DataFrame, path: Path) -> str:
    """The printed summary of one fit."""
    first = table.iloc[0]
    lines = [
        f"{first['dataset']} · prior {first['prior']} ({first['prior_spec']}, "
        f"{first['prior_parameterization']}) · {first['method']}"
        + (
            f" · {first['chains']} chains x {first['draws']} draws · "
            f"{first['n_divergent']} divergent transitions"
            if first["method"] == "nuts" else ""
        )
        + f" · status {store.worst(table['status'])}"
    ]
    if first["status"] == "skipped":
        lines.append(f"not fitted: {first['skip_reason']}")
    cols = ["param", "group", "posterior_mean", "posterior_sd", "lower_95", "upper_95", "rhat",
            "ess_bulk"]
    has_truth = table["true_value"].notna().any()
    if has_truth:
        cols += ["true_value", "error"]
    shown = table[cols].rename(columns={
        "posterior_mean": "mean", "posterior_sd": "sd", "lower_95": "2.5%", "upper_95": "97.5%",
        "true_value": "truth",
    })
    groups = table["group"].ne("")
    n_groups = table.loc[groups, "index"].nunique()
    if n_groups > SHOWN_GROUPS:
        shown = shown[~groups | (table["index"] < SHOWN_GROUPS)]
    lines.append(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if n_groups > SHOWN_GROUPS:
        lines.append(f"... and {n_groups - SHOWN_GROUPS} more groups in the file")
    if has_truth:
        for param, sse in squared_errors(table).items():
            lines.append(f"total squared error of {param} against the truth: {sse:.4g}")
    lines.append(f"written: {path}")
    return "\n".join(lines)


def squared_errors(table: pd.DataFrame) -> dict:
    """Sum over groups of (posterior mean - truth)^2, per family that has a truth."""
    out = {}
    for param in ("p", "theta"):
        sel = table[(table["param"] == param) & table["true_value"].notna()]
        if len(sel):
            out[param] = float((sel["error"] ** 2).sum())
    return out


def compare(tables: list[pd.DataFrame], ds: datasets.Dataset) -> tuple[pd.DataFrame, str]:
    """Side by side: one column of posterior means per prior, and the raw estimates and the
    truth where there are, then the total squared errors and each fit's status."""
    tables = [t.assign(label=label) for t, label in zip(tables, _labels(tables))]
    long = pd.concat(tables, ignore_index=True)
    key = ["param", "group", "index"]
    order = pd.MultiIndex.from_frame(long.drop_duplicates(key)[key])
    priors = list(dict.fromkeys(long["label"]))
    wide = long.pivot(index=key, columns="label", values="posterior_mean").reindex(order)[priors]
    family = wide.index.get_level_values("param")
    extra = {}
    raw_family, raw = raw_estimates(ds)
    extra["raw"] = np.where(family == raw_family, raw[wide.index.get_level_values("index")], np.nan)
    truth = long.drop_duplicates(key).set_index(key)["true_value"].reindex(wide.index)
    if truth.notna().any():
        extra["truth"] = truth.to_numpy()
    wide = pd.concat([pd.DataFrame(extra, index=wide.index), wide], axis=1)
    lines = [wide.reset_index(level="index", drop=True).to_string(float_format=lambda v: f"{v:.4g}")]
    if "truth" in wide:
        lines.append("total squared error against the truth:")
        for param in ("p", "theta"):
            sel = (family == param) & wide["truth"].notna().to_numpy()
            if sel.any():
                sse = (wide[sel].drop(columns="truth").sub(wide.loc[sel, "truth"], axis=0)) ** 2
                sse = sse.sum(min_count=1).dropna()
                lines.append(f"  {param}: " + ", ".join(f"{k} {v:.4g}" for k, v in sse.items()))
    status = long.groupby("label")["status"].agg(store.worst)
    divergent = long.drop_duplicates("label").set_index("label")["n_divergent"]
    lines.append("fits: " + ", ".join(
        f"{p} {status.loc[p]} ({divergent.loc[p]} divergent)" for p in priors
    ))
    return long, "\n".join(lines)


def _labels(tables: list[pd.DataFrame]) -> list[str]:
    """Each fit's column name: its prior's name, with the settings that tell apart fits of the
    same prior name (``-m prior=hierarchical prior.hyper.tau_family=half_normal,half_cauchy``)."""
    firsts = [t.iloc[0] for t in tables]
    labels = []
    for row in firsts:
        same = [r for r in firsts if r["prior"] == row["prior"]]
        settings = [c for c in row.index if c.startswith("prior_") or c in SETTINGS]
        varying = [c for c in settings if len({str(r.get(c)) for r in same}) > 1]
        labels.append(", ".join(
            [row["prior"], *(f"{c.removeprefix('prior_')}={row[c]}" for c in varying)]
        ))
    return labels


SETTINGS = ("chains", "warmup", "draws", "target_accept", "max_tree_depth", "seed")


def raw_estimates(ds: datasets.Dataset):
    """(family, values): each group's own estimate, before any pooling: successes / trials as
    ``p``, or ``y`` / ``ybar`` as ``theta``."""
    d = ds.data
    if "trials" in d:
        return "p", np.asarray(d["successes"]) / np.asarray(d["trials"])
    return "theta", np.asarray(d["y"] if "y" in d else d["ybar"], float)


class CompareCallback(Callback):
    """At the end of a multirun, read every job's summary and print them side by side."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep = Path(config.hydra.sweep.dir)
        pointers = sorted(sweep.glob("*/result_path.txt"), key=lambda p: int(p.parent.name))
        jobs = [(p.parent, pd.read_parquet(p.read_text().strip())) for p in pointers]
        if not jobs:
            return
        # one comparison per data set (``dataset=a,b`` sweeps several)
        by_dataset: dict = {}
        for folder, table in jobs:
            job_cfg = OmegaConf.load(folder / ".hydra" / "config.yaml")
            by_dataset.setdefault(str(job_cfg.dataset), []).append(table)
        frames = []
        for dataset, tables in by_dataset.items():
            ds = datasets.load(dataset)
            long, text = compare(tables, ds)
            frames.append(long)
            print(f"\n{ds.name}: {len(tables)} priors side by side (posterior means)\n{text}")
        out = sweep / "comparison.parquet"
        store.write_atomic(pd.concat(frames, ignore_index=True), out)
        print(f"written: {out}")


@hydra.main(version_base="1.3", config_path=str(config.CONF), config_name="fit")
def main(cfg: DictConfig) -> None:
    try:
        path, table = run(cfg)
    except (config.ConfigError, datasets.DataError) as err:
        sys.exit(f"error: {err}")
    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN:
        Path(hc.runtime.output_dir, "result_path.txt").write_text(f"{path.resolve()}\n")
        log.info("%s: %s, written %s", cfg.prior.name, store.worst(table["status"]), path)
    else:
        print(describe(table, path))


def cli() -> None:
    """Check the command line, then run the Hydra app (``runs.app.start``)."""
    app.start(main, "fit")


if __name__ == "__main__":
    cli()
