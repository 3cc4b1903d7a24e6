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
    "rmse": "RMSE of θ (outcome units)",
    "coverage_90": "coverage of 90 % intervals for θ",
    "posterior_variance": "mean posterior variance of θ (outcome units²)",
}


def prior_order(names) -> list[str]:
    known = [p for p in KNOWN_PRIORS if p in set(names)]
    return known + sorted(set(names) - set(known))


def palette(names) -> dict:
    """Fixed colours: a known spec keeps its colour whichever specs a study has."""
    colours = sns.color_palette("colorblind", 10) + sns.color_palette("dark", 10)
    out = {p: colours[i % len(colours)] for i, p in enumerate(KNOWN_PRIORS)}
    extra = [p for p in prior_order(names) if p not in out]
    for i, p in enumerate(extra):
        out[p] = colours[(len(KNOWN_PRIORS) + i) % len(colours)]
    return {p: out[p] for p in prior_order(names)}
