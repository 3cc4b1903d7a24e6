"""Groups without data (models.padding): padding a data set changes neither the posterior the
sampler sees nor the summaries; a spec with a value per group is not padded; the study pads to
the sweep's largest J, and a padded job replays exactly."""

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import constrain_fn, potential_energy
from omegaconf import OmegaConf

import sim
from models import collapse, engine, padding
from runs import job, replay, study
from tests.helpers import compose_study

CONF_PRIOR = Path(__file__).resolve().parent.parent / "conf" / "prior"


def _hyper(name):
    return OmegaConf.to_container(OmegaConf.load(CONF_PRIOR / f"{name}.yaml").hyper)


def _spec(name):
    return OmegaConf.load(CONF_PRIOR / f"{name}.yaml").spec


def _gaussian(n_groups=5, reps=3):
    data, _ = sim.simulate("normal_normal", 11, np.arange(reps), n_groups=n_groups, group_size=4,
                           tau=1.0, sigma=1.0, mu=0.5)
    return data


def _known_sigma(n_groups=5, reps=3):
    data, _ = sim.simulate("known_sigma", 11, np.arange(reps), n_groups=n_groups, group_size=4,
                           tau=1.0, sigma=1.0, mu=0.5, se_ratio=2.0)
    return data


# (prior, data): every spec whose sampler moves no value per group once theta is integrated out
# (mu too where it is Gaussian given the rest), on both Gaussian data forms
CASES = [
    ("hierarchical", _gaussian), ("normal_inv_chi2", _gaussian), ("flat", _gaussian),
    ("normal_weak", _gaussian), ("complete_pooling", _gaussian), ("hierarchical", _known_sigma),
    ("normal_inv_chi2", _known_sigma),
]


@pytest.mark.parametrize("prior,make", CASES, ids=[f"{p}-{m.__name__[1:]}" for p, m in CASES])
def test_groups_without_data_change_neither_the_potential_nor_its_gradient(prior, make):
    """At random points of the sampler's space, the padded model's potential energy, its
    gradient and the exact conditionals of the real groups equal the unpadded model's, to float32
    rounding (the same sums with zeros added: relative 1e-5 is some 80 ulps)."""
    data = make()
    spec, hyper = _spec(prior), _hyper(prior)
    static, dynamic = engine._split_hyper(hyper)
    form = engine.form(spec, "auto", data, hyper)
    padded = padding.pad(data, 12)
    first, first_padded = engine._first(data), engine._first(padded)
    latent = engine._latent_shapes(spec, static, form, first, dynamic)
    assert engine._latent_shapes(spec, static, form, first_padded, dynamic) == latent
    assert engine.sampler_groups(spec, "auto", data, hyper, 12) == 12
    model = engine.build_model(spec, form)
    unravel = engine._unravel(latent)
    d = sum(int(np.prod(s)) for _, s in latent)
    rng = np.random.default_rng(5)

    def potential(z, example):
        kwargs = {"data": example, **dynamic, **dict(static)}
        return potential_energy(model, (), kwargs, unravel(z))

    def conditionals(z, example):
        kwargs = {"data": example, **dynamic, **dict(static)}
        values = constrain_fn(model, (), kwargs, unravel(z), return_deterministic=True)
        return {k: v for k, v in values.items()
                if k in (collapse.COND_MEAN, collapse.COND_VAR, collapse.MU_MEAN, collapse.MU_VAR)}

    for r in range(3):
        example = {k: v[r] for k, v in data.items()}
        wide = {k: v[r] for k, v in padded.items()}
        for _ in range(4):
            z = jnp.asarray(rng.uniform(-1.5, 1.5, d), jnp.float32)
            pe, grad = jax.value_and_grad(potential)(z, example)
            pe_wide, grad_wide = jax.value_and_grad(potential)(z, wide)
            assert np.isfinite(pe) and np.all(np.isfinite(grad_wide))
            np.testing.assert_allclose(pe_wide, pe, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(grad_wide, grad, rtol=1e-5, atol=1e-5)
            real, padded_values = conditionals(z, example), conditionals(z, wide)
            for name, value in real.items():
                wide_value = padded_values[name]
                if np.ndim(value):  # per group: the real groups' come first
                    wide_value = wide_value[..., : np.shape(value)[-1]]
                np.testing.assert_allclose(wide_value, value, rtol=1e-5, atol=1e-6)


def test_a_group_without_data_keeps_its_prior():
    """theta_j of a padded group given the rest is its prior, N(mu, tau^2) (B_j = 1), and adds
    nothing to the marginal (models.collapse)."""
    theta = collapse.Collapsed(jnp.array([0.3, 0.3]), jnp.array([4.0, 4.0]))
    log_marginal, mean, var = collapse.marginal_and_conditional(
        theta, jnp.array([1.0, 0.0]), jnp.array([0.5, jnp.inf]))
    np.testing.assert_allclose(mean[1], 0.3)
    np.testing.assert_allclose(var[1], 4.0)
    # the marginal is the real group's alone: -1/2 log(4.5) - (1 - 0.3)^2 / (2 * 4.5)
    np.testing.assert_allclose(log_marginal, -0.5 * np.log(4.5) - 0.49 / 9.0, rtol=1e-6)


def test_a_spec_with_a_value_per_group_runs_at_its_own_number_of_groups():
    data = _gaussian()
    for spec in ("horseshoe", "hierarchical_t", "student_t"):
        assert engine.sampler_groups(spec, "auto", data, _hyper(spec), 20) == 5
    # non-centered, theta itself is sampled: a value per group
    assert engine.sampler_groups("hierarchical", "noncentered", data, _hyper("hierarchical"),
                                 20) == 5
    # no padding asked, or no more groups than J, or a closed-form spec
    assert engine.sampler_groups("hierarchical", "auto", data, _hyper("hierarchical"), None) == 5
    assert engine.sampler_groups("hierarchical", "auto", data, _hyper("hierarchical"), 4) == 5
    assert engine.sampler_groups("james_stein", "none", data, {}, 20) == 5


def test_a_padded_fit_is_the_unpadded_posterior():
    """The same data sets fitted at J = 5 and padded to J = 16: every posterior mean and sd
    agrees within its Monte Carlo error (|z| < 4.5 over 2 x 4 x 8 comparisons: a chance of
    ~4e-4 of one failing for a correct padding; a padded group that leaked into the likelihood
    would move sigma and tau by many MCSEs)."""
    data = _gaussian(reps=4)
    keys = jax.random.split(jax.random.key(2), 4)
    hyper = _hyper("hierarchical")
    inference = engine.Inference(chains=4, warmup=300, draws=500)
    alone = engine.fit("hierarchical", data, keys, hyper, parameterization="auto",
                       inference=inference)
    padded = engine.fit("hierarchical", data, keys, hyper, parameterization="auto",
                        inference=inference, pad_groups=16)
    for name, a in alone.sites.items():
        b = padded.sites[name]
        assert a.mean.shape == b.mean.shape
        z = (a.mean - b.mean) / np.sqrt(a.mcse_mean**2 + b.mcse_mean**2)
        assert np.all(np.abs(z) < 4.5), (name, z)
        z_sd = (a.sd - b.sd) / np.sqrt(a.mcse_sd**2 + b.mcse_sd**2)
        assert np.all(np.abs(z_sd) < 4.5), (name, z_sd)
    assert padded.n_divergent.sum() == 0


def test_the_study_pads_every_job_to_the_largest_number_of_groups_of_its_sweep():
    jobs = [OmegaConf.create({"scenario": {"n_groups": j}}) for j in (5, 20, 8)]
    study.share_programs(jobs)
    assert os.environ[job.PAD_ENV] == "20" and job.pad_groups() == 20
    os.environ[job.PAD_ENV] = ""  # set by hand, empty: no padding, and the preflight keeps it
    study.share_programs(jobs)
    assert job.pad_groups() is None
    os.environ[job.PAD_ENV] = "twenty"
    with pytest.raises(ValueError, match="HIERBENCH_PAD_GROUPS='twenty': expected a positive"):
        job.pad_groups()
    # the preflight says so before any job
    with pytest.raises(ValueError, match="HIERBENCH_PAD_GROUPS='twenty'"):
        study.share_programs(jobs)


def test_a_padded_job_is_replayed_exactly(tmp_path):
    """A job run with its groups padded (3 -> 8) records fit_groups = 8, and its replay pads
    the same way: the stored rows come back."""
    os.environ[job.PAD_ENV] = "8"
    cfg = compose_study(tmp_path, "prior=hierarchical")
    path = job.run(cfg)
    del os.environ[job.PAD_ENV]
    stored, replayed = replay.replay(path, 1)
    assert set(stored["fit_groups"]) == {8}
    assert replay.reproduced(stored, replayed)
