"""A study never loses finished work, never counts a replicate twice, and reads only whole files.

* Killed multiruns (a real ``python -m runs.study`` in its own process group, killed with SIGKILL,
  workers included), then rerun with the same command: the results equal those of jobs run
  without interruption (computed here in this process, the independent truth), row for row.
* The same job run twice writes the same table (provenance aside), and one replicate refitted
  alone (``runs.replay``) gives its stored rows exactly.
* A fit that raises becomes rows with status ``failed`` and their seed; the other replicates of
  the job are kept.
* ``analysis.load.read_results`` refuses damaged and foreign files with one line naming the file
  and the column, and the same job from two versions unless ``allow_mixed``.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis.load import ResultsError, read_results
from models import engine
from runs import job, replay, store
from tests.helpers import compose_study

ROOT = Path(__file__).resolve().parent.parent
KEYS = ["config_hash", "replicate", "param", "index"]


# ------------------------------------------------------------------ killing a real multirun
def _command(root, study: str, priors: str, taus: str, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "runs.study", "scenario.n_groups=3", "scenario.group_size=4",
        f"scenario.tau={taus}", f"prior={priors}", "replicates=3", "inference.chains=2",
        "inference.warmup=60", "inference.draws=60", f"results_root={root}", f"study={study}",
        "compilation_cache=null", f"hydra.launcher.n_jobs={workers}",
    ]


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    """The study in a process group of its own, so that one signal reaches its workers too."""
    out = open(log, "w")
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL to the whole group; wait until no process of it is left running."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.time() + 30
    while _group_alive(proc.pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _group_alive(proc.pid), "a worker outlived the kill"


def _group_alive(pgid: int) -> bool:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while text not in log.read_text():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.time() < deadline, f"no {text!r} in {timeout} s"
        time.sleep(0.05)


def _reference(tmp_path, priors: list[str], taus: list[float], study: str) -> list[pd.DataFrame]:
    """Jobs of the sweep run here, one after the other, without interruption."""
    return [
        pd.read_parquet(job.run(compose_study(
            tmp_path / "reference", f"prior={prior}", f"scenario.tau={tau}", f"study={study}",
            "inference.warmup=60", "inference.draws=60",
        )))
        for prior in priors for tau in taus
    ]


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in a fixed order, without the columns that record when and how long."""
    return df.drop(columns=["created_at", "job_seconds"]).sort_values(KEYS, ignore_index=True)


def _check_complete(folder: Path, expected: list[pd.DataFrame]) -> dict:
    """Every file readable, no temporary file left, rows = the uninterrupted ones, none twice."""
    expected = _tidy(pd.concat(expected, ignore_index=True))
    files = sorted(folder.glob("*.parquet"))
    assert not list(folder.glob(".*")), "a temporary file was left behind"
    for f in files:
        pq.read_table(f)  # raises on a damaged file
    found = read_results(folder)
    duplicates = int(found.duplicated(KEYS).sum())
    assert duplicates == 0
    assert len(found) == len(expected)
    pd.testing.assert_frame_equal(_tidy(found)[expected.columns], expected, check_exact=True)
    return {"files": len(files), "rows": len(found), "expected_rows": len(expected),
            "duplicates": duplicates}


@pytest.fixture(scope="module")
def nuts_job(tmp_path_factory):
    """A small NUTS job (the non-centered hierarchical prior, 3 data sets, tau = 1)."""
    cfg = compose_study(tmp_path_factory.mktemp("results"), "prior=hierarchical",
                        "inference.warmup=60", "inference.draws=60")
    return cfg, job.run(cfg)


def test_a_killed_multirun_resumes_to_exactly_the_uninterrupted_rows(tmp_path, nuts_job):
    """One kill at a known moment: job 0 (closed form) written, job 1 (NUTS: seconds of
    compiling) running; the rerun skips job 0 and equals jobs run here without a kill (job 1's
    is ``nuts_job``, the same config)."""
    cmd = _command(tmp_path, "default", "james_stein,hierarchical,no_pooling_ml", "1.0", workers=1)
    first = _start(cmd, tmp_path / "first.log")
    _wait_for(tmp_path / "first.log", "progress: 1 of 3 jobs done", first)
    _kill(first)
    folder = tmp_path / "default"
    assert len(list(folder.glob("*.parquet"))) == 1

    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    log = again.stdout + again.stderr
    assert "preflight: 3 jobs (9 replicates) checked; 1 done already" in log
    assert log.count("skip ") == 1 and log.count("wrote ") == 2
    assert "progress: 3 of 3 jobs done (9 of 9 replicates)" in log
    expected = [*_reference(tmp_path, ["james_stein", "no_pooling_ml"], [1.0], "default"),
                pd.read_parquet(nuts_job[1])]
    figures = _check_complete(folder, expected)
    assert figures["files"] == 3 and figures["duplicates"] == 0


_RNG = np.random.default_rng(20261124)
KILLS = [
    ("after start", float(round(_RNG.uniform(2, 10), 1))),
    ("after start", float(round(_RNG.uniform(10, 25), 1))),
    *(("after its first write", float(round(d, 1))) for d in _RNG.uniform(0, 1.5, size=4)),
]
"""When each successive run is killed (a seeded draw): two during start-up, the check of the
sweep and the first compiles (seconds after the start); four amid the jobs (seconds after the
run wrote its first result file), when workers are fitting and writing."""


@pytest.mark.slow
def test_repeated_kills_at_random_moments_lose_and_repeat_nothing(tmp_path):
    """Six runs killed at KILLS, each the same command again, then one to the end: 12 jobs, NUTS
    and closed form, on 2 workers sharing a compilation cache (so that, as in a real study, a
    rerun gets further than the run before it)."""
    priors = ["hierarchical", "flat", "james_stein"]
    cmd = _command(tmp_path, "kills", ",".join(priors), "0.5,1,2,4", workers=2)
    cmd[cmd.index("compilation_cache=null")] = f"compilation_cache={tmp_path / 'xla'}"
    folder = tmp_path / "kills"
    history = []
    for i, (after, delay) in enumerate(KILLS):
        before = len(list(folder.glob("*.parquet")))
        log = tmp_path / f"run{i}.log"
        proc = _start(cmd, log)
        finished_files = {p: p.stat().st_mtime_ns for p in folder.glob("*.parquet")}
        if after == "after its first write":
            deadline = time.time() + 600
            while proc.poll() is None and time.time() < deadline and "wrote " not in log.read_text():
                time.sleep(0.05)
        time.sleep(delay)
        finished = proc.poll() is not None
        if not finished:
            _kill(proc)
        text = log.read_text()
        # what an earlier run finished is never rewritten
        assert all(p.stat().st_mtime_ns == t for p, t in finished_files.items())
        history.append({"killed": f"{delay} s {after}", "files_before": before,
                        "files_after": len(list(folder.glob("*.parquet"))),
                        "skipped": text.count("skip "), "wrote": text.count("wrote "),
                        "finished_before_kill": finished})
    final = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr[-3000:]
    figures = _check_complete(folder, _reference(tmp_path, priors, [0.5, 1.0, 2.0, 4.0], "kills"))
    out = final.stdout + final.stderr
    print(f"\nkills: {history}\nfinal run: {out.count('skip ')} skipped, "
          f"{out.count('wrote ')} written; {figures}")
    assert figures["files"] == 12 and figures["duplicates"] == 0


# ------------------------------------------------------------------ same seed, same bytes; replay
def _table_bytes(df: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    df.drop(columns=["created_at", "job_seconds"]).to_parquet(buffer, index=False)
    return buffer.getvalue()


def test_the_same_job_twice_writes_byte_identical_tables(nuts_job):
    cfg, path = nuts_job
    before = pd.read_parquet(path)
    cfg.force = True
    assert job.run(cfg) == path
    after = pd.read_parquet(path)
    assert _table_bytes(before) == _table_bytes(after)
    # and the file's bytes are a function of the table: rewriting it gives the same bytes
    again = path.with_name("again.parquet")
    store.write_atomic(after, again)
    assert again.read_bytes() == path.read_bytes()
    again.unlink()


def test_one_replicate_refitted_alone_gives_its_stored_rows(nuts_job, capsys):
    _, path = nuts_job
    stored, replayed = replay.replay(path, 1)
    assert len(stored) == 6 and replay.reproduced(stored, replayed)
    np.testing.assert_allclose(stored["posterior_mean"], replayed["posterior_mean"], rtol=1e-5)
    # a change beyond float32 rounding, or in a label, is not a reproduction
    assert not replay.reproduced(stored, replayed.assign(posterior_sd=replayed["posterior_sd"] * 1.001))
    assert not replay.reproduced(stored, replayed.assign(n_divergent=replayed["n_divergent"] + 1))
    replay.main([str(path), "replicate=2"])
    assert "reproduced: the replay gives the stored rows (floats to float32 rounding)" in capsys.readouterr().out


def test_replay_refuses_bad_input_with_one_line(nuts_job, tmp_path):
    _, path = nuts_job
    for argv, named in (
        ([str(path), "replicate=7"], "replicate=7 is not allowed: a replicate of the file: 0 to 2"),
        ([str(path)], "replicate=None is not allowed: one integer >= 0"),
        ([str(tmp_path / "none.parquet"), "replicate=0"], "file="),
        ([str(path), "replicate=0", "inference.draws=0"], "inference.draws=0 is not allowed"),
        ([str(path), "replicate=0", "inference.nope=1"], "inference.nope='1' is not allowed"),
    ):
        with pytest.raises(SystemExit) as err:
            replay.main(argv)
        assert str(err.value).startswith("error: ") and named in str(err.value)
        assert "\n" not in str(err.value)


def test_a_file_of_another_results_version_is_not_replayed(nuts_job, monkeypatch):
    _, path = nuts_job
    monkeypatch.setattr("runs.config.RESULTS_VERSION", engine.RESULTS_VERSION + 1)
    with pytest.raises(SystemExit, match="another results version"):
        replay.main([str(path), "replicate=0"])


def test_a_changed_setting_is_another_file(nuts_job, monkeypatch):
    """More draws, another seed or a new results version: another hash, so another file; the
    old file is left as it is and never mixed into the new one."""
    cfg, path = nuts_job
    others = {
        job.planned_path(compose_study(Path(cfg.results_root), "prior=hierarchical", *extra))
        for extra in (["inference.draws=61", "inference.warmup=60"],
                      ["inference.draws=60", "inference.warmup=60", "seed=1"])
    }
    monkeypatch.setattr("runs.config.RESULTS_VERSION", engine.RESULTS_VERSION + 1)
    others.add(job.planned_path(cfg))
    assert path not in others and len(others) == 3


# ------------------------------------------------------------------ failures and leftovers
def test_a_fit_that_raises_is_a_failed_row_with_its_seed(tmp_path, monkeypatch):
    """Replicate 1's fit raises (as an XLA error would): its rows say so, the others are kept."""
    cfg = compose_study(tmp_path, "prior=no_pooling_ml")
    good = pd.read_parquet(job.run(cfg))
    bad_ybar = good.loc[(good.replicate == 1) & (good.param == "theta"), "raw_estimate"].to_numpy()
    real_fit = engine.fit

    def fragile(spec, data, keys, hyper, **kw):
        if any(np.allclose(row, bad_ybar) for row in np.asarray(data["ybar"])):
            raise FloatingPointError("overflow in the leapfrog integrator\nsecond line")
        return real_fit(spec, data, keys, hyper, **kw)

    monkeypatch.setattr(engine, "fit", fragile)
    cfg.force = True
    df = pd.read_parquet(job.run(cfg))
    failed = df[df.replicate == 1]
    assert (failed["status"] == "failed").all() and (failed["seed"] == cfg.seed).all()
    assert (failed["skip_reason"] == "fit failed: FloatingPointError: overflow in the leapfrog "
                                     "integrator").all()
    assert failed["posterior_mean"].isna().all() and failed["true_value"].notna().all()
    kept = df.replicate != 1
    cols = ["posterior_mean", "posterior_sd", "lower_90", "upper_90", "status"]
    pd.testing.assert_frame_equal(df.loc[kept, cols], good.loc[kept, cols])


def test_a_killed_writers_temporary_file_is_removed_by_the_next_job(tmp_path):
    cfg = compose_study(tmp_path, "prior=no_pooling_ml")
    path = job.planned_path(cfg)
    path.parent.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    leftovers = {
        "dead": path.parent / f".{path.name}.{host}@{dead.pid}.abc123.tmp",
        "alive": path.parent / f".{path.name}.{host}@{os.getpid()}.def456.tmp",
        "old": path.parent / f".{path.name}.elsewhere@1.ghi789.tmp",
    }
    for f in leftovers.values():
        f.write_bytes(b"PAR1 half a file")
    old = time.time() - 2 * store.STALE_AFTER_S
    os.utime(leftovers["old"], (old, old))
    job.run(cfg)
    assert not leftovers["dead"].exists() and not leftovers["old"].exists()
    assert leftovers["alive"].exists()  # a live writer's file is its own
    assert len(read_results(path.parent)) > 0  # hidden files are never read


# ------------------------------------------------------------------ reading results
@pytest.fixture(scope="module")
def closed_form_study(tmp_path_factory):
    """Two jobs of one study (cells tau 0.5 and 2), closed-form: quick."""
    root = tmp_path_factory.mktemp("study")
    paths = [job.run(compose_study(root, "prior=james_stein", f"scenario.tau={t}"))
             for t in (0.5, 2.0)]
    return paths[0].parent, paths


def _copy_study(closed_form_study, tmp_path) -> Path:
    folder, _ = closed_form_study
    out = tmp_path / "copy"
    shutil.copytree(folder, out)
    return out


def test_results_of_different_jobs_read_together(closed_form_study):
    folder, paths = closed_form_study
    df = read_results(folder)
    assert df["config_hash"].nunique() == 2 and not df.duplicated(KEYS).any()


@pytest.mark.parametrize("damage,named", [
    (lambda b: b[: len(b) // 2], "not a readable parquet file, damaged or truncated"),
    (lambda b: b"", "not a readable parquet file"),
    (lambda b: b[:-12] + b"\0" * 12, "not a readable parquet file"),
])
def test_a_damaged_file_is_named(closed_form_study, tmp_path, damage, named):
    folder = _copy_study(closed_form_study, tmp_path)
    victim = sorted(folder.glob("*.parquet"))[1]
    victim.write_bytes(damage(victim.read_bytes()))
    with pytest.raises(ResultsError) as err:
        read_results(folder)
    assert str(err.value).startswith(f"{victim}: {named}") and "\n" not in str(err.value)


@pytest.mark.parametrize("change,named", [
    (lambda df: df.drop(columns="posterior_mean"), "no column 'posterior_mean'"),
    (lambda df: df.assign(posterior_sd=df["posterior_sd"].astype(str)),
     "column 'posterior_sd' holds *string, not numbers"),
    (lambda df: df.assign(replicate=df["replicate"].astype(float)),
     "column 'replicate' holds double, not integers"),
    (lambda df: df.assign(status=1), "column 'status' holds int64, not text"),
    (lambda df: pd.concat([df, df.iloc[:1]]), "replicate 0, mu[0] appears more than once"),
    (lambda df: df[df.replicate != 1], "column 'replicate' holds [0, 2], not 0..R-1"),
    (lambda df: df.iloc[1:], "replicate 0 has 4 rows, replicate 1 5: incomplete"),
    (lambda df: df.assign(config_hash=np.where(df.replicate == 0, "a", "b")), "holds rows of 2 jobs"),
])
def test_a_foreign_file_is_named_with_its_column(closed_form_study, tmp_path, change, named):
    folder = _copy_study(closed_form_study, tmp_path)
    victim = sorted(folder.glob("*.parquet"))[0]
    change(pd.read_parquet(victim)).to_parquet(victim, index=False)
    with pytest.raises(ResultsError) as err:
        read_results(folder)
    message = str(err.value)
    assert message.startswith(f"{victim}: ") and "\n" not in message
    assert all(part in message for part in named.split("*"))  # * : text or large_string


def _same_job_again(folder: Path, **changes) -> tuple[Path, Path]:
    """A second file of the first job, as another version of the code would have written it."""
    original = sorted(folder.glob("*.parquet"))[0]
    df = pd.read_parquet(original).assign(**changes)
    twin = folder / original.name.replace(original.stem[-12:], str(df["config_hash"].iloc[0]))
    if twin == original:
        twin = folder / f"copy-{original.name}"
    df.to_parquet(twin, index=False)
    return original, twin


def test_the_same_job_from_two_versions_is_refused_unless_asked(closed_form_study, tmp_path):
    folder = _copy_study(closed_form_study, tmp_path)
    original, twin = _same_job_again(folder, config_hash="0123456789ab", code_version="v2")
    with pytest.raises(ResultsError) as err:
        read_results(folder)
    message = str(err.value)
    assert f"{original} and {twin}" in message or f"{twin} and {original}" in message
    assert "code_version" in message and "allow_mixed=true" in message and "\n" not in message
    both = read_results(folder, allow_mixed="true")
    assert both["config_hash"].nunique() == 3


def test_the_same_computation_in_two_files_is_always_refused(closed_form_study, tmp_path):
    folder = _copy_study(closed_form_study, tmp_path)
    _same_job_again(folder)
    for allow in (False, True):
        with pytest.raises(ResultsError, match="hold the same job .config_hash"):
            read_results(folder, allow_mixed=allow)

