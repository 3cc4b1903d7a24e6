"""runs.bench: runs end to end at a tiny size and reports every section, with the agreement check on
the same data sets and a complete JSON file; a bad option is a one-line error that computes and
writes nothing; without PyMC, method (d) is skipped with its message. Nothing here asserts a
timing: those depend on the machine."""

import json
import math
import os

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
        if m != "a":
            agree = report["agreement"][f"a/{m}"]
            # the same data sets on both sides: those that (b), (c), (d) fitted
            assert agree["data_sets"] == report["methods"][m]["summary_data_sets"]
            assert agree["data_sets"] == report["methods"]["a"]["summary_data_sets"]
            n_parameters = report["settings"]["n_groups"] + 3  # theta, mu, tau, sigma
            assert agree["comparisons"] == len(agree["data_sets"]) * n_parameters
            assert math.isfinite(agree["max_abs_z"]) and math.isfinite(agree["max_abs_z_sd"])
            assert agree["bound"] > 0


def test_throughput_end_to_end_without_pymc(tmp_path, without_pymc, capsys):
    """(a), (b) and (d) only, to stay fast: every child compiles its programs afresh."""
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
    assert set(report["ratios"]) == {"a/b"}
    assert report["targets"]["a/d"]["met"] is None
    assert report["targets"]["a/b"]["met"] in (True, False)
    assert report["scaling"] is None and report["memory"] is None
    assert (out / "bench.md").read_text().startswith("Normal-normal hierarchical model")
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_every_section_end_to_end(tmp_path, without_pymc, capsys):
    """All sections at a tiny size (a few minutes: six processes, each compiling afresh)."""
    out = tmp_path / "out"
    bench.main([*TINY, "scaling=4,6", "scaling_replicates=2", "memory_groups=5", f"out={out}"])
    text = capsys.readouterr().out
    for header in HEADERS:
        assert header in text
    assert "group size, J=4" in text and "peak RSS" in text
    report = json.loads((out / "bench.json").read_text())
    _check_throughput(report, ("a", "b", "c"))
    assert set(report["ratios"]) == {"a/b", "a/c"}
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
                 "memory_replicates=some"):
        with pytest.raises(SystemExit) as error:
            bench.main([f"out={out}", word])
        message = str(error.value.code)
        assert "\n" not in message and repr(word) in message
        assert "allowed:" in message and "baseline_replicates=<positive integer>" in message
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
    opts = bench.parse(["n_groups=4"])
    results = {
        "a": _fake_method(0.2, 15.0, from_draws=False),  # the engine returns no draws
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
    # with compile: the cost of `replicates` data sets, each one-off compile included once
    assert report["ratios"]["a/c"]["with_compile"] == pytest.approx(
        (100 / (15 + 100 * 0.2)) / (100 / (1 + 100 * 10.0)))
    assert all(a["passed"] and a["max_abs_z"] == 0 == a["max_abs_z_sd"]
               for a in report["agreement"].values())
    text = bench.render(report)
    for header in HEADERS:
        assert header in text
    assert "-> NOT met" in text and "ratio 1.20 -> PASS" in text
    assert "peak RSS 2500 MB -> PASS" in text and "chunk of 15 data sets" in text
    md = bench.markdown(report)
    assert "| (a) hierbench engine.fit | 2 |" in md and "| 50 | 4 |" in md
    json.dumps(bench._json_safe(report), allow_nan=False)
