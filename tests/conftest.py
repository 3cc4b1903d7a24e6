import runs  # noqa: F401  (sets XLA to one thread per process before JAX starts)
