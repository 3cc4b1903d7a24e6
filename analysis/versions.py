"""Which result files of a folder the analysis uses: those of the code's results version.

A study folder can hold files written by several versions of hierbench: a study resumed after an
update, or one whose ``models.engine.RESULTS_VERSION`` changed (the fits changed), which the study
computes again under new names, leaving the old files beside the new ones. Every file records its
``results_version`` and ``code_version`` (``runs.store.provenance``). ``select`` keeps the files of
the code's results version, the only ones a study counts as done; files of another results
version, or that record none, are left out unless ``allow_mixed``. When the folder holds files of
more than one version, or of another one only, one line (a warning of this module's logger)
counts the files of each results version and, within it, of each code version, and says which
are used. Files of one results version from
several code versions are all used: the results version is what promises that their fits agree.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

NOT_RECORDED = "not recorded"
"""The results version of a file without a ``results_version`` column."""


def current() -> int:
    """The results version of this code (``models.engine.RESULTS_VERSION``, read when called)."""
    from models import engine  # here, not above: reading files needs no JAX, which it imports

    return int(engine.RESULTS_VERSION)


def of(df: pd.DataFrame) -> tuple[object, str]:
    """(results version, code version) of one file's rows; ``NOT_RECORDED`` where a column is
    missing or empty."""
    def first(column):
        if column not in df or not len(df) or pd.isna(df[column].iloc[0]):
            return NOT_RECORDED
        value = df[column].iloc[0]
        return int(value) if column == "results_version" else str(value)

    return first("results_version"), first("code_version")


def select(folder: Path, files: list[Path], frames: list[pd.DataFrame], allow_mixed: bool):
    """The (files, frames) the analysis uses; one line if the folder holds several versions.
    ``ResultsError`` if no file is of the current results version and ``allow_mixed`` is off."""
    from analysis.load import ResultsError

    now = current()
    found = [of(df) for df in frames]
    if len(set(found)) > 1 or (found and found[0][0] != now):
        others = sum(r != now for r, _ in found)
        if others == len(found) and not allow_mixed:
            raise ResultsError(
                f"{folder}: no result file of results version {now} (this code's): "
                f"{describe(found)}; run the study again to compute its jobs with this code, or "
                f"pass allow_mixed=true to use these files"
            )
        if not others:
            use = "all used (one results version)"
        elif allow_mixed:
            use = "all used (allow_mixed=true)"
        else:
            use = (f"only the {len(found) - others} of results version {now} (this code's) used, "
                   f"{others} left out; allow_mixed=true uses them too")
        log.warning("%s: result files by version: %s; %s", folder, describe(found), use)
    if allow_mixed:
        return files, frames
    kept = [i for i, (r, _) in enumerate(found) if r == now]
    return [files[i] for i in kept], [frames[i] for i in kept]


def describe(found: list[tuple[object, str]]) -> str:
    """Counts of files by results version, and by code version within each, in words."""
    by_results = Counter(r for r, _ in found)
    parts = []
    for results in sorted(by_results, key=lambda r: (r == NOT_RECORDED, str(r).zfill(12))):
        codes = Counter(c for r, c in found if r == results)
        code = ", ".join(f"{c} {n}" for c, n in sorted(codes.items()))
        parts.append(f"{by_results[results]} of results version {results} (code version {code})")
    return "; ".join(parts)
