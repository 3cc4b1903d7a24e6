"""``python -m analysis.paper.efron_morris results_dir=results/paper/efron_morris``: Efron &
Morris's batting averages shrunk, one panel per prior spec, and the total squared errors.

Efron & Morris (1975), Data analysis using Stein's estimator and its generalizations, JASA 70(350),
311-319, Table 1 (drawn as in Efron & Morris 1977, Stein's paradox in statistics, Scientific
American 236(5)): for each of 18 players, the batting average over the first 45 at-bats of 1970
(top row), an estimate of his success probability p_j (middle) and his average over the rest of
the season (bottom, the truth the estimates are judged by), joined by one line per player. Here
the middle row is each prior spec's posterior mean of p_j (a closed-form spec's point estimate),
one panel per spec, and the table gives

    TSE = sum_j (estimate_j - truth_j)^2

for the raw averages, for the James-Stein estimates of Efron & Morris's Table 1 (the published
grand mean .265 and shrinking factor c = .212 on the raw averages: z_j = .265 + .212 (y_j - .265);
hierbench's ``james_stein`` spec shrinks empirical logits instead) and for every fit.

Reads ``<results_dir>/comparison.parquet`` (``python -m runs.fit -m +comparison=efron_morris``).
The first-45 averages are the rows' ``raw_estimate`` where the file has one, else successes /
trials from the data set the rows name (``sim.datasets``: the same file ``runs.fit`` read).
Writes ``efron_morris_shrinkage.png``, ``tse.csv`` and ``tse.md`` beside it, and prints the table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from analysis import cli, style  # noqa: E402
from sim import datasets  # noqa: E402

COMMAND = "python -m runs.fit -m +comparison=efron_morris"
PUBLISHED_GRAND_MEAN = 0.265  # Efron & Morris (1975), Table 1 and §1: ybar of the 18 players
PUBLISHED_SHRINKAGE = 0.212  # their c = 1 - (k - 3) sigma^2 / sum (y_j - ybar)^2, k = 18
RAW = "raw averages (hits / at-bats)"
PUBLISHED = "James–Stein, Efron & Morris (1975): .265 + .212 (y_j − .265)"
ROWS = {2: "first 45\nat-bats", 1: "posterior\nmean of p", 0: "rest of\nseason"}


def read_comparison(results_dir, command: str, dataset: str | None = None) -> pd.DataFrame:
    """The rows of ``<results_dir>/comparison.parquet`` (of ``dataset`` where it holds several);
    a missing file stops with one line naming the command that makes it."""
    path = Path(results_dir) / "comparison.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; make it with: {command}")
    table = pd.read_parquet(path)
    if dataset is not None:
        table = table[table["dataset"] == dataset]
        if table.empty:
            raise FileNotFoundError(f"{path} holds no fits of dataset={dataset}; make them with: {command}")
    if "label" not in table:  # a single fit's file: its prior names it
        table = table.assign(label=table["prior"])
    return table


def observed_rates(table: pd.DataFrame) -> pd.Series:
    """successes_j / trials_j by group index: the rows' ``raw_estimate`` of p where they have one,
    else from the data set they name (a CSV by its path, a shipped one by its name)."""
    p = table[table["param"] == "p"].drop_duplicates("index").set_index("index").sort_index()
    if "raw_estimate" in p and p["raw_estimate"].notna().all():
        return p["raw_estimate"].astype(float)
    first = p.iloc[0]
    source = first.get("dataset_file")
    ds = datasets.load(source if isinstance(source, str) and source else first["dataset"])
    if "trials" not in ds.data or len(ds.labels) != len(p):
        raise ValueError(f"dataset {ds.name} is not the {len(p)} binomial groups of these fits")
    rates = np.asarray(ds.data["successes"], float) / np.asarray(ds.data["trials"], float)
    return pd.Series(rates[p.index.to_numpy()], index=p.index)


def total_squared_errors(table: pd.DataFrame, raw: pd.Series) -> pd.DataFrame:
    """One row per estimate: TSE of p against the truth, the raw averages' TSE over it, and how
    many groups it puts closer to their truth than the raw average is."""
    p = table[table["param"] == "p"]
    truth = p.drop_duplicates("index").set_index("index")["true_value"].sort_index()
    if truth.isna().any():
        raise ValueError("the p rows have no true value; the table needs a data set with a truth")
    raw_error = (raw - truth).abs()

    def row(name, method, estimate, status="", n_divergent=0):
        err = estimate - truth
        tse = float((err**2).sum(min_count=len(truth)))  # NaN for a fit that was skipped
        return {
            "estimate": name, "method": method, "tse": tse,
            "raw_tse_ratio": float((raw_error**2).sum()) / tse,
            "closer_than_raw": np.nan if method == "data" else int((err.abs() < raw_error).sum()),
            "status": status, "n_divergent": int(n_divergent),
        }

    rows = [row(RAW, "data", raw), row(
        PUBLISHED, "published", PUBLISHED_GRAND_MEAN + PUBLISHED_SHRINKAGE * (raw - PUBLISHED_GRAND_MEAN))]
    fits = [
        row(label, fit["method"].iloc[0], fit.set_index("index")["posterior_mean"].sort_index(),
            fit["status"].iloc[0], fit["n_divergent"].iloc[0])
        for label, fit in p.groupby("label", sort=False)
    ]
    fits.sort(key=lambda r: (np.isnan(r["tse"]), r["tse"]))
    return pd.DataFrame(rows + fits)


def draw(results_dir, dataset: str = "efron_morris") -> list[Path]:
    """Write the figure and the table beside ``comparison.parquet``; return the paths."""
    results_dir = Path(results_dir)
    table = read_comparison(results_dir, COMMAND, dataset)
    raw = observed_rates(table)
    tse = total_squared_errors(table, raw)
    csv, md = results_dir / "tse.csv", results_dir / "tse.md"
    tse.to_csv(csv, index=False, float_format="%.5g")
    md.write_text(markdown(tse) + "\n")
    print(markdown(tse))
    fig = shrinkage_figure(table, raw, tse)
    png = results_dir / "efron_morris_shrinkage.png"
    fig.savefig(png, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return [png, csv, md]


def markdown(tse: pd.DataFrame) -> str:
    """The table as markdown, as docs/paper.md shows it."""
    lines = [
        "| estimate | method | total squared error of p | raw ÷ this | players closer than raw | fit |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in tse.itertuples():
        fit = "" if r.method in ("data", "published") else r.status + (
            f" ({r.n_divergent} divergent)" if r.n_divergent else "")
        lines.append(f"| {r.estimate} | {r.method} | {r.tse:.4f} | {r.raw_tse_ratio:.2f} | "
                     f"{'—' if np.isnan(r.closer_than_raw) else int(r.closer_than_raw)} | {fit} |")
    return "\n".join(lines)


def shrinkage_figure(table: pd.DataFrame, raw: pd.Series, tse: pd.DataFrame):
    """Small multiples, one per fit in order of TSE: first-45 average, estimate, rest of season."""
    p = table[table["param"] == "p"]
    truth = p.drop_duplicates("index").set_index("index")["true_value"].sort_index()
    fits = tse[~tse["method"].isin(("data", "published"))].set_index("estimate")
    spec_of = p.drop_duplicates("label").set_index("label")["prior"]
    colours = style.palette(spec_of.unique())
    n_cols = min(len(fits), 4 if len(fits) > 9 else 3) or 1
    n_rows = -(-len(fits) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, 2.5 * n_rows + 1.2),
                             sharex=True, sharey=True, squeeze=False)
    finite = pd.concat([raw, truth, p["posterior_mean"]]).dropna()
    lo, hi = finite.min(), finite.max()
    pad = 0.04 * (hi - lo)
    grand = raw.mean()
    for ax, (label, row) in zip(axes.ravel(), fits.iterrows()):
        fit = p[p["label"] == label].set_index("index")["posterior_mean"].sort_index()
        colour = colours[spec_of[label]]
        ax.axvline(grand, color="0.6", linestyle=":", linewidth=1, zorder=0)
        if fit.notna().all():
            for j in truth.index:
                ax.plot([raw[j], fit[j], truth[j]], [2, 1, 0], color="0.55", linewidth=0.7,
                        alpha=0.8, zorder=1)
            ax.scatter(fit, np.ones(len(fit)), s=22, color=colour, zorder=3, edgecolor="0.15",
                       linewidth=0.5)
            title = f"{label}\nTSE {row['tse']:.4f}" + (
                f" = raw ÷ {row['raw_tse_ratio']:.1f}" if row["raw_tse_ratio"] >= 1.1 else
                f" (raw {tse['tse'].iloc[0]:.4f})")
        else:
            title = f"{label}\nnot fitted ({row['status']})"
        if row["n_divergent"]:
            title += f", {row['n_divergent']} divergent"
        ax.scatter(raw, np.full(len(raw), 2), s=14, color="black", zorder=3)
        ax.scatter(truth, np.zeros(len(truth)), s=16, facecolor="white", edgecolor="black",
                   linewidth=0.9, zorder=3)
        ax.set_title(title, fontsize=9)
        ax.set_yticks(list(ROWS), list(ROWS.values()), fontsize=8)
        ax.set_ylim(-0.4, 2.4)
        ax.set_xlim(lo - pad, hi + pad)
        ax.grid(True, axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=8)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3f}".lstrip("0")))
    for ax in axes.ravel()[len(fits):]:
        ax.set_visible(False)
    for column in axes.T:  # x ticks and label under the lowest panel drawn in each column
        shown = [ax for ax in column if ax.get_visible()]
        if shown:
            shown[-1].xaxis.set_tick_params(labelbottom=True)
            shown[-1].set_xlabel("batting average (hits per at-bat)", fontsize=9)
    handles = [
        Line2D([], [], marker="o", linestyle="", color="black", markersize=5,
               label="average over the first 45 at-bats (y_j)"),
        Line2D([], [], marker="o", linestyle="", color="0.6", markeredgecolor="0.15", markersize=5,
               label="estimate: posterior mean of p_j (closed-form specs: point estimate); "
                     "colour = prior spec"),
        Line2D([], [], marker="o", linestyle="", markerfacecolor="white", color="black",
               markersize=5, label="average over the rest of the season (the truth)"),
        Line2D([], [], color="0.6", linestyle=":", label=f"grand mean of the y_j ({grand:.3f})"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 0))
    n_players = len(truth)
    fig.suptitle(
        "Efron & Morris (1975, JASA 70:311–319, Table 1; 1977, Scientific American): batting "
        f"averages of {n_players} players shrunk by each prior spec\n"
        f"one line per player; TSE = Σ_j (estimate_j − rest-of-season_j)² over the {n_players} "
        f"players (raw averages: {tse['tse'].iloc[0]:.4f}); panels in order of TSE",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.55 / fig.get_figheight(), 1, 1))  # room for the legend below
    return fig


def run(cfg) -> None:
    """``python -m analysis.paper.efron_morris``: draw the figure and table of ``cfg.results_dir``."""
    try:
        paths = draw(cfg.results_dir, cfg.dataset or "efron_morris")
    except (FileNotFoundError, ValueError, datasets.DataError) as err:
        sys.exit(f"error: {err}")
    for path in paths:
        print(f"written: {path}")


main = cli.app("analysis_paper", run)


if __name__ == "__main__":
    main()
