"""Failure behaviour of the Hub helpers: server down, server killed mid-upload, connection lost
around the commit, 401/404/409/412. One clear HubError naming repo and revision; retries only
for idempotent steps; never a half-published revision; no token in messages, logs or files."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hub_fixtures import TOKEN, hub, hub_at, hub_server, isolated_hub_client, read_all_files  # noqa: E402,F401
from ports import free_port  # noqa: E402

from reflectevo.errors import UserError  # noqa: E402
from reflectevo.hub import client  # noqa: E402
from reflectevo.hub.client import RetryPolicy, publish_folder, pull_dataset, resolve_revision  # noqa: E402
from reflectevo.hub.errors import (  # noqa: E402
    HubAuthError,
    HubConflictError,
    HubError,
    HubNotFoundError,
    HubUnavailableError,
)
from reflectevo.hub.server import serve_in_subprocess  # noqa: E402

pytestmark = pytest.mark.usefixtures("isolated_hub_client")

FAST = RetryPolicy(attempts=2, base_delay=0.05, max_delay=0.1)


def _folder(root, name: str, files: dict[str, bytes]) -> str:
    path = root / name
    path.mkdir()
    for rel, data in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    return str(path)


@pytest.fixture
def fast_client_retries(monkeypatch):
    """huggingface_hub retries transport errors 5 times over ~23 s inside its own calls; the
    tests that kill the server make that quick (behaviour is the same, only faster)."""
    from huggingface_hub.utils import _http

    for fn in (_http.http_backoff, getattr(_http.http_stream_backoff, "__wrapped__", None)):
        if fn is None or not fn.__kwdefaults__:
            continue
        monkeypatch.setitem(fn.__kwdefaults__, "max_retries", 1)
        monkeypatch.setitem(fn.__kwdefaults__, "base_wait_time", 0.05)
        monkeypatch.setitem(fn.__kwdefaults__, "max_wait_time", 0.1)


def test_server_down_is_one_clear_error(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    url = f"http://127.0.0.1:{free_port()}"
    folder = _folder(tmp_path, "f", {"a.txt": b"a"})
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    with pytest.raises(HubUnavailableError) as exc:
        publish_folder(folder, "tester/down", tag="v1", endpoint=url, retry=FAST)
    msg = str(exc.value)
    assert "tester/down" in msg and "'v1'" in msg and url in msg and "cannot connect" in msg
    assert "\n" not in msg and isinstance(exc.value, UserError)
    with pytest.raises(HubUnavailableError, match="tester/down.*'v3'"):
        resolve_revision("tester/down", "v3", "dataset", endpoint=url, retry=FAST)
    with pytest.raises(HubUnavailableError, match="tester/down"):
        pull_dataset("tester/down", "c", "v1", endpoint=url, retry=FAST)
    assert time.monotonic() - started < 20
    assert TOKEN not in caplog.text


def test_auth_and_not_found_errors(hub, monkeypatch, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    repo = hub.repo("errs")
    folder = _folder(tmp_path, "f", {"a.txt": b"a"})
    sha = publish_folder(folder, repo, tag="v1", private=True)

    wrong = "hf_" + "x" * 34
    with pytest.raises(HubAuthError) as exc:
        publish_folder(folder, repo, tag="v2", token=wrong)
    assert repo in str(exc.value) and "'v2'" in str(exc.value) and wrong not in str(exc.value)
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubAuthError, match="private") as exc:
        resolve_revision(repo, "v1")
    assert TOKEN not in str(exc.value)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert resolve_revision(repo, "v1") == sha

    with pytest.raises(HubNotFoundError, match="repository not found") as exc:
        resolve_revision("tester/nope-nope", "v1")
    assert "tester/nope-nope" in str(exc.value)
    with pytest.raises(HubNotFoundError, match="revision 'v7' does not exist"):
        resolve_revision(repo, "v7")
    with pytest.raises(HubConflictError, match="tag 'v1' exists already"):
        publish_folder(folder, repo, tag="v1")
    for text in [caplog.text, repr(exc.value)]:
        assert TOKEN not in text and wrong not in text


def test_stale_parent_412_is_retried_on_the_new_head(hub, monkeypatch, tmp_path):
    from huggingface_hub import CommitOperationAdd

    repo = hub.repo("race")
    first = publish_folder(_folder(tmp_path, "a", {"a.txt": b"a"}), repo, tag="t1", replace=False)
    hub.api.create_commit(repo, [CommitOperationAdd("other.txt", b"o")], commit_message="someone else")
    real = client.resolve_revision
    calls = []

    def stale_once(repo_id, revision=None, repo_type="model", **kw):
        calls.append(revision)
        return first if len(calls) == 1 else real(repo_id, revision, repo_type, **kw)

    monkeypatch.setattr(client, "resolve_revision", stale_once)
    sha = publish_folder(_folder(tmp_path, "b", {"b.txt": b"b"}), repo, tag="t2", replace=False)
    assert len(calls) == 2  # 412 on the stale head, then one more try
    files = set(hub.api.list_repo_files(repo, revision="t2"))
    assert {"a.txt", "b.txt", "other.txt"} <= files and resolve_revision(repo, "t2") == sha

    # a raw 412 translates to one conflict line
    with pytest.raises(Exception) as raw:
        hub.api.create_commit(repo, [CommitOperationAdd("z.txt", b"z")], commit_message="z", parent_commit=first)
    err = client.to_hub_error(raw.value, "committing to", repo, "main", hub.url)
    assert isinstance(err, HubConflictError) and "412" in str(err) and repo in str(err)


def test_commit_response_lost_but_commit_landed(hub, monkeypatch, tmp_path):
    """The connection breaks after the server committed: the helper finds its commit by the
    publish marker instead of committing twice, and tags it."""
    import httpx2
    from huggingface_hub import HfApi

    repo = hub.repo("lost")
    real = HfApi.create_commit
    calls = []

    def commit_then_drop(self, *a, **kw):
        calls.append(1)
        real(self, *a, **kw)
        raise httpx2.RemoteProtocolError("Server disconnected without sending a response.")

    monkeypatch.setattr(HfApi, "create_commit", commit_then_drop)
    sha = publish_folder(_folder(tmp_path, "a", {"a.txt": b"a"}), repo, tag="v1", retry=FAST)
    assert calls == [1]
    assert resolve_revision(repo, "v1") == sha == resolve_revision(repo, "main")
    assert len(hub.api.list_repo_commits(repo)) == 2  # initial + exactly one


def test_commit_never_sent_twice_and_no_tag_when_it_fails(hub, monkeypatch, tmp_path):
    import httpx2
    from huggingface_hub import HfApi

    repo = hub.repo("nocommit")
    old = publish_folder(_folder(tmp_path, "a", {"a.txt": b"old"}), repo, tag="v1")
    calls = []

    def refuse(self, *a, **kw):
        calls.append(1)
        raise httpx2.ConnectError("connection refused")

    monkeypatch.setattr(HfApi, "create_commit", refuse)
    with pytest.raises(HubUnavailableError, match="did not land") as exc:
        publish_folder(_folder(tmp_path, "b", {"a.txt": b"new"}), repo, tag="v2", retry=FAST)
    assert calls == [1], "a commit must never be retried blindly"
    assert repo in str(exc.value) and "'v2'" in str(exc.value)
    refs = hub.api.list_repo_refs(repo)
    assert {t.name for t in refs.tags} == {"v1"} and resolve_revision(repo, "main") == old


def test_reads_are_retried_until_the_server_is_back(tmp_path, monkeypatch, hub_at):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    data = str(tmp_path / "data")
    srv = serve_in_subprocess(data, [TOKEN])
    try:
        with hub_at(srv.url):
            sha = publish_folder(_folder(tmp_path, "a", {"a.txt": b"a"}), "tester/flaky", tag="v1")
        srv.kill()
        box = {}

        def restart():
            time.sleep(0.8)
            box["srv"] = serve_in_subprocess(data, [TOKEN], port=srv.port)

        t = threading.Thread(target=restart)
        t.start()
        got = resolve_revision("tester/flaky", "v1", endpoint=srv.url,
                               retry=RetryPolicy(attempts=8, base_delay=0.3, max_delay=1.0))
        t.join()
        assert got == sha
    finally:
        srv.kill()
        if "srv" in box:
            box["srv"].stop()


def test_server_killed_during_upload_leaves_old_revision_intact(tmp_path, monkeypatch, hub_at, fast_client_retries,
                                                                caplog):
    """SIGKILL the server (a subprocess) while an 11 MB LFS upload is in flight: the helper raises
    one clear error, and after a restart on the same data dir the old tag still returns the old
    content, the new tag does not exist, and the branch did not move. Then the publish succeeds."""
    from huggingface_hub import hf_hub_download

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    data = str(tmp_path / "data")
    srv = serve_in_subprocess(data, [TOKEN], throttle_bps=2_000_000)  # ~6 s for 11 MB
    repo = "tester/killed"
    v1_files = {"README.md": b"# v1\n", "weights.bin": os.urandom(200_000)}
    v2_files = {"README.md": b"# v2\n", "weights.bin": os.urandom(11 * 1024 * 1024)}
    restarted = None
    try:
        with hub_at(srv.url):
            sha1 = publish_folder(_folder(tmp_path, "v1", v1_files), repo, tag="v1", retry=FAST)
            killer_saw = {}

            def kill_when_upload_starts():
                tmp_dir = os.path.join(data, "tmp")
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    parts = [os.path.join(tmp_dir, n) for n in os.listdir(tmp_dir)]
                    sizes = [os.path.getsize(p) for p in parts if os.path.exists(p)]
                    if sizes and max(sizes) > 1_000_000:
                        killer_saw["bytes"] = max(sizes)
                        srv.kill()
                        return
                    time.sleep(0.02)

            killer = threading.Thread(target=kill_when_upload_starts)
            killer.start()
            with pytest.raises(HubUnavailableError) as exc:
                publish_folder(_folder(tmp_path, "v2", v2_files), repo, tag="v2", retry=FAST)
            killer.join()
            assert killer_saw, "the server was not killed mid-upload"
            msg = str(exc.value)
            assert repo in msg and "'v2'" in msg and srv.url in msg and "\n" not in msg
            assert TOKEN not in msg and TOKEN not in caplog.text

            restarted = serve_in_subprocess(data, [TOKEN], port=srv.port)
            assert restarted.url == srv.url
            assert resolve_revision(repo, "v1") == sha1 == resolve_revision(repo, "main")
            from huggingface_hub import HfApi

            api = HfApi(endpoint=srv.url, token=TOKEN)
            assert [t.name for t in api.list_repo_refs(repo).tags] == ["v1"]
            for name, content in v1_files.items():
                path = hf_hub_download(repo, name, revision="v1", cache_dir=str(tmp_path / "cache"))
                assert open(path, "rb").read() == content
            assert os.listdir(os.path.join(data, "tmp")) == []  # partial upload discarded

            # the same publish now goes through, and v1 is untouched
            sha2 = publish_folder(_folder(tmp_path, "v2b", v2_files), repo, tag="v2", retry=FAST)
            assert resolve_revision(repo, "v1") == sha1 != sha2
            path = hf_hub_download(repo, "weights.bin", revision="v2", cache_dir=str(tmp_path / "cache2"))
            assert open(path, "rb").read() == v2_files["weights.bin"]
        log_text = srv.log() + restarted.log()
        assert TOKEN not in log_text and "sig=" not in log_text
        assert TOKEN.encode() not in read_all_files(data)
    finally:
        srv.kill()
        if restarted is not None:
            restarted.stop()


def test_hub_error_is_a_user_error_with_fields():
    err = HubNotFoundError("hub: x", repo_id="a/b", revision="v1", status=404)
    assert isinstance(err, HubError) and isinstance(err, UserError)
    assert (err.repo_id, err.revision, err.status) == ("a/b", "v1", 404)


def test_scrub_removes_tokens():
    from reflectevo.hub.errors import scrub

    text = f"Authorization: Bearer {TOKEN} url?sig=abc&x=1 token {TOKEN} hf_abcdefghijklmnop"
    out = scrub(text, TOKEN)
    assert TOKEN not in out and "sig=abc" not in out and "hf_abcdefghijklmnop" not in out
