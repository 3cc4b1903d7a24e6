"""The benchmark's report from the methods' merged results: fits per second, the ratios of the
engine's rows to each peer's against the targets, the agreement of the posterior summaries on the
same data sets, scaling and memory; as text (``render``), as markdown (``markdown``) and as the
dictionary written to bench.json (``build_report``)."""

from __future__ import annotations

import os
import statistics
import sys
from importlib import metadata

from runs import threads
from runs.bench import BASELINES, ENGINES, METHODS, common, label
from runs.bench.memory import MEMORY_LIMIT_MB
from runs.bench.scaling import GROUP_SIZE_SLACK, GROUP_SIZES

# engine rows over these peers: (the ratio's measure, its target); "sampling" is fits per second
# without the one-off compile, "ess_per_s" effective samples per second (the median over fits of
# the smallest bulk ESS over every parameter, over seconds per fit)
TARGETS = {"numpyro_loop": ("sampling", 100.0), "pymc": ("sampling", 50.0),
           "nutpie": ("ess_per_s", 10.0), "nutpie_collapsed": ("ess_per_s", 3.0)}
ALPHA = 0.01  # family-wise error rate of the agreement check


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
        for m in BASELINES:
            if m in ran:
                ratios[f"{e}/{m}"] = {key: ran[e][field] / ran[m][field] for key, field in (
                    ("sampling", "fits_per_s"), ("with_compile", "fits_per_s_with_compile"),
                    ("ess_per_s", "ess_per_s"))}
                by_round = zip(ran[m].get("round_s_per_fit", []),
                               ran[e].get("round_s_per_fit", []))
                ratios[f"{e}/{m}"]["rounds"] = [theirs / ours for theirs, ours in by_round]
                if e == "engine":  # engine_processes fits the same data sets: see same_fits
                    agreement[f"engine/{m}"] = compare(ran["engine"], ran[m])
        for m, (measure, target) in TARGETS.items():
            value = ratios.get(f"{e}/{m}", {}).get(measure)
            targets[f"{e}/{m}"] = {"measure": measure, "target": target, "value": value,
                                   "met": None if value is None else value >= target}
    same_fits = None
    if "engine" in ran and "engine_processes" in ran:  # a fit depends on its key and data only
        means = [summary["mu"]["mean"][0] for summary in ran["engine"]["summaries"]]
        same_fits = {"data_sets": ran["engine"]["summary_data_sets"],
                     "max_abs_diff_mu_mean": max((abs(x - y) for x, y in zip(
                         means, ran["engine_processes"]["mu_means"])), default=None)}
    info = next((r for r in results.values() if "devices" in r), {})
    pymc = results.get("pymc", {})
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
            "agreement": agreement, "engine_processes_vs_engine": same_fits,
            "cold": _cold(results.get("cold")),
            "scaling": results.get("scaling"), "memory": results.get("memory"),
            "elapsed_s": elapsed}


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
        for site in common.SITES:
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


def _workload(report) -> str:
    """Which rows fit which data sets: the sentence both forms of the report open with."""
    s = report["settings"]
    engines = [m for m in report["methods"] if m in ENGINES]
    peers = [m for m in report["methods"] if m in BASELINES]
    parts = ([f"{' and '.join(engines)} on {s['replicates']} data sets"] if engines else []) + (
        [f"{', '.join(peers)} on the first {s['baseline_replicates']} of them"] if peers else [])
    return "; ".join(parts) or "no method rows"


def render(report) -> str:
    s, p = report["settings"], report["platform"]
    per_fit = [m for m, r in report["methods"].items() if r.get("compile_in_fit")]
    lines = ["== platform ==",
             f"devices: {p['devices']}; CPUs: {p['cpu_count']} ({p['cpus_usable']} usable)",
             f"python {p['python']}, jax {p['jax']}, jaxlib {p['jaxlib']}, numpyro {p['numpyro']}, "
             f"pymc {p['pymc']}",
             f"XLA_FLAGS: {p['xla_flags']}; XLA's CPU thread pool: {p['xla_pool_threads']} "
             f"thread(s) per process ({threads.ENV}={os.environ.get(threads.ENV, '1')})",
             f"JAX persistent compilation cache: {p['compilation_cache'] or 'off'}",
             "", "== throughput ==",
             f"workload: hierarchical (engine: {s['engine_parameterization']}), J={s['n_groups']}, {s['chains']} chains x "
             f"({s['warmup']} warmup + {s['draws']} draws); "
             + _workload(report)
             + (f"; {s['rounds']} rounds (the order reversed in every other one), each with the "
                f"engine rows on all {s['replicates']} data sets and the others on its share of "
                f"the {s['baseline_replicates']}" if s["rounds"] > 1 else ""),
             *_methods_table(report, sep="  ")]
    for m, r in report["methods"].items():
        for note in r.get("notes", []):
            lines.append(f"  {m}: {note}")
        if "skipped" in r:
            lines.append(f"  {m}: skipped: {r['skipped']}")
        if "error" in r:
            lines.append(f"  {m}: failed: {r['error']}")
    lines += ["  s/fit: sampling only, the one-off compile apart"
              + "".join(f"; {m} compiles in every fit, so its s/fit is its total time, compile "
                        "included" for m in per_fit),
              "", f"== ratios (fits/s of {' and '.join(ENGINES)} over each) ==",
              *_ratio_lines(report),
              "", "== targets ==", *_target_lines(report),
              "", "== agreement (engine vs each, same data sets) ==", *_agreement_lines(report),
              "", "== cold: from the command to its end, compile included ==",
              *_cold_lines(report),
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
            rows.append([label(m, report["settings"])] + ["-"] * (len(header) - 1))
            continue
        rows.append([label(m, report["settings"]), str(r["data_sets"]), f"{r['compile_s']:.1f}",
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


def _processes(report) -> int:
    return report["methods"]["engine_processes"]["processes"]


def _ratio_lines(report) -> list:
    methods = report["methods"]
    engines = [e for e in ENGINES if "s_per_fit" in methods.get(e, {})]
    if not engines:
        return [f"n/a: {' and '.join(ENGINES)} not run"]
    lines = []
    for key, r in report["ratios"].items():
        e, m = key.split("/")
        cores = _cores(report, e)
        if len(r.get("rounds", [])) > 1:
            cores += "; round by round " + ", ".join(f"{x:.3g}" for x in r["rounds"])
        head = f"{key}: ESS/s {r['ess_per_s']:.3g}; fits/s "
        if methods[m]["compile_in_fit"]:
            lines.append(f"{head}{r['sampling']:.3g}  ({e} without compile vs {m} with its "
                         f"per-fit compile{cores}); {r['with_compile']:.3g} with {e}'s one-off "
                         f"compile over {report['settings']['replicates']} data sets")
        else:
            lines.append(f"{head}{r['sampling']:.3g} without compile; "
                         f"{r['with_compile']:.3g} with each one-off compile, over "
                         f"{report['settings']['replicates']} data sets{cores}")
    for e in engines:
        for m, r in methods.items():
            if m not in ENGINES and f"{e}/{m}" not in report["ratios"]:
                lines.append(f"{e}/{m}: n/a ({m} {'skipped' if 'skipped' in r else 'failed'})")
    return lines


def _cores(report, e) -> str:
    """Where an engine row ran: `processes` processes, or `devices` devices of one process."""
    if e == "engine_processes":
        return f", {e} on {_processes(report)} processes"
    return f", {e} on {report['settings']['devices']} CPU device(s) of one process"


def _target_lines(report) -> list:
    lines = []
    for key, t in report["targets"].items():
        e, m = key.split("/")
        value = "n/a" if t["value"] is None else f"{t['value']:.3g}"
        verdict = "not measured" if t["met"] is None else ("met" if t["met"] else "NOT met")
        measure = "ESS/s" if t["measure"] == "ess_per_s" else "sampling fits/s"
        lines.append(f"{key} >= {t['target']:.0f} ({measure}{_cores(report, e)}): "
                     f"{value} -> {verdict}")
    return lines or [f"n/a: {' and '.join(ENGINES)} not run"]


def _agreement_lines(report) -> list:
    lines = []
    for key, a in report["agreement"].items():
        e, m = key.split("/")
        lines.append(
            f"{e} vs {m} on data sets {a['data_sets'][0]}..{a['data_sets'][-1]}: "
            f"{'PASS' if a['passed'] else 'FAIL'}; means: max |z| = {a['max_abs_z']:.2f} "
            f"(bound {a['bound']:.2f} over {a['comparisons']} comparisons); sds: max |z| = "
            f"{a['max_abs_z_sd']:.2f} (same bound)")
    lines = lines or [f"n/a: needs engine and at least one of {', '.join(BASELINES)}"]
    same = report.get("engine_processes_vs_engine")
    if same and same["data_sets"]:
        lines.append(f"engine_processes vs engine: max |diff| of mu means on data sets "
                     f"{same['data_sets'][0]}..{same['data_sets'][-1]}: "
                     f"{same['max_abs_diff_mu_mean']:.3g} (the same keys and data: 0 up to "
                     "float rounding)")
    return lines


def _not_run(section) -> list:
    """The lines of a section that did not run or failed; none where it ran."""
    if section is None:
        return ["not run"]
    return [f"failed: {section['error']}"] if "error" in section else []


COLD_TARGET = ("nutpie", 5.0)  # the engine's cold ESS/s over this peer's, at least


def _cold(cold):
    """The cold section with its ratios: the engine's ESS/s over each peer's."""
    if not cold or "rows" not in cold:
        return cold
    engine = cold["rows"]["engine"]
    for name, row in cold["rows"].items():
        if name != "engine" and "ess_per_s" in row and "ess_per_s" in engine:
            row["engine_over"] = engine["ess_per_s"] / row["ess_per_s"]
    peer, target = COLD_TARGET
    value = cold["rows"].get(peer, {}).get("engine_over")
    cold["target"] = {"peer": peer, "target": target, "value": value,
                      "met": None if value is None else value >= target}
    return cold


def _cold_table(report, sep) -> list:
    cold = report["cold"]
    header = ["cold job", "wall s", "fits", "s/fit", "min ESS (median)", "ESS/s",
              "engine's ESS/s over it", "note"]
    rows = []
    for name, r in cold["rows"].items():
        if "wall_s" not in r:
            rows.append([name, r.get("error") or r.get("skipped", ""), "", "", "", "", "", ""])
            continue
        over = f"{r['engine_over']:.3g}" if "engine_over" in r else ""
        rows.append([name, f"{r['wall_s']:.1f}", str(r["fits"]), f"{r['s_per_fit']:.3f}",
                     f"{r['min_ess_median']:.0f}", f"{r['ess_per_s']:.0f}", over, r["note"]])
    if sep == "|":
        return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                *("| " + " | ".join(row) + " |" for row in rows)]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    return ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in [header, *rows]]


def _cold_lines(report) -> list:
    cold = report.get("cold")
    if not cold or "rows" not in cold:
        return _not_run(cold)
    t = cold["target"]
    value = "n/a" if t["value"] is None else f"{t['value']:.3g}"
    verdict = "not measured" if t["met"] is None else ("met" if t["met"] else "NOT met")
    return [*_cold_table(report, " "),
            f"engine/{t['peer']} cold ESS/s >= {t['target']:.0f}: {value} -> {verdict}"]


def _scaling_lines(report) -> list:
    sc = report["scaling"]
    if _not_run(sc):
        return _not_run(sc)
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
    if _not_run(mem):
        return _not_run(mem)
    passed = mem["peak_rss_mb"] <= MEMORY_LIMIT_MB
    scope = (f" (one chunk of the {mem['full_replicates']}-data-set run, whose chunks run one "
             f"after another; memory_replicates={mem['full_replicates']} runs all of it)"
             if report["settings"]["memory_replicates"] == "chunk" else "")
    s = report["settings"]
    cap = f"; at most engine.BATCH = {mem['batch_cap']}" if mem.get("batch_cap") else ""
    return [f"engine on J={mem['n_groups']}, {mem['replicates']} data sets{scope}, "
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
    lines = [f"Normal-normal hierarchical model (the engine's form: "
             f"{s['engine_parameterization']}), J = {s['n_groups']}, "
             f"{s['chains']} chains × ({s['warmup']} warmup + {s['draws']} draws); "
             + _workload(report)
             + (f", in {s['rounds']} rounds (the methods' order reversed in every other one; "
                "the engine rows fit all the data sets in each)" if s["rounds"] > 1 else "")
             + ". "
             f"{p['devices']}, {p['cpu_count']} CPUs; jax {p['jax']}, numpyro {p['numpyro']}, "
             f"pymc {p['pymc']}.", "",
             *_methods_table(report, sep="|"), ""]
    lines += [f"- engine_processes: {note}"
              for note in report["methods"].get("engine_processes", {}).get("notes", [])]
    lines += [f"- {line}" for line in _ratio_lines(report) + _target_lines(report)
              + _agreement_lines(report)]
    if report.get("cold"):
        lines += ["", *_cold_table(report, "|")]
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
