"""``python -m runs.bench``: fits per second of the engine on the reference workload.

The reference workload: normal-normal data (sigma unknown, sufficient statistics), the
non-centered ``hierarchical`` spec, J = 8, 4 chains x (500 warmup + 1000 draws), 100 data sets.
Compilation (tracing + XLA) is timed apart from sampling. Override with ``key=value`` words:
``replicates``, ``n_groups``, ``chains``, ``warmup``, ``draws``.
"""

from __future__ import annotations

import sys
import time

import runs  # noqa: F401  (XLA threads)
import jax
import numpy as np

import sim
from models import engine

DEFAULTS = {"replicates": 100, "n_groups": 8, "chains": 4, "warmup": 500, "draws": 1000}
HYPER = dict(mu_family="normal", mu_loc=0.0, mu_scale=10.0, tau_family="half_normal", tau_df=3.0,
             tau_scale=5.0, sigma_scale=5.0)


def main(argv=None) -> None:
    args = dict(DEFAULTS)
    for word in sys.argv[1:] if argv is None else argv:
        key, _, value = word.partition("=")
        if key not in DEFAULTS or not value.isdigit() or int(value) < 1:
            raise SystemExit(f"argument {word!r} not understood; allowed: "
                             + ", ".join(f"{k}=<positive integer>" for k in DEFAULTS))
        args[key] = int(value)
    n_rep = args["replicates"]
    inference = engine.Inference(chains=args["chains"], warmup=args["warmup"], draws=args["draws"])
    data, _ = sim.simulate("normal_normal", 1, n_rep, n_groups=args["n_groups"], group_size=10,
                           tau=1.0, sigma=1.0, mu=0.0)
    keys = jax.random.split(jax.random.key(0), n_rep)
    timings = []
    for _ in range(2):  # the first call compiles, the second reuses the program
        start = time.perf_counter()
        fit = engine.fit("hierarchical", data, keys, HYPER, parameterization="noncentered",
                         inference=inference)
        timings.append(time.perf_counter() - start)
    sampling = timings[1]
    min_ess = np.min([s.ess_bulk.min(axis=1) for s in fit.sites.values()], axis=0)  # per fit
    print(f"workload: hierarchical (non-centered), J={args['n_groups']}, {args['chains']} chains x "
          f"({args['warmup']} warmup + {args['draws']} draws), {n_rep} data sets, "
          f"{jax.devices()[0].platform}")
    print(f"compile (trace + XLA): {timings[0] - sampling:7.2f} s")
    print(f"sampling:              {sampling:7.2f} s  = {sampling / n_rep:.4f} s/fit"
          f"  = {n_rep / sampling:.1f} fits/s")
    print(f"smallest bulk ESS of a fit (median over fits): {np.median(min_ess):.0f}; "
          f"fits with divergences: {int((fit.n_divergent > 0).sum())}/{n_rep}")


if __name__ == "__main__":
    main()
