"""``python -m analysis.figures results_dir=results/<study>``: the study's figures, as PNG files.

For the group effects theta (``param=`` picks another family), against each swept scenario
parameter (n_groups, group_size, tau), one line per prior spec with error bars of ±2 Monte Carlo
standard errors and one panel per combination of the other swept parameters:

* ``rmse``: RMSE (log scale);
* ``rmse_ratio``: RMSE over the reference spec's (``reference=``, default flat) in the same cell,
  with the MCSE of the paired ratio (log scale);
* ``coverage_90``: coverage of the 90 % intervals, with the nominal level;
* ``posterior_variance``: mean posterior variance (log scale);
* ``divergent_rate``: share of fits with a divergent transition (specs that make draws).

And ``<param>_coverage_curves.png``: actual minus nominal coverage of central intervals at levels
2 %, 4 %, ..., 98 %, a panel per cell, with ±2 MCSE bands. Files land in
``<results_dir>/figures/``; the measures behind them in ``<results_dir>/analysis/summaries.parquet``
(one row per job and estimand family) and ``coverage_curves.parquet``.
"""

from __future__ import annotations

import itertools
import numbers
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402
import pandas as pd  # noqa: E402

from analysis import cli, measures, style  # noqa: E402
from analysis.load import ResultsError, identity_columns, read_results  # noqa: E402

SWEEP_AXES = ("n_groups", "group_size", "tau")
MEASURES = ("rmse", "rmse_ratio", "coverage_90", "posterior_variance", "divergent_rate")
LOG_AXES = {"n_groups", "group_size", "tau"}  # swept geometrically
LOG_MEASURES = {"rmse", "rmse_ratio", "posterior_variance"}  # spans decades across specs
FAMILIES = ("theta", "mu", "tau", "sigma", "p")


def summaries(results_dir, reference: str = measures.REFERENCE, allow_mixed=False):
    """(rows, summaries, coverage curves) of every estimand family in ``results_dir``, the last
    two also written to ``<results_dir>/analysis/`` as parquet files. ``allow_mixed``: see
    ``analysis.load.read_results``."""
    results_dir = Path(results_dir)
    df = read_results(results_dir, allow_mixed)
    present = [p for p in FAMILIES if (df["param"] == p).any()]
    summary = pd.concat([measures.summarize(df, p, reference) for p in present], ignore_index=True)
    curves = pd.concat([measures.coverage_curves(df, p) for p in present], ignore_index=True)
    (results_dir / "analysis").mkdir(exist_ok=True)
    summary.to_parquet(results_dir / "analysis" / "summaries.parquet", index=False)
    curves.to_parquet(results_dir / "analysis" / "coverage_curves.parquet", index=False)
    return df, summary, curves


def draw(
    results_dir, param: str = "theta", reference: str = measures.REFERENCE, allow_mixed=False
) -> list[Path]:
    """Write the figures and the summaries of ``results_dir``; return the PNG paths."""
    results_dir = Path(results_dir)
    df, summary, curves = summaries(results_dir, reference, allow_mixed)
    id_cols = identity_columns(df)
    table = _label_lines(summary[summary["param"] == param].copy(), id_cols)
    swept = [a for a in SWEEP_AXES if a in table and table[a].nunique() > 1]
    # several scenarios (an experiment over scenario=glob(*)) get a row of panels each where
    # that leaves at most two facet axes, else a set of figures each
    scenarios = sorted(table["scenario"].unique())
    by_file = len(scenarios) > 1 and len(swept) > 2
    facets = ["scenario"] if len(scenarios) > 1 and not by_file else []
    out_dir = results_dir / "figures"
    out_dir.mkdir(exist_ok=True)
    written = []
    for scenario, measure, x in itertools.product(
        scenarios if by_file else [None], MEASURES, swept
    ):
        part = table if scenario is None else table[table["scenario"] == scenario]
        part = part[part[measure].notna()] if measure in part else part.iloc[:0]
        if part.empty:  # no spec has it (divergences of closed-form specs, no reference fit)
            continue
        fig = _facet(part, measure, x, facets + [a for a in swept if a != x], param, reference)
        prefix = "" if scenario is None else f"{scenario}_"
        path = out_dir / f"{prefix}{param}_{measure}_vs_{x}.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    if not curves.empty and (curves["param"] == param).any():
        lines = _label_lines(curves[curves["param"] == param].copy(), id_cols)
        cells = (["scenario"] if len(scenarios) > 1 else []) + swept
        path = out_dir / f"{param}_coverage_curves.png"
        fig = _curves(lines, cells, param)
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


NOT_SETTINGS = {"study", "config_hash", "code_version", "package_versions", "param",
                "n_replicates", "prior", "scenario", "reference", "level", *SWEEP_AXES}


def _label_lines(table, id_cols):
    """One line per prior spec, or per (spec, setting) where a study varies more than the swept
    scenario axes (a hyperparameter, the parameterization, sigma, inference settings...): the
    label names each setting that varies, so no two jobs are ever drawn as one line."""
    within = ["prior", "scenario"] if "scenario" in table else ["prior"]
    varying = [
        c for c in id_cols
        if c in table and c not in NOT_SETTINGS
        # varies within a spec and scenario (scenarios have parameters of their own)
        and table.groupby(within)[c].nunique().max() > 1
    ]
    table["line"] = table["prior"].astype(str)
    # a spec that could not fit some data sets (status skipped) is measured on the others only,
    # which are not a random subset: its label says so
    skipped = table["skipped_rate"] if "skipped_rate" in table else pd.Series(0.0, table.index)
    partial = skipped.groupby([table[c] for c in within]).transform("max") > 0
    table.loc[partial, "line"] = table.loc[partial, "line"] + style.PARTIAL
    for c in varying:  # a spec without this setting (a missing value) keeps its plain label
        has = table[c].notna()
        table.loc[has, "line"] = (
            table.loc[has, "line"] + f", {c.removeprefix('prior_')}=" + table.loc[has, c].map(str)
        )
    return table


def _facet(table, measure, x, others, param, reference=measures.REFERENCE):
    """A grid of panels (rows, cols = the other swept parameters), one line per prior spec."""
    row_key, col_key = (others + [None, None])[:2]
    if table.duplicated(["line", x, *[k for k in (row_key, col_key) if k]]).any():
        raise ValueError(f"several jobs share a line and an x value in {measure} vs {x}; "
                         "a setting varies that the figure cannot tell apart")
    rows = sorted(table[row_key].unique()) if row_key else [None]
    cols = sorted(table[col_key].unique()) if col_key else [None]
    colours = style.palette(table["line"].unique())
    fig, axes = plt.subplots(
        len(rows), len(cols), figsize=(3.2 * len(cols) + 1.6, 2.6 * len(rows) + 0.6),
        sharex=True, sharey=measure.startswith("coverage_") or measure == "divergent_rate",
        squeeze=False,
    )
    for (i, rv), (j, cv) in itertools.product(enumerate(rows), enumerate(cols)):
        ax = axes[i, j]
        panel = table
        if row_key:
            panel = panel[panel[row_key] == rv]
        if col_key:
            panel = panel[panel[col_key] == cv]
        for label, colour in colours.items():
            line = panel[panel["line"] == label].sort_values(x)
            if line.empty:
                continue
            ax.errorbar(
                line[x], line[measure], yerr=2 * line[f"{measure}_mcse"], color=colour,
                marker="o", markersize=4, capsize=2, linewidth=1.5, label=label,
            )
        if measure.startswith("coverage_"):
            ax.axhline(int(measure.split("_")[1]) / 100, color="0.3", linestyle="--", linewidth=1)
        if measure == "rmse_ratio":
            ax.axhline(1.0, color="0.3", linestyle="--", linewidth=1)
        if measure == "divergent_rate":
            ax.set_ylim(-0.03, 1.03)
        if measure in LOG_MEASURES:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        if x in LOG_AXES:
            ax.set_xscale("log")
            ax.minorticks_off()
        ax.set_xticks(sorted(table[x].unique()))
        ax.set_xticklabels([f"{v:g}" for v in sorted(table[x].unique())])
        title = ", ".join(
            f"{k} = {v:g}" if isinstance(v, numbers.Number) else str(v)
            for k, v in ((row_key, rv), (col_key, cv)) if k is not None
        )
        ax.set_title(title, fontsize=9)
        ax.grid(True, alpha=0.3)
    for ax in axes[-1, :]:
        ax.set_xlabel(style.LABELS.get(x, x))
    for ax in axes[:, 0]:
        ax.set_ylabel(
            style.LABELS.get(measure, measure).replace("θ", _greek(param))
            .replace("REFERENCE", reference)
        )
    legend = {}  # every line of every panel, in palette order
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(lab, h)
    labels = [lab for lab in colours if lab in legend]
    fig.legend([legend[lab] for lab in labels], labels, title="prior spec", loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(
        f"{style.LABELS.get(measure, measure).replace(chr(10), ' ').split(' (')[0].replace('θ', _greek(param)).replace('REFERENCE', reference)}"
        f" against {x}; bars: ±2 Monte Carlo SE over {int(table['n_replicates'].min())}+ replicates",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))  # room for the title
    return fig


def _curves(table, cells, param):
    """Actual minus nominal coverage against the nominal level, a panel per cell (rows: all but
    the last cell axis, columns: the last), a line per spec with a ±2 MCSE band."""
    col_key = cells[-1] if cells else None
    row_keys = cells[:-1]
    rows = (
        sorted(table[row_keys].drop_duplicates().itertuples(index=False, name=None))
        if row_keys else [None]
    )
    cols = sorted(table[col_key].unique()) if col_key else [None]
    colours = style.palette(table["line"].unique())
    fig, axes = plt.subplots(
        len(rows), len(cols), figsize=(3.2 * len(cols) + 1.6, 2.4 * len(rows) + 0.6),
        sharex=True, sharey=True, squeeze=False,
    )
    for (i, rv), (j, cv) in itertools.product(enumerate(rows), enumerate(cols)):
        ax = axes[i, j]
        panel = table
        for k, v in zip(row_keys, rv or ()):
            panel = panel[panel[k] == v]
        if col_key:
            panel = panel[panel[col_key] == cv]
        for label, colour in colours.items():
            line = panel[panel["line"] == label].sort_values("level")
            if line.empty:
                continue
            gap = line["coverage"] - line["level"]
            ax.plot(line["level"], gap, color=colour, linewidth=1.5, label=label)
            ax.fill_between(
                line["level"], gap - 2 * line["coverage_mcse"], gap + 2 * line["coverage_mcse"],
                color=colour, alpha=0.12, linewidth=0,
            )
        ax.axhline(0.0, color="0.3", linestyle="--", linewidth=1)
        ax.grid(True, alpha=0.3)
        keys = [*row_keys, *([col_key] if col_key else [])]
        values = [*(rv or ()), *([cv] if col_key else [])]
        ax.set_title(", ".join(
            f"{k} = {v:g}" if isinstance(v, numbers.Number) else str(v) for k, v in zip(keys, values)
        ), fontsize=9)
    for ax in axes[-1, :]:
        ax.set_xlabel("nominal level of the central interval")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"actual − nominal\ncoverage of {_greek(param)}")
    legend = {}
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(lab, h)
    labels = [lab for lab in colours if lab in legend]
    fig.legend([legend[lab] for lab in labels], labels, title="prior spec", loc="center left",
               bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(
        f"Coverage of central intervals for {_greek(param)} at every level (specs that make draws);"
        " bands: ±2 Monte Carlo SE; below 0: under-coverage", fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return fig


def _greek(param):
    return {"theta": "θ", "mu": "μ", "tau": "τ", "sigma": "σ"}.get(param, param)


def run(cfg) -> None:
    """``python -m analysis.figures``: draw the figures of ``cfg.results_dir`` and print their paths."""
    try:
        paths = draw(cfg.results_dir, cfg.param, cfg.reference, cli.boolean(cfg, "allow_mixed"))
    except (ResultsError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    for path in paths:
        print(path)


main = cli.app("analysis_figures", run)


if __name__ == "__main__":
    main()
