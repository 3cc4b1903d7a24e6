import runs  # noqa: F401  (sets XLA to one thread per process before JAX starts)

import numpy as np
import pytest


# chains of tests/test_sampler.py, used there and by tests/test_power.py: computed once
@pytest.fixture(scope="session")
def starts():
    from tests import test_sampler

    return test_sampler.exact_draws(np.random.default_rng(20), test_sampler.C)


@pytest.fixture(scope="session")
def engine_chains(starts):
    from tests import test_sampler

    return test_sampler.run_engine(starts)


@pytest.fixture(scope="session")
def numpyro_chains(starts):
    from tests import test_sampler

    return test_sampler.run_numpyro(starts)


@pytest.fixture(autouse=True)
def _no_padding_from_elsewhere():
    """Each test starts without ``HIERBENCH_PAD_GROUPS`` (a study's preflight run in this
    process sets it for its jobs), and whatever a test sets is undone after it."""
    import os

    from runs.job import PAD_ENV

    before = os.environ.pop(PAD_ENV, None)
    yield
    os.environ.pop(PAD_ENV, None)
    if before is not None:
        os.environ[PAD_ENV] = before
