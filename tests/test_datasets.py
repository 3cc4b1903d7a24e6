"""Real data sets as published, and a user's CSV: read right, or refused with one clear line."""

import importlib.resources

import numpy as np
import pytest

from sim import datasets
from sim.datasets import DataError


def test_eight_schools_is_bda3_table_5_2():
    ds = datasets.load("eight_schools")
    assert ds.form == "known_se" and ds.labels == tuple("ABCDEFGH")
    np.testing.assert_array_equal(ds.data["y"], [28, 8, -3, 7, -1, 1, 18, 12])
    np.testing.assert_array_equal(ds.data["se"], [15, 10, 16, 11, 9, 11, 10, 18])


def test_efron_morris_is_table_1():
    ds = datasets.load("efron_morris")
    assert ds.form == "binomial" and len(ds.labels) == 18
    assert ds.labels[0] == "Clemente" and ds.labels[-1] == "Alvis"
    assert np.all(ds.data["trials"] == 45)
    assert ds.data["successes"].tolist() == [18, 17, 16, 15, 14, 14, 13, 12, 11, 11, 10, 10, 10,
                                              10, 10, 9, 8, 7]
    np.testing.assert_allclose(ds.truth["p"][[0, 12, 17]], [0.346, 0.303, 0.200])
    np.testing.assert_allclose(ds.truth["theta"], np.log(ds.truth["p"] / (1 - ds.truth["p"])))


def test_rat_tumors_is_table_5_1():
    ds = datasets.load("rat_tumors")
    assert ds.form == "binomial" and len(ds.labels) == 71
    assert np.all(ds.data["successes"][:14] == 0)
    assert (ds.data["successes"][-1], ds.data["trials"][-1]) == (4, 14)  # the current experiment
    assert ds.truth == {}


def test_radon_from_the_installed_arviz_package():
    ds = datasets.load("radon")
    assert ds.form == "gaussian" and len(ds.labels) == 85 and ds.data["n"].sum() == 919
    # the sufficient statistics are those of the raw houses in the package's file
    import json

    raw = json.loads(
        importlib.resources.files("arviz").joinpath(datasets.RADON_IN_ARVIZ).read_text()
    )
    y, county = np.asarray(raw["y"]), np.asarray(raw["county"])
    j = ds.labels.index("HENNEPIN")
    np.testing.assert_allclose(ds.data["ybar"][j], y[county == j].mean(), rtol=1e-5)
    np.testing.assert_allclose(ds.data["ss"][j], y[county == j].var() * (county == j).sum(),
                               rtol=1e-4)
    assert sorted(ds.data["n"])[-2:] == [105, 116]  # Hennepin and St Louis


def test_radon_says_where_it_comes_from_when_absent(monkeypatch):
    def absent(name):
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(importlib.resources, "files", absent)
    with pytest.raises(DataError, match="installed ArviZ package .*radon.json"):
        datasets.load("radon")


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(DataError, match="one of efron_morris, eight_schools, radon, rat_tumors, or a path"):
        datasets.load("schools")


def _csv(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_of_observations_gives_sufficient_statistics(tmp_path):
    path = _csv(tmp_path, "# my study\ngroup,y\nb,1.0\na,2.0\nb,3.0\na,2.5\nb,5\nc,7\n")
    ds = datasets.load(str(path))
    assert ds.name == "data" and ds.labels == ("b", "a", "c") and ds.form == "gaussian"
    np.testing.assert_allclose(ds.data["ybar"], [3.0, 2.25, 7.0])
    np.testing.assert_array_equal(ds.data["n"], [3, 2, 1])
    np.testing.assert_allclose(ds.data["ss"], [8.0, 0.125, 0.0])


def test_csv_with_standard_errors_and_truth(tmp_path):
    ds = datasets.load(str(_csv(tmp_path, "group,y,se,truth\n1,0.5,1,0.4\n2,-1,2,-0.5\n")))
    assert ds.form == "known_se"
    np.testing.assert_allclose(ds.truth["theta"], [0.4, -0.5])


BAD = {  # name: (file text, what the one-line error must say)
    "no group column": ("y\n1\n2\n", r"no column 'group'"),
    "no value column": ("group,x\na,1\nb,2\n", r"no column 'y' or 'successes'"),
    "successes without trials": ("group,successes\na,1\nb,2\n", r"needs a column 'trials'"),
    "non-numeric value": ("group,y\na,1\nb,abc\na,2\n", r"line 3: column 'y' holds 'abc'"),
    "empty value": ("group,y,se\na,1,1\nb,,2\n", r"line 3: column 'y' is empty"),
    "infinite value": ("group,y,se\na,1,inf\nb,2,2\n", r"line 2: column 'se' holds 'inf'"),
    "negative standard error": ("group,y,se\na,1,1\nb,2,-2\n", r"line 3: se = -2 is not allowed: a standard error must be > 0"),
    "zero standard error": ("group,y,se\na,1,0\nb,2,2\n", r"line 2: se = 0 is not allowed"),
    "group with no rows": ("group,y\n1,0.5\n1,0.7\n3,1.0\n3,2\n", r"group 2 has no rows"),
    "group with no trials": ("group,successes,trials\na,0,0\nb,1,3\n", r"line 2: trials = 0 is not allowed"),
    "more successes than trials": ("group,successes,trials\na,4,3\nb,1,3\n", r"line 2: successes = 4 is not allowed: an integer from 0 to trials \(3\)"),
    "fractional successes": ("group,successes,trials\na,1.5,3\nb,1,3\n", r"successes = 1.5 is not allowed"),
    "empty group label": ("group,y,se\na,1,1\n,2,2\n", r"line 3: column 'group' is empty"),
    "repeated group": ("group,y,se\na,1,1\nb,2,2\na,3,1\n", r"line 4: group 'a' appears again"),
    "one group": ("group,y,se\na,1,1\n", r"1 group; a hierarchical model needs at least 2"),
    "no rows": ("group,y\n", r"no rows of data"),
    "one observation per group": ("group,y\na,1\nb,2\n", r"sigma cannot be estimated"),
    "truth outside (0, 1)": ("group,successes,trials,truth\na,1,3,0.2\nb,1,3,1.2\n", r"line 3: truth = 1.2 is not allowed"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_csv_is_refused_with_one_line(tmp_path, case):
    text, message = BAD[case]
    path = _csv(tmp_path, text)
    with pytest.raises(DataError, match=message) as err:
        datasets.load(str(path))
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        datasets.load(str(tmp_path / "absent.csv"))
