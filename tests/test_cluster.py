"""Scaling out: the SLURM preset asks for what a job needs, and a sweep through submitit works.

There is no SLURM here. The preset is checked by rendering the sbatch script submitit would submit
from it; the launcher itself runs for real through submitit's local executor
(``hydra/launcher=submitit_local``), whose jobs are separate processes started and collected the
way they are on a cluster: a small sweep, its results read back, then the same command again,
which finds every job done (how a sweep resumes after a preemption).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from analysis.load import read_results
from tests.helpers import CONF, TINY

ROOT = Path(__file__).resolve().parent.parent


def test_slurm_preset_renders_the_documented_resources(tmp_path, monkeypatch):
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("study", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=cpu"],
                      return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert {k: launcher[k] for k in ("cpus_per_task", "mem_gb", "timeout_min", "array_parallelism",
                                     "max_num_timeout", "partition")} == {
        "cpus_per_task": 1, "mem_gb": 4, "timeout_min": 60, "array_parallelism": 256,
        "max_num_timeout": 0, "partition": "cpu"}
    # the parameters as hydra_submitit_launcher hands them to submitit (SlurmLauncher.launch),
    # on a machine that pretends to have srun
    which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda n, *a, **k: "/usr/bin/srun" if n == "srun" else which(n, *a, **k)
    )
    for key in ("_target_", "submitit_folder"):
        launcher.pop(key)
    launcher["name"] = "study"
    executor = submitit.AutoExecutor(folder=tmp_path, cluster="slurm",
                                     slurm_max_num_timeout=launcher.pop("max_num_timeout"))
    shared = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(
        **{k if k in shared else f"slurm_{k}": v for k, v in launcher.items()}
    )
    script = executor._executor._make_submission_file_text("python -m runs.study", "0")
    for line in ("#SBATCH --cpus-per-task=1", "#SBATCH --mem=4GB", "#SBATCH --time=60",
                 "#SBATCH --partition=cpu", "#SBATCH --signal=USR2@120", "#SBATCH --nodes=1"):
        assert line in script.splitlines(), script
    assert executor._executor.parameters["array_parallelism"] == 256


@pytest.mark.slow
def test_a_sweep_through_submitit_local_lands_in_one_results_folder(tmp_path):
    """2 cells x 2 priors (one NUTS, one closed form), each job its own submitit process."""
    cmd = [sys.executable, "-m", "runs.study", "hydra/launcher=submitit_local", *TINY,
           "scenario.tau=0.5,2", "prior=james_stein,hierarchical", "inference.warmup=60",
           "inference.draws=60", f"results_root={tmp_path}", "study=cluster",
           "compilation_cache=null"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    folder = tmp_path / "cluster"
    df = read_results(folder)
    assert df["config_hash"].nunique() == 4 and sorted(df["prior"].unique()) == [
        "hierarchical", "james_stein"]
    assert sorted(df["tau"].unique()) == [0.5, 2.0] and not df.duplicated(
        ["config_hash", "replicate", "param", "index"]).any()
    # each job ran in a submitit job of its own and logged the sweep's progress there
    job_logs = list(folder.glob("logs/*/.submitit/*/*_log.out"))
    assert len(job_logs) == 4
    assert any("progress: 4 of 4 jobs done (12 of 12 replicates)" in p.read_text()
               for p in job_logs)
    # the same command again (as after a preemption): every job is skipped, nothing rewritten
    stamps = {p: p.stat().st_mtime_ns for p in folder.glob("*.parquet")}
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "4 done already" in again.stdout + again.stderr
    assert "every job of the sweep is done; nothing to run" in again.stdout + again.stderr
    assert {p: p.stat().st_mtime_ns for p in folder.glob("*.parquet")} == stamps
    print(f"\nsubmitit_local: {df['config_hash'].nunique()} jobs, {len(df)} rows, {seconds:.0f} s")
