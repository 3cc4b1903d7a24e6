"""Hydra entry points (``runs.study``), the job runner and the parquet results store.

XLA on the CPU is told to use one thread per process unless the user says otherwise: the NUTS
programs here are long chains of small operations that gain little from threads, and a study
runs one worker process per core (the joblib launcher), which threads would oversubscribe.
"""

import logging
import os

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
# JAX reports at INFO level that it found no TPU: true on every machine this runs on, and noise.
logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
