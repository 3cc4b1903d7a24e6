"""The results store: one parquet file per job, one row per (replicate, estimand).

Columns, in order (``docs/results.md`` documents each):

* identity: ``study``, ``scenario``, every scenario parameter, ``prior``,
  ``prior_parameterization``, ``prior_<hyperparameter>`` for each of the spec's hyperparameters,
  the inference settings (``chains``, ``warmup``, ``draws``, ``target_accept``,
  ``max_tree_depth``), ``seed``, ``replicates_mode`` (``fixed``, ``auto``; ``pilot`` in a pilot
  file), then, for a job with replicates=auto (``runs.auto``), its plan: ``auto_estimand``,
  ``auto_pilot``, ``auto_batch``, ``auto_cap``, ``auto_needed`` (the count every target needed
  by the pilot, inf where the pilot gave no MCSE), ``auto_planned`` (the main replicates run),
  ``auto_stop`` (``target``: the planned count was reached; ``cap``: the targets needed more)
  and, for each target measure k, ``auto_target_k``, ``auto_pilot_mcse_k`` (on the pilot),
  ``auto_mcse_k`` (achieved on the main replicates, as the summaries report it) and
  ``auto_met_k``; then ``replicate``;
* the estimand: ``param`` (theta, mu, tau, sigma; p for binomial data), ``index`` (group j for
  theta and p, 0 otherwise), ``true_value``, ``raw_estimate`` (the group's own estimate before any
  pooling: ybar_j, y_j or the empirical logit for theta, successes / trials for p; NaN for the
  others);
* the posterior: ``posterior_mean``, ``posterior_sd``, ``posterior_median``, and ``lower_L`` /
  ``upper_L`` for the central L % interval, L in 50, 80, 90, 95, and ``truth_cdf``, the posterior
  probability below the true value (the share of draws below it; NaN for closed-form specs), from
  which the coverage of a central interval of any level follows; ``exact_mean``, ``exact_sd``
  and ``exact_truth_cdf``: the same of the exact posterior, where the spec has a quadrature
  reduction (``models.exact``; NaN elsewhere);
* diagnostics: ``mcse_mean`` and ``mcse_sd`` (Monte Carlo standard errors of the posterior mean
  and sd), ``rhat``, ``ess_bulk`` and ``ess_tail`` (this estimand), ``n_divergent``,
  ``n_max_treedepth``, ``n_leapfrog``, ``sampled_rhat`` and ``sampled_ess`` (the whole fit; the
  last two over the coordinates the sampler moved), ``status`` (this estimand: ok, low_ess,
  high_rhat, divergent, nonfinite, skipped; ``runs.job`` adds failed for a fit that raised;
  see ``estimand_status``) and ``skip_reason`` (why a data set was not fitted, or the error of a
  failed fit, else "");
* provenance: ``config_hash``, ``results_version`` (``models.engine.RESULTS_VERSION`` of the code
  that wrote the file), ``code_version``, ``package_versions`` (JSON), ``created_at`` (UTC),
  ``job_seconds``.

Files are written under a temporary name in the same folder, flushed to disk and renamed into
place, so a reader never sees half a file, even when the writer is killed; the next job that
writes the same file removes a killed writer's temporary file. A write that fails (no space left,
permission lost, a disk error) removes its temporary file before the error propagates.
"""

from __future__ import annotations

import datetime as dt
import errno
import functools
import glob
import importlib.metadata
import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from models import engine
from models.engine import LEVELS, QUANTILES, FitSummary

RHAT_LIMIT = 1.01
"""An estimand whose rank R-hat exceeds this is labelled ``high_rhat`` (Vehtari et al. 2021)."""

ESS_PER_CHAIN = 100
"""An estimand whose bulk or tail ESS is under this many per chain (400 for 4 chains) is labelled
``low_ess`` (Vehtari et al. 2021, §4: 'ESS > 400')."""

SEVERITY = ("ok", "low_ess", "high_rhat", "divergent", "nonfinite", "skipped")
"""Status labels from the mildest to the worst; a row gets the worst that applies."""


def estimand_status(fit: FitSummary, chains: int | None = None) -> dict:
    """{site: (R, P) labels}: each estimand judged on its own diagnostics, so that the share of
    flagged estimands does not grow with their number. The fit's divergent transitions, and a
    data set the spec could not fit (``FitSummary.skipped`` says why), label all of its rows;
    a non-finite mean (a non-finite draw) labels the estimand. ``chains`` sets the ESS bound
    (``ESS_PER_CHAIN`` each); closed-form specs have no diagnostics and are ``ok``."""
    out = {}
    for name, s in fit.sites.items():
        level = np.zeros(s.mean.shape, int)
        if chains:
            low = (np.fmin(s.ess_bulk, s.ess_tail) < ESS_PER_CHAIN * chains)
            level = np.maximum(level, np.where(low, 1, 0))
        level = np.maximum(level, np.where(s.rhat > RHAT_LIMIT, 2, 0))
        level = np.maximum(level, np.where((fit.n_divergent > 0)[:, None], 3, 0))
        # closed-form specs leave the sd and interval of a point estimate NaN on purpose, so
        # only the means are checked
        level = np.maximum(level, np.where(np.isfinite(s.mean), 0, 4))
        if fit.skipped is not None:
            level = np.maximum(level, np.where((fit.skipped != "")[:, None], 5, 0))
        out[name] = np.asarray(SEVERITY, dtype=object)[level]
    return out


def worst(labels) -> str:
    """The worst of some status labels (``SEVERITY``; ``failed`` worst of all): a fit's status
    from its rows'."""
    labels = set(labels)
    return "failed" if "failed" in labels else max(labels, key=SEVERITY.index)


def fit_status(fit: FitSummary, chains: int | None = None) -> np.ndarray:
    """One label per fit: the worst of its estimands' labels (``estimand_status``)."""
    worst = np.zeros(fit.n_divergent.shape[0], int)
    for labels in estimand_status(fit, chains).values():
        level = np.vectorize(SEVERITY.index, otypes=[int])(labels)
        worst = np.maximum(worst, level.max(axis=1, initial=0))
    return np.asarray(SEVERITY, dtype=object)[worst]


def rows(
    fit: FitSummary,
    truth: dict,
    replicates: np.ndarray,
    identity: dict,
    raw: dict | None = None,
    n_draws: int | None = None,
    chains: int | None = None,
    exact: dict | None = None,
) -> pd.DataFrame:
    """The long table of one job: identity columns first, then one row per (replicate, estimand).

    ``raw`` ({site: (R, J)}) holds each group's own estimate before pooling (``raw_estimate``);
    ``n_draws`` is the number of draws ``fit.ranks`` were counted among, so that
    ``truth_cdf`` = rank / n_draws is the posterior probability below the true value (NaN for
    specs that make no draws, whose intervals exist at the four levels only).
    """
    status = estimand_status(fit, chains)
    q_index = {q: i for i, q in enumerate(QUANTILES)}
    frames = []
    for name, s in fit.sites.items():
        n_rep, n_par = s.mean.shape
        true = _per_estimand(truth.get(name), n_rep, n_par)
        ranks = None if fit.ranks is None else fit.ranks.get(name)
        cdf = (
            np.full((n_rep, n_par), np.nan)
            if ranks is None or not n_draws
            else np.where(np.isfinite(true), np.asarray(ranks, float) / n_draws, np.nan)
        )
        cols = {
            "replicate": np.repeat(replicates, n_par),
            "param": name,
            "index": np.tile(np.arange(n_par), n_rep),
            "true_value": true.ravel(),
            "raw_estimate": _per_estimand((raw or {}).get(name), n_rep, n_par).ravel(),
            "posterior_mean": s.mean.ravel(),
            "posterior_sd": s.sd.ravel(),
            "posterior_median": s.quantiles[:, q_index[0.5], :].ravel(),
        }
        for level in LEVELS:
            pct = round(100 * level)
            cols[f"lower_{pct}"] = s.quantiles[:, _find(q_index, (1 - level) / 2), :].ravel()
            cols[f"upper_{pct}"] = s.quantiles[:, _find(q_index, (1 + level) / 2), :].ravel()
        cols["truth_cdf"] = np.asarray(cdf, float).ravel()
        exact_site = (exact or {}).get(name)
        for i, column in enumerate(("exact_mean", "exact_sd", "exact_truth_cdf")):
            cols[column] = (np.full(n_rep * n_par, np.nan) if exact_site is None
                            else np.asarray(exact_site[i], float).reshape(n_rep, n_par).ravel())
        cols["mcse_mean"] = s.mcse_mean.ravel()
        cols["mcse_sd"] = s.mcse_sd.ravel()
        cols["rhat"] = s.rhat.ravel()
        cols["ess_bulk"] = s.ess_bulk.ravel()
        cols["ess_tail"] = s.ess_tail.ravel()
        cols["n_divergent"] = np.repeat(fit.n_divergent, n_par)
        cols["n_max_treedepth"] = np.repeat(fit.n_max_treedepth, n_par)
        cols["n_leapfrog"] = np.repeat(fit.n_leapfrog, n_par)
        cols["sampled_rhat"] = np.repeat(_per_fit(fit.sampled_rhat, n_rep), n_par)
        cols["sampled_ess"] = np.repeat(_per_fit(fit.sampled_ess, n_rep), n_par)
        cols["status"] = status[name].ravel()
        cols["skip_reason"] = np.repeat(
            np.full(n_rep, "", object) if fit.skipped is None else fit.skipped, n_par
        )
        frames.append(pd.DataFrame(cols))
    body = pd.concat(frames, ignore_index=True).sort_values(
        ["replicate", "param", "index"], kind="stable", ignore_index=True
    )
    head = pd.DataFrame({k: [v] * len(body) for k, v in identity.items()})
    out = pd.concat([head, body], axis=1)
    out["replicate"] = out["replicate"].astype("int64")
    out["index"] = out["index"].astype("int64")
    return out


def _per_fit(values, n_rep: int) -> np.ndarray:
    return np.full(n_rep, np.nan) if values is None else np.asarray(values, float)


def _per_estimand(values, n_rep: int, n_par: int) -> np.ndarray:
    """(R, P) values of one site (NaN where there are none), broadcast from (R,), (R, P) or a scalar."""
    if values is None:
        return np.full((n_rep, n_par), np.nan)
    values = np.asarray(values, float)
    return np.broadcast_to(values.reshape(n_rep, -1) if values.size > 1 else values, (n_rep, n_par))


def _find(q_index: dict, q: float) -> int:
    return q_index[min(q_index, key=lambda k: abs(k - q))]


def write_atomic(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` to ``path`` as parquet via a temporary file renamed into place.

    The temporary file is hidden (its name starts with ".", so readers skip it), lies in the same
    folder (so the rename is atomic, on a cluster's shared file system too), carries the writer's
    host and process id (so a later job can tell a dead writer's leftover, see
    ``remove_stale_temps``) and is flushed to disk before the rename: ``path`` holds either
    nothing or a whole file, whenever the writer is killed. The bytes depend on ``df`` only.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            df.to_parquet(out, index=False)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            Path(tmp).unlink(missing_ok=True)
        except OSError:  # the folder itself failed: the error that matters is the write's
            pass
        raise
    _fsync_folder(path.parent)


def os_error(err: OSError) -> str:
    """An ``OSError`` in words: its message and its errno's name, e.g. "No space left on device
    (ENOSPC)"."""
    name = errno.errorcode.get(err.errno) if err.errno else None
    text = err.strerror or " ".join(str(err).split()) or type(err).__name__
    return f"{text} ({name})" if name else text


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{socket.gethostname()}@{os.getpid()}."


def own_temps(path: Path) -> list[Path]:
    """The temporary files of ``path`` that this process has open or left (none after a write,
    whole or failed, unless the folder refused their removal)."""
    return sorted(path.parent.glob(f"{glob.escape(_temp_prefix(path))}*.tmp"))


STALE_AFTER_S = 3600.0
"""A temporary file this old is a dead writer's, whatever host wrote it: writing one result file
takes well under a second."""


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temporary files of ``path`` left by writers that were killed mid-write: those of
    this host whose process is gone, and any older than ``STALE_AFTER_S``. Return them."""
    removed = []
    host = socket.gethostname()
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        writer_host, _, rest = tmp.name[len(path.name) + 2:].rpartition("@")
        try:
            dead = writer_host == host and not _alive(int(rest.split(".")[0]))
            if dead or time.time() - tmp.stat().st_mtime > STALE_AFTER_S:
                tmp.unlink()
                removed.append(tmp)
        except (OSError, ValueError):  # gone meanwhile, or not a name we wrote
            continue
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (where the file system allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@functools.cache
def code_version() -> str:
    """``git describe`` of the checkout (``-dirty`` if it has changes), else the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=root, capture_output=True, text=True, timeout=10, check=True,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},  # read only: no index refresh
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"hierbench-{importlib.metadata.version('hierbench')}"


@functools.cache
def package_versions() -> str:
    names = ("hierbench", "jax", "jaxlib", "numpyro", "numpy", "pandas", "pyarrow", "hydra-core")
    return json.dumps({n: _version(n) for n in names}, sort_keys=True)


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def provenance(config_hash: str, seconds: float) -> dict:
    """The provenance columns of a table written now (see the module's docstring); the results
    version is read when called, so the file records the version of the code that computed it."""
    return {
        "config_hash": config_hash,
        "results_version": engine.RESULTS_VERSION,
        "code_version": code_version(),
        "package_versions": package_versions(),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "job_seconds": round(seconds, 3),
    }
