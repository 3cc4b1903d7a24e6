"""runs.study's preflight starts no more joblib workers than jobs to run (a one-job study runs
in its own process), and a job fits on HIERBENCH_DEVICES CPU devices."""

import pytest
from omegaconf import OmegaConf

from runs import study, threads


def _config(target=study.JOBLIB_LAUNCHER, n_jobs=-1):
    cfg = OmegaConf.create({"hydra": {"launcher": {"_target_": target, "n_jobs": n_jobs}}})
    OmegaConf.set_readonly(cfg.hydra, True)  # as Hydra hands it to the callbacks
    return cfg


@pytest.mark.parametrize("n_jobs, to_run, workers", [
    (-1, 1, 1),    # one job: in this process
    (-1, 3, 3),    # three jobs: three workers
    (-1, 144, 4),  # a study: one worker per core
    (2, 144, 2),   # the user's n_jobs
    (-2, 144, 3),  # joblib's negative counts: all CPUs but one
])
def test_no_more_workers_than_jobs(monkeypatch, n_jobs, to_run, workers):
    monkeypatch.setattr(threads, "usable_cpus", lambda: 4)
    cfg = _config(n_jobs=n_jobs)
    study.share_cores(cfg, to_run)
    assert cfg.hydra.launcher.n_jobs == workers


def test_other_launchers_are_left_alone():
    cfg = _config(target="hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher")
    study.share_cores(cfg, 1)
    assert cfg.hydra.launcher.n_jobs == -1


def test_device_count(monkeypatch):
    monkeypatch.setenv(threads.DEVICES_ENV, "1")  # restored after the test
    monkeypatch.delenv(threads.DEVICES_ENV)
    assert threads.job_devices() == 1
    monkeypatch.setenv(threads.DEVICES_ENV, "2")
    assert threads.job_devices() == 2


@pytest.mark.parametrize("value", ["0", "two", "-1", ""])
def test_bad_device_count_is_one_line(monkeypatch, value):
    monkeypatch.setenv(threads.DEVICES_ENV, value)
    with pytest.raises(SystemExit, match=f"HIERBENCH_DEVICES={value!r} is not allowed"):
        threads.job_devices()
