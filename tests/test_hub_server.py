"""The local Hub server against the real huggingface_hub client, over HTTP on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hub_fixtures import OTHER_TOKEN, TOKEN, hub, hub_server, read_all_files  # noqa: E402,F401

from reflectevo.hub.server import DataDirLock, _parse_range, serve_in_thread  # noqa: E402




def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_whoami_and_auth(hub):
    from huggingface_hub.errors import HfHubHTTPError

    import urllib.error
    import urllib.request

    assert hub.api.whoami()["name"] == "local"
    with pytest.raises(urllib.error.HTTPError) as raw:
        urllib.request.urlopen(f"{hub.url}/api/whoami-v2", timeout=10)
    assert raw.value.code == 401
    from huggingface_hub import HfApi

    with pytest.raises(HfHubHTTPError) as exc:
        HfApi(endpoint=hub.url, token="hf_wrongwrongwrongwrong").whoami()
    assert exc.value.response.status_code == 401
    assert HfApi(endpoint=hub.url, token=OTHER_TOKEN).whoami()["name"] == "local"


def test_model_folder_with_card_and_lfs_weight(hub, tmp_path):
    from huggingface_hub import HfFileSystem, hf_hub_download, snapshot_download

    repo = hub.repo("model")
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    card = "---\nlicense: apache-2.0\nlibrary_name: peft\n---\n# A model\n"
    (folder / "README.md").write_text(card)
    (folder / "config.json").write_text(json.dumps({"hidden": 32}))
    (folder / "sub" / "notes.txt").write_text("notes")
    weight = os.urandom(11 * 1024 * 1024)
    (folder / "model.safetensors").write_bytes(weight)

    url = hub.api.create_repo(repo)
    assert url.repo_id == repo and url.startswith(hub.url)
    info = hub.api.upload_folder(folder_path=str(folder), repo_id=repo, commit_message="add model")
    assert len(info.oid) == 40
    hub.api.create_tag(repo, tag="v1", tag_message="first")

    # tree: the weight went through LFS (sha256), the rest are regular git blobs
    files = {f.path: f for f in hub.api.list_repo_tree(repo, recursive=True) if hasattr(f, "blob_id")}
    assert set(files) == {".gitattributes", "README.md", "config.json", "sub/notes.txt", "model.safetensors"}
    assert files["model.safetensors"].lfs.sha256 == hashlib.sha256(weight).hexdigest()
    assert files["model.safetensors"].size == len(weight)
    assert files["README.md"].lfs is None and files["README.md"].blob_id == _git_oid(card.encode())
    # the blob store holds it by sha256
    sha = hashlib.sha256(weight).hexdigest()
    assert os.path.getsize(os.path.join(hub.data_dir, "blobs", sha[:2], sha[2:4], sha)) == len(weight)

    # download at the tag, fresh cache
    cache = hub.fresh_dir("dl-cache")
    path = hf_hub_download(repo, "model.safetensors", revision="v1", cache_dir=cache)
    assert open(path, "rb").read() == weight
    snap = snapshot_download(repo, revision="v1", cache_dir=cache)
    assert open(os.path.join(snap, "README.md")).read() == card
    assert open(os.path.join(snap, "sub", "notes.txt")).read() == "notes"

    # model_info with file metadata; card data is read by the client from README.md
    mi = hub.api.model_info(repo, revision="v1", files_metadata=True)
    assert mi.sha == info.oid and mi.id == repo and mi.private is False
    sib = {s.rfilename: s for s in mi.siblings}
    assert sib["model.safetensors"].lfs.sha256 == sha

    # HfFileSystem: ls, glob, range reads, revision in the path
    fs = HfFileSystem(endpoint=hub.url, token=hub.token)
    assert sorted(fs.ls(f"{repo}@v1", detail=False)) == sorted(
        f"{repo}@v1/{p}" for p in [".gitattributes", "README.md", "config.json", "model.safetensors", "sub"])
    assert fs.glob(f"{repo}/**/*.txt") == [f"{repo}/sub/notes.txt"]
    with fs.open(f"{repo}@v1/model.safetensors", "rb") as fh:
        fh.seek(1_000_000)
        assert fh.read(100) == weight[1_000_000:1_000_100]
    assert fs.cat(f"{repo}/config.json") == json.dumps({"hidden": 32}).encode()


def test_refs_commits_branches_and_revisions(hub):
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, hf_hub_download

    repo = hub.repo("refs")
    hub.api.create_repo(repo, repo_type="dataset")
    c1 = hub.api.create_commit(repo, [CommitOperationAdd("a.txt", b"one")], commit_message="one",
                               commit_description="first body", repo_type="dataset").oid
    hub.api.create_tag(repo, tag="t1", repo_type="dataset")
    c2 = hub.api.create_commit(repo, [CommitOperationAdd("a.txt", b"two"), CommitOperationAdd("d/b.txt", b"b")],
                               commit_message="two", repo_type="dataset").oid
    hub.api.create_branch(repo, branch="dev", repo_type="dataset")
    c3 = hub.api.create_commit(repo, [CommitOperationDelete("d/")], commit_message="rm d",
                               repo_type="dataset", revision="dev").oid

    refs = hub.api.list_repo_refs(repo, repo_type="dataset")
    assert {b.name: b.target_commit for b in refs.branches} == {"main": c2, "dev": c3}
    assert {t.name: t.target_commit for t in refs.tags} == {"t1": c1}
    commits = hub.api.list_repo_commits(repo, repo_type="dataset")
    assert [c.commit_id for c in commits][:2] == [c2, c1] and commits[-1].title == "initial commit"
    assert commits[1].message == "first body"
    assert [c.commit_id for c in hub.api.list_repo_commits(repo, repo_type="dataset", revision="t1")][0] == c1

    def read(rev):
        return open(hf_hub_download(repo, "a.txt", repo_type="dataset", revision=rev,
                                    cache_dir=hub.fresh_dir(f"c-{rev}")), "rb").read()

    assert read("t1") == b"one" and read(c1) == b"one" and read("main") == b"two"
    assert hub.api.file_exists(repo, "d/b.txt", repo_type="dataset")
    assert not hub.api.file_exists(repo, "d/b.txt", repo_type="dataset", revision="dev")
    assert hub.api.revision_exists(repo, "t1", repo_type="dataset")
    assert not hub.api.revision_exists(repo, "nope", repo_type="dataset")
    infos = hub.api.get_paths_info(repo, ["a.txt", "d", "missing"], repo_type="dataset", expand=True)
    assert [type(i).__name__ for i in infos] == ["RepoFile", "RepoFolder"]
    assert infos[0].last_commit.oid == c2

    # the stored document: commits with parents, tree as path -> blob, refs
    doc = json.load(open(os.path.join(hub.data_dir, "repos", "datasets", *repo.split("/")) + ".json"))
    assert doc["commits"][c2]["parents"] == [c1]
    assert doc["commits"][c2]["tree"]["a.txt"]["sha256"] == hashlib.sha256(b"two").hexdigest()
    assert doc["branches"] == {"main": c2, "dev": c3} and doc["tags"]["t1"]["commit"] == c1

    hub.api.delete_tag(repo, tag="t1", repo_type="dataset")
    hub.api.delete_branch(repo, branch="dev", repo_type="dataset")
    refs = hub.api.list_repo_refs(repo, repo_type="dataset")
    assert [b.name for b in refs.branches] == ["main"] and refs.tags == []


def test_errors_are_hub_shaped(hub):
    from huggingface_hub import CommitOperationAdd, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo = hub.repo("errs")
    hub.api.create_repo(repo)
    with pytest.raises(HfHubHTTPError) as exc:
        hub.api.create_repo(repo)
    assert exc.value.response.status_code == 409
    hub.api.create_repo(repo, exist_ok=True)

    with pytest.raises(RepositoryNotFoundError):
        hub.api.model_info("tester/does-not-exist")
    with pytest.raises(RevisionNotFoundError):
        hub.api.model_info(repo, revision="nope")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo, "nope.txt", cache_dir=hub.fresh_dir("c"))
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo, ".gitattributes", revision="nope", cache_dir=hub.fresh_dir("c2"))

    # writes without a token, or with a wrong one: 401, nothing changes
    head = hub.api.model_info(repo).sha
    from huggingface_hub import HfApi

    for api in (hub.anon, HfApi(endpoint=hub.url, token="hf_notavalidtokenatall")):
        with pytest.raises(HfHubHTTPError) as exc:
            api.create_commit(repo, [CommitOperationAdd("x.txt", b"x")], commit_message="x")
        assert exc.value.response.status_code == 401
        with pytest.raises(HfHubHTTPError) as exc:
            api.create_repo(hub.repo("anon"))
        assert exc.value.response.status_code == 401
    assert hub.api.model_info(repo).sha == head

    # tags: 409 when it exists, 404 for an unknown revision
    hub.api.create_tag(repo, tag="v1")
    with pytest.raises(HfHubHTTPError) as exc:
        hub.api.create_tag(repo, tag="v1")
    assert exc.value.response.status_code == 409
    with pytest.raises(RevisionNotFoundError):
        hub.api.create_tag(repo, tag="v2", revision="nope")
    # committing to a tag or to a missing branch is refused
    with pytest.raises(HfHubHTTPError):
        hub.api.create_commit(repo, [CommitOperationAdd("x.txt", b"x")], commit_message="x", revision="v1")
    # stale parent commit: 412, head unchanged
    hub.api.create_commit(repo, [CommitOperationAdd("y.txt", b"y")], commit_message="y")
    new_head = hub.api.model_info(repo).sha
    with pytest.raises(HfHubHTTPError) as exc:
        hub.api.create_commit(repo, [CommitOperationAdd("z.txt", b"z")], commit_message="z", parent_commit=head)
    assert exc.value.response.status_code == 412
    assert hub.api.model_info(repo).sha == new_head


def test_private_repo_needs_token_to_read(hub, tmp_path):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    repo = hub.repo("private")
    hub.api.create_repo(repo, private=True)
    hub.api.upload_file(path_or_fileobj=b"secret", path_in_repo="s.txt", repo_id=repo)
    assert hub.api.model_info(repo).private is True
    with pytest.raises(RepositoryNotFoundError) as exc:
        hub.anon.model_info(repo)
    assert exc.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError):
        hf_hub_download(repo, "s.txt", token=False, cache_dir=hub.fresh_dir("anon"))
    assert open(hf_hub_download(repo, "s.txt", cache_dir=hub.fresh_dir("auth")), "rb").read() == b"secret"
    # public repos read without a token
    pub = hub.repo("public")
    hub.api.create_repo(pub)
    assert hub.anon.model_info(pub).id == pub
    hub.api.update_repo_settings(pub, private=True)
    with pytest.raises(RepositoryNotFoundError):
        hub.anon.model_info(pub)


def test_raw_http_details(hub):
    """Range requests, HEAD metadata, and a keep-alive connection that survives an error."""
    import http.client
    from urllib.parse import urlsplit

    from huggingface_hub import CommitOperationAdd

    repo = hub.repo("raw")
    hub.api.create_repo(repo)
    data = bytes(range(256)) * 10
    sha = hub.api.create_commit(repo, [CommitOperationAdd("f.bin", data)], commit_message="f").oid
    u = urlsplit(hub.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    auth = {"Authorization": f"Bearer {hub.token}"}
    conn.request("GET", f"/{repo}/resolve/main/f.bin", headers={"Range": "bytes=10-19"})
    r = conn.getresponse()
    assert r.status == 206 and r.read() == data[10:20]
    assert r.getheader("Content-Range") == f"bytes 10-19/{len(data)}" and r.getheader("X-Repo-Commit") == sha
    conn.request("HEAD", f"/{repo}/resolve/main/f.bin")
    r = conn.getresponse()
    r.read()
    assert r.getheader("X-Linked-Etag").strip('"') == hashlib.sha256(data).hexdigest()
    assert r.getheader("X-Linked-Size") == str(len(data))
    # an error answered before the body is read must not desync the connection
    conn.request("POST", f"/api/models/{repo}/commit/main", body=b"x" * 100_000,
                 headers={"Content-Type": "application/x-ndjson"})
    r = conn.getresponse()
    assert r.status == 401 and json.loads(r.read())["error"]
    conn.request("GET", f"/api/models/{repo}/revision/main", headers=auth)
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["sha"] == sha
    conn.request("GET", f"/{repo}/resolve/main/f.bin", headers={"Range": f"bytes={len(data)}-"})
    r = conn.getresponse()
    r.read()
    assert r.status == 416
    conn.close()


@pytest.mark.parametrize(
    "header,size,expected",
    [("bytes=0-9", 100, (0, 9)), ("bytes=90-", 100, (90, 99)), ("bytes=-10", 100, (90, 99)),
     ("bytes=95-200", 100, (95, 99)), ("bytes=100-", 100, None), ("bytes=5-2", 100, None),
     ("bytes=-0", 100, None), ("items=0-1", 100, None), ("bytes=-500", 100, (0, 99))],
)
def test_parse_range(header, size, expected):
    assert _parse_range(header, size) == expected


def test_one_server_per_data_dir(tmp_path):
    data = str(tmp_path / "data")
    with serve_in_thread(data, ["tok"]) as h:
        with pytest.raises(RuntimeError, match="another hub server"):
            serve_in_thread(data, ["tok"])
        assert h.url.startswith("http://127.0.0.1:")
    DataDirLock(data).release()  # released after stop
    with pytest.raises(ValueError):
        serve_in_thread(str(tmp_path / "d2"), [])


def test_cli_serve_prints_url_and_reads_tokens_from_env(tmp_path):
    """``reflectevo hub serve`` in the foreground; the token comes from the environment."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, REFLECTEVO_HUB_TOKENS=f"{TOKEN},{OTHER_TOKEN}", PYTHONPATH=root)
    proc = subprocess.Popen([sys.executable, "-m", "reflectevo.cli", "hub", "serve", "--data", str(tmp_path / "d"),
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        import urllib.request

        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/whoami-v2", headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
        assert json.loads(urllib.request.urlopen(req, timeout=10).read())["name"] == "local"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert TOKEN not in out + err and OTHER_TOKEN not in out + err + line
    # no token on disk either
    assert TOKEN.encode() not in read_all_files(str(tmp_path / "d"))

    # without any token: one-line error, exit 2
    env.pop("REFLECTEVO_HUB_TOKENS")
    r = subprocess.run([sys.executable, "-m", "reflectevo.cli", "hub", "serve", "--data", str(tmp_path / "e")],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "REFLECTEVO_HUB_TOKENS" in r.stderr and "Traceback" not in r.stderr


def test_tokens_never_stored(hub):
    from huggingface_hub import CommitOperationAdd

    repo = hub.repo("tok")
    hub.api.create_repo(repo)
    hub.api.create_commit(repo, [CommitOperationAdd("a.txt", b"a")], commit_message="a")
    time.sleep(0.05)
    blob = read_all_files(hub.data_dir)
    assert TOKEN.encode() not in blob and OTHER_TOKEN.encode() not in blob


def test_tests_cannot_leave_loopback(hub):
    import socket

    with pytest.raises(OSError, match="test_tests_cannot_leave_loopback: .*loopback only"):
        socket.create_connection(("192.0.2.1", 443), timeout=0.2)
