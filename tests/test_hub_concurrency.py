"""Concurrent commits to one branch: serialized by the server, none lost, history linear."""

from __future__ import annotations

import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hub_fixtures import TOKEN, hub, hub_server  # noqa: E402,F401

from reflectevo.hub.client import publish_folder, resolve_revision  # noqa: E402

N = 8


def _doc(hub, repo, repo_type="models"):
    with open(os.path.join(hub.data_dir, "repos", repo_type, *repo.split("/")) + ".json") as fh:
        return json.load(fh)


def _assert_linear(hub, repo, head):
    doc = _doc(hub, repo)
    chain, sha = [], head
    while sha:
        chain.append(sha)
        parents = doc["commits"][sha]["parents"]
        assert len(parents) <= 1
        sha = parents[0] if parents else None
    assert set(chain) == set(doc["commits"]), "every commit is on the branch's first-parent chain"
    return chain


def test_eight_clients_commit_to_one_branch_at_once(hub):
    from huggingface_hub import CommitOperationAdd, HfApi

    repo = hub.repo("concurrent")
    hub.api.create_repo(repo)
    barrier = threading.Barrier(N)

    def worker(i: int) -> str:
        api = HfApi(endpoint=hub.url, token=TOKEN)
        ops = [CommitOperationAdd(f"files/{i}.txt", f"client {i}".encode()),
               CommitOperationAdd(f"blobs/{i}.bin", os.urandom(50_000) + bytes([i]))]  # LFS too
        barrier.wait()
        return api.create_commit(repo, ops, commit_message=f"client {i}").oid  # no parent: on top of head

    with ThreadPoolExecutor(N) as pool:
        shas = list(pool.map(worker, range(N)))
    assert len(set(shas)) == N
    head = hub.api.model_info(repo).sha
    chain = _assert_linear(hub, repo, head)
    assert len(chain) == N + 1 and set(shas) <= set(chain)
    assert [c.commit_id for c in hub.api.list_repo_commits(repo)] == chain
    files = set(hub.api.list_repo_files(repo))
    assert {f"files/{i}.txt" for i in range(N)} | {f"blobs/{i}.bin" for i in range(N)} <= files


def test_same_stale_parent_only_one_wins(hub):
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    repo = hub.repo("parent")
    hub.api.create_repo(repo)
    parent = hub.api.model_info(repo).sha
    barrier = threading.Barrier(N)

    def worker(i: int):
        api = HfApi(endpoint=hub.url, token=TOKEN)
        barrier.wait()
        try:
            return api.create_commit(repo, [CommitOperationAdd(f"{i}.txt", b"x")], commit_message=f"{i}",
                                     parent_commit=parent).oid
        except HfHubHTTPError as exc:
            return exc.response.status_code

    with ThreadPoolExecutor(N) as pool:
        results = list(pool.map(worker, range(N)))
    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1 and sorted(r for r in results if not isinstance(r, str)) == [412] * (N - 1)
    assert hub.api.model_info(repo).sha == winners[0]


def test_eight_concurrent_publishes_all_land_and_tag(hub, tmp_path):
    repo = hub.repo("pubs")
    hub.api.create_repo(repo)
    folders = []
    for i in range(N):
        f = tmp_path / f"f{i}"
        f.mkdir()
        (f / f"part-{i}.txt").write_text(f"part {i}")
        folders.append(str(f))
    barrier = threading.Barrier(N)

    def worker(i: int) -> str:
        barrier.wait()
        return publish_folder(folders[i], repo, tag=f"p{i}", message=f"part {i}", replace=False)

    with ThreadPoolExecutor(N) as pool:
        shas = list(pool.map(worker, range(N)))
    head = resolve_revision(repo, "main")
    chain = _assert_linear(hub, repo, head)
    assert len(chain) == N + 1 and set(shas) <= set(chain)
    assert {f"part-{i}.txt" for i in range(N)} <= set(hub.api.list_repo_files(repo))
    for i, sha in enumerate(shas):
        assert resolve_revision(repo, f"p{i}") == sha
        assert f"part-{i}.txt" in hub.api.list_repo_files(repo, revision=f"p{i}")
