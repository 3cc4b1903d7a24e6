"""Reading a results directory: every ``*.parquet`` file directly inside it, one per job."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

REQUIRED = (
    "study", "scenario", "prior", "replicate", "param", "index", "true_value", "posterior_mean",
    "posterior_sd", "lower_90", "upper_90", "rhat", "ess_bulk", "n_divergent", "status",
    "config_hash",
)


def read_results(results_dir) -> pd.DataFrame:
    """All rows of a results directory; a clear error if there are none or a column is missing."""
    folder = Path(results_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"results_dir={str(folder)!r} is not a directory")
    files = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"results_dir={str(folder)!r} holds no *.parquet result files")
    frames = []
    for f in files:
        df = pd.read_parquet(f)
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            raise ValueError(f"{f}: not a hierbench result file, missing column(s) {missing}")
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


PER_ROW = {
    "replicate", "param", "index", "true_value", "raw_estimate", "truth_cdf", "posterior_mean",
    "posterior_sd",
    "posterior_median", "rhat", "ess_bulk", "n_divergent", "n_max_treedepth", "n_leapfrog",
    "status", "skip_reason", "created_at", "job_seconds",
}


def identity_columns(df: pd.DataFrame) -> list[str]:
    """The columns that identify a job (cell x prior x settings, provenance): all but the
    per-row ones, in the order of ``df``."""
    return [
        c for c in df.columns
        if c not in PER_ROW and not c.startswith(("lower_", "upper_")) and not c.startswith("_")
    ]
