"""``scaling``: the engine's cost per fit as J grows (``scaling``, ``scaling_replicates`` data sets
each; a first call compiles, a second is timed, as for ``engine``), then the group-size check
at the first J, which reuses that program."""

from __future__ import annotations

import statistics

from runs.bench import common

NAME = "scaling"
GROUP_SIZES = (10, 1000)  # the group-size check: same J, 100x the observations per group
# The group-size check passes when s/fit at 1000 per group is at most twice that at 10. The program
# is the same (shapes do not depend on the group size), but the posterior is not quite: sigma is
# pinned down 10x more tightly, so NUTS takes somewhat different trees (and a row of lanes waits
# for the slowest chain of its data set). A likelihood of the raw observations would cost
# about 100x more per gradient at 100x the observations.
GROUP_SIZE_SLACK = 2.0


def run(task) -> dict:
    n = task["scaling_replicates"]
    keys = common.engine_keys(n)
    rows, check = [], None
    for i, n_groups in enumerate(task["scaling"]):
        data = common.data(task, n, n_groups=n_groups)
        compiling = common.engine_fit(task, data, keys)[1]  # the first call compiles
        fit, timed = common.engine_fit(task, data, keys)
        rows.append({"n_groups": n_groups, "replicates": n, "compile_s": compiling - timed,
                     "sampling_s": timed, "s_per_fit": timed / n,
                     "leapfrog_per_fit": float(fit.n_leapfrog.mean()),
                     "min_ess_median": float(statistics.median(common.engine_min_ess(fit)))})
        if i == 0:
            check = group_size_check(task, data, keys)
    return {"rows": rows, "group_size": check}


def group_size_check(task, data, keys) -> dict:
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
            fit, took = common.engine_fit(task, d, keys)
            seconds[size].append(took)
            leapfrog[size] = float(fit.n_leapfrog.mean())
    per_fit = {size: min(s) / len(n_obs) for size, s in seconds.items()}
    ratio = per_fit[GROUP_SIZES[1]] / per_fit[GROUP_SIZES[0]]
    return {"n_groups": int(n_obs.shape[1]), "replicates": len(n_obs),
            "s_per_fit": {str(k): v for k, v in per_fit.items()},
            "leapfrog_per_fit": {str(k): v for k, v in leapfrog.items()},
            "ratio": ratio, "passed": ratio <= GROUP_SIZE_SLACK}
