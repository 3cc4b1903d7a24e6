"""Centered versus non-centered eight schools: the funnel of theta_1 against log tau.

    python -m analysis.paper.funnel results_dir=results/paper/funnel

Reads the files ``runs.paper`` wrote for ``conf/figure/funnel.yaml`` and writes
``<results_dir>/funnel.png``: one panel per parameterization, every kept draw as a point
(theta_1, log tau), the draws that ended in a divergent transition marked in red and counted in
the panel's title. In the centered form NUTS cannot follow the neck of the funnel (small tau,
where theta_j is pinned to mu), so its divergences gather there and its draws stop short of it;
the non-centered form samples theta_j = mu + tau eta_j with eta_j ~ N(0, 1) and reaches it.

Neal (2003), Slice sampling, Ann. Statist. 31(3) (the funnel); Betancourt & Girolami (2015),
Hamiltonian Monte Carlo for hierarchical models; the Stan and PyMC eight-schools case studies.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analysis.paper import main_of, save  # noqa: E402
from analysis.paper.gelman2006 import PARAMETERIZATION, mu_label, prior_label, read  # noqa: E402

DIVERGENT = "#d62728"  # red, against grey draws


def draw(results_dir) -> Path:
    """Write ``<results_dir>/<experiment>.png``; return its path."""
    panels, draws, _ = read(results_dir)
    first_group = panels["groups"].iloc[0].split(",")[0]
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(5.4 * n, 4.8), sharex=True, sharey=True,
                             squeeze=False)
    for ax, (_, row) in zip(axes[0], panels.iterrows()):
        part = draws[draws["panel"] == row["panel"]]
        log_tau = np.log(part["tau"].to_numpy())
        theta = part["theta_1"].to_numpy()
        bad = part["diverging"].to_numpy()
        ax.scatter(theta[~bad], log_tau[~bad], s=4, color="0.35", alpha=0.35, linewidths=0,
                   label="draw", rasterized=True)
        ax.scatter(theta[bad], log_tau[bad], s=14, color=DIVERGENT, alpha=0.9, linewidths=0,
                   label="divergent transition")
        ax.set_title(
            f"{PARAMETERIZATION[row['prior_parameterization']]}: "
            f"{int(row['n_divergent'])} divergent of {len(part):,}\n"
            f"R-hat(τ) {row['rhat_tau']:.3f}, bulk ESS(τ) {row['ess_bulk_tau']:.0f}",
            fontsize=11.5,
        )
        ax.set_xlabel(rf"$\theta_1$, effect in school {first_group} (SAT points)", fontsize=10.5)
        ax.tick_params(labelsize=10)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0, 0].set_ylabel("log τ  (τ in SAT points)", fontsize=10.5)
    axes[0, 0].legend(loc="lower right", fontsize=9.5, markerscale=2.5, frameon=True,
                      framealpha=0.9)
    first = panels.iloc[0]
    fig.suptitle(
        f"{first['caption']}\n"
        rf"$\theta_j \sim \mathrm{{N}}(\mu, \tau^2)$, {mu_label(first)}, {prior_label(first)}; "
        f"NUTS, {first['chains']} chains × ({first['warmup']:,} warmup + "
        f"{first['draws']:,} draws), "
        f"target acceptance {first['target_accept']:g}, the same seed for both",
        fontsize=11.5,
    )
    return save(fig, results_dir, first["experiment"])


main = main_of(draw)


if __name__ == "__main__":
    main()
