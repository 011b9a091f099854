"""A small Hugging Face Hub-compatible HTTP server, standard library only.

What it is: test infrastructure and a local stand-in for huggingface.co, so that every Hub flow of
this project (dataset push, adapter push, pull by revision, lm-eval tasks reading a dataset at a
tag) runs with the real, unmodified clients (``huggingface_hub``, ``datasets``, ``transformers``,
``peft``, ``lm-eval``) on a machine without internet. It is not a product: no web UI, no git
protocol, no users beyond the tokens given at start (all of them may write), no pull requests,
no xet. It implements the REST endpoints those clients call (the team's hub-protocol notes
list them): repo create/delete/info/settings, tree and
paths-info listings, refs, commit history, preupload, the NDJSON commit endpoint, LFS batch
uploads (basic transfer, sha256 content addressing), branches, tags and ``resolve`` downloads
with ``Range`` support.

Semantics that match the Hub:

* commits are atomic and serialized per repo; ``parentCommit`` that is not the branch head -> 412;
* a write without a valid token -> 401;
* without a valid token, a private repo and a missing one get the same answer (401
  ``RepoNotFound``, or 401 "Invalid credentials" for a wrong token), so existence does not leak;
* with a valid token: unknown repo -> 404 ``X-Error-Code: RepoNotFound``; unknown revision -> 404
  ``RevisionNotFound``; missing file -> 404 ``EntryNotFound``; existing repo/branch/tag on create -> 409.

Limits (issue 20): it listens on loopback only unless told otherwise (``--allow_remote``: it speaks
plain HTTP); who is asking is decided from the headers before any body is read, and bodies are
capped per request kind (1 MiB for any request without a valid token; see ``UNAUTH_BODY_MAX`` and
the caps next to it); commit bodies are spooled to disk; an upload link takes exactly its signed
size; commit paths are at most 1,024 bytes, 255 per name, no control characters; a malformed
request gets a 4xx answer with a message.

Storage is a content-addressed blob directory plus one JSON document per repo; see
``reflectevo.hub.store``. One server owns a data directory at a time (an ``flock`` on
``DATA/.lock``); a server killed with SIGKILL leaves the last complete revision intact.

Starting it
-----------
Command line (foreground, prints its URL; tokens may come from ``REFLECTEVO_HUB_TOKENS``, a
comma-separated list, to keep them off the command line)::

    REFLECTEVO_HUB_TOKENS=secret reflectevo hub serve --data /tmp/hub --port 8765
    export HF_ENDPOINT=http://127.0.0.1:8765 HF_HUB_DISABLE_XET=1 HF_TOKEN=secret

Python, in a background thread (tests) or in a subprocess (tests that kill it)::

    from reflectevo.hub.server import serve_in_thread, serve_in_subprocess
    with serve_in_thread(data_dir, tokens=["secret"]) as hub:     # port=0: any free port
        print(hub.url)
    proc = serve_in_subprocess(data_dir, tokens=["secret"]); proc.kill(); proc.stop()

Clients must have ``HF_HUB_DISABLE_XET=1`` before ``huggingface_hub`` is imported (otherwise
large uploads go to xet endpoints this server does not have); see
``reflectevo.hub.client.configure_endpoint_env``.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import hmac
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable, Iterator
from urllib.parse import parse_qs, quote, unquote, urlsplit

from reflectevo.hub.store import (
    DEFAULT_BRANCH,
    LFS_EXTENSIONS,
    LFS_THRESHOLD,
    REPO_TYPES,
    Store,
    StoreError,
    check_path,
    check_repo_id,
    lfs_pointer,
)

TOKENS_ENV = "REFLECTEVO_HUB_TOKENS"
_TYPE_FROM_PLURAL = {t + "s": t for t in REPO_TYPES}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_UPLOAD_TTL_S = 24 * 3600
_MiB = 1024 * 1024

# How much of a request body the server will read, by request kind. A client without a valid token
# gets the smallest cap whatever it asks for (paths-info on a public repo and validate-yaml are the
# only anonymous requests with a body, and both are small), so it cannot make the server buffer.
UNAUTH_BODY_MAX = 1 * _MiB
JSON_BODY_MAX = 16 * _MiB           # create, settings, preupload, LFS batch, refs, paths-info
COMMIT_BODY_MAX = 4 * 1024 * _MiB   # NDJSON commits: spooled to disk, never held whole in memory
COMMIT_LINE_MAX = 64 * _MiB         # one NDJSON line (an inline regular file is < 10 MB before base64)
COMMIT_SPOOL_MEMORY = 1 * _MiB      # a commit body larger than this goes to DATA/tmp while it is read
LFS_OBJECT_MAX = 50 * 1000**3       # the Hub's own limit for one file
DRAIN_MAX = 1 * _MiB                # an unread body up to this is read to keep a connection alive
LINGER_BYTES = 4 * _MiB             # after an early answer, bytes still read (and dropped) before closing
LINGER_S = 2.0


class _Handled(Exception):
    """Raised after a response has been sent (or the connection must be dropped)."""


class _BodyError(Exception):
    """The request body cannot be read as framed (or exceeds its cap); the connection is lost."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, store: Store, tokens: Iterable[str], user: str, quiet: bool, throttle_bps: float | None):
        self.store = store
        self.tokens = [t for t in tokens if t]
        if not self.tokens:
            raise ValueError("the hub server needs at least one token")
        self.user = user
        self.quiet = quiet
        self.throttle_bps = throttle_bps
        self.secret = store.secret()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, HubRequestHandler)

    # track connections so that stop() really cuts keep-alive clients off
    def process_request(self, request, client_address):
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_all_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def token_ok(self, token: str | None) -> bool:
        if not token:
            return False
        return any(hmac.compare_digest(token.encode(), t.encode()) for t in self.tokens)

    def sign(self, *parts: str) -> str:
        msg = "\n".join(parts).encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()


class HubRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # http.server leaves out the status line and headers for HTTP/0.9 requests, which is also what
    # a request line it cannot parse counts as: an error would then reach the client as a bare body
    default_request_version = "HTTP/1.0"
    server_version = "reflectevo-hub/1"
    timeout = 300
    server: HubHTTPServer

    # ---- plumbing -------------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if not self.server.quiet:
            sys.stderr.write("hub: %s\n" % (format % args))

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        # never log query strings (they carry upload signatures) or headers (they carry tokens);
        # a request line that did not parse leaves command and path unset
        if isinstance(code, HTTPStatus):
            code = code.value
        path = str(getattr(self, "path", "") or "").split("?", 1)[0][:200]
        self.log_message('"%s %s" %s', _header_safe(str(self.command or "-"))[:20], _header_safe(path), code)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server calls this for a request line or header block it cannot parse; answer in
        the same JSON shape as every other error and drop the connection (the stream is lost)."""
        self.close_connection = True
        self._linger = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        text = message or phrase
        body = json.dumps({"error": text}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Error-Message", _header_safe(text))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self._linger:
                self._linger_close()

    def _linger_close(self) -> None:
        """The answer went out before the client finished sending its body. Closing now would reset
        the connection and the client might never read the answer; read and drop what keeps
        arriving for a short, bounded while first."""
        sock = self.connection
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(0.25)
            deadline = time.monotonic() + LINGER_S
            dropped = 0
            buf = bytearray(65536)
            while dropped < LINGER_BYTES and time.monotonic() < deadline:
                n = sock.recv_into(buf)
                if not n:
                    break
                dropped += n
        except OSError:
            pass

    def _base_url(self) -> str:
        host = self.headers.get("Host") or "%s:%s" % self.server.server_address[:2]
        return f"http://{host}"

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:].strip() or None
        return None

    def _auth_from_headers(self) -> str:
        """'valid', 'invalid' or 'none': decided from the headers alone, before any body is read."""
        token = self._token()
        if token is None:
            return "none"
        return "valid" if self.server.token_ok(token) else "invalid"

    def _authenticated(self) -> bool:
        """True with a valid token, False without one; 401 straight away for a wrong token."""
        if self._auth == "invalid":
            self._error(401, "Invalid credentials in Authorization header")
        return self._auth == "valid"

    def _require_write(self) -> None:
        if not self._authenticated():
            self._error(401, "You must be authenticated with a valid token to write to this Hub")

    def _hidden_repo(self) -> None:
        """A repo this client may not see. Missing and private repos get the very same answer, so
        that a client without a valid token cannot tell whether a private repo exists (the Hub
        does the same: 401 RepoNotFound, which huggingface_hub turns into RepositoryNotFoundError)."""
        if self._auth == "invalid":
            self._error(401, "Invalid credentials in Authorization header")
        self._error(401, "Repository not found (a private repository needs a valid token)", "RepoNotFound")

    # ---- request bodies -------------------------------------------------------------------------
    # Nothing reads a body before the handler has decided, from the headers, who is asking; every
    # read goes through _body_piece, which never returns more than the request kind allows.
    _auth = "none"
    _linger = False
    _body_done = True

    def _start_body(self) -> None:
        """Work out how the body is framed; 400 for anything ambiguous (the stream is then lost)."""
        self._chunked = False
        self._chunk_left = 0
        self._left = 0
        self._taken = 0
        self._body_done = False
        te = self.headers.get_all("Transfer-Encoding") or []
        cl = self.headers.get_all("Content-Length") or []
        if te:
            codings = [c.strip().lower() for v in te for c in v.split(",") if c.strip()]
            if codings != ["chunked"]:
                raise _BodyError(400, "Unsupported Transfer-Encoding (only 'chunked' is accepted)")
            if cl:
                raise _BodyError(400, "A request may not have both Transfer-Encoding and Content-Length")
            self._chunked = True
            return
        values = {v.strip() for v in cl}
        if len(values) > 1:
            raise _BodyError(400, "Conflicting Content-Length headers")
        value = values.pop() if values else "0"
        if not re.fullmatch(r"[0-9]{1,19}", value):
            raise _BodyError(400, f"Content-Length must be a non-negative integer, not {value[:40]!r}")
        self._left = int(value)
        self._body_done = self._left == 0

    def _body_limit(self, limit: int) -> int:
        return limit if self._auth == "valid" else min(limit, UNAUTH_BODY_MAX)

    def _too_large(self, limit: int) -> _BodyError:
        who = "" if self._auth == "valid" else " without a valid token"
        return _BodyError(413, f"Request body too large: at most {limit} bytes for this request{who}")

    def _body_piece(self, want: int, limit: int) -> bytes:
        """Up to ``want`` more bytes of the body (b"" at its end); _BodyError past ``limit`` bytes,
        on a malformed chunk, or when the client stops before the end."""
        if self._body_done:
            return b""
        if not self._chunked:
            if self._taken + self._left > limit:
                raise self._too_large(limit)
            data = self.rfile.read(min(want, self._left, 1 << 20))
            if not data:
                raise _BodyError(400, f"Request body ended after {self._taken} of "
                                      f"{self._taken + self._left} bytes")
            self._left -= len(data)
            self._taken += len(data)
            self._body_done = self._left == 0
            return data
        if self._chunk_left == 0:
            self._chunk_left = self._chunk_size()
            if self._chunk_left == 0:
                self._skip_trailers()
                self._body_done = True
                return b""
        if self._taken + self._chunk_left > limit:
            raise self._too_large(limit)
        data = self.rfile.read(min(want, self._chunk_left, 1 << 20))
        if not data:
            raise _BodyError(400, "Chunked request body ended inside a chunk")
        self._chunk_left -= len(data)
        self._taken += len(data)
        if self._chunk_left == 0 and self.rfile.readline(3).strip(b"\r\n"):
            raise _BodyError(400, "Malformed chunked body: a chunk is not followed by CRLF")
        return data

    def _chunk_size(self) -> int:
        line = self.rfile.readline(1026)
        if not line:
            raise _BodyError(400, "Chunked request body ended before its last chunk")
        text = line.split(b";", 1)[0].strip()
        if not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", text):
            raise _BodyError(400, f"Malformed chunk size {text[:20]!r} in a chunked body")
        return int(text, 16)

    def _skip_trailers(self) -> None:
        for _ in range(64):
            line = self.rfile.readline(8194)
            if line in (b"\r\n", b"\n", b""):
                return
        raise _BodyError(400, "Too many trailer lines after a chunked body")

    def _iter_body(self, limit: int) -> Iterator[bytes]:
        limit = self._body_limit(limit)
        while True:
            piece = self._body_piece(1 << 20, limit)
            if not piece:
                return
            yield piece

    def _read_body(self, limit: int = JSON_BODY_MAX) -> bytes:
        return b"".join(self._iter_body(limit))

    def _drain(self) -> None:
        """Read whatever small body is left so the keep-alive connection stays in sync; a larger
        one is not worth reading: the connection is closed after the answer instead."""
        if self._body_done or self.close_connection:
            self._linger = self._linger or not self._body_done
            return
        try:
            for _ in self._iter_body(DRAIN_MAX):
                pass
        except (_BodyError, OSError, ValueError):
            self.close_connection = True
            self._linger = True

    def _json_body(self, limit: int = JSON_BODY_MAX) -> Any:
        raw = self._read_body(limit)
        ctype = (self.headers.get("Content-Type") or "").lower()
        if "application/x-www-form-urlencoded" in ctype:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                self._error(400, "Form body is not valid UTF-8")
            return {k: v if len(v) > 1 or k.endswith("[]") or k == "paths" else v[0]
                    for k, v in parse_qs(text, keep_blank_values=True, max_num_fields=100_000).items()}
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            self._error(400, "Request body is not valid JSON")

    def _json_object(self, limit: int = JSON_BODY_MAX) -> dict:
        body = self._json_body(limit)
        if not isinstance(body, dict):
            self._error(400, f"Request body must be a JSON object, not {_json_kind(body)}")
        return body

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self._drain()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)
        raise _Handled()

    def _error(self, status: int, message: str, code: str | None = None, extra: dict | None = None) -> None:
        headers = {"X-Error-Message": _header_safe(message)}
        if code:
            headers["X-Error-Code"] = code
        body = {"error": message, **(extra or {})}
        self._send(status, json.dumps(body).encode(), headers)
        raise _Handled()

    def _dispatch(self) -> None:
        try:
            self._auth = self._auth_from_headers()
            self._start_body()
            self._route()
        except _Handled:
            pass
        except _BodyError as exc:
            # the body cannot be followed any further: answer, then close
            self.close_connection = True
            self._linger = True
            self._body_done = True
            self._answer_error(exc.status, exc.message, None)
        except StoreError as exc:
            self._answer_error(exc.status, exc.message, exc.code)
        except (ConnectionError, BrokenPipeError, socket.timeout, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # a bug: answer 500 and keep serving
            self.log_message("internal error: %s: %s", type(exc).__name__, exc)
            self.close_connection = True
            self._answer_error(500, f"Internal server error ({type(exc).__name__})", None)

    def _answer_error(self, status: int, message: str, code: str | None) -> None:
        try:
            self._error(status, message, code)
        except _Handled:
            pass  # answered; whether the connection stays open was decided (and said) in _send
        except OSError:
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    # ---- routing --------------------------------------------------------------------------------
    def _route(self) -> None:
        try:
            split = urlsplit(self.path)
        except ValueError:
            self._error(400, f"Malformed request target {_header_safe(self.path[:80])!r}")
        self.query = parse_qs(split.query, keep_blank_values=True)
        segs = [unquote(s) for s in split.path.split("/")[1:]]
        if segs and segs[-1] == "" and len(segs) > 1:
            segs = segs[:-1]
        m = self.command
        if segs[:1] == ["api"]:
            return self._route_api(segs[1:], m)
        if segs[:1] == ["lfs-upload"] and len(segs) == 2 and m == "PUT":
            return self._lfs_put(segs[1])
        if segs[:1] == ["lfs-verify"] and len(segs) == 2 and m == "POST":
            return self._lfs_verify(segs[1])
        # /{prefix}{ns}/{name}.git/info/lfs/objects/batch and /{prefix}{ns}/{name}/resolve/{rev}/{path}
        repo_type = "model"
        rest = segs
        if segs and segs[0] in ("datasets", "spaces") and len(segs) >= 4:
            repo_type, rest = _TYPE_FROM_PLURAL[segs[0]], segs[1:]
        if len(rest) == 6 and rest[1].endswith(".git") and rest[2:] == ["info", "lfs", "objects", "batch"] and m == "POST":
            return self._lfs_batch(repo_type, f"{rest[0]}/{rest[1][:-4]}")
        if len(rest) >= 5 and rest[2] == "resolve" and m in ("GET", "HEAD"):
            raw_parts = split.path.split("/")[1:]
            offset = len(segs) - len(rest)
            revision = unquote(raw_parts[offset + 3])
            path = unquote("/".join(raw_parts[offset + 4:]))
            return self._resolve(repo_type, f"{rest[0]}/{rest[1]}", revision, path)
        self._error(404, f"Not found: {self.command} {split.path}")

    def _route_api(self, segs: list[str], m: str) -> None:
        if segs == ["whoami-v2"] and m == "GET":
            return self._whoami()
        if segs == ["repos", "create"] and m == "POST":
            return self._create_repo()
        if segs == ["repos", "delete"] and m == "DELETE":
            return self._delete_repo()
        if segs == ["validate-yaml"] and m == "POST":
            self._read_body()  # the content is not checked, only read (capped like any body)
            return self._json({"errors": [], "warnings": []})
        if len(segs) >= 3 and segs[0] in _TYPE_FROM_PLURAL:
            repo_type = _TYPE_FROM_PLURAL[segs[0]]
            repo_id = f"{segs[1]}/{segs[2]}"
            action, args = (segs[3], segs[4:]) if len(segs) > 3 else (None, [])
            # revisions arrive quoted as one segment; be lenient with unquoted "refs/..." ones
            rev = "/".join(args) if args else None
            if action is None and m == "GET":
                return self._repo_info(repo_type, repo_id, None)
            if action == "revision" and m == "GET":
                return self._repo_info(repo_type, repo_id, rev)
            if action == "tree" and m == "GET":
                return self._tree(repo_type, repo_id, args[0] if args else DEFAULT_BRANCH, "/".join(args[1:]))
            if action == "paths-info" and m == "POST":
                return self._paths_info(repo_type, repo_id, rev)
            if action == "refs" and m == "GET":
                return self._refs(repo_type, repo_id)
            if action == "commits" and m == "GET":
                return self._commits(repo_type, repo_id, rev)
            if action == "preupload" and m == "POST":
                return self._preupload(repo_type, repo_id, rev)
            if action == "commit" and m == "POST":
                return self._commit(repo_type, repo_id, rev or DEFAULT_BRANCH)
            if action == "branch" and m in ("POST", "DELETE") and rev:
                return self._branch(repo_type, repo_id, rev)
            if action == "tag" and m in ("POST", "DELETE") and rev:
                return self._tag(repo_type, repo_id, rev)
            if action == "settings" and m == "PUT":
                return self._settings(repo_type, repo_id)
        self._error(404, f"Not found: {m} /api/{'/'.join(segs)}")

    # ---- account and repos ----------------------------------------------------------------------
    def _whoami(self) -> None:
        if not self._authenticated():
            self._error(401, "You must be authenticated to call whoami")
        user = self.server.user
        self._json({
            "type": "user", "id": hashlib.sha1(user.encode()).hexdigest()[:24], "name": user,
            "fullname": user, "email": None, "emailVerified": False, "isPro": False, "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "reflectevo-hub", "role": "write"}},
        })

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self._base_url()}/{_URL_PREFIX[repo_type]}{repo_id}"

    def _load(self, repo_type: str, repo_id: str) -> dict:
        check_repo_id(repo_id)
        doc = self.server.store.load(repo_type, repo_id)
        if self._auth == "valid":
            if doc is None:
                raise StoreError(404, f"Repository {repo_type}s/{repo_id} not found", "RepoNotFound")
            return doc
        if doc is None or doc.get("private"):
            self._hidden_repo()
        return doc

    def _create_repo(self) -> None:
        self._require_write()
        body = self._json_object()
        repo_type = _str_field(body, "type") or "model"
        if repo_type not in REPO_TYPES:
            self._error(400, f"Invalid repo type '{repo_type}'")
        name = _str_field(body, "name")
        org = _str_field(body, "organization") or self.server.user
        repo_id = f"{org}/{name}"
        check_repo_id(repo_id)
        private = _private_field(body, False)
        try:
            self.server.store.create_repo(repo_type, repo_id, private, self.server.user)
        except StoreError as exc:
            if exc.status == 409:
                self._error(409, exc.message, extra={"url": self._repo_url(repo_type, repo_id)})
            raise
        self._json({"url": self._repo_url(repo_type, repo_id), "name": repo_id, "id": repo_id})

    def _delete_repo(self) -> None:
        self._require_write()
        body = self._json_object()
        repo_type = _str_field(body, "type") or "model"
        repo_id = f"{_str_field(body, 'organization') or self.server.user}/{_str_field(body, 'name')}"
        self.server.store.delete_repo(repo_type, check_repo_id(repo_id))
        self._json({})

    def _settings(self, repo_type: str, repo_id: str) -> None:
        self._require_write()
        body = self._json_object()
        private = _private_field(body, None)
        if private is not None:
            self.server.store.set_private(repo_type, check_repo_id(repo_id), private)
        self._json({})

    def _repo_info(self, repo_type: str, repo_id: str, revision: str | None) -> None:
        doc = self._load(repo_type, repo_id)
        sha = Store.resolve(doc, revision)
        commit = doc["commits"][sha]
        blobs = _truthy(self.query.get("blobs"))
        siblings = []
        for path, e in sorted(commit["tree"].items()):
            s: dict[str, Any] = {"rfilename": path}
            if blobs:
                s.update({"size": e["size"], "blobId": e["oid"]})
                if e["lfs"]:
                    s["lfs"] = {"size": e["size"], "sha256": e["sha256"],
                                "pointerSize": len(lfs_pointer(e["sha256"], e["size"]))}
            siblings.append(s)
        info = {
            "_id": hashlib.sha1(f"{repo_type}/{repo_id}".encode()).hexdigest()[:24],
            "id": doc["id"], "author": doc["id"].split("/")[0], "sha": sha,
            "lastModified": commit["date"], "createdAt": doc["createdAt"],
            "private": doc["private"], "gated": False, "disabled": False,
            "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
        }
        if repo_type == "model":
            info["modelId"] = doc["id"]
        self._json(info)

    # ---- listings -------------------------------------------------------------------------------
    def _entry_json(self, doc: dict, sha: str, path: str, entry: dict | None, expand: bool) -> dict:
        if entry is None:  # directory
            tree = doc["commits"][sha]["tree"]
            inside = sorted((k, v["oid"]) for k, v in tree.items() if k.startswith(path + "/"))
            out = {"type": "directory", "oid": hashlib.sha1(json.dumps(inside).encode()).hexdigest(),
                   "size": 0, "path": path}
        else:
            out = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
            if entry["lfs"]:
                out["lfs"] = {"oid": entry["sha256"], "size": entry["size"],
                              "pointerSize": len(lfs_pointer(entry["sha256"], entry["size"]))}
        if expand:
            last = _last_change(doc, sha, path)
            out["lastCommit"] = {"id": last["id"], "title": last["title"], "date": last["date"]}
        return out

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        doc = self._load(repo_type, repo_id)
        sha = Store.resolve(doc, revision)
        tree = doc["commits"][sha]["tree"]
        path = path.strip("/")
        recursive = _truthy(self.query.get("recursive"))
        expand = _truthy(self.query.get("expand"))
        if path and path in tree:
            self._error(400, f"'{path}' is a file, not a folder")
        prefix = path + "/" if path else ""
        files = {k: v for k, v in tree.items() if k.startswith(prefix)}
        if path and not files:
            self._error(404, f"Entry not found: {path} at {revision}", "EntryNotFound")
        entries: dict[str, dict | None] = {}
        for k, v in files.items():
            rel = k[len(prefix):].split("/")
            for depth in range(1, len(rel)):
                if recursive or depth == 1:
                    entries.setdefault(prefix + "/".join(rel[:depth]), None)
            if recursive or len(rel) == 1:
                entries[k] = v
        out = [self._entry_json(doc, sha, p, e, expand) for p, e in sorted(entries.items())]
        self._json(out)

    def _paths_info(self, repo_type: str, repo_id: str, revision: str | None) -> None:
        doc = self._load(repo_type, repo_id)  # before the body: a hidden repo is not worth reading for
        body = self._json_object()
        sha = Store.resolve(doc, revision)
        tree = doc["commits"][sha]["tree"]
        paths = body.get("paths") or []
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            self._error(400, "'paths' must be a list of strings")
        expand = _truthy(body.get("expand"))
        out = []
        for p in paths:
            p = p.strip("/")
            if p in tree:
                out.append(self._entry_json(doc, sha, p, tree[p], expand))
            elif p and any(k.startswith(p + "/") for k in tree):
                out.append(self._entry_json(doc, sha, p, None, expand))
        self._json(out)

    def _refs(self, repo_type: str, repo_id: str) -> None:
        doc = self._load(repo_type, repo_id)
        out = {
            "branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": s} for b, s in sorted(doc["branches"].items())],
            "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": v["commit"]} for t, v in sorted(doc["tags"].items())],
            "converts": [],
        }
        if _truthy(self.query.get("include_prs")):
            out["pullRequests"] = []
        self._json(out)

    def _commits(self, repo_type: str, repo_id: str, revision: str | None) -> None:
        doc = self._load(repo_type, repo_id)
        sha = Store.resolve(doc, revision)
        out = []
        for c in Store.history(doc, sha):
            item = {"id": c["id"], "title": c["title"], "message": c["message"], "date": c["date"],
                    "authors": [{"user": c["author"]}], "parents": c["parents"]}
            if self.query.get("expand[]") == ["formatted"]:
                item["formatted"] = {"title": _html(c["title"]), "message": _html(c["message"])}
            out.append(item)
        self._json(out)

    # ---- uploads --------------------------------------------------------------------------------
    def _preupload(self, repo_type: str, repo_id: str, revision: str | None) -> None:
        self._require_write()
        doc = self._load(repo_type, repo_id)
        body = self._json_object()
        try:
            tree = doc["commits"][Store.resolve(doc, revision)]["tree"]
        except StoreError:
            tree = {}
        files = []
        for f in _objects_field(body, "files"):
            path = check_path(f.get("path"))
            size = _int_field(f, "size", LFS_OBJECT_MAX)
            try:
                sample = base64.b64decode(_str_field(f, "sample"))
            except ValueError:
                sample = b""  # the sample only helps to guess text from binary
            lfs = size > 0 and (
                size >= LFS_THRESHOLD or path.lower().endswith(LFS_EXTENSIONS) or b"\0" in sample
            )
            item = {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
            if path in tree:  # lets the client skip unchanged files (sha256 for LFS, like the Hub)
                item["oid"] = tree[path]["sha256"] if tree[path]["lfs"] else tree[path]["oid"]
            files.append(item)
        self._json({"files": files})

    def _lfs_batch(self, repo_type: str, repo_id: str) -> None:
        self._require_write()
        self._load(repo_type, repo_id)
        body = self._json_object()
        if body.get("operation") != "upload":
            self._error(400, "LFS batch: only the 'upload' operation is supported (download with resolve/)")
        if body.get("hash_algo", "sha256") != "sha256":
            self._error(400, "LFS batch: only sha256 is supported")
        store = self.server.store
        expires = str(int(time.time()) + _UPLOAD_TTL_S)
        objects = []
        for obj in _objects_field(body, "objects"):
            oid = _str_field(obj, "oid").lower()
            size = _int_field(obj, "size", LFS_OBJECT_MAX)
            if not re.fullmatch(r"[0-9a-f]{64}", oid):
                objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": "Invalid oid"}})
                continue
            item: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            have = store.blob_size(oid)
            if have != size:
                sig = self.server.sign("upload", oid, str(size), expires)
                q = f"size={size}&expires={expires}&sig={sig}"
                item["actions"] = {
                    "upload": {"href": f"{self._base_url()}/lfs-upload/{oid}?{q}"},
                    "verify": {"href": f"{self._base_url()}/lfs-verify/{oid}?{q}"},
                }
            objects.append(item)
        self._json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                   headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _check_upload_sig(self, oid: str) -> int:
        q = {k: v[0] for k, v in self.query.items()}
        try:
            size, expires, sig = int(q["size"]), q["expires"], q["sig"]
        except (KeyError, ValueError):
            self.close_connection = True
            self._error(403, "Upload link is missing its signature")
        good = self.server.sign("upload", oid, str(size), expires)
        # compare bytes: compare_digest refuses str with non-ASCII characters
        if not hmac.compare_digest(good.encode(), sig.encode("utf-8", "replace")) or int(expires) < time.time():
            self.close_connection = True
            self._error(403, "Upload link is invalid or expired")
        return size

    def _lfs_put(self, oid: str) -> None:
        size = self._check_upload_sig(oid)
        store = self.server.store
        if not self._chunked and self._left != size:
            # refuse before reading a byte: the link is signed for exactly ``size`` bytes
            self.close_connection = True
            self._error(400, f"Upload of {self._left} bytes does not match the signed size {size} of this link")

        def read(n: int) -> bytes:
            # put_stream asks for at most one byte past the signed size: enough to refuse it
            try:
                return self._body_piece(n, LFS_OBJECT_MAX + 1)
            except _BodyError as exc:
                if exc.status == 413:  # a chunk announced beyond any object size
                    raise StoreError(400, f"Upload has more bytes than the signed size {size} of this link") from None
                raise

        throttle = self.server.throttle_bps
        started = time.monotonic()

        def on_chunk(total: int) -> None:
            if throttle:
                delay = total / throttle - (time.monotonic() - started)
                if delay > 0:
                    time.sleep(delay)

        try:
            store.put_stream(read, None, oid, size, on_chunk=on_chunk, max_size=size)
        except StoreError:
            self.close_connection = True
            raise
        self._send(200, b"", {"ETag": f'"{oid}"'})
        raise _Handled()

    def _lfs_verify(self, oid: str) -> None:
        size = self._check_upload_sig(oid)
        self._read_body(DRAIN_MAX)
        if self.server.store.blob_size(oid) != size:
            self._error(404, f"LFS object {oid} was not uploaded completely")
        self._json({"success": True})

    def _commit(self, repo_type: str, repo_id: str, branch: str) -> None:
        self._require_write()
        doc = self._load(repo_type, repo_id)
        if _truthy(self.query.get("create_pr")):
            self._error(400, "Pull requests are not supported by this Hub server")
        with self._spool_commit_body() as spool:
            header = self._commit_header(spool)
            summary = _str_field(header, "summary").strip()
            if not summary:
                self._error(400, "Commit summary must not be empty")
            spool.seek(0)
            sha = self.server.store.commit(
                repo_type, doc["id"], branch, _commit_ops(spool),
                summary=summary, description=_str_field(header, "description"),
                parent_commit=_str_field(header, "parentCommit", None), author=self.server.user,
            )
        self._json({"success": True, "commitOid": sha,
                    "commitUrl": f"{self._repo_url(repo_type, doc['id'])}/commit/{sha}",
                    "pullRequestUrl": None})

    def _branch(self, repo_type: str, repo_id: str, branch: str) -> None:
        self._require_write()
        doc = self._load(repo_type, repo_id)
        body = self._json_object()
        if self.command == "DELETE":
            self.server.store.delete_branch(repo_type, doc["id"], branch)
        else:
            start = _str_field(body, "startingPoint", None)
            self.server.store.create_branch(repo_type, doc["id"], branch, start)
        self._json({})

    def _tag(self, repo_type: str, repo_id: str, rev: str) -> None:
        self._require_write()
        doc = self._load(repo_type, repo_id)
        body = self._json_object()
        if self.command == "DELETE":
            self.server.store.delete_tag(repo_type, doc["id"], rev)
            self._json({})
        tag = _str_field(body, "tag")
        if not tag:
            self._error(400, "Missing 'tag' in request body")
        self.server.store.create_tag(repo_type, doc["id"], tag, rev, _str_field(body, "message"))
        self._json({})

    # ---- commit bodies --------------------------------------------------------------------------
    def _spool_commit_body(self) -> "tempfile.SpooledTemporaryFile[bytes]":
        """Read the NDJSON body into a spool (memory up to COMMIT_SPOOL_MEMORY, then an unlinked
        file in DATA/tmp), refusing a line longer than COMMIT_LINE_MAX as soon as it gets there."""
        spool = tempfile.SpooledTemporaryFile(max_size=COMMIT_SPOOL_MEMORY, dir=self.server.store.tmp_dir)
        try:
            line_len, line_no = 0, 1
            for piece in self._iter_body(COMMIT_BODY_MAX):
                parts = piece.split(b"\n")
                for i, part in enumerate(parts):
                    line_len += len(part)
                    if line_len > COMMIT_LINE_MAX:
                        self.close_connection = True
                        self._error(413, f"Commit payload line {line_no} is longer than {COMMIT_LINE_MAX} bytes "
                                         f"(files that large go through LFS)")
                    if i < len(parts) - 1:
                        line_len, line_no = 0, line_no + 1
                spool.write(piece)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return spool

    def _commit_header(self, spool) -> dict:
        """Check every line of the payload (one JSON object with a string 'key' and an object
        'value') and return the header's value; a line at a time is in memory."""
        header: dict = {}
        for n, line in enumerate(spool, 1):
            if not line or line.isspace():
                continue
            item = _ndjson_item(line, n)
            if item["key"] == "header":
                header = item["value"]
        return header

    # ---- downloads ------------------------------------------------------------------------------
    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        doc = self._load(repo_type, repo_id)
        sha = Store.resolve(doc, revision)
        entry = doc["commits"][sha]["tree"].get(path)
        if entry is None:
            self._error(404, f"Entry not found: {path} at {revision}", "EntryNotFound")
        size = entry["size"]
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{entry["sha256"] if entry["lfs"] else entry["oid"]}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.split('/')[-1])}",
            "Cache-Control": "private, max-age=0",
        }
        if entry["lfs"]:
            headers["X-Linked-Etag"] = headers["ETag"]
            headers["X-Linked-Size"] = str(size)
        start, end = 0, size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng:
            parsed = _parse_range(rng, size)
            if parsed is None:
                # no body, as before: HfFileSystem reads a 416 as "end of file" and leaves it unread
                message = f"Range {rng[:60]!r} is not satisfiable for {size} bytes"
                self._send(416, b"", {**headers, "Content-Range": f"bytes */{size}",
                                      "X-Error-Message": _header_safe(message)})
                raise _Handled()
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = max(0, end - start + 1)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD" or length == 0:
            raise _Handled()
        with self.server.store.open_blob(entry["sha256"]) as fh:
            fh.seek(start)
            left = length
            while left > 0:
                chunk = fh.read(min(1 << 20, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)
        raise _Handled()


# ---- helpers ------------------------------------------------------------------------------------
def _truthy(value: Any) -> bool:
    if isinstance(value, list):
        value = value[-1] if value else ""
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("1", "true", "yes", "on")


def _header_safe(text: str) -> str:
    return text.encode("ascii", "replace").decode().replace("\r", " ").replace("\n", " ")[:1000]


def _str_field(obj: dict, key: str, default: str | None = "") -> Any:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise StoreError(400, f"'{key}' must be a string, not {_json_kind(value)}")
    return value


def _int_field(obj: dict, key: str, maximum: int) -> int:
    value = obj.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise StoreError(400, f"'{key}' must be an integer from 0 to {maximum}, not {str(value)[:40]!r}")
    return value


def _objects_field(obj: dict, key: str) -> list[dict]:
    value = obj.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise StoreError(400, f"'{key}' must be a list of objects")
    return value


def _private_field(body: dict, default: bool | None) -> bool | None:
    """``visibility`` (huggingface_hub 2.x) or the older ``private`` flag."""
    visibility = body.get("visibility")
    if visibility is not None:
        if visibility not in ("public", "private", "protected"):
            raise StoreError(400, f"'visibility' must be 'public', 'private' or 'protected', "
                                  f"not {str(visibility)[:40]!r}")
        return visibility != "public"  # 'protected' (Spaces: code hidden): no such thing here, keep it unseen
    private = body.get("private")
    if private is None:
        return default
    if not isinstance(private, bool):
        raise StoreError(400, f"'private' must be true or false, not {_json_kind(private)}")
    return private


def _ndjson_item(line: bytes, n: int) -> dict:
    try:
        item = json.loads(line)
    except (ValueError, RecursionError):
        raise StoreError(400, f"Commit payload line {n} is not valid JSON") from None
    if not isinstance(item, dict) or not isinstance(item.get("key"), str) or not isinstance(item.get("value"), dict):
        raise StoreError(400, f"Commit payload line {n} must be an object with a string 'key' and an object 'value'")
    return item


def _commit_ops(spool) -> Iterator[dict]:
    """The payload's operations, parsed again one line at a time (checked by _commit_header)."""
    for n, line in enumerate(spool, 1):
        if not line or line.isspace():  # (strip() would copy a line of up to COMMIT_LINE_MAX)
            continue
        item = _ndjson_item(line, n)
        del line  # one copy of a large inline file at a time: the parsed one
        if item["key"] != "header":
            yield item


def _json_kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):  # suffix: last N bytes
        n = int(m.group(2))
        if n == 0:
            return None
        return max(0, size - n), size - 1
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


def _last_change(doc: dict, sha: str, path: str) -> dict:
    """The newest commit in the history of ``sha`` that changed ``path`` (file or folder)."""

    def view(commit: dict) -> Any:
        tree = commit["tree"]
        if path in tree:
            return tree[path]["oid"]
        return sorted((k, v["oid"]) for k, v in tree.items() if k.startswith(path + "/"))

    history = Store.history(doc, sha)
    for commit, parent in zip(history, history[1:] + [None]):
        if parent is None or view(commit) != view(parent):
            return commit
    return history[0]


# ---- starting and stopping ----------------------------------------------------------------------
class DataDirLock:
    """Exclusive ``flock`` on DATA/.lock: one server per data directory (released on SIGKILL)."""

    def __init__(self, data_dir: str):
        os.makedirs(data_dir, exist_ok=True)
        self.path = os.path.join(data_dir, ".lock")
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise RuntimeError(f"another hub server is using the data directory {data_dir}") from None

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _host_addresses(host: str) -> list[str]:
    if host in ("", "*"):
        return ["0.0.0.0"]
    try:
        return [str(ipaddress.ip_address(host.split("%")[0]))]
    except ValueError:
        pass
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(host, None)})
    except (OSError, UnicodeError):
        return []


def check_bind_host(host: str, allow_remote: bool) -> None:
    """Refuse, in one line, to listen beyond loopback unless asked to: the server speaks plain
    HTTP, so bearer tokens and signed upload links would cross the network in clear text."""
    if allow_remote:
        return
    addresses = _host_addresses(host)
    outside = [a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback]
    if addresses and not outside:
        return
    what = f"{host!r}" + (f" ({outside[0]})" if outside and outside[0] != host else "")
    why = "it does not resolve to a loopback address" if not addresses else "it is not a loopback address"
    raise ValueError(f"refusing to listen on {what}: {why}, and this server speaks plain HTTP, so tokens "
                     f"would cross the network unencrypted; use 127.0.0.1 (the default), or pass "
                     f"--allow_remote to listen there anyway")


def make_server(data_dir: str, tokens: Iterable[str], host: str = "127.0.0.1", port: int = 0,
                user: str = "local", quiet: bool = True, throttle_bps: float | None = None,
                allow_remote: bool = False) -> tuple[HubHTTPServer, DataDirLock]:
    check_bind_host(host, allow_remote)
    lock = DataDirLock(data_dir)
    try:
        store = Store(data_dir)
        store.clean_tmp()
        server = HubHTTPServer((host, port), store, tokens, user, quiet, throttle_bps)
    except BaseException:
        lock.release()
        raise
    return server, lock


class ThreadHandle:
    """A server running in a daemon thread of this process."""

    def __init__(self, server: HubHTTPServer, lock: DataDirLock):
        self.server, self._lock = server, lock
        host, port = server.server_address[:2]
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"
        self.data_dir = server.store.root
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"reflectevo-hub-{port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, cut open connections, release the data directory."""
        if self._lock.fd is None:
            return
        self.server.shutdown()
        self.server.server_close()
        self.server.close_all_connections()
        self._thread.join(5)
        self._lock.release()

    def __enter__(self) -> "ThreadHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve_in_thread(data_dir: str, tokens: Iterable[str], port: int = 0, host: str = "127.0.0.1",
                    user: str = "local", throttle_bps: float | None = None) -> ThreadHandle:
    """Start the server on a background thread; ``port=0`` picks a free port. Returns a handle
    with ``.url`` and ``.stop()`` (also a context manager)."""
    server, lock = make_server(data_dir, list(tokens), host, port, user, True, throttle_bps)
    return ThreadHandle(server, lock)


class ProcessHandle:
    """A server running in a child process (``python -m reflectevo.hub.server``)."""

    def __init__(self, proc: subprocess.Popen, url: str, data_dir: str, log_path: str):
        self.process, self.url, self.data_dir, self.log_path = proc, url, data_dir, log_path
        self.port = int(url.rsplit(":", 1)[1])

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, like a crash or a pulled plug."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def __enter__(self) -> "ProcessHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve_in_subprocess(data_dir: str, tokens: Iterable[str], port: int = 0, host: str = "127.0.0.1",
                        user: str = "local", throttle_bps: float | None = None,
                        log_path: str | None = None, timeout: float = 30) -> ProcessHandle:
    """Start the server in a child process and wait until it listens. Tokens travel through the
    environment, not the command line. The child's stderr (request log) goes to ``log_path``."""
    os.makedirs(data_dir, exist_ok=True)
    if log_path is None:
        fd, log_path = tempfile.mkstemp(prefix="hub-server-", suffix=".log")
        os.close(fd)
    ready = tempfile.mktemp(prefix="hub-ready-")  # noqa: S306 - child creates it atomically
    env = dict(os.environ)
    env[TOKENS_ENV] = ",".join(tokens)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "reflectevo.hub.server", "--data", data_dir, "--host", host,
           "--port", str(port), "--user", user, "--ready-file", ready, "--verbose"]
    if throttle_bps:
        cmd += ["--throttle-bps", str(throttle_bps)]
    log = open(log_path, "ab")
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    finally:
        log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(ready):
            with open(ready, encoding="utf-8") as fh:
                url = fh.read().strip()
            os.unlink(ready)
            return ProcessHandle(proc, url, os.path.abspath(data_dir), log_path)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    with open(log_path, encoding="utf-8", errors="replace") as fh:
        tail = fh.read()[-2000:]
    raise RuntimeError(f"hub server did not start (exit {proc.returncode}):\n{tail}")


def tokens_from(cli_tokens: Iterable[str] | None) -> list[str]:
    tokens = [t for t in (cli_tokens or []) if t]
    tokens += [t.strip() for t in os.environ.get(TOKENS_ENV, "").split(",") if t.strip()]
    return tokens


def run_foreground(data_dir: str, tokens: list[str], host: str = "127.0.0.1", port: int = 8765,
                   user: str = "local", verbose: bool = True, ready_file: str | None = None,
                   throttle_bps: float | None = None, allow_remote: bool = False) -> int:
    server, lock = make_server(data_dir, tokens, host, port, user, not verbose, throttle_bps, allow_remote)
    url = "http://%s:%s" % server.server_address[:2]
    print(f"reflectevo hub serving {os.path.abspath(data_dir)} at {url}", flush=True)
    if not ipaddress.ip_address(server.server_address[0].split("%")[0]).is_loopback:
        print(f"warning: listening beyond loopback on {server.server_address[0]} over plain HTTP: tokens "
              f"and upload links travel unencrypted", file=sys.stderr, flush=True)
    print(f"  export HF_ENDPOINT={url} HF_HUB_DISABLE_XET=1", flush=True)
    if ready_file:
        tmp = ready_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(url)
        os.replace(tmp, ready_file)

    def _term(signum, frame):  # SIGTERM -> orderly shutdown like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.close_all_connections()
        lock.release()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reflectevo.hub.server", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", action="append", default=[])
    p.add_argument("--user", default="local")
    p.add_argument("--ready-file")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--throttle-bps", type=float, help="test hook: slow LFS uploads down to this rate")
    p.add_argument("--allow_remote", "--allow-remote", action="store_true", help="allow a --host other than loopback")
    a = p.parse_args(argv)
    tokens = tokens_from(a.token)
    if not tokens:
        print(f"error: give --token or set {TOKENS_ENV}", file=sys.stderr)
        return 2
    try:
        return run_foreground(a.data, tokens, a.host, a.port, a.user, a.verbose, a.ready_file,
                              a.throttle_bps, a.allow_remote)
    except ValueError as exc:  # a host refused by check_bind_host
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
