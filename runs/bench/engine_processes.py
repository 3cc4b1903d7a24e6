"""``engine_processes``: ``engine``'s fits of the same data sets on all cores, as a study runs
them (one worker process per core). The data sets split into ``processes`` contiguous shares
(default: the CPU count; one process skips the row), each share fitted by ``engine``'s two calls
in its own process, all processes at once; the timed calls start together once every process
has compiled (a barrier of files), and the time is from the first start to the last end. Each
data set keeps ``engine``'s key, so its fit is ``engine``'s.

The orchestrator (``runs.bench.__main__.run_processes``) starts the processes and merges their
results; ``run`` is one process's share."""

from __future__ import annotations

import time
from pathlib import Path

from runs.bench import common

NAME = "engine_processes"
LABEL = "hierbench engine.fit, {processes} processes"  # runs.bench.label fills in the count
ALL_DATA_SETS = True
BARRIER_TIMEOUT_S = 900.0  # a process waits at most this long for the others to compile


def missing() -> str | None:
    return None


def n_processes(settings) -> int:
    """The row's processes: ``processes``, but no more than there are data sets."""
    return min(settings["processes"], settings["replicates"])


def run(task) -> dict:
    """One process: ``engine``'s two calls on data sets ``task["share"]`` (start, stop) with
    ``engine``'s data and keys for them; between the calls, a wait until every process has
    compiled, so that the timed calls run at once. Wall-clock start and end, to line up with the
    others'."""
    n, (lo, hi) = task["replicates"], task["share"]
    data = {k: v[lo:hi] for k, v in common.data(task, n).items()}
    keys = common.engine_keys(n)[lo:hi]  # engine's keys of these data sets
    compiling = common.engine_fit(task, data, keys, devices=1)[1]  # the first call compiles
    barrier(Path(task["barrier"]), task["process"], task["n_processes"])
    start = time.time()
    fit, timed = common.engine_fit(task, data, keys, devices=1)
    end = time.time()
    return {"data_sets": hi - lo, "start": start, "end": end, "compile_s": compiling - timed,
            "min_ess": common.engine_min_ess(fit), "n_divergent": fit.n_divergent.tolist(),
            "mu_means": fit.sites["mu"].mean[:, 0].tolist()}


def barrier(folder: Path, index: int, count: int, timeout_s: float = BARRIER_TIMEOUT_S) -> None:
    """Say that process ``index`` is ready (a file ``ready-<index>`` in ``folder``) and wait until
    all ``count`` processes are; TimeoutError after ``timeout_s`` seconds."""
    (folder / f"ready-{index}").touch()
    deadline = time.monotonic() + timeout_s
    while (ready := sum((folder / f"ready-{i}").exists() for i in range(count))) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{NAME}: process {index + 1} of {count}: only {ready} of {count} "
                               f"processes had compiled after {timeout_s:.0f} s of waiting")
        time.sleep(0.01)
