"""Bad config values stop a job, and a whole sweep, before any compute, with one line naming key,
value and rule, and nothing written."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import initialize_config_dir

from runs import config, job, study
from runs.config import ConfigError
from tests.helpers import CONF, TINY, compose_study, sweep_jobs

BAD = [
    ("scenario.tau=0", "scenario.tau=0"),
    ("scenario.tau=-1", "scenario.tau=-1"),
    ("scenario.sigma=0", "scenario.sigma=0"),
    ("scenario.group_size=0", "scenario.group_size=0"),
    ("scenario.n_groups=1", "scenario.n_groups=1"),
    ("prior.parameterization=sideways", "prior.parameterization='sideways'"),
    ("inference.chains=0", "inference.chains=0"),
    ("inference.draws=-5", "inference.draws=-5"),
    ("inference.warmup=0", "inference.warmup=0"),
    ("inference.target_accept=1.5", "inference.target_accept=1.5"),
    ("replicates=0", "replicates=0"),
    ("inference.chains=1", "inference.chains=1"),
    ("prior.hyper.tau_scale=-1", "prior.hyper.tau_scale=-1"),
    ("prior.hyper.sigma_scale=0", "prior.hyper.sigma_scale=0"),
    ("prior.hyper.tau_family=half_banana", "prior.hyper.tau_family='half_banana'"),
    ("+prior.hyper.typo=1.0", "prior.hyper.typo=1.0"),
    ("~prior.hyper.mu_scale", "prior.hyper.mu_scale=None"),
    ("prior.spec=nope", "prior.spec='nope'"),
    ("prior.name=has-dash", "prior.name='has-dash'"),
    ("prior=hierarchical_t prior.hyper.nu_rate=0", "prior.hyper.nu_rate=0"),
    ("prior=normal_inv_chi2 prior.hyper.kappa0=-1", "prior.hyper.kappa0=-1"),
    ("prior=student_t prior.hyper.df=0", "prior.hyper.df=0"),
    ("prior=james_stein +prior.hyper.scale=1", "prior.hyper.scale=1"),
    ("scenario=t_effects scenario.df=2", "scenario.df=2"),
    ("scenario=sparse scenario.fraction=0", "scenario.fraction=0"),
    ("scenario=bimodal scenario.separation=1", "scenario.separation=1"),
    ("scenario=known_sigma scenario.se_ratio=0.5", "scenario.se_ratio=0.5"),
    ("scenario=outlier scenario.shift=nan", "scenario.shift=nan"),
    ("scenario=binomial +scenario.sigma=1", "scenario.sigma=1"),
    ("scenario=t_effects ~scenario.df", "scenario.df=None"),
    ("scenario.mu=abc", "scenario.mu='abc'"),
    # the list: tau, sigma, group size not > 0; fewer than 2 groups; sampler counts
    ("scenario.sigma=-1", "scenario.sigma=-1"),
    ("scenario.group_size=-3", "scenario.group_size=-3"),
    ("scenario.n_groups=0", "scenario.n_groups=0"),
    ("scenario.n_groups=2.5", "scenario.n_groups=2.5"),
    ("inference.draws=0", "inference.draws=0"),
    ("inference.warmup=-1", "inference.warmup=-1"),
    ("inference.chains=-2", "inference.chains=-2"),
    ("inference.max_tree_depth=0", "inference.max_tree_depth=0"),
    ("inference.max_tree_depth=17", "inference.max_tree_depth=17 is not allowed: an integer from 1 to 16"),
    ("inference.target_accept=0", "inference.target_accept=0"),
    ("inference.target_accept=fast",
     "inference.target_accept='fast' is not allowed: auto (models.engine.TARGET_ACCEPT_AUTO) or a number in (0, 1)"),
    ("+inference.step_size=0.1", "inference.step_size=0.1"),
    # the study's own keys (the schema runs.config.Study)
    ("seed=-1", "seed=-1"),
    ("replicates=2.5", "replicates=2.5"),
    ("replicates=many", "replicates='many' is not allowed: an integer >= 1, or auto"),
    # replicates=auto and its settings (runs.auto)
    ("replicates=auto auto.pilot=1", "auto.pilot=1"),
    ("replicates=auto auto.batch=2.5", "auto.batch=2.5"),
    ("replicates=auto auto.cap=0", "auto.cap=0"),
    ("replicates=auto auto.estimand=eta", "auto.estimand='eta'"),
    ("replicates=auto +auto.targets.rmse_rell=0.02", "auto.targets.rmse_rell=0.02"),
    ("replicates=auto auto.targets.coverage_90=-0.01", "auto.targets.coverage_90=-0.01"),
    ("replicates=auto auto.targets=null", "auto.targets=None"),
    ("replicates=auto +auto.patience=3", "auto.patience=3"),
    ("replicates=auto ~auto", "auto=None"),
    ("memory_budget_gb=0", "memory_budget_gb=0"),
    ("force=maybe", "force='maybe'"),
    ("study=../elsewhere", "study='../elsewhere'"),
    ("+replicats=3", "replicats=3"),
    # interval levels are fixed (models.engine.LEVELS; truth_cdf gives any other level): no key
    ("+levels=[0.5,1.5]", "levels=[0.5, 1.5]"),
]


@pytest.mark.parametrize("override,named", BAD)
def test_bad_value_is_refused_before_compute(tmp_path, override, named):
    cfg = compose_study(tmp_path, *override.split())
    with pytest.raises(ConfigError) as err:
        job.run(cfg)
    message = str(err.value)
    assert named in message and "\n" not in message
    assert not any(tmp_path.rglob("*")), "nothing may be written for a refused job"


def test_unknown_spec_lists_the_known_ones(tmp_path):
    cfg = compose_study(tmp_path, "prior.spec=nope")
    with pytest.raises(ConfigError, match="flat, hierarchical, hierarchical_t, horseshoe"):
        job.run(cfg)


def test_flat_prior_cannot_be_noncentered(tmp_path):
    cfg = compose_study(tmp_path, "prior=flat", "prior.parameterization=noncentered")
    with pytest.raises(ConfigError, match="prior.parameterization='noncentered' is not allowed: "
                                         "one of centered, collapsed, auto for spec flat"):
        job.run(cfg)
    assert not any(tmp_path.rglob("*"))


def test_unknown_scenario_lists_the_known_ones(tmp_path):
    cfg = compose_study(tmp_path, "scenario.name=nope")
    with pytest.raises(ConfigError, match="scenario='nope' is not allowed: one of bimodal, binomial"):
        job.run(cfg)


def test_results_root_that_is_not_writable_is_refused(tmp_path):
    """A results folder below a plain file, and one where the system lets no file be created."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for root, named in ((blocker / "results", "a_file is a file"),
                        (Path("/proc/hierbench"), "no file can be created in /proc")):
        cfg = compose_study(tmp_path, f"results_root={root}")
        with pytest.raises(ConfigError) as err:
            job.run(cfg)
        message = str(err.value)
        assert message.startswith(f"results_root='{root}' is not allowed: a folder where files "
                                  "can be written") and named in message and "\n" not in message
    assert [p.name for p in tmp_path.rglob("*")] == ["a_file"]


@pytest.mark.parametrize("words,named", [
    (["prior=nope"], "prior='nope' is not allowed: one of complete_pooling, empirical_bayes"),
    (["prior=flat,nope"], "prior='nope' is not allowed: one of complete_pooling"),
    (["scenario=nope"], "scenario='nope' is not allowed: one of bimodal, binomial"),
    (["+experiment=nope"], "experiment='nope' is not allowed: one of scenarios, smoke"),
])
def test_unknown_group_names_on_the_command_line_are_refused(words, named):
    with pytest.raises(ConfigError) as err:
        config.check_group_choices(words)
    assert named in str(err.value) and "\n" not in str(err.value)


def test_good_group_names_pass():
    config.check_group_choices(["prior=glob(*)", "scenario=t_effects,sparse", "~prior.hyper.mu_loc",
                                "+experiment=scenarios", "prior.hyper.tau_family=half_cauchy", "-m",
                                "hydra/launcher=submitit_local", "hydra/launcher=slurm"])


@pytest.mark.parametrize("words,named", [
    (["bogus=1"], "bogus='1' is not allowed: bogus is not a key of the study config (a typo? "
                  "+bogus=1 adds a new key)"),
    (["-m", "scenario.tau=1,4", "scenario.bogus=1,2"], "scenario.bogus='1,2' is not allowed"),
    (["-m", "prior=glob(*)", "inference.drawz=10"], "inference.drawz='10' is not allowed"),
    (["scenario.tau=range(1,3)", "replicate=3"], "replicate='3' is not allowed"),
])
def test_unknown_keys_on_the_command_line_are_refused(words, named):
    """Hydra's own message for a key the config lacks runs over six lines: one line here."""
    with pytest.raises(ConfigError) as err:
        config.check_keys(words, "study")
    assert named in str(err.value) and "\n" not in str(err.value)


def test_known_and_added_keys_pass():
    config.check_keys(["-m", "replicates=5", "scenario.tau=0.5,2", "+bogus=1", "prior=glob(*)",
                       "inference.draws=range(100,300,100)", "hydra.job.chdir=false",
                       "scenario=t_effects", "scenario.df=3", "hydra/launcher=slurm"], "study")
    config.check_keys(["--config-name=other", "bogus=1"], "study")  # another config: Hydra's


@pytest.mark.parametrize("app", ["study", "fit", "paper", "bench"])
def test_unknown_key_stops_each_app_with_one_line(tmp_path, app):
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", f"runs.{app}", "bogus=1"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        f"error: bogus='1' is not allowed: bogus is not a key of the {app} config (a typo? "
        "+bogus=1 adds a new key)"], done.stderr
    assert not any(tmp_path.rglob("*"))  # nothing written, not even Hydra's outputs folder


@pytest.mark.parametrize("task,named", [
    (["scenario.tau=1,-1", "prior=flat"], "scenario.tau=-1 is not allowed: a number > 0 (job #1: "),
    (["inference.draws=100,0", "prior=flat"], "inference.draws=0 is not allowed: an integer >= 4"),
    (["prior=flat,nope"], "prior='nope' is not allowed: one of complete_pooling"),
    (["prior=flat,flat", "scenario.tau=1"], "jobs #0 and #1 are the same job"),
])
def test_a_sweep_is_checked_whole_before_any_job(tmp_path, task, named):
    """A bad value in the last job of a sweep stops the sweep before the first job starts."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        with pytest.raises(ConfigError) as err:
            study.Plan(sweep_jobs(tmp_path, *task))
    assert named in str(err.value) and "\n" not in str(err.value)
    assert not any(tmp_path.rglob("*"))


def test_a_good_sweep_is_planned_with_every_job(tmp_path):
    """The default grid's 3 x 2 x 2 cells (tau, n_groups and group_size fixed here) x 12 priors."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        plan = study.Plan(sweep_jobs(tmp_path))
    priors = len(list((Path(CONF) / "prior").glob("*.yaml")))
    assert len(plan.paths) == len(set(plan.paths)) == 3 * priors  # tau 0.25, 1, 4 x priors
    assert plan.done() == (0, 0) and "0 of 36 jobs done (0 of 108 replicates)" in plan.progress()
    assert not any(tmp_path.rglob("*"))


def test_bad_sweep_stops_the_program_with_one_line_and_writes_nothing(tmp_path):
    """The real command: the last job's bad value stops it before Hydra creates any folder."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "runs.study", *TINY, "scenario.tau=1,-1", "prior=flat",
         f"results_root={tmp_path}", "compilation_cache=null"],
        cwd=root, env={**os.environ, "PYTHONUNBUFFERED": "1"}, capture_output=True, text=True,
        timeout=300,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and lines == [
        "error: scenario.tau=-1 is not allowed: a number > 0 (job #1: " + " ".join(
            [*TINY[:2], "scenario.tau=-1", "prior=flat", *TINY[2:], f"results_root={tmp_path}",
             "compilation_cache=null"]) + ")"
    ], done.stderr
    assert not any(tmp_path.rglob("*"))
