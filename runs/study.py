"""``python -m runs.study``: the Hydra app of a simulation study (root config ``conf/study.yaml``).

Each job fits one prior spec on every replicate of one cell and writes one parquet file; the
default grid in ``hydra.sweeper.params`` makes a plain call a multirun.

Before any job starts, ``Preflight`` (a Hydra callback, ``hydra.callbacks.preflight``) composes
the config of every job of the sweep and checks it (``runs.config.validate``: values, and that
the results folder takes files), refuses a sweep that lists one job twice, and says how many
jobs are done already; a bad value stops the whole sweep with one line, before anything is
written. A job counts as done when its result file passes ``runs.verify``'s checks (footer,
schema, rows, the job's hash and replicates, never the whole file); a file that fails is moved
aside to ``<study>/damaged/``, the preflight's line counts it, and its job runs again. A sweep
whose every job is done ends there. After each job it logs how many jobs and replicates of the
sweep are done and an estimate of the time left. A job with ``replicates=auto`` learns its
replicate count as it runs: its replicates are counted from its file when it is done, and a
sweep with such jobs says so, counts the replicates done so far, and estimates the time left by
jobs. A job whose result file cannot be written (no space left, say) ends with one line naming
the file and the cause while the sweep goes on; at the sweep's end one line counts the jobs that
wrote no file, and the program exits with status 1. It runs with any launcher (joblib,
submitit): the launcher carries the callback to the processes that run the jobs.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from pathlib import Path

import hydra
import pyarrow as pa
import pyarrow.parquet as pq
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from runs import config, job, threads, verify

log = logging.getLogger(__name__)

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


@hydra.main(version_base="1.3", config_path="../conf", config_name="study")
def main(cfg: DictConfig) -> None:
    if not run_job(cfg) and _single_run():
        sys.exit(1)


def run_job(cfg: DictConfig) -> bool:
    """Run one job; a result file that cannot be written ends it with one line (the sweep goes
    on, and its end counts the job). Return whether the job's file is there."""
    try:
        job.run(cfg)
    except job.WriteError as err:
        log.error("%s", err)
        return False
    finally:
        settle_garbage()
    return True


def settle_garbage() -> None:
    """Collect the job's cyclic garbage, then freeze what is left (``gc.freeze``): the
    process's long-lived objects (modules, traced and compiled programs, caches: some 400,000
    objects after a few NUTS jobs) are not walked again by later collections. A joblib worker
    runs a full collection after every job that takes more than a second (loky's check for
    leaks, without psutil), which walked them all after every job: 0.16-0.26 s a job. With
    them frozen, a collection walks only what the jobs since the last freeze made (0-15 ms)."""
    gc.collect()
    gc.freeze()


def _single_run() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.get().mode == RunMode.RUN


def sweep_jobs(cfg: DictConfig) -> list[tuple[list[str], DictConfig]]:
    """(overrides, composed config) of every job of the multirun ``cfg``, as the basic sweeper
    forms them: the grid of ``hydra.sweeper.params`` with the command line's overrides on top."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    loader = GlobalHydra.instance().config_loader()
    params = OmegaConf.to_container(cfg.hydra.sweeper.get("params") or {}, resolve=True)
    words = [f"{k}={v}" for k, v in params.items()]
    words += OmegaConf.to_container(cfg.hydra.overrides.task, resolve=False)
    overrides = OverridesParser.create(config_loader=loader).parse_overrides(words)
    jobs = [o for batch in BasicSweeper.split_arguments(overrides, None) for o in batch]
    return [(list(o), _compose(loader, cfg, o)) for o in jobs]


_CHECKED: set[tuple[str, ...]] = set()
"""The override lists of the jobs the preflight has composed and checked in this process."""


def _skip_checked(validate):
    """Hydra's basic sweeper composes every job's config once more before it launches them (to
    catch composition errors early), about 45 ms a job: a batch the preflight has composed and
    checked already is not composed again."""

    def validate_batch_is_legal(self, batch):
        if not all(tuple(overrides) in _CHECKED for overrides in batch):
            validate(self, batch)

    return validate_batch_is_legal


def _compose(loader, cfg: DictConfig, overrides: list[str]) -> DictConfig:
    from hydra.errors import HydraException, MissingConfigException

    try:
        return loader.load_sweep_config(cfg, list(overrides))
    except MissingConfigException as err:  # an unknown group choice, e.g. from an experiment
        group, _, name = str(err.missing_cfg_file or "").rpartition("/")
        known = ", ".join(sorted(err.options or []))
        raise config.ConfigError(
            f"{group}={name!r} is not allowed: one of {known}" if group and known
            else _one_line(err)
        ) from None
    except HydraException as err:
        raise config.ConfigError(_one_line(err)) from None


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


class Plan:
    """A checked sweep: every job's result file and replicate count (None for replicates=auto:
    not known in advance), and what was done before."""

    def __init__(self, jobs: list[tuple[list[str], DictConfig]]):
        self.paths: list[str] = []
        self.hashes: list[str] = []
        self.replicates: list[int | None] = []
        self.auto: dict[int, tuple[int, int]] = {}  # job number -> (pilot, cap) of auto jobs
        self.forced: list[bool] = []
        self.started = time.time()
        first: dict[Path, int] = {}
        for number, (overrides, cfg) in enumerate(jobs):
            try:
                config.validate(cfg, writable=False)
            except config.ConfigError as err:
                raise config.ConfigError(f"{err} (job #{number}: {' '.join(overrides)})") from None
            chash = config.config_hash(config.identity(cfg))
            path = job.result_path(cfg, chash)
            if path in first:
                raise config.ConfigError(
                    f"jobs #{first[path]} and #{number} are the same job ({path.name}): "
                    "the sweep lists it twice; remove one of the repeated values"
                )
            first[path] = number
            self.paths.append(str(path.absolute()))
            self.hashes.append(chash)
            if cfg.replicates == "auto":
                self.replicates.append(None)
                self.auto[number] = (int(cfg.auto.pilot), int(cfg.auto.cap))
            else:
                self.replicates.append(int(cfg.replicates))
            self.forced.append(bool(cfg.force))
        for folder in sorted({Path(p).parent for p in self.paths}):
            config.check_writable(folder, "results_root", str(folder.parent))
        self.damaged: list[Path] = []  # where set_aside_damaged put the files it moved
        self.done_before = self.done()[0]

    def set_aside_damaged(self) -> list[Path]:
        """Check the result file of every job that would be skipped (``runs.verify``); move each
        that fails to ``damaged/`` beside it, so that its job runs again. Return where they went
        (one warning line each names the file and what is wrong with it); ``ConfigError`` naming
        a file that cannot be moved."""
        for path, chash, wanted, forced in zip(self.paths, self.hashes, self.replicates,
                                               self.forced):
            path = Path(path)
            if forced or not path.exists():
                continue
            damage = verify.problem(path, chash, wanted)
            if damage is not None:
                try:
                    self.damaged.append(verify.set_aside(path, damage))
                except verify.CannotSetAside as err:
                    raise config.ConfigError(str(err)) from None
                log.warning("preflight: %s: damaged, %s; moved to %s", path, damage,
                            self.damaged[-1])
        self.done_before = self.done()[0]
        return self.damaged

    def missing(self) -> list[Path]:
        """The jobs' result files that are not there (for a job with force=true: not written since
        the sweep started)."""
        return [
            Path(p) for p, forced in zip(self.paths, self.forced)
            if not _written_since(Path(p), self.started if forced else None)
        ]

    def done(self) -> tuple[int, int]:
        """(jobs, replicates) whose result file exists (for a job run with force=true: was
        written since the sweep started)."""
        finished = [
            r if r is not None else _replicates_in(Path(p))
            for p, r, forced in zip(self.paths, self.replicates, self.forced)
            if _written_since(Path(p), self.started if forced else None)
        ]
        return len(finished), sum(finished)

    def fixed_replicates(self) -> int:
        return sum(r for r in self.replicates if r is not None)

    def size(self) -> str:
        """The sweep's replicates: a count, or what is known of it with replicates=auto jobs."""
        if not self.auto:
            return f"{self.fixed_replicates()} replicates"
        sizes = sorted({f"pilot {p} + up to {c}" for p, c in self.auto.values()})
        text = f"{len(self.auto)} with replicates=auto: {' or '.join(sizes)} replicates each"
        fixed = len(self.paths) - len(self.auto)
        return text + (f"; {fixed} with {self.fixed_replicates()} replicates" if fixed else "")

    def progress(self) -> str:
        jobs, reps = self.done()
        elapsed = time.time() - self.started
        new = jobs - self.done_before
        left = len(self.paths) - jobs
        by_jobs = " (by jobs)" if self.auto else ""
        if left == 0:
            eta = "none left"
        elif new > 0:
            eta = f"about {_duration(elapsed / new * left)} left{by_jobs}"
        else:
            eta = "time left not known yet"
        count = (
            f"{reps} replicates so far; replicates=auto: counts not known in advance"
            if self.auto else f"{reps} of {self.fixed_replicates()} replicates"
        )
        return (
            f"progress: {jobs} of {len(self.paths)} jobs done ({count}), "
            f"{_duration(elapsed)} elapsed, {eta}"
        )


def _replicates_in(path: Path) -> int:
    """The main replicates in a result file (0 if it cannot be read)."""
    try:
        return len(pq.read_table(path, columns=["replicate"]).column(0).unique())
    except (OSError, ValueError, KeyError, pa.ArrowException):
        return 0


def _written_since(path: Path, since: float | None) -> bool:
    """``path`` exists, and (if ``since``) was written after it, give or take the 1 s that
    some file systems round modification times to."""
    try:
        written = path.stat().st_mtime
    except FileNotFoundError:
        return False
    return since is None or written >= since - 1.0


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m} min"


class Preflight(Callback):
    """Check every job of a run or sweep before any compute; report progress after each job."""

    def __init__(self) -> None:
        self.plan: Plan | None = None

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _stop_on_error(lambda: _check_one(config))

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
            log.info("preflight: sweeper %s: jobs are checked as they start",
                     config.hydra.sweeper.get("_target_"))
            return
        jobs = _stop_on_error(lambda: sweep_jobs(config))
        self.plan = _stop_on_error(lambda: Plan(jobs))
        _CHECKED.update(tuple(overrides) for overrides, _ in jobs)
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        if "validate_batch_is_legal" not in vars(BasicSweeper):  # once per process
            validate = BasicSweeper.validate_batch_is_legal
            BasicSweeper.validate_batch_is_legal = _skip_checked(validate)
        damaged = _stop_on_error(self.plan.set_aside_damaged)
        n = len(self.plan.paths)
        aside = ""
        if damaged:
            folders = ", ".join(sorted({str(p.parent) for p in damaged}))
            many = len(damaged) > 1
            aside = (f"; {len(damaged)} result file{'s' if many else ''} damaged, moved to "
                     f"{folders}: {'their jobs run' if many else 'its job runs'} again")
        log.info(
            "preflight: %d jobs (%s) checked; %d done already (skipped unless "
            "force=true), %d to run%s", n, self.plan.size(), self.plan.done_before,
            n - self.plan.done_before, aside,
        )
        if self.plan.done_before == n:  # (a job with force=true is never done before)
            # nothing to compute: end here rather than start a worker per job only to skip it
            log.info("preflight: every job of the sweep is done; nothing to run")
            sys.exit(0)
        share_cores(config, n - self.plan.done_before)
        _stop_on_error(lambda: share_programs([cfg for _, cfg in jobs]))

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        if self.plan is not None:
            log.info(self.plan.progress())

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        """The sweep's end: if some jobs wrote no result file, one line counts and names them, and
        the program exits with status 1 (the same command runs them again)."""
        if self.plan is None:
            return
        missing = self.plan.missing()
        if missing:
            names = ", ".join(p.name for p in missing[:3]) + (", ..." if len(missing) > 3 else "")
            sys.exit(
                f"error: {len(missing)} of {len(self.plan.paths)} jobs wrote no result file "
                f"({names}; the lines above say why): the same command runs them again"
            )


JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def share_cores(cfg: DictConfig, to_run: int) -> None:
    """With the joblib launcher, no more worker processes than jobs to run: a one-job study runs
    in this process, with no worker to start. Each job fits on ``HIERBENCH_DEVICES`` CPU devices
    (default 1; read by ``runs.job``, inherited by the workers): more splits its data sets over
    that many cores, each compiling the program for itself (docs/studies.md has the figures:
    from a cold start the second compile costs more than it saves on 100 fits; with the
    compilation cache warm, two devices halve the sampling time)."""
    from omegaconf import open_dict, read_write

    if cfg.hydra.launcher.get("_target_") != JOBLIB_LAUNCHER:
        return
    cores = threads.usable_cpus()
    n_jobs = int(cfg.hydra.launcher.n_jobs)
    workers = cores if n_jobs == -1 else n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
    workers = max(1, min(workers, to_run))
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.launcher.n_jobs = workers
    devices = threads.job_devices()
    log.info("preflight: %d worker process%s, each job on %d CPU device%s", workers,
             "es" if workers > 1 else "", devices, "s" if devices > 1 else "")


def share_programs(jobs: list[DictConfig]) -> None:
    """Pad every job's groups to the largest J of the sweep (``runs.job.PAD_ENV``, inherited by
    the workers; ``models.padding``): the jobs of a spec whose sampler moves no value per group
    (theta integrated out) then share one sampler program whatever their J, one compile instead
    of one per J. An ``HIERBENCH_PAD_GROUPS`` already set (empty: no padding) is kept, and
    checked here, before any job (``ConfigError``: one line)."""
    if job.PAD_ENV in os.environ:
        job.pad_groups()
        return
    groups = [c.scenario.get("n_groups") for c in jobs]
    groups = [g for g in groups if isinstance(g, int)]
    if groups:
        os.environ[job.PAD_ENV] = str(max(groups))


def _check_one(cfg: DictConfig) -> None:
    config.validate(cfg)


def _stop_on_error(check):
    """Run ``check``; a ConfigError ends the program with its one line (before anything is
    written: Hydra creates the run's folders after these callbacks)."""
    try:
        return check()
    except config.ConfigError as err:
        sys.exit(f"error: {err}")


def cli() -> None:
    """Check the command line's config-group names and keys, then run the Hydra app."""
    config.check_command_line(sys.argv[1:], "study")
    main()


if __name__ == "__main__":
    cli()
