"""Bad config values stop a job before any compute, with one line naming key, value and rule."""

import pytest

from runs import job
from runs.config import ConfigError
from tests.helpers import compose_study

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
                                         "one of centered for spec flat"):
        job.run(cfg)
    assert not any(tmp_path.rglob("*"))


def test_unknown_scenario_lists_the_known_ones(tmp_path):
    cfg = compose_study(tmp_path, "scenario.name=nope")
    with pytest.raises(ConfigError, match="scenario='nope' is not allowed: one of bimodal, binomial"):
        job.run(cfg)
