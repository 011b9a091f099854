"""Test settings that must hold before any Hugging Face library is imported.

Nothing in the suite may reach beyond 127.0.0.1: the default Hub endpoint is a closed loopback
port, Hub tests start their own loopback server and point clients at it explicitly, and
network_guard makes any other connection fail at once with the test's name.
"""

import os
from pathlib import Path

os.environ.setdefault("HF_ENDPOINT", "http://127.0.0.1:9")
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_SHARED_BBH = Path(__file__).resolve().parents[2] / "shared" / "data" / "bbh"
if "REFLECTEVO_BBH_DIR" not in os.environ and _SHARED_BBH.is_dir():
    os.environ["REFLECTEVO_BBH_DIR"] = str(_SHARED_BBH)
elif os.environ.get("REFLECTEVO_BBH_DIR"):
    # the README gives it relative to the clone; tests run lm_eval from other folders
    os.environ["REFLECTEVO_BBH_DIR"] = os.path.abspath(os.environ["REFLECTEVO_BBH_DIR"])

import pytest  # noqa: E402

from network_guard import install as _guard_network  # noqa: E402

_guard_network()

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def bbh_dir() -> str:
    d = os.environ.get("REFLECTEVO_BBH_DIR")
    if not d:
        pytest.skip("no local BBH folder (set REFLECTEVO_BBH_DIR)")
    return d


@pytest.fixture(scope="session")
def embedded_model_dir() -> str:
    from reflectevo.embedded_model import embedded_model_dir as folder

    return str(folder())


@pytest.fixture(scope="session")
def engine(embedded_model_dir):
    """One embedded-model engine shared by the tests that generate (loading costs seconds)."""
    from reflectevo_tasks.engine import Engine, EngineConfig

    return Engine(EngineConfig(batch_size=16))
