"""Reading a results directory: every ``*.parquet`` file directly inside it, one per job.

Only whole files are read: a job's file appears by an atomic rename, and the hidden temporary
files of a writer (names starting with ".") are skipped, as are the sub-folders (``pilot/``, and
``damaged/``, where a study's preflight puts the files it found damaged). Each file is checked
before its rows are used, and a file that fails a check stops the reading with one line naming the
file, the problem and the repair (``ResultsError``): the study's own command, run again, moves a
damaged file of one of its jobs aside to ``damaged/`` and computes the job again.

* it must be a readable parquet file (not truncated or damaged);
* it must have the ``REQUIRED`` columns, each of its kind (text, integer, number;
  ``schema_problem``, which the study's preflight applies too);
* it must hold one job (one ``config_hash``), the job its name ends with where the name ends
  with a config hash (``<...>-<12 hex digits>.parquet``, as ``runs.job`` names them), with the
  same estimands for replicates 0..R-1, each (replicate, param, index) once (the pilot file of a
  job with replicates=auto, whose ``replicates_mode`` is ``pilot``: for consecutive replicates
  from its first, which ``runs.auto`` draws from an index range of their own).

Files of another results version than the code's (``models.engine.RESULTS_VERSION``: fits changed
since they were computed), or that record none, are left out, with one line that counts the files
of each version (``analysis.versions``); ``allow_mixed=True`` uses them too.

A folder holds either result files or pilot files (``<study>/pilot/``, which a study's folder
does not read: it has no sub-folders); a pilot file among result files is refused, since its
rows are no part of the study's estimates.

The columns that record how a job's replicate count was chosen (``replicates_mode`` and the
``auto_*`` columns, ``plan_columns``) are neither identity nor per-row columns: jobs of the same
cell and settings whose counts were chosen differently are the same job (their replicates are the
same data sets), and specs of one cell with different planned counts are still one cell.

Across files, no job may be counted twice: two files whose identity columns (all but the
per-row and the provenance ones) are equal hold the same job (cell, prior, settings, seed), so
their replicates are the same data sets. If they come from different code or config versions
(another ``code_version``, another ``config_hash``: more replicates, another results version when
``allow_mixed`` lets those in) they are refused unless ``allow_mixed=True``, which keeps both as
separate jobs; two files of one ``config_hash`` are the same computation twice and are always
refused. Files of different jobs
(a sweep over any setting) are read together.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis import versions

REQUIRED = {  # column: kind
    "study": "text", "scenario": "text", "prior": "text", "replicate": "integer",
    "param": "text", "index": "integer", "true_value": "number", "posterior_mean": "number",
    "posterior_sd": "number", "lower_90": "number", "upper_90": "number", "rhat": "number",
    "ess_bulk": "number", "n_divergent": "integer", "status": "text", "config_hash": "text",
}

PROVENANCE = (
    "config_hash", "results_version", "code_version", "package_versions", "created_at",
    "job_seconds",
)
"""Columns that say how and when a job was computed, not which job it is."""

_KINDS = {
    "text": (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "text"),
    "integer": (pa.types.is_integer, "integers"),
    "number": (lambda t: pa.types.is_floating(t) or pa.types.is_integer(t), "numbers"),
}


class ResultsError(ValueError):
    """A result file that cannot be read or summarised, or two that must not be mixed."""


REPAIR = (
    "to repair it, run the study's command again (python -m runs.study with the study's "
    "settings): it moves the file aside to {folder}/damaged/ and computes its job again"
)
"""How a damaged file of a study is repaired (``runs.study``'s preflight, ``runs.verify``)."""

_NAMED_HASH = re.compile(r"-([0-9a-f]{12})\.parquet$")


def read_results(results_dir, allow_mixed: bool | str = False) -> pd.DataFrame:
    """All rows of a results directory, each file checked (see the module's docstring).

    ``allow_mixed`` (a bool, or "true"/"false" from a command line) uses the files of other
    results versions too, and keeps two files of the same job from different code or config
    versions instead of refusing them.
    """
    allow_mixed = _flag(allow_mixed)
    folder = Path(results_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"results_dir={str(folder)!r} is not a directory")
    files = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"results_dir={str(folder)!r} holds no *.parquet result files")
    frames = [read_file(f) for f in files]
    files, frames = versions.select(folder, files, frames, allow_mixed)
    pilots = [f for f, df in zip(files, frames) if _is_pilot(df)]
    if pilots and len(pilots) < len(files):
        raise ResultsError(
            f"{pilots[0]}: the pilot of a replicates=auto job (replicates_mode pilot) among "
            f"result files: its rows are no part of the study's estimates; pilot files belong "
            f"in the study's pilot/ folder"
        )
    _refuse_duplicate_jobs(files, frames, allow_mixed)
    return pd.concat(frames, ignore_index=True)


def read_file(path) -> pd.DataFrame:
    """The rows of one result file, after the checks of one file."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException, ValueError) as err:
        raise ResultsError(
            f"{path}: not a readable parquet file, damaged or truncated "
            f"({_one_line(err)}); {repair(path)}"
        ) from None
    problem = schema_problem(table.schema)
    if problem:
        raise ResultsError(f"{path}: not a hierbench result file: {problem}; {repair(path)}")
    df = table.to_pandas()
    try:
        _check_one_job(path, df)
    except ResultsError as err:
        raise ResultsError(f"{err}; {repair(path)}") from None
    return df


def repair(path: Path) -> str:
    """How a damaged result file ``path`` is repaired, in words (``REPAIR``)."""
    return REPAIR.format(folder=Path(path).parent)


def schema_problem(schema: pa.Schema) -> str | None:
    """What keeps ``schema`` from being a result file's (a ``REQUIRED`` column missing, or of
    another kind), in words; None if nothing does. Reads nothing but the schema."""
    for column, kind in REQUIRED.items():
        if column not in schema.names:
            return f"no column '{column}'"
        ok, what = _KINDS[kind]
        if not ok(schema.field(column).type):
            return f"column '{column}' holds {schema.field(column).type}, not {what}"
    return None


def _check_one_job(path: Path, df: pd.DataFrame) -> None:
    hashes = df["config_hash"].unique()
    if len(hashes) != 1:
        raise ResultsError(
            f"{path}: holds rows of {len(hashes)} jobs (config_hash "
            f"{', '.join(map(str, hashes))}); a result file holds one job"
        )
    named = _NAMED_HASH.search(path.name)
    if named and named.group(1) != hashes[0]:
        raise ResultsError(
            f"{path}: holds the rows of job {hashes[0]} (config_hash), but its name is job "
            f"{named.group(1)}'s: another job's file in its place"
        )
    keys = ["replicate", "param", "index"]
    repeated = df.duplicated(keys)
    if repeated.any():
        r = df.loc[repeated, keys].iloc[0]
        raise ResultsError(
            f"{path}: replicate {r['replicate']}, {r['param']}[{r['index']}] appears more than once"
        )
    replicates = np.sort(df["replicate"].unique())
    first = replicates[0] if _is_pilot(df) and len(replicates) else 0
    if not np.array_equal(replicates, first + np.arange(len(replicates))):
        wanted = "consecutive replicates" if first else "0..R-1"
        raise ResultsError(
            f"{path}: column 'replicate' holds {replicates.tolist()[:10]}, not {wanted}: incomplete"
        )
    sizes = df.groupby("replicate").size()
    if sizes.nunique() > 1:
        raise ResultsError(
            f"{path}: replicate {sizes.idxmin()} has {sizes.min()} rows, replicate "
            f"{sizes.idxmax()} {sizes.max()}: incomplete"
        )


def _is_pilot(df: pd.DataFrame) -> bool:
    """Rows of the pilot of a replicates=auto job (``runs.auto``), not of a study's estimates."""
    mode = df["replicates_mode"] if "replicates_mode" in df else None
    return mode is not None and len(df) > 0 and bool((mode == "pilot").all())


def plan_columns(df: pd.DataFrame) -> list[str]:
    """The columns that record how a job's replicate count was chosen: ``replicates_mode`` and,
    for replicates=auto, the plan and the MCSEs achieved (``auto_*``, see ``runs.store``)."""
    return [c for c in df.columns if c == "replicates_mode" or c.startswith("auto_")]


def _refuse_duplicate_jobs(files: list[Path], frames: list[pd.DataFrame], allow_mixed: bool):
    seen: dict[str, int] = {}
    for i, df in enumerate(frames):
        key = job_key(df)
        if key not in seen:
            seen[key] = i
            continue
        a, b = frames[seen[key]].iloc[0], df.iloc[0]
        first, second = files[seen[key]], files[i]
        if a["config_hash"] == b["config_hash"]:
            raise ResultsError(
                f"{first} and {second} hold the same job (config_hash {a['config_hash']}): "
                "remove one, its replicates would count twice"
            )
        if allow_mixed:
            continue
        differ = [
            f"{c} {a[c]} vs {b[c]}" for c in ("config_hash", "results_version", "code_version")
            if c in a and c in b and a[c] != b[c]
        ]
        raise ResultsError(
            f"{first} and {second} hold the same job ({_describe(a)}) from different code or "
            f"config versions ({'; '.join(differ)}): its replicates would count twice; "
            "remove the older file, or pass allow_mixed=true to keep both as separate jobs"
        )


def job_key(df: pd.DataFrame) -> str:
    """What makes a job the job it is: its identity columns but the provenance, as text."""
    first = df.iloc[0]
    ident = {c: first[c] for c in identity_columns(df) if c not in PROVENANCE}
    return json.dumps(ident, sort_keys=True, default=str)


def _describe(row: pd.Series) -> str:
    cell = ", ".join(f"{c} {row[c]}" for c in ("n_groups", "group_size", "tau") if c in row)
    return f"{row['scenario']} {cell}, prior {row['prior']}, seed {row.get('seed', '?')}"


def _flag(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise ValueError(f"allow_mixed={value!r} is not allowed: true or false")


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


PER_ROW = {
    "replicate", "param", "index", "true_value", "raw_estimate", "truth_cdf", "posterior_mean",
    "posterior_sd",
    "posterior_median", "rhat", "ess_bulk", "n_divergent", "n_max_treedepth", "n_leapfrog",
    "status", "skip_reason", "created_at", "job_seconds", "exact_mean", "exact_sd",
    "exact_truth_cdf", "mcse_mean", "mcse_sd", "ess_tail", "sampled_rhat", "sampled_ess",
}


def identity_columns(df: pd.DataFrame) -> list[str]:
    """The columns that identify a job (cell x prior x settings, provenance): all but the
    per-row ones and the ``plan_columns``, in the order of ``df``."""
    plan = set(plan_columns(df))
    return [
        c for c in df.columns
        if c not in PER_ROW and c not in plan and not c.startswith(("lower_", "upper_", "_"))
    ]
