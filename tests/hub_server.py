"""A small Hugging Face Hub on 127.0.0.1 for tests: the endpoints huggingface_hub 2.4.0 calls.

Covers (see the shared reference notes, hub-protocol-facts.md): whoami, repo create/delete,
validate-yaml, preupload, LFS batch + PUT + verify, NDJSON commits, branches, tags, refs, tree,
repo info (at a revision), resolve (HEAD/GET) downloads, commit listing, model listing and
auth-check (gated repos: `hub.gate(repo_id, granted=False)`).
State lives in memory; every commit gets a fresh 40-hex oid. Files are sent inline ("regular")
unless `lfs_threshold` is set (then tests must set HF_HUB_DISABLE_XET=1, since the client
would otherwise use Xet for LFS files).

    hub = HubServer(token="hf_test").start()   # hub.url -> http://127.0.0.1:PORT
    ...
    hub.stop()

Tests can inject failures (`hub.fail("POST", r"/commit/main$", 500, times=1)`: the next matching
requests get that status) and add models to the listing (`hub.add_model("ns/name")`); every
request is recorded in `hub.requests` as (method, path). Each repo gets a `createdAt` as the Hub
writes it (millisecond resolution; later repos get later times), which the model listing returns
and sorts by.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import http.server
import itertools
import json
import re
import threading
import urllib.parse

GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n" \
                b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.pt filter=lfs diff=lfs merge=lfs -text\n"
_counter = itertools.count()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _after(last: datetime.datetime | None) -> datetime.datetime:
    """Now to the millisecond (the Hub's createdAt resolution), at least 1 ms after `last`: repos
    created one after another get distinct, increasing times, so the listing sorted by creation
    is the order they were created in."""
    now = datetime.datetime.now(datetime.timezone.utc)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    return max(now, last + datetime.timedelta(milliseconds=1)) if last else now


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclasses.dataclass
class Commit:
    oid: str
    parent: str | None
    files: dict  # path -> (bytes, is_lfs)
    title: str
    date: str


@dataclasses.dataclass
class Repo:
    type: str
    id: str
    private: bool
    created: str
    commits: dict = dataclasses.field(default_factory=dict)
    branches: dict = dataclasses.field(default_factory=dict)
    tags: dict = dataclasses.field(default_factory=dict)
    gated: str | bool = False  # "auto" or "manual": a gated repo (HubServer.gate)
    granted: bool = False  # of a gated repo: whether the test token's account has access

    def commit(self, parent: str | None, files: dict, title: str) -> Commit:
        oid = hashlib.sha1(f"{self.id}{parent}{title}{next(_counter)}{_now()}".encode()).hexdigest()
        c = Commit(oid, parent, files, title, _now())
        self.commits[oid] = c
        return c

    def resolve(self, rev: str) -> Commit | None:
        oid = self.branches.get(rev) or self.tags.get(rev) or (rev if rev in self.commits else None)
        return self.commits.get(oid) if oid else None


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, extra: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.extra, self.headers = extra or {}, headers or {}


class HubServer:
    def __init__(self, token: str = "hf_test_token", user: str = "tester", lfs_threshold: int | None = None):
        self.token, self.user, self.lfs_threshold = token, user, lfs_threshold
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str]] = []
        self.faults: list[list] = []  # [method, path regex, status, times left]
        self.httpd = None
        self._last_created: datetime.datetime | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "HubServer":
        hub = self

        class Handler(_Handler):
            server_hub = hub

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()

    # -- helpers ---------------------------------------------------------------------------------
    def fail(self, method: str, path_regex: str, status: int, times: int = 1, after: bool = False) -> None:
        """Answer the next `times` requests matching (method, path) with HTTP `status`; with
        `after`, carry the request out first (the answer of a request that succeeded is lost)."""
        with self.lock:
            self.faults.append([method, re.compile(path_regex), status, times, after])

    def _fault(self, method: str, path: str) -> tuple[int, bool] | None:
        with self.lock:
            for fault in self.faults:
                if fault[3] > 0 and fault[0] == method and fault[1].search(path):
                    fault[3] -= 1
                    return fault[2], fault[4]
        return None

    def add_model(self, repo_id: str, private: bool = False) -> Repo:
        """A model repo that appears in the listing now (newest first), as if someone created it."""
        with self.lock:
            return self.create_repo("model", repo_id, private)

    def gate(self, repo_id: str, granted: bool = False, mode: str = "manual", rtype: str = "model") -> Repo:
        """Make a repo gated, as its owner does on the Hub: its info says so (`gated`) and is
        shown to anyone, while auth-check and downloads answer 401 `GatedRepo` without a token
        and 403 `GatedRepo` to the test token unless `granted`."""
        with self.lock:
            repo = self.repo(rtype, repo_id)
            repo.gated, repo.granted = mode, granted
            return repo

    def repo(self, rtype: str, repo_id: str) -> Repo:
        r = self.repos.get((rtype, repo_id))
        if r is None:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return r

    def create_repo(self, rtype: str, repo_id: str, private: bool = False) -> Repo:
        with self.lock:  # createdAt as the Hub writes it, e.g. 2024-05-01T12:00:00.123Z
            self._last_created = _after(self._last_created)
            created = self._last_created.strftime("%Y-%m-%dT%H:%M:%S.") + \
                f"{self._last_created.microsecond // 1000:03d}Z"
        r = Repo(rtype, repo_id, private, created)
        c = r.commit(None, {".gitattributes": (GITATTRIBUTES, False)}, "initial commit")
        r.branches["main"] = c.oid
        self.repos[(rtype, repo_id)] = r
        return r

    def repo_url(self, rtype: str, repo_id: str) -> str:
        return f"{self.url}/{'datasets/' if rtype == 'dataset' else ''}{repo_id}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server_hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    # -- plumbing ----------------------------------------------------------------------------------
    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body=b"", headers: dict | None = None, head: bool = False) -> None:
        if getattr(self, "_override", None):  # a fault injected after the request was carried out
            status, body, headers = self._override, {"error": "injected"}, {"X-Error-Message": "injected"}
            self._override = None
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and self.command != "HEAD":
            self.wfile.write(body)

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.server_hub.token}"

    def _require_auth(self) -> None:
        if not self._authorized():
            raise HubError(401, "Invalid credentials in Authorization header")

    def _dispatch(self) -> None:
        hub = self.server_hub
        raw = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in raw.path.split("/") if p != ""]
        query = dict(urllib.parse.parse_qsl(raw.query))
        hub.requests.append((self.command, raw.path))
        fault = hub._fault(self.command, raw.path)
        if fault is not None and not fault[1]:
            self._body()
            return self._send(fault[0], {"error": f"injected HTTP {fault[0]}"},
                              {"X-Error-Message": f"injected HTTP {fault[0]}"})
        self._override = fault[0] if fault else None
        try:
            with hub.lock:
                _routes(self, hub, parts, query)
        except HubError as exc:
            headers = {"X-Error-Message": exc.message, **exc.headers}
            if exc.code:
                headers["X-Error-Code"] = exc.code
            self._send(exc.status, {"error": exc.message, **exc.extra}, headers)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch


from tests.hub_routes import _routes  # noqa: E402  (the endpoint table, kept in its own module)
