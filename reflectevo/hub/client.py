"""Hub helpers used by the dataset generator, the trainer and the evaluator.

They work the same against huggingface.co (``HF_TOKEN``) and any other endpoint (``HF_ENDPOINT``,
e.g. the local server in ``reflectevo.hub.server``):

* ``publish_folder`` / ``publish_dataset``: upload files with a card (README.md) as ONE commit,
  then tag that commit; return the 40-hex commit sha. LFS content is uploaded first (retried:
  content-addressed, so idempotent), the commit is sent once (never retried blindly: after a cut
  connection the branch history is checked for this publish's marker), the tag comes last. A
  failure at any point leaves earlier tags pointing at their old content.
* ``resolve_revision``: branch, tag or sha -> 40-hex sha, to record in provenance.
* ``pull_dataset``: load one config at a revision into a fresh cache and verify it: the revision
  is resolved to a sha first, the parquet files of the config at that sha are downloaded again
  and checked against the sha256 in the tree, and the loaded rows must hash the same as the rows
  of those files (offline ``datasets`` may otherwise serve a cached copy and ignore the revision).
* ``parse_repo_ref("ns/name@rev")``.

Environment. ``huggingface_hub`` reads ``HF_ENDPOINT`` and ``HF_HUB_DISABLE_XET`` when it is
imported. Call ``configure_endpoint_env()`` early (the CLI does, before importing any Hub
library): for an endpoint other than huggingface.co it sets ``HF_HUB_DISABLE_XET=1`` (unless set
already) so that uploads use plain LFS. ``use_endpoint(url)`` points the already-imported
libraries (``huggingface_hub``, ``datasets``) at another endpoint for the duration of a ``with``
block (process-wide: not for concurrent use with different endpoints). Every helper also takes
``endpoint=`` and does that for you.

Errors are ``reflectevo.hub.errors.HubError`` (a ``UserError``): one line naming the operation,
repo and revision. Tokens are never put in messages, logs or returned records.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import random
import re
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, NamedTuple, TypeVar
from urllib.parse import urlsplit

from reflectevo.embedded_model import file_sha256
from reflectevo.errors import UserError
from reflectevo.hub.errors import (
    HubAuthError,
    HubConflictError,
    HubError,
    HubNotFoundError,
    HubUnavailableError,
    scrub,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

HF_DEFAULT_ENDPOINT = "https://huggingface.co"
_HF_HOSTS = ("huggingface.co", "hf.co")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?"
_REPO_REF = re.compile(rf"^(?:hf://)?(?:(?P<type>datasets|models|spaces)/)?(?P<id>{_NAME}/{_NAME})(?:@(?P<rev>[^\s@]+))?$")
PUBLISH_MARKER = "reflectevo-publish-id:"


# ---- environment --------------------------------------------------------------------------------
def is_huggingface_co(endpoint: str) -> bool:
    host = (urlsplit(endpoint).hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in _HF_HOSTS)


def configure_endpoint_env(endpoint: str | None = None, *, patch_imported: bool = True) -> str:
    """Prepare the environment for Hub clients; call it before importing ``huggingface_hub``.

    ``endpoint`` (optional) is written to ``HF_ENDPOINT``. For an endpoint other than
    huggingface.co, ``HF_HUB_DISABLE_XET=1`` is set unless the variable is already set, because
    with ``hf_xet`` installed every LFS-sized upload otherwise goes to xet endpoints. When a Hub
    library was imported already, its import-time constants are updated too (``use_endpoint``)
    unless ``patch_imported=False``. Returns the endpoint in effect.

    Importing this module runs it once (environment only), so ``from reflectevo.hub import
    client`` before any Hub library is enough; entry points should still call it first thing.
    """
    if endpoint:
        os.environ["HF_ENDPOINT"] = endpoint.rstrip("/")
    current = os.environ.get("HF_ENDPOINT", HF_DEFAULT_ENDPOINT).rstrip("/")
    if not is_huggingface_co(current):
        os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
    if patch_imported and "huggingface_hub" in sys.modules:
        _apply_endpoint(current, os.environ.get("HF_HUB_DISABLE_XET", "") in ("1", "true", "TRUE", "yes", "ON", "on"))
    return current


def _apply_endpoint(endpoint: str, disable_xet: bool) -> dict[tuple[Any, str], Any]:
    """Set the endpoint constants of imported Hub libraries; returns the previous values."""
    from huggingface_hub import constants
    from huggingface_hub import hf_api as _hf_api

    old: dict[tuple[Any, str], Any] = {}

    def put(obj: Any, name: str, value: Any) -> None:
        if hasattr(obj, name):
            old[(obj, name)] = getattr(obj, name)
            setattr(obj, name, value)

    host = (urlsplit(endpoint).hostname or "").lower()
    put(constants, "ENDPOINT", endpoint)
    put(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    put(constants, "HF_URL_HOSTS", frozenset(set(getattr(constants, "HF_URL_HOSTS", ())) | {host}))
    put(constants, "HF_HUB_DISABLE_XET", disable_xet)
    put(_hf_api.api, "endpoint", endpoint)  # the module-level HfApi behind huggingface_hub.create_repo & co
    ds_config = sys.modules.get("datasets.config")
    if ds_config is not None:
        put(ds_config, "HF_ENDPOINT", endpoint)
        put(ds_config, "HUB_DATASETS_URL", endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}")
    tf_hub = sys.modules.get("transformers.utils.hub")
    shared = getattr(tf_hub, "_hf_api", None)
    if shared is not None:
        # transformers keeps one HfApi made with the endpoint of its first use (its chat-template
        # listing goes through it): point it here too
        put(shared, "endpoint", endpoint)
    return old


@contextlib.contextmanager
def use_endpoint(endpoint: str | None) -> Iterator[str]:
    """Point ``huggingface_hub`` and ``datasets`` (imported or not) at ``endpoint`` inside the block.

    Process-wide; restores everything on exit. ``None`` leaves the current endpoint alone.
    """
    if not endpoint:
        yield current_endpoint()
        return
    endpoint = endpoint.rstrip("/")
    saved_env = {k: os.environ.get(k) for k in ("HF_ENDPOINT", "HF_HUB_DISABLE_XET")}
    os.environ["HF_ENDPOINT"] = endpoint
    disable_xet = not is_huggingface_co(endpoint)
    if disable_xet:
        os.environ["HF_HUB_DISABLE_XET"] = "1"
    old = _apply_endpoint(endpoint, disable_xet or _env_true("HF_HUB_DISABLE_XET"))
    try:
        yield endpoint
    finally:
        for (obj, name), value in old.items():
            setattr(obj, name, value)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def current_endpoint() -> str:
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import constants

        return constants.ENDPOINT
    return os.environ.get("HF_ENDPOINT", HF_DEFAULT_ENDPOINT).rstrip("/")


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


# ---- references ---------------------------------------------------------------------------------
class RepoRef(NamedTuple):
    repo_id: str
    revision: str | None = None
    repo_type: str | None = None  # from a "datasets/" / "models/" / "spaces/" prefix, else None

    def __str__(self) -> str:
        prefix = f"{self.repo_type}s/" if self.repo_type else ""
        return f"{prefix}{self.repo_id}" + (f"@{self.revision}" if self.revision else "")


def parse_repo_ref(ref: str) -> RepoRef:
    """``"ns/name@rev"`` -> ``RepoRef("ns/name", "rev")``; also ``datasets/ns/name@rev`` and ``hf://…``."""
    m = _REPO_REF.match((ref or "").strip())
    if not m:
        raise UserError(f"not a Hub repo reference: {ref!r} (expected 'namespace/name' or 'namespace/name@revision')")
    rtype = m.group("type")
    return RepoRef(m.group("id"), m.group("rev"), rtype[:-1] if rtype else None)


# ---- errors and retries ---------------------------------------------------------------------------
@dataclass
class RetryPolicy:
    """Retries for idempotent requests (reads, content-addressed uploads); never for commits."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0


DEFAULT_RETRY = RetryPolicy()


def _is_transient(exc: BaseException) -> bool:
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    for e in _chain(exc):
        if isinstance(e, (httpx2.TransportError, ConnectionError, TimeoutError)):
            return True
        if isinstance(e, HfHubHTTPError) and e.response is not None and e.response.status_code in (408, 429, 500, 502, 503, 504):
            return True
    return False


def _chain(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _retry(fn: Callable[[], T], policy: RetryPolicy, what: str) -> T:
    delay = policy.base_delay
    for attempt in range(1, max(1, policy.attempts) + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt >= policy.attempts or not _is_transient(exc):
                raise
            log.warning("hub: %s failed (%s), retry %d/%d in %.1fs", what, type(exc).__name__, attempt,
                        policy.attempts - 1, delay)
            time.sleep(delay)
            delay = min(policy.max_delay, delay * 2)
    raise AssertionError("unreachable")


def _status(exc: BaseException) -> int | None:
    from huggingface_hub.errors import HfHubHTTPError

    for e in _chain(exc):
        if isinstance(e, HfHubHTTPError) and e.response is not None:
            return e.response.status_code
    return None


def _server_message(exc: BaseException) -> str:
    from huggingface_hub.errors import HfHubHTTPError

    for e in _chain(exc):
        if isinstance(e, HfHubHTTPError) and e.response is not None:
            msg = e.response.headers.get("X-Error-Message") or getattr(e, "server_message", None) or ""
            return str(msg).strip().splitlines()[0] if str(msg).strip() else ""
    return ""


def to_hub_error(exc: BaseException, what: str, repo_id: str, revision: str | None, endpoint: str,
                 token: str | None = None, repo_type: str | None = None) -> HubError:
    """Translate any client exception into one HubError line (tokens scrubbed)."""
    import httpx2
    from huggingface_hub.errors import (
        EntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, HubError):
        return exc
    kind = f"{repo_type} " if repo_type else ""
    where = f"{kind}repo '{repo_id}'" + (f" at revision '{revision}'" if revision else "")
    status = _status(exc)
    server_msg = _server_message(exc)
    chain = _chain(exc)
    cls: type[HubError] = HubError
    if any(isinstance(e, OfflineModeIsEnabled) for e in chain):
        reason, cls = "HF_HUB_OFFLINE is set, so the Hub cannot be reached", HubUnavailableError
    elif any(isinstance(e, (httpx2.ConnectError, ConnectionRefusedError)) for e in chain):
        reason, cls = f"cannot connect to the Hub at {endpoint} (is the server running?)", HubUnavailableError
    elif any(isinstance(e, (httpx2.TransportError, ConnectionError, TimeoutError)) for e in chain):
        reason, cls = f"the connection to the Hub at {endpoint} was lost or timed out", HubUnavailableError
    elif any(isinstance(e, RevisionNotFoundError) for e in chain):
        reason, cls = f"revision '{revision}' does not exist", HubNotFoundError
    elif any(isinstance(e, EntryNotFoundError) for e in chain):
        reason, cls = f"file not found ({server_msg or 'EntryNotFound'})", HubNotFoundError
    elif any(isinstance(e, RepositoryNotFoundError) for e in chain) or status == 404:
        if status == 401:
            reason = ("repository not found, or it is private and the token is missing or has no access "
                      "(set HF_TOKEN or pass token=)")
            cls = HubAuthError
        else:
            reason, cls = "repository not found", HubNotFoundError
    elif status == 401:
        reason = f"authentication failed ({server_msg or 'missing or invalid token'}); set HF_TOKEN or pass token="
        cls = HubAuthError
    elif status == 403:
        reason, cls = f"permission denied ({server_msg or 'forbidden'})", HubAuthError
    elif status == 409:
        reason, cls = f"conflict: {server_msg or 'already exists'}", HubConflictError
    elif status == 412:
        reason = "the branch moved since this operation started (412 precondition failed); nothing was committed"
        cls = HubConflictError
    elif status is not None:
        reason = f"HTTP {status}" + (f": {server_msg}" if server_msg else "")
    else:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        reason = f"{type(exc).__name__}" + (f": {first}" if first else "")
    message = scrub(f"hub: {what} {where} failed: {reason}", token, os.environ.get("HF_TOKEN"))
    err = cls(message, repo_id=repo_id, revision=revision, status=status)
    return err


@contextlib.contextmanager
def _hub_errors(what: str, repo_id: str, revision: str | None, endpoint: str, token: str | None,
                repo_type: str | None = None) -> Iterator[None]:
    try:
        yield
    except HubError:
        raise
    except Exception as exc:
        raise to_hub_error(exc, what, repo_id, revision, endpoint, token, repo_type) from exc


def _api(endpoint: str | None, token: str | None):
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint or current_endpoint(), token=token)


@dataclass
class _Repo:
    """One repo on one endpoint as the steps of a publish or a pull talk to it.

    ``label`` is the revision that error messages name: the one the caller asked for, not the sha
    it resolved to, so that a message points at what the user typed.
    """

    api: Any
    repo_id: str
    repo_type: str
    label: str
    endpoint: str
    token: str | None
    policy: RetryPolicy

    def errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        return _hub_errors(what, self.repo_id, self.label, self.endpoint, self.token, self.repo_type)

    def retry(self, fn: Callable[[], T], what: str) -> T:
        return _retry(fn, self.policy, what)

    def failure(self, cls: type[HubError], what: str, reason: str, **extra: Any) -> HubError:
        """A one-line error in the shape of ``to_hub_error``'s, for a failure found by our own checks."""
        return cls(f"hub: {what} {self.repo_type} repo '{self.repo_id}' at revision '{self.label}' failed: {reason}",
                   repo_id=self.repo_id, revision=self.label, **extra)


# ---- revisions ----------------------------------------------------------------------------------
def resolve_revision(repo_id: str, revision: str | None = None, repo_type: str = "model", *,
                     token: str | None = None, endpoint: str | None = None,
                     retry: RetryPolicy | None = None) -> str:
    """Branch, tag or sha (``None`` = ``main``) -> the 40-hex commit sha it points to now."""
    policy = retry or DEFAULT_RETRY
    ep = (endpoint or current_endpoint()).rstrip("/")
    api = _api(ep, token)
    with _hub_errors("resolving", repo_id, revision or "main", ep, token, repo_type):
        sha = _retry(lambda: api.repo_info(repo_id, repo_type=repo_type, revision=revision).sha, policy,
                     f"resolve {repo_id}@{revision}")
    if not sha or not _HEX40.match(sha):
        raise HubError(f"hub: resolving {repo_type} repo '{repo_id}' at revision '{revision}' failed: "
                       f"the server returned no commit sha", repo_id=repo_id, revision=revision)
    return sha


# ---- publishing ---------------------------------------------------------------------------------
_SKIP_DIRS = {".git", "__pycache__", ".cache", ".ipynb_checkpoints"}


def _folder_files(folder: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(files):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, folder).replace(os.sep, "/")
            out[rel] = full
    return out


def publish_folder(
    folder: str,
    repo_id: str,
    repo_type: str = "model",
    tag: str | None = None,
    message: str = "Publish with reflectevo",
    token: str | None = None,
    private: bool = False,
    *,
    endpoint: str | None = None,
    branch: str = "main",
    replace: bool = True,
    card_text: str | None = None,
    tag_message: str | None = None,
    retry: RetryPolicy | None = None,
) -> str:
    """Publish the files of ``folder`` as one commit on ``branch``, then tag it; return the sha.

    ``replace=True`` (default) makes the commit's tree exactly the folder (plus ``.gitattributes``):
    files from earlier publishes that are not in the folder are deleted in the same commit.
    ``card_text`` (optional) is written as README.md. The repo is created when missing (``private``
    applies only then). A tag that exists already is an error unless it points at the same commit.
    """
    files = _files_to_publish(folder, card_text)
    ep = (endpoint or current_endpoint()).rstrip("/")
    repo = _Repo(_api(ep, token), repo_id, repo_type, tag or branch, ep, token, retry or DEFAULT_RETRY)
    with repo.errors("publishing to"):
        _create_repo_if_missing(repo, private)
        if tag:
            _refuse_taken_tag(repo, tag)
    additions = _additions(files, card_text)
    # content first: LFS uploads are content-addressed, so retrying them is safe
    _upload_lfs_content(repo, additions, branch)
    sha = _commit_once(repo, additions, branch, message, replace=replace)
    # tag last: only a complete commit ever gets a tag
    if tag:
        _tag_commit(repo, tag, sha, tag_message or message)
    return sha


def _files_to_publish(folder: str, card_text: str | None) -> dict[str, str]:
    """Repo path -> local path of the folder's files; a given card replaces the folder's README.md."""
    if not os.path.isdir(folder):
        raise UserError(f"cannot publish {folder}: not a folder")
    files = _folder_files(folder)
    if card_text is not None:
        files.pop("README.md", None)
    if not files and card_text is None:
        raise UserError(f"cannot publish {folder}: the folder is empty")
    return files


def _create_repo_if_missing(repo: _Repo, private: bool) -> None:
    repo.retry(lambda: repo.api.create_repo(repo.repo_id, repo_type=repo.repo_type, private=private, exist_ok=True),
               f"create {repo.repo_id}")


def _refuse_taken_tag(repo: _Repo, tag: str) -> None:
    """Tags are immutable: checked before any upload, so a taken tag costs nothing."""
    refs = repo.retry(lambda: repo.api.list_repo_refs(repo.repo_id, repo_type=repo.repo_type), f"refs {repo.repo_id}")
    existing = {t.name: t.target_commit for t in refs.tags}
    if tag in existing:
        raise HubConflictError(
            f"hub: publishing to {repo.repo_type} repo '{repo.repo_id}' at revision '{tag}' failed: tag '{tag}' "
            f"exists already (commit {existing[tag]}); tags are immutable, choose a new one",
            repo_id=repo.repo_id, revision=tag, status=409)


def _additions(files: dict[str, str], card_text: str | None) -> list:
    from huggingface_hub import CommitOperationAdd

    ops = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=full) for rel, full in files.items()]
    if card_text is not None:
        ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card_text.encode()))
    return ops


def _upload_lfs_content(repo: _Repo, additions: list, branch: str) -> None:
    with repo.errors("uploading files to"):
        repo.retry(lambda: repo.api.preupload_lfs_files(repo.repo_id, additions=additions, repo_type=repo.repo_type,
                                                        revision=branch, free_memory=False),
                   f"upload to {repo.repo_id}")


_COMMIT_ATTEMPTS = 10


def _commit_once(repo: _Repo, additions: list, branch: str, message: str, *, replace: bool) -> str:
    """Commit ``additions`` on ``branch`` exactly once and return the commit's sha.

    Each attempt names the head it was computed against, so a branch that moved meanwhile is a 412
    with nothing committed: recompute and try again. A connection cut during the request is never
    retried blindly (the commit may have landed); the branch history is searched for this publish's
    marker instead.
    """
    publish_id = uuid.uuid4().hex
    description = f"{PUBLISH_MARKER} {publish_id}"
    for attempt in range(_COMMIT_ATTEMPTS):
        head, operations = _operations_on_head(repo, additions, branch, replace)
        try:
            info = repo.api.create_commit(repo.repo_id, operations=operations, commit_message=message,
                                          commit_description=description, repo_type=repo.repo_type,
                                          revision=branch, parent_commit=head)
            return info.oid
        except Exception as exc:
            if _status(exc) == 412 and attempt < _COMMIT_ATTEMPTS - 1:
                log.info("hub: %s moved during publish, retrying on the new head", branch)
                time.sleep(random.uniform(0.02, 0.1) * (attempt + 1))  # jitter spreads racing publishers
                continue
            if _status(exc) is None and _is_transient(exc):
                return _landed_commit(repo, branch, publish_id, exc)
            raise to_hub_error(exc, "committing to", repo.repo_id, repo.label, repo.endpoint, repo.token,
                               repo.repo_type) from exc
    raise repo.failure(HubConflictError, "publishing to", "branch kept moving")  # pragma: no cover


def _operations_on_head(repo: _Repo, additions: list, branch: str, replace: bool) -> tuple[str, list]:
    """The branch head now, and the operations that turn its tree into the published one."""
    from huggingface_hub import CommitOperationDelete

    with repo.errors("publishing to"):
        head = resolve_revision(repo.repo_id, branch, repo.repo_type, token=repo.token, endpoint=repo.endpoint,
                                retry=repo.policy)
        operations: list = list(additions)
        if replace:
            published = {op.path_in_repo for op in additions}
            tree = repo.retry(lambda: repo.api.list_repo_files(repo.repo_id, repo_type=repo.repo_type, revision=head),
                              f"list {repo.repo_id}")
            operations += [CommitOperationDelete(path_in_repo=p) for p in tree
                           if p not in published and p != ".gitattributes"]
    return head, operations


def _landed_commit(repo: _Repo, branch: str, publish_id: str, cut: BaseException) -> str:
    """After a cut connection: the sha of this publish's commit if it landed, else an error."""
    landed = _find_marker_commit(repo.api, repo.repo_id, repo.repo_type, branch, publish_id, repo.policy)
    if landed:
        return landed
    raise HubUnavailableError(
        scrub(f"hub: publishing to {repo.repo_type} repo '{repo.repo_id}' at revision '{repo.label}' failed: "
              f"the connection to {repo.endpoint} broke during the commit and the commit did not land "
              f"(or the server is down); nothing was tagged, earlier revisions are unchanged",
              repo.token),
        repo_id=repo.repo_id, revision=repo.label) from cut


def _tag_commit(repo: _Repo, tag: str, sha: str, message: str) -> None:
    with repo.errors("tagging"):
        try:
            repo.retry(lambda: repo.api.create_tag(repo.repo_id, tag=tag, revision=sha, tag_message=message,
                                                   repo_type=repo.repo_type), f"tag {repo.repo_id}@{tag}")
        except Exception as exc:
            if _status(exc) != 409:
                raise
            # a retried request may have created it already: fine if it points at our commit
            refs = repo.retry(lambda: repo.api.list_repo_refs(repo.repo_id, repo_type=repo.repo_type),
                              f"refs {repo.repo_id}")
            if {t.name: t.target_commit for t in refs.tags}.get(tag) != sha:
                raise


def _find_marker_commit(api: Any, repo_id: str, repo_type: str, branch: str, publish_id: str,
                        policy: RetryPolicy) -> str | None:
    try:
        commits = _retry(lambda: api.list_repo_commits(repo_id, repo_type=repo_type, revision=branch), policy,
                         f"history of {repo_id}")
    except Exception:
        return None
    for c in commits[:50]:
        if publish_id in (c.message or ""):
            return c.commit_id
    return None


_CONFIG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SPLIT_RE = re.compile(r"^\w+(\.\w+)*$")


def publish_dataset(
    dataset_dict_by_config: dict[str, Any],
    repo_id: str,
    card_text: str,
    tag: str | None,
    message: str | None = None,
    token: str | None = None,
    private: bool = False,
    *,
    endpoint: str | None = None,
    branch: str = "main",
    default_config: str | None = None,
    retry: RetryPolicy | None = None,
) -> str:
    """Publish ``{config: DatasetDict}`` as parquet (``{config}/{split}-00000-of-00001.parquet``)
    with a dataset card, in one commit, then tag it. Returns the commit sha.

    The card is ``card_text`` (its YAML header, if any, is kept) plus the ``configs`` and
    ``dataset_info`` metadata ``datasets.load_dataset(repo, config)`` needs. The commit replaces the
    repo's content: configs not given here are not in the tagged revision.
    """
    from datasets import DatasetDict
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    if not dataset_dict_by_config:
        raise UserError(f"nothing to publish to {repo_id}: no configs given")
    with tempfile.TemporaryDirectory(prefix="reflectevo-publish-") as tmp:
        meta_configs: dict[str, dict] = {}
        infos: dict[str, Any] = {}
        for config, dd in dataset_dict_by_config.items():
            if not _CONFIG_RE.match(config):
                raise UserError(f"invalid config name {config!r} for {repo_id} (letters, digits, '_', '.', '-')")
            if not isinstance(dd, DatasetDict):
                raise UserError(f"config {config!r} for {repo_id}: expected a datasets.DatasetDict, got {type(dd).__name__}")
            os.makedirs(os.path.join(tmp, config))
            splits = SplitDict()
            data_files = []
            features = None
            total = 0
            for split, ds in dd.items():
                if not _SPLIT_RE.match(split):
                    raise UserError(f"invalid split name {split!r} in config {config!r} for {repo_id}")
                path = os.path.join(tmp, config, f"{split}-00000-of-00001.parquet")
                ds.to_parquet(path)
                nbytes = int(ds.data.nbytes)
                total += nbytes
                splits.add(SplitInfo(name=split, num_bytes=nbytes, num_examples=len(ds)))
                data_files.append({"split": split, "path": f"{config}/{split}-*"})
                if features is None:
                    features = ds.features
            meta_configs[config] = {"data_files": data_files}
            if default_config == config:
                meta_configs[config]["default"] = True
            infos[config] = DatasetInfo(features=features, splits=splits, dataset_size=total)
        card = DatasetCard(card_text if card_text.strip() else "# Dataset\n")
        MetadataConfigs(meta_configs).to_dataset_card_data(card.data)
        DatasetInfosDict(infos).to_dataset_card_data(card.data)
        return publish_folder(
            tmp, repo_id, "dataset", tag, message or f"Publish {', '.join(dataset_dict_by_config)}",
            token, private, endpoint=endpoint, branch=branch, replace=True, card_text=str(card), retry=retry,
        )


# ---- pulling ------------------------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": hashlib.sha256(value).hexdigest()}
    return str(value)


def table_content_hash(batches: Any) -> str:
    """sha256 over the rows of an iterable of pyarrow tables/record batches (order-sensitive)."""
    h = hashlib.sha256()
    for batch in batches:
        for row in batch.to_pylist():
            h.update(json.dumps(row, sort_keys=True, default=_json_default, ensure_ascii=False).encode())
            h.update(b"\n")
    return h.hexdigest()


def content_hash(dataset: Any) -> Any:
    """Row-content hash of a ``Dataset`` (str) or ``DatasetDict`` ({split: str}); features-independent."""
    from datasets import DatasetDict

    if isinstance(dataset, DatasetDict) or isinstance(dataset, dict):
        return {split: content_hash(ds) for split, ds in dataset.items()}
    return table_content_hash(dataset.with_format("arrow").iter(batch_size=1000))


@dataclass
class PulledDataset:
    """A dataset loaded at a verified commit; ``provenance()`` is safe to record (no token)."""

    dataset: Any  # datasets.DatasetDict
    repo_id: str
    config: str
    revision: str | None
    sha: str
    files: dict[str, str] = field(default_factory=dict)  # path in repo -> sha256
    content_hashes: dict[str, str] = field(default_factory=dict)  # split -> row content hash
    endpoint: str = HF_DEFAULT_ENDPOINT

    def provenance(self) -> dict:
        return {"repo_id": self.repo_id, "repo_type": "dataset", "config": self.config,
                "revision": self.revision, "sha": self.sha, "endpoint": self.endpoint,
                "files": dict(self.files), "content_hashes": dict(self.content_hashes)}


def _config_data_files(readme: str | None, config: str, paths: list[str]) -> dict[str, list[str]]:
    """split -> repo paths of its data files, from the card's ``configs`` (else ``{config}/{split}-*``)."""
    patterns: dict[str, list[str]] = {}
    if readme:
        from datasets.utils.metadata import MetadataConfigs
        from huggingface_hub import DatasetCard

        meta = MetadataConfigs.from_dataset_card_data(DatasetCard(readme).data)
        entry = meta.get(config)
        if entry is not None:
            data_files = entry.get("data_files")
            if isinstance(data_files, str):
                patterns["train"] = [data_files]
            elif isinstance(data_files, list):
                for item in data_files:
                    if isinstance(item, dict):
                        pats = item.get("path")
                        patterns.setdefault(item.get("split", "train"), []).extend(
                            [pats] if isinstance(pats, str) else list(pats or []))
                    else:
                        patterns.setdefault("train", []).append(str(item))
            elif isinstance(data_files, dict):
                for split, pats in data_files.items():
                    patterns[split] = [pats] if isinstance(pats, str) else list(pats)
    if not patterns:  # no card metadata: the layouts push_to_hub writes
        prefixes = [config + "/"] + (["data/"] if config == "default" else [])
        for p in paths:
            prefix = next((x for x in prefixes if p.startswith(x)), None)
            if prefix is not None and p.endswith(".parquet"):
                split = p[len(prefix):].split("/")[0].split("-")[0]
                patterns.setdefault(split, []).append(p)
    out: dict[str, list[str]] = {}
    for split, pats in patterns.items():
        out[split] = sorted(p for p in paths if any(fnmatch.fnmatchcase(p, pat) for pat in pats))
    return out


def pull_dataset(
    repo_id: str,
    config: str,
    revision: str | None = "main",
    cache_dir: str | None = None,
    *,
    token: str | None = None,
    endpoint: str | None = None,
    retry: RetryPolicy | None = None,
) -> PulledDataset:
    """Load ``config`` of dataset ``repo_id`` at ``revision`` into a fresh cache and verify it.

    ``cache_dir`` must be empty or missing (default: a new temp dir). The revision is resolved to
    a sha and loading happens at that sha. Then the config's parquet files at that sha are
    downloaded separately, their sha256 checked against the repo tree, and the loaded rows of
    each split must hash the same as the rows of those files; any mismatch is a HubError.
    """
    policy = retry or DEFAULT_RETRY
    cache_dir = _fresh_cache_dir(cache_dir)
    verify_dir = os.path.join(cache_dir, "verify")
    # the Hub libraries are imported inside the block (by the steps), so that a first import
    # already reads this endpoint
    with use_endpoint(endpoint) as ep:
        sha = resolve_revision(repo_id, revision, "dataset", token=token, endpoint=ep, retry=policy)
        repo = _Repo(_api(ep, token), repo_id, "dataset", revision or "main", ep, token, policy)
        tree = _tree_at(repo, sha)
        readme = _read_card(repo, tree, sha, verify_dir)
        split_files = _split_files(repo, readme, config, tree, sha)
        files, tables_by_split = _download_verified(repo, split_files, tree, sha, verify_dir)
        loaded = _load_config(repo, config, sha, cache_dir, tables_by_split)
        hashes = _check_loaded_rows(repo, config, sha, loaded, tables_by_split)
        return PulledDataset(dataset=loaded, repo_id=repo_id, config=config, revision=revision, sha=sha,
                             files=files, content_hashes=hashes, endpoint=ep)


def _fresh_cache_dir(cache_dir: str | None) -> str:
    """An empty cache: a used one could hand back rows of another revision without a download."""
    if cache_dir is None:
        cache_dir = tempfile.mkdtemp(prefix="reflectevo-pull-")
    elif os.path.isdir(cache_dir) and os.listdir(cache_dir):
        raise UserError(f"pull_dataset needs a fresh cache_dir, but {cache_dir} is not empty")
    os.makedirs(cache_dir, exist_ok=True)
    return cache_dir


def _tree_at(repo: _Repo, sha: str) -> dict[str, Any]:
    """Repo path -> tree entry of every file at ``sha`` (folders left out)."""
    with repo.errors("listing"):
        entries = repo.retry(lambda: list(repo.api.list_repo_tree(repo.repo_id, repo_type=repo.repo_type, revision=sha,
                                                                  recursive=True)), f"tree {repo.repo_id}")
    return {e.path: e for e in entries if hasattr(e, "blob_id")}


def _download(repo: _Repo, path: str, sha: str, verify_dir: str) -> str:
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo.repo_id, path, repo_type=repo.repo_type, revision=sha, token=repo.token,
                           cache_dir=verify_dir, endpoint=repo.endpoint)


def _read_card(repo: _Repo, tree: dict[str, Any], sha: str, verify_dir: str) -> str | None:
    """The dataset card's text at ``sha`` (it may name the config's data files), None without one."""
    if "README.md" not in tree:
        return None
    with repo.errors("reading the card of"):
        path = repo.retry(lambda: _download(repo, "README.md", sha, verify_dir), f"card {repo.repo_id}")
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def _split_files(repo: _Repo, readme: str | None, config: str, tree: dict[str, Any], sha: str) -> dict[str, list[str]]:
    split_files = {s: f for s, f in _config_data_files(readme, config, sorted(tree)).items() if f}
    if not split_files:
        raise repo.failure(HubNotFoundError, "loading", f"config '{config}' has no data files at {sha}", status=404)
    return split_files


def _download_verified(repo: _Repo, split_files: dict[str, list[str]], tree: dict[str, Any], sha: str,
                       verify_dir: str) -> tuple[dict[str, str], dict[str, list]]:
    """Download the config's files at ``sha`` and check each against the tree.

    Returns repo path -> sha256 of every file, and split -> the pyarrow tables of its parquet files
    (the rows the loaded dataset must match).
    """
    import pyarrow.parquet as pq

    files: dict[str, str] = {}
    tables_by_split: dict[str, list] = {}
    for split, paths in sorted(split_files.items()):
        tables = tables_by_split.setdefault(split, [])
        for p in paths:
            with repo.errors(f"verifying '{p}' of"):
                local = repo.retry(lambda p=p: _download(repo, p, sha, verify_dir), f"download {p}")
            files[p] = _check_against_tree(repo, p, local, tree[p], sha)
            if p.endswith(".parquet"):
                tables.append(pq.read_table(local))
    return files, tables_by_split


def _check_against_tree(repo: _Repo, path: str, local: str, entry: Any, sha: str) -> str:
    """The file's sha256, once it matches the tree: LFS files by sha256, others by git blob id."""
    digest = file_sha256(local)
    expected = entry.lfs.sha256 if entry.lfs else None
    if expected is not None and digest != expected:
        raise repo.failure(HubError, "verifying", f"{path} has sha256 {digest}, the tree at {sha} says {expected}")
    if expected is None and _git_blob_oid_file(local) != entry.blob_id:
        raise repo.failure(HubError, "verifying", f"{path} does not match its blob id in the tree at {sha}")
    return digest


def _load_config(repo: _Repo, config: str, sha: str, cache_dir: str, tables_by_split: dict[str, list]) -> Any:
    """The config as a ``DatasetDict``, loaded by ``datasets`` at ``sha``."""
    from datasets import DatasetDict, load_dataset

    rows = sum(t.num_rows for ts in tables_by_split.values() for t in ts)
    if rows == 0 and all(tables_by_split.values()):
        # `datasets` refuses to build a config whose files hold no rows; an empty curated set
        # (say, no D+ pair in a small run) is still a valid, verified result
        import pyarrow as pa
        from datasets import Dataset
        from datasets.table import InMemoryTable

        return DatasetDict({s: Dataset(InMemoryTable(pa.concat_tables(ts))) for s, ts in tables_by_split.items()})
    with repo.errors(f"loading config '{config}' of"):
        loaded = repo.retry(lambda: load_dataset(repo.repo_id, config, revision=sha, cache_dir=cache_dir,
                                                 token=repo.token), f"load {repo.repo_id}")
    return loaded if isinstance(loaded, DatasetDict) else DatasetDict({"train": loaded})


def _check_loaded_rows(repo: _Repo, config: str, sha: str, loaded: Any,
                       tables_by_split: dict[str, list]) -> dict[str, str]:
    """Split -> row content hash, once the loaded rows match the verified files.

    Offline ``datasets`` may serve a cached copy and ignore the revision; this is where it shows.
    """
    hashes: dict[str, str] = {}
    for split, tables in sorted(tables_by_split.items()):
        if split not in loaded:
            raise repo.failure(HubError, "verifying", f"split '{split}' of config '{config}' was not loaded")
        got = content_hash(loaded[split])
        if tables:
            want = table_content_hash(b for t in tables for b in t.to_batches(max_chunksize=1000))
            if got != want:
                raise repo.failure(HubError, "verifying", f"the loaded rows of split '{split}' differ from the "
                                                          f"files at {sha} (a stale cache?)")
        hashes[split] = got
    return hashes


def _git_blob_oid_file(path: str) -> str:
    h = hashlib.sha1(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# Environment only (no import-time patching of libraries): the earliest point we control.
configure_endpoint_env(patch_imported=False)
