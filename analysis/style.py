"""One colour per prior spec, the same in every figure, and readable axis labels."""

from __future__ import annotations

import seaborn as sns

# Specs in the order a reader meets them: no pooling, then fixed priors, then pooling.
KNOWN_PRIORS = (
    "flat", "normal", "normal_weak", "normal_strong", "student_t", "complete_pooling",
    "hierarchical", "hierarchical_centered", "normal_inv_chi2", "hierarchical_t", "horseshoe",
    "no_pooling_ml", "james_stein", "empirical_bayes",
)

LABELS = {
    "n_groups": "number of groups J",
    "group_size": "observations per group n",
    "tau": "between-group sd τ (outcome units)",
    "rmse": "RMSE of θ\n(outcome units)",
    "coverage_90": "coverage of 90 %\nintervals for θ",
    "posterior_variance": "mean posterior variance\nof θ (outcome units²)",
}


def prior_order(names) -> list[str]:
    known = [p for p in KNOWN_PRIORS if p in set(names)]
    return known + sorted(set(names) - set(known))


# Indices into seaborn's colour-blind palette (0 blue, 1 orange, 2 green, 3 red, 4 purple,
# 5 brown, 6 pink, 7 grey, 8 olive, 9 cyan), then its "dark" palette for the baselines.
_COLOUR_INDEX = {
    "flat": 0, "normal": 1, "hierarchical": 2, "student_t": 3, "normal_inv_chi2": 4,
    "hierarchical_t": 5, "horseshoe": 9, "complete_pooling": 7, "normal_weak": 8,
    "normal_strong": 6, "hierarchical_centered": 12, "no_pooling_ml": 10, "james_stein": 13,
    "empirical_bayes": 14,
}


def palette(names) -> dict:
    """Fixed colours: a known spec keeps its colour whichever specs a study has."""
    colours = sns.color_palette("colorblind", 10) + sns.color_palette("dark", 10)
    extra = [p for p in prior_order(names) if p not in _COLOUR_INDEX]
    index = {**_COLOUR_INDEX, **{p: 15 + i for i, p in enumerate(extra)}}
    return {p: colours[index[p] % len(colours)] for p in prior_order(names)}
