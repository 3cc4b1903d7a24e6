"""``python -m analysis.sbc results_dir=results/sbc``: the SBC test and rank histograms.

Reads the rank tables written by ``python -m runs.sbc`` (never fits anything). For each (prior,
data form) it tests, for mu, tau, sigma and theta_1 where the spec has them, that the ranks of the
true values among L = ``rank_draws`` posterior draws are uniform on 0..L: a chi-square test on
``BINS`` equal bins of the L + 1 possible ranks (Talts et al. 2018, §4). A spec passes when every
one of its k tested ranks has p > alpha / k (Bonferroni), so a correct spec fails with probability
at most alpha (default 0.001). ``low_ess`` is the share of fits whose bulk ESS is below L: their
thinned draws are autocorrelated, which bends a histogram by itself (Talts et al. thin by ESS).
It prints that table and writes ``<results_dir>/figures/sbc_ranks.png``:
one histogram per (prior and form, estimand), with the band that holds 99 % of the counts of one
bin under uniformity.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from analysis import cli  # noqa: E402

BINS = 10
TESTED = (("mu", 0), ("tau", 0), ("sigma", 0), ("theta", 0))  # (param, index) per spec


def uniformity_pvalue(ranks, rank_draws: int, bins: int = BINS) -> float:
    """Chi-square p-value of the hypothesis that ``ranks`` are uniform on 0..rank_draws.

    Needs (rank_draws + 1) divisible by ``bins`` so that every bin holds as many possible ranks.
    """
    if (rank_draws + 1) % bins:
        raise ValueError(f"rank_draws + 1 = {rank_draws + 1} is not divisible by bins = {bins}")
    return float(stats.chisquare(bin_counts(ranks, rank_draws, bins)).pvalue)


def bin_counts(ranks, rank_draws: int, bins: int = BINS) -> np.ndarray:
    """How many of ``ranks`` (0..rank_draws) fall in each of ``bins`` equal bins."""
    return np.bincount(np.asarray(ranks) * bins // (rank_draws + 1), minlength=bins)


def check(table: pd.DataFrame, alpha: float = 1e-3) -> pd.DataFrame:
    """One row per (prior, form, tested estimand): its p-value and whether the spec passes."""
    rows = []
    for (prior, form), group in table.groupby(["prior", "form"], sort=True):
        tested = [(p, i) for p, i in TESTED if ((group["param"] == p) & (group["index"] == i)).any()]
        for param, index in tested:
            sel = group[(group["param"] == param) & (group["index"] == index)]
            rows.append({
                "prior": prior, "form": form, "param": param, "index": index,
                "replicates": len(sel), "pvalue": uniformity_pvalue(sel["rank"], int(sel["rank_draws"].iloc[0])),
                "threshold": alpha / len(tested),
                "flagged_fits": float(sel["status"].ne("ok").mean()),
                # share of fits whose ESS is below the number of thinned draws ranked against:
                # their ranks are autocorrelated, which can bend the histogram by itself
                "low_ess": float((sel["ess_bulk"] < sel["rank_draws"]).mean()),
            })
    out = pd.DataFrame(rows)
    out["passes"] = out["pvalue"] > out["threshold"]
    out["spec_passes"] = out.groupby(["prior", "form"])["passes"].transform("all")
    return out


def draw(table: pd.DataFrame, path: Path) -> Path:
    """Rank histograms: a row per (prior, form), a column per tested estimand."""
    panels = sorted(table.groupby(["prior", "form"]).groups)
    fig, axes = plt.subplots(len(panels), len(TESTED), figsize=(2.6 * len(TESTED), 1.7 * len(panels)),
                             squeeze=False, sharex=True)
    for row, (prior, form) in enumerate(panels):
        group = table[(table["prior"] == prior) & (table["form"] == form)]
        for col, (param, index) in enumerate(TESTED):
            ax = axes[row, col]
            sel = group[(group["param"] == param) & (group["index"] == index)]
            if sel.empty:
                ax.set_axis_off()
                continue
            counts = bin_counts(sel["rank"].to_numpy(), int(sel["rank_draws"].iloc[0]))
            lo, hi = stats.binom.ppf([0.005, 0.995], len(sel), 1 / BINS)
            ax.axhspan(lo, hi, color="0.85", zorder=0)
            ax.bar(np.arange(BINS), counts, width=0.9, color="C0")
            name = param if param != "theta" else f"θ_{index + 1}"
            ax.set_title(f"{prior} ({form})\n{name}", fontsize=8)
            ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel(f"rank bin (of {BINS})", fontsize=8)
    fig.tight_layout()
    height = fig.get_size_inches()[1]
    fig.suptitle("SBC rank histograms; grey: 99 % band of one bin's count under uniformity",
                 fontsize=9, y=1 + 0.25 / height)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def read(results_dir) -> pd.DataFrame:
    files = sorted(Path(results_dir).glob("*.parquet"))
    if not files:
        raise SystemExit(f"no rank tables (*.parquet) in {results_dir}; run python -m runs.sbc first")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def run(cfg) -> None:
    """``python -m analysis.sbc``: test, print and draw the rank tables of ``cfg.results_dir``."""
    table = read(cfg.results_dir)
    result = check(table, float(cfg.alpha))
    with pd.option_context("display.width", 120, "display.max_rows", 500):
        print(result.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    failing = sorted(set(result.loc[~result["spec_passes"], "prior"] + " (" + result.loc[~result["spec_passes"], "form"] + ")"))
    print("all specs pass" if not failing else f"failing: {', '.join(failing)}")
    print(draw(table, Path(cfg.results_dir) / "figures" / "sbc_ranks.png"))


main = cli.app("analysis_sbc", run)


if __name__ == "__main__":
    main()
