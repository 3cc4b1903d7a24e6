"""A damaged result file is recomputed, never counted as done; a failed write leaves nothing.

A study of 4 closed-form jobs (2 priors x 2 cells, 3 replicates each: no compile) is run once;
each test damages a copy of its folder and runs the same sweep again, as ``python -m runs.study``
runs it: the preflight (``runs.study.Preflight``), then every job (``runs.study.run_job``), then
the sweep's end. One fault goes through the real command in a process of its own, and one through
``runs.job.run`` alone (a job launched without the preflight, as on a cluster). After every rerun
the folder holds each job's rows exactly once, equal to the undamaged run's, and the damaged file
is kept in ``damaged/``.
"""

from __future__ import annotations

import errno
import logging
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import read_write

from analysis.load import ResultsError, read_results
from models import engine
from runs import job, study, verify
from tests.helpers import CONF, TINY, compose_study
from tests.test_resume import KEYS, ROOT, _command, _tidy

PRIORS = "james_stein,no_pooling_ml"
TAUS = "0.5,2"
JOBS = 4


class _Log(logging.Handler):
    """The messages logged at INFO and above while it is attached to the root logger."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _sweep(root: Path) -> tuple[str, str | None]:
    """The sweep ``python -m runs.study <TINY> prior=PRIORS scenario.tau=TAUS`` run in this
    process, jobs one after the other as the basic sweeper hands them to a launcher; return its
    log and the line it exits with (None if it ends without one)."""
    base = [*TINY, f"results_root={root}", "compilation_cache=null", "study=s"]
    exit_line = None
    log, top = _Log(), logging.getLogger()
    level = top.level
    top.addHandler(log)
    top.setLevel(logging.INFO)
    try:
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            cfg = compose("study", overrides=base, return_hydra_config=True)
            with read_write(cfg):
                cfg.hydra.overrides.task = [*base, f"prior={PRIORS}", f"scenario.tau={TAUS}"]
            preflight = study.Preflight()
            try:
                preflight.on_multirun_start(cfg)
                for _, job_cfg in study.sweep_jobs(cfg):
                    study.run_job(job_cfg)
                    preflight.on_job_end(job_cfg, None)
                preflight.on_multirun_end(cfg)
            except SystemExit as end:
                exit_line = None if end.code in (0, None) else str(end.code)
    finally:
        top.removeHandler(log)
        top.setLevel(level)
    return "\n".join(log.lines), exit_line


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """The study run once, undamaged: its folder and its rows."""
    root = tmp_path_factory.mktemp("pristine")
    log, exit_line = _sweep(root)
    folder = root / "s"
    assert exit_line is None and len(list(folder.glob("*.parquet"))) == JOBS, log
    return folder, read_results(folder)


def _copy(pristine, tmp_path) -> Path:
    folder, _ = pristine
    shutil.copytree(folder, tmp_path / "s", ignore=shutil.ignore_patterns("logs"))
    return tmp_path / "s"


def _complete(folder: Path, expected: pd.DataFrame) -> dict:
    """Every job's rows exactly once, equal to the undamaged run's; nothing half-written."""
    assert not list(folder.glob(".*")), "a temporary file was left behind"
    found = read_results(folder)
    lost = len(expected.merge(found[KEYS], on=KEYS, how="left", indicator=True)
               .query("_merge == 'left_only'"))
    duplicates = int(found.duplicated(KEYS).sum())
    assert lost == 0 and duplicates == 0 and len(found) == len(expected)
    pd.testing.assert_frame_equal(_tidy(found), _tidy(expected), check_exact=True)
    return {"rows": len(found), "lost": lost, "duplicates": duplicates}


def _footer_garbage(data: bytes) -> bytes:
    """The footer's metadata overwritten, its length and the closing magic bytes left intact."""
    return data[:-40] + b"\x17" * 32 + data[-8:]


def _another_jobs_file(victim: Path) -> bytes:
    other = next(p for p in sorted(victim.parent.glob("*.parquet")) if p != victim)
    return other.read_bytes()


FAULTS = {
    "truncated": lambda victim: victim.read_bytes()[: victim.stat().st_size // 2],
    "footer corrupted": lambda victim: _footer_garbage(victim.read_bytes()),
    "emptied": lambda victim: b"",
    "another job's file": _another_jobs_file,
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_damaged_file_is_set_aside_and_its_job_runs_again(pristine, tmp_path, fault):
    folder = _copy(pristine, tmp_path)
    victim = sorted(folder.glob("*.parquet"))[1]
    damaged = FAULTS[fault](victim)
    victim.write_bytes(damaged)

    log, exit_line = _sweep(tmp_path)
    assert exit_line is None, exit_line
    assert (f"preflight: {JOBS} jobs (12 replicates) checked; 3 done already (skipped unless "
            f"force=true), 1 to run; 1 result file damaged, moved to {folder / 'damaged'}: its "
            "job runs again") in log
    assert f"preflight: {victim}: damaged, " in log
    assert log.count("skip ") == 3 and log.count("wrote ") == 1
    kept = sorted((folder / verify.DAMAGED).iterdir())
    assert [p.name for p in kept] == [victim.name] and kept[0].read_bytes() == damaged
    figures = _complete(folder, pristine[1])
    print(f"\n{fault}: {figures}")


def test_the_real_command_sets_a_truncated_file_aside(pristine, tmp_path):
    """``python -m runs.study`` itself, in a process of its own, on a truncated file."""
    folder = _copy(pristine, tmp_path)
    victim = sorted(folder.glob("*.parquet"))[2]
    victim.write_bytes(victim.read_bytes()[:1000])
    cmd = _command(tmp_path, "s", PRIORS, TAUS, workers=1)
    cmd[cmd.index("inference.warmup=60")] = "inference.warmup=100"
    cmd[cmd.index("inference.draws=60")] = "inference.draws=100"
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "3 done already (skipped unless force=true), 1 to run; 1 result file damaged" in out
    assert (folder / verify.DAMAGED / victim.name).stat().st_size == 1000
    _complete(folder, pristine[1])


def test_a_job_launched_without_the_preflight_checks_its_file_too(pristine, tmp_path, caplog):
    """As on a cluster, where each job starts on its own: ``runs.job.run`` skips only a whole
    file of its job."""
    folder = _copy(pristine, tmp_path)
    cfg = compose_study(tmp_path, "study=s", "prior=james_stein", "scenario.tau=2")
    path = job.planned_path(cfg)
    path.write_bytes(path.read_bytes()[:-100])
    with caplog.at_level(logging.INFO):
        assert job.run(cfg) == path
    assert f"{path}: damaged, not a readable parquet file" in caplog.text
    assert f"moved to {folder / 'damaged' / path.name}, its job runs again" in caplog.text
    assert "wrote " in caplog.text
    _complete(folder, pristine[1])
    caplog.clear()
    with caplog.at_level(logging.INFO):
        job.run(cfg)  # now whole: skipped
    assert f"skip {path}" in caplog.text


def test_a_damaged_file_that_cannot_be_moved_stops_with_one_line(pristine, tmp_path):
    """A file in the way of ``damaged/``: the damaged file stays where it is, and neither the
    preflight nor the job runs over it."""
    folder = _copy(pristine, tmp_path)
    (folder / verify.DAMAGED).write_text("not a folder")
    cfg = compose_study(tmp_path, "study=s", "prior=james_stein", "scenario.tau=2")
    path = job.planned_path(cfg)
    damaged = path.read_bytes()[:-100]
    path.write_bytes(damaged)
    log, exit_line = _sweep(tmp_path)
    named = (f"error: {path}: damaged (not a readable parquet file, damaged or truncated (")
    assert exit_line.startswith(named) and "\n" not in exit_line
    assert exit_line.endswith(f"could not be moved to {folder / verify.DAMAGED}/: File exists "
                              "(EEXIST); move it away by hand and run the study again")
    with pytest.raises(job.WriteError, match="could not be moved to"):
        job.run(cfg)
    assert path.read_bytes() == damaged and "wrote " not in log


# ------------------------------------------------------------------ a write that fails
def test_a_full_disk_leaves_no_file_and_one_line(pristine, tmp_path, monkeypatch):
    """One job's write fails with ENOSPC halfway through its bytes: the job ends with one line,
    the sweep's end counts it, and the next run computes it."""
    folder = _copy(pristine, tmp_path)
    victim = job.planned_path(compose_study(tmp_path, "study=s", "prior=no_pooling_ml",
                                            "scenario.tau=0.5"))
    victim.unlink()
    real = pd.DataFrame.to_parquet

    def full_disk(df, out, **kw):
        if df["prior"].iloc[0] == "no_pooling_ml" and df["tau"].iloc[0] == 0.5:
            out.write(b"PAR1" + b"\0" * 4096)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(df, out, **kw)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full_disk)
    log, exit_line = _sweep(tmp_path)
    line = (f"could not write {victim}: No space left on device (ENOSPC); no file was left, "
            "and the next run computes this job")
    assert line in log.splitlines()
    assert exit_line == (f"error: 1 of {JOBS} jobs wrote no result file ({victim.name}; the lines "
                         "above say why): the same command runs them again")
    assert not victim.exists() and not list(folder.glob(".*"))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", real)
    log, exit_line = _sweep(tmp_path)
    assert exit_line is None and "3 done already (skipped unless force=true), 1 to run" in log
    _complete(folder, pristine[1])


def test_a_disk_error_on_flush_raises_one_line_naming_the_file(tmp_path, monkeypatch):
    cfg = compose_study(tmp_path, "prior=james_stein")
    path = job.planned_path(cfg)

    def broken(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr("runs.store.os.fsync", broken)
    with pytest.raises(job.WriteError) as err:
        job.run(cfg)
    assert str(err.value) == (f"could not write {path}: Input/output error (EIO); no file was "
                              "left, and the next run computes this job")
    assert not path.exists() and not list(path.parent.glob(".*"))


# ------------------------------------------------------------------ before analysis
def test_analysis_names_a_damaged_file_and_its_repair(pristine, tmp_path):
    folder = _copy(pristine, tmp_path)
    victim, other = sorted(folder.glob("*.parquet"))[:2]
    victim.write_bytes(victim.read_bytes()[:500])
    with pytest.raises(ResultsError) as err:
        read_results(folder)
    message = str(err.value)
    assert message.startswith(f"{victim}: not a readable parquet file, damaged or truncated")
    assert message.endswith(f"to repair it, run the study's command again (python -m runs.study "
                            f"with the study's settings): it moves the file aside to "
                            f"{folder}/damaged/ and computes its job again")
    assert "\n" not in message
    victim.write_bytes(other.read_bytes())
    with pytest.raises(ResultsError, match="another job's file in its place; to repair it"):
        read_results(folder)


def _older(folder: Path, source: Path, config_hash: str, **columns) -> Path:
    """A file of the job of ``source`` as other code wrote it: another hash and name."""
    df = pd.read_parquet(source).assign(config_hash=config_hash, **columns)
    target = folder / source.name.replace(source.stem[-12:], config_hash)
    df.to_parquet(target, index=False)
    return target


def test_files_of_other_versions_are_counted_and_left_out_unless_asked(pristine, tmp_path, caplog):
    folder = _copy(pristine, tmp_path)
    first = sorted(folder.glob("*.parquet"))[0]
    now = engine.RESULTS_VERSION
    _older(folder, first, "0123456789ab", results_version=now - 1, code_version="v-old")
    unrecorded = _older(folder, first, "ba9876543210", code_version="v-older")
    pd.read_parquet(unrecorded).drop(columns="results_version").to_parquet(unrecorded, index=False)
    code = pd.read_parquet(first)["code_version"].iloc[0]
    with caplog.at_level(logging.WARNING, logger="analysis.versions"):
        used = read_results(folder)
    lines = [r.getMessage() for r in caplog.records if r.name == "analysis.versions"]
    assert lines == [
        f"{folder}: result files by version: 1 of results version {now - 1} (code version "
        f"v-old 1); {JOBS} of results version {now} (code version {code} {JOBS}); 1 of results "
        f"version not recorded (code version v-older 1); only the {JOBS} of results version "
        f"{now} (this code's) used, 2 left out; allow_mixed=true uses them too"
    ]
    _complete(folder, pristine[1])
    assert used["config_hash"].nunique() == JOBS
    mixed = read_results(folder, allow_mixed="true")
    assert mixed["config_hash"].nunique() == JOBS + 2


def test_a_folder_of_another_version_only_is_refused_with_one_line(pristine, tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    _older(folder, sorted(pristine[0].glob("*.parquet"))[0], "0123456789ab",
           results_version=engine.RESULTS_VERSION - 1)
    with pytest.raises(ResultsError) as err:
        read_results(folder)
    message = str(err.value)
    assert message.startswith(f"{folder}: no result file of results version "
                              f"{engine.RESULTS_VERSION} (this code's): 1 of results version "
                              f"{engine.RESULTS_VERSION - 1}")
    assert "allow_mixed=true" in message and "\n" not in message
    assert len(read_results(folder, allow_mixed=True)) > 0
