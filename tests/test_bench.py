"""runs.bench: runs end to end at a tiny size and reports every section, with the agreement check on
the same data sets and a complete JSON file; a bad option is a one-line error that computes and
writes nothing; without PyMC, method (d) is skipped with its message. Nothing here asserts a
timing: those depend on the machine."""

import json
import math
import os
import sys
import time

import pytest

from runs import bench

TINY = ["replicates=2", "baseline_replicates=1", "n_groups=4", "chains=2", "warmup=50", "draws=50"]
HEADERS = ("== platform ==", "== throughput ==", "== ratios", "== targets ==", "== agreement",
           "== scaling ==", "== memory ==")
REPORT_KEYS = {"settings", "platform", "methods", "ratios", "targets", "agreement", "scaling",
               "memory", "elapsed_s"}
METHOD_KEYS = {"data_sets", "compile_s", "sampling_s", "s_per_fit", "fits_per_s",
               "fits_per_s_with_compile", "min_ess_median", "ess_per_s", "divergent_fits",
               "peak_rss_mb", "summaries", "summary_data_sets"}


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture
def without_pymc(tmp_path, monkeypatch):
    """``import pymc`` fails in the bench's child processes, as where PyMC is not installed."""
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
        if m not in bench.ENGINES:  # (a2) fits (a)'s data sets with (a)'s keys: a2_vs_a
            agree = report["agreement"][f"a/{m}"]
            # the same data sets on both sides: those that (b), (c), (d) fitted
            assert agree["data_sets"] == report["methods"][m]["summary_data_sets"]
            assert agree["data_sets"] == report["methods"]["a"]["summary_data_sets"]
            n_parameters = report["settings"]["n_groups"] + 3  # theta, mu, tau, sigma
            assert agree["comparisons"] == len(agree["data_sets"]) * n_parameters
            assert math.isfinite(agree["max_abs_z"]) and math.isfinite(agree["max_abs_z_sd"])
            assert agree["bound"] > 0


def test_throughput_end_to_end_without_pymc(tmp_path, without_pymc, capsys):
    """(a), (b) and (d) only, to stay fast: every child compiles its programs afresh (one round:
    the slow test below runs two)."""
    out = tmp_path / "out"
    bench.main([*TINY, "sections=a,b,d", f"out={out}"])
    text = capsys.readouterr().out
    for header in HEADERS:
        assert header in text
    assert "d: skipped: PyMC is not installed" in text
    assert "(a)/(d): n/a (d skipped)" in text
    assert "max |z|" in text and "(a)/(b) >= 100" in text
    report = json.loads((out / "bench.json").read_text())
    assert set(report["methods"]) == {"a", "b", "d"}
    assert "skipped" in report["methods"]["d"] and report["platform"]["pymc"] == "not installed"
    _check_throughput(report, ("a", "b"))
    assert report["settings"]["rounds"] == 1
    assert set(report["ratios"]) == {"a/b"}
    assert report["targets"]["a/d"]["met"] is None
    assert report["targets"]["a/b"]["met"] in (True, False)
    assert report["scaling"] is None and report["memory"] is None
    assert (out / "bench.md").read_text().startswith("Normal-normal hierarchical model")
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_engine_on_all_processes_fits_the_same_data_sets(tmp_path, capsys):
    """(a2) next to (a) on two processes: every data set fitted once, each fit (a)'s own (the same
    key and data), and a row in the table and in bench.md. Slow (about 90 s: three processes
    compile afresh), so in ``make test-slow``; ``make bench`` runs (a2) and prints the same
    check of its fits against (a)'s."""
    out = tmp_path / "out"
    bench.main(["replicates=4", "baseline_replicates=4", "n_groups=8", "chains=2", "warmup=20",
                "draws=20", "sections=a,a2", "processes=2", f"out={out}"])
    text = capsys.readouterr().out
    assert "(a2) hierbench engine.fit, 2 processes" in text
    assert "a2 vs a: max |diff| of mu means on data sets 0..3: " in text
    assert "(a2)/(b) >= 100 (sampling fits/s, (a2) on 2 processes): n/a" in text
    report = json.loads((out / "bench.json").read_text())
    _check_throughput(report, ("a", "a2"))
    a, a2 = report["methods"]["a"], report["methods"]["a2"]
    assert a2["data_sets"] == 4 == len(a2["mu_means"]) == len(a2["min_ess"])
    assert a2["processes"] == 2 and a2["shares"] == [[0, 2], [2, 4]]
    assert [p["data_sets"] for p in a2["per_process"]] == [2, 2]
    assert a2["peak_rss_mb"] == pytest.approx(sum(p["peak_rss_mb"] for p in a2["per_process"]))
    assert a["summary_data_sets"] == [0, 1, 2, 3]
    assert a2["mu_means"] == pytest.approx([s["mu"]["mean"][0] for s in a["summaries"]],
                                           rel=0, abs=1e-6)
    assert report["a2_vs_a"]["max_abs_diff_mu_mean"] <= 1e-6
    assert "| (a2) hierbench engine.fit, 2 processes | 4 |" in (out / "bench.md").read_text()


def test_shares_are_contiguous_and_even():
    for n, k in ((100, 2), (7, 3), (4, 4), (10, 1)):
        shares = bench._shares(n, k)
        assert shares[0][0] == 0 and shares[-1][1] == n and len(shares) == k
        assert all(stop == start for (_, stop), (start, _) in zip(shares, shares[1:]))
        sizes = [stop - start for start, stop in shares]
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_rounds_interleave_the_methods_and_split_the_baseline_data_sets():
    """Two rounds: the methods forward then backward (a steady drift weighs on each alike), each
    round's baselines on their own half of the baseline data sets; scaling once, at the end."""
    opts = bench.parse(["baseline_replicates=5", "rounds=2", "sections=a,a2,b,d,scaling"])
    steps = [(k, section, task.get("baseline_share")) for k, section, task in bench.plan(opts)]
    assert steps == [(0, "a", [0, 2]), (0, "a2", [0, 2]), (0, "b", [0, 2]), (0, "d", [0, 2]),
                     (1, "d", [2, 5]), (1, "b", [2, 5]), (1, "a2", [2, 5]), (1, "a", [2, 5]),
                     (0, "scaling", None)]
    # auto: two rounds where a baseline runs on 2 or more data sets, else one
    assert bench.parse(["baseline_replicates=2"])["rounds"] == 2
    assert bench.parse(["baseline_replicates=1"])["rounds"] == 1
    assert bench.parse(["sections=a,a2,scaling"])["rounds"] == 1
    with pytest.raises(SystemExit, match=r"^rounds=3 is more than baseline_replicates=2: "):
        bench.parse(["baseline_replicates=2", "rounds=3"])
    with pytest.raises(SystemExit, match=r"^rounds=2 needs one of \(b\), \(c\), \(d\) in "
                       r"sections \(sections=a,memory\)"):
        bench.parse(["rounds=2", "sections=a,memory"])


def test_rounds_merge_into_one_row_per_method():
    """The engine fits the same data sets each round: its time is summed over rounds x data sets,
    its summaries are round 1's; a baseline's fits are concatenated; (b)'s compile (in every fit)
    is summed, another method's one-off compile averaged; the ratio of each round is reported."""
    a = [_fake_method(0.2, 10.0, from_draws=False, n=4), _fake_method(0.3, 12.0, from_draws=False,
                                                                      n=4)]
    b = [_fake_method(20.0, 3.0, compile_in_fit=True, n=1), _fake_method(30.0, 5.0,
                                                                         compile_in_fit=True, n=2)]
    b[1]["summary_data_sets"] = [1, 2]
    b[1]["divergent_fits"] = 1
    d = [_fake_method(4.0, 20.0, n=1), _fake_method(6.0, 30.0, n=2)]
    d[1]["summary_data_sets"] = [1, 2]
    merged = {m: bench.merge_rounds(m, parts) for m, parts in (("a", a), ("b", b), ("d", d))}
    assert merged["a"]["data_sets"] == 8 and merged["a"]["rounds"] == 2
    assert merged["a"]["s_per_fit"] == pytest.approx((0.2 * 4 + 0.3 * 4) / 8)
    assert merged["a"]["compile_s"] == pytest.approx(11.0)
    assert merged["a"]["summary_data_sets"] == [0, 1, 2, 3] and len(merged["a"]["min_ess"]) == 4
    assert merged["b"]["data_sets"] == 3 and merged["b"]["summary_data_sets"] == [0, 1, 2]
    assert merged["b"]["compile_s"] == 8.0 and merged["b"]["divergent_fits"] == 1
    # (b)'s s/fit: its sampling and compile over its 3 fits
    assert merged["b"]["s_per_fit"] == pytest.approx((20.0 * 1 + 30.0 * 2 + 8.0) / 3)
    assert merged["d"]["compile_s"] == 25.0
    assert merged["d"]["s_per_fit"] == pytest.approx((4.0 + 12.0) / 3)
    assert len(merged["d"]["summaries"]) == 3 and len(merged["d"]["min_ess"]) == 3
    report = bench.build_report(bench.parse(["baseline_replicates=3", "replicates=4",
                                             "sections=a,b,d"]), merged, elapsed=1.0)
    assert report["ratios"]["a/d"]["rounds"] == pytest.approx([4.0 / 0.2, 6.0 / 0.3])
    assert report["ratios"]["a/b"]["rounds"] == pytest.approx([20.0 / 0.2, 30.0 / 0.3])
    assert report["ratios"]["a/d"]["sampling"] == pytest.approx(
        merged["d"]["s_per_fit"] / merged["a"]["s_per_fit"])
    assert report["agreement"]["a/d"]["data_sets"] == [0, 1, 2]
    assert "round by round 20, 20" in bench.render(report)
    # a failed or skipped round: the method's row says so
    assert bench.merge_rounds("d", [d[0], {"skipped": "no PyMC"}]) == {"skipped": "no PyMC"}
    assert bench.merge_rounds("b", [{"error": "E: x"}, b[1]]) == {"error": "E: x"}


def test_one_process_skips_a2(monkeypatch):
    monkeypatch.setattr(bench.subprocess, "Popen", lambda *a, **k: pytest.fail("a child ran"))
    for words in (["processes=1"], ["processes=4", "replicates=1", "baseline_replicates=1"]):
        assert "skipped" in bench.run_processes(bench.parse(words))


def test_a2_failed_child_is_reported_and_the_others_stopped(monkeypatch, capsys):
    """One (a2) child fails: its error line is the result, as for any section, and its sibling (which
    would wait at the barrier for it) is stopped rather than waited for."""
    command = bench._child_command

    def failing(task, result_path):
        if task["process"] == 1:
            return [sys.executable, "-c", "import sys; print('warning: noise', file=sys.stderr); "
                    "raise ValueError('boom')"]
        return command(task, result_path)

    monkeypatch.setattr(bench, "_child_command", failing)
    started = time.perf_counter()
    result = bench.run_processes(bench.parse(["replicates=4", "baseline_replicates=1", "processes=2"]))
    assert result == {"error": "ValueError: boom"}
    assert time.perf_counter() - started < 60  # not the barrier's 15 minutes
    assert "a2 (process 2 of 2, data sets 2..3) failed (exit 1): ValueError: boom" in (
        capsys.readouterr().err)


@pytest.mark.slow
def test_every_section_end_to_end(tmp_path, without_pymc, capsys):
    """All sections at a tiny size (several minutes: 14 processes, each compiling afresh). Two
    data sets for (b)-(d), so two rounds (auto): (a) and (a2) twice on both data sets, (b)-(d)
    on one data set a round; then scaling and memory, once."""
    out = tmp_path / "out"
    bench.main([*TINY, "baseline_replicates=2", "scaling=4,6", "scaling_replicates=2",
                "memory_groups=5", f"out={out}"])
    captured = capsys.readouterr()
    assert "[bench] round 2 of 2: (b) NumPyro, new MCMC per data set ..." in captured.err
    assert "[bench] scaling ..." in captured.err  # once, after the rounds
    text = captured.out
    for header in HEADERS:
        assert header in text
    assert "group size, J=4" in text and "peak RSS" in text
    report = json.loads((out / "bench.json").read_text())
    _check_throughput(report, ("a", "a2", "b", "c"))
    assert report["settings"]["rounds"] == 2
    a, b = report["methods"]["a"], report["methods"]["b"]
    assert a["data_sets"] == 4 and a["summary_data_sets"] == [0, 1] and len(a["min_ess"]) == 2
    assert b["data_sets"] == 2 and b["summary_data_sets"] == [0, 1]
    assert all(len(report["ratios"][k]["rounds"]) == 2 for k in ("a/b", "a/c"))
    # (a) against (b) on both data sets: 4 theta, mu, tau, sigma each
    assert report["agreement"]["a/b"]["comparisons"] == 2 * (4 + 3)
    assert set(report["ratios"]) == {"a/b", "a/c", "a2/b", "a2/c"}
    assert report["a2_vs_a"]["max_abs_diff_mu_mean"] <= 1e-6
    assert [r["n_groups"] for r in report["scaling"]["rows"]] == [4, 6]
    assert all(_positive(r["s_per_fit"]) for r in report["scaling"]["rows"])
    assert _positive(report["scaling"]["group_size"]["ratio"])
    memory = report["memory"]
    assert memory["n_groups"] == 5 and memory["replicates"] == memory["chunk"] == 2
    assert _positive(memory["peak_rss_mb"]) and memory["n_latent"] == 5 + 3


def test_bad_word_is_a_one_line_error_and_nothing_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "run_child", lambda *a: pytest.fail("a section ran"))
    out = tmp_path / "out"
    for word in ("bogus=1", "replicates=0", "draws=many", "sections=a,x", "scaling=8,", "warmup",
                 "memory_replicates=some", "processes=0", "processes=-2"):
        with pytest.raises(SystemExit) as error:
            bench.main([f"out={out}", word])
        message = str(error.value.code)
        assert "\n" not in message and repr(word) in message
        assert "allowed:" in message and "baseline_replicates=<positive integer>" in message
        assert "processes=<positive integer>" in message
    with pytest.raises(SystemExit, match="baseline_replicates=5 is more than replicates=2"):
        bench.main(["replicates=2", "baseline_replicates=5", f"out={out}"])
    assert not out.exists()


def test_pymc_missing_skips_method_d(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pymc", None)  # import pymc raises ImportError
    monkeypatch.setenv("PYTENSOR_FLAGS", "")
    result = bench.fit_pymc(dict(bench.parse(TINY), section="d"))
    assert result["skipped"].startswith("PyMC is not installed")


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
    opts = bench.parse(["n_groups=4", "processes=2"])
    results = {
        "a": _fake_method(0.2, 15.0, from_draws=False),  # the engine returns no draws
        "a2": {**_fake_method(0.1, 20.0, from_draws=False), "summaries": [],
               "summary_data_sets": [], "processes": 2, "mu_means": [0.1] * 100,
               "notes": ["2 processes at once"]},
        "b": _fake_method(20.0, 15.0, compile_in_fit=True),
        "c": _fake_method(10.0, 1.0),
        "d": {**_fake_method(4.0, 12.0), "pymc_version": "5.0"},
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
    report = bench.build_report(opts, results, elapsed=100.0)
    assert report["ratios"]["a/b"]["sampling"] == pytest.approx(100.0)
    assert report["ratios"]["a/d"]["sampling"] == pytest.approx(20.0)
    assert report["targets"]["a/b"]["met"] and not report["targets"]["a/d"]["met"]
    assert report["ratios"]["a2/b"]["sampling"] == pytest.approx(200.0)
    assert report["targets"]["a2/d"]["value"] == pytest.approx(40.0)
    assert set(report["agreement"]) == {"a/b", "a/c", "a/d"}
    assert report["a2_vs_a"] == {"data_sets": [0, 1], "max_abs_diff_mu_mean": 0.0}
    # with compile: the cost of `replicates` data sets, each one-off compile included once
    assert report["ratios"]["a/c"]["with_compile"] == pytest.approx(
        (100 / (15 + 100 * 0.2)) / (100 / (1 + 100 * 10.0)))
    assert all(a["passed"] and a["max_abs_z"] == 0 == a["max_abs_z_sd"]
               for a in report["agreement"].values())
    text = bench.render(report)
    for header in HEADERS:
        assert header in text
    assert "-> NOT met" in text and "ratio 1.20 -> PASS" in text
    assert "(a)/(b) >= 100 (sampling fits/s, (a) on one process): 100 -> met" in text
    assert "(a2)/(b) >= 100 (sampling fits/s, (a2) on 2 processes): 200 -> met" in text
    assert "(a2)/(d) >= 50 (sampling fits/s, (a2) on 2 processes): 40 -> NOT met" in text
    assert "(a2)/(c): 100 without compile" in text and "a2 vs a: max |diff|" in text
    assert "peak RSS 2500 MB -> PASS" in text and "chunk of 15 data sets" in text
    md = bench.markdown(report)
    assert "| (a) hierbench engine.fit | 2 |" in md and "| 50 | 4 |" in md
    assert "| (a2) hierbench engine.fit, 2 processes | 2 |" in md and "- (a2): 2 processes" in md
    json.dumps(bench._json_safe(report), allow_nan=False)
