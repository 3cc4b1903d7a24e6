"""A job writes the documented rows; every prior sees the same data; a real multirun works."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import models
import sim
from runs import job
from tests.helpers import compose_study

DOCUMENTED = [
    "study", "scenario", "n_groups", "group_size", "tau", "sigma", "mu",
    "prior", "prior_spec", "method", "prior_parameterization", "fit_parameterization",
    "fit_target_accept", "fit_groups",
    "prior_mu_family", "prior_mu_loc",
    "prior_mu_scale", "prior_tau_family", "prior_tau_scale", "prior_tau_df", "prior_sigma_scale",
    "chains", "warmup", "draws", "target_accept", "max_tree_depth", "seed", "replicates_mode",
    "replicate", "param", "index", "true_value", "raw_estimate", "posterior_mean", "posterior_sd",
    "posterior_median", "lower_50", "upper_50", "lower_80", "upper_80", "lower_90", "upper_90",
    "lower_95", "upper_95", "truth_cdf", "exact_mean", "exact_sd", "exact_truth_cdf", "mcse_mean",
    "mcse_sd", "rhat", "ess_bulk", "ess_tail", "n_divergent", "n_max_treedepth", "n_leapfrog",
    "sampled_rhat", "sampled_ess", "status", "skip_reason", "config_hash", "results_version", "code_version", "package_versions",
    "created_at", "job_seconds",
]


@pytest.fixture(scope="module")
def hierarchical_job(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("results")
    cfg = compose_study(tmp, "prior=hierarchical")
    return cfg, job.run(cfg)


def test_job_writes_documented_columns_and_rows(hierarchical_job):
    cfg, path = hierarchical_job
    df = pd.read_parquet(path)
    assert list(df.columns) == DOCUMENTED
    # one row per (replicate, estimand): J thetas + mu + tau + sigma, for each of 3 replicates
    assert len(df) == 3 * (3 + 3)
    assert not df.duplicated(["replicate", "param", "index"]).any()
    assert set(df["status"]) <= {"ok", "low_ess", "divergent", "high_rhat", "nonfinite"}
    # collapsed (the default for Gaussian data), with the exact posterior beside every row
    assert set(df["fit_parameterization"]) == {"collapsed"}
    assert df["exact_mean"].notna().all() and (df["exact_sd"] > 0).all()
    # the truth stored is the simulator's truth
    _, truth = sim.simulate("normal_normal", cfg.seed, 3, n_groups=3, group_size=4, tau=1.0,
                            sigma=1.0, mu=0.0)
    theta = df[df.param == "theta"].sort_values(["replicate", "index"])
    np.testing.assert_allclose(theta["true_value"], truth["theta"].ravel(), rtol=1e-6)
    # the group's own estimate is ybar_j; truth_cdf is a share of the 2 x 100 draws
    data, _ = sim.simulate("normal_normal", cfg.seed, 3, n_groups=3, group_size=4, tau=1.0,
                           sigma=1.0, mu=0.0)
    np.testing.assert_allclose(theta["raw_estimate"], np.ravel(data["ybar"]), rtol=1e-6)
    assert df.loc[df.param != "theta", "raw_estimate"].isna().all()
    cdf = df["truth_cdf"].to_numpy()
    assert ((cdf >= 0) & (cdf <= 1)).all() and np.allclose(cdf * 200, np.round(cdf * 200))
    # the L % interval holds the truth exactly when truth_cdf is within L/2 of 1/2 (up to the
    # interpolation of the quantiles between two draws: compare where the truth is not between
    # the two draws next to an interval end)
    for lv in (50, 80, 90, 95):
        inside = (df[f"lower_{lv}"] <= df["true_value"]) & (df["true_value"] <= df[f"upper_{lv}"])
        by_cdf = (cdf - 0.5).__abs__() <= lv / 200
        near_end = np.minimum(np.abs(cdf - (0.5 - lv / 200)), np.abs(cdf - (0.5 + lv / 200))) <= 1 / 200
        assert (inside == by_cdf)[~near_end].all()
    # intervals nest around the median
    ends = ["lower_95", "lower_90", "lower_80", "lower_50", "posterior_median",
            "upper_50", "upper_80", "upper_90", "upper_95"]
    assert (np.diff(df[ends].to_numpy(), axis=1) >= 0).all()
    assert not list(Path(path).parent.glob(".*.tmp"))  # nothing half-written left behind


def test_finished_job_is_skipped_unless_forced(hierarchical_job, tmp_path):
    cfg, path = hierarchical_job
    before = os.stat(path).st_mtime_ns
    assert job.run(cfg) == path
    assert os.stat(path).st_mtime_ns == before
    cfg.force = True
    assert job.run(cfg) == path
    assert os.stat(path).st_mtime_ns > before


def test_every_prior_is_fitted_on_the_same_truth(tmp_path):
    """The stored truth agrees across priors (sim.simulate takes no prior: the data cannot
    depend on it); the jobs themselves are distinct."""
    tables = [pd.read_parquet(job.run(compose_study(tmp_path, f"prior={p}")))
              for p in ("flat", "normal_weak")]
    truths = [t[t.param == "theta"]["true_value"].to_numpy() for t in tables]
    np.testing.assert_array_equal(*truths)
    assert tables[0]["config_hash"].iloc[0] != tables[1]["config_hash"].iloc[0]


def test_a_site_that_is_not_the_scenarios_parameter_gets_no_truth(tmp_path):
    """The horseshoe's tau is a global scale, not the sd of theta the scenario's tau is."""
    df = pd.read_parquet(job.run(compose_study(tmp_path, "prior=horseshoe")))
    assert df.loc[df.param == "tau", "true_value"].isna().all()
    assert df.loc[df.param == "mu", "true_value"].notna().all()


def test_real_multirun_then_figures(tmp_path):
    """``python -m runs.study`` as a user runs it (joblib launcher, 2 workers, every prior spec
    through ``prior=glob(*)`` as in the default grid), then the figures."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "runs.study", "scenario.n_groups=3", "scenario.group_size=4",
           "scenario.tau=0.5,2", "prior=glob(*)", "replicates=2", "inference.chains=2",
           "inference.warmup=60", "inference.draws=60", f"results_root={tmp_path}",
           "study=tiny", f"compilation_cache={tmp_path / 'xla-cache'}"]
    # generous: 16 NUTS jobs compile (the two cells of a prior share one program through the
    # cache), beside the other test worker on 2 cores
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    files = sorted((tmp_path / "tiny").glob("*.parquet"))
    priors = sorted(p.stem for p in (root / "conf" / "prior").glob("*.yaml"))
    assert len(files) == 2 * len(priors)  # 2 cells x every prior in conf/prior (glob)
    df = pd.concat(pd.read_parquet(f) for f in files)
    assert sorted(df["tau"].unique()) == [0.5, 2.0]
    assert sorted(df["prior"].unique()) == priors
    assert sorted(df["prior_spec"].unique()) == models.available()  # every spec is swept
    no_draws = df[df["method"] == "closed_form"]
    assert set(no_draws["prior"]) == {"no_pooling_ml", "james_stein", "empirical_bayes"}
    assert no_draws["rhat"].isna().all() and (no_draws["n_leapfrog"] == 0).all()
    fig = subprocess.run([sys.executable, "-m", "analysis.figures", f"results_dir={tmp_path / 'tiny'}"],
                         cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert fig.returncode == 0, fig.stderr[-3000:]
    pngs = sorted(p.name for p in (tmp_path / "tiny" / "figures").glob("*.png"))
    assert pngs == [f"theta_{m}.png" for m in (
        "coverage_90_vs_tau", "coverage_curves", "divergent_rate_vs_tau",
        "posterior_variance_vs_tau", "rmse_ratio_vs_tau", "rmse_vs_tau",
    )]
    summary = pd.read_parquet(tmp_path / "tiny" / "analysis" / "summaries.parquet")
    # one row per job and estimand family: theta, mu and sigma for all, tau where a spec has it
    assert (summary.groupby("param")["config_hash"].nunique()["theta"]) == len(files)
    assert (tmp_path / "tiny" / "analysis" / "coverage_curves.parquet").exists()


def test_the_sweeper_composes_again_only_the_jobs_the_preflight_did_not_check(monkeypatch):
    """Hydra's basic sweeper composes each batch's configs before launching it; the preflight
    has composed and checked them already, so a batch of checked jobs is not composed twice,
    and a batch with any other job still is."""
    from runs import study

    composed = []
    validate = study._skip_checked(lambda sweeper, batch: composed.append(list(batch)))
    monkeypatch.setattr(study, "_CHECKED", {("prior=flat", "seed=1"), ("prior=flat", "seed=2")})
    validate(None, [["prior=flat", "seed=1"], ["prior=flat", "seed=2"]])
    assert composed == []
    validate(None, [["prior=flat", "seed=1"], ["prior=flat", "seed=3"]])
    assert composed == [[["prior=flat", "seed=1"], ["prior=flat", "seed=3"]]]
