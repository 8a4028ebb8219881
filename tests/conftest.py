"""Shared fixtures. Tests never write into the project's cache/: MNIST_CACHE_DIR points at a temp folder
before mnist_core is imported. Real-MNIST tests read MNIST_DATA_DIR (../shared/data/mnist here and in CI)."""
import os
import tempfile

os.environ["MNIST_CACHE_DIR"] = tempfile.mkdtemp(prefix="mnist-lab-tests-")
# One measurement of this machine's training speed for the session: every app server the tests start (each
# with a cache of its own) reads it rather than measuring again (tests/test_speed.py measures afresh).
os.environ["MNIST_LAB_SPEEDS_FILE"] = os.path.join(os.environ["MNIST_CACHE_DIR"], "speeds.json")
# The suite and the app servers it starts share 2 cores: spin-waiting OpenMP threads would stall them.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Pages opened in this process (AppTest) train in its threads; the app servers the tests start as a user
# would (`streamlit run app.py`) get the app's own default, worker processes, through user_environ().
IN_THIS_PROCESS = {"MNIST_LAB_DASK_SCHEDULER": "none"}
for _variable, _value in IN_THIS_PROCESS.items():
    os.environ.setdefault(_variable, _value)


def user_environ() -> dict:
    """This process's environment as a user's shell would have it: without the settings above that only
    the pages opened in this process need."""
    return {k: v for k, v in os.environ.items() if IN_THIS_PROCESS.get(k) != v}
_SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
for _name, _variable in (("mnist", "MNIST_DATA_DIR"), ("fashion-mnist", "FASHION_MNIST_DATA_DIR")):
    if not os.environ.get(_variable) and os.path.isdir(os.path.join(_SHARED, _name)):
        os.environ[_variable] = os.path.join(_SHARED, _name)  # this project's machines keep them there
    if os.environ.get(_variable):  # absolute: the servers and workers the tests start run in other folders
        os.environ[_variable] = os.path.abspath(os.environ[_variable])

import pytest  # noqa: E402

from mnist_core.cache import RunCache  # noqa: E402
from mnist_core.data import DataNotFoundError, load_dataset, load_mnist, synthetic_data  # noqa: E402


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST on the CPU, loaded once for the whole session."""
    try:
        return load_mnist("cpu")
    except DataNotFoundError as e:
        pytest.fail(f"These tests need real MNIST: {e}")


@pytest.fixture(scope="session")
def fashion():
    """Real Fashion-MNIST on the CPU, loaded once for the whole session."""
    try:
        return load_dataset("fashion-mnist", "cpu")
    except DataNotFoundError as e:
        pytest.fail(f"These tests need real Fashion-MNIST: {e}")


@pytest.fixture
def synthetic():
    return synthetic_data(n_train=512, n_test=256)


@pytest.fixture
def cache(tmp_path):
    return RunCache(tmp_path / "runs")


def train_through_the_service(configs, data, cache):
    """Trains `configs` the way the Study page and `report` do: jobs of an embedded job service."""
    from mnist_core.jobs import embedded_service, results_for
    service = embedded_service(cache, data)
    try:
        jobs = service.submit(configs, owner="tests")
        assert service.wait([job.id for job in jobs], timeout=600)
        return results_for(service, configs, [service.job(job.id) for job in jobs])
    finally:
        service.shutdown()


def stop(process) -> None:
    """Stops a server or worker the tests started (a subprocess.Popen), by its PID: SIGTERM, then SIGKILL after
    15 s. One started in a session of its own (a README line run by bash) is stopped with its whole group."""
    import signal
    import subprocess
    try:
        kill = os.killpg if os.getpgid(process.pid) == process.pid else os.kill
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                return
            kill(process.pid, sig)
            try:
                process.wait(15)
                return
            except subprocess.TimeoutExpired:  # harder
                continue
    except ProcessLookupError:  # it had ended already
        pass
