"""Hydra entry points (``runs.study``), the job runner and the parquet results store.

XLA on the CPU runs one thread per process unless the user says otherwise
(``HIERBENCH_XLA_THREADS=all``, or XLA_FLAGS of their own for Eigen's kernels): the NUTS programs
here are long chains of small operations that a second thread slows down (``runs.threads`` has
the measurements), and a study runs one worker process per core (the joblib launcher), which
threads would oversubscribe. Importing ``runs`` starts JAX's backends that way, before any of its
modules uses JAX.

JAX gets ``HIERBENCH_DEVICES`` CPU devices (default 1): a job splits its data sets over them
(``models.engine.fit(devices=)``), a copy of its program running on each.
"""

import logging
import os

# (XLA stops reading XLA_FLAGS at the first word that is not a --flag: only flags here)
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
# JAX reports at INFO level that it found no TPU: true on every machine this runs on, and noise.
logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)

from runs import threads  # noqa: E402  (after XLA_FLAGS: JAX reads them when it starts)

threads.cpu_devices()
threads.one_xla_thread()
