"""``replicates=auto``: as many replicates as the Monte Carlo SE targets need, planned from a pilot.

A job with ``replicates=auto`` reads its settings from the ``auto`` block of ``conf/study.yaml``:
the estimand family (``estimand``, e.g. theta), the Monte Carlo standard error wanted for each
measure (``targets``, e.g. ``{coverage_90: 0.01, rmse_rel: 0.02}``: an absolute MCSE for a measure
name, an MCSE relative to the measure's value for ``<measure>_rel``), the pilot size (``pilot``),
the batch size (``batch``) and the most main replicates to run (``cap``).

The stopping rule is a two-stage design (Stein 1945), chosen because it cannot bias the estimates:

1. Pilot. ``pilot`` replicates drawn from a range of replicate indices of their own, starting at
   ``PILOT_FIRST`` (2^31), so that their data sets and sampler keys are independent of those of
   the main replicates 0, 1, 2, ... (``sim``: a replicate's data and keys depend only on the
   seed, the cell and the replicate index). They are used for one thing: to estimate, for each
   target measure, the MCSE that ``analysis.measures.summarize`` reports (the same function is
   called on the pilot's rows), which scales as 1 / sqrt(replicates): the per-replicate spread
   ``unit = MCSE(pilot) * sqrt(pilot)``.
2. Plan. The measure k needs ``n_k``, the smallest count with ``unit_k / sqrt(n_k) <= target_k``;
   the job runs N = the largest ``n_k``, rounded up to whole batches (at least one batch) and at
   most ``cap``. ``stop`` records why: ``target`` (N meets every target by the plan) or ``cap``
   (some target would need more than ``cap``; a target the pilot cannot estimate, NaN, needs
   more than any cap).
3. Main run. Replicates 0..N-1, in batches of ``batch`` (every batch the same shapes, so the one
   compiled program serves them all), and every estimate and its MCSE come from them only.

Why it is unbiased: N is a function of the pilot alone, and the pilot is independent of the main
replicates. Given N = n, the main replicates are the first n of an i.i.d. sequence that does not
depend on n, so every measure computed from them has exactly the distribution it would have in a
study with n fixed in advance: a mean over replicates (coverage, bias, MSE, mean width) is
unbiased for every n, hence unconditionally, and a smooth function of means (RMSE) keeps only its
usual fixed-n O(1/n) bias. The MCSEs that the summaries report are the usual fixed-n ones for the
same reason. A rule that stops once the running MCSE estimate reaches the target, computed from
the very replicates the estimate uses, has no such property: the MCSE of a coverage estimate
depends on the estimate (sqrt(p (1 - p) / n) is smallest near 0 and 1), so stopping favours
extreme estimates; the MCSE of an RMSE, on the spread of the errors. ``tests/test_auto.py`` shows
both on a case with a known answer.

The price: N is an estimate, so the MCSE achieved on the main replicates can miss a target a
little. The ratio of achieved to target MCSE is about sigma / s, s^2 the pilot's variance
estimate: with a pilot of 20 and near-normal replicate-level outcomes it lies between 0.76 and
1.46 in 95 % of jobs (s^2 / sigma^2 ~ chi^2_19 / 19), lower where N is rounded up to whole
batches, and spreads more for skewed outcomes (squared errors); a larger pilot narrows it. The
MCSE achieved is recorded as it is, and no replicate is added after the fact: adding replicates
because the achieved MCSE missed its target would bring the bias back.

Every main row records the plan (``auto_*`` columns, ``columns``); the pilot's rows are kept
in ``<study>/pilot/`` (``replicates_mode`` = ``pilot``), where ``analysis.load.read_results``
of the study folder does not read them.

This module is the controller, a pure function over a callable that returns the outcomes of any
replicates (``two_stage``), the planning rule (``plan``), and the MCSEs of a job's rows
(``target_mcse``); ``runs.job`` runs it on a job.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Sequence

import numpy as np

PILOT_FIRST = 2**31
"""Replicate index of the pilot's first replicate: main replicates are 0..cap-1 < PILOT_FIRST."""

MAX_CAP = 1_000_000
"""The largest cap and pilot allowed: main replicate indices stay far below PILOT_FIRST, and the
pilot's below 2^32 (replicate indices are folded into the keys as 32-bit integers)."""

SETTINGS = ("estimand", "targets", "pilot", "batch", "cap")
"""The keys of the ``auto`` block."""

LEVELS = (50, 80, 90, 95)
_PLAIN = ("bias", "mse", "rmse", "empse", "posterior_sd", "model_se")
_SCALED = ("mse", "rmse", "empse", "posterior_sd", "model_se")
TARGETS = (
    *_PLAIN,
    *(f"coverage_{lv}" for lv in LEVELS),
    *(f"width_{lv}" for lv in LEVELS),
    *(f"{m}_rel" for m in (*_SCALED, *(f"width_{lv}" for lv in LEVELS))),
)
"""Measures a target may name: a measure of ``analysis.measures.summarize`` (its MCSE is the
target) or ``<measure>_rel`` (its MCSE over the measure's absolute value)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """The ``auto`` block of a job (checked by ``runs.config``)."""

    estimand: str  # the estimand family whose measures the targets are on (theta, mu, ...)
    targets: dict  # measure -> MCSE wanted
    pilot: int  # pilot replicates (their own index range), >= 2
    batch: int  # replicates per batch, >= 1
    cap: int  # most main replicates, >= batch

    @classmethod
    def of(cls, block) -> "Settings":
        """From the ``auto`` block of a config (a mapping)."""
        return cls(
            estimand=str(block["estimand"]),
            targets={str(k): float(v) for k, v in dict(block["targets"]).items()},
            pilot=int(block["pilot"]),
            batch=int(block["batch"]),
            cap=int(block["cap"]),
        )


@dataclasses.dataclass(frozen=True)
class Plan:
    """How many main replicates to run, and why."""

    n: int  # main replicates to run: whole batches, at least one batch, at most cap
    needed: dict  # target -> smallest count meeting it (inf where the pilot gives no MCSE)
    stop: str  # "target": n meets every target by the plan; "cap": some target needs more

    @property
    def n_needed(self) -> float:
        """The count every target needs (the largest), before rounding and the cap."""
        return max(self.needed.values(), default=0)


def replicates_needed(unit: float, target: float) -> float:
    """The smallest n with ``unit / sqrt(n) <= target`` (an MCSE that is ``unit`` for one
    replicate), at least 1; inf when ``unit`` is not a finite number."""
    if not math.isfinite(unit) or unit < 0:
        return math.inf
    n = max(1, math.ceil((unit / target) ** 2))
    # (unit / target)^2 may come out a hair above an integer that meets the target
    while n > 1 and unit / math.sqrt(n - 1) <= target:
        n -= 1
    return n


def plan(unit: dict, targets: dict, batch: int, cap: int) -> Plan:
    """The main run's size from each target's per-replicate MCSE ``unit`` (MCSE x sqrt(count)):
    the smallest whole number of batches meeting every target, at least one batch, at most
    ``cap``; ``stop`` says whether the cap cut it."""
    needed = {k: replicates_needed(unit.get(k, math.nan), t) for k, t in targets.items()}
    most = max(needed.values(), default=1)
    if most > cap:
        return Plan(n=cap, needed=needed, stop="cap")
    return Plan(n=min(cap, batch * math.ceil(most / batch)), needed=needed, stop="target")


def batches(indices: np.ndarray, size: int) -> list[np.ndarray]:
    """``indices`` in consecutive pieces of ``size`` (the last one may be shorter)."""
    indices = np.asarray(indices)
    return [indices[i:i + size] for i in range(0, len(indices), size)]


@dataclasses.dataclass
class Outcome:
    """What ``two_stage`` did: the outcomes of each batch, the plan and the MCSEs."""

    settings: Settings
    pilot: list  # fit's return value for each pilot batch
    main: list  # fit's return value for each main batch
    pilot_mcse: dict  # target -> MCSE on the pilot replicates
    unit: dict  # target -> pilot MCSE x sqrt(pilot)
    plan: Plan
    mcse: dict  # target -> MCSE achieved on the main replicates
    seconds: float  # time spent in two_stage

    @property
    def met(self) -> dict:
        """target -> whether the MCSE achieved on the main replicates meets it."""
        return {k: bool(self.mcse.get(k, math.nan) <= t) for k, t in self.settings.targets.items()}


def two_stage(
    fit: Callable[[np.ndarray], object],
    mcse: Callable[[Sequence], dict],
    settings: Settings,
    *,
    pilot: list | None = None,
    on_batch: Callable[[str, int, int, np.ndarray, float], None] | None = None,
) -> Outcome:
    """Run the two-stage design (see the module's docstring).

    ``fit(indices)`` returns the outcomes of the replicates ``indices`` (at most ``batch`` of
    them); ``mcse(outcomes)`` takes a list of such returns and gives {target: MCSE} over all
    their replicates. ``pilot`` passes the pilot's outcomes when they were computed before (a
    list of fit returns of replicates PILOT_FIRST + 0..pilot-1). ``on_batch(stage, done, of,
    indices, seconds)`` is called after each batch: the stage (pilot, main), its replicates done
    and in all, the batch's replicate indices and how long it took.
    """
    started = time.perf_counter()
    if pilot is None:
        pilot = run_pilot(fit, settings, on_batch=on_batch)
    pilot_mcse = mcse(pilot)
    unit = {k: float(pilot_mcse.get(k, math.nan)) * math.sqrt(settings.pilot)
            for k in settings.targets}
    chosen = plan(unit, settings.targets, settings.batch, settings.cap)
    main = _run_batches(fit, "main", np.arange(chosen.n), settings.batch, on_batch)
    return Outcome(settings, pilot, main, pilot_mcse, unit, chosen, mcse(main),
                   time.perf_counter() - started)


def run_pilot(fit, settings: Settings, *, on_batch=None) -> list:
    """The pilot stage alone: ``fit`` on replicates PILOT_FIRST + 0..pilot-1, in batches."""
    indices = PILOT_FIRST + np.arange(settings.pilot)
    return _run_batches(fit, "pilot", indices, settings.batch, on_batch)


def _run_batches(fit, stage: str, indices: np.ndarray, size: int, on_batch) -> list:
    out, done = [], 0
    for part in batches(indices, size):
        t0 = time.perf_counter()
        out.append(fit(part))
        done += len(part)
        if on_batch is not None:
            on_batch(stage, done, len(indices), part, time.perf_counter() - t0)
    return out


# ------------------------------------------------------------------ on a job's rows
def target_mcse(rows, settings: Settings) -> dict:
    """{target: the MCSE ``analysis.measures.summarize`` reports for it} on a job's rows (any
    replicates; NaN where the rows have no such measure)."""
    from analysis import measures

    out = {k: math.nan for k in settings.targets}
    rows = rows[rows["param"] == settings.estimand]
    if rows.empty:
        return out
    if "config_hash" not in rows:
        rows = rows.assign(config_hash="job")
    summary = measures.summarize(rows, param=settings.estimand, reference=None)
    if summary.empty:
        return out
    first = summary.iloc[0]
    for k in settings.targets:
        name = k.removesuffix("_rel")
        value, se = float(first.get(name, math.nan)), float(first.get(f"{name}_mcse", math.nan))
        if k.endswith("_rel"):
            out[k] = se / abs(value) if value != 0 else math.nan
        else:
            out[k] = se
    return out


def columns(outcome: Outcome) -> dict:
    """The ``auto_*`` columns of a job's main rows (one value each)."""
    s, p = outcome.settings, outcome.plan
    out = {
        "auto_estimand": s.estimand,
        "auto_pilot": s.pilot,
        "auto_batch": s.batch,
        "auto_cap": s.cap,
        "auto_needed": float(p.n_needed),
        "auto_planned": p.n,
        "auto_stop": p.stop,
    }
    for k, t in s.targets.items():
        out[f"auto_target_{k}"] = t
        out[f"auto_pilot_mcse_{k}"] = float(outcome.pilot_mcse.get(k, math.nan))
        out[f"auto_mcse_{k}"] = float(outcome.mcse.get(k, math.nan))
        out[f"auto_met_{k}"] = outcome.met[k]
    return out


def describe(outcome: Outcome) -> str:
    """One line: the plan, and each target against what was achieved."""
    p = outcome.plan
    parts = [
        f"{k} MCSE {outcome.mcse[k]:.4g} (target {t:g}, {'met' if outcome.met[k] else 'missed'})"
        for k, t in outcome.settings.targets.items()
    ]
    why = ("planned count reached" if p.stop == "target"
           else f"the cap: the targets needed {p.n_needed:.0f}")
    return f"auto: {p.n} main replicates (stop: {p.stop}, {why}); " + "; ".join(parts)
