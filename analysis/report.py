"""``python -m analysis.report results_dir=results/<study>``: one self-contained ``report.html``.

The report answers the questions a simulation study of prior specs is for, with this study's
numbers: every sentence that states a result is computed from the summaries (``analysis.measures``)
when the report is written, and says which cells and specs it rests on; where the study lacks
what a question needs (a spec, a heavy-tailed scenario), the report says so and what to run.
Figures are drawn by ``analysis.figures`` and embedded (base64), so the file opens offline.

Conventions: "±" is one Monte Carlo standard error; a difference is called *detectable* when it
exceeds two MCSEs of the paired difference (every spec is fitted on the same data sets).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import numbers
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import cli, exact, figures, files, measures
from analysis.load import ResultsError

HIER = "hierarchical"
GAIN_THRESHOLD = 0.05
"""A pooling gain below 5 % of RMSE is called negligible ("where it stops mattering")."""


def _fmt(x, mcse=None, digits=3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    text = f"{x:.{digits}f}"
    if mcse is not None and np.isfinite(mcse):
        text += f" ± {mcse:.{digits}f}"
    return text


def _pct(x, digits=0) -> str:
    return "–" if not np.isfinite(x) else f"{100 * x:.{digits}f} %"


def _cell_name(row, axes) -> str:
    return ", ".join(
        f"{a} = {row[a]:g}" if isinstance(row[a], numbers.Number) else f"{a} = {row[a]}"
        for a in axes
    )


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, escape=True, border=0, classes="t", na_rep="–")


def _with_intervals(error: pd.DataFrame) -> pd.DataFrame:
    """``analysis.exact.sampler_error`` for the report: each of z's mean and sd with its 95 %
    interval in brackets."""
    def bracket(x, lo, hi):
        return "–" if not np.isfinite(x) else (
            f"{x:.3f}" + ("" if not np.isfinite(lo) else f" [{lo:.3f}, {hi:.3f}]"))

    shown = error[["prior", "param", "n", "fits"]].copy()
    shown["z_mean"] = [bracket(*r) for r in error[["z_mean", "z_mean_lo", "z_mean_hi"]].to_numpy(float)]
    shown["z_sd"] = [bracket(*r) for r in error[["z_sd", "z_sd_lo", "z_sd_hi"]].to_numpy(float)]
    shown["z_abs_max"] = error["z_abs_max"].round(2)
    shown["z_sd_mean"] = error["z_sd_mean"].round(3)
    shown["z_sd_sd"] = error["z_sd_sd"].round(3)
    return shown


def _span(values: pd.Series, pct: bool = False) -> str:
    """The range of ``values`` over cells ("0.91–0.95", or one number when they agree)."""
    show = (lambda v: _pct(v)) if pct else (lambda v: f"{v:.3g}")
    low, high = show(values.min()), show(values.max())
    return low if low == high else f"{low}–{high}"


def spec_summary(spec: str) -> str:
    """The first line of the docstring of ``models/<spec>.py``, read from its source (nothing of
    ``models`` runs: the analysis reads files only); empty where there is none."""
    import ast
    import importlib.util

    try:
        found = importlib.util.find_spec(f"models.{spec}")
    except (ImportError, ValueError):
        return ""
    if found is None or not found.origin:
        return ""
    doc = ast.get_docstring(ast.parse(Path(found.origin).read_text(encoding="utf-8"))) or ""
    return doc.strip().splitlines()[0].rstrip(".") if doc.strip() else ""


class Report:
    """The summaries of one results directory and the sections built from them."""

    def __init__(self, results_dir, reference: str = measures.REFERENCE, allow_mixed=False):
        self.dir = Path(results_dir)
        self.reference = reference
        self.rows, summary, self.curves = figures.summaries(self.dir, reference, allow_mixed)
        self.theta = summary[summary["param"] == "theta"].copy()
        self.summary = summary
        self.pngs = {p.name: p for p in figures.draw(self.dir, "theta", reference, allow_mixed)}
        self.axes = [a for a in figures.SWEEP_AXES if a in self.theta and self.theta[a].nunique() > 1]
        self.cell_axes = (["scenario"] if self.theta["scenario"].nunique() > 1 else []) + self.axes
        self.priors = sorted(self.theta["prior"].unique())

    # ------------------------------------------------------------------ helpers
    def spec(self, name, scenario=None) -> pd.DataFrame:
        t = self.theta[self.theta["prior"] == name]
        t = t if scenario is None else t[t["scenario"] == scenario]
        return t.sort_values(self.cell_axes) if self.cell_axes else t

    def has(self, *names) -> bool:
        return all(n in self.priors for n in names)

    def figs(self, measure) -> str:
        names = [f"theta_{measure}_vs_{a}.png" for a in self.axes]
        names += [n for n in sorted(self.pngs) if n.endswith(tuple(f"_theta_{measure}_vs_{a}.png" for a in self.axes))]
        return "".join(_img(self.pngs[n], n) for n in names if n in self.pngs)

    def _missing(self, *names) -> str:
        absent = [n for n in names if n not in self.priors]
        return (
            f"<p class='na'>This study has no fits of {', '.join(absent)}; run it with "
            f"<code>prior=glob(*)</code> (the default grid) to answer this question.</p>"
        )

    # ------------------------------------------------------------------ sections
    def header(self) -> str:
        n_jobs = self.rows["config_hash"].nunique()
        n_fits = int(self.theta["n_replicates"].sum())
        versions = sorted(self.rows["code_version"].unique()) if "code_version" in self.rows else []
        cells = self.theta[self.cell_axes].drop_duplicates() if self.cell_axes else pd.DataFrame()
        reps = self.theta["n_replicates"]
        text = (
            f"<p>Results directory <code>{html.escape(str(self.dir))}</code>: {n_jobs} jobs, "
            f"{len(cells) if len(cells) else 1} cells × {len(self.priors)} prior specs "
            f"({', '.join(self.priors)}), "
            f"{reps.min() if reps.min() == reps.max() else f'{reps.min()}–{reps.max()}'} fitted "
            f"data sets per job "
            f"({n_fits} fits in all). Scenarios: {', '.join(sorted(self.theta['scenario'].unique()))}. "
            f"Swept: {', '.join(self.axes) or 'nothing'}.</p>"
            f"<p>Every number is computed from the result files when this report is written "
            f"({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC). “±” is one Monte Carlo "
            f"standard error (Morris, White &amp; Crowther 2019); a difference between specs is "
            f"called <em>detectable</em> when it exceeds two MCSEs of the paired difference — "
            f"every spec is fitted on the same simulated data sets. The reference for paired "
            f"comparisons is <code>{html.escape(self.reference)}</code>.</p>"
        )
        if len(versions) > 1:
            text += (
                f"<p class='warn'>The result files come from {len(versions)} code versions "
                f"({', '.join(map(html.escape, versions))}).</p>"
            )
        return text

    def pooling(self) -> str:
        """What does a hierarchical prior buy over no pooling, and where does it stop mattering?"""
        if not self.has(HIER, self.reference):
            return self._missing(HIER, self.reference)
        h = self.spec(HIER).dropna(subset=["rmse_ratio"])
        if h.empty:
            return "<p class='na'>No cell has both a hierarchical and a reference fit.</p>"
        gain = 1 - h["rmse_ratio"]
        best, worst = h.loc[gain.idxmax()], h.loc[gain.idxmin()]
        detectable = (h["rmse_ratio"] + 2 * h["rmse_ratio_mcse"] < 1)
        small = gain < GAIN_THRESHOLD
        out = [
            f"<p>Against no pooling (<code>{self.reference}</code>: each group on its own data), the "
            f"hierarchical prior (θ<sub>j</sub> ~ N(μ, τ²), μ and τ estimated) lowers the RMSE of "
            f"the group effects in <b>{int(detectable.sum())} of {len(h)}</b> cells detectably. "
            f"The RMSE ratio ranges from <b>{_fmt(best['rmse_ratio'], best['rmse_ratio_mcse'], 2)}</b> "
            f"({_cell_name(best, self.cell_axes)}: a {_pct(1 - best['rmse_ratio'])} gain) to "
            f"<b>{_fmt(worst['rmse_ratio'], worst['rmse_ratio_mcse'], 2)}</b> "
            f"({_cell_name(worst, self.cell_axes)}).</p>"
        ]
        trends = []
        for a in self.axes:
            by = h.groupby(a)["rmse_ratio"].mean()
            trends.append(
                f"along {a}: " + ", ".join(f"{k:g} → {v:.2f}" for k, v in by.items())
            )
        if trends:
            out.append(
                "<p>Mean RMSE ratio (hierarchical / no pooling) by each swept parameter, "
                "averaged over the others — " + "; ".join(trends) + ".</p>"
            )
        stops = h[small]
        if len(stops):
            out.append(
                f"<p>Where it stops mattering (gain below {_pct(GAIN_THRESHOLD)}): "
                f"{len(stops)} of {len(h)} cells — "
                + "; ".join(_cell_name(r, self.cell_axes) for _, r in stops.iterrows()) + ".</p>"
            )
        else:
            out.append(
                f"<p>The gain exceeds {_pct(GAIN_THRESHOLD)} in every cell of this study.</p>"
            )
        directions = []
        for a in self.axes:
            by = h.groupby(a)["rmse_ratio"].mean()
            if len(by) > 1:
                word = "shrinks" if by.iloc[-1] > by.iloc[0] else "grows"
                directions.append(f"{word} as {a} grows")
        if directions:
            out.append(f"<p>In this study the gain {', and '.join(directions)}.</p>")
        if "shrinkage" in h and h["shrinkage"].notna().any():
            s_best, s_worst = h.loc[gain.idxmax(), "shrinkage"], h.loc[gain.idxmin(), "shrinkage"]
            corr = np.corrcoef(h["shrinkage"], gain)[0, 1] if len(h) > 2 else np.nan
            out.append(
                f"<p>Shrinkage (1 − the slope of the estimates on the groups' own means; 0 is no "
                f"pooling, 1 complete pooling): {s_best:.2f} in the cell with the largest gain, "
                f"{s_worst:.2f} in the one with the smallest; correlation of shrinkage and gain "
                f"over cells {corr:.2f}.</p>"
            )
        if self.has("no_pooling_ml"):
            npml = self.spec("no_pooling_ml").dropna(subset=["rmse_ratio"])
            if len(npml):
                lo, hi = npml["rmse_ratio"].min(), npml["rmse_ratio"].max()
                same = lo > 1 - GAIN_THRESHOLD and hi < 1 + GAIN_THRESHOLD
                out.append(
                    f"<p>The classical no-pooling estimate (<code>no_pooling_ml</code>, each group's "
                    f"own mean) has RMSE ratios {lo:.2f}–{hi:.2f} against "
                    f"<code>{self.reference}</code>"
                    + (": within 5 % in every cell, so what the flat prior loses is the pooling, "
                       "not anything about its shape.</p>" if same else ".</p>")
                )
        table = h[self.cell_axes + ["rmse", "rmse_mcse", "rmse_ratio", "rmse_ratio_mcse", "shrinkage"]].copy()
        table["RMSE (hier.)"] = [_fmt(a, b) for a, b in zip(table["rmse"], table["rmse_mcse"])]
        table[f"RMSE ratio vs {self.reference}"] = [
            _fmt(a, b) for a, b in zip(table["rmse_ratio"], table["rmse_ratio_mcse"])
        ]
        table["shrinkage"] = table["shrinkage"].map(lambda v: _fmt(v, digits=2))
        out.append(_table(table[self.cell_axes + ["RMSE (hier.)", f"RMSE ratio vs {self.reference}", "shrinkage"]]))
        out.append(self.figs("rmse_ratio") + self.figs("rmse"))
        return "".join(out)

    def flat(self) -> str:
        """Why not a flat prior for flexibility?"""
        if not self.has(HIER, self.reference):
            return self._missing(HIER, self.reference)
        f, h = self.spec(self.reference), self.spec(HIER)
        key = self.cell_axes or ["study"]
        both = f.merge(h, on=key, suffixes=("_f", "_h"))
        width_ratio = both["width_90_f"] / both["width_90_h"]
        out = [
            f"<p>A flat prior on each θ<sub>j</sub> is “flexible” in that it lets every group be "
            f"anything, and its 90 % intervals cover "
            f"{_pct(f['coverage_90'].min())}–{_pct(f['coverage_90'].max())} of the true effects "
            f"across cells (nominal 90 %). What it costs: its intervals are "
            f"{width_ratio.min():.2f}–{width_ratio.max():.2f} times as wide as the hierarchical "
            f"ones (median {width_ratio.median():.2f}), and its RMSE is "
            f"{(1 / both['rmse_ratio_h']).min():.2f}–{(1 / both['rmse_ratio_h']).max():.2f} times "
            f"the hierarchical RMSE, detectably higher in "
            f"{int((both['rmse_ratio_h'] + 2 * both['rmse_ratio_mcse_h'] < 1).sum())} of {len(both)} "
            f"cells and detectably lower in "
            f"{int((both['rmse_ratio_h'] - 2 * both['rmse_ratio_mcse_h'] > 1).sum())}.</p>"
        ]
        if "tau" in self.axes and "shrinkage" in h and h["shrinkage"].notna().any():
            by = h.groupby("tau")[["shrinkage", "rmse_ratio"]].mean()
            lo, hi = by.iloc[0], by.iloc[-1]
            out.append(
                f"<p>The hierarchical prior is flexible too, because it learns the amount of "
                f"pooling: its mean shrinkage is {lo['shrinkage']:.2f} at τ = {by.index[0]:g} and "
                f"{hi['shrinkage']:.2f} at τ = {by.index[-1]:g}, where its RMSE ratio to the flat "
                f"prior is {hi['rmse_ratio']:.2f}.</p>"
            )
        if self.has("normal_weak"):
            w = self.spec("normal_weak").dropna(subset=["rmse_ratio"])
            out.append(
                f"<p>A wide normal prior (<code>normal_weak</code>) behaves like the flat one: RMSE "
                f"ratio {w['rmse_ratio'].min():.2f}–{w['rmse_ratio'].max():.2f}.</p>"
            )
        if self.has("normal_strong"):
            s = self.spec("normal_strong")
            worst = s.loc[s["coverage_90"].idxmin()]
            out.append(
                f"<p>A fixed, informative prior (<code>normal_strong</code>) is not a fix either: "
                f"it pools by a fixed amount whatever the data say, and its 90 % coverage falls to "
                f"{_fmt(worst['coverage_90'], worst['coverage_90_mcse'], 2)} at "
                f"{_cell_name(worst, self.cell_axes)}; the hierarchical prior learns the amount of "
                f"pooling (τ) from the data.</p>"
            )
        out.append(self.figs("coverage_90"))
        return "".join(out)

    def variance(self) -> str:
        """What happens to posterior variance?"""
        t = self.theta.dropna(subset=["posterior_variance"])
        if t.empty:
            return "<p class='na'>No spec reports a posterior variance.</p>"
        out = []
        if self.has(HIER, self.reference):
            h = self.spec(HIER).dropna(subset=["posterior_variance_diff"])
            ratio = h["posterior_variance"] / (h["posterior_variance"] - h["posterior_variance_diff"])
            out.append(
                f"<p>Posterior variance of θ<sub>j</sub>: the hierarchical one is {ratio.min():.2f}–"
                f"{ratio.max():.2f} times the {self.reference} one (median {ratio.median():.2f}) "
                f"across cells, detectably smaller in "
                f"{int((h['posterior_variance_diff'] + 2 * h['posterior_variance_diff_mcse'] < 0).sum())}"
                f" of {len(h)} cells.</p>"
            )
        cal = t.dropna(subset=["rel_se_error"])
        cal = cal[cal["method"] == "nuts"] if "method" in cal else cal
        if len(cal):
            off = cal[(cal["rel_se_error"].abs() > 0.10)
                      & (cal["rel_se_error"].abs() > 2 * cal["rel_se_error_mcse"])]
            by_spec = cal.groupby("prior")["rel_se_error"].agg(["min", "median", "max"])
            rows = "; ".join(
                f"{p}: {r['median']:+.0%} (from {r['min']:+.0%} to {r['max']:+.0%})"
                for p, r in by_spec.iterrows()
            )
            out.append(
                f"<p>Is the smaller variance honest? Compare the posterior sd with the spread of "
                f"the errors it claims to describe (relative error of the model SE, √mean "
                f"posterior variance ÷ empirical SE − 1; 0 is calibrated). Median over cells, per "
                f"spec — {rows}. {len(off)} of {len(cal)} (spec, cell) pairs are off by more "
                f"than 10 % and two MCSEs"
                + (": " + "; ".join(
                    f"{r['prior']} at {_cell_name(r, self.cell_axes)} ({r['rel_se_error']:+.0%})"
                    for _, r in off.sort_values("rel_se_error").head(8).iterrows()
                ) + ("; …" if len(off) > 8 else "") if len(off) else "")
                + ".</p>"
            )
        out.append(self.figs("posterior_variance"))
        return "".join(out)

    def t_vs_nix2(self) -> str:
        """Student-t and Normal-Inverse-chi^2 priors, on normal and on heavy-tailed effects."""
        wanted = [p for p in ("student_t", "normal_inv_chi2", "hierarchical_t") if p in self.priors]
        if not {"student_t", "normal_inv_chi2"} <= set(wanted):
            return self._missing("student_t", "normal_inv_chi2")
        out = [
            "<p><code>student_t</code> puts a fixed t prior on each θ<sub>j</sub>; "
            "<code>normal_inv_chi2</code> puts N(μ, σ²/κ₀) with σ² ~ Scaled-Inv-χ² on them — "
            "its marginal prior on θ<sub>j</sub> is also a t, but its scale is learned from the "
            "data through σ; <code>hierarchical_t</code> is a t population with an estimated "
            "scale.</p>"
        ]
        # the two specs against each other, paired on the same data sets
        versus_t = measures.summarize(self.rows, "theta", reference="student_t")
        versus_t = versus_t[versus_t["prior"] == "normal_inv_chi2"]
        for scenario in sorted(self.theta["scenario"].unique()):
            rows = []
            for p in [*wanted, HIER]:
                s = self.spec(p, scenario)
                if s.empty:
                    continue
                rows.append({
                    "prior": p,
                    f"mean RMSE ratio vs {self.reference}": _fmt(s["rmse_ratio"].mean(), digits=2),
                    "RMSE ratio range": f"{s['rmse_ratio'].min():.2f}–{s['rmse_ratio'].max():.2f}",
                    "90 % coverage range": f"{_pct(s['coverage_90'].min())}–{_pct(s['coverage_90'].max())}",
                })
            if rows:
                out.append(f"<h3>Scenario {html.escape(scenario)}</h3>" + _table(pd.DataFrame(rows)))
            pair = versus_t[versus_t["scenario"] == scenario].dropna(subset=["rmse_ratio"])
            if len(pair):
                better = pair[pair["rmse_ratio"] + 2 * pair["rmse_ratio_mcse"] < 1]
                worse = pair[pair["rmse_ratio"] - 2 * pair["rmse_ratio_mcse"] > 1]
                out.append(
                    f"<p>Scenario {html.escape(scenario)}: RMSE of normal_inv_chi2 ÷ RMSE of "
                    f"student_t (paired): "
                    + "; ".join(
                        f"{_fmt(r['rmse_ratio'], r['rmse_ratio_mcse'], 2)} at "
                        f"{_cell_name(r, self.axes) or 'the one cell'}" for _, r in pair.iterrows()
                    )
                    + f" — normal_inv_chi2 detectably better in {len(better)} of {len(pair)} "
                    f"cells, worse in {len(worse)}.</p>"
                )
        if "t_effects" not in set(self.theta["scenario"]):
            out.append(
                "<p class='na'>This study has no heavy-tailed effects. <code>make scenarios</code> "
                "fits every spec on t<sub>3</sub> effects (scenario <code>t_effects</code>) among "
                "others; <code>python -m analysis.report results_dir=results/scenarios</code> then "
                "answers this question on both.</p>"
            )
        return "".join(out)

    def undercoverage(self) -> str:
        """Where do intervals under-cover, and do the diagnostics warn about it?"""
        t = self.theta.dropna(subset=["coverage_90"])
        under = t[t["coverage_90"] + 2 * t["coverage_90_mcse"] < 0.90].sort_values("coverage_90")
        out = [
            f"<p>{len(under)} of {len(t)} (spec, cell) pairs under-cover detectably: 90 % "
            f"interval coverage more than two MCSEs below 0.90.</p>"
        ]
        if len(under):
            draws = under[under["method"] == "nuts"] if "method" in under else under
            warned = draws[draws["flagged_rate"] > 0.5]
            silent = draws[draws["flagged_rate"] <= 0.1]
            out.append(
                f"<p>Of the {len(draws)} of them fitted by NUTS, the sampler's diagnostics "
                f"(divergent transitions, R-hat > 1.01) flag more than half of the fits in "
                f"{len(warned)}, between 10 % and half in {len(draws) - len(warned) - len(silent)}, "
                f"and at most 10 % in {len(silent)}"
                + (" — silent failures: " + "; ".join(
                    f"{r['prior']} at {_cell_name(r, self.cell_axes)}" for _, r in silent.head(8).iterrows()
                ) + ("; …" if len(silent) > 8 else "") if len(silent) else "")
                + ".</p>"
            )
            both = draws.dropna(subset=["coverage_clean_90", "coverage_clean_90_mcse"])
            if len(both):
                gain = both["coverage_clean_90"] - both["coverage_90"]
                still = int((both["coverage_clean_90"] + 2 * both["coverage_clean_90_mcse"] < 0.90).sum())
                out.append(
                    f"<p>Keeping only the fits with clean diagnostics changes their coverage by "
                    f"{gain.min():+.2f} to {gain.max():+.2f} (median {gain.median():+.2f}); "
                    f"{still} of the {len(both)} still under-cover detectably on their clean fits "
                    f"alone.</p>"
                )
            cols = ["prior", *self.cell_axes, "coverage_90", "coverage_90_mcse", "coverage_clean_90",
                    "n_clean", "n_replicates", "divergent_rate", "nonconverged_rate"]
            shown = under[[c for c in cols if c in under]].head(25).copy()
            for c in ("coverage_90", "coverage_clean_90", "divergent_rate", "nonconverged_rate"):
                if c in shown:
                    shown[c] = shown[c].map(lambda v: _fmt(v, digits=2))
            shown["coverage_90_mcse"] = shown["coverage_90_mcse"].map(lambda v: _fmt(v, digits=3))
            out.append(_table(shown))
        flagged = t[(t["method"] == "nuts") & (t["divergent_rate"] > 0)] if "method" in t else t.iloc[:0]
        if len(flagged):
            worst = flagged.loc[flagged["divergent_rate"].idxmax()]
            out.append(
                f"<p>Divergent transitions occur in {len(flagged)} (spec, cell) pairs; the most in "
                f"{worst['prior']} at {_cell_name(worst, self.cell_axes)} "
                f"({_pct(worst['divergent_rate'])} of fits).</p>"
            )
        name = "theta_coverage_curves.png"
        if name in self.pngs:
            out.append(
                "<p>Coverage at every level (actual minus nominal; below zero is under-coverage), "
                "for the specs that make draws:</p>" + _img(self.pngs[name], name)
            )
        out.append(self.figs("divergent_rate"))
        return "".join(out)

    def exact(self) -> str:
        """The fits against their exact posteriors (``analysis.exact``)."""
        if "exact_mean" not in self.rows or self.rows["exact_mean"].isna().all():
            return ("<p class='na'>No spec of this study has an exact posterior to compare with "
                    "(flat, normal, hierarchical and normal_inv_chi2 on Gaussian data have).</p>")
        error = exact.sampler_error(self.rows)
        out = [
            "<p><b>What the sampler adds.</b> For every estimand with an exact posterior, "
            "z = (NUTS mean − exact mean) / MCSE of the mean, and the same for the sd. A correct "
            "sampler with correct Monte Carlo errors gives z of mean 0 and sd 1; the brackets "
            "are 95 % intervals from resampling whole fits (a fit's estimands share its draws), "
            "which say how closely a study of this size can tell.</p>",
            _table(_with_intervals(error)),
        ]
        effect = exact.prior_effect(self.rows, self.cell_axes)
        if len(effect):
            out.append(
                "<p><b>What the prior does</b>, with no sampling error: RMSE and 90 % coverage "
                "of θ under each spec's exact posterior, beside the fits' (± one MCSE over "
                "replicates).</p>")
            shown = effect[["prior", *self.cell_axes, "n_replicates"]].copy()
            for m in ("rmse", "coverage_90"):
                for kind in ("exact", "fit"):
                    shown[f"{kind}_{m}"] = [_fmt(a, b) for a, b in
                                            zip(effect[f"{kind}_{m}"], effect[f"{kind}_{m}_mcse"])]
            out.append(_table(shown))
        return "".join(out)

    def each_spec(self) -> str:
        """One sentence per prior of the study: what its spec declares (the first line of its
        module's docstring) and its own numbers, so a newly added spec is reported like the others."""
        items = []
        for name in self.priors:
            t = self.spec(name)
            spec = t["prior_spec"].iloc[0] if "prior_spec" in t and len(t) else name
            text = f"<code>{html.escape(name)}</code>"
            if spec != name:
                text += f" (spec <code>{html.escape(str(spec))}</code>)"
            declared = spec_summary(str(spec))
            text += f": {html.escape(declared)}" if declared else ""
            facts = []
            ratio = t["rmse_ratio"].dropna() if "rmse_ratio" in t else pd.Series(dtype=float)
            if len(ratio) and name != self.reference:
                facts.append(f"RMSE of θ {_span(ratio)} × that of <code>{html.escape(self.reference)}</code> "
                             "on the same data sets")
            if "coverage_90" in t and t["coverage_90"].notna().any():
                facts.append(f"90 % intervals cover θ {_span(t['coverage_90'].dropna(), pct=True)}")
            if "flagged_rate" in t and t["flagged_rate"].notna().any():
                facts.append(f"{_span(t['flagged_rate'].dropna(), pct=True)} of fits flagged")
            cells = len(t)
            text += (f". Over its {cells} cell{'s' if cells != 1 else ''}: " + "; ".join(facts) + "."
                     if facts else ".")
            items.append(f"<li>{text}</li>")
        return f"<ul>{''.join(items)}</ul>"

    def appendix(self) -> str:
        cols = ["prior", *self.cell_axes]
        t = self.theta.sort_values(cols)
        shown = pd.DataFrame({c: t[c] for c in cols})
        for m in ("rmse", "bias", "empse", "model_se", "coverage_90", "width_90", "shrinkage",
                  "flagged_rate"):
            if m in t:
                shown[m] = [_fmt(a, b) for a, b in zip(t[m], t[f"{m}_mcse"])]
        return (
            "<details><summary>Every measure of θ, per spec and cell (± one MCSE)</summary>"
            + _table(shown) + "</details>"
            f"<p>All measures of every estimand family: <code>{self.dir / 'analysis' / 'summaries.parquet'}</code>; "
            f"coverage curves: <code>{self.dir / 'analysis' / 'coverage_curves.parquet'}</code>.</p>"
        )

    def html(self) -> str:
        sections = [
            ("The prior specs of this study", self.each_spec),
            ("What does a hierarchical prior buy over no pooling, and where does it stop mattering?", self.pooling),
            ("Why not a flat prior for flexibility?", self.flat),
            ("What happens to posterior variance?", self.variance),
            ("Student-t versus Normal–Inverse-χ² priors", self.t_vs_nix2),
            ("Where do intervals under-cover, and do the diagnostics warn?", self.undercoverage),
            ("What the prior does, and what the sampler adds", self.exact),
            ("Appendix", self.appendix),
        ]
        body = "".join(f"<h2>{html.escape(title)}</h2>{make()}" for title, make in sections)
        study = html.escape(", ".join(sorted(self.theta["study"].unique())))
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hierbench report: {study}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #222; }}
h1 {{ font-size: 1.6rem; }} h2 {{ font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ccc; }}
table.t {{ border-collapse: collapse; font-size: 0.85rem; margin: 0.8rem 0; }}
table.t td, table.t th {{ padding: 0.15rem 0.6rem; text-align: right; border-bottom: 1px solid #eee; }}
figure {{ margin: 1rem 0; }} img {{ max-width: 100%; }}
.na {{ color: #8a5a00; }} .warn {{ color: #a00; }} code {{ background: #f4f4f4; padding: 0 0.2rem; }}
</style></head><body>
<h1>hierbench report: study {study}</h1>
{self.header()}
{body}
</body></html>
"""


def write(results_dir, reference: str = measures.REFERENCE, out=None, allow_mixed=False) -> Path:
    """Write ``report.html`` (by default into ``results_dir``) and return its path."""
    report = Report(results_dir, reference, allow_mixed)
    path = Path(out) if out else Path(results_dir) / "report.html"
    files.write_atomic(path, report.html())
    return path


def run(cfg) -> None:
    """``python -m analysis.report``: write the report of ``cfg.results_dir`` and print its path."""
    try:
        path = write(cfg.results_dir, cfg.reference, cfg.out, cli.boolean(cfg, "allow_mixed"))
    except (ResultsError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    print(path)


main = cli.app("analysis_report", run)


if __name__ == "__main__":
    main()
