"""Is a result file on disk a whole file of the job it is named for? Setting aside one that is not.

A study skips a job whose result file exists (``runs.job.run``, and the sweep's preflight in
``runs.study``). Writes are atomic (``runs.store.write_atomic``), but a file can still be damaged
afterwards: cut short by a copy, hit by a disk error, or replaced by another file. ``problem``
checks a file cheaply, reading its footer and two small columns, never the whole file:

* the footer is readable (a truncated, emptied or overwritten end fails here);
* the schema has the columns a result file has (``analysis.load.schema_problem``, the same check
  the analysis makes);
* it has rows, and its ``config_hash`` column holds the job's hash in every row (another job's
  file in its place fails here);
* its ``replicate`` column holds replicates 0..R-1, R the job's count (0..R-1 for some R with
  replicates=auto), each with the same number of rows, which add up to the footer's row count.

A file that fails is never deleted: ``set_aside`` moves it into the ``damaged/`` sub-folder of its
study folder (which the analysis does not read), and its job runs again.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.load import schema_problem
from runs import store

DAMAGED = "damaged"
"""The sub-folder of a study folder that holds the result files found damaged."""

_READ_ERRORS = (OSError, ValueError, KeyError, pa.ArrowException)


class CannotSetAside(RuntimeError):
    """A damaged result file that could not be moved aside: one line naming it and the cause."""


def problem(path: Path, config_hash: str, replicates: int | None) -> str | None:
    """What is wrong with ``path`` as the result file of the job with hash ``config_hash`` and
    ``replicates`` replicates (None: replicates=auto), in words; None if nothing is."""
    try:
        file = pq.ParquetFile(path)
        rows = file.metadata.num_rows
        schema = file.schema_arrow
    except _READ_ERRORS as err:
        return f"not a readable parquet file, damaged or truncated ({_one_line(err)})"
    wrong = schema_problem(schema)
    if wrong:
        return f"not a result file: {wrong}"
    if rows == 0:
        return "no rows"
    try:
        table = file.read(columns=["config_hash", "replicate"])
    except _READ_ERRORS as err:
        return f"its columns config_hash and replicate cannot be read ({_one_line(err)})"
    if table.num_rows != rows:
        return f"{table.num_rows} rows read, its footer says {rows}"
    hashes = set(table.column("config_hash").unique().to_pylist())
    if hashes != {config_hash}:
        found = ", ".join(sorted(map(str, hashes - {config_hash}))) or "none"
        return f"holds the rows of job {found} (config_hash), not of this job ({config_hash})"
    counted, counts = np.unique(table.column("replicate").to_numpy(), return_counts=True)
    wanted = np.arange(replicates if replicates is not None else len(counted))
    if not np.array_equal(counted, wanted):
        shown = counted.tolist()[:10]
        return f"holds replicates {shown}, not 0..{len(wanted) - 1}: incomplete"
    if len(set(counts.tolist())) > 1:
        return (f"replicate {counted[counts.argmin()]} has {counts.min()} rows, replicate "
                f"{counted[counts.argmax()]} {counts.max()}: incomplete")
    return None


def set_aside(path: Path, damage: str) -> Path:
    """Move ``path``, damaged as ``damage`` says, into ``<its folder>/damaged/`` (a numbered name
    if one of that name is there already); return where it went. ``CannotSetAside`` if the move
    fails: the file is left where it is, and its job must not be run over it."""
    folder = path.parent / DAMAGED
    try:
        folder.mkdir(exist_ok=True)
        target = folder / path.name
        number = 1
        while target.exists():
            target = folder / f"{path.stem}.{number}{path.suffix}"
            number += 1
        os.replace(path, target)
    except OSError as err:
        raise CannotSetAside(
            f"{path}: damaged ({damage}), and it could not be moved to {folder}/: "
            f"{store.os_error(err)}; move it away by hand and run the study again"
        ) from err
    return target


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split()) or type(err).__name__
