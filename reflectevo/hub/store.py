"""Storage behind the local Hub server (see ``reflectevo.hub.server``): standard library only.

Layout of a data directory::

    DATA/blobs/ab/cd/<sha256>      file contents, content-addressed, immutable once written
    DATA/repos/<type>s/<ns>/<name>.json
                                   one document per repo: commits (parent, tree, message),
                                   branches and tags; replaced atomically on every change
    DATA/tmp/                      partial uploads (removed on start)
    DATA/.secret                   key that signs LFS upload links (survives restarts)
    DATA/.lock                     held (flock) by the one server that owns the directory

A commit's tree maps each path to ``{"sha256", "size", "oid", "lfs"}`` (``oid`` is the git blob
id the Hub reports: sha1 of the content for regular files, of the LFS pointer for LFS files).
Commit ids are 40-hex. Every change to a repo happens under that repo's lock: read the document,
check the parent, write blobs, then write the new document with write-temp + fsync + os.replace,
so a crash at any point leaves either the old or the new document, never a mix.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import secrets
import tempfile
import threading
import unicodedata
from typing import IO, Any, Iterable, Iterator

REPO_TYPES = ("model", "dataset", "space")
DEFAULT_BRANCH = "main"
LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub stores files of 10 MB and more with LFS
# A repo path must stay usable as a local path after download (snapshot_download writes it under
# the cache): common file systems allow 255 bytes per name, and 1024 bytes keeps the whole path,
# cache prefix included, well under Linux's PATH_MAX of 4096.
PATH_MAX_BYTES = 1024
PATH_PART_MAX_BYTES = 255
_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?$")
_REF_RE = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._/+-]{0,199}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

# Extensions the Hub's default .gitattributes routes to LFS (a subset that matters here).
LFS_EXTENSIONS = (
    ".7z", ".arrow", ".bin", ".bz2", ".ckpt", ".ftz", ".gguf", ".gz", ".h5", ".joblib", ".lz4",
    ".mlmodel", ".model", ".msgpack", ".npy", ".npz", ".onnx", ".ot", ".parquet", ".pb", ".pickle",
    ".pkl", ".pt", ".pth", ".rar", ".safetensors", ".tar", ".tflite", ".tgz", ".wasm", ".xz",
    ".zip", ".zst", ".jpg", ".jpeg", ".png", ".webp", ".mp3", ".wav", ".flac", ".ogg", ".mp4",
)
GITATTRIBUTES = "".join(
    f"*{ext} filter=lfs diff=lfs merge=lfs -text\n" for ext in LFS_EXTENSIONS
).encode()


class StoreError(Exception):
    """A request the store refuses; carries the HTTP status and the Hub's X-Error-Code."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def check_repo_type(repo_type: str) -> str:
    if repo_type not in REPO_TYPES:
        raise StoreError(400, f"Invalid repo type '{repo_type}'")
    return repo_type


def check_repo_id(repo_id: str) -> str:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_NAME_RE.match(p) and ".." not in p for p in parts):
        raise StoreError(400, f"Invalid repo id '{repo_id}': expected 'namespace/name'")
    return repo_id


def check_ref_name(name: str, what: str = "branch") -> str:
    if (
        not _REF_RE.match(name)
        or ".." in name
        or name.endswith((".", "/", ".lock"))
        or "//" in name
        or _HEX40.match(name)
    ):
        raise StoreError(400, f"Invalid {what} name '{name}'")
    return name


def shown_path(path: str, limit: int = 80) -> str:
    """A path as it can appear in a one-line message: escaped, quoted, cut at ``limit`` chars."""
    text = path[: limit + 1].encode("unicode_escape").decode("ascii")
    return "'" + text[:limit] + ("...'" if len(text) > limit or len(path) > limit + 1 else "'")


def check_path(path: Any) -> str:
    if not isinstance(path, str):
        raise StoreError(400, f"Invalid path in repo: expected a string, got {type(path).__name__}")
    shown = shown_path(path)
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise StoreError(400, f"Invalid path in repo {shown}: not valid UTF-8") from None
    if any(unicodedata.category(c) == "Cc" for c in path):
        raise StoreError(400, f"Invalid path in repo {shown}: control characters are not allowed")
    if size > PATH_MAX_BYTES:
        raise StoreError(400, f"Invalid path in repo {shown}: {size} bytes, more than the {PATH_MAX_BYTES} allowed")
    longest = max(len(p.encode("utf-8")) for p in path.split("/"))
    if longest > PATH_PART_MAX_BYTES:
        raise StoreError(400, f"Invalid path in repo {shown}: a name of {longest} bytes, "
                              f"more than the {PATH_PART_MAX_BYTES} allowed")
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or any(p in ("", ".", "..") for p in path.split("/"))
        or path.split("/")[0] == ".git"
    ):
        raise StoreError(400, f"Invalid path in repo {shown}")
    return path


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


class Store:
    """Blobs and repo documents in one data directory. Thread-safe within one process."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.blob_dir = os.path.join(self.root, "blobs")
        self.repo_dir = os.path.join(self.root, "repos")
        self.tmp_dir = os.path.join(self.root, "tmp")
        for d in (self.blob_dir, self.repo_dir, self.tmp_dir):
            os.makedirs(d, exist_ok=True)
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # ---- housekeeping ---------------------------------------------------------------------------
    def clean_tmp(self) -> None:
        """Drop partial uploads left by a killed server (only call while holding the data lock)."""
        for name in os.listdir(self.tmp_dir):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.tmp_dir, name))

    def secret(self) -> bytes:
        path = os.path.join(self.root, ".secret")
        try:
            with open(path, "rb") as fh:
                data = fh.read()
            if len(data) >= 32:
                return data
        except FileNotFoundError:
            pass
        data = secrets.token_bytes(32)
        atomic_write(path, data)
        os.chmod(path, 0o600)
        return data

    # ---- blobs ----------------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> str:
        if not _SHA256_RE.match(sha256):
            raise StoreError(400, f"Invalid sha256 '{sha256}'")
        return os.path.join(self.blob_dir, sha256[:2], sha256[2:4], sha256)

    def blob_size(self, sha256: str) -> int | None:
        try:
            return os.path.getsize(self.blob_path(sha256))
        except OSError:
            return None

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha)
        if not os.path.exists(path):
            atomic_write(path, data)
        return sha

    def put_stream(
        self,
        read: Any,
        length: int | None,
        expected_sha256: str,
        expected_size: int | None = None,
        on_chunk: Any = None,
        max_size: int | None = None,
    ) -> str:
        """Stream ``length`` bytes (or until ``read`` returns b"") into the blob store, verifying
        the sha256. A cut connection or a wrong hash leaves nothing but a temp file, removed here.
        With ``max_size``, reading stops at the first byte past it (400)."""
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix="upload-")
        try:
            digest = hashlib.sha256()
            total = 0
            with os.fdopen(fd, "wb") as fh:
                while length is None or total < length:
                    want = 1 << 20 if length is None else min(1 << 20, length - total)
                    if max_size is not None:
                        want = min(want, max_size + 1 - total)
                    chunk = read(want)
                    if not chunk:
                        break
                    if max_size is not None and total + len(chunk) > max_size:
                        raise StoreError(400, f"Upload has more bytes than the signed size {max_size} of this link")
                    digest.update(chunk)
                    fh.write(chunk)
                    total += len(chunk)
                    if on_chunk is not None:
                        on_chunk(total)
                if length is not None and total < length:
                    raise ConnectionError(f"upload cut after {total} of {length} bytes")
                fh.flush()
                os.fsync(fh.fileno())
            sha = digest.hexdigest()
            if sha != expected_sha256:
                raise StoreError(400, "Uploaded content does not match its sha256 oid")
            if expected_size is not None and total != expected_size:
                raise StoreError(400, f"Uploaded size {total} does not match the announced {expected_size}")
            final = self.blob_path(sha)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.replace(tmp, final)
            _fsync_dir(os.path.dirname(final))
            return sha
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def open_blob(self, sha256: str) -> IO[bytes]:
        return open(self.blob_path(sha256), "rb")

    # ---- repo documents -------------------------------------------------------------------------
    def _doc_path(self, repo_type: str, repo_id: str) -> str:
        check_repo_type(repo_type)
        ns, name = check_repo_id(repo_id).split("/")
        return os.path.join(self.repo_dir, repo_type + "s", ns, name + ".json")

    @contextlib.contextmanager
    def _locked(self, repo_type: str, repo_id: str) -> Iterator[None]:
        key = (repo_type, repo_id.lower())
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def load(self, repo_type: str, repo_id: str) -> dict | None:
        try:
            with open(self._doc_path(repo_type, repo_id), "rb") as fh:
                return json.loads(fh.read())
        except FileNotFoundError:
            return None

    def get(self, repo_type: str, repo_id: str) -> dict:
        doc = self.load(repo_type, repo_id)
        if doc is None:
            raise StoreError(404, f"Repository {repo_type}s/{repo_id} not found", "RepoNotFound")
        return doc

    def _save(self, doc: dict) -> None:
        data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        atomic_write(self._doc_path(doc["type"], doc["id"]), data)

    def create_repo(self, repo_type: str, repo_id: str, private: bool, author: str) -> dict:
        with self._locked(repo_type, repo_id):
            if self.load(repo_type, repo_id) is not None:
                raise StoreError(409, f"You already created this {repo_type} repo: {repo_id}")
            date = now_iso()
            sha = self.put_bytes(GITATTRIBUTES)
            tree = {".gitattributes": self._entry(sha, len(GITATTRIBUTES), git_blob_oid(GITATTRIBUTES), False)}
            commit = self._new_commit(None, tree, "initial commit", "", author, date)
            doc = {
                "format": 1,
                "type": repo_type,
                "id": repo_id,
                "private": bool(private),
                "createdAt": date,
                "commits": {commit["id"]: commit},
                "branches": {DEFAULT_BRANCH: commit["id"]},
                "tags": {},
            }
            self._save(doc)
            return doc

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self._locked(repo_type, repo_id):
            path = self._doc_path(repo_type, repo_id)
            if not os.path.exists(path):
                raise StoreError(404, f"Repository {repo_type}s/{repo_id} not found", "RepoNotFound")
            os.unlink(path)  # blobs stay: content-addressed, possibly shared
            _fsync_dir(os.path.dirname(path))

    def set_private(self, repo_type: str, repo_id: str, private: bool) -> None:
        with self._locked(repo_type, repo_id):
            doc = self.get(repo_type, repo_id)
            doc["private"] = bool(private)
            self._save(doc)

    # ---- revisions ------------------------------------------------------------------------------
    @staticmethod
    def resolve(doc: dict, revision: str | None) -> str:
        """Branch, tag (also as refs/heads/…, refs/tags/…) or full commit id -> commit id."""
        rev = revision or DEFAULT_BRANCH
        if rev.startswith("refs/heads/") and rev[11:] in doc["branches"]:
            return doc["branches"][rev[11:]]
        if rev.startswith("refs/tags/") and rev[10:] in doc["tags"]:
            return doc["tags"][rev[10:]]["commit"]
        if rev in doc["branches"]:
            return doc["branches"][rev]
        if rev in doc["tags"]:
            return doc["tags"][rev]["commit"]
        if _HEX40.match(rev) and rev in doc["commits"]:
            return rev
        raise StoreError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    @staticmethod
    def history(doc: dict, sha: str) -> list[dict]:
        out = []
        seen = set()
        while sha and sha not in seen:
            seen.add(sha)
            commit = doc["commits"][sha]
            out.append(commit)
            sha = commit["parents"][0] if commit["parents"] else None
        return out

    @staticmethod
    def _entry(sha256: str, size: int, oid: str, lfs: bool) -> dict:
        return {"sha256": sha256, "size": size, "oid": oid, "lfs": lfs}

    @staticmethod
    def _new_commit(parent: str | None, tree: dict, title: str, message: str, author: str, date: str) -> dict:
        fields = {"parents": [parent] if parent else [], "tree": tree, "title": title, "message": message,
                  "author": author, "date": date}
        # the nonce keeps two identical commits made in the same second apart; it is hashed, not stored
        body = json.dumps({**fields, "nonce": secrets.token_hex(8)}, sort_keys=True).encode()
        return {"id": hashlib.sha1(b"commit %d\0" % len(body) + body).hexdigest(), **fields}

    # ---- commits --------------------------------------------------------------------------------
    def commit(
        self,
        repo_type: str,
        repo_id: str,
        branch: str,
        operations: Iterable[dict],
        *,
        summary: str,
        description: str = "",
        parent_commit: str | None = None,
        author: str = "local",
    ) -> str:
        """Apply NDJSON-style operations as one commit on ``branch``; returns the commit id.

        Operations: ``{"key": "file", "value": {path, content, encoding}}``,
        ``{"key": "lfsFile", "value": {path, oid, size?}}``, ``deletedFile``, ``deletedFolder``.
        Regular file contents are stored before the lock is taken (and taken out of their operation,
        so that a large inline file is in memory once); the document is swapped last.
        """
        # blobs are content-addressed, so storing them before the lock cannot disturb another commit
        # and keeps the lock held only for the document swap
        changes = [change for change in map(self._prepare_operation, operations) if change is not None]
        with self._locked(repo_type, repo_id):
            doc = self.get(repo_type, repo_id)
            head = _branch_head(doc, branch, parent_commit)
            tree = _apply_changes(doc["commits"][head]["tree"], changes)
            commit = self._new_commit(head, tree, summary, description, author, now_iso())
            doc["commits"][commit["id"]] = commit
            doc["branches"][branch] = commit["id"]
            self._save(doc)
            return commit["id"]

    def _prepare_operation(self, op: dict) -> tuple[str, str, dict | None] | None:
        """One commit operation -> ``(kind, path, tree entry)`` with its content stored; None for a header."""
        key, value = op.get("key"), op.get("value")
        if not isinstance(value, dict):
            raise StoreError(400, f"Commit operation {shown_path(str(key), 40)} needs an object as its value")
        if key == "file":
            return self._store_inline_file(value)
        if key == "lfsFile":
            return self._check_lfs_file(value)
        if key == "deletedFile":
            return ("del", check_path(value.get("path")), None)
        if key == "deletedFolder":
            folder = _op_str(value, "path", "(folder)").strip("/")
            return ("delfolder", check_path(folder) if folder else folder, None)
        if key == "header":
            return None
        raise StoreError(400, f"Unknown commit operation {shown_path(str(key), 40)}")

    def _store_inline_file(self, value: dict) -> tuple[str, str, dict]:
        path = check_path(value.get("path"))
        data = _inline_content(value, path)
        sha = self.put_bytes(data)
        return ("add", path, self._entry(sha, len(data), git_blob_oid(data), False))

    def _check_lfs_file(self, value: dict) -> tuple[str, str, dict]:
        """An LFS file names content uploaded earlier: it must be there, at the announced size."""
        path = check_path(value.get("path"))
        if _op_str(value, "algo", path, "sha256") != "sha256":
            raise StoreError(400, f"Unsupported LFS hash algorithm for '{path}'")
        oid = _op_str(value, "oid", path).lower()
        announced = value.get("size")
        if announced is not None and (isinstance(announced, bool) or not isinstance(announced, int)):
            raise StoreError(400, f"'size' of the LFS file '{path}' must be an integer")
        size = self.blob_size(oid) if _SHA256_RE.match(oid) else None
        if size is None:
            raise StoreError(422, f"LFS object {oid[:64]} for '{path}' was not uploaded")
        if announced is not None and announced != size:
            raise StoreError(422, f"LFS object {oid} for '{path}' has size {size}, not {announced}")
        ptr = lfs_pointer(oid, size)
        return ("add", path, self._entry(oid, size, git_blob_oid(ptr), True))

    # ---- refs -----------------------------------------------------------------------------------
    def create_branch(self, repo_type: str, repo_id: str, branch: str, starting_point: str | None) -> str:
        check_ref_name(branch, "branch")
        with self._locked(repo_type, repo_id):
            doc = self.get(repo_type, repo_id)
            if branch in doc["branches"]:
                raise StoreError(409, f"Reference already exists: refs/heads/{branch}")
            sha = self.resolve(doc, starting_point)
            doc["branches"][branch] = sha
            self._save(doc)
            return sha

    def delete_branch(self, repo_type: str, repo_id: str, branch: str) -> None:
        with self._locked(repo_type, repo_id):
            doc = self.get(repo_type, repo_id)
            if branch == DEFAULT_BRANCH:
                raise StoreError(403, f"Cannot delete the default branch '{branch}'")
            if branch not in doc["branches"]:
                raise StoreError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            del doc["branches"][branch]
            self._save(doc)

    def create_tag(self, repo_type: str, repo_id: str, tag: str, revision: str | None, message: str) -> str:
        check_ref_name(tag, "tag")
        with self._locked(repo_type, repo_id):
            doc = self.get(repo_type, repo_id)
            sha = self.resolve(doc, revision)
            if tag in doc["tags"]:
                raise StoreError(409, f"Tag already exists: refs/tags/{tag}")
            doc["tags"][tag] = {"commit": sha, "message": message or "", "date": now_iso()}
            self._save(doc)
            return sha

    def delete_tag(self, repo_type: str, repo_id: str, tag: str) -> None:
        with self._locked(repo_type, repo_id):
            doc = self.get(repo_type, repo_id)
            if tag not in doc["tags"]:
                raise StoreError(404, f"Invalid rev id: {tag}", "RevisionNotFound")
            del doc["tags"][tag]
            self._save(doc)


def _inline_content(value: dict, path: str) -> bytes:
    """The bytes of an inline file operation, decoded from text or base64."""
    content = _op_str(value, "content", path)
    value.pop("content", None)  # keep one text copy alive while decoding, not two
    if _op_str(value, "encoding", path, "utf-8") == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except (ValueError, TypeError):
            raise StoreError(400, f"Invalid base64 content for '{path}'") from None
    try:
        return content.encode("utf-8")
    except UnicodeEncodeError:
        raise StoreError(400, f"Content for '{path}' is not valid UTF-8 text") from None


def _branch_head(doc: dict, branch: str, parent_commit: str | None) -> str:
    """The head commit of ``branch``; 412 when the client computed its commit against another one."""
    if branch not in doc["branches"]:
        if branch in doc["tags"] or _HEX40.match(branch):
            raise StoreError(400, f"Cannot commit to '{branch}': not a branch")
        raise StoreError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
    head = doc["branches"][branch]
    if parent_commit is not None and parent_commit.lower() != head:
        raise StoreError(
            412,
            f"A commit has happened since. Please refresh and try again "
            f"(parent {parent_commit} is not the head {head} of '{branch}')",
        )
    return head


def _apply_changes(tree: dict, changes: list[tuple[str, str, dict | None]]) -> dict:
    """A copy of ``tree`` with the prepared changes applied in order; the first bad one is an error."""
    tree = dict(tree)
    for kind, path, entry in changes:
        if kind == "add":
            _add_file(tree, path, entry)
        elif kind == "del":
            _delete_file(tree, path)
        else:
            _delete_folder(tree, path)
    return tree


def _add_file(tree: dict, path: str, entry: dict | None) -> None:
    # a path cannot be both a file and a folder
    if any(p in tree for p in _parents(path)) or any(k.startswith(path + "/") for k in tree):
        raise StoreError(400, f"'{path}' conflicts with an existing file or folder")
    tree[path] = entry


def _delete_file(tree: dict, path: str) -> None:
    if path not in tree:
        raise StoreError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
    del tree[path]


def _delete_folder(tree: dict, path: str) -> None:
    """Delete every file under ``path`` ('' is the whole tree); a folder with no file is a 404."""
    doomed = [k for k in tree if not path or k == path or k.startswith(path + "/")]
    if not doomed:
        raise StoreError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
    for k in doomed:
        del tree[k]


def _op_str(value: dict, key: str, path: str, default: str = "") -> str:
    item = value.get(key, default)
    if not isinstance(item, str):
        raise StoreError(400, f"'{key}' of the commit operation on {shown_path(path, 60)} must be a string")
    return item


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]
