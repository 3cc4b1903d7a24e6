"""``python -m runs.bench``: fits per second of hierbench's engine against the usual ways of fitting
the same model, on one machine, in one run.

The reference workload: normal-normal data (sigma unknown, sufficient statistics ``ybar``, ``n``,
``ss``), the non-centered hierarchical model (mu ~ N(0, 10), tau ~ half-normal(5), sigma ~
half-normal(5)), J = 8 groups of 10, 4 chains x (500 warmup + 1000 draws), 100 data sets. Methods:

  (a) hierbench's ``engine.fit``: every data set and chain in one compiled program; compile time is
      the first call less a second call with the same shapes;
  (a2) the same fits of the same data sets on all cores, as a study runs (one worker process per
      core): the data sets split into ``processes`` contiguous shares (default: the CPU count;
      ``processes=1`` skips the row), each share fitted by (a)'s two calls in its own process, all
      processes at once; the timed calls start together once every process has compiled, and the
      time is from the first start to the last end; each data set keeps (a)'s key, so its fit is
      (a)'s (the report compares the means of mu on the data sets (a) summarizes);
  (b) the way most people write it: a new ``numpyro.infer.MCMC(NUTS(model), ...)`` per data set,
      the model a plain NumPyro function of the data (``LocScaleReparam``), NumPyro's default
      chain method (sequential chains on one device); it compiles in every fit, so that is part
      of its cost;
  (c) one NumPyro ``MCMC`` object reused with ``jit_model_args=True``; its one-off compile is its
      first run less a second run on the same data set and key;
  (d) PyMC, the model built once with ``pm.Data`` containers and ``pm.set_data`` per data set, 4
      chains on ``pymc_cores`` processes (default 1); needs the ``bench`` extra (``make bench``
      installs it), skipped with a message where PyMC is not installed.

(b), (c) and (d) take seconds per fit, so they fit the first ``baseline_replicates`` of (a)'s data
sets; every number is also reported per fit. Then: the ratios of (a)'s and (a2)'s fits per second
to theirs, the targets (a)/(b) >= 100 and (a)/(d) >= 50 for (a) and for (a2), a check that the
methods agree on the posterior means and sds of the same data sets within Monte Carlo error, the
cost per fit of (a) as J grows and as the group size grows, and the peak memory of (a) on J = 1000
groups.

The methods run in ``rounds`` (default ``auto``: 2 where (b), (c) or (d) run on at least 2 data
sets, else 1), so that a machine whose speed drifts during the run (a shared or virtual one)
slows every method alike: each round runs (a) and (a2) on all ``replicates`` data sets again (the
same fits: the same keys) and (b), (c), (d) on the round's share of the baseline data sets, the
methods in the order of ``sections`` in even rounds and reversed in odd ones (a, a2, b, c, d, then
d, c, b, a2, a), so that a drift that is steady over the run weighs on each method's mean time
alike. A method's s/fit is its time over all its fits of every round; the ratios are those of
these pooled figures, and the ratio of each round is reported beside them, to show the drift.

Every method runs in its own child process (``python -m runs.bench --child ...``), so its peak RSS
is its own ((a2)'s is the sum over its processes). No JAX persistent compilation cache is used
unless ``JAX_COMPILATION_CACHE_DIR`` is set (the run says so); PyMC compiles into a fresh PyTensor
folder, so both compile times are cold.
The report is printed and written to ``<out>/bench.json`` and ``<out>/bench.md``.

Options, as ``key=value`` words (see ``OPTIONS``), for example
``python -m runs.bench sections=a,b baseline_replicates=5`` or ``memory_replicates=100``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from importlib import metadata
from pathlib import Path

import runs  # noqa: F401  (XLA threads: set before JAX starts, here and in every child)
from analysis import files
from runs import threads

HYPER = dict(mu_family="normal", mu_loc=0.0, mu_scale=10.0, tau_family="half_normal", tau_df=3.0,
             tau_scale=5.0, sigma_scale=5.0)
DATA = dict(group_size=10, tau=1.0, sigma=1.0, mu=0.0)  # normal_normal scenario, data seed 1
SEED = 1
SITES = ("theta", "mu", "tau", "sigma")
METHODS = {
    "a": "(a) hierbench engine.fit",
    "a2": "(a2) hierbench engine.fit, {processes} processes",  # see _label
    "b": "(b) NumPyro, new MCMC per data set",
    "c": "(c) NumPyro, one MCMC, jit_model_args",
    "d": "(d) PyMC, compiled once, pm.set_data",
}
SECTIONS = (*METHODS, "scaling", "memory")
TARGETS = {"b": 100.0, "d": 50.0}  # the throughput targets for (a)/(b) and (a)/(d), fits/s
ENGINES = ("a", "a2")  # the engine's rows: (a) in one process, (a2) in `processes` at once
BARRIER_TIMEOUT_S = 900.0  # an (a2) process waits at most this long for the others to compile
ALPHA = 0.01  # family-wise error rate of the agreement check
GROUP_SIZES = (10, 1000)  # the group-size check: same J, 100x the observations per group
# The group-size check passes when s/fit at 1000 per group is at most twice that at 10. The program
# is the same (shapes do not depend on the group size), but the posterior is not quite: sigma is
# pinned down 10x more tightly, so NUTS takes somewhat different trees (and a row of lanes waits
# for the slowest chain of its data set). A likelihood of the raw observations would cost
# about 100x more per gradient at 100x the observations.
GROUP_SIZE_SLACK = 2.0
MEMORY_LIMIT_MB = 4000.0  # peak RSS of (a) on memory_groups groups: at most 4 GB


# ---------------------------------------------------------------------------------- options

def _positive_int(text):
    if not text.isdigit() or int(text) < 1:
        raise ValueError
    return int(text)


def _positive_float(text):
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError
    return value


def _int_list(text):
    return tuple(_positive_int(v) for v in text.split(","))


def _sections(text):
    chosen = tuple(text.split(","))
    if not chosen or any(s not in SECTIONS for s in chosen):
        raise ValueError
    return tuple(s for s in SECTIONS if s in chosen)


def _chunk_or_int(text):
    return "chunk" if text == "chunk" else _positive_int(text)


def _auto_or_int(text):
    return "auto" if text == "auto" else _positive_int(text)


OPTIONS = {  # name: (default, parser, what is allowed)
    "replicates": (100, _positive_int, "<positive integer>"),
    "baseline_replicates": (10, _positive_int, "<positive integer>"),
    "rounds": ("auto", _auto_or_int, "<auto or positive integer>"),
    "n_groups": (8, _positive_int, "<positive integer>"),
    "chains": (4, _positive_int, "<positive integer>"),
    "warmup": (500, _positive_int, "<positive integer>"),
    "draws": (1000, _positive_int, "<positive integer>"),
    "sections": (SECTIONS, _sections, "<comma list of " + ",".join(SECTIONS) + ">"),
    "scaling": ((8, 50, 200, 1000), _int_list, "<comma list of positive integers>"),
    "scaling_replicates": (2, _positive_int, "<positive integer>"),
    "memory_groups": (1000, _positive_int, "<positive integer>"),
    "memory_replicates": ("chunk", _chunk_or_int, "<chunk or positive integer>"),
    "memory_budget_gb": (2.0, _positive_float, "<positive number>"),
    "pymc_cores": (1, _positive_int, "<positive integer>"),
    "processes": (os.cpu_count() or 1, _positive_int, "<positive integer>"),
    "out": ("results/bench", str, "<folder>"),
}


def parse(argv) -> dict:
    """Options from ``key=value`` words; a word not understood is a one-line SystemExit."""
    opts = {name: default for name, (default, _, _) in OPTIONS.items()}
    for word in argv:
        key, eq, value = word.partition("=")
        try:
            if key not in OPTIONS or not eq or not value:
                raise ValueError
            opts[key] = OPTIONS[key][1](value)
        except ValueError:
            allowed = ", ".join(f"{k}={what}" for k, (_, _, what) in OPTIONS.items())
            raise SystemExit(f"argument {word!r} not understood; allowed: {allowed}")
    if opts["baseline_replicates"] > opts["replicates"]:
        raise SystemExit(f"baseline_replicates={opts['baseline_replicates']} is more than "
                         f"replicates={opts['replicates']}: (b), (c), (d) fit some of (a)'s "
                         "data sets")
    baselines = [m for m in opts["sections"] if m in METHODS and m not in ENGINES]
    if opts["rounds"] == "auto":
        opts["rounds"] = 2 if baselines and opts["baseline_replicates"] >= 2 else 1
    elif opts["rounds"] > 1 and not baselines:
        raise SystemExit(f"rounds={opts['rounds']} needs one of (b), (c), (d) in sections "
                         f"(sections={','.join(opts['sections'])}): rounds interleave the engine "
                         "with them")
    elif opts["rounds"] > opts["baseline_replicates"]:
        raise SystemExit(f"rounds={opts['rounds']} is more than baseline_replicates="
                         f"{opts['baseline_replicates']}: each round fits at least one baseline "
                         "data set")
    return opts


# ------------------------------------------------------------------------------ the script

def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--child"]:
        return _child(argv[1], argv[2])
    opts = parse(argv)
    started = time.perf_counter()
    parts = {}
    for _, section, task in plan(opts):
        run = run_processes if section == "a2" else functools.partial(run_child, section)
        parts.setdefault(section, []).append(run(task))
    results = {section: merge_rounds(section, parts[section]) if section in METHODS
               else parts[section][0] for section in opts["sections"]}
    report = build_report(opts, results, time.perf_counter() - started)
    text = render(report)
    print(text)
    out = Path(opts["out"])
    files.write_atomic(out / "bench.json", json.dumps(_json_safe(report), indent=2) + "\n")
    files.write_atomic(out / "bench.md", markdown(report))
    print(f"\nwritten: {out / 'bench.json'}, {out / 'bench.md'}")
    if any("error" in r for r in results.values()):
        raise SystemExit(1)


def plan(opts: dict) -> list:
    """(round, section, task options) of every child run, in the order they run: the methods in
    ``rounds`` rounds, in the order of ``sections`` in even rounds and reversed in odd ones, each
    round's (b), (c), (d) on its own share of the baseline data sets (``baseline_share``); then
    scaling and memory, once."""
    methods = [m for m in opts["sections"] if m in METHODS]
    shares = _shares(opts["baseline_replicates"], opts["rounds"])
    runs = []
    for k in range(opts["rounds"]):
        for m in methods if k % 2 == 0 else methods[::-1]:
            runs.append((k, m, {**opts, "round": k, "baseline_share": list(shares[k])}))
    runs += [(0, s, dict(opts)) for s in opts["sections"] if s not in METHODS]
    return runs


def merge_rounds(section: str, parts: list) -> dict:
    """One method's result over its rounds. The engine's rows fit the same data sets in every
    round: their fits, summaries and ESS are round 0's, their time the sum over the rounds for
    ``rounds`` x ``replicates`` fits; (b), (c), (d) fit another share in each round: their fits
    are concatenated. A one-off compile (every method but (b)'s) is the mean over the rounds;
    (b)'s compile is part of every fit, so it is summed. A failed or skipped round makes the
    method failed or skipped."""
    failed = [p for p in parts if "error" in p] or [p for p in parts if "skipped" in p]
    if failed or len(parts) == 1:
        return (failed or parts)[0]
    first, k = parts[0], len(parts)
    merged = {**first, "rounds": k, "peak_rss_mb": max(p["peak_rss_mb"] for p in parts),
              "round_s_per_fit": [p["s_per_fit"] for p in parts]}
    sampling = sum(p["sampling_s"] for p in parts)
    merged["divergent_fits"] = sum(p["divergent_fits"] for p in parts)
    if section in ENGINES:
        merged.update(data_sets=first["data_sets"] * k, sampling_s=sampling,
                      compile_s=statistics.mean(p["compile_s"] for p in parts),
                      s_per_fit=sampling / (first["data_sets"] * k))
        merged["notes"] = [*first.get("notes", []),
                           f"{k} rounds, each fitting the same {first['data_sets']} data sets "
                           "(the same keys: the same fits); summaries and ESS of round 1"]
        return merged
    n = sum(p["data_sets"] for p in parts)
    compile_s = (sum if first["compile_in_fit"] else statistics.mean)(
        p["compile_s"] for p in parts)
    merged.update(
        data_sets=n, sampling_s=sampling, compile_s=compile_s,
        s_per_fit=(sampling + (compile_s if first["compile_in_fit"] else 0.0)) / n,
        min_ess=[e for p in parts for e in p["min_ess"]],
        summaries=[s for p in parts for s in p["summaries"]],
        summary_data_sets=[r for p in parts for r in p["summary_data_sets"]],
        notes=sorted({note for p in parts for note in p.get("notes", [])}))
    merged["min_ess_median"] = float(statistics.median(merged["min_ess"]))
    return merged


def run_child(section: str, opts: dict) -> dict:
    """Run one section in its own process; its result, or {"error": ...} if it failed."""
    print(f"[bench] {_round(opts)}{_label(section, opts)} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hierbench-bench-") as tmp:
        result_path = Path(tmp) / "result.json"
        command = _child_command({**opts, "section": section}, result_path)
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0 or not result_path.exists():
            return _child_failed(section, proc.returncode, proc.stderr)
        result = json.loads(result_path.read_text())
    print(f"[bench] {section} done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return result


def run_processes(opts: dict) -> dict:
    """(a2): data sets 0..R-1 in ``processes`` contiguous shares, each fitted in its own child
    process (``fit_engine_share``), all started at once; one result for them all, or {"error": ...}
    with the first failed child's error (the others are stopped)."""
    n, k = opts["replicates"], _n_processes(opts)
    if k == 1:
        return {"skipped": f"processes={opts['processes']}, replicates={n}: one process, as (a)"}
    print(f"[bench] {_round(opts)}{_label('a2', opts)} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    shares = _shares(n, k)
    with tempfile.TemporaryDirectory(prefix="hierbench-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "barrier").mkdir()
        results = [tmp / f"result-{i}.json" for i in range(k)]
        logs = [tmp / f"stderr-{i}.txt" for i in range(k)]
        procs = []
        try:
            for i, share in enumerate(shares):
                task = {**opts, "section": "a2", "share": list(share), "process": i,
                        "n_processes": k, "barrier": str(tmp / "barrier")}
                with open(logs[i], "w") as log:  # a file, not a pipe: no child blocks on it
                    procs.append(subprocess.Popen(_child_command(task, results[i]),
                                                  stdout=subprocess.DEVNULL, stderr=log))
            while True:
                codes = [proc.poll() for proc in procs]
                failed = [i for i, c in enumerate(codes) if c not in (None, 0)]
                if failed or None not in codes:
                    break
                time.sleep(0.1)
        finally:  # a failed child: the others would wait at the barrier, so stop them
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
                proc.wait()
        failed = failed or [i for i in range(k) if not results[i].exists()]
        if failed:
            i = failed[0]
            return _child_failed(f"a2 (process {i + 1} of {k}, data sets {shares[i][0]}.."
                                 f"{shares[i][1] - 1})", codes[i], logs[i].read_text())
        parts = [json.loads(path.read_text()) for path in results]
    print(f"[bench] a2 done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    start, end = min(p["start"] for p in parts), max(p["end"] for p in parts)
    peaks = ", ".join(f"{p['peak_rss_mb']:.0f}" for p in parts)
    result = _method_result(
        n, compile_s=max(p["compile_s"] for p in parts), sampling_s=end - start,
        compile_in_fit=False, min_ess=[e for p in parts for e in p["min_ess"]],
        n_divergent=[d for p in parts for d in p["n_divergent"]], summaries=[],
        notes=[f"{k} processes at once, shares of {'/'.join(str(p['data_sets']) for p in parts)} "
               "data sets; sampling s: from the first process's timed call starting to the last "
               "one's ending; compile s: the slowest process's; peak RSS: the sum of the "
               f"{k} processes' peaks ({peaks} MB)"])
    result.update(processes=k, shares=[list(share) for share in shares],
                  mu_means=[m for p in parts for m in p["mu_means"]],
                  per_process=[{key: p[key] for key in ("data_sets", "start", "end", "compile_s",
                                                        "peak_rss_mb")} for p in parts],
                  peak_rss_mb=sum(p["peak_rss_mb"] for p in parts),
                  **{key: parts[0][key] for key in ("devices", "platform", "compilation_cache")})
    return result


def _child_command(task: dict, result_path) -> list:
    return [sys.executable, "-m", "runs.bench", "--child", json.dumps(task), str(result_path)]


def _child_failed(section: str, returncode, stderr: str) -> dict:
    """{"error": the exception's line of a failed child's stderr}, said on stderr too."""
    lines = stderr.strip().splitlines() or ["(no output)"]
    # the exception's line of the traceback, not a warning printed after it
    errors = [line for line in lines if re.match(r"[\w.]+(Error|Exception)\b", line)]
    last = (errors or lines)[-1]
    print(f"[bench] {section} failed (exit {returncode}): {last}", file=sys.stderr)
    return {"error": last}


def _n_processes(opts) -> int:
    """(a2)'s processes: ``processes``, but no more than there are data sets."""
    return min(opts["processes"], opts["replicates"])


def _shares(n: int, k: int) -> list:
    """Data sets 0..n-1 as k contiguous [start, stop) shares whose sizes differ by at most 1."""
    return [(i * n // k, (i + 1) * n // k) for i in range(k)]


def _round(opts: dict) -> str:
    """'round k of K: ' where the methods run in more than one round."""
    rounds = opts.get("rounds", 1)
    return f"round {opts['round'] + 1} of {rounds}: " if rounds > 1 and "round" in opts else ""


def _label(m: str, settings: dict) -> str:
    """A method's name in the report, (a2)'s with its number of processes."""
    return METHODS.get(m, m).format(processes=_n_processes(settings))


def _child(task_json: str, result_path: str) -> None:
    task = json.loads(task_json)
    work = {"a": fit_engine, "a2": fit_engine_share, "b": fit_numpyro_loop,
            "c": fit_numpyro_reused, "d": fit_pymc, "scaling": scaling,
            "memory": memory}[task["section"]]
    result = work(task)
    if "skipped" not in result:
        result.update(_process_info())
    Path(result_path).write_text(json.dumps(_json_safe(result)))


# --------------------------------------------------------------------------------- methods

def fit_engine(task) -> dict:
    """(a): all data sets in one engine.fit call, twice: the first compiles, the second does not."""
    import jax

    n = task["replicates"]
    data = _data(task, n)
    keys = jax.random.split(jax.random.key(0), n)
    compiling = _engine_fit(task, data, keys)[1]  # the first call compiles
    fit, timed = _engine_fit(task, data, keys)
    timings = [compiling, timed]
    summaries = [{site: {"mean": fit.sites[site].mean[r], "sd": fit.sites[site].sd[r],
                         "ess": fit.sites[site].ess_bulk[r], "mcse_sd": fit.sites[site].mcse_sd[r]}
                  for site in SITES}
                 for r in range(task["baseline_replicates"])]
    return _method_result(n, compile_s=timings[0] - timings[1], sampling_s=timings[1],
                          compile_in_fit=False, min_ess=_engine_min_ess(fit),
                          n_divergent=fit.n_divergent, summaries=summaries)


def fit_engine_share(task) -> dict:
    """One process of (a2): (a)'s two calls on data sets ``task["share"]`` (start, stop) with (a)'s
    data and keys for them; between the calls, a wait until every process of (a2) has compiled, so
    that the timed calls run at once. Wall-clock start and end, to line up with the others'."""
    import jax

    n, (lo, hi) = task["replicates"], task["share"]
    data = {k: v[lo:hi] for k, v in _data(task, n).items()}
    keys = jax.random.split(jax.random.key(0), n)[lo:hi]  # (a)'s keys of these data sets
    compiling = _engine_fit(task, data, keys)[1]  # the first call compiles
    _barrier(Path(task["barrier"]), task["process"], task["n_processes"])
    start = time.time()
    fit, timed = _engine_fit(task, data, keys)
    end = time.time()
    return {"data_sets": hi - lo, "start": start, "end": end, "compile_s": compiling - timed,
            "min_ess": _engine_min_ess(fit), "n_divergent": fit.n_divergent.tolist(),
            "mu_means": fit.sites["mu"].mean[:, 0].tolist()}


def _barrier(folder: Path, index: int, count: int, timeout_s: float = BARRIER_TIMEOUT_S) -> None:
    """Say that process ``index`` is ready (a file ``ready-<index>`` in ``folder``) and wait until
    all ``count`` processes are; TimeoutError after ``timeout_s`` seconds."""
    (folder / f"ready-{index}").touch()
    deadline = time.monotonic() + timeout_s
    while (ready := sum((folder / f"ready-{i}").exists() for i in range(count))) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"(a2) process {index + 1} of {count}: only {ready} of {count} "
                               f"processes had compiled after {timeout_s:.0f} s of waiting")
        time.sleep(0.01)


def numpyro_model(ybar, n, ss):
    """The reference model of (b) and (c), non-centered by ``LocScaleReparam``, with the
    engine's likelihood of the sufficient statistics (``models.likelihood.observe``: sigma's
    half-normal prior and one factor without the data's constants), so that every method
    samples the same density."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer.reparam import LocScaleReparam

    from models.likelihood import observe

    mu = numpyro.sample("mu", dist.Normal(HYPER["mu_loc"], HYPER["mu_scale"]))
    tau = numpyro.sample("tau", dist.HalfNormal(HYPER["tau_scale"]))
    with numpyro.plate("groups", ybar.shape[-1]):
        with numpyro.handlers.reparam(config={"theta": LocScaleReparam(centered=0)}):
            theta = numpyro.sample("theta", dist.Normal(mu, tau))
    observe(theta, {"ybar": ybar, "n": n, "ss": ss}, HYPER["sigma_scale"])


def fit_numpyro_loop(task) -> dict:
    """(b): a new MCMC object per data set, so every fit traces and compiles again."""
    lo, hi = _baseline_share(task)
    data = _data(task, hi)
    fits, seconds, notes = [], [], set()
    with _CompileClock() as clock:
        for r in range(lo, hi):
            start = time.perf_counter()
            mcmc = _numpyro_mcmc(task, jit_model_args=False, notes=notes)
            fits.append(_numpyro_run(mcmc, data, r))
            seconds.append(time.perf_counter() - start)
    return _baseline_result(fits, compile_s=clock.seconds, sampling_s=sum(seconds) - clock.seconds,
                            compile_in_fit=True, notes=notes, first=lo)


def fit_numpyro_reused(task) -> dict:
    """(c): one MCMC object with jit_model_args=True, run on the share's first data set first (the
    one-off compile is that run less a second run on the same data set and key), then on every
    data set of the share."""
    lo, hi = _baseline_share(task)
    n = hi - lo
    data = _data(task, hi)
    notes = set()
    mcmc = _numpyro_mcmc(task, jit_model_args=True, notes=notes)
    start = time.perf_counter()
    _numpyro_run(mcmc, data, lo)
    first = time.perf_counter() - start
    fits, seconds = [], []
    with _CompileClock() as clock:
        for r in range(lo, hi):
            start = time.perf_counter()
            fits.append(_numpyro_run(mcmc, data, r))
            seconds.append(time.perf_counter() - start)
    if clock.seconds > 0.05 * sum(seconds):
        notes.add(f"JAX compiled again in every run: {clock.seconds / n:.2f} s of its "
                  f"{sum(seconds) / n:.2f} s per fit (part of its sampling time)")
    return _baseline_result(fits, compile_s=max(first - seconds[0], 0.0), sampling_s=sum(seconds),
                            compile_in_fit=False, notes=notes, first=lo)


def fit_pymc(task) -> dict:
    """(d): the PyMC model built once on the share's first data set, then ``pm.set_data`` +
    ``pm.sample`` per data set; the one-off compile is the first fit less a second fit of the same
    data set and seed."""
    compiledir = tempfile.mkdtemp(prefix="hierbench-pytensor-")  # cold, like JAX without a cache
    os.environ["PYTENSOR_FLAGS"] = ",".join(
        f for f in (f"compiledir={compiledir}", os.environ.get("PYTENSOR_FLAGS")) if f)
    try:
        import pymc as pm
        import pytensor.tensor as pt
    except ImportError as error:
        shutil.rmtree(compiledir, ignore_errors=True)
        return {"skipped": f"PyMC is not installed ({error}); `make bench` installs it "
                           "(uv sync --extra bench)"}
    logging.getLogger("pymc").setLevel(logging.ERROR)  # "Sampling 4 chains ..." per fit
    lo, hi = _baseline_share(task)
    data = _data(task, hi)
    as_float = {k: v.astype("float64") for k, v in data.items()}

    def sample(r):
        start = time.perf_counter()
        with model:
            pm.set_data({k: v[r] for k, v in as_float.items()})
            idata = pm.sample(draws=task["draws"], tune=task["warmup"], chains=task["chains"],
                              cores=task["pymc_cores"], random_seed=r, progressbar=False,
                              compute_convergence_checks=False)
        fit = {site: idata.posterior[site].values for site in SITES}
        fit["diverging"] = idata.sample_stats["diverging"].values
        return fit, time.perf_counter() - start

    try:
        start = time.perf_counter()
        with pm.Model() as model:
            ybar = pm.Data("ybar", as_float["ybar"][lo])
            n_obs = pm.Data("n", as_float["n"][lo])
            ss = pm.Data("ss", as_float["ss"][lo])
            mu = pm.Normal("mu", HYPER["mu_loc"], HYPER["mu_scale"])
            tau = pm.HalfNormal("tau", HYPER["tau_scale"])
            sigma = pm.HalfNormal("sigma", HYPER["sigma_scale"])
            eta = pm.Normal("eta", 0.0, 1.0, shape=task["n_groups"])
            theta = pm.Deterministic("theta", mu + tau * eta)
            # the engine's likelihood of the sufficient statistics (models.likelihood.observe)
            squares = pt.sum(n_obs * (ybar - theta) ** 2) + pt.sum(ss)
            pm.Potential("ybar_ss", -pt.sum(n_obs) * pt.log(sigma) - squares / (2.0 * sigma**2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sample(lo)
            first = time.perf_counter() - start
            fits, seconds = zip(*(sample(r) for r in range(lo, hi)))
    finally:
        shutil.rmtree(compiledir, ignore_errors=True)
    notes = {f"pm.sample(cores={task['pymc_cores']}): chains run "
             + ("one after another in this process" if task["pymc_cores"] == 1
                else f"in {task['pymc_cores']} worker processes (peak RSS: this process only)")}
    result = _baseline_result(list(fits), compile_s=max(first - seconds[0], 0.0),
                              sampling_s=sum(seconds), compile_in_fit=False, notes=notes,
                              first=lo)
    result["pymc_version"] = pm.__version__
    return result


# ------------------------------------------------------------------------ scaling and memory

def scaling(task) -> dict:
    """s/fit of (a) for each J, as for (a): a first call compiles, a second one is timed; then the
    group-size check at the first J (8), which reuses that program."""
    import jax

    n = task["scaling_replicates"]
    keys = jax.random.split(jax.random.key(0), n)
    rows, check = [], None
    for i, n_groups in enumerate(task["scaling"]):
        data = _data(task, n, n_groups=n_groups)
        compiling = _engine_fit(task, data, keys)[1]  # the first call compiles
        fit, timed = _engine_fit(task, data, keys)
        timings = [compiling, timed]
        rows.append({"n_groups": n_groups, "replicates": n, "compile_s": timings[0] - timings[1],
                     "sampling_s": timings[1], "s_per_fit": timings[1] / n,
                     "leapfrog_per_fit": float(fit.n_leapfrog.mean()),
                     "min_ess_median": float(statistics.median(_engine_min_ess(fit)))})
        if i == 0:
            check = _group_size_check(task, data, keys)
    return {"rows": rows, "group_size": check}


def _group_size_check(task, data, keys) -> dict:
    """The same data sets seen with 100x the observations per group and 10x the noise sd: every
    group mean keeps its standard error, so the posterior of theta, mu, tau keeps its shape (sigma's
    narrows) and the compiled program is the same; only the likelihood's group size changes.
    Each fitted twice, alternating, the faster of the two kept."""
    factor = GROUP_SIZES[1] // GROUP_SIZES[0]
    n_obs = data["n"]
    ss = data["ss"] * factor * (n_obs * factor - 1) / (n_obs - 1)
    bigger = {"ybar": data["ybar"], "n": n_obs * factor, "ss": ss.astype(data["ss"].dtype)}
    seconds = {size: [] for size in GROUP_SIZES}
    leapfrog = {}
    for _ in range(2):
        for size, d in zip(GROUP_SIZES, (data, bigger)):
            fit, took = _engine_fit(task, d, keys)
            seconds[size].append(took)
            leapfrog[size] = float(fit.n_leapfrog.mean())
    per_fit = {size: min(s) / len(n_obs) for size, s in seconds.items()}
    ratio = per_fit[GROUP_SIZES[1]] / per_fit[GROUP_SIZES[0]]
    return {"n_groups": int(n_obs.shape[1]), "replicates": len(n_obs),
            "s_per_fit": {str(k): v for k, v in per_fit.items()},
            "leapfrog_per_fit": {str(k): v for k, v in leapfrog.items()},
            "ratio": ratio, "passed": ratio <= GROUP_SIZE_SLACK}


def memory(task) -> dict:
    """(a) on memory_groups groups; ``memory_replicates=chunk`` fits one chunk of the engine's size
    for 100 data sets (chunks run one after another, so the peak is one chunk's)."""
    import jax
    import numpy as np
    from numpyro.infer.util import initialize_model

    from models import engine

    n_groups = task["memory_groups"]
    example = _data(task, 1, n_groups=n_groups)
    info = initialize_model(jax.random.key(0), engine.build_model("hierarchical", "noncentered"),
                            model_kwargs={"data": {k: v[0] for k, v in example.items()}, **HYPER})
    n_latent = sum(int(np.prod(np.shape(v))) for v in info.param_info.z.values())
    per_replicate = engine.bytes_per_replicate(n_latent, _inference(task))
    cap = engine.BATCH  # the engine's cap on data sets at once

    def chunk_of(n_rep):  # as engine.fit chunks n_rep data sets
        return int(max(1, min(n_rep, _budget(task) // per_replicate, cap)))

    full = task["replicates"]  # the reference: 100
    n = chunk_of(full) if task["memory_replicates"] == "chunk" else task["memory_replicates"]
    row = _timed_engine_fit(task, _data(task, n, n_groups=n_groups))
    return {"n_groups": n_groups, "replicates": n, "full_replicates": full, "n_latent": n_latent,
            "bytes_per_replicate": per_replicate, "budget_bytes": _budget(task), "batch_cap": cap,
            "chunk": chunk_of(n), **row}


def _engine_fit(task, data, keys):
    """(fit, wall seconds) of one engine.fit call on the reference model and settings."""
    from models import engine

    start = time.perf_counter()
    fit = engine.fit("hierarchical", data, keys, HYPER, parameterization="noncentered",
                     inference=_inference(task), memory_budget_bytes=_budget(task))
    return fit, time.perf_counter() - start


def _timed_engine_fit(task, data) -> dict:
    """One engine.fit call: compile seconds from JAX's compile events, the rest is sampling."""
    import jax

    from models import engine

    n = len(data["n"])
    with _CompileClock() as clock:
        start = time.perf_counter()
        fit = engine.fit("hierarchical", data, jax.random.split(jax.random.key(0), n), HYPER,
                         parameterization="noncentered", inference=_inference(task),
                         memory_budget_bytes=_budget(task))
        total = time.perf_counter() - start
    sampling = total - clock.seconds
    return {"compile_s": clock.seconds, "sampling_s": sampling, "s_per_fit": sampling / n,
            "leapfrog_per_fit": float(fit.n_leapfrog.mean()),
            "min_ess_median": float(statistics.median(_engine_min_ess(fit)))}


# --------------------------------------------------------------------------------- helpers

def _data(task, n, n_groups=None) -> dict:
    """Data sets 0..n-1 of the reference cell: the same ones in every process (sim's seeds)."""
    import sim

    data, _ = sim.simulate("normal_normal", SEED, n, n_groups=n_groups or task["n_groups"], **DATA)
    return data


def _baseline_share(task) -> tuple:
    """[lo, hi) of the baseline data sets this run of (b), (c) or (d) fits (all of them where the
    task names no share)."""
    lo, hi = task.get("baseline_share") or (0, task["baseline_replicates"])
    return lo, hi


def _inference(task):
    from models import engine

    return engine.Inference(chains=task["chains"], warmup=task["warmup"], draws=task["draws"])


def _budget(task) -> float:
    return task["memory_budget_gb"] * 1e9


def _engine_min_ess(fit) -> list:
    """Per fit, the smallest bulk ESS over every parameter of every site."""
    import numpy as np

    return np.min([fit.sites[s].ess_bulk.min(axis=1) for s in SITES], axis=0).tolist()


def _numpyro_mcmc(task, jit_model_args, notes):
    from numpyro.infer import MCMC, NUTS

    with warnings.catch_warnings(record=True) as caught:  # "not enough devices ... sequentially"
        warnings.simplefilter("always")
        mcmc = MCMC(NUTS(numpyro_model), num_warmup=task["warmup"], num_samples=task["draws"],
                    num_chains=task["chains"], progress_bar=False, jit_model_args=jit_model_args)
    notes.update(f"NumPyro warned: {w.message}".split(". If")[0] for w in caught)
    return mcmc


def _numpyro_run(mcmc, data, r) -> dict:
    import jax
    import numpy as np

    mcmc.run(jax.random.PRNGKey(r), data["ybar"][r], data["n"][r], data["ss"][r])
    draws = mcmc.get_samples(group_by_chain=True)
    fit = {site: np.asarray(draws[site]) for site in SITES}
    fit["diverging"] = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
    return fit


def _baseline_result(fits, *, compile_s, sampling_s, compile_in_fit, notes, first=0) -> dict:
    """Summaries (ArviZ's bulk ESS; the Monte Carlo error of the sd by the engine's own
    ``diagnostics.mcse_sd``, ArviZ's estimator, whose own call fails where numba is installed,
    with NumPy >= 2.4) of fits given as {site: (chains, draws, ...) draws}, of data sets
    ``first``, ``first`` + 1, ..."""
    import arviz
    import jax.numpy as jnp
    import numpy as np

    from models import diagnostics

    summaries, min_ess, n_div = [], [], []
    for fit in fits:
        summary = {}
        for site in SITES:
            draws = fit[site].reshape(*fit[site].shape[:2], -1)
            pooled = draws.reshape(-1, draws.shape[2])
            by_param = [draws[:, :, p] for p in range(draws.shape[2])]
            summary[site] = {"mean": pooled.mean(axis=0), "sd": pooled.std(axis=0, ddof=1),
                             "ess": np.array([arviz.ess(x, method="bulk") for x in by_param]),
                             "mcse_sd": np.array([float(diagnostics.mcse_sd(jnp.asarray(x)))
                                                  for x in by_param])}
        summaries.append(summary)
        min_ess.append(float(min(s["ess"].min() for s in summary.values())))
        n_div.append(int(fit["diverging"].sum()))
    result = _method_result(len(fits), compile_s=compile_s, sampling_s=sampling_s,
                            compile_in_fit=compile_in_fit, min_ess=min_ess, n_divergent=n_div,
                            summaries=summaries, notes=sorted(notes))
    result["summary_data_sets"] = list(range(first, first + len(fits)))
    return result


def _method_result(n, *, compile_s, sampling_s, compile_in_fit, min_ess, n_divergent, summaries,
                   notes=()) -> dict:
    """compile_in_fit: whether compile_s is part of every fit (then s/fit includes it)."""
    total = sampling_s + (compile_s if compile_in_fit else 0.0)
    return {"data_sets": n, "compile_s": compile_s, "sampling_s": sampling_s,
            "compile_in_fit": compile_in_fit, "s_per_fit": total / n,
            "min_ess": list(min_ess), "min_ess_median": float(statistics.median(min_ess)),
            "divergent_fits": int(sum(d > 0 for d in n_divergent)),
            "summaries": summaries, "summary_data_sets": list(range(len(summaries))),
            "notes": list(notes)}


class _CompileClock:
    """Seconds JAX spent tracing, lowering and compiling while the block ran (JAX's monitoring
    events; the listener is registered once per process)."""

    seconds_total = 0.0
    registered = False

    def __enter__(self):
        import jax.monitoring

        if not _CompileClock.registered:
            jax.monitoring.register_event_duration_secs_listener(_CompileClock._listen)
            _CompileClock.registered = True
        self._start = _CompileClock.seconds_total
        return self

    def __exit__(self, *exc):
        self.seconds = _CompileClock.seconds_total - self._start

    @staticmethod
    def _listen(event, duration, **_):
        if event.startswith("/jax/core/compile/"):
            _CompileClock.seconds_total += duration


def _process_info() -> dict:
    """Peak RSS of this process (VmHWM, read at its end) and what it ran on."""
    import jax

    peak_mb = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak_mb = int(line.split()[1]) * 1024 / 1e6
    except OSError:
        import resource

        scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6
    return {"peak_rss_mb": peak_mb, "devices": str(jax.devices()),
            "platform": jax.devices()[0].platform,
            "compilation_cache": jax.config.jax_compilation_cache_dir,
            "xla_pool_threads": threads.pool_threads()}


# -------------------------------------------------------------------------------- the report

def build_report(opts, results, elapsed) -> dict:
    methods = {m: r for m, r in results.items() if m in METHODS}
    ran = {m: r for m, r in methods.items() if "s_per_fit" in r}
    for r in ran.values():
        r["fits_per_s"] = 1.0 / r["s_per_fit"]
        r["ess_per_s"] = r["min_ess_median"] / r["s_per_fit"]
        # the cost of fitting `replicates` data sets, the one-off compile included
        one_off = 0.0 if r["compile_in_fit"] else r["compile_s"]
        n = opts["replicates"]
        r["fits_per_s_with_compile"] = n / (one_off + n * r["s_per_fit"])
    ratios, targets, agreement = {}, {}, {}
    for e in (e for e in ENGINES if e in ran):
        for m in ("b", "c", "d"):
            if m in ran:
                ratios[f"{e}/{m}"] = {key: ran[e][field] / ran[m][field] for key, field in (
                    ("sampling", "fits_per_s"), ("with_compile", "fits_per_s_with_compile"))}
                by_round = zip(ran[m].get("round_s_per_fit", []),
                               ran[e].get("round_s_per_fit", []))
                ratios[f"{e}/{m}"]["rounds"] = [theirs / ours for theirs, ours in by_round]
                if e == "a":  # (a2) fits the same data sets as (a): see same_fits
                    agreement[f"a/{m}"] = compare(ran["a"], ran[m])
        for m, target in TARGETS.items():
            value = ratios.get(f"{e}/{m}", {}).get("sampling")
            targets[f"{e}/{m}"] = {"target": target, "value": value,
                                   "met": None if value is None else value >= target}
    same_fits = None
    if "a" in ran and "a2" in ran:  # each data set's fit depends on its own key and data only
        a_means = [summary["mu"]["mean"][0] for summary in ran["a"]["summaries"]]
        same_fits = {"data_sets": ran["a"]["summary_data_sets"],
                     "max_abs_diff_mu_mean": max((abs(x - y) for x, y in zip(
                         a_means, ran["a2"]["mu_means"])), default=None)}
    info = next((r for r in results.values() if "devices" in r), {})
    pymc = results.get("d", {})
    platform_info = {
        "devices": info.get("devices"), "platform": info.get("platform"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "jax": _version("jax"), "jaxlib": _version("jaxlib"), "numpyro": _version("numpyro"),
        "pymc": pymc.get("pymc_version")
        or ("not installed" if "skipped" in pymc else _version("pymc")),
        "xla_flags": os.environ.get("XLA_FLAGS"),
        "xla_pool_threads": info.get("xla_pool_threads"),
        "compilation_cache": info.get("compilation_cache"),
        "python": sys.version.split()[0],
    }
    return {"settings": {k: list(v) if isinstance(v, tuple) else v for k, v in opts.items()},
            "platform": platform_info, "methods": methods, "ratios": ratios, "targets": targets,
            "agreement": agreement, "a2_vs_a": same_fits, "scaling": results.get("scaling"),
            "memory": results.get("memory"), "elapsed_s": elapsed}


def compare(ref: dict, other: dict) -> dict:
    """Do two methods agree on the posterior means and sds of the data sets both summarized?

    Means: z = (mean_a - mean_b) / sqrt(mcse_a^2 + mcse_b^2), mcse = sd / sqrt(bulk ESS). Over K
    comparisons (data sets x parameters), a two-sided bound of z_{1 - ALPHA / (2K)} (Bonferroni)
    is crossed by two correct samplers with probability at most ALPHA = 1 %, while a wrong
    posterior shifts the means by many MCSEs.
    Sds: z_sd = (sd_a - sd_b) / sqrt(mcse_sd_a^2 + mcse_sd_b^2), against the same bound. The
    MCSE of an sd grows with the posterior's kurtosis and with the autocorrelation of the squared
    deviations (tau's right-skewed posterior is heavy on both counts), so each method's is taken
    from its own draws: ArviZ's ``mcse(method="sd")`` estimator (``diagnostics.mcse_sd``), on
    the draws of the methods that return them and inside the engine's program for the engine. A
    summary without one (none here) borrows the other method's, scaled by their bulk ESS ratio;
    borrowing understates it where the other method's draws happen to have a light tail.
    """
    import numpy as np

    shared = sorted(set(ref["summary_data_sets"]) & set(other["summary_data_sets"]))
    pairs = [(ref["summaries"][ref["summary_data_sets"].index(r)],
              other["summaries"][other["summary_data_sets"].index(r)]) for r in shared]
    z, z_sd = [], []
    for a, b in pairs:
        for site in SITES:
            ma, sa, ea = (np.asarray(a[site][k], float) for k in ("mean", "sd", "ess"))
            mb, sb, eb = (np.asarray(b[site][k], float) for k in ("mean", "sd", "ess"))
            z.extend((ma - mb) / np.sqrt(sa**2 / ea + sb**2 / eb))
            mcse_a = np.asarray(a[site].get("mcse_sd", np.nan), float)
            mcse_b = np.asarray(b[site].get("mcse_sd", np.nan), float)
            mcse_a = np.where(np.isnan(mcse_a), mcse_b * np.sqrt(eb / ea), mcse_a)
            mcse_b = np.where(np.isnan(mcse_b), mcse_a * np.sqrt(ea / eb), mcse_b)
            z_sd.extend((sa - sb) / np.sqrt(mcse_a**2 + mcse_b**2))
    bound = statistics.NormalDist().inv_cdf(1 - ALPHA / (2 * len(z)))
    max_z, max_z_sd = float(np.max(np.abs(z))), float(np.max(np.abs(z_sd)))
    return {"data_sets": shared, "comparisons": len(z), "bound": bound, "max_abs_z": max_z,
            "max_abs_z_sd": max_z_sd, "means_agree": max_z < bound, "sds_agree": max_z_sd < bound,
            "passed": max_z < bound and max_z_sd < bound}


def _version(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def render(report) -> str:
    s, p = report["settings"], report["platform"]
    lines = ["== platform ==",
             f"devices: {p['devices']}; CPUs: {p['cpu_count']} ({p['cpus_usable']} usable)",
             f"python {p['python']}, jax {p['jax']}, jaxlib {p['jaxlib']}, numpyro {p['numpyro']}, "
             f"pymc {p['pymc']}",
             f"XLA_FLAGS: {p['xla_flags']}; XLA's CPU thread pool: {p['xla_pool_threads']} "
             f"thread(s) per process ({threads.ENV}={os.environ.get(threads.ENV, '1')})",
             f"JAX persistent compilation cache: {p['compilation_cache'] or 'off'}",
             "", "== throughput ==",
             f"workload: hierarchical non-centered, J={s['n_groups']}, {s['chains']} chains x "
             f"({s['warmup']} warmup + {s['draws']} draws); (a) and (a2) on {s['replicates']} "
             f"data sets, (b)-(d) on the first {s['baseline_replicates']} of them"
             + (f"; {s['rounds']} rounds (the order reversed in every other one), each with (a) "
                f"and (a2) on all {s['replicates']} data sets and (b)-(d) on its share of the "
                f"{s['baseline_replicates']}" if s["rounds"] > 1 else ""),
             *_methods_table(report, sep="  ")]
    for m, r in report["methods"].items():
        for note in r.get("notes", []):
            lines.append(f"  {m}: {note}")
        if "skipped" in r:
            lines.append(f"  {m}: skipped: {r['skipped']}")
        if "error" in r:
            lines.append(f"  {m}: failed: {r['error']}")
    lines += ["  s/fit: sampling only, the one-off compile apart; (b) compiles in every fit, so "
              "its s/fit is its total time, compile included",
              "", "== ratios (fits/s of (a) and (a2) over each) ==", *_ratio_lines(report),
              "", "== targets ==", *_target_lines(report),
              "", "== agreement ((a) vs each, same data sets) ==", *_agreement_lines(report),
              "", "== scaling ==", *_scaling_lines(report),
              "", "== memory ==", *_memory_lines(report),
              "", f"total time: {report['elapsed_s']:.0f} s"]
    return "\n".join(lines)


def _methods_table(report, sep) -> list:
    header = ["method", "fits", "compile s", "sampling s", "s/fit", "fits/s",
              "min ESS (median)", "ESS/s", "divergent fits", "peak RSS MB"]
    if not report["methods"]:
        return ["not run"]
    rows = []
    for m, r in report["methods"].items():
        if "s_per_fit" not in r:
            rows.append([_label(m, report["settings"])] + ["-"] * (len(header) - 1))
            continue
        rows.append([_label(m, report["settings"]), str(r["data_sets"]), f"{r['compile_s']:.1f}",
                     f"{r['sampling_s']:.2f}", f"{r['s_per_fit']:.4f}", f"{r['fits_per_s']:.3g}",
                     f"{r['min_ess_median']:.0f}", f"{r['ess_per_s']:.0f}",
                     f"{r['divergent_fits']}/{r['data_sets']}", f"{r['peak_rss_mb']:.0f}"])
    if sep == "|":
        return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                *("| " + " | ".join(row) + " |" for row in rows)]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [sep.join(cell.ljust(w) if i == 0 else cell.rjust(w)
                     for i, (cell, w) in enumerate(zip(row, widths)))
            for row in [header, *rows]]


def _ratio_lines(report) -> list:
    methods = report["methods"]
    engines = [e for e in ENGINES if "s_per_fit" in methods.get(e, {})]
    if not engines:
        return ["n/a: (a) not run"]
    lines = []
    for key, r in report["ratios"].items():
        e, m = key.split("/")
        # (a2) runs on `processes` cores, the others on one each
        cores = f", (a2) on {methods['a2']['processes']} processes" if e == "a2" else ""
        if len(r.get("rounds", [])) > 1:
            cores += "; round by round " + ", ".join(f"{x:.3g}" for x in r["rounds"])
        if m == "b":
            lines.append(f"({e})/(b): {r['sampling']:.3g}  (({e}) without compile vs (b) with its "
                         f"per-fit compile{cores}); {r['with_compile']:.3g} with ({e})'s one-off "
                         f"compile over {report['settings']['replicates']} data sets")
        else:
            lines.append(f"({e})/({m}): {r['sampling']:.3g} without compile; "
                         f"{r['with_compile']:.3g} with each one-off compile, over "
                         f"{report['settings']['replicates']} data sets{cores}")
    for e in engines:
        for m, r in methods.items():
            if m not in ENGINES and f"{e}/{m}" not in report["ratios"]:
                lines.append(f"({e})/({m}): n/a ({m} {'skipped' if 'skipped' in r else 'failed'})")
    return lines


def _target_lines(report) -> list:
    lines = []
    for key, t in report["targets"].items():
        e, m = key.split("/")
        value = "n/a" if t["value"] is None else f"{t['value']:.3g}"
        verdict = "not measured" if t["met"] is None else ("met" if t["met"] else "NOT met")
        cores = (f"{report['methods']['a2']['processes']} processes" if e == "a2"
                 else "one process")
        lines.append(f"({e})/({m}) >= {t['target']:.0f} (sampling fits/s, ({e}) on {cores}): "
                     f"{value} -> {verdict}")
    return lines or ["n/a: (a) not run"]


def _agreement_lines(report) -> list:
    lines = []
    for key, a in report["agreement"].items():
        lines.append(
            f"(a) vs ({key[-1]}) on data sets {a['data_sets'][0]}..{a['data_sets'][-1]}: "
            f"{'PASS' if a['passed'] else 'FAIL'}; means: max |z| = {a['max_abs_z']:.2f} "
            f"(bound {a['bound']:.2f} over {a['comparisons']} comparisons); sds: max |z| = "
            f"{a['max_abs_z_sd']:.2f} (same bound)")
    lines = lines or ["n/a: needs (a) and at least one of (b), (c), (d)"]
    same = report.get("a2_vs_a")
    if same and same["data_sets"]:
        lines.append(f"a2 vs a: max |diff| of mu means on data sets {same['data_sets'][0]}.."
                     f"{same['data_sets'][-1]}: {same['max_abs_diff_mu_mean']:.3g} (the same keys "
                     "and data: 0 up to float rounding)")
    return lines


def _scaling_lines(report) -> list:
    sc = report["scaling"]
    if sc is None:
        return ["not run"]
    if "error" in sc:
        return [f"failed: {sc['error']}"]
    lines = ["J      data sets  compile s     s/fit  leapfrog/fit  min ESS (median)"]
    lines += [f"{r['n_groups']:<6} {r['replicates']:>9}  {r['compile_s']:>9.1f}  "
              f"{r['s_per_fit']:>8.4f}  {r['leapfrog_per_fit']:>12.0f}  "
              f"{r['min_ess_median']:>16.0f}" for r in sc["rows"]]
    g = sc["group_size"]
    small, large = (str(k) for k in GROUP_SIZES)
    lines.append(
        f"group size, J={g['n_groups']}: {g['s_per_fit'][small]:.4f} s/fit at {small} per group, "
        f"{g['s_per_fit'][large]:.4f} at {large} (10x the noise sd, same standard errors; "
        f"leapfrog/fit {g['leapfrog_per_fit'][small]:.0f} vs {g['leapfrog_per_fit'][large]:.0f}): "
        f"ratio {g['ratio']:.2f} -> {'PASS' if g['passed'] else 'FAIL'} "
        f"(at most {GROUP_SIZE_SLACK})")
    return lines


def _memory_lines(report) -> list:
    mem = report["memory"]
    if mem is None:
        return ["not run"]
    if "error" in mem:
        return [f"failed: {mem['error']}"]
    passed = mem["peak_rss_mb"] <= MEMORY_LIMIT_MB
    scope = (f" (one chunk of the {mem['full_replicates']}-data-set run, whose chunks run one "
             f"after another; memory_replicates={mem['full_replicates']} runs all of it)"
             if report["settings"]["memory_replicates"] == "chunk" else "")
    s = report["settings"]
    cap = f"; at most engine.BATCH = {mem['batch_cap']}" if mem.get("batch_cap") else ""
    return [f"(a) on J={mem['n_groups']}, {mem['replicates']} data sets{scope}, "
            f"{s['chains']} chains x ({s['warmup']} + {s['draws']}): chunk of {mem['chunk']} data "
            f"sets (budget {mem['budget_bytes'] / 1e9:g} GB / "
            f"{mem['bytes_per_replicate'] / 1e6:.3g} MB per data set from "
            f"engine.bytes_per_replicate, {mem['n_latent']} latent values"
            f"{cap})",
            f"compile {mem['compile_s']:.1f} s, sampling {mem['sampling_s']:.1f} s = "
            f"{mem['s_per_fit']:.3f} s/fit",
            f"peak RSS {mem['peak_rss_mb']:.0f} MB -> {'PASS' if passed else 'FAIL'} "
            f"(at most {MEMORY_LIMIT_MB:.0f} MB)"]


def markdown(report) -> str:
    s, p = report["settings"], report["platform"]
    lines = [f"Normal-normal hierarchical model, non-centered, J = {s['n_groups']}, "
             f"{s['chains']} chains × ({s['warmup']} warmup + {s['draws']} draws); (a) and "
             f"(a2) on {s['replicates']} data sets, (b)–(d) on the first "
             f"{s['baseline_replicates']}"
             + (f", in {s['rounds']} rounds (the methods' order reversed in every other one; "
                "(a) and (a2) fit all the data sets in each)" if s["rounds"] > 1 else "") + ". "
             f"{p['devices']}, {p['cpu_count']} CPUs; jax {p['jax']}, numpyro {p['numpyro']}, "
             f"pymc {p['pymc']}.", "",
             *_methods_table(report, sep="|"), ""]
    lines += [f"- (a2): {note}" for note in report["methods"].get("a2", {}).get("notes", [])]
    lines += [f"- {line}" for line in _ratio_lines(report) + _target_lines(report)
              + _agreement_lines(report)]
    if report["scaling"] and "rows" in report["scaling"]:
        lines += ["", "| J | data sets | compile s | s/fit | leapfrog/fit |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['n_groups']} | {r['replicates']} | {r['compile_s']:.1f} | "
                  f"{r['s_per_fit']:.4f} | {r['leapfrog_per_fit']:.0f} |"
                  for r in report["scaling"]["rows"]]
        lines += ["", f"- {_scaling_lines(report)[-1]}"]
    if report["memory"]:
        lines += [""] + [f"- {line}" for line in _memory_lines(report)]
    return "\n".join(lines) + "\n"


def _json_safe(value):
    """NumPy arrays and scalars as lists and numbers; NaN and inf as null (valid JSON)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "tolist"):
        return _json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


if __name__ == "__main__":
    main()
