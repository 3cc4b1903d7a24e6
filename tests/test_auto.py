"""``replicates=auto`` (runs.auto): the plan, the unbiasedness of the two-stage rule, real jobs.

* ``plan`` gives the smallest whole number of batches that meets every target by the pilot's
  per-replicate MCSE, at least one batch, at most the cap, and says why it stopped.
* The two-stage controller, run thousands of times on synthetic replicate outcomes with known
  means, gives estimates whose mean is the known value; the rule that stops once the running MCSE
  meets the target, on the same outcomes, gives detectably biased ones (so the test has power).
* Real jobs (closed form; one small NUTS run) write N main replicates 0..N-1 with the plan in
  ``auto_*`` columns, keep their pilot in ``<study>/pilot/``, read and summarise like any job,
  reach their known answers within a few MCSEs, reuse one program shape, and are skipped when
  run again; a job killed after its pilot starts again from the pilot's file.
"""

from __future__ import annotations

import copy
import math
import os

import numpy as np
import pandas as pd
import pytest
from hydra import initialize_config_dir
from omegaconf import read_write

from analysis import measures
from analysis.load import ResultsError, read_results
from models import engine
from runs import auto, job, replay, study
from runs.config import ConfigError
from sim.known_sigma import standard_errors
from tests.helpers import CONF, compose_study, sweep_jobs
from tests.test_engine import spec_programs

Z90 = 1.6448536269514722  # the 95 % quantile of N(0, 1): |e| <= Z90 sd has probability 0.9


def _replicate_mcse(df):
    """(MCSE of the 90 % coverage, mean squared error, its MCSE) of theta over a job's rows,
    from the rows alone: per replicate the share of theta_j inside [lower_90, upper_90] and
    the mean of (posterior mean - truth)^2, then sd (ddof 1) / sqrt(replicates)."""
    rows = df[df["param"] == "theta"]
    covered = (rows["lower_90"] <= rows["true_value"]) & (rows["true_value"] <= rows["upper_90"])
    per_rep = pd.DataFrame({
        "replicate": rows["replicate"].to_numpy(),
        "cover": covered.to_numpy(float),
        "sq": ((rows["posterior_mean"] - rows["true_value"]) ** 2).to_numpy(),
    }).groupby("replicate").mean()
    n = len(per_rep)
    return (per_rep["cover"].std(ddof=1) / math.sqrt(n), per_rep["sq"].mean(),
            per_rep["sq"].std(ddof=1) / math.sqrt(n))


# ------------------------------------------------------------------ the plan
def test_the_plan_is_the_smallest_whole_number_of_batches_meeting_every_target():
    targets = {"coverage_90": 0.01, "rmse_rel": 0.02}
    # per-replicate MCSEs 0.3 and 0.5 need (0.3 / 0.01)^2 = 900 and (0.5 / 0.02)^2 = 625
    p = auto.plan({"coverage_90": 0.3, "rmse_rel": 0.5}, targets, batch=20, cap=1000)
    assert p.needed == {"coverage_90": 900, "rmse_rel": 625}
    assert (p.n, p.stop, p.n_needed) == (900, "target", 900)
    # rounded up to whole batches: 901 needs 46 batches of 20
    unit = 0.01 * math.sqrt(900.5)
    p = auto.plan({"coverage_90": unit}, {"coverage_90": 0.01}, batch=20, cap=1000)
    assert p.needed["coverage_90"] == 901 and (p.n, p.stop) == (920, "target")
    # more than the cap: the cap, and the reason
    p = auto.plan({"coverage_90": 0.3, "rmse_rel": 0.5}, targets, batch=20, cap=500)
    assert (p.n, p.stop, p.n_needed) == (500, "cap", 900)
    # the rounding may not pass the cap when the cap meets the targets
    p = auto.plan({"coverage_90": 0.3}, {"coverage_90": 0.01}, batch=70, cap=910)
    assert (p.n, p.stop) == (910, "target")
    # a pilot with no spread (every interval covered) still runs one batch
    p = auto.plan({"coverage_90": 0.0}, {"coverage_90": 0.01}, batch=20, cap=500)
    assert (p.n, p.stop, p.needed["coverage_90"]) == (20, "target", 1)
    # a target the pilot cannot estimate (NaN: no interval, every fit failed) needs more than
    # any cap
    p = auto.plan({"coverage_90": math.nan, "rmse_rel": 0.5}, targets, batch=20, cap=500)
    assert p.needed["coverage_90"] == math.inf and (p.n, p.stop) == (500, "cap")


def test_replicates_needed_is_the_smallest_count_meeting_the_target():
    rng = np.random.default_rng(7)
    for unit, target in zip(rng.uniform(0.01, 3, 2000), rng.uniform(0.005, 0.5, 2000)):
        n = auto.replicates_needed(unit, target)
        assert unit / math.sqrt(n) <= target
        assert n == 1 or unit / math.sqrt(n - 1) > target
    for unit, target in ((0.3, 0.01), (0.5, 0.02), (0.2, 0.1), (1.0, 1.0)):
        # exact squares, where (unit / target)^2 comes out a hair above the integer
        assert auto.replicates_needed(unit, target) == round((unit / target) ** 2)


# ------------------------------------------------------------------ unbiased on a known answer
def _mcse(outcomes: list) -> dict:
    """The summaries' MCSEs of the synthetic outcomes (columns: covered, squared error):
    coverage's sd / sqrt(n), and the MSE's relative MCSE, sd / sqrt(n) / mean."""
    x = np.concatenate(outcomes)
    n = len(x)
    return {
        "coverage_90": x[:, 0].std(ddof=1) / math.sqrt(n),
        "mse_rel": x[:, 1].std(ddof=1) / math.sqrt(n) / x[:, 1].mean(),
    }


def _naive(main: np.ndarray, first: int, batch: int, cap: int, targets: dict) -> np.ndarray:
    """Stop once the running MCSE of every target, from all replicates so far, meets it (first
    look after ``first`` replicates, then after each batch): the rule that biases."""
    n = first
    while n < cap and any(_mcse([main[:n]])[k] > t for k, t in targets.items()):
        n += batch
    return main[:n].mean(axis=0)


def test_the_two_stage_rule_is_unbiased_and_the_naive_rule_is_not():
    """Each replicate's outcome: whether a 90 % interval covered (|e| <= 1.645, e ~ N(0, 1): p
    = 0.9 exactly) and the squared error e^2 (mean 1 exactly). Targets: coverage MCSE 0.03 and
    relative MSE MCSE 0.15, pilot 20, batches of 10, cap 400 (N is about 100-120).

    Tolerance: the mean of M = 4000 final estimates has a standard error estimated from their
    spread (about 0.0005 for coverage, 0.002 for the MSE); an unbiased rule lands within 4 of them
    of the known value with probability 1 - 6e-5 for each measure (normal: a mean of 4000 bounded
    or light-tailed values). The naive rule, checked numerically before writing this test (seeds
    1, 2 and this one), is off by about 12 standard errors on coverage (+0.005: it stops early
    when the intervals so far covered more often, where the MCSE estimate is smaller) and 9 on the
    MSE (-0.019: it stops before a large error arrives); the test asks for 5, far beyond what
    chance gives and well inside what the bias gives."""
    settings = auto.Settings("theta", {"coverage_90": 0.03, "mse_rel": 0.15}, pilot=20, batch=10,
                             cap=400)
    runs = 4000
    rng = np.random.default_rng(20261124)
    two_stage, naive, sizes = [], [], []
    for _ in range(runs):
        # the outcomes of replicates 0..cap-1 and of the pilot's own indices, fixed before the
        # controller asks for any: a replicate's outcome depends on its index only
        e = rng.standard_normal(settings.cap + settings.pilot)
        outcome = np.column_stack([np.abs(e) <= Z90, e**2]).astype(float)
        main, pilot = outcome[:settings.cap], outcome[settings.cap:]
        asked = []

        def fit(indices, main=main, pilot=pilot, asked=asked):
            asked.append(indices)
            return np.where(
                (indices >= auto.PILOT_FIRST)[:, None],
                pilot[np.clip(indices - auto.PILOT_FIRST, 0, settings.pilot - 1)],
                main[np.clip(indices, 0, settings.cap - 1)],
            )

        result = auto.two_stage(fit, _mcse, settings)
        n = result.plan.n
        # the pilot's indices are its own; the main run is replicates 0..N-1, in batches
        assert np.array_equal(np.concatenate(asked[:2]), auto.PILOT_FIRST + np.arange(20))
        assert np.array_equal(np.concatenate(asked[2:]), np.arange(n))
        assert all(len(a) == settings.batch for a in asked)
        estimate = np.concatenate(result.main).mean(axis=0)
        two_stage.append(estimate)
        sizes.append(n)
        naive.append(_naive(main, settings.pilot, settings.batch, settings.cap, settings.targets))
    known = np.array([0.9, 1.0])

    def z(estimates):
        estimates = np.asarray(estimates)
        se = estimates.std(axis=0, ddof=1) / math.sqrt(runs)
        return (estimates.mean(axis=0) - known) / se

    z_two_stage, z_naive = z(two_stage), z(naive)
    print(f"\nmean N {np.mean(sizes):.0f}; z of the two-stage estimates {z_two_stage.round(2)}, "
          f"of the naive ones {z_naive.round(2)}")
    assert np.all(np.abs(z_two_stage) < 4), z_two_stage
    assert z_naive[0] > 5 and z_naive[1] < -5, z_naive  # coverage too high, MSE too low


# ------------------------------------------------------------------ real jobs
AUTO = ["replicates=auto", "auto.pilot=20", "auto.batch=20"]
KNOWN_SIGMA = ["scenario=known_sigma", "scenario.n_groups=8", "scenario.group_size=4"]


@pytest.fixture(scope="module")
def exact_job(tmp_path_factory):
    """No pooling on known standard errors: y_j +- 1.645 se_j covers theta_j with probability
    0.9 exactly, and y_j - theta_j ~ N(0, se_j^2), so the RMSE is sqrt(mean_j se_j^2)."""
    cfg = compose_study(tmp_path_factory.mktemp("results"), "prior=no_pooling_ml",
                        *KNOWN_SIGMA, *AUTO, "auto.cap=1000")
    return cfg, job.run(cfg)


def test_an_auto_job_writes_its_plan_and_keeps_its_pilot(exact_job):
    cfg, path = exact_job
    df = pd.read_parquet(path)
    first = df.iloc[0]
    n = int(first["auto_planned"])
    assert np.array_equal(np.sort(df["replicate"].unique()), np.arange(n))
    assert (df["replicates_mode"] == "auto").all() and first["auto_stop"] == "target"
    assert n % 20 == 0 and n - 20 < first["auto_needed"] <= n
    for k, t in (("coverage_90", 0.01), ("rmse_rel", 0.02)):
        assert first[f"auto_target_{k}"] == t and first[f"auto_mcse_{k}"] > 0
        assert first[f"auto_met_{k}"] == (first[f"auto_mcse_{k}"] <= t)
        assert first[f"auto_pilot_mcse_{k}"] > 0
    assert (first["auto_estimand"], first["auto_pilot"], first["auto_batch"],
            first["auto_cap"]) == ("theta", 20, 20, 1000)
    # the pilot: its own replicate indices, in the study's pilot/ folder, readable on its own
    pilot = pd.read_parquet(job.pilot_path(path))
    assert job.pilot_path(path).parent == path.parent / "pilot"
    assert np.array_equal(np.sort(pilot["replicate"].unique()), auto.PILOT_FIRST + np.arange(20))
    assert (pilot["replicates_mode"] == "pilot").all()
    assert (pilot["config_hash"] == first["config_hash"]).all()
    assert read_results(path.parent / "pilot")["replicate"].min() == auto.PILOT_FIRST


def test_an_auto_job_reads_and_summarizes_with_the_mcse_it_recorded(exact_job):
    cfg, path = exact_job
    df = read_results(path.parent)  # the pilot's sub-folder is not read
    first = df.iloc[0]
    assert df["replicate"].max() < auto.PILOT_FIRST
    s = measures.summarize(df, reference=None).iloc[0]
    assert s["n_replicates"] == first["auto_planned"]
    assert s["auto_planned"] == first["auto_planned"]  # the plan travels to the summary
    # the MCSEs recorded, recomputed here from the rows: the sd over replicates of each
    # replicate's share of covered theta_j (or its mean squared error) over sqrt(N), the RMSE's
    # by the delta method, relative to the RMSE
    cov_mcse, mse, mse_mcse = _replicate_mcse(df)
    assert first["auto_mcse_coverage_90"] == pytest.approx(cov_mcse, rel=1e-9)
    rmse = np.sqrt(mse)
    assert first["auto_mcse_rmse_rel"] == pytest.approx(mse_mcse / (2 * rmse) / rmse, rel=1e-9)
    # and against their population values: a replicate's coverage is Binomial(8, 0.9) / 8 and
    # its mean squared error the mean of 8 independent se_j^2 chi^2_1 terms, so the MCSEs are
    # sqrt(0.09 / (8 N)) and sqrt(sum_j 2 se_j^4 / 64 / N) / (2 mean_j se_j^2). A sample sd of N
    # values with kurtosis k has a relative sd of about sqrt((k - 1) / (4 N)) (k <= 3.7 here:
    # 0.08 at N = 100); 0.4 is 5 of those.
    se = np.asarray(standard_errors(8, 4, 1.0, 2.0), float)
    n = first["auto_planned"]
    assert first["auto_mcse_coverage_90"] == pytest.approx(np.sqrt(0.09 / (8 * n)), rel=0.4)
    assert first["auto_mcse_rmse_rel"] == pytest.approx(
        np.sqrt(np.sum(2 * se**4) / 64 / n) / (2 * np.mean(se**2)), rel=0.4)
    # close to the targets. The ratio achieved / target is about sigma / s, s^2 the 20-replicate
    # pilot's variance estimate: for near-normal outcomes s^2 / sigma^2 ~ chi^2_19 / 19 puts it
    # in [0.61, 2.19] with probability 1 - 2e-4; the replicate-level coverage (a mean of 8
    # indicators) and squared errors (a mean of 8 chi^2_1 terms: kurtosis 1.5 more) spread s^2
    # a little more, and the achieved MCSE is itself estimated (about 5 % noise at N > 100):
    # [0.5, 2.5] holds with overwhelming probability for a correct plan, while a plan off by a
    # factor 4 in N (a wrong scaling) lands outside it.
    for k, t in (("coverage_90", 0.01), ("rmse_rel", 0.02)):
        assert 0.5 <= first[f"auto_mcse_{k}"] / t <= 2.5, (k, first[f"auto_mcse_{k}"])
    # the known answers, within 4 of their reported MCSEs (probability 1 - 6e-5 each)
    assert abs(s["coverage_90"] - 0.9) <= 4 * s["coverage_90_mcse"], s["coverage_90"]
    assert abs(s["rmse"] - np.sqrt(np.mean(se**2))) <= 4 * s["rmse_mcse"], s["rmse"]


def test_a_finished_auto_job_is_skipped(exact_job, caplog):
    cfg, path = exact_job
    stamps = [os.stat(p).st_mtime_ns for p in (path, job.pilot_path(path))]
    with caplog.at_level("INFO", logger="runs.job"):
        assert job.run(cfg) == path
    assert "skip " in caplog.text and "auto:" not in caplog.text
    assert [os.stat(p).st_mtime_ns for p in (path, job.pilot_path(path))] == stamps


def test_a_job_killed_after_its_pilot_starts_from_the_pilots_file(exact_job, tmp_path, monkeypatch):
    """The pilot file is written before the main run: a rerun fits only main replicates, and
    the result is the same as the uninterrupted job's."""
    cfg, path = copy.deepcopy(exact_job[0]), exact_job[1]
    with read_write(cfg):
        cfg.results_root = str(tmp_path)
    (tmp_path / "default" / "pilot").mkdir(parents=True)
    (tmp_path / "default" / "pilot" / path.name).write_bytes(job.pilot_path(path).read_bytes())
    asked = []
    real = job.compute

    def counting(cfg, replicates):
        asked.extend(np.asarray(replicates).tolist())
        return real(cfg, replicates)

    monkeypatch.setattr(job, "compute", counting)
    again = pd.read_parquet(job.run(cfg))
    assert asked and max(asked) < auto.PILOT_FIRST  # no pilot replicate was fitted again
    before = pd.read_parquet(path)
    assert again["auto_planned"].iloc[0] == before["auto_planned"].iloc[0]
    keep = [c for c in before.columns if c not in ("created_at", "job_seconds")]
    pd.testing.assert_frame_equal(again[keep], before[keep])


def test_specs_with_different_counts_are_compared_on_their_common_replicates(exact_job,
                                                                            tmp_path):
    """James-Stein with a cap of 60 (stops at the cap) beside no pooling's planned count: the
    paired differences use the replicates both ran, 0..59, and the cell still matches."""
    _, path = exact_job
    js = job.run(compose_study(tmp_path, "prior=james_stein", *KNOWN_SIGMA, *AUTO, "auto.cap=60"))
    (js.parent / path.name).write_bytes(path.read_bytes())
    first = pd.read_parquet(js).iloc[0]
    assert (first["auto_planned"], first["auto_stop"]) == (60, "cap")
    assert not first["auto_met_coverage_90"]
    df = read_results(js.parent)
    summary = measures.summarize(df, reference="no_pooling_ml").set_index("prior")
    assert summary.loc["james_stein", "n_paired"] == 60
    a = measures.per_replicate(df[df["prior"] == "james_stein"])
    b = measures.per_replicate(df[df["prior"] == "no_pooling_ml"])
    diff = a["_sq_err"].to_numpy() - b["_sq_err"].to_numpy()[:60]
    assert summary.loc["james_stein", "mse_diff"] == pytest.approx(diff.mean(), rel=1e-9)


def test_a_pilot_file_among_result_files_is_refused(exact_job, tmp_path):
    _, path = exact_job
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / path.name).write_bytes(path.read_bytes())
    (folder / f"pilot-{path.name}").write_bytes(job.pilot_path(path).read_bytes())
    with pytest.raises(ResultsError, match="the pilot of a replicates=auto job") as err:
        read_results(folder)
    assert "\n" not in str(err.value)


def test_a_nuts_auto_job_has_exact_coverage_and_one_batch_shape(tmp_path, monkeypatch):
    """The hierarchical spec with tau fixed at the true tau (1) and a flat prior on mu, on known
    standard errors: its theta intervals are exact confidence intervals averaged over theta
    (theta_j - E[theta_j | y] is normal with the posterior variance, for any mu), so its 90 %
    coverage is 0.9 up to the sampler's error in the interval ends (200 draws). The pilot and the
    main batches are fitted with the same shapes: one compiled program."""
    shapes = []
    real = engine.fit

    def recording(spec, data, keys, hyper, **kw):
        shapes.append(len(keys))
        return real(spec, data, keys, hyper, **kw)

    monkeypatch.setattr(engine, "fit", recording)
    compiled = spec_programs()
    cfg = compose_study(
        tmp_path, "prior=hierarchical", "scenario=known_sigma", "scenario.n_groups=3",
        "prior.hyper.tau_family=fixed", "prior.hyper.tau_scale=1.0", "prior.hyper.mu_family=flat",
        "inference.warmup=200", "inference.draws=400", "replicates=auto",
        "~auto.targets.rmse_rel", "auto.targets.coverage_90=0.04", "auto.pilot=10",
        "auto.batch=10", "auto.cap=60",
    )
    df = pd.read_parquet(job.run(cfg))
    first = df.iloc[0]
    n = int(first["auto_planned"])
    assert 10 <= n <= 60 and df["replicate"].nunique() == n and n % 10 == 0
    assert [c for c in df.columns if c.startswith("auto_target_")] == ["auto_target_coverage_90"]
    assert shapes == [10] * (1 + n // 10)  # the pilot's batch, then the main batches
    assert spec_programs() - compiled <= 2  # one sampler, one summary program
    s = measures.summarize(read_results(tmp_path / "default"), reference=None).iloc[0]
    assert first["auto_mcse_coverage_90"] == pytest.approx(_replicate_mcse(df)[0], rel=1e-9)
    # 4 MCSEs, and 0.02 for the sampler: the ends of a 90 % interval are quantiles of 800
    # draws (2 chains), whose Monte Carlo error moves the coverage by about a percentage point
    assert abs(s["coverage_90"] - 0.9) <= 4 * s["coverage_90_mcse"] + 0.02, s["coverage_90"]


# ------------------------------------------------------------------ a sweep, bad settings
def test_a_sweep_of_auto_jobs_reports_progress_without_known_counts(tmp_path):
    task = ["prior=james_stein,no_pooling_ml", "scenario.tau=1", "replicates=auto",
            "auto.batch=10", "auto.cap=40", "~auto.targets.rmse_rel",
            "auto.targets.coverage_90=0.05"]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        jobs = sweep_jobs(tmp_path, *task)
        plan = study.Plan(jobs)
        assert plan.size() == "2 with replicates=auto: pilot 20 + up to 40 replicates each"
        assert "0 of 2 jobs done (0 replicates so far; replicates=auto: counts not known in " \
               "advance)" in plan.progress()
        job.run(jobs[0][1])
        line = plan.progress()
        n = pd.read_parquet(plan.paths[0])["replicate"].nunique()
        assert f"1 of 2 jobs done ({n} replicates so far;" in line and "left (by jobs)" in line


@pytest.mark.parametrize("override,named", [
    ("auto.pilot=1", "auto.pilot=1 is not allowed: an integer from 2 (the pilot estimates"),
    ("auto.batch=0", "auto.batch=0 is not allowed: an integer >= 1"),
    ("auto.cap=10", "auto.cap=10 is not allowed: an integer from auto.batch (20) to 1000000"),
    ("auto.estimand=eta", "auto.estimand='eta' is not allowed: an estimand family: one of theta"),
    ("~auto.targets.coverage_90 ~auto.targets.rmse_rel",
     "auto.targets={} is not allowed: one or more measures"),
    ("+auto.targets.coverage_99=0.01", "auto.targets.coverage_99=0.01 is not allowed: a measure"),
    ("auto.targets.rmse_rel=0", "auto.targets.rmse_rel=0 is not allowed: a number > 0"),
    ("+auto.patience=3", "auto.patience=3 is not allowed: not a setting of replicates=auto"),
    ("~auto", "auto=None is not allowed: a block of settings"),
])
def test_bad_auto_settings_stop_a_sweep_with_one_line_and_write_nothing(tmp_path, override, named):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        with pytest.raises(ConfigError) as err:
            study.Plan(sweep_jobs(tmp_path, "prior=james_stein,flat", "replicates=auto",
                              *override.split()))
    assert named in str(err.value) and "(job #0: " in str(err.value)
    assert "\n" not in str(err.value)
    assert not any(tmp_path.rglob("*"))


def test_the_auto_settings_are_part_of_the_job_only_with_replicates_auto(tmp_path):
    fixed = job.planned_path(compose_study(tmp_path, "prior=flat"))
    assert job.planned_path(compose_study(tmp_path, "prior=flat", "auto.cap=40")) == fixed
    auto_path = job.planned_path(compose_study(tmp_path, "prior=flat", "replicates=auto"))
    other = job.planned_path(compose_study(tmp_path, "prior=flat", "replicates=auto",
                                           "auto.cap=40"))
    assert len({fixed, auto_path, other}) == 3


def test_one_replicate_of_an_auto_job_is_replayed_exactly(exact_job):
    """runs.replay rebuilds the auto block from the rows, so the job's hash matches."""
    _, path = exact_job
    stored, replayed = replay.replay(path, 3)
    assert len(stored) > 0 and replay.reproduced(stored, replayed)
