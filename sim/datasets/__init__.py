"""Real data sets, and a user's own data from a CSV file, in the data forms the models take.

Shipped (nothing is downloaded):

* ``eight_schools``: Rubin (1981) / BDA3 Table 5.2; estimates and standard errors (``y``, ``se``).
* ``efron_morris``: Efron & Morris (1975) Table 1; hits in 45 at-bats (``successes``, ``trials``)
  and the rest-of-season average as the truth.
* ``rat_tumors``: Tarone (1982) / BDA3 Table 5.1; tumours out of rats in 71 experiments.
* ``radon``: Gelman & Hill (2007), log radon in 919 Minnesota houses in 85 counties; read from the
  installed ArviZ package (``arviz/data/example_data/code/radon/radon.json``) and reduced to the
  Gaussian sufficient statistics (``ybar``, ``n``, ``ss``) per county.

The first three are CSV files in this folder (their header comments give source and licence),
read by the same ``read_csv`` as a user's file. A CSV has a ``group`` column and one of three sets
of value columns, which decide its data form:

* ``group, y``: one row per observation (Gaussian, sigma unknown), reduced to ybar_j, n_j, ss_j;
* ``group, y, se``: one row per group, an estimate and its known standard error (> 0);
* ``group, successes, trials``: one row per group, integer counts with 0 <= successes <= trials
  and trials >= 1 (binomial, modelled on the logit scale).

The one-row-per-group forms may add a ``truth`` column: the true theta_j for ``y, se``, the true
success probability for ``successes, trials`` (its logit is theta_j's truth). Integer group codes
must run without gaps (a missing code is a group with no rows). Every problem raises ``DataError``
with one line naming the file, the line, the column and the value.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
RADON_IN_ARVIZ = "data/example_data/code/radon/radon.json"


class DataError(ValueError):
    """A data file that cannot be fitted."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One data set: ``data`` in a model's data form (arrays of shape (J,)), the group labels,
    ``truth`` ({site: (J,) or scalar}, empty when nothing is known) and where it came from."""

    name: str
    data: dict
    labels: tuple
    truth: dict
    source: str

    @property
    def form(self) -> str:
        return form_of(self.data)

    def batch(self) -> dict:
        """The data as a batch of one replicate (leading axis 1), as the engine takes it."""
        return {k: np.asarray(v)[None] for k, v in self.data.items()}


def form_of(data: dict) -> str:
    """``known_se``, ``binomial`` or ``gaussian``: which likelihood the data take."""
    if "se" in data:
        return "known_se"
    if "successes" in data:
        return "binomial"
    return "gaussian"


def available() -> list[str]:
    """Names of the shipped data sets."""
    return sorted([p.stem for p in HERE.glob("*.csv")] + ["radon"])


def load(name: str) -> Dataset:
    """A shipped data set by name, or a user's CSV file by path (ending in .csv)."""
    if str(name).endswith(".csv"):
        return read_csv(name)
    if name == "radon":
        return _radon()
    if name not in available():
        raise DataError(
            f"dataset={name!r} is not known: one of {', '.join(available())}, or a path ending in .csv"
        )
    return read_csv(HERE / f"{name}.csv", name=name)


_FORMS = {  # data form -> (the columns that mark it, its value columns); the first form marked wins
    "binomial": ({"successes", "trials"}, ("successes", "trials")),
    "known_se": ({"se"}, ("y", "se")),
    "gaussian": ({"y"}, ("y",)),
}
_HELP = "a CSV needs columns group,y (one row per observation), group,y,se or group,successes,trials"


def read_csv(path, *, name: str | None = None) -> Dataset:
    """Read and check a CSV file (see the module docstring for its columns)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset={str(path)!r}: no such file")
    try:
        table = pd.read_csv(path, comment="#", dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV file ({str(err).splitlines()[0]})") from None
    table.columns = [c.strip() for c in table.columns]
    where = _line_numbers(path, len(table))
    if "group" not in table.columns:
        raise DataError(f"{path}: no column 'group'; {_HELP}")
    form = next((f for f, (mark, _) in _FORMS.items() if mark & set(table.columns)), None)
    if form is None:
        raise DataError(f"{path}: no column 'y' or 'successes'; {_HELP}")
    needed = _FORMS[form][1]
    for col in needed:
        if col not in table.columns:
            given = next(c for c in needed if c in table.columns)
            raise DataError(f"{path}: column '{given}' needs a column '{col}' beside it; {_HELP}")
    if len(table) == 0:
        raise DataError(f"{path}: no rows of data")
    groups = table["group"].str.strip()
    for i in np.flatnonzero(groups == ""):
        raise DataError(f"{path} line {where[i]}: column 'group' is empty")
    values = {col: _numbers(table[col], col, path, where) for col in needed}
    has_truth = "truth" in table.columns and form != "gaussian"
    if has_truth:
        values["truth"] = _numbers(table["truth"], "truth", path, where)

    labels = _group_order(groups, path)
    if form == "gaussian":
        data = _sufficient(groups, values["y"], labels)
        if np.all(data["n"] == 1):
            raise DataError(
                f"{path}: every group has one observation, so sigma cannot be estimated; "
                "give each group's standard error in a column 'se'"
            )
        truth = {}
    else:
        dup = groups[groups.duplicated()]
        if len(dup):
            i = dup.index[0]
            raise DataError(
                f"{path} line {where[i]}: group {groups[i]!r} appears again; with columns "
                f"{', '.join(needed)} there is one row per group"
            )
        order = pd.Index(groups).get_indexer(labels)
        data, truth = _per_group(form, {k: v[order] for k, v in values.items()}, path,
                                 [where[i] for i in order])
    if len(labels) < 2:
        raise DataError(f"{path}: {len(labels)} group; a hierarchical model needs at least 2")
    return Dataset(name or path.stem, data, tuple(labels), truth, str(path))


def _line_numbers(path: Path, n_rows: int) -> np.ndarray:
    """The file line of each data row (comment and blank lines skipped, header counted)."""
    lines = [
        i + 1 for i, text in enumerate(path.read_text(errors="replace").splitlines())
        if text.strip() and not text.lstrip().startswith("#")
    ]
    return np.asarray(lines[1 : n_rows + 1] + [0] * max(0, n_rows - len(lines) + 1))


def _numbers(column: pd.Series, col: str, path: Path, where) -> np.ndarray:
    text = column.str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(float)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        shown = "is empty" if text.iloc[i] == "" else f"holds {text.iloc[i]!r}, not a finite number"
        raise DataError(f"{path} line {where[i]}: column '{col}' {shown}")
    return values


def _group_order(groups: pd.Series, path: Path) -> list:
    """Labels in order of first appearance; integer codes sorted, and a gap is an empty group."""
    labels = list(pd.unique(groups))
    codes = pd.to_numeric(pd.Series(labels), errors="coerce")
    if codes.notna().all() and (codes == codes.round()).all():
        ints = codes.astype(int)
        if ints.max() - ints.min() + 1 != len(ints):  # distinct codes with a gap somewhere
            present = np.sort(ints.to_numpy())
            first_gap = present[np.flatnonzero(np.diff(present) > 1)[0]] + 1
            raise DataError(
                f"{path}: group {first_gap} has no rows (integer group codes run "
                f"{ints.min()} to {ints.max()} with gaps; use text labels if the codes are not a range)"
            )
        labels = [labels[i] for i in np.argsort(ints.to_numpy(), kind="stable")]
    return labels


def _sufficient(groups: pd.Series, y: np.ndarray, labels: list) -> dict:
    index = pd.Index(labels).get_indexer(groups)
    n = np.bincount(index, minlength=len(labels))
    ybar = np.bincount(index, weights=y, minlength=len(labels)) / n
    ss = np.bincount(index, weights=(y - ybar[index]) ** 2, minlength=len(labels))
    return {"ybar": ybar.astype(np.float32), "n": n.astype(np.int32), "ss": ss.astype(np.float32)}


def _per_group(form: str, v: dict, path: Path, where: list) -> tuple[dict, dict]:
    def fail(i, col, value, allowed):
        raise DataError(f"{path} line {where[i]}: {col} = {value:g} is not allowed: {allowed}")

    truth = {}
    if form == "known_se":
        for i in np.flatnonzero(v["se"] <= 0)[:1]:
            fail(i, "se", v["se"][i], "a standard error must be > 0")
        data = {"y": v["y"].astype(np.float32), "se": v["se"].astype(np.float32)}
        if "truth" in v:
            truth = {"theta": v["truth"]}
        return data, truth
    s, t = v["successes"], v["trials"]
    for i in np.flatnonzero((t != np.round(t)) | (t < 1))[:1]:
        fail(i, "trials", t[i], "an integer >= 1 (a group with no trials has no data)")
    for i in np.flatnonzero((s != np.round(s)) | (s < 0) | (s > t))[:1]:
        fail(i, "successes", s[i], f"an integer from 0 to trials ({t[i]:g})")
    data = {"successes": s.astype(np.int32), "trials": t.astype(np.int32)}
    if "truth" in v:
        p = v["truth"]
        for i in np.flatnonzero((p <= 0) | (p >= 1))[:1]:
            fail(i, "truth", p[i], "a success probability in (0, 1)")
        truth = {"p": p, "theta": np.log(p / (1 - p))}
    return data, truth


def _radon() -> Dataset:
    try:
        resource = importlib.resources.files("arviz").joinpath(RADON_IN_ARVIZ)
        raw = json.loads(resource.read_text())
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise DataError(
            f"the radon data set is read from the installed ArviZ package (arviz/{RADON_IN_ARVIZ}), "
            f"which is not there ({err}); install hierbench's locked environment (arviz 0.23)"
        ) from None
    county = np.asarray(raw["county"], int)  # 0-based county index per house
    labels = [str(c).strip() for c in raw["county_name"]]
    y = np.asarray(raw["y"], float)  # log radon (log pCi/L)
    data = _sufficient(pd.Series(county).map(dict(enumerate(labels))), y, labels)
    return Dataset("radon", data, tuple(labels), {}, f"arviz/{RADON_IN_ARVIZ}")
