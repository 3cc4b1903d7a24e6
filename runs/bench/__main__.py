"""``python -m runs.bench [key=value ...]``: the benchmark's Hydra app (conf/bench.yaml; ``--help``
lists the settings). The settings are checked before anything runs (``options``); then every
method runs in a child process of its own (``runs.bench.child``), in ``rounds`` rounds, and the
report is printed and written to ``<out>/bench.json`` and ``<out>/bench.md``.

Rounds (default ``auto``: 2 where a peer runs on at least 2 data sets, else 1) make a machine
whose speed drifts during the run (a shared or virtual one) slow every method alike: each round
runs the engine rows on all ``replicates`` data sets again (the same fits: the same keys) and the
peers on the round's share of the baseline data sets, the methods in the order of ``METHODS`` in
even rounds and reversed in odd ones, so that a drift that is steady over the run weighs on each
method's mean time alike. A method's s/fit is its time over all its fits of every round; the
ratios are those of these pooled figures, and the ratio of each round is reported beside them.

No JAX persistent compilation cache is used unless ``JAX_COMPILATION_CACHE_DIR`` is set (the run
says so), and every child compiles PyTensor code into a fresh folder, so compile times are cold.
"""

from __future__ import annotations

import functools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from analysis import files
from runs import app, config
from runs import threads
from runs.bench import BASELINES, ENGINES, METHODS, SECTIONS, cold, common, label, report
from runs.bench.engine_processes import n_processes
from runs.checks import ConfigError, is_int, is_number, require

NAMES = (*METHODS, *SECTIONS)
"""What ``methods`` may list, in the order they run."""
POSITIVE = ("replicates", "baseline_replicates", "n_groups", "chains", "warmup", "draws",
            "scaling_replicates", "memory_groups", "pymc_cores", "cold_replicates")
KEYS = ("replicates", "baseline_replicates", "rounds", "n_groups", "chains", "warmup", "draws",
        "methods", "scaling", "scaling_replicates", "memory_groups", "memory_replicates",
        "memory_budget_gb", "pymc_cores", "processes", "engine_parameterization", "devices",
        "cold_replicates", "cold_peers", "out")
VALUE_FLAGS = ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
               "--config-dir", "-cd")
"""Hydra's flags whose value is the next word of the command line."""


# ----------------------------------------------------------------------------- the settings

def options(cfg: DictConfig) -> dict:
    """The run's settings from its config (conf/bench.yaml and the command line), ``processes``
    and ``rounds`` resolved; a value that cannot run raises ConfigError, one line naming the key,
    the value and what is allowed."""
    given = OmegaConf.to_container(cfg)
    for key in given:
        require(key in KEYS, key, given[key],
                f"not a key of the bench config; its keys are {', '.join(KEYS)}")
    for key in KEYS:
        require(given.get(key) is not None or key in ("processes", "devices"), key, None,
                "a value is needed")
    opts = dict(given)
    for key in POSITIVE:
        require(is_int(opts[key]) and opts[key] >= 1, key, opts[key], "a positive integer")
    require(opts["rounds"] == "auto" or (is_int(opts["rounds"]) and opts["rounds"] >= 1),
            "rounds", opts["rounds"], "auto or a positive integer")
    require(opts["memory_replicates"] == "chunk"
            or (is_int(opts["memory_replicates"]) and opts["memory_replicates"] >= 1),
            "memory_replicates", opts["memory_replicates"], "chunk or a positive integer")
    require(is_number(opts["memory_budget_gb"]) and opts["memory_budget_gb"] > 0,
            "memory_budget_gb", opts["memory_budget_gb"], "a number > 0")
    require(opts["processes"] is None or (is_int(opts["processes"]) and opts["processes"] >= 1),
            "processes", opts["processes"], "a positive integer, or null for the CPU count")
    if opts["processes"] is None:
        opts["processes"] = os.cpu_count() or 1
    require(opts["devices"] is None or (is_int(opts["devices"]) and opts["devices"] >= 1),
            "devices", opts["devices"], "a positive integer, or null for the CPU count")
    if opts["devices"] is None:
        opts["devices"] = threads.usable_cpus()
    forms = ("auto", "collapsed", "noncentered", "centered")
    require(opts["engine_parameterization"] in forms, "engine_parameterization",
            opts["engine_parameterization"], f"one of {', '.join(forms)}")
    chosen = _listed(opts["methods"])
    require(len(chosen) > 0, "methods", opts["methods"], f"a list of one or more of "
            f"{', '.join(NAMES)}")
    for name in chosen:
        require(name in NAMES, "methods", name, f"one of {', '.join(NAMES)}")
    opts["methods"] = [name for name in NAMES if name in chosen]
    opts["cold_peers"] = _listed(opts["cold_peers"])
    for name in opts["cold_peers"]:
        require(name in BASELINES, "cold_peers", name, f"one of {', '.join(BASELINES)}")
    opts["scaling"] = _listed(opts["scaling"])
    for j in opts["scaling"]:
        require(is_int(j) and j >= 1, "scaling", j, "a list of positive integers, e.g. [8,50]")
    require(len(opts["scaling"]) > 0, "scaling", [], "a list of positive integers, e.g. [8,50]")
    require(isinstance(opts["out"], str) and opts["out"] != "", "out", opts["out"], "a folder")
    config.check_writable(opts["out"], "out", opts["out"])
    require(opts["baseline_replicates"] <= opts["replicates"], "baseline_replicates",
            opts["baseline_replicates"], f"at most replicates={opts['replicates']}: "
            f"{', '.join(BASELINES)} fit the first baseline_replicates of the engine's data sets")
    peers = [m for m in opts["methods"] if m in BASELINES]
    if opts["rounds"] == "auto":
        opts["rounds"] = 2 if peers and opts["baseline_replicates"] >= 2 else 1
    require(opts["rounds"] == 1 or peers, "rounds", opts["rounds"],
            f"1 where methods=[{','.join(opts['methods'])}] has none of {', '.join(BASELINES)} "
            "(rounds interleave the engine with them)")
    require(opts["rounds"] <= opts["baseline_replicates"], "rounds", opts["rounds"],
            f"at most baseline_replicates={opts['baseline_replicates']}: each round fits at "
            "least one baseline data set")
    return opts


def _listed(value) -> list:
    """A list setting: a list, or one value as a list of one."""
    return list(value) if isinstance(value, list) else [value]


def compose(words) -> DictConfig:
    """conf/bench.yaml with the ``key=value`` words of a command line on top; a word that is not
    a single override of a value raises ConfigError in one line that names it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    for word in words:
        try:
            override = parser.parse_override(word)
        except HydraException as err:
            raise ConfigError(f"{word!r} is not allowed: a key=value word "
                              f"({' '.join(str(err).split())})") from None
        key, _, value = word.partition("=")
        require(not override.is_sweep_override(), key, value,
                f"one value: a list is written in brackets, {key}=[{value}]")
    try:
        with initialize_config_dir(config_dir=str(config.CONF), version_base="1.3"):
            return hydra_compose("bench", overrides=list(words))
    except HydraException as err:
        raise ConfigError(" ".join(str(err).split())) from None


def check(argv: list[str]) -> None:
    """The command line's settings composed and checked (``options``) before Hydra starts, so
    that a bad value writes nothing, not even Hydra's folder."""
    words, skip = [], False
    for word in argv:
        if not skip and not word.startswith("-"):
            words.append(word)
        skip = word in VALUE_FLAGS
    options(compose(words))


# ------------------------------------------------------------------------------ the app

@hydra.main(version_base="1.3", config_path=str(config.CONF), config_name="bench")
def main(cfg: DictConfig) -> None:
    try:
        opts = options(cfg)
    except ConfigError as err:
        sys.exit(f"error: {err}")
    run(opts)


def cli() -> None:
    """Check the command line (``runs.app.start`` and ``check``), then run the Hydra app."""
    app.start(main, "bench", check=check)


def run(opts: dict) -> None:
    """Every child run of ``plan``, merged into one result per method; the report printed and
    written; exit status 1 where a method or section failed."""
    started = time.perf_counter()
    parts = {}
    for _, name, task in plan(opts):
        go = (run_processes if name == "engine_processes" else cold.run if name == "cold"
              else functools.partial(run_child, name))
        parts.setdefault(name, []).append(go(task))
    results = {name: merge_rounds(name, parts[name]) if name in METHODS else parts[name][0]
               for name in opts["methods"]}
    built = report.build_report(opts, results, time.perf_counter() - started)
    print(report.render(built))
    out = Path(opts["out"])
    files.write_atomic(out / "bench.json", json.dumps(common.json_safe(built), indent=2) + "\n")
    files.write_atomic(out / "bench.md", report.markdown(built))
    print(f"\nwritten: {out / 'bench.json'}, {out / 'bench.md'}")
    if any("error" in r for r in results.values()):
        raise SystemExit(1)


# ------------------------------------------------------------------------- the child runs

def plan(opts: dict) -> list:
    """(round, name, task) of every child run, in the order they run: the methods in ``rounds``
    rounds, in the order of ``methods`` in even rounds and reversed in odd ones, each round's
    peers on its own share of the baseline data sets (``baseline_share``); then the sections,
    once."""
    methods = [m for m in opts["methods"] if m in METHODS]
    shares = _shares(opts["baseline_replicates"], opts["rounds"])
    runs = []
    for k in range(opts["rounds"]):
        for m in methods if k % 2 == 0 else methods[::-1]:
            runs.append((k, m, {**opts, "round": k, "baseline_share": list(shares[k])}))
    runs += [(0, s, dict(opts)) for s in opts["methods"] if s in SECTIONS]
    return runs


def merge_rounds(name: str, parts: list) -> dict:
    """One method's result over its rounds. The engine rows fit the same data sets in every
    round: their fits, summaries and ESS are round 0's, their time the sum over the rounds for
    ``rounds`` x ``replicates`` fits; a peer fits another share in each round: its fits are
    concatenated. A one-off compile is the mean over the rounds; a compile that is part of every
    fit (``compile_in_fit``) is summed. A failed or skipped round makes the method failed or
    skipped."""
    failed = [p for p in parts if "error" in p] or [p for p in parts if "skipped" in p]
    if failed or len(parts) == 1:
        return (failed or parts)[0]
    first, k = parts[0], len(parts)
    merged = {**first, "rounds": k, "peak_rss_mb": max(p["peak_rss_mb"] for p in parts),
              "round_s_per_fit": [p["s_per_fit"] for p in parts]}
    sampling = sum(p["sampling_s"] for p in parts)
    merged["divergent_fits"] = sum(p["divergent_fits"] for p in parts)
    if name in ENGINES:
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


def run_child(name: str, opts: dict) -> dict:
    """Run one method or section in its own process; its result, or {"error": ...} if it
    failed."""
    print(f"[bench] {_round(opts)}{label(name, opts)} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hierbench-bench-") as tmp:
        result_path = Path(tmp) / "result.json"
        proc = subprocess.run(common.child_command({**opts, "method": name}, result_path),
                              capture_output=True, text=True,
                              env=common.child_env(tmp, opts["devices"]))
        if proc.returncode != 0 or not result_path.exists():
            return _child_failed(name, proc.returncode, proc.stderr)
        result = json.loads(result_path.read_text())
    print(f"[bench] {name} done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return result


def run_processes(opts: dict) -> dict:
    """engine_processes: data sets 0..R-1 in ``processes`` contiguous shares, each fitted in its
    own child process, all started at once; one result for them all, or {"error": ...} with the
    first failed child's error (the others are stopped)."""
    name, n, k = "engine_processes", opts["replicates"], n_processes(opts)
    if k == 1:
        return {"skipped": f"processes={opts['processes']}, replicates={n}: one process, as "
                           "engine"}
    print(f"[bench] {_round(opts)}{label(name, opts)} ...", file=sys.stderr, flush=True)
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
                task = {**opts, "method": name, "share": list(share), "process": i,
                        "n_processes": k, "barrier": str(tmp / "barrier")}
                with open(logs[i], "w") as log:  # a file, not a pipe: no child blocks on it
                    procs.append(subprocess.Popen(common.child_command(task, results[i]),
                                                  stdout=subprocess.DEVNULL, stderr=log,
                                                  env=common.child_env(tmp / f"process-{i}")))
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
            return _child_failed(f"{name} (process {i + 1} of {k}, data sets {shares[i][0]}.."
                                 f"{shares[i][1] - 1})", codes[i], logs[i].read_text())
        parts = [json.loads(path.read_text()) for path in results]
    print(f"[bench] {name} done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    start, end = min(p["start"] for p in parts), max(p["end"] for p in parts)
    peaks = ", ".join(f"{p['peak_rss_mb']:.0f}" for p in parts)
    result = common.method_result(
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


def _child_failed(name: str, returncode, stderr: str) -> dict:
    """{"error": the exception's line of a failed child's stderr}, said on stderr too."""
    lines = stderr.strip().splitlines() or ["(no output)"]
    # the exception's line of the traceback, not a warning printed after it
    errors = [line for line in lines if re.match(r"[\w.]+(Error|Exception)\b", line)]
    last = (errors or lines)[-1]
    print(f"[bench] {name} failed (exit {returncode}): {last}", file=sys.stderr)
    return {"error": last}


def _shares(n: int, k: int) -> list:
    """Data sets 0..n-1 as k contiguous [start, stop) shares whose sizes differ by at most 1."""
    return [(i * n // k, (i + 1) * n // k) for i in range(k)]


def _round(opts: dict) -> str:
    """'round k of K: ' where the methods run in more than one round."""
    rounds = opts.get("rounds", 1)
    return f"round {opts['round'] + 1} of {rounds}: " if rounds > 1 and "round" in opts else ""


if __name__ == "__main__":
    cli()
