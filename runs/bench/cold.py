"""``cold``: fits of ``cold_replicates`` data sets from a cold start, as a user types them, wall
clock from the command to its end (imports, start-up, compile and every fit):

- the engine: a one-job study, ``python -m runs.study`` on the reference cell with
  ``replicates=cold_replicates``, a fresh results folder and an empty compilation cache (the
  study's own data sets, of the same cell);
- each peer of ``cold_peers``: its method (``runs.bench.<peer>``) in a fresh process on data sets
  0 .. ``cold_replicates`` - 1, with fresh PyTensor and httpstan caches, timed from the process's
  start to the end of its last fit (the benchmark's ESS of its draws afterwards is not counted;
  the study's time includes its own diagnostics, exact posterior and result file).

Effective samples per second: the median over fits of the smallest bulk ESS over theta, mu, tau
and sigma, times the number of fits, over the wall time. This section runs in the benchmark's
own process (it times other processes)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runs.bench import common

NAME = "cold"


def run(opts: dict) -> dict:
    rows = {"engine": _engine_study(opts)}
    for peer in opts["cold_peers"]:
        rows[peer] = _peer(opts, peer)
    return {"replicates": opts["cold_replicates"], "rows": rows}


def _engine_study(opts) -> dict:
    print(f"[bench] cold: a one-job study of {opts['cold_replicates']} data sets ...",
          file=sys.stderr, flush=True)
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="hierbench-cold-") as tmp:
        command = [
            sys.executable, "-m", "runs.study", "study=bench_cold", f"results_root={tmp}",
            f"compilation_cache={tmp}/xla", "prior=hierarchical",
            f"prior.parameterization={opts['engine_parameterization']}",
            f"scenario.n_groups={opts['n_groups']}",
            *(f"scenario.{k}={v}" for k, v in common.DATA.items()),
            f"replicates={opts['cold_replicates']}", f"inference.chains={opts['chains']}",
            f"inference.warmup={opts['warmup']}", f"inference.draws={opts['draws']}",
        ]
        env = {k: v for k, v in os.environ.items() if k != "HIERBENCH_DEVICES"}
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            return {"error": (proc.stderr.strip().splitlines() or ["(no output)"])[-1]}
        table = pd.concat(pd.read_parquet(f) for f in Path(tmp, "bench_cold").glob("*.parquet"))
    fits = table[table["param"].isin(common.SITES)]
    min_ess = fits.groupby("replicate")["ess_bulk"].min().tolist()
    log = [line for line in (proc.stdout + proc.stderr).splitlines() if "fits in" in line]
    return _row(wall, min_ess, note=f"`{' '.join(command[1:4])} ...`"
                + (f"; its job: {log[-1].split(': ', 1)[-1].split(',')[0]}" if log else ""))


def _peer(opts, peer) -> dict:
    print(f"[bench] cold: {peer}, a fresh process on {opts['cold_replicates']} data sets ...",
          file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="hierbench-cold-") as tmp:
        result_path = Path(tmp) / "result.json"
        task = {**opts, "method": peer, "baseline_share": [0, opts["cold_replicates"]]}
        start = time.time()
        proc = subprocess.run(common.child_command(task, result_path), capture_output=True,
                              text=True, env=common.child_env(tmp))
        if proc.returncode != 0 or not result_path.exists():
            return {"error": (proc.stderr.strip().splitlines() or ["(no output)"])[-1]}
        result = json.loads(result_path.read_text())
    if "skipped" in result:
        return result
    # to the end of its fits: the benchmark's own summaries of them (ArviZ's ESS) are not
    # the peer's cost
    return _row(result["fits_done_at"] - start, result["min_ess"],
                note=f"compile {result['compile_s']:.1f} s")


def _row(wall, min_ess, note) -> dict:
    n = len(min_ess)
    median = float(statistics.median(min_ess))
    return {"wall_s": wall, "fits": n, "s_per_fit": wall / n, "min_ess_median": median,
            "ess_per_s": median * n / wall, "note": note}
