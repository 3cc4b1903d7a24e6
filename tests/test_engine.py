"""The engine: a data set's fit does not depend on the batch it is in, nor on chunking, nor on
waiting in the sampler's queue for a row of lanes, and the program is compiled once per shape."""

import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import models
import sim
from models import engine
from runs import threads

ROOT = Path(__file__).resolve().parent.parent

INFERENCE = engine.Inference(chains=2, warmup=150, draws=150)
HYPER = dict(mu_family="normal", mu_loc=0.0, mu_scale=5.0, tau_family="half_normal", tau_df=3.0,
             tau_scale=2.0, sigma_scale=2.0)


def _data(n_rep, n_groups=5):
    data, _ = sim.simulate("normal_normal", 5, n_rep, n_groups=n_groups, group_size=4, tau=1.0,
                           sigma=1.0, mu=0.0)
    return data, jax.random.split(jax.random.key(3), n_rep)


def _close(a: engine.FitSummary, b: engine.FitSummary):
    for name in a.sites:
        for x, y in zip(a.sites[name], b.sites[name]):
            # the same arithmetic, batched or not: equal up to float32 rounding
            np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5)
    np.testing.assert_array_equal(a.n_divergent, b.n_divergent)


def test_batched_fit_equals_fitting_each_data_set_alone():
    data, keys = _data(4)
    batch = engine.fit("hierarchical", data, keys, HYPER, parameterization="noncentered",
                       inference=INFERENCE)
    alone = engine.fit("hierarchical", {k: v[2:3] for k, v in data.items()}, keys[2:3], HYPER,
                       parameterization="noncentered", inference=INFERENCE)
    _close(jax.tree.map(lambda v: v[2:3], batch), alone)


def test_queued_data_sets_fit_as_when_alone():
    # 5 data sets on 2 rows of lanes: data sets 2, 3 and 4 start when a row's chains have ended,
    # in whichever row frees up first
    data, keys = _data(5)
    queued = engine.fit("hierarchical", data, keys, HYPER, parameterization="noncentered",
                        inference=INFERENCE, lane_rows=2)
    for r in (1, 4):
        alone = engine.fit("hierarchical", {k: v[r:r + 1] for k, v in data.items()},
                           keys[r:r + 1], HYPER, parameterization="noncentered",
                           inference=INFERENCE)
        _close(jax.tree.map(lambda v, r=r: v[r:r + 1], queued), alone)


def test_chunking_by_memory_budget_changes_nothing():
    data, keys = _data(5)
    whole = engine.fit("hierarchical", data, keys, HYPER, inference=INFERENCE)
    # a budget for two replicates' draws: chunks of 2, 2 and 1 (the last padded to 2)
    n_latent = 5 + 3  # theta_1..5, mu, tau, sigma
    budget = 2 * engine.bytes_per_replicate(n_latent, INFERENCE) + 1
    chunked = engine.fit("hierarchical", data, keys, HYPER, inference=INFERENCE,
                         memory_budget_bytes=budget)
    _close(whole, chunked)


def test_data_sets_split_over_devices_fit_as_on_one():
    """Two CPU devices (HIERBENCH_DEVICES=2, in a process of its own: JAX fixes its devices when
    it starts), each running its own chunk in a thread, give every data set the fit it gets on
    one device, bit for bit (each device runs the same program; see engine.fit)."""
    script = (
        "import runs, jax, numpy as np\n"
        "from tests import test_engine as t\n"
        "from models import engine\n"
        "assert len(jax.local_devices()) == 2\n"
        "data, keys = t._data(5)\n"
        "fits = [engine.fit('hierarchical', data, keys, t.HYPER, parameterization='auto',\n"
        "                   inference=t.INFERENCE, devices=d) for d in (1, 2)]\n"
        "for name in fits[0].sites:\n"
        "    for x, y in zip(fits[0].sites[name], fits[1].sites[name]):\n"
        "        np.testing.assert_array_equal(x, y)\n"
        "np.testing.assert_array_equal(fits[0].n_leapfrog, fits[1].n_leapfrog)\n"
        "print('same')\n"
    )
    env = {**os.environ, threads.DEVICES_ENV: "2"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "same", done.stderr[-2000:]


def test_sites_and_shapes():
    data, keys = _data(3, n_groups=6)
    fit = engine.fit("hierarchical", data, keys, HYPER, parameterization="noncentered",
                     inference=INFERENCE)
    assert set(fit.sites) == {"theta", "mu", "tau", "sigma"}
    assert fit.sites["theta"].mean.shape == (3, 6)
    assert fit.sites["tau"].quantiles.shape == (3, len(engine.QUANTILES), 1)
    assert fit.n_divergent.shape == (3,)
    # quantiles are ordered and bracket the median
    q = fit.sites["theta"].quantiles
    assert np.all(np.diff(q, axis=1) >= 0)


def spec_programs() -> int:
    """The programs compiled in this process for a spec and shape (a sampler and its summary
    program; the summaries' two shared programs, ``_series`` and ``_conditional``, apart)."""
    return sum(key[0] in ("_sampler_body", "_summary_body") for key in engine._EXECUTABLES)


def test_compiled_once_per_shape():
    before = spec_programs()
    for tau in (0.5, 2.0):  # another cell of the same shape and another numeric hyperparameter
        data, keys = _data(3)
        engine.fit("hierarchical", data, keys, {**HYPER, "tau_scale": tau}, inference=INFERENCE)
    assert spec_programs() - before <= 2  # the sampler and its summary program
    shared = {key[0] for key in engine._EXECUTABLES} - {"_sampler_body", "_summary_body"}
    # whatever the spec and J: the series' summaries and (collapsed fits) the conditional means'
    assert "_series_body" in shared and shared <= {"_series_body", "_conditional_body"}


def _prior_configs():
    """(name, spec, hyper) of every shipped prior config that is fitted by NUTS."""
    from omegaconf import OmegaConf

    out = []
    for path in sorted((ROOT / "conf" / "prior").glob("*.yaml")):
        cfg = OmegaConf.load(path)
        if engine.method(cfg.spec) == "nuts":
            out.append((path.stem, cfg.spec, OmegaConf.to_container(cfg.hyper)))
    return out


@pytest.mark.parametrize("name, spec, hyper", _prior_configs(), ids=lambda v: str(v)[:20])
def test_latent_shapes_are_initialize_models(name, spec, hyper):
    """The latent sites and unconstrained shapes found by an abstract trace are those NumPyro's
    own ``initialize_model`` finds by running the model, for every shipped NUTS prior, on every
    data form (sigma unknown, known standard errors, binomial counts) and every form that
    applies to it."""
    from numpyro.infer.util import initialize_model

    forms_seen = 0
    for scenario, params in (
        ("normal_normal", dict(n_groups=5, group_size=4, tau=1.0, sigma=1.0, mu=0.0)),
        ("known_sigma", dict(n_groups=5, group_size=4, tau=1.0, sigma=1.0, mu=0.0, se_ratio=1.0)),
        ("binomial", dict(n_groups=5, group_size=10, tau=1.0, mu=0.0)),
    ):
        data, _ = sim.simulate(scenario, 5, 2, **params)
        example = engine._first({k: np.asarray(v) for k, v in data.items()})
        static, dynamic = engine._split_hyper(hyper)
        allowed = getattr(models.load(spec), "PARAMETERIZATIONS", engine.PARAMETERIZATIONS)
        forms = {engine.resolve(spec, "auto", example, static, dynamic)}
        forms |= {f for f in ("centered", "noncentered") if f in allowed}
        for form in sorted(forms):
            kwargs = {"data": example, **dynamic, **dict(static)}
            info = initialize_model(
                jax.random.key(0), engine.build_model(spec, form), model_kwargs=kwargs
            )
            want = tuple((k, tuple(np.shape(v))) for k, v in sorted(info.param_info.z.items()))
            engine._LATENT_CACHE.clear()
            got = engine._latent_shapes(spec, static, form, example, dynamic)
            assert got == want, (name, scenario, form)
            forms_seen += 1
    assert forms_seen >= 3


def test_a_fit_and_an_exact_posterior_traced_in_two_threads_at_once():
    """``runs.job`` computes the exact posterior in a thread beside the fits. NumPyro's handler
    stack is one for the process, so both trace their models under ``engine.TRACE_LOCK`` (a
    trace without it raises): with nothing traced yet, both run at once and give what each
    gives alone."""
    import concurrent.futures

    from models import exact

    data, keys = _data(3)
    engine._EXECUTABLES.clear()
    engine._sampler.clear_cache()
    engine._summaries.clear_cache()
    exact._functions.cache_clear()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        moments = pool.submit(exact.moments, "hierarchical", HYPER, data)
        fit = engine.fit("hierarchical", data, keys, HYPER, parameterization="auto",
                         inference=INFERENCE)
        moments = moments.result()
    alone = engine.fit("hierarchical", data, keys, HYPER, parameterization="auto",
                       inference=INFERENCE)
    for name in fit.sites:
        for x, y in zip(fit.sites[name], alone.sites[name]):
            np.testing.assert_array_equal(x, y)
    for site, values in exact.moments("hierarchical", HYPER, data).items():
        for x, y in zip(moments[site], values):
            np.testing.assert_array_equal(x, y)


def test_target_accept_auto_follows_what_the_sampler_moves():
    """``target_accept="auto"``: the scalar value where the sampler moves scalars only (the
    collapsed hierarchical fit: tau, sigma), the per-group value where it moves a value per
    group (theta, its non-centered eta, the horseshoe's local scales); a number stays as given,
    and a closed form (no draws) gets the scalar value."""
    from omegaconf import OmegaConf

    data, _ = _data(2)
    horseshoe = OmegaConf.to_container(OmegaConf.load(ROOT / "conf/prior/horseshoe.yaml").hyper)
    scalar, per_group = engine.TARGET_ACCEPT_AUTO
    assert scalar < per_group
    auto, given = engine.Inference(target_accept="auto"), engine.Inference(target_accept=0.9)
    for spec, hyper, form, want in [
        ("hierarchical", HYPER, "auto", scalar),
        ("hierarchical", HYPER, "noncentered", per_group),
        ("hierarchical", HYPER, "centered", per_group),
        ("horseshoe", horseshoe, "auto", per_group),
    ]:
        assert engine.settings(spec, form, data, hyper, auto).target_accept == want, (spec, form)
        assert engine.settings(spec, form, data, hyper, given).target_accept == 0.9
    assert engine.settings("james_stein", "none", data, {}, auto).target_accept == scalar


def test_processes_sharing_a_compilation_cache_compile_a_program_one_at_a_time(tmp_path):
    """``engine._compile_lock``: a process that asks for the lock of a program another process
    is compiling waits until that one is done (then it finds the program in the shared cache);
    another program's lock does not wait."""
    cache = tmp_path / "jax"
    holder = (
        "import sys, time; from pathlib import Path; import jax; from models import engine\n"
        "jax.config.update('jax_compilation_cache_dir', sys.argv[1])\n"
        "with engine._compile_lock('program A'):\n"
        "    Path(sys.argv[2]).touch(); time.sleep(2.0)\n"
        "    Path(sys.argv[3]).write_text(repr(time.time()))\n"
    )
    held, released = tmp_path / "held", tmp_path / "released"
    proc = subprocess.Popen([sys.executable, "-c", holder, str(cache), str(held), str(released)],
                            cwd=Path(__file__).parents[1])
    try:
        for _ in range(600):  # the other process starts (imports JAX) and takes the lock
            if held.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert held.exists(), "the lock holder did not start"
        previous = jax.config.jax_compilation_cache_dir
        jax.config.update("jax_compilation_cache_dir", str(cache))
        try:
            with engine._compile_lock("program B"):  # another program: no wait
                assert not released.exists()
            with engine._compile_lock("program A"):
                got = time.time()
                assert released.exists()
        finally:
            jax.config.update("jax_compilation_cache_dir", previous)
        assert got >= float(released.read_text())
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == 0


def test_every_series_is_summarized_as_on_its_own_across_blocks():
    """The summaries' layout: two sites' series (3 data sets x 25 and x 1 values: 78 rows,
    across two blocks of ``SERIES_BLOCK``, the second padded) and a Rao–Blackwell site come back
    in their places, each equal to ``diagnostics.summary`` of its own series (the same program
    code: equal to float32 rounding), with the Rao–Blackwell mean the mean of the conditional
    means and sd^2 = mean conditional variance + variance of the conditional means."""
    from models import diagnostics

    rng = np.random.default_rng(4)
    n_rep, chains, draws = 3, 2, 50
    scale = np.arange(1, 26, dtype=np.float32)[:, None, None]
    theta = rng.normal(size=(n_rep, 25, chains, draws)).astype(np.float32) * scale
    tau = rng.gamma(2.0, size=(n_rep, 1, chains, draws)).astype(np.float32)
    cond_mean = rng.normal(size=(n_rep, 25, chains, draws)).astype(np.float32)
    cond_var = rng.gamma(3.0, size=(n_rep, 25)).astype(np.float32)
    sites = {"theta": jnp.asarray(theta), "tau": jnp.asarray(tau),
             engine.SAMPLED: jnp.asarray(tau)}
    rows, index = engine._rows(sites)
    rb_rows, rb_index = engine._rows({"theta": jnp.asarray(cond_mean)})
    assert rows.shape[0] % engine.SERIES_BLOCK == 0 and rows.shape[0] > engine.SERIES_BLOCK
    zeros = np.zeros(n_rep, np.int32)
    out = (rows, index, rb_rows, rb_index, {"theta": jnp.asarray(cond_var)}, zeros, zeros, zeros,
           None)
    summaries, *_, sampled_rhat, sampled_ess = engine._summarized(out, jax.devices()[0])
    for r in range(n_rep):
        for p in (0, 24):
            mean, sd, qs, rhat, ess_bulk, mcse_sd, mcse_mean, ess_tail = diagnostics.summary(
                jnp.asarray(theta[r, p]), engine.QUANTILES)
            got = summaries["theta"]
            np.testing.assert_allclose(got[2][r, :, p], qs, rtol=1e-6)
            np.testing.assert_allclose([got[3][r, p], got[4][r, p], got[5][r, p], got[7][r, p]],
                                       [rhat, ess_bulk, mcse_sd, ess_tail], rtol=1e-5)
            m = cond_mean[r, p].ravel().astype(np.float64)
            np.testing.assert_allclose(got[0][r, p], m.mean(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got[1][r, p], np.sqrt(cond_var[r, p] + m.var(ddof=1)),
                                       rtol=1e-5)
        tau_summary = diagnostics.summary(jnp.asarray(tau[r, 0]), engine.QUANTILES)
        np.testing.assert_allclose(summaries["tau"][0][r, 0], tau_summary[0], rtol=1e-6)
        np.testing.assert_allclose(summaries["tau"][4][r, 0], tau_summary[4], rtol=1e-5)
        np.testing.assert_allclose([sampled_rhat[r], sampled_ess[r]],
                                   [tau_summary[3], tau_summary[4]], rtol=1e-5)
