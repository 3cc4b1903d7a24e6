"""runs.threads: importing ``runs`` gives XLA's CPU thread pool one thread, and leaves no thread of
the process pinned to one CPU. The truth is the process itself: XLA names its pool's threads
``tf_XLAEigen`` and sizes the pool to the CPUs a process may use, and Linux reports each thread's
CPU affinity."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runs import threads

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import json, os
import runs
import jax, jax.numpy as jnp
jax.jit(lambda x: x + 1)(jnp.ones(3)).block_until_ready()
names, masks = [], []
for tid in os.listdir("/proc/self/task"):
    try:
        names.append(open(f"/proc/self/task/{tid}/comm").read().strip())
        masks.append(sorted(os.sched_getaffinity(int(tid))))
    except OSError:  # a thread that ended meanwhile
        pass
print(json.dumps({"pool": names.count("tf_XLAEigen"), "masks": masks}))
"""
CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
needs_cpus = pytest.mark.skipif(len(CPUS) < 2, reason="needs Linux and at least 2 usable CPUs")


def _probe(choice):
    env = {k: v for k, v in os.environ.items() if k != threads.ENV}
    if choice is not None:
        env[threads.ENV] = choice
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    return proc


@needs_cpus
def test_import_runs_gives_xla_one_thread_and_every_thread_all_cpus():
    proc = _probe(None)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["pool"] == 1
    assert out["masks"] and all(mask == CPUS for mask in out["masks"])


@needs_cpus
def test_all_leaves_xla_one_thread_per_cpu():
    proc = _probe("all")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["pool"] == len(CPUS)


def test_bad_value_stops_with_one_line():
    proc = _probe("2")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: HIERBENCH_XLA_THREADS='2' is not allowed: 1 or all"
    )
