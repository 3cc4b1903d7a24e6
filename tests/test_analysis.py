"""Performance measures and their Monte Carlo standard errors, against a hand computation and
against the spread of the estimates over repeated studies."""

import numpy as np
import pandas as pd
import pytest

from scipy import stats

from analysis.measures import coverage_curves, summarize


Z90 = 1.6448536269514722


def _rows(rng, n_rep, n_groups, shared_sd, own_sd, post_sd, job="a"):
    """Synthetic result rows: posterior means err by a shared (per-replicate) and an own error."""
    shared = rng.normal(0, shared_sd, size=(n_rep, 1))
    truth = rng.normal(size=(n_rep, n_groups))
    mean = truth + shared + rng.normal(0, own_sd, size=(n_rep, n_groups))
    half = Z90 * post_sd
    df = pd.DataFrame({
        "study": "s", "scenario": "normal_normal", "prior": "p", "replicate": np.repeat(np.arange(n_rep), n_groups),
        "param": "theta", "index": np.tile(np.arange(n_groups), n_rep), "true_value": truth.ravel(),
        "posterior_mean": mean.ravel(), "posterior_sd": post_sd, "lower_90": mean.ravel() - half,
        "upper_90": mean.ravel() + half, "rhat": 1.0, "n_divergent": 0, "status": "ok",
        "config_hash": job,
    })
    return df


def test_measures_equal_a_direct_computation():
    rng = np.random.default_rng(0)
    df = _rows(rng, 7, 4, 0.3, 0.5, 0.6)
    s = summarize(df).iloc[0]
    err = (df.posterior_mean - df.true_value).to_numpy().reshape(7, 4)
    m_r = (err**2).mean(axis=1)
    assert s.n_replicates == 7
    assert s.rmse == pytest.approx(np.sqrt(m_r.mean()))
    assert s.rmse_mcse == pytest.approx(m_r.std(ddof=1) / np.sqrt(7) / (2 * np.sqrt(m_r.mean())))
    assert s.bias == pytest.approx(err.mean())
    assert s.empse == pytest.approx(err.std(ddof=1))  # the sd of all 28 errors
    cover = (np.abs(err) <= Z90 * 0.6).mean(axis=1)
    assert s.coverage_90 == pytest.approx(cover.mean())
    assert s.coverage_90_mcse == pytest.approx(cover.std(ddof=1) / np.sqrt(7))
    assert s.posterior_variance == pytest.approx(0.36)
    assert s.model_se == pytest.approx(0.6) and s.posterior_sd == pytest.approx(0.6)
    assert s.rel_se_error == pytest.approx(0.6 / err.std(ddof=1) - 1)
    assert s.divergent_rate == 0 and s.nonconverged_rate == 0 and s.n_clean == 7
    assert s.coverage_clean_90 == pytest.approx(s.coverage_90)


def test_scalar_estimand_follows_table_6():
    """One estimand per replicate with a fixed truth is exactly Morris et al.'s setting: MCSE(bias)
    = EmpSE / sqrt(R) (Table 6, identical), and for normal errors MCSE(EmpSE) = EmpSE /
    sqrt(2 (R - 1)) and MCSE(ModSE) = sd(V) / (2 sqrt(R) ModSE), which the jackknife and delta
    method must reproduce. With R = 4000 normal errors the jackknife SE of an sd has a relative
    sd of about 1/sqrt(R) x 2 ~ 3 %; 10 % is > 3 sd of slack and still fails a formula off by
    sqrt(2)."""
    rng = np.random.default_rng(3)
    n_rep = 4000
    est = 2.0 + 0.1 + rng.normal(0, 0.5, n_rep)  # bias 0.1, EmpSE 0.5
    sd = np.sqrt(rng.gamma(50, 0.25 / 50, n_rep))  # posterior variances around 0.25
    df = pd.DataFrame({
        "study": "s", "prior": "p", "replicate": np.arange(n_rep), "param": "mu", "index": 0,
        "true_value": 2.0, "posterior_mean": est, "posterior_sd": sd, "rhat": 1.0,
        "n_divergent": 0, "status": "ok", "config_hash": "a",
    })
    s = summarize(df, "mu").iloc[0]
    empse = est.std(ddof=1)
    assert s.empse == pytest.approx(empse)
    assert s.bias_mcse == pytest.approx(empse / np.sqrt(n_rep))
    assert s.empse_mcse == pytest.approx(empse / np.sqrt(2 * (n_rep - 1)), rel=0.10)
    mod_se = np.sqrt(np.mean(sd**2))
    assert s.model_se_mcse == pytest.approx(
        np.sqrt(np.var(sd**2, ddof=1) / (4 * n_rep * mod_se**2)), rel=1e-9
    )
    # Table 6's MCSE of the relative error in ModSE (as a fraction, not a percentage)
    table6 = (mod_se / empse) * np.sqrt(
        np.var(sd**2, ddof=1) / (4 * n_rep * mod_se**4) + 1 / (2 * (n_rep - 1))
    )
    assert s.rel_se_error_mcse == pytest.approx(table6, rel=0.10)


def _study(rng, n_studies, n_rep, n_groups):
    """n_studies independent small studies (one cell each, told apart by their seed), each with
    two specs fitted on the same data: "flat" (the group's own estimate) and "shrunk" (pulled
    toward the replicate's mean, plus a shared and an own error), with random posterior sds, divergences,
    R-hats and a truth_cdf from the same normal posterior as the intervals."""
    shape = (n_studies, n_rep, n_groups)
    truth = rng.normal(size=shape)
    raw = truth + rng.normal(0, 0.7, shape)
    shrunk = (
        0.7 * raw + 0.3 * raw.mean(axis=2, keepdims=True)
        + rng.normal(0, 0.2, shape[:2])[..., None] + rng.normal(0, 0.15, shape)
    )
    frames = []
    for prior, mean, sd_level, p_div in (("flat", raw, 0.7, 0.0), ("shrunk", shrunk, 0.6, 0.2)):
        sd = sd_level * np.exp(rng.normal(0, 0.2, shape))
        div = np.repeat((rng.random(shape[:2]) < p_div).astype(int)[..., None], n_groups, axis=2)
        rhat = np.repeat(np.where(rng.random(shape[:2]) < 0.1, 1.02, 1.0)[..., None], n_groups, axis=2)
        cols = {
            "study": "s", "scenario": "normal_normal", "prior": prior,
            "seed": np.repeat(np.arange(n_studies), n_rep * n_groups),
            "replicate": np.tile(np.repeat(np.arange(n_rep), n_groups), n_studies),
            "param": "theta", "index": np.tile(np.arange(n_groups), n_studies * n_rep),
            "true_value": truth.ravel(), "raw_estimate": raw.ravel(), "posterior_mean": mean.ravel(),
            "posterior_sd": sd.ravel(), "truth_cdf": stats.norm.cdf((truth - mean) / sd).ravel(),
            "rhat": rhat.ravel(), "n_divergent": div.ravel(), "status": "ok",
            "config_hash": [f"{prior}{k}" for k in np.repeat(np.arange(n_studies), n_rep * n_groups)],
        }
        for lv in (50, 80, 90, 95):
            z = stats.norm.ppf(0.5 + lv / 200)
            cols[f"lower_{lv}"] = (mean - z * sd).ravel()
            cols[f"upper_{lv}"] = (mean + z * sd).ravel()
        frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True)


BRUTE_FORCE = [
    "bias", "empse", "mse", "rmse", "posterior_variance", "posterior_sd", "model_se",
    "rel_se_error", "coverage_50", "coverage_90", "coverage_95", "width_90", "shrinkage",
    "divergent_rate", "nonconverged_rate", "coverage_clean_90", "rmse_diff", "rmse_ratio",
    "mse_diff", "coverage_90_diff", "posterior_variance_diff", "shrinkage_diff",
]


def test_mcse_matches_the_spread_over_repeated_studies():
    """Brute force: repeat a study 600 times; the sd of each estimate across repeats is what its
    MCSE claims to estimate. Groups share an error within a replicate, so an MCSE that treated
    the 10 groups as independent would be ~1.6x too small, and a paired difference's MCSE taken
    as if the two specs were independent ~2x too large. Each claimed MCSE (root mean square over
    the 600 studies) must be within 15 % of the spread: the relative sd of an sd estimated from
    600 repeats is ~1/sqrt(1200) = 3 %, so 15 % is 5 sd; each MCSE itself comes from 40
    replicates (the jackknife and delta method are first-order, a few % off at R = 40)."""
    rng = np.random.default_rng(1)
    out = summarize(_study(rng, 600, 40, 10), reference="flat")
    out = out[out["prior"] == "shrunk"]
    assert len(out) == 600 and (out["n_replicates"] == 40).all()
    spread = out[BRUTE_FORCE].std(ddof=1)
    claimed = np.sqrt((out[[f"{m}_mcse" for m in BRUTE_FORCE]] ** 2).mean())
    ratio = pd.Series(claimed.to_numpy() / spread.to_numpy(), index=BRUTE_FORCE)
    assert ratio.between(0.85, 1.15).all(), ratio.round(3).to_dict()
    # and the measures aim at the truths of the simulation: shrinkage 0.3 exactly, coverage of
    # the normal intervals of "flat" (its sd matches its 0.7 error sd only on average) near 90 %
    assert abs(out["shrinkage"].mean() - 0.3) < 0.01


def test_shrinkage_is_the_pooling_factor():
    """A normal model with known tau and equal sigma_j shrinks every group by B = sigma^2 /
    (sigma^2 + tau^2) toward the same point: the measure recovers B exactly, 0 for the own
    estimates and 1 for one shared estimate."""
    rng = np.random.default_rng(4)
    raw = rng.normal(size=(5, 8))
    frames = []
    for name, mean in (("none", raw), ("b", 0.25 * 1.5 + 0.75 * raw), ("all", 0 * raw + 1.5)):
        frames.append(pd.DataFrame({
            "prior": name, "replicate": np.repeat(np.arange(5), 8), "param": "theta",
            "index": np.tile(np.arange(8), 5), "true_value": 0.0, "raw_estimate": raw.ravel(),
            "posterior_mean": mean.ravel(), "posterior_sd": 1.0, "rhat": np.nan, "n_divergent": 0,
            "status": "ok", "config_hash": name,
        }))
    out = summarize(pd.concat(frames), reference=None).set_index("prior")["shrinkage"]
    assert out["none"] == pytest.approx(0, abs=1e-12)
    assert out["b"] == pytest.approx(0.25)
    assert out["all"] == pytest.approx(1)


def test_paired_difference_is_the_difference_of_the_measures():
    """On the replicates both specs fitted, each ``_diff`` is the spec's measure minus the
    reference's, exactly; the reference gets none."""
    rng = np.random.default_rng(5)
    out = summarize(_study(rng, 2, 12, 5), reference="flat").set_index("config_hash")
    for k in range(2):
        spec, ref = out.loc[f"shrunk{k}"], out.loc[f"flat{k}"]
        for m in ("bias", "mse", "coverage_90", "posterior_variance", "width_90", "rmse"):
            assert spec[f"{m}_diff"] == pytest.approx(spec[m] - ref[m])
        assert spec["rmse_ratio"] == pytest.approx(spec["rmse"] / ref["rmse"])
        assert np.isnan(ref["rmse_diff"])


def test_coverage_curve_agrees_with_the_intervals():
    """The L % central interval of a posterior holds the truth exactly when its posterior CDF at
    the truth lies within L/2 of 1/2: from the same normal posteriors, the curve at 50/80/90/95 %
    equals the coverage of the stored intervals (up to ties at an interval's end, which have
    probability 0)."""
    rng = np.random.default_rng(6)
    df = _study(rng, 3, 20, 6)
    curves = coverage_curves(df, levels=(0.5, 0.8, 0.9, 0.95)).set_index(["config_hash", "level"])
    summary = summarize(df).set_index("config_hash")
    for h in summary.index:
        for lv in (50, 80, 90, 95):
            assert curves.loc[(h, lv / 100), "coverage"] == pytest.approx(summary.loc[h, f"coverage_{lv}"])
            assert curves.loc[(h, lv / 100), "coverage_mcse"] == pytest.approx(
                summary.loc[h, f"coverage_{lv}_mcse"]
            )


def test_diagnostics_rates_and_clean_coverage():
    """A fit is divergent if any transition diverged; the non-converged and flagged rates are
    shares of the family's estimands (one theta of 3 with R-hat > 1.01 in one fit of 6: 1/18);
    clean coverage counts only the fits with neither a divergence nor an R-hat > 1.01."""
    rng = np.random.default_rng(7)
    df = _rows(rng, 6, 3, 0.2, 0.3, 0.5)
    df.loc[df["replicate"] == 0, "n_divergent"] = 4
    df.loc[(df["replicate"] == 1) & (df["index"] == 2), "rhat"] = 1.05
    df.loc[df["replicate"].isin([0, 1]), "status"] = "divergent"
    s = summarize(df).iloc[0]
    assert s.divergent_rate == pytest.approx(1 / 6) and s.nonconverged_rate == pytest.approx(1 / 18)
    assert s.flagged_rate == pytest.approx(2 / 6) and s.n_clean == 4
    err = (df.posterior_mean - df.true_value).to_numpy().reshape(6, 3)
    cover = (np.abs(err) <= Z90 * 0.5).mean(axis=1)
    assert s.coverage_clean_90 == pytest.approx(cover[2:].mean())


def test_one_row_per_job():
    rng = np.random.default_rng(2)
    df = pd.concat([_rows(rng, 5, 3, 0.1, 0.2, 0.3, job="a"), _rows(rng, 5, 3, 0.1, 0.2, 0.3, job="b")])
    out = summarize(df)
    assert sorted(out["config_hash"]) == ["a", "b"] and (out["n_replicates"] == 5).all()


def test_figure_lines_never_merge_two_jobs():
    """A setting that varies within a spec (here tau_family) splits its line; a setting that only
    differs between specs (parameterization) leaves the plain spec names."""
    from analysis.figures import _label_lines

    table = pd.DataFrame({
        "prior": ["flat", "hierarchical", "hierarchical"],
        "prior_parameterization": ["centered", "noncentered", "noncentered"],
        "prior_tau_family": [None, "half_normal", "half_cauchy"],
        "tau": [1.0, 1.0, 1.0],
    })
    lines = _label_lines(table, list(table.columns))["line"].tolist()
    assert lines == ["flat", "hierarchical, tau_family=half_normal",
                     "hierarchical, tau_family=half_cauchy"]


def test_every_spec_keeps_a_colour_of_its_own_however_many_are_added():
    """Known specs keep their colours; any number of new ones get colours no other spec has."""
    from analysis import style

    new = [f"new_spec_{i}" for i in range(12)]
    colours = style.palette([*style.KNOWN_PRIORS, *new])
    assert len({tuple(c) for c in colours.values()}) == len(colours)
    alone = style.palette(["flat", "hierarchical"])
    assert alone["flat"] == colours["flat"] and alone["hierarchical"] == colours["hierarchical"]
    assert style.palette(["flat", "new_spec_0" + style.PARTIAL])["new_spec_0" + style.PARTIAL] \
        != colours["flat"]


def _exact_rows(z, n_fits, per_fit, param="theta"):
    """Rows whose fits miss their exact posterior means by ``z`` MCSEs (shape n_fits x per_fit)."""
    mcse = 0.01
    exact_mean = np.linspace(-1, 1, z.size)
    return pd.DataFrame({
        "prior": "p", "param": param, "config_hash": "job",
        "replicate": np.repeat(np.arange(n_fits), per_fit), "index": np.tile(np.arange(per_fit), n_fits),
        "exact_mean": exact_mean, "posterior_mean": exact_mean + mcse * z.ravel(), "mcse_mean": mcse,
        "exact_sd": 1.0, "posterior_sd": 1.0, "mcse_sd": 0.01, "true_value": 0.0,
    })


def test_sampler_error_intervals_resample_whole_fits():
    """z's 95 % intervals against their closed forms. One estimand per fit, z iid N(0, 1) over
    400 fits: the mean's interval is mean ± 1.96 sd / sqrt(400) and the sd's about
    sd ± 1.96 sd / sqrt(2 * 400) (normal data). Twenty estimands per fit sharing a fit-level error
    (z = a_f + e_fj, a_f ~ N(0, 0.8^2), e_fj ~ N(0, 0.6^2), 200 fits): the mean's sd is
    sqrt(0.64 / 200 + 0.36 / 4000) = 0.0574, so its interval is about ± 0.112; one that resampled
    estimands instead of fits would be about ± 1.96 / sqrt(4000) = ± 0.031 and fail. Tolerances:
    the half-widths are estimated from one sample (relative sd about 1 / sqrt(2 n) of the sd's
    own estimate: 3.5 % for 400 fits, 5 % for 200) plus the percentile's Monte Carlo error over
    2000 resamples (about 3 %), so 20 % is over 3 sds away."""
    from analysis.exact import sampler_error

    rng = np.random.default_rng(1)
    z = rng.normal(size=(400, 1))
    got = sampler_error(_exact_rows(z, 400, 1)).iloc[0]
    assert got["n"] == 400 and got["fits"] == 400
    np.testing.assert_allclose(got["z_mean"], z.mean(), atol=1e-9)
    half = 1.959964 * z.std(ddof=1) / np.sqrt(400)
    np.testing.assert_allclose((got["z_mean_hi"] - got["z_mean_lo"]) / 2, half, rtol=0.2)
    assert got["z_mean_lo"] < got["z_mean"] < got["z_mean_hi"]
    half_sd = 1.959964 * z.std(ddof=1) / np.sqrt(2 * 400)
    np.testing.assert_allclose((got["z_sd_hi"] - got["z_sd_lo"]) / 2, half_sd, rtol=0.2)

    shared = rng.normal(0, 0.8, size=(200, 1))
    z = shared + rng.normal(0, 0.6, size=(200, 20))
    got = sampler_error(_exact_rows(z, 200, 20)).iloc[0]
    assert got["n"] == 4000 and got["fits"] == 200
    fit_means = z.mean(axis=1)
    half = 1.959964 * fit_means.std(ddof=1) / np.sqrt(200)  # ~0.112
    np.testing.assert_allclose((got["z_mean_hi"] - got["z_mean_lo"]) / 2, half, rtol=0.2)
    assert (got["z_mean_hi"] - got["z_mean_lo"]) / 2 > 2.5 * 1.959964 / np.sqrt(4000)


def test_sampler_error_of_a_family_does_not_depend_on_the_others_and_is_empty_without_exact():
    """A family's intervals are the same whether or not other priors' rows are in the table (a
    report of more specs does not move them); no exact posterior, no rows."""
    from analysis.exact import sampler_error

    rng = np.random.default_rng(2)
    rows = _exact_rows(rng.normal(size=(50, 3)), 50, 3)
    other = _exact_rows(rng.normal(size=(40, 2)), 40, 2).assign(prior="another")
    alone = sampler_error(rows)
    beside = sampler_error(pd.concat([other, rows], ignore_index=True))
    pd.testing.assert_frame_equal(alone, beside[beside["prior"] == "p"].reset_index(drop=True))
    assert sampler_error(rows.assign(exact_mean=np.nan)).empty


def test_prior_effect_is_the_exact_posteriors_rmse_and_coverage():
    """RMSE and 90 % coverage of the exact posteriors, by hand: replicate-level mean squared
    errors and covered shares, their mean (RMSE = sqrt of it) and sd / sqrt(R) (MCSE; the RMSE's
    by the delta method)."""
    from analysis.exact import prior_effect

    rng = np.random.default_rng(3)
    rows = _exact_rows(rng.normal(size=(30, 4)), 30, 4).assign(
        tau=1.0, true_value=rng.normal(size=120))
    rows["exact_truth_cdf"] = rng.uniform(size=120)
    rows["lower_90"], rows["upper_90"] = rows["posterior_mean"] - 1.0, rows["posterior_mean"] + 1.0
    got = prior_effect(rows, ["tau"]).iloc[0]
    sq = ((rows["exact_mean"] - rows["true_value"]) ** 2).to_numpy().reshape(30, 4).mean(axis=1)
    cover = (np.abs(rows["exact_truth_cdf"] - 0.5) <= 0.45).to_numpy().reshape(30, 4).mean(axis=1)
    np.testing.assert_allclose(got["exact_rmse"], np.sqrt(sq.mean()))
    np.testing.assert_allclose(got["exact_rmse_mcse"], sq.std(ddof=1) / np.sqrt(30) / (2 * np.sqrt(sq.mean())))
    np.testing.assert_allclose(got["exact_coverage_90"], cover.mean())
    np.testing.assert_allclose(got["exact_coverage_90_mcse"], cover.std(ddof=1) / np.sqrt(30))
    assert got["n_replicates"] == 30
