"""``python -m analysis.paper.rat_tumors results_dir=results/paper/rat_tumors``: BDA3's Figure 5.4,
the 71 rat-tumour rates shrunk by the hierarchical binomial model.

Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., §5.3, Figure 5.4 (data: Tarone 1982, BDA3
Table 5.1): each experiment's posterior estimate of its tumour rate p_j, with its central 95 %
posterior interval as a vertical bar, against the observed rate y_j / n_j, and the 45-degree line
where the estimate would equal the observed rate (no pooling). Points of the same observed rate are
spread evenly over a small horizontal width, as BDA3 jitters them, so their bars do not hide each
other.

Differences from BDA3, said in the figure's caption: the point is the posterior mean (BDA3 draws
medians), and hierbench's hierarchical binomial model is logit-normal, logit p_j ~ N(mu, tau^2),
where BDA3's is Beta-binomial, p_j ~ Beta(alpha, beta) with p(alpha, beta) ∝ (alpha + beta)^(-5/2);
the shrinkage is similar, not identical.

Reads ``<results_dir>/comparison.parquet`` (``python -m runs.fit -m +comparison=rat_tumors``; the
observed rates as in ``analysis.paper.efron_morris.observed_rates``) and writes
``rat_tumors.png`` beside it.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis import cli, style  # noqa: E402
from analysis.paper.efron_morris import observed_rates, read_comparison  # noqa: E402
from sim import datasets  # noqa: E402

COMMAND = "python -m runs.fit -m +comparison=rat_tumors"
JITTER = 0.008
"""Half-width of the horizontal spread of points that share an observed rate (rate units)."""


def jitter(rates: pd.Series, width: float = JITTER) -> pd.Series:
    """Spread points of equal rate evenly over [rate - width, rate + width], in index order (a
    single point stays where it is): a deterministic jitter, so a rerun draws the same figure."""
    rank = rates.groupby(rates.round(12)).cumcount()
    count = rates.groupby(rates.round(12)).transform("size")
    offset = np.where(count > 1, (rank / (count - 1).clip(lower=1) - 0.5) * 2 * width, 0.0)
    return rates + offset


def estimates(table: pd.DataFrame, prior: str = "hierarchical") -> pd.DataFrame:
    """Per experiment (by group index): observed rate, posterior mean and 95 % interval of p_j."""
    fit = table[(table["param"] == "p") & (table["prior"] == prior)]
    if fit.empty:
        raise ValueError(f"no p rows of prior {prior!r} in these fits; make them with: {COMMAND}")
    if fit["label"].nunique() > 1:
        raise ValueError(f"several fits of prior {prior!r} ({', '.join(fit['label'].unique())}); "
                         "the figure draws one")
    out = fit.set_index("index").sort_index()[["group", "posterior_mean", "lower_95", "upper_95"]]
    out.insert(1, "observed_rate", observed_rates(fit))
    return out


def draw(results_dir, prior: str = "hierarchical") -> Path:
    """Write ``rat_tumors.png`` beside ``comparison.parquet``; return its path."""
    results_dir = Path(results_dir)
    table = read_comparison(results_dir, COMMAND, dataset=None)
    est = estimates(table, prior)
    fit = table[table["prior"] == prior]
    colour = style.palette([prior])[prior]

    fig, ax = plt.subplots(figsize=(6.6, 6.6))
    x = jitter(est["observed_rate"])
    top = max(est["upper_95"].max(), est["observed_rate"].max()) * 1.05
    ax.plot([0, top], [0, top], color="0.4", linestyle="--", linewidth=1,
            label="45° line: estimate = observed rate (no pooling)")
    ax.vlines(x, est["lower_95"], est["upper_95"], color=colour, alpha=0.55, linewidth=0.9,
              label="central 95 % posterior interval of p_j")
    ax.scatter(x, est["posterior_mean"], s=14, color=colour, edgecolor="0.15", linewidth=0.4,
               zorder=3, label="posterior mean of p_j")
    ax.set_xlim(-2 * JITTER, top)
    ax.set_ylim(0, top)
    ax.set_aspect("equal")
    ax.set_xlabel("observed tumour rate y_j / n_j (tumours per rat)")
    ax.set_ylabel("tumour rate p_j: posterior mean and 95 % interval")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=9, framealpha=0.9)  # the empty corner: no rate there
    fig.suptitle(
        "Gelman et al. (2013), Bayesian Data Analysis, 3rd ed., §5.3, Figure 5.4:\n"
        f"{len(est)} rat-tumour experiments (Tarone 1982), prior spec {prior}", fontsize=11)
    ax.text(-0.12, -0.1, caption(fit), fontsize=8.5, va="top", ha="left",
            transform=ax.transAxes)
    path = results_dir / "rat_tumors.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def caption(fit: pd.DataFrame) -> str:
    """What the figure is and how it differs from BDA3's: the model, its prior, the sampler."""
    first = fit.iloc[0]
    mu = (
        "μ flat" if first.get("prior_mu_family") == "flat"
        else f"μ ~ N({first.get('prior_mu_loc', 0):g}, {first.get('prior_mu_scale', float('nan')):g}²)"
    )
    prior = (
        f"{mu}, "
        f"τ ~ {str(first.get('prior_tau_family', '')).replace('_', '-')}"
        f"({first.get('prior_tau_scale', float('nan')):g})"
        if first["prior_spec"] == "hierarchical" else f"spec {first['prior_spec']}"
    )
    sampler = (
        f"NUTS, {first['chains']} chains × {first['draws']} draws after {first['warmup']} warmup, "
        f"{first['n_divergent']} divergent transitions, largest R-hat {fit['rhat'].max():.3f}"
        if first["method"] == "nuts" else "closed form"
    )
    text = (
        f"The model is hierbench's hierarchical binomial model, which is logit-normal: "
        f"θ_j = logit p_j ~ N(μ, τ²), {prior}; BDA3's is Beta-binomial (p_j ~ Beta(α, β), "
        f"p(α, β) ∝ (α + β)^(−5/2)), so the shrinkage is similar but not identical. Points are "
        f"posterior means (BDA3 draws medians); experiments with the same observed rate are "
        f"spread horizontally by up to ±{JITTER} so their bars overlap less. {sampler}; "
        f"fit status {first['status']}."
    )
    return "\n".join(textwrap.wrap(text, 100))


def run(cfg) -> None:
    """``python -m analysis.paper.rat_tumors``: draw the figure of ``cfg.results_dir``."""
    try:
        path = draw(cfg.results_dir, cfg.prior or "hierarchical")
    except (FileNotFoundError, ValueError, datasets.DataError) as err:
        sys.exit(f"error: {err}")
    print(f"written: {path}")


main = cli.app("analysis_paper", run)


if __name__ == "__main__":
    main()
