"""``python -m runs.fit``: every shipped data set and a CSV fit and print; bad files stop early
with one line; a multirun compares priors side by side; Efron & Morris's headline holds."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from runs import fit
from sim import datasets

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["inference.chains=2", "inference.warmup=150", "inference.draws=150"]


def _cfg(tmp_path, *overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="fit", overrides=[
            f"results_root={tmp_path}", "compilation_cache=null", *overrides])


def _assert_eight_schools_is_exact(ds, table):
    """The default prior (conf/prior/hierarchical.yaml: mu ~ N(0, 10^2), tau ~ half-normal(5))
    on the eight schools against its exact posterior by quadrature over tau
    (tests/quadrature.py): every posterior mean within 5 Monte Carlo sds, exact sd / sqrt(bulk
    ESS) (a chance failure 5.7e-7 each). The draws are few (2 x 150), so this catches gross
    errors only (data, standard errors or prior scales misread: at ESS ~ 200 a shift of
    0.35 sd)."""
    import tests.quadrature as quad

    ref = quad.posterior(ds.data["y"], ds.data["se"],
                         tau_log_prior=quad.tau_log_prior("half_normal", scale=5.0),
                         mu_prior=("normal", 0.0, 10.0))
    exact = {"theta": (ref.theta_mean, ref.theta_sd), "mu": (ref.mu_mean, ref.mu_sd),
             "tau": (ref.tau_mean, ref.tau_sd)}
    for param, (mean, sd) in exact.items():
        rows = table[table["param"] == param]
        error = np.abs(rows["posterior_mean"].to_numpy() - mean)
        assert (error <= 5 * sd / np.sqrt(rows["ess_bulk"].to_numpy())).all(), (param, error)


@pytest.mark.parametrize("name", ["eight_schools", "efron_morris", "rat_tumors", "radon"])
def test_every_shipped_dataset_fits_and_prints(tmp_path, name):
    path, table = fit.run(_cfg(tmp_path, f"dataset={name}", *SMALL))
    ds = datasets.load(name)
    assert path.exists() and path.parent == tmp_path / "fit" / name
    theta = table[table["param"] == "theta"]
    assert list(theta["group"]) == list(ds.labels)
    assert theta["posterior_mean"].notna().all() and theta["rhat"].notna().all()
    # the columns are the quantiles they are named after: nested intervals about the median
    ends = [f"lower_{lv}" for lv in (95, 90, 80, 50)] + ["posterior_median"] + \
        [f"upper_{lv}" for lv in (50, 80, 90, 95)]
    assert (np.diff(table[ends].to_numpy(), axis=1) >= 0).all()
    assert (table["posterior_sd"] > 0).all() and (table["ess_bulk"] >= 1).all()
    if name == "eight_schools":
        _assert_eight_schools_is_exact(ds, table)
    expected = {"theta", "mu", "tau"} | {"gaussian": {"sigma"}, "binomial": {"p"}}.get(ds.form, set())
    assert set(table["param"]) == expected
    text = fit.describe(table, path)
    assert "R-hat" not in text and "rhat" in text and str(path) in text
    if len(ds.labels) > fit.SHOWN_GROUPS:
        assert f"and {len(ds.labels) - fit.SHOWN_GROUPS} more groups" in text
    if ds.truth:
        assert "total squared error of p against the truth" in text
        np.testing.assert_allclose(
            table.loc[table.param == "p", "error"],
            table.loc[table.param == "p", "posterior_mean"] - ds.truth["p"], rtol=1e-12)


def test_efron_morris_shrinkage_cuts_total_squared_error_several_fold(tmp_path):
    """Efron & Morris (1975): estimates from the first 45 at-bats, judged against the
    rest-of-season averages. The raw averages' total squared error is computed here from the
    table itself; partial pooling (hierarchical binomial, and James-Stein on the empirical
    logit) must cut it at least 3-fold (measured: 0.0753 -> 0.021). A flat prior must not
    (it is the raw averages, nearly), which keeps the test from passing by construction."""
    ds = datasets.load("efron_morris")
    raw = ((ds.data["successes"] / 45 - ds.truth["p"]) ** 2).sum()
    assert 0.07 < raw < 0.08
    sse = {}
    for prior in ("hierarchical", "james_stein", "flat"):
        _, table = fit.run(_cfg(tmp_path, "dataset=efron_morris", f"prior={prior}"))
        assert (table["status"] == "ok").all(), table["status"].unique()
        sse[prior] = fit.squared_errors(table)["p"]
    assert sse["hierarchical"] < raw / 3 and sse["james_stein"] < raw / 3, (raw, sse)
    assert sse["flat"] > raw / 1.5


def test_a_csv_of_the_users_own_data(tmp_path):
    csv = tmp_path / "trial.csv"
    csv.write_text("group,y,se\nnorth,1.2,0.5\nsouth,-0.3,0.4\neast,0.8,0.9\n")
    path, table = fit.run(_cfg(tmp_path, f"dataset={csv}", "prior=empirical_bayes"))
    assert path.parent.name == "trial"
    assert list(table.loc[table.param == "theta", "group"]) == ["north", "south", "east"]
    assert table["dataset_sha256"].nunique() == 1
    # a changed file is another result file, never overwritten in place
    csv.write_text("group,y,se\nnorth,1.3,0.5\nsouth,-0.3,0.4\neast,0.8,0.9\n")
    other, _ = fit.run(_cfg(tmp_path, f"dataset={csv}", "prior=empirical_bayes"))
    assert other != path and path.exists()


def _run(args, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "runs.fit", *args, f"results_root={tmp_path}", "compilation_cache=null"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.mark.parametrize("args, message", [
    (["dataset={csv}"], "line 3: se = -2 is not allowed: a standard error must be > 0"),
    (["dataset=schools"], "dataset='schools' is not known: one of efron_morris"),
    (["dataset=eight_schools", "prior.hyper.tau_scale=-1"], "prior.hyper.tau_scale=-1 is not allowed: a number > 0"),
])
def test_bad_input_stops_with_one_line_and_writes_nothing(tmp_path, args, message):
    csv = tmp_path / "bad.csv"
    csv.write_text("group,y,se\na,1,1\nb,2,-2\n")
    done = _run([a.format(csv=csv) for a in args], tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr
    assert not list(tmp_path.rglob("*.parquet"))


def test_multirun_compares_priors_side_by_side(tmp_path):
    done = _run(["-m", "dataset=efron_morris", "prior=james_stein,no_pooling_ml,complete_pooling",
                 *SMALL], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "efron_morris: 3 priors side by side" in done.stdout
    assert "total squared error against the truth:" in done.stdout
    [comparison] = tmp_path.glob("fit/logs/*/comparison.parquet")
    df = pd.read_parquet(comparison)
    assert sorted(df["prior"].unique()) == ["complete_pooling", "james_stein", "no_pooling_ml"]
    # the printed squared errors are the table's
    p = df[df.param == "p"]
    sse = ((p["posterior_mean"] - p["true_value"]) ** 2).groupby(p["prior"]).sum()
    assert f"james_stein {sse['james_stein']:.4g}" in done.stdout
