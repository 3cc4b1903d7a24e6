"""``engine``: hierbench's ``engine.fit`` on every data set and chain in one compiled program, in
one process. The call runs twice on the same data sets and keys: the first compiles, the second
is timed, and the compile time is the first less the second."""

from __future__ import annotations

from runs.bench import common

NAME = "engine"
LABEL = "hierbench engine.fit"
ALL_DATA_SETS = True


def missing() -> str | None:
    return None


def run(task) -> dict:
    n = task["replicates"]
    data = common.data(task, n)
    keys = common.engine_keys(n)
    compiling = common.engine_fit(task, data, keys)[1]  # the first call compiles
    fit, timed = common.engine_fit(task, data, keys)
    summaries = [{site: {"mean": fit.sites[site].mean[r], "sd": fit.sites[site].sd[r],
                         "ess": fit.sites[site].ess_bulk[r], "mcse_sd": fit.sites[site].mcse_sd[r]}
                  for site in common.SITES}
                 for r in range(task["baseline_replicates"])]
    return common.method_result(n, compile_s=compiling - timed, sampling_s=timed,
                                compile_in_fit=False, min_ess=common.engine_min_ess(fit),
                                n_divergent=fit.n_divergent, summaries=summaries)
