"""A minimal, in-memory stand-in of the Hugging Face Hub HTTP API on 127.0.0.1 for transfer tests.

It implements only what huggingface_hub 0.35.x calls for create_repo, repo_info, preupload, LFS batch
(basic transfer) + upload + verify, commit (regular base64 files and lfsFile entries), tree listing and
`resolve` downloads (HEAD + ranged GET). Point the client at it with HF_ENDPOINT / `endpoint=`.

Fault injection for resume tests: `hold_lfs_uploads_after = N` makes every LFS PUT after the first N hang
(until `release` is set), so a client can be killed mid-upload; `block_commits` (an Event) holds commits.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http.server
import json
import re
import threading
import urllib.parse


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob " + str(len(data)).encode() + b"\0" + data).hexdigest()


@dataclasses.dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    files: dict[str, tuple[bytes, bool]] = dataclasses.field(default_factory=dict)  # path -> (data, is_lfs)
    lfs: dict[str, bytes] = dataclasses.field(default_factory=dict)  # sha256 -> data
    sha: str = "0" * 40


class HubState:
    def __init__(self, token: str = "hf_test_token", lfs_threshold: int = 1024):
        self.token = token
        self.lfs_threshold = lfs_threshold
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.Lock()
        self.lfs_put_count = 0
        self.lfs_put_bytes = 0
        self.commit_count = 0
        self.hold_lfs_uploads_after: int | None = None
        self.release = threading.Event()
        self.block_commits: threading.Event | None = None
        self.requests: list[str] = []


_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args):  # quiet
        pass

    # ----------------------------------------------------------------- helpers
    @property
    def state(self) -> HubState:
        return self.server.state

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _authed(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {self.state.token}"

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(n) if n else b""

    def _send(self, code: int, payload=None, headers: dict | None = None, body: bytes | None = None, head=False):
        if body is None:
            body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(code)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, code: int, msg: str, error_code: str | None = None):
        headers = {"X-Error-Message": msg}
        if error_code:
            headers["X-Error-Code"] = error_code
        self._send(code, {"error": msg}, headers=headers)

    def _repo(self, repo_type: str, repo_id: str, *, write: bool = False) -> Repo | None:
        repo = self.state.repos.get((repo_type, repo_id))
        if repo is None or ((repo.private or write) and not self._authed()):
            self._error(404, "Repository not found", "RepoNotFound")
            return None
        return repo

    # ----------------------------------------------------------------- routing
    def do_HEAD(self):
        self._route("HEAD")

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_PUT(self):
        self._route("PUT")

    def _route(self, method: str):
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        query = urllib.parse.parse_qs(url.query)
        with self.state.lock:
            self.state.requests.append(f"{method} {path}")
        if method == "POST" and path == "/api/repos/create":
            return self._create_repo()
        m = re.fullmatch(
            r"/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(revision|tree|preupload|commit)/([^/]+)(/.*)?)?", path
        )
        if m:
            repo_type, repo_id, action, _rev, rest = _TYPES[m[1]], m[2], m[3], m[4], m[5]
            if method == "GET" and action in (None, "revision"):
                return self._repo_info(repo_type, repo_id)
            if method == "GET" and action == "tree":
                return self._tree(repo_type, repo_id, (rest or "").strip("/"), "true" in query.get("recursive", []))
            if method == "POST" and action == "preupload":
                return self._preupload(repo_type, repo_id)
            if method == "POST" and action == "commit":
                return self._commit(repo_type, repo_id)
        m = re.fullmatch(r"/(datasets/|spaces/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch", path)
        if m and method == "POST":
            return self._lfs_batch(_TYPES.get((m[1] or "models/").rstrip("/") + "", "model"), m[2])
        m = re.fullmatch(r"/lfs-(upload|verify)/(model|dataset|space)/([^/]+/[^/]+)/([0-9a-f]{64})", path)
        if m:
            if m[1] == "upload" and method == "PUT":
                return self._lfs_put(m[2], m[3], m[4])
            if m[1] == "verify" and method == "POST":
                return self._lfs_verify(m[2], m[3], m[4])
        m = re.fullmatch(r"/(datasets/|spaces/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m and method in ("GET", "HEAD"):
            repo_type = {"datasets/": "dataset", "spaces/": "space"}.get(m[1] or "", "model")
            return self._resolve(repo_type, m[2], m[4], head=method == "HEAD")
        self._error(404, f"no route for {method} {path}")
        return None

    # ----------------------------------------------------------------- endpoints
    def _create_repo(self):
        if not self._authed():
            return self._error(401, "Invalid credentials in Authorization header")
        req = json.loads(self._body() or b"{}")
        repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
        repo_type = req.get("type") or "model"
        url = f"{self.base}/{_PREFIX[repo_type]}{repo_id}"
        with self.state.lock:
            if (repo_type, repo_id) in self.state.repos:  # the hub answers 409 with the url
                return self._send(409, {"error": "You already created this repo", "url": url})
            self.state.repos[(repo_type, repo_id)] = Repo(repo_type, repo_id, bool(req.get("private")))
        self._send(200, {"url": url, "name": repo_id})
        return None

    def _repo_info(self, repo_type, repo_id):
        repo = self._repo(repo_type, repo_id)
        if repo is None:
            return
        siblings = [{"rfilename": p, "size": len(d)} for p, (d, _) in sorted(repo.files.items())]
        self._send(
            200,
            {"id": repo_id, "sha": repo.sha, "private": repo.private, "siblings": siblings, "xetEnabled": False},
        )

    def _tree(self, repo_type, repo_id, prefix, recursive):
        repo = self._repo(repo_type, repo_id)
        if repo is None:
            return
        entries = []
        for p, (data, is_lfs) in sorted(repo.files.items()):
            if prefix and not p.startswith(prefix + "/"):
                continue
            rel = p[len(prefix) + 1 :] if prefix else p
            if not recursive and "/" in rel:
                continue
            entry = {"type": "file", "path": p, "size": len(data), "oid": git_blob_sha1(data)}
            if is_lfs:
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 130}
            entries.append(entry)
        self._send(200, entries)

    def _preupload(self, repo_type, repo_id):
        repo = self._repo(repo_type, repo_id, write=True)
        if repo is None:
            return
        req = json.loads(self._body())
        files = []
        for f in req["files"]:
            sample = base64.b64decode(f["sample"])
            lfs = f["size"] >= self.state.lfs_threshold or b"\0" in sample
            entry = {"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
            if f["path"] in repo.files:
                data, was_lfs = repo.files[f["path"]]
                entry["oid"] = hashlib.sha256(data).hexdigest() if lfs else git_blob_sha1(data)
            files.append(entry)
        self._send(200, {"files": files})

    def _lfs_batch(self, repo_type, repo_id):
        repo = self._repo(repo_type, repo_id, write=True)
        if repo is None:
            return
        req = json.loads(self._body())
        objects = []
        for obj in req["objects"]:
            out = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in repo.lfs:
                suffix = f"{repo_type}/{repo_id}/{obj['oid']}"
                out["actions"] = {
                    "upload": {"href": f"{self.base}/lfs-upload/{suffix}"},
                    "verify": {"href": f"{self.base}/lfs-verify/{suffix}"},
                }
            objects.append(out)
        self._send(200, {"transfer": "basic", "objects": objects})

    def _lfs_put(self, repo_type, repo_id, oid):
        st = self.state
        data = self._body()
        with st.lock:
            hold = st.hold_lfs_uploads_after is not None and st.lfs_put_count >= st.hold_lfs_uploads_after
        if hold:
            st.release.wait()
            self.close_connection = True
            return self._error(503, "simulated network failure")
        with st.lock:
            st.lfs_put_count += 1
        if hashlib.sha256(data).hexdigest() != oid:
            return self._error(400, "sha256 mismatch")
        with st.lock:
            st.lfs_put_bytes += len(data)
            st.repos[(repo_type, repo_id)].lfs[oid] = data
        self._send(200)
        return None

    def _lfs_verify(self, repo_type, repo_id, oid):
        self._body()
        repo = self.state.repos.get((repo_type, repo_id))
        self._send(200 if repo and oid in repo.lfs else 404, {})

    def _commit(self, repo_type, repo_id):
        repo = self._repo(repo_type, repo_id, write=True)
        if repo is None:
            return None
        lines = [json.loads(x) for x in self._body().splitlines() if x.strip()]
        if self.state.block_commits is not None:
            self.state.block_commits.wait()
        with self.state.lock:
            for item in lines:
                key, value = item["key"], item["value"]
                if key == "file":
                    repo.files[value["path"]] = (base64.b64decode(value["content"]), False)
                elif key == "lfsFile":
                    if value["oid"] not in repo.lfs:
                        return self._error(422, f"LFS object {value['oid']} was never uploaded")
                    repo.files[value["path"]] = (repo.lfs[value["oid"]], True)
                elif key == "deletedFile":
                    repo.files.pop(value["path"], None)
            repo.sha = hashlib.sha1(json.dumps(lines).encode() + repo.sha.encode()).hexdigest()
            self.state.commit_count += 1
        url = f"{self.base}/{_PREFIX[repo_type]}{repo_id}/commit/{repo.sha}"
        self._send(200, {"commitUrl": url, "commitOid": repo.sha, "pullRequestUrl": None})
        return None

    def _resolve(self, repo_type, repo_id, filename, head):
        repo = self._repo(repo_type, repo_id)
        if repo is None:
            return None
        if filename not in repo.files:
            return self._error(404, "Entry not found", "EntryNotFound")
        data, is_lfs = repo.files[filename]
        headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{git_blob_sha1(data)}"', "Accept-Ranges": "bytes"}
        if is_lfs:
            headers["X-Linked-Etag"] = f'"{hashlib.sha256(data).hexdigest()}"'
            headers["X-Linked-Size"] = str(len(data))
        rng = self.headers.get("Range")
        code = 200
        if rng and not head:
            start_s, _, end_s = rng.removeprefix("bytes=").partition("-")
            start, end = int(start_s), int(end_s) if end_s else len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, code = data[start : end + 1], 206
        self._send(code, headers=headers, body=data, head=head)
        return None


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    state: HubState


class HubStandIn:
    """Context manager running the stand-in on an ephemeral loopback port: `with HubStandIn() as hub: hub.url`."""

    def __init__(self, **state_kwargs):
        self.state = HubState(**state_kwargs)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HubStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.state.release.set()
        if self.state.block_commits is not None:
            self.state.block_commits.set()
        self._server.shutdown()
        self._server.server_close()
