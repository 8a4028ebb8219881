"""Shared fixtures. Tests never write into the project's cache/: MNIST_CACHE_DIR points at a temp folder
before mnist_core is imported. Real-MNIST tests read MNIST_DATA_DIR (../shared/data/mnist here and in CI)."""
import os
import tempfile

os.environ["MNIST_CACHE_DIR"] = tempfile.mkdtemp(prefix="mnist-lab-tests-")
# The suite and the app servers it starts share 2 cores: spin-waiting OpenMP threads would stall them.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")
if not os.environ.get("MNIST_DATA_DIR") and os.path.isdir(_SHARED):
    os.environ["MNIST_DATA_DIR"] = os.path.abspath(_SHARED)  # this project's machines keep MNIST there

import pytest  # noqa: E402

from mnist_core.cache import RunCache  # noqa: E402
from mnist_core.data import DataNotFoundError, load_mnist, synthetic_data  # noqa: E402


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST on the CPU, loaded once for the whole session."""
    try:
        return load_mnist("cpu")
    except DataNotFoundError as e:
        pytest.fail(f"These tests need real MNIST: {e}")


@pytest.fixture
def synthetic():
    return synthetic_data(n_train=512, n_test=256)


@pytest.fixture
def cache(tmp_path):
    return RunCache(tmp_path / "runs")
