"""One colour per prior spec, the same in every figure, and readable axis labels."""

from __future__ import annotations

import seaborn as sns

# Specs in the order a reader meets them (no pooling, fixed priors, pooling, baselines), each
# with its colour: an index into seaborn's colour-blind palette (0 blue, 1 orange, 2 green,
# 3 red, 4 purple, 5 brown, 6 pink, 7 grey, 8 olive, 9 cyan), then its "dark" palette (10-19).
KNOWN_PRIORS = {
    "flat": 0, "normal": 1, "normal_weak": 8, "normal_strong": 6, "student_t": 3,
    "complete_pooling": 7, "hierarchical": 2, "hierarchical_centered": 12, "normal_inv_chi2": 4,
    "hierarchical_t": 5, "horseshoe": 9, "no_pooling_ml": 10, "james_stein": 13,
    "empirical_bayes": 14,
}

LABELS = {
    "n_groups": "number of groups J",
    "group_size": "observations per group n",
    "tau": "between-group sd τ (outcome units)",
    "rmse": "RMSE of θ\n(outcome units)",
    "coverage_90": "coverage of 90 %\nintervals for θ",
    "posterior_variance": "mean posterior variance\nof θ (outcome units²)",
    "rmse_ratio": "RMSE of θ relative to\nREFERENCE (paired, same data)",
    "divergent_rate": "share of fits with\na divergent transition",
}


PARTIAL = " (fitted data sets only)"
"""Suffix of a line whose spec skipped some data sets; it keeps the spec's colour."""


def prior_order(names) -> list[str]:
    names = set(names)
    known = [q for p in KNOWN_PRIORS for q in (p, p + PARTIAL) if q in names]
    return known + sorted(names - set(known))


def palette(names) -> dict:
    """Fixed colours: a known spec keeps its colour whichever specs a study has; the others take
    the palette's free colours, then as many further distinct hues as they need (never a known
    spec's colour)."""
    colours = sns.color_palette("colorblind", 10) + sns.color_palette("dark", 10)
    free = [i for i in range(len(colours)) if i not in KNOWN_PRIORS.values()]
    base = lambda p: p.removesuffix(PARTIAL)  # noqa: E731  (a partial line keeps its spec's colour)
    extra = sorted({base(p) for p in names} - set(KNOWN_PRIORS))
    more = sns.color_palette("husl", max(len(extra) - len(free), 0))
    colour = {**{p: colours[i] for p, i in KNOWN_PRIORS.items()},
              **{p: colours[i] for p, i in zip(extra, free)},
              **dict(zip(extra[len(free):], more))}
    return {p: colour[base(p)] for p in prior_order(names)}
