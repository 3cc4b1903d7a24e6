"""runs.bench: runs end to end at a tiny size and reports every method and section, with the
agreement check on the same data sets and a complete JSON file; a bad setting is a one-line error
that computes and writes nothing; without PyMC, the pymc row is skipped with its message. Nothing
here asserts a timing: those depend on the machine."""

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runs import threads
from runs.bench import ENGINES, METHODS, common
from runs.bench import __main__ as bench
from runs.bench import pymc as pymc_method
from runs.bench import report as bench_report
from runs.checks import ConfigError

ROOT = Path(__file__).resolve().parent.parent
TINY = ["replicates=2", "baseline_replicates=1", "n_groups=4", "chains=2", "warmup=50", "draws=50"]
HEADERS = ("== platform ==", "== throughput ==", "== ratios", "== targets ==", "== agreement",
           "== cold", "== scaling ==", "== memory ==")
REPORT_KEYS = {"settings", "platform", "methods", "ratios", "targets", "agreement", "cold",
               "scaling", "memory", "elapsed_s"}
METHOD_KEYS = {"data_sets", "compile_s", "sampling_s", "s_per_fit", "fits_per_s",
               "fits_per_s_with_compile", "min_ess_median", "ess_per_s", "divergent_fits",
               "peak_rss_mb", "summaries", "summary_data_sets"}


def _options(*words):
    """The settings of ``python -m runs.bench <words>``: conf/bench.yaml composed and checked."""
    return bench.options(bench.compose(list(words)))


def _cli(*words) -> subprocess.CompletedProcess:
    """``python -m runs.bench <words>`` in a process of its own, from the repository's root."""
    return subprocess.run([sys.executable, "-m", "runs.bench", *words], cwd=ROOT,
                          capture_output=True, text=True, timeout=1200)


def _bench(*words) -> subprocess.CompletedProcess:
    done = _cli(*words)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture
def without_pymc(tmp_path, monkeypatch):
    """``import pymc`` fails in the bench's processes, as where PyMC is not installed."""
    stub = tmp_path / "no_pymc"
    stub.mkdir()
    (stub / "pymc.py").write_text("raise ImportError(\"No module named 'pymc'\")\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(stub), os.environ.get("PYTHONPATH")) if p))


def _check_throughput(report, methods):
    assert REPORT_KEYS <= set(report)
    for m in methods:
        r = report["methods"][m]
        assert METHOD_KEYS <= set(r), m
        assert all(_positive(r[k]) for k in ("s_per_fit", "fits_per_s", "fits_per_s_with_compile",
                                              "min_ess_median", "peak_rss_mb")), m
        assert r["compile_s"] >= 0 and r["sampling_s"] > 0
    for key, ratio in report["ratios"].items():
        assert _positive(ratio["sampling"]) and _positive(ratio["with_compile"]), key
    for m in methods:
        if m not in ENGINES:  # engine_processes fits engine's data sets with engine's keys
            agree = report["agreement"][f"engine/{m}"]
            # the same data sets on both sides: those that the peer fitted
            assert agree["data_sets"] == report["methods"][m]["summary_data_sets"]
            assert agree["data_sets"] == report["methods"]["engine"]["summary_data_sets"]
            n_parameters = report["settings"]["n_groups"] + 3  # theta, mu, tau, sigma
            assert agree["comparisons"] == len(agree["data_sets"]) * n_parameters
            assert math.isfinite(agree["max_abs_z"]) and math.isfinite(agree["max_abs_z_sd"])
            assert agree["bound"] > 0


def test_throughput_end_to_end_without_pymc(tmp_path, without_pymc):
    """The command line: engine, numpyro_loop and pymc only, to stay fast: every child compiles
    its programs afresh (one round: the slow test below runs two)."""
    out = tmp_path / "out"
    text = _bench(*TINY, "methods=[engine,numpyro_loop,pymc]", f"out={out}").stdout
    for header in HEADERS:
        assert header in text
    assert "pymc: skipped: PyMC is not installed" in text
    assert "engine/pymc: n/a (pymc skipped)" in text
    assert "max |z|" in text and "engine/numpyro_loop >= 100" in text
    report = json.loads((out / "bench.json").read_text())
    assert set(report["methods"]) == {"engine", "numpyro_loop", "pymc"}
    assert "skipped" in report["methods"]["pymc"]
    assert report["platform"]["pymc"] == "not installed"
    _check_throughput(report, ("engine", "numpyro_loop"))
    assert report["settings"]["rounds"] == 1
    assert set(report["ratios"]) == {"engine/numpyro_loop"}
    assert report["targets"]["engine/pymc"]["met"] is None
    assert report["targets"]["engine/numpyro_loop"]["met"] in (True, False)
    assert report["scaling"] is None and report["memory"] is None
    assert (out / "bench.md").read_text().startswith("Normal-normal hierarchical model")
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_engine_on_all_processes_fits_the_same_data_sets(tmp_path):
    """engine_processes next to engine on two processes: every data set fitted once, each fit
    engine's own (the same key and data), and a row in the table and in bench.md. Slow (about
    90 s: three processes compile afresh), so in ``make test-slow``; ``make bench`` runs
    engine_processes and prints the same check of its fits against engine's."""
    out = tmp_path / "out"
    text = _bench("replicates=4", "baseline_replicates=4", "n_groups=8", "chains=2", "warmup=20",
                  "draws=20", "methods=[engine,engine_processes]", "processes=2",
                  f"out={out}").stdout
    assert "engine_processes: hierbench engine.fit, 2 processes" in text
    assert "engine_processes vs engine: max |diff| of mu means on data sets 0..3: " in text
    assert ("engine_processes/numpyro_loop >= 100 (sampling fits/s, engine_processes on 2 "
            "processes): n/a") in text
    report = json.loads((out / "bench.json").read_text())
    _check_throughput(report, ("engine", "engine_processes"))
    a, a2 = report["methods"]["engine"], report["methods"]["engine_processes"]
    assert a2["data_sets"] == 4 == len(a2["mu_means"]) == len(a2["min_ess"])
    assert a2["processes"] == 2 and a2["shares"] == [[0, 2], [2, 4]]
    assert [p["data_sets"] for p in a2["per_process"]] == [2, 2]
    assert a2["peak_rss_mb"] == pytest.approx(sum(p["peak_rss_mb"] for p in a2["per_process"]))
    assert a["summary_data_sets"] == [0, 1, 2, 3]
    assert a2["mu_means"] == pytest.approx([s["mu"]["mean"][0] for s in a["summaries"]],
                                           rel=0, abs=1e-6)
    assert report["engine_processes_vs_engine"]["max_abs_diff_mu_mean"] <= 1e-6
    assert ("| engine_processes: hierbench engine.fit, 2 processes | 4 |"
            in (out / "bench.md").read_text())


def test_shares_are_contiguous_and_even():
    for n, k in ((100, 2), (7, 3), (4, 4), (10, 1)):
        shares = bench._shares(n, k)
        assert shares[0][0] == 0 and shares[-1][1] == n and len(shares) == k
        assert all(stop == start for (_, stop), (start, _) in zip(shares, shares[1:]))
        sizes = [stop - start for start, stop in shares]
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_rounds_interleave_the_methods_and_split_the_baseline_data_sets():
    """Two rounds: the methods forward then backward (a steady drift weighs on each alike), each
    round's peers on their own half of the baseline data sets; scaling once, at the end."""
    opts = _options("baseline_replicates=5", "rounds=2",
                    "methods=[scaling,pymc,engine,engine_processes,numpyro_loop]")
    steps = [(k, name, task.get("baseline_share")) for k, name, task in bench.plan(opts)]
    assert steps == [(0, "engine", [0, 2]), (0, "engine_processes", [0, 2]),
                     (0, "numpyro_loop", [0, 2]), (0, "pymc", [0, 2]),
                     (1, "pymc", [2, 5]), (1, "numpyro_loop", [2, 5]),
                     (1, "engine_processes", [2, 5]), (1, "engine", [2, 5]),
                     (0, "scaling", None)]
    # auto: two rounds where a peer runs on 2 or more data sets, else one
    assert _options("baseline_replicates=2")["rounds"] == 2
    assert _options("baseline_replicates=1")["rounds"] == 1
    assert _options("methods=[engine,engine_processes,scaling]")["rounds"] == 1
    with pytest.raises(ConfigError, match=r"^rounds=3 is not allowed: at most "
                       r"baseline_replicates=2: "):
        _options("baseline_replicates=2", "rounds=3")
    with pytest.raises(ConfigError, match=r"^rounds=2 is not allowed: 1 where "
                       r"methods=\[engine,memory\] has none of nutpie, nutpie_collapsed, stan, "
                       r"stan_collapsed, numpyro_loop, numpyro_reused, pymc"):
        _options("rounds=2", "methods=[engine,memory]")


def test_rounds_merge_into_one_row_per_method():
    """The engine fits the same data sets each round: its time is summed over rounds x data sets,
    its summaries are round 1's; a peer's fits are concatenated; numpyro_loop's compile (in every
    fit) is summed, another method's one-off compile averaged; the ratio of each round is
    reported."""
    a = [_fake_method(0.2, 10.0, from_draws=False, n=4), _fake_method(0.3, 12.0, from_draws=False,
                                                                      n=4)]
    b = [_fake_method(20.0, 3.0, compile_in_fit=True, n=1), _fake_method(30.0, 5.0,
                                                                         compile_in_fit=True, n=2)]
    b[1]["summary_data_sets"] = [1, 2]
    b[1]["divergent_fits"] = 1
    d = [_fake_method(4.0, 20.0, n=1), _fake_method(6.0, 30.0, n=2)]
    d[1]["summary_data_sets"] = [1, 2]
    merged = {m: bench.merge_rounds(m, parts)
              for m, parts in (("engine", a), ("numpyro_loop", b), ("pymc", d))}
    assert merged["engine"]["data_sets"] == 8 and merged["engine"]["rounds"] == 2
    assert merged["engine"]["s_per_fit"] == pytest.approx((0.2 * 4 + 0.3 * 4) / 8)
    assert merged["engine"]["compile_s"] == pytest.approx(11.0)
    assert merged["engine"]["summary_data_sets"] == [0, 1, 2, 3]
    assert len(merged["engine"]["min_ess"]) == 4
    assert merged["numpyro_loop"]["data_sets"] == 3
    assert merged["numpyro_loop"]["summary_data_sets"] == [0, 1, 2]
    assert merged["numpyro_loop"]["compile_s"] == 8.0
    assert merged["numpyro_loop"]["divergent_fits"] == 1
    # numpyro_loop's s/fit: its sampling and compile over its 3 fits
    assert merged["numpyro_loop"]["s_per_fit"] == pytest.approx((20.0 * 1 + 30.0 * 2 + 8.0) / 3)
    assert merged["pymc"]["compile_s"] == 25.0
    assert merged["pymc"]["s_per_fit"] == pytest.approx((4.0 + 12.0) / 3)
    assert len(merged["pymc"]["summaries"]) == 3 and len(merged["pymc"]["min_ess"]) == 3
    report = bench_report.build_report(
        _options("baseline_replicates=3", "replicates=4", "methods=[engine,numpyro_loop,pymc]"),
        merged, elapsed=1.0)
    assert report["ratios"]["engine/pymc"]["rounds"] == pytest.approx([4.0 / 0.2, 6.0 / 0.3])
    assert report["ratios"]["engine/numpyro_loop"]["rounds"] == pytest.approx(
        [20.0 / 0.2, 30.0 / 0.3])
    assert report["ratios"]["engine/pymc"]["sampling"] == pytest.approx(
        merged["pymc"]["s_per_fit"] / merged["engine"]["s_per_fit"])
    assert report["agreement"]["engine/pymc"]["data_sets"] == [0, 1, 2]
    assert "round by round 20, 20" in bench_report.render(report)
    # a failed or skipped round: the method's row says so
    assert bench.merge_rounds("pymc", [d[0], {"skipped": "no PyMC"}]) == {"skipped": "no PyMC"}
    assert bench.merge_rounds("numpyro_loop", [{"error": "E: x"}, b[1]]) == {"error": "E: x"}


def test_one_process_skips_engine_processes(monkeypatch):
    monkeypatch.setattr(bench.subprocess, "Popen", lambda *a, **k: pytest.fail("a child ran"))
    for words in (["processes=1"], ["processes=4", "replicates=1", "baseline_replicates=1"]):
        assert "skipped" in bench.run_processes(_options(*words))


def test_engine_processes_failed_child_is_reported_and_the_others_stopped(monkeypatch, capsys):
    """One engine_processes child fails: its error line is the result, as for any method, and its
    sibling (which would wait at the barrier for it) is stopped rather than waited for."""
    command = bench.common.child_command

    def failing(task, result_path):
        if task["process"] == 1:
            return [sys.executable, "-c", "import sys; print('warning: noise', file=sys.stderr); "
                    "raise ValueError('boom')"]
        return command(task, result_path)

    monkeypatch.setattr(bench.common, "child_command", failing)
    started = time.perf_counter()
    result = bench.run_processes(_options("replicates=4", "baseline_replicates=1", "processes=2"))
    assert result == {"error": "ValueError: boom"}
    assert time.perf_counter() - started < 60  # not the barrier's 15 minutes
    assert ("engine_processes (process 2 of 2, data sets 2..3) failed (exit 1): ValueError: boom"
            in capsys.readouterr().err)


@pytest.mark.slow
def test_every_section_end_to_end(tmp_path, without_pymc):
    """Every method and section at a tiny size (several minutes: 14 processes, each compiling
    afresh). Two data sets for the peers, so two rounds (auto): engine and engine_processes twice
    on both data sets, the peers on one data set a round; then scaling and memory, once."""
    out = tmp_path / "out"
    done = _bench(*TINY, "baseline_replicates=2", "scaling=[4,6]", "scaling_replicates=2",
                  "memory_groups=5", "cold_replicates=2", f"out={out}")
    assert ("[bench] round 2 of 2: numpyro_loop: NumPyro, new MCMC per data set ..."
            in done.stderr)
    assert "[bench] scaling ..." in done.stderr  # once, after the rounds
    text = done.stdout
    for header in HEADERS:
        assert header in text
    assert "group size, J=4" in text and "peak RSS" in text
    report = json.loads((out / "bench.json").read_text())
    _check_throughput(report, ("engine", "engine_processes", "numpyro_loop", "numpyro_reused"))
    assert report["settings"]["rounds"] == 2
    a, b = report["methods"]["engine"], report["methods"]["numpyro_loop"]
    assert a["data_sets"] == 4 and a["summary_data_sets"] == [0, 1] and len(a["min_ess"]) == 2
    assert b["data_sets"] == 2 and b["summary_data_sets"] == [0, 1]
    assert all(len(report["ratios"][k]["rounds"]) == 2
               for k in ("engine/numpyro_loop", "engine/numpyro_reused"))
    # engine against numpyro_loop on both data sets: 4 theta, mu, tau, sigma each
    assert report["agreement"]["engine/numpyro_loop"]["comparisons"] == 2 * (4 + 3)
    assert set(report["ratios"]) == {f"{e}/{m}" for e in ("engine", "engine_processes")
                                     for m in ("numpyro_loop", "numpyro_reused")}
    assert report["engine_processes_vs_engine"]["max_abs_diff_mu_mean"] <= 1e-6
    assert [r["n_groups"] for r in report["scaling"]["rows"]] == [4, 6]
    assert all(_positive(r["s_per_fit"]) for r in report["scaling"]["rows"])
    assert _positive(report["scaling"]["group_size"]["ratio"])
    memory = report["memory"]
    assert memory["n_groups"] == 5 and memory["replicates"] == memory["chunk"] == 2
    # the default form collapses theta and mu: tau and sigma sampled, 5 thetas drawn per draw
    assert _positive(memory["peak_rss_mb"]) and memory["n_latent"] == 2 + 5
    cold = report["cold"]["rows"]
    assert cold["engine"]["fits"] == 2 and _positive(cold["engine"]["ess_per_s"])


BAD = {  # a bad word: what its one-line error names (the key and value, then what is allowed)
    "bogus=1": "bogus='1' is not allowed: bogus is not a key of the bench config",
    "+bogus=1": "bogus=1 is not allowed: not a key of the bench config; its keys are replicates, "
                "baseline_replicates, rounds",
    "replicates=0": "replicates=0 is not allowed: a positive integer",
    "draws=many": "draws='many' is not allowed: a positive integer",
    "methods=[engine,x]": "methods='x' is not allowed: one of engine, engine_processes, nutpie, "
                          "nutpie_collapsed, stan, stan_collapsed, numpyro_loop, numpyro_reused, "
                          "pymc, cold, scaling, memory",
    "cold_peers=[engine]": "cold_peers='engine' is not allowed: one of nutpie",
    "devices=0": "devices=0 is not allowed: a positive integer, or null for the CPU count",
    "engine_parameterization=funnel": "engine_parameterization='funnel' is not allowed: one of "
                                      "auto, collapsed, noncentered, centered",
    "methods=[]": "methods=[] is not allowed: a list of one or more of engine",
    "scaling=8,": "'scaling=8,' is not allowed: a key=value word",
    "scaling=8,50": "scaling='8,50' is not allowed: one value: a list is written in brackets, "
                    "scaling=[8,50]",
    "scaling=[8,0]": "scaling=0 is not allowed: a list of positive integers",
    "warmup": "'warmup' is not allowed: a key=value word",
    "memory_replicates=some": "memory_replicates='some' is not allowed: chunk or a positive "
                              "integer",
    "memory_budget_gb=0": "memory_budget_gb=0 is not allowed: a number > 0",
    "rounds=0": "rounds=0 is not allowed: auto or a positive integer",
    "processes=0": "processes=0 is not allowed: a positive integer, or null for the CPU count",
    "processes=-2": "processes=-2 is not allowed: a positive integer, or null for the CPU count",
    "out=/proc/hierbench": "out='/proc/hierbench' is not allowed: a folder where files can be "
                           "written",
}


def test_bad_word_is_a_one_line_error_and_nothing_runs(tmp_path, monkeypatch, capsys):
    """Every setting checked before anything runs: in ``check``, before Hydra starts (so that not
    even Hydra's folder is written), one line naming the key, the value and what is allowed."""
    monkeypatch.setattr(bench, "run_child", lambda *a: pytest.fail("a method ran"))
    monkeypatch.setattr(bench, "run_processes", lambda *a: pytest.fail("a method ran"))
    out = tmp_path / "out"
    words = {**BAD, "replicates=2 baseline_replicates=5":
             "baseline_replicates=5 is not allowed: at most replicates=2: nutpie, "
             "nutpie_collapsed, stan, stan_collapsed, numpyro_loop, numpyro_reused, pymc fit the "
             "first baseline_replicates of the engine's data sets"}
    for word, named in words.items():
        monkeypatch.setattr(sys, "argv", ["runs/bench/__main__.py", f"out={out}", *word.split()])
        with pytest.raises(SystemExit) as error:
            bench.cli()
        message = str(error.value.code)
        assert "\n" not in message and message.startswith(f"error: {named}"), (word, message)
    assert not out.exists() and not capsys.readouterr().out
    # the command line itself: one line on stderr, exit status 1, nothing written
    done = _cli("replicates=0", f"out={out}")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == "error: replicates=0 is not allowed: a positive integer\n"
    assert not out.exists()


def test_help_lists_every_setting():
    done = _cli("--help")
    assert done.returncode == 0 and "python -m runs.bench [key=value ...]" in done.stdout
    for key in bench.KEYS:
        assert f"\n{key}:" in done.stdout, key
    assert "powered by Hydra" not in done.stdout


def test_settings_default_and_resolved():
    """conf/bench.yaml's defaults; processes null: the CPU count; methods in the order they run,
    whatever the order given."""
    opts = _options()
    assert {k: opts[k] for k in ("replicates", "baseline_replicates", "rounds", "n_groups",
                                 "chains", "warmup", "draws", "scaling", "scaling_replicates",
                                 "memory_groups", "memory_replicates", "memory_budget_gb",
                                 "pymc_cores", "out")} == dict(
        replicates=100, baseline_replicates=10, rounds=2, n_groups=8, chains=4, warmup=500,
        draws=1000, scaling=[8, 50, 200, 1000], scaling_replicates=2, memory_groups=1000,
        memory_replicates="chunk", memory_budget_gb=2.0, pymc_cores=1, out="results/bench")
    assert opts["processes"] == (os.cpu_count() or 1)
    assert opts["devices"] == threads.usable_cpus()
    assert opts["engine_parameterization"] == "auto" and opts["cold_replicates"] == 100
    assert opts["cold_peers"] == ["nutpie", "nutpie_collapsed", "stan_collapsed"]
    assert opts["methods"] == ["engine", "engine_processes", "nutpie", "nutpie_collapsed", "stan",
                               "stan_collapsed", "numpyro_loop", "numpyro_reused", "pymc", "cold",
                               "scaling", "memory"]
    assert _options("methods=[memory,pymc,engine]", "processes=3")["methods"] == [
        "engine", "pymc", "memory"]
    assert _options("processes=3")["processes"] == 3


def test_pymc_missing_skips_its_row(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymc", None)  # import pymc raises ImportError
    assert pymc_method.missing().startswith("PyMC is not installed")
    assert METHODS["nutpie"].missing().startswith("nutpie or PyMC is not installed")
    assert METHODS["nutpie_collapsed"].missing() == METHODS["nutpie"].missing()


def test_stan_missing_skips_its_rows(monkeypatch):
    monkeypatch.setitem(sys.modules, "stan", None)
    for name in ("stan", "stan_collapsed"):
        assert METHODS[name].missing().startswith("PyStan is not installed"), name


def test_collapsed_peers_draw_mu_and_theta_from_their_exact_conditionals():
    """The collapsed peers' mu and theta (``written.exact_draws``) against the conjugate normal
    conditionals computed here by precision weighting (BDA3 5.4), for fixed tau and sigma: the
    sample mean and variance of 200,000 draws within 5 standard errors (the variance's error
    is sqrt(2 / N) of it, the mean's sqrt(var / N))."""
    import numpy as np

    from runs.bench import written

    one = {"ybar": np.array([0.5, -1.0, 2.0]), "n": np.array([10.0, 5.0, 20.0])}
    tau, sigma, n_draws = 0.8, 1.5, 200_000
    draws = written.exact_draws(np.full((1, n_draws), tau), np.full((1, n_draws), sigma), one,
                                np.random.default_rng(1))
    v = tau**2 + sigma**2 / one["n"]
    mu_var = 1.0 / (1.0 / common.HYPER["mu_scale"] ** 2 + (1.0 / v).sum())
    mu_mean = mu_var * (one["ybar"] / v).sum()
    w = 1.0 / (1.0 / tau**2 + one["n"] / sigma**2)
    shrink = w / tau**2  # theta_j's weight on mu
    theta_mean = w * (mu_mean / tau**2 + one["n"] * one["ybar"] / sigma**2)
    theta_var = w + shrink**2 * mu_var
    for x, mean, var in ((draws[0][0], mu_mean, mu_var), (draws[1][0], theta_mean, theta_var)):
        assert np.all(np.abs(x.mean(axis=0) - mean) < 5 * np.sqrt(var / n_draws))
        assert np.all(np.abs(x.var(axis=0) / var - 1) < 5 * np.sqrt(2 / n_draws))


def _fake_method(s_per_fit, compile_s, compile_in_fit=False, from_draws=True, n=2):
    summaries = [{site: {"mean": [0.1] * p, "sd": [1.0] * p, "ess": [400.0] * p,
                         **({"mcse_sd": [0.03] * p} if from_draws else {})}
                  for site, p in (("theta", 4), ("mu", 1), ("tau", 1), ("sigma", 1))}] * n
    return {"data_sets": n, "compile_s": compile_s, "sampling_s": s_per_fit * n,
            "compile_in_fit": compile_in_fit, "s_per_fit": s_per_fit, "min_ess": [300.0] * n,
            "min_ess_median": 300.0, "divergent_fits": 0, "summaries": summaries,
            "summary_data_sets": list(range(n)), "notes": [], "peak_rss_mb": 500.0,
            "devices": "[CpuDevice(id=0)]", "platform": "cpu", "compilation_cache": None}


def test_report_of_every_section_from_child_results():
    """The report's arithmetic and text, from results as the children return them (no fitting)."""
    opts = _options("n_groups=4", "processes=2")
    results = {
        "engine": _fake_method(0.2, 15.0, from_draws=False),  # the engine returns no draws
        "engine_processes": {**_fake_method(0.1, 20.0, from_draws=False), "summaries": [],
                             "summary_data_sets": [], "processes": 2, "mu_means": [0.1] * 100,
                             "notes": ["2 processes at once"]},
        "numpyro_loop": _fake_method(20.0, 15.0, compile_in_fit=True),
        "numpyro_reused": _fake_method(10.0, 1.0),
        "pymc": {**_fake_method(4.0, 12.0), "pymc_version": "5.0"},
        "scaling": {"rows": [{"n_groups": j, "replicates": 4, "compile_s": 15.0, "sampling_s": 1.0,
                              "s_per_fit": 0.25, "leapfrog_per_fit": 7e4, "min_ess_median": 900.0}
                             for j in (8, 50)],
                    "group_size": {"n_groups": 8, "replicates": 4,
                                   "s_per_fit": {"10": 0.25, "1000": 0.3},
                                   "leapfrog_per_fit": {"10": 7e4, "1000": 7e4}, "ratio": 1.2,
                                   "passed": True}},
        "memory": {"n_groups": 1000, "replicates": 15, "full_replicates": 100, "n_latent": 1003,
                   "bytes_per_replicate": 128_384_000, "budget_bytes": 2e9, "chunk": 15,
                   "compile_s": 30.0, "sampling_s": 90.0, "s_per_fit": 6.0, "leapfrog_per_fit": 1e5,
                   "min_ess_median": 800.0, "peak_rss_mb": 2500.0},
    }
    report = bench_report.build_report(opts, results, elapsed=100.0)
    assert report["ratios"]["engine/numpyro_loop"]["sampling"] == pytest.approx(100.0)
    assert report["ratios"]["engine/pymc"]["sampling"] == pytest.approx(20.0)
    assert report["targets"]["engine/numpyro_loop"]["met"]
    assert not report["targets"]["engine/pymc"]["met"]
    assert report["ratios"]["engine_processes/numpyro_loop"]["sampling"] == pytest.approx(200.0)
    assert report["targets"]["engine_processes/pymc"]["value"] == pytest.approx(40.0)
    assert set(report["agreement"]) == {"engine/numpyro_loop", "engine/numpyro_reused",
                                        "engine/pymc"}
    assert report["engine_processes_vs_engine"] == {"data_sets": [0, 1],
                                                    "max_abs_diff_mu_mean": 0.0}
    # with compile: the cost of `replicates` data sets, each one-off compile included once
    assert report["ratios"]["engine/numpyro_reused"]["with_compile"] == pytest.approx(
        (100 / (15 + 100 * 0.2)) / (100 / (1 + 100 * 10.0)))
    assert all(a["passed"] and a["max_abs_z"] == 0 == a["max_abs_z_sd"]
               for a in report["agreement"].values())
    text = bench_report.render(report)
    for header in HEADERS:
        assert header in text
    assert "-> NOT met" in text and "ratio 1.20 -> PASS" in text
    assert (f"engine/numpyro_loop >= 100 (sampling fits/s, engine on {opts['devices']} CPU "
            "device(s) of one process): 100 -> met") in text
    assert ("engine_processes/numpyro_loop >= 100 (sampling fits/s, engine_processes on 2 "
            "processes): 200 -> met") in text
    assert ("engine_processes/pymc >= 50 (sampling fits/s, engine_processes on 2 processes): 40 "
            "-> NOT met") in text
    assert "engine_processes/numpyro_reused: ESS/s 100; fits/s 100 without compile" in text
    assert "engine_processes vs engine: max |diff|" in text
    assert "peak RSS 2500 MB -> PASS" in text and "chunk of 15 data sets" in text
    md = bench_report.markdown(report)
    assert "| engine: hierbench engine.fit | 2 |" in md and "| 50 | 4 |" in md
    assert "| engine_processes: hierbench engine.fit, 2 processes | 2 |" in md
    assert "- engine_processes: 2 processes" in md
    json.dumps(common.json_safe(report), allow_nan=False)
