"""One XLA thread per process, without pinning the process to a core.

XLA's CPU runtime runs the operations of a program on a thread pool (threads named
``tf_XLAEigen``) with one thread per CPU that the process may use, counted once, when JAX starts
its CPU backend. The NUTS programs here are long chains of small operations: a second thread
only hands them back and forth, so on the reference workload (``runs.bench``) a process with one
XLA thread fits faster on one core than one with a thread per CPU does on all of them, and a
study uses the cores by running one worker process per core instead.

The XLA flag ``--xla_cpu_multi_thread_eigen=false`` (``runs/__init__.py``) covers Eigen's
matrix kernels only, not this pool, and XLA has no flag for the pool's size. So
``one_xla_thread`` starts JAX's backends while the calling thread may run on one CPU only, so
that the pool gets one thread, and then gives every thread of the process back the CPUs it had:
the operating system still moves the process to whichever core is free.

``HIERBENCH_XLA_THREADS=all`` in the environment leaves XLA's pool as XLA makes it.
"""

from __future__ import annotations

import os

ENV = "HIERBENCH_XLA_THREADS"
"""Environment variable: ``all`` leaves XLA's thread pool at one thread per CPU; unset or ``1``:
one thread."""

CHOICES = ("1", "all")

POOL_THREAD_NAME = "tf_XLAEigen"
"""What XLA names the threads of its CPU pool (``/proc/<pid>/task/<tid>/comm``)."""


def pool_threads() -> int | None:
    """Threads of XLA's CPU pool in this process, or None where /proc does not say."""
    names = []
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/comm") as comm:
                names.append(comm.read().strip())
    except OSError:
        return None
    return names.count(POOL_THREAD_NAME)


def one_xla_thread() -> bool:
    """Start JAX's backends with a one-thread XLA pool (see the module docstring); True if it
    did, False where it had nothing to do (asked not to, one CPU only, no affinity calls on this
    system, or JAX's backends already started)."""
    choice = os.environ.get(ENV, "1")
    if choice not in CHOICES:
        raise SystemExit(f"error: {ENV}={choice!r} is not allowed: {' or '.join(CHOICES)}")
    if choice == "all" or not hasattr(os, "sched_setaffinity"):
        return False
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        return False
    import jax
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        return False
    os.sched_setaffinity(0, {min(cpus)})
    try:
        jax.devices()
    finally:  # the threads started meanwhile inherited the one CPU: every thread gets all back
        for tid in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(tid), cpus)
            except OSError:  # a thread that ended meanwhile
                pass
    return True


def usable_cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_devices() -> None:
    """Give JAX's CPU backend ``HIERBENCH_DEVICES`` devices (default 1; before the backend
    starts, later a no-op). Each device runs its programs on a thread of its own, so a job that
    splits its data sets over them (``models.engine.fit(devices=)``) runs on that many cores."""
    import jax
    from jax._src import xla_bridge

    if not xla_bridge.backends_are_initialized():
        jax.config.update("jax_num_cpu_devices", job_devices())


DEVICES_ENV = "HIERBENCH_DEVICES"
"""Environment variable: how many CPU devices a process has and a study's job splits its data
sets over (default 1; ``runs.job``). Each device compiles the program for itself, so more pays
where the compilation cache holds the programs or the jobs are long (docs/studies.md)."""


def job_devices() -> int:
    """``HIERBENCH_DEVICES`` as a positive int (1 where unset)."""
    value = os.environ.get(DEVICES_ENV, "1")
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"error: {DEVICES_ENV}={value!r} is not allowed: a positive integer")
    return int(value)
