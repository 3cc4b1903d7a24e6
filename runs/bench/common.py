"""The benchmark's reference workload and what every method's child process shares: the data
sets, the engine's call on them, the summaries of a fit and the result a child returns.

The workload: normal-normal data (sigma unknown, sufficient statistics ``ybar``, ``n``, ``ss``),
the non-centered hierarchical model (mu ~ N(0, 10), tau ~ half-normal(5), sigma ~
half-normal(5)), J = ``n_groups`` groups of 10, ``chains`` x (``warmup`` + ``draws``).
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

from runs import threads

HYPER = dict(mu_family="normal", mu_loc=0.0, mu_scale=10.0, tau_family="half_normal", tau_df=3.0,
             tau_scale=5.0, sigma_scale=5.0)
DATA = dict(group_size=10, tau=1.0, sigma=1.0, mu=0.0)  # normal_normal scenario, data seed 1
SEED = 1
SITES = ("theta", "mu", "tau", "sigma")


def data(task, n, n_groups=None) -> dict:
    """Data sets 0..n-1 of the reference cell: the same ones in every process (sim's seeds)."""
    import sim

    sets, _ = sim.simulate("normal_normal", SEED, n, n_groups=n_groups or task["n_groups"], **DATA)
    return sets


def engine_keys(n: int):
    """The sampler keys of data sets 0..n-1 in every engine run: data set r's fit depends on its
    own key and data only, whatever else is fitted with it."""
    import jax

    return jax.random.split(jax.random.key(0), n)


def baseline_share(task) -> tuple:
    """[lo, hi) of the baseline data sets this run of a method fits (all of them where the task
    names no share)."""
    lo, hi = task.get("baseline_share") or (0, task["baseline_replicates"])
    return lo, hi


def inference(task):
    from models import engine

    # the target acceptance of conf/inference/default.yaml: auto (0.8 for the collapsed form)
    return engine.Inference(chains=task["chains"], warmup=task["warmup"], draws=task["draws"],
                            target_accept="auto")


def budget(task) -> float:
    return task["memory_budget_gb"] * 1e9


def engine_fit(task, data, keys, devices=None):
    """(fit, wall seconds) of one engine.fit call on the reference model and settings: in
    ``engine_parameterization``, on ``devices`` CPU devices (default: the task's)."""
    from models import engine

    start = time.perf_counter()
    fit = engine.fit("hierarchical", data, keys, HYPER,
                     parameterization=task["engine_parameterization"], inference=inference(task),
                     memory_budget_bytes=budget(task),
                     devices=task["devices"] if devices is None else devices)
    return fit, time.perf_counter() - start


def engine_min_ess(fit) -> list:
    """Per fit, the smallest bulk ESS over every parameter of every site."""
    import numpy as np

    return np.min([fit.sites[s].ess_bulk.min(axis=1) for s in SITES], axis=0).tolist()


def baseline_result(fits, *, compile_s, sampling_s, compile_in_fit, notes, first=0) -> dict:
    """Summaries (ArviZ's bulk ESS; the Monte Carlo error of the sd by the engine's own
    ``diagnostics.mcse_sd``, ArviZ's estimator, whose own call fails where numba is installed,
    with NumPy >= 2.4) of fits given as {site: (chains, draws, ...) draws, "diverging": (chains,
    draws)}, of data sets ``first``, ``first`` + 1, ... ``fits_done_at``: when it was called
    (wall clock), that is when the fits were done, before these summaries."""
    done_at = time.time()
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
    result = method_result(len(fits), compile_s=compile_s, sampling_s=sampling_s,
                           compile_in_fit=compile_in_fit, min_ess=min_ess, n_divergent=n_div,
                           summaries=summaries, notes=sorted(notes))
    result["summary_data_sets"] = list(range(first, first + len(fits)))
    result["fits_done_at"] = done_at
    return result


def method_result(n, *, compile_s, sampling_s, compile_in_fit, min_ess, n_divergent, summaries,
                  notes=()) -> dict:
    """compile_in_fit: whether compile_s is part of every fit (then s/fit includes it)."""
    total = sampling_s + (compile_s if compile_in_fit else 0.0)
    return {"data_sets": n, "compile_s": compile_s, "sampling_s": sampling_s,
            "compile_in_fit": compile_in_fit, "s_per_fit": total / n,
            "min_ess": list(min_ess), "min_ess_median": float(statistics.median(min_ess)),
            "divergent_fits": int(sum(d > 0 for d in n_divergent)),
            "summaries": summaries, "summary_data_sets": list(range(len(summaries))),
            "notes": list(notes)}


class CompileClock:
    """Seconds JAX spent tracing, lowering and compiling while the block ran (JAX's monitoring
    events; the listener is registered once per process)."""

    seconds_total = 0.0
    registered = False

    def __enter__(self):
        import jax.monitoring

        if not CompileClock.registered:
            jax.monitoring.register_event_duration_secs_listener(CompileClock._listen)
            CompileClock.registered = True
        self._start = CompileClock.seconds_total
        return self

    def __exit__(self, *exc):
        self.seconds = CompileClock.seconds_total - self._start

    @staticmethod
    def _listen(event, duration, **_):
        if event.startswith("/jax/core/compile/"):
            CompileClock.seconds_total += duration


def process_info() -> dict:
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


def child_command(task: dict, result_path) -> list:
    """The command of a child process running ``task`` (``runs.bench.child``)."""
    import json

    return [sys.executable, "-m", "runs.bench.child", json.dumps(task), str(result_path)]


def child_env(folder, devices: int = 1) -> dict:
    """A child's environment: this one, with PyTensor compiling into ``folder``/pytensor and
    httpstan keeping its compiled models in ``folder``/cache (fresh folders, removed with
    ``folder``), so that PyMC's, nutpie's and Stan's compiles are cold, as JAX's is; and JAX with
    ``devices`` CPU devices (``runs.threads``)."""
    import os

    flags = [f"compiledir={Path(folder) / 'pytensor'}", os.environ.get("PYTENSOR_FLAGS")]
    return {**os.environ, "PYTENSOR_FLAGS": ",".join(f for f in flags if f),
            "XDG_CACHE_HOME": str(Path(folder) / "cache"), threads.DEVICES_ENV: str(devices)}


def json_safe(value):
    """NumPy arrays and scalars as lists and numbers; NaN and inf as null (valid JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist"):
        return json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
