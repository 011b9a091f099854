"""Fixtures for the Hub tests: a loopback Hub server and clients pointed at it.

Import what you need into a test module (``from hub_fixtures import hub, hub_server``).

How clients reach the server. ``huggingface_hub`` and ``datasets`` read ``HF_ENDPOINT`` (and the
cache paths, and ``HF_HUB_DISABLE_XET``) when they are imported. The suite's conftest points
``HF_ENDPOINT`` at a dead loopback port before anything imports them, so nothing can reach the
internet; this module does the same when imported first. The ``hub`` fixture then points the
imported libraries at the live server with ``reflectevo.hub.client.use_endpoint`` (it patches
``huggingface_hub.constants.ENDPOINT``, ``HUGGINGFACE_CO_URL_TEMPLATE``, ``HF_URL_HOSTS``, the
module-level ``HfApi`` behind ``huggingface_hub.create_repo`` & co, and ``datasets.config``), and
sets ``HF_TOKEN``. Code run in a subprocess gets the same through its environment.
"""

from __future__ import annotations

import itertools
import os
import secrets
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

# Same as the suite's conftest, in case this module is used without it: before any Hub library is
# imported, the default endpoint is a closed loopback port, no xet, no telemetry. Everything else
# (token, caches, offline flags) is set per test with monkeypatch, see isolate_hub_client.
os.environ.setdefault("HF_ENDPOINT", "http://127.0.0.1:9")
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

from reflectevo.hub.client import use_endpoint  # noqa: E402  (imports no Hub library)
from reflectevo.hub.server import serve_in_thread  # noqa: E402

# A token that looks like a real one, so the scrubbing checks mean something; unique per run.
TOKEN = "hf_" + secrets.token_hex(16)
OTHER_TOKEN = "hf_" + secrets.token_hex(16)  # accepted too (servers take several tokens)
_counter = itertools.count()


def unique_repo(prefix: str = "repo") -> str:
    return f"tester/{prefix}-{os.getpid()}-{next(_counter)}"


class HubEnv:
    """What a test gets from the ``hub`` fixture."""

    def __init__(self, url: str, data_dir: str, token: str, tmp_path):
        from huggingface_hub import HfApi

        self.url = url
        self.data_dir = data_dir
        self.token = token
        self.tmp_path = tmp_path
        self.api = HfApi(endpoint=url, token=token)
        self.anon = HfApi(endpoint=url, token=False)

    def repo(self, prefix: str = "repo") -> str:
        return unique_repo(prefix)

    def fresh_dir(self, name: str) -> str:
        path = os.path.join(str(self.tmp_path), name)
        assert not os.path.exists(path)
        return path

    def subprocess_env(self, **extra: str) -> dict:
        env = dict(os.environ)
        env.update(HF_ENDPOINT=self.url, HF_TOKEN=self.token, HF_HUB_DISABLE_XET="1",
                   HF_HOME=os.path.join(str(self.tmp_path), "sub-hf-home"),
                   PYTHONPATH=_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""))
        env.update(extra)
        return env


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory):
    """One server for the session (a background thread), accepting TOKEN and OTHER_TOKEN."""
    data = str(tmp_path_factory.mktemp("hub-data"))
    handle = serve_in_thread(data, [TOKEN, OTHER_TOKEN])
    yield handle
    handle.stop()


def isolate_hub_client(monkeypatch, tmp_path) -> None:
    """For one test: online, no token (tests set one explicitly), and every Hub/datasets cache and
    credential file inside ``tmp_path`` (tests/network_guard.py keeps every test on loopback)."""
    import datasets.config as ds_config
    from huggingface_hub import constants

    home = os.path.join(str(tmp_path), "hf-home")
    os.makedirs(home, exist_ok=True)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN",
                "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", home)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # credentials on disk must never be picked up (nor written) by the tests
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", os.path.join(home, "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", os.path.join(home, "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", os.path.join(home, "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name, sub in (("HF_DATASETS_CACHE", "datasets"), ("DOWNLOADED_DATASETS_PATH", "datasets/downloads"),
                      ("EXTRACTED_DATASETS_PATH", "datasets/downloads/extracted"), ("HF_MODULES_CACHE", "modules")):
        monkeypatch.setattr(ds_config, name, os.path.join(home, sub), raising=False)
    monkeypatch.setattr(ds_config, "HF_HUB_OFFLINE", False, raising=False)


@pytest.fixture
def isolated_hub_client(monkeypatch, tmp_path):
    """``isolate_hub_client`` as a fixture (for tests that start their own servers)."""
    isolate_hub_client(monkeypatch, tmp_path)


@pytest.fixture
def hub(hub_server, tmp_path, monkeypatch):
    """The session server, with huggingface_hub/datasets (and so peft, transformers, lm-eval)
    pointed at it and HF_TOKEN set, for the duration of one test; non-loopback connections fail."""
    isolate_hub_client(monkeypatch, tmp_path)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with use_endpoint(hub_server.url):
        yield HubEnv(hub_server.url, hub_server.data_dir, TOKEN, tmp_path)


@pytest.fixture
def hub_at():
    """Point the libraries at another server URL (a subprocess server) inside the test:
    ``with hub_at(url): ...``."""
    return use_endpoint


def read_all_files(root: str) -> bytes:
    """Every byte under ``root`` (to check that no token was stored)."""
    out = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            try:
                with open(os.path.join(dirpath, name), "rb") as fh:
                    out.append(fh.read())
            except OSError:
                pass
    return b"\n".join(out)
