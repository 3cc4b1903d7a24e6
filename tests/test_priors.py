"""The priors the specs draw from are the laws their docstrings state: Kolmogorov-Smirnov tests
of NumPyro prior draws against scipy's distributions (an independent implementation).

40,000 draws per check; the test fails when p < 1e-4 (a false alarm per check 1e-4, ~1e-3 for
the file). Power, measured on N(0, 2^2) draws: a scale off by 2 %, 5 %, 10 % gives p = 1e-2,
8e-8, 5e-23; the last test plants the 10 % error.
"""

import jax
import numpy as np
import pytest
from numpyro.infer import Predictive
from scipy import stats

import models

N_DRAWS = 40_000
DATA = {"se": np.ones(3, np.float32)}


def _prior_draws(spec, **hyper):
    draws = Predictive(models.load(spec).model, num_samples=N_DRAWS)(jax.random.key(0), data=DATA, **hyper)
    return {k: np.asarray(v, float) for k, v in draws.items()}


def _assert_law(draws, law):
    assert stats.kstest(draws, law.cdf).pvalue > 1e-4


def test_normal_inv_chi2_marginal_of_theta_is_student_t():
    """BDA3 §3.3: theta_j | mu, tau ~ N(mu, tau^2), mu | tau ~ N(mu_loc, tau^2/kappa0),
    tau^2 ~ Scaled-Inv-chi^2(nu0, tau0^2) gives theta_j ~ t_nu0(mu_loc, tau0 sqrt(1 + 1/kappa0));
    the default student_t prior is that law (df 3, scale 1.414)."""
    draws = _prior_draws("normal_inv_chi2", mu_loc=0.5, kappa0=2.0, tau_df=4.0, tau_scale=1.5,
                         sigma_scale=1.0)
    _assert_law(draws["theta"][:, 0], stats.t(4.0, loc=0.5, scale=1.5 * np.sqrt(1.5)))
    _assert_law(draws["tau"] ** 2, stats.invgamma(2.0, scale=4.0 * 1.5**2 / 2))


@pytest.mark.parametrize("family,law", [
    ("half_normal", stats.halfnorm(scale=2.0)),
    ("half_cauchy", stats.halfcauchy(scale=2.0)),
    ("half_t", stats.t(3.0, scale=2.0)),  # folded: compared as |t| below
    ("uniform", stats.uniform(0, 2.0)),
    ("inv_gamma", stats.invgamma(2.0, scale=2.0)),  # on tau^2: compared as tau^2 below
])
def test_tau_families(family, law):
    draws = _prior_draws("hierarchical", mu_family="normal", mu_loc=0.0, mu_scale=1.0,
                         tau_family=family, tau_scale=2.0, tau_df=3.0, sigma_scale=1.0)["tau"]
    if family == "half_t":
        _assert_law(draws, _folded(law))
    elif family == "inv_gamma":
        _assert_law(draws**2, law)
    else:
        _assert_law(draws, law)


def test_horseshoe_local_scales_and_hierarchical_t_effects():
    draws = _prior_draws("horseshoe", mu_loc=0.0, mu_scale=1.0, tau_scale=0.5, sigma_scale=1.0)
    _assert_law(draws["lambda"][:, 0], stats.halfcauchy())
    # theta_j / (lambda_j tau) - mu / (lambda_j tau) ~ N(0, 1)
    z = (draws["theta"][:, 0] - draws["mu"]) / (draws["lambda"][:, 0] * draws["tau"])
    _assert_law(z, stats.norm())
    draws = _prior_draws("hierarchical_t", mu_loc=0.0, mu_scale=1.0, tau_family="half_normal",
                         tau_scale=1.0, tau_df=3.0, nu_shape=2.0, nu_rate=0.1, sigma_scale=1.0)
    _assert_law(draws["nu"], stats.gamma(2.0, scale=10.0))
    # given nu, (theta - mu) / tau ~ t_nu: its CDF at the draw is uniform
    u = stats.t.cdf((draws["theta"][:, 0] - draws["mu"]) / draws["tau"], draws["nu"])
    _assert_law(u, stats.uniform())


def test_a_misscaled_law_fails_the_same_check():
    draws = _prior_draws("normal", loc=0.0, scale=2.0, sigma_scale=1.0)["theta"][:, 0]
    _assert_law(draws, stats.norm(scale=2.0))
    with pytest.raises(AssertionError):
        _assert_law(draws, stats.norm(scale=2.2))  # 10 % off


def _folded(law):
    """|X| for a law symmetric about 0."""
    return type("Folded", (), {"cdf": staticmethod(lambda x: 2 * law.cdf(x) - 1)})()


@pytest.mark.slow  # a study (one NUTS compile) and its report in a subprocess: about a minute
def test_the_documented_example_prior_spec_is_picked_up_with_no_other_change(tmp_path):
    """The two files of docs/priors.md's "Adding a prior spec", dropped into a copy of the project
    as they are: the new spec is fitted, summarized, drawn in a colour of its own and described
    in the report's text; nothing else is edited."""
    import os
    import re
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd

    root = Path(__file__).resolve().parent.parent
    page = (root / "docs" / "priors.md").read_text()
    section = page[page.index("## Adding a prior spec"):]
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    yaml_text = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    copy = tmp_path / "project"
    for folder in ("sim", "models", "runs", "analysis", "conf"):
        shutil.copytree(root / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "models" / "laplace.py").write_text(python)
    (copy / "conf" / "prior" / "laplace.yaml").write_text(yaml_text)
    env = {**os.environ, "PYTHONPATH": str(copy)}
    results = tmp_path / "results"
    study = [sys.executable, "-m", "runs.study", "study=example", "prior=laplace,no_pooling_ml",
             "scenario.n_groups=6", "scenario.group_size=5", "scenario.tau=1,2", "replicates=4",
             "inference.chains=2", "inference.warmup=150", "inference.draws=150",
             "hydra.launcher.n_jobs=1", f"results_root={results}", "compilation_cache=null"]
    report = [sys.executable, "-m", "analysis.report", f"results_dir={results / 'example'}",
              "reference=no_pooling_ml"]
    for command in (study, report):
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    summaries = pd.read_parquet(results / "example" / "analysis" / "summaries.parquet")
    assert set(summaries["prior"]) == {"laplace", "no_pooling_ml"}
    laplace = summaries[(summaries["prior"] == "laplace") & (summaries["param"] == "theta")]
    assert len(laplace) == 2 and laplace["rmse"].notna().all()
    text = (results / "example" / "report.html").read_text()
    assert "<code>laplace</code>: Partial pooling with double-exponential (Laplace) group effects" in text
    assert list((results / "example" / "figures").glob("theta_rmse_vs_tau*.png"))
    colours = subprocess.run(
        [sys.executable, "-c", "import models; from analysis import style; "
         "p = style.palette(models.available()); print(p['laplace'] not in "
         "[c for k, c in p.items() if k != 'laplace'])"],
        cwd=copy, env=env, capture_output=True, text=True, timeout=120)
    assert colours.stdout.strip() == "True", colours.stderr[-2000:]
