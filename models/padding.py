"""Groups without data added to a data set: one sampler program for several numbers of groups.

The sampler's program is compiled per shape of its data, so a study that sweeps the number of
groups (J = 5 and 20, say) compiles it once per J. ``engine.fit(pad_groups=P)`` runs the sampler
on data padded to P groups instead, so that every J up to P shares one program; the study pads
every job to the largest J of its sweep (``runs.study``).

A padded group is a group without data, and it changes nothing: ``n_j = 0`` (sufficient
statistics: no ybar_j term, no ss_j term), ``se_j = inf`` (known standard errors) or
``trials_j = 0`` (binomial) adds a factor of 1 to the likelihood, and with theta integrated out
an infinite noise variance drops the group from every sum over groups (``models.collapse``).
A fit is padded only where none of the sampler's coordinates grows with J: where theta (and any
other per-group value) is integrated out, the sampler moves mu, tau and sigma whatever J, the
groups enter its potential only through sums over groups, and the draws differ from the
unpadded program's by float rounding only (sums over more terms; tests/test_padding.py checks
the potential and its gradient). The summaries are computed from the real groups only. A spec
that samples a value per group (theta itself, local scales, a t's mixing weights) runs at its
own J: padding it would mean moving coordinates the posterior does not have, at a cost per
step that outweighs one compile.
"""

from __future__ import annotations

import numpy as np

FILL = {"n": 0, "trials": 0, "se": np.inf}
"""A padded group's value of each data array that says it has no data; other arrays get 0."""

FORMS = (("ybar", "n", "ss"), ("y", "se"), ("successes", "trials"))
"""The data forms that can be padded: a padded group has no data in each of them."""


def paddable(data: dict) -> bool:
    """Whether ``data`` (a batch: arrays (R, J)) has one of ``FORMS`` and nothing else."""
    keys = {k for k, v in data.items() if v is not None}
    shapes = {np.shape(v) for v in data.values()}
    return any(keys == set(form) for form in FORMS) and len(shapes) == 1 and len(shapes.pop()) == 2


def pad(data: dict, n_groups: int) -> dict:
    """``data`` (arrays (R, J)) with groups J .. ``n_groups`` - 1 added, each without data."""
    out = {}
    for key, value in data.items():
        value = np.asarray(value)
        extra = np.full((value.shape[0], n_groups - value.shape[1]), FILL.get(key, 0),
                        value.dtype)
        out[key] = np.concatenate([value, extra], axis=1)
    return out
