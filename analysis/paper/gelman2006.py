"""Gelman (2006), Figures 1 and 2: histograms of posterior draws of tau, prior density overlaid.

    python -m analysis.paper.gelman2006 results_dir=results/paper/gelman2006_fig1
    python -m analysis.paper.gelman2006 results_dir=results/paper/gelman2006_fig2

Reads the files ``runs.paper`` wrote for ``conf/figure/gelman2006_fig{1,2}.yaml`` and writes
``<results_dir>/<experiment>.png``: one panel per prior, the NUTS draws of tau as a histogram on
the shown range 0..tau_max (as a density over all draws, so draws beyond tau_max are counted in
the normalisation and reported in the panel), and the prior density of tau as a dashed line,
scaled to carry the same mass on the shown range as the histogram (as the paper overlays it: the
shape, not the height, is the point). Where the prior rises above the panel (inverse-gamma(eps,
eps) near 0) it is cut at the top.

Gelman, A. (2006). Prior distributions for variance parameters in hierarchical models.
Bayesian Analysis 1(3), 515-534. Figure 1: eight schools, (a) uniform on tau, (b)
inverse-gamma(1, 1) on tau^2, (c) inverse-gamma(0.001, 0.001) on tau^2; Figure 2: schools A, B,
C, (a) uniform on tau, (b) half-Cauchy(0, 25).
"""

from __future__ import annotations

import string
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.paper import main_of, save  # noqa: E402

BINS = 60  # histogram bins on the shown range


def read(results_dir) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(panels, draws, curves) of one experiment folder."""
    folder = Path(results_dir)
    missing = [f for f in ("panels", "draws", "curves") if not (folder / f"{f}.parquet").exists()]
    if missing:
        files = ", ".join(f"{m}.parquet" for m in missing)
        raise SystemExit(f"results_dir={str(folder)!r}: no {files} "
                         "(run python -m runs.paper +figure=<name> first)")
    return tuple(pd.read_parquet(folder / f"{f}.parquet") for f in ("panels", "draws", "curves"))


def prior_label(row) -> str:
    """The prior of tau in words, from the panel's hyperparameters."""
    family, scale = row["prior_tau_family"], row["prior_tau_scale"]
    return {
        "uniform": f"τ ~ uniform(0, {scale:g})",
        "inv_gamma": f"τ² ~ inverse-gamma({scale:g}, {scale:g})",
        "half_cauchy": f"τ ~ half-Cauchy(0, {scale:g})",
        "half_normal": f"τ ~ half-normal(0, {scale:g})",
        "half_t": f"τ ~ half-t{row.get('prior_tau_df', np.nan):g}(0, {scale:g})",
        "fixed": f"τ = {scale:g}",
    }[family]


PARAMETERIZATION = {"centered": "centered", "noncentered": "non-centered"}


def percent(p: float) -> str:
    """A share as a percentage, with small ones said as such rather than rounded to 0."""
    return "< 0.1 %" if p < 0.001 else f"{100 * p:.1f} %"


def mu_label(row) -> str:
    if row["prior_mu_family"] == "flat":
        return r"$p(\mu) \propto 1$"
    return rf"$\mu \sim \mathrm{{N}}({row['prior_mu_loc']:g}, {row['prior_mu_scale']:g}^2)$"


def draw(results_dir) -> Path:
    """Write ``<results_dir>/<experiment>.png``; return its path."""
    panels, draws, curves = read(results_dir)
    tau_max = float(panels["tau_max"].iloc[0])
    edges = np.linspace(0.0, tau_max, BINS + 1)
    width = edges[1] - edges[0]
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.3 * n, 3.9), squeeze=False)
    for k, (ax, (_, row)) in enumerate(zip(axes[0], panels.iterrows())):
        tau = draws.loc[draws["panel"] == row["panel"], "tau"].to_numpy()
        counts, _ = np.histogram(tau, edges)
        height = counts / (len(tau) * width)  # density over all draws
        inside = counts.sum() / len(tau)
        ax.bar(edges[:-1], height, width=width, align="edge", color="0.72", edgecolor="0.45",
               linewidth=0.4, label="posterior draws")
        prior = curves[(curves["panel"] == row["panel"]) & (curves["curve"] == "prior_density")]
        prior = prior[prior["tau"] <= tau_max].sort_values("tau")
        if len(prior):
            scale = inside / np.trapezoid(prior["value"], prior["tau"])
            ax.plot(prior["tau"], prior["value"] * scale, color="black", linestyle="--",
                    linewidth=1.4, label="prior density (scaled)")
        ax.set_xlim(0, tau_max)
        ax.set_ylim(0, 1.15 * height.max())
        ax.set_yticks([])
        ax.spines[["top", "right", "left"]].set_visible(False)
        ax.set_xlabel("τ, between-school sd (SAT points)", fontsize=10.5)
        notes = [f"{int(row['n_divergent'])} divergent transitions"]
        if inside < 1:
            notes.append(f"{percent(1 - inside)} of draws beyond {tau_max:g}")
        ax.set_title(f"({string.ascii_lowercase[k]}) {prior_label(row)}\n{', '.join(notes)}",
                     fontsize=11)
        ax.tick_params(labelsize=10)
    axes[0, 0].legend(loc="upper right", fontsize=9, frameon=False)
    first = panels.iloc[0]
    medians = draws.groupby("panel", sort=False)["tau"].median().reindex(panels["panel"])
    fig.suptitle(
        f"{first['caption']}\n"
        rf"$y_j \sim \mathrm{{N}}(\theta_j, \sigma_j^2)$, "
        rf"$\theta_j \sim \mathrm{{N}}(\mu, \tau^2)$, {mu_label(first)}; "
        f"schools {first['groups'].replace(',', ', ')}\n"
        f"NUTS ({PARAMETERIZATION[first['prior_parameterization']]}), {first['chains']} chains × "
        f"{first['draws']:,} draws per prior; posterior median of τ: "
        + ", ".join(f"({string.ascii_lowercase[k]}) {m:.2g}" for k, m in enumerate(medians)),
        fontsize=11,
    )
    return save(fig, results_dir, first["experiment"])


main = main_of(draw)


if __name__ == "__main__":
    main()
