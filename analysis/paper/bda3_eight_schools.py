"""BDA3 §5.5, eight schools: p(tau | y), E(theta_j | tau, y) and sd(theta_j | tau, y) against tau.

    python -m analysis.paper.bda3_eight_schools results_dir=results/paper/bda3_eight_schools

Reads the files ``runs.paper`` wrote for ``conf/figure/bda3_eight_schools.yaml`` and writes
``<results_dir>/bda3_eight_schools.png``, three panels over the book's range of tau (0-30):

* p(tau | y) under p(mu, tau) ∝ 1 (Figure 5.5; eq. 5.21), computed exactly and normalised by
  quadrature, with a histogram of the NUTS draws of tau (a density over all draws) beneath it:
  the two must agree, which checks the sampler;
* E(theta_j | tau, y) for each school (Figure 5.6; eqs. 5.17 and 5.20), from complete pooling at
  tau = 0 (every school at the precision-weighted mean) toward the school's own estimate y_j;
* sd(theta_j | tau, y) (Figure 5.7), which includes the uncertainty about mu. It depends on a
  school's standard error only, so schools with equal ones (B and G, D and F) share a curve.

Gelman, Carlin, Stern, Dunson, Vehtari & Rubin (2013), Bayesian Data Analysis, 3rd ed., §5.5.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from analysis.paper import main_of, save  # noqa: E402
from analysis.paper.gelman2006 import PARAMETERIZATION, prior_label, read  # noqa: E402

BINS = 60


def spread(values, min_gap):
    """Label heights near ``values`` (any order), moved apart to at least ``min_gap``."""
    values = np.asarray(values, float)
    order = np.argsort(values)
    placed = values[order].copy()
    for _ in range(50):  # push neighbours apart symmetrically until no pair is too close
        gaps = np.diff(placed)
        close = np.flatnonzero(gaps < min_gap - 1e-9)
        if not len(close):
            break
        for i in close:
            push = (min_gap - (placed[i + 1] - placed[i])) / 2
            placed[i] -= push
            placed[i + 1] += push
    out = np.empty_like(placed)
    out[order] = placed
    return out


def _by_school(ax, curves, name, colours, tau_max):
    """One line per school, labelled at its right end; identical curves share one label."""
    lines = {g: c.sort_values("tau")["value"].to_numpy()
             for g, c in curves[curves["curve"] == name].groupby("group")}
    tau = np.sort(curves.loc[curves["curve"] == name, "tau"].unique())
    shared = {}  # first group of each distinct curve -> the groups that share it
    for group in sorted(lines):
        twin = next((g for g in shared if np.allclose(lines[g], lines[group], rtol=1e-9)), None)
        shared.setdefault(group if twin is None else twin, []).append(group)
    for first in shared:
        ax.plot(tau, lines[first], color=colours[first], linewidth=1.6)
    ends = [(float(lines[first][-1]), groups) for first, groups in shared.items()]
    lo, hi = ax.get_ylim()
    heights = spread([end for end, _ in ends], 0.055 * (hi - lo))
    for (end, groups), height in zip(ends, heights):
        ax.annotate(", ".join(groups), xy=(tau_max, end), xytext=(tau_max * 1.03, height),
                    fontsize=10, va="center", color=colours[groups[0]],
                    arrowprops=dict(arrowstyle="-", color="0.6", linewidth=0.6))
    ax.set_xlim(0, tau_max)
    ax.spines[["top", "right"]].set_visible(False)


def draw(results_dir) -> Path:
    """Write ``<results_dir>/<experiment>.png``; return its path."""
    panels, draws, curves = read(results_dir)
    exact = curves[curves["curve"] != "prior_density"]
    target = exact["panel"].iloc[0]
    row = panels.set_index("panel").loc[target]
    tau_max = float(row["tau_max"])
    tau = draws.loc[draws["panel"] == target, "tau"].to_numpy()

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    ax = axes[0]
    edges = np.linspace(0, tau_max, BINS + 1)
    counts, _ = np.histogram(tau, edges)
    ax.bar(edges[:-1], counts / (len(tau) * (edges[1] - edges[0])), width=edges[1] - edges[0],
           align="edge", color="0.8", edgecolor="0.55", linewidth=0.4,
           label=f"NUTS draws of τ ({len(tau):,}; {int(row['n_divergent'])} divergent)")
    density = exact[exact["curve"] == "tau_density"].sort_values("tau")
    ax.plot(density["tau"], density["value"], color="black", linewidth=2,
            label="exact p(τ | y), eq. 5.21")
    ax.set_xlim(0, tau_max)
    ax.set_ylim(0, None)
    ax.set_ylabel("posterior density (1 / SAT points)", fontsize=10.5)
    ax.set_title("Marginal posterior p(τ | y)  (Fig. 5.5)", fontsize=11.5)
    ax.legend(loc="upper right", fontsize=9, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)

    groups = sorted(exact.loc[exact["curve"] == "theta_mean", "group"].unique())
    palette = "Dark2" if len(groups) <= 8 else "husl"  # Dark2: 8 colours that differ in print
    colours = dict(zip(groups, sns.color_palette(palette, len(groups))))
    theta_mean = exact[exact["curve"] == "theta_mean"]
    axes[1].set_ylim(theta_mean["value"].min() - 3, theta_mean["value"].max() + 3)
    _by_school(axes[1], exact, "theta_mean", colours, tau_max)
    axes[1].set_ylabel(r"$\mathrm{E}(\theta_j \mid \tau, y)$, effect (SAT points)", fontsize=10.5)
    axes[1].set_title("Conditional posterior means  (Fig. 5.6)", fontsize=11.5)
    theta_sd = exact[exact["curve"] == "theta_sd"]
    axes[2].set_ylim(0, theta_sd["value"].max() * 1.08)
    _by_school(axes[2], exact, "theta_sd", colours, tau_max)
    axes[2].set_ylabel(r"$\mathrm{sd}(\theta_j \mid \tau, y)$ (SAT points)", fontsize=10.5)
    axes[2].set_title("Conditional posterior sds  (Fig. 5.7)", fontsize=11.5)
    for ax in axes:
        ax.set_xlabel("τ, between-school sd (SAT points)", fontsize=10.5)
        ax.tick_params(labelsize=10)
    fig.suptitle(
        f"{row['caption']}\n"
        f"lines: exact, on a grid of τ (eqs. 5.17, 5.20, 5.21)\n"
        f"histogram: {prior_label(row)}, "
        f"flat μ, {row['chains']} chains × {row['draws']:,} draws "
        f"(NUTS, {PARAMETERIZATION[row['prior_parameterization']]}), "
        f"which differs from p(τ) ∝ 1 only beyond τ = {row['prior_tau_scale']:g}",
        fontsize=11.5,
    )
    return save(fig, results_dir, row["experiment"], w_pad=3.0)


main = main_of(draw)


if __name__ == "__main__":
    main()
