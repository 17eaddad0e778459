"""The endpoint table of the test Hub (tests/hub_server.py): one function per endpoint group."""

from __future__ import annotations

import base64
import hashlib
import json

from tests.hub_server import HubError, git_sha1

TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}


def _routes(h, hub, parts, q):
    if parts[:1] == ["api"]:
        return _api(h, hub, parts[1:], q)
    if parts[:1] == ["_lfs"]:
        return _lfs_object(h, hub, parts[1:])
    rtype = "model"
    if parts[:1] in (["datasets"], ["spaces"]):
        rtype, parts = TYPES[parts[0]], parts[1:]
    if len(parts) >= 2 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
        return _lfs_batch(h, hub, rtype, f"{parts[0]}/{parts[1][:-4]}")
    if len(parts) >= 5 and parts[2] == "resolve":
        return _resolve(h, hub, rtype, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
    raise HubError(404, f"no route for {h.command} /{'/'.join(parts)}")


def _api(h, hub, parts, q):
    m = h.command
    if parts == ["whoami-v2"]:
        h._require_auth()
        return h._send(200, {"type": "user", "id": "1", "name": hub.user, "fullname": hub.user,
                             "orgs": [], "auth": {"type": "access_token",
                                                  "accessToken": {"displayName": "test", "role": "write"}}})
    if parts == ["agent-harnesses"]:
        return h._send(200, {"standardEnvVars": [], "harnesses": {}})
    if parts == ["validate-yaml"]:
        h._body()
        return h._send(200, {"errors": [], "warnings": []})
    if parts == ["repos", "create"] and m == "POST":
        h._require_auth()
        body = json.loads(h._body() or b"{}")
        rid = f"{body.get('organization') or hub.user}/{body['name']}"
        rtype = body.get("type") or "model"
        url = hub.repo_url(rtype, rid)
        if (rtype, rid) in hub.repos:
            raise HubError(409, "You already created this repo", extra={"url": url})
        hub.create_repo(rtype, rid, body.get("visibility") == "private" or bool(body.get("private")))
        return h._send(200, {"url": url, "name": rid})
    if parts == ["repos", "delete"] and m == "DELETE":
        h._require_auth()
        body = json.loads(h._body() or b"{}")
        rid = f"{body.get('organization') or hub.user}/{body['name']}"
        hub.repo(body.get("type") or "model", rid)
        del hub.repos[(body.get("type") or "model", rid)]
        return h._send(200, {})
    if parts and parts[0] in TYPES and len(parts) == 1 and m == "GET":
        return _list(h, hub, TYPES[parts[0]], q)
    if len(parts) >= 3 and parts[0] in TYPES:
        rtype, rid, rest = TYPES[parts[0]], f"{parts[1]}/{parts[2]}", parts[3:]
        repo = hub.repo(rtype, rid)
        if repo.private and not h._authorized():
            raise HubError(401, f"Repository {rid} not found", "RepoNotFound")
        if not rest or rest[0] == "revision":
            return _info(h, hub, repo, rest[1] if len(rest) > 1 else "main")
        action, arg = rest[0], "/".join(rest[1:])
        if action == "auth-check" and m == "GET":
            return _auth_check(h, repo, arg == "write")
        if action == "preupload":
            return _preupload(h, hub, repo, arg)
        if action == "commit":
            return _commit(h, hub, repo, arg, q)
        if action == "branch":
            return _branch(h, hub, repo, arg)
        if action == "tag":
            return _tag(h, hub, repo, arg)
        if action == "refs":
            return h._send(200, {"branches": _refs(repo.branches, repo), "converts": [],
                                 "tags": _refs(repo.tags, repo),
                                 **({"pullRequests": []} if q.get("include_prs") else {})})
        if action == "tree":
            return _tree(h, repo, rest[1], "/".join(rest[2:]), q)
        if action == "commits":
            return _commits(h, repo, arg)
    raise HubError(404, f"no route for {m} /api/{'/'.join(parts)}")


def _gate(h, repo) -> None:
    """A gated repo's files are for accounts granted access, as on the Hub: 401 `GatedRepo`
    without a (valid) token, 403 `GatedRepo` to the token of an account without access."""
    if not repo.gated:
        return
    if not h._authorized():
        raise HubError(401, f"Access to {repo.type} {repo.id} is restricted. You must have access to it "
                       f"and be authenticated to access it. Please log in.", "GatedRepo")
    if not repo.granted:
        raise HubError(403, f"Access to {repo.type} {repo.id} is restricted and you are not in the "
                       f"authorized list. Visit {h.server_hub.repo_url(repo.type, repo.id)} to ask "
                       f"for access.", "GatedRepo")


def _auth_check(h, repo, write: bool):
    """GET /api/{type}s/{id}/auth-check[/write] (HfApi.auth_check): 200 when the token may read
    (write) the repo; a gated repo as _gate answers; writing needs the token."""
    if write:
        h._require_auth()
    _gate(h, repo)
    return h._send(200, {})


def _at(repo, rev):
    commit = repo.resolve(rev)
    if commit is None:
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
    return commit


def _refs(mapping, repo):
    return [{"name": n, "ref": f"refs/{'heads' if mapping is repo.branches else 'tags'}/{n}",
             "targetCommit": oid} for n, oid in sorted(mapping.items())]


def _list(h, hub, rtype, q):
    author = q.get("author")
    repos = [r for (t, _), r in hub.repos.items() if t == rtype
             and (not author or r.id.split("/")[0] == author) and (not r.private or h._authorized())]
    if q.get("search"):
        repos = [r for r in repos if q["search"] in r.id]
    repos.sort(key=lambda r: r.created, reverse=True)
    if q.get("limit"):
        repos = repos[: int(q["limit"])]
    return h._send(200, [{"id": r.id, "_id": r.id, "modelId": r.id, "private": r.private,
                          "createdAt": r.created, "downloads": 0, "likes": 0, "tags": []} for r in repos])


def _info(h, hub, repo, rev):
    commit = _at(repo, rev)
    siblings = [{"rfilename": p, "size": len(d), "blobId": git_sha1(d),
                 **({"lfs": {"size": len(d), "sha256": hashlib.sha256(d).hexdigest(), "pointerSize": 134}}
                    if lfs else {})} for p, (d, lfs) in sorted(commit.files.items())]
    return h._send(200, {"id": repo.id, "_id": repo.id, "modelId": repo.id, "author": repo.id.split("/")[0],
                         "sha": commit.oid, "private": repo.private, "createdAt": repo.created,
                         "lastModified": commit.date, "tags": [], "downloads": 0, "likes": 0,
                         "gated": repo.gated, "disabled": False, "siblings": siblings})


def _preupload(h, hub, repo, rev):
    h._require_auth()
    body = json.loads(h._body())
    _at(repo, rev)
    files = [{"path": f["path"], "shouldIgnore": False, "oid": None,
              "uploadMode": "lfs" if hub.lfs_threshold is not None and f["size"] >= hub.lfs_threshold
              else "regular"} for f in body.get("files", [])]
    return h._send(200, {"files": files, "commitOid": repo.branches.get(rev)})


def _lfs_batch(h, hub, rtype, rid):
    h._require_auth()
    hub.repo(rtype, rid)
    body = json.loads(h._body())
    objects = []
    for o in body.get("objects", []):
        if o["oid"] in hub.lfs:
            objects.append({"oid": o["oid"], "size": o["size"]})
        else:
            objects.append({"oid": o["oid"], "size": o["size"], "actions": {
                "upload": {"href": f"{hub.url}/_lfs/{o['oid']}"},
                "verify": {"href": f"{hub.url}/_lfs/{o['oid']}/verify"}}})
    return h._send(200, {"transfer": "basic", "objects": objects},
                   {"Content-Type": "application/vnd.git-lfs+json"})


def _lfs_object(h, hub, parts):
    oid = parts[0] if parts else ""
    if h.command == "PUT" and len(parts) == 1:
        data = h._body()
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, "sha256 mismatch")
        hub.lfs[oid] = data
        return h._send(200, b"")
    if h.command == "POST" and parts[1:] == ["verify"]:
        body = json.loads(h._body())
        if oid not in hub.lfs or len(hub.lfs[oid]) != body.get("size"):
            raise HubError(404, f"LFS object {oid} missing")
        return h._send(200, {})
    raise HubError(404, "no such LFS route")


def _commit(h, hub, repo, branch, q):
    h._require_auth()
    if branch not in repo.branches:
        raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
    head = repo.commits[repo.branches[branch]]
    files = dict(head.files)
    title = ""
    for line in h._body().splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        key, value = item["key"], item["value"]
        if key == "header":
            title = value.get("summary", "")
            if value.get("parentCommit") and value["parentCommit"] != head.oid:
                raise HubError(412, "parentCommit is not the head of the branch")
        elif key == "file":
            files[value["path"]] = (base64.b64decode(value["content"]), False)
        elif key == "lfsFile":
            if value["oid"] not in hub.lfs:
                raise HubError(400, f"LFS object {value['oid']} was never uploaded")
            files[value["path"]] = (hub.lfs[value["oid"]], True)
        elif key == "deletedFile":
            files.pop(value["path"], None)
        elif key == "deletedFolder":
            prefix = value["path"].rstrip("/") + "/"
            files = {p: v for p, v in files.items() if not p.startswith(prefix)}
    commit = repo.commit(head.oid, files, title)
    repo.branches[branch] = commit.oid
    url = f"{hub.repo_url(repo.type, repo.id)}/commit/{commit.oid}"
    return h._send(200, {"success": True, "commitOid": commit.oid, "commitUrl": url, "hookOutput": ""})


def _branch(h, hub, repo, name):
    h._require_auth()
    if h.command == "POST":
        body = json.loads(h._body() or b"{}")
        if name in repo.branches:
            raise HubError(409, f"Branch {name} already exists")
        repo.branches[name] = _at(repo, body.get("startingPoint") or "main").oid
        return h._send(200, {})
    if h.command == "DELETE":
        if repo.branches.pop(name, None) is None:
            raise HubError(404, f"Invalid rev id: {name}", "RevisionNotFound")
        return h._send(200, {})
    raise HubError(405, "method not allowed")


def _tag(h, hub, repo, arg):
    h._require_auth()
    if h.command == "POST":  # arg is the revision to tag
        body = json.loads(h._body() or b"{}")
        tag = body["tag"]
        if tag in repo.tags:
            raise HubError(409, f"Tag {tag} already exists")
        repo.tags[tag] = _at(repo, arg or "main").oid
        return h._send(200, {})
    if h.command == "DELETE":  # arg is the tag
        if repo.tags.pop(arg, None) is None:
            raise HubError(404, f"Invalid rev id: {arg}", "RevisionNotFound")
        return h._send(200, {})
    raise HubError(405, "method not allowed")


def _tree(h, repo, rev, path, q):
    commit = _at(repo, rev)
    recursive = q.get("recursive") in ("true", "True", "1")
    prefix = path.rstrip("/") + "/" if path else ""
    entries, dirs = [], set()
    for p, (data, lfs) in sorted(commit.files.items()):
        if not p.startswith(prefix):
            continue
        rest = p[len(prefix):]
        segs = rest.split("/")
        for i in range(1, len(segs)):
            d = prefix + "/".join(segs[:i])
            if (recursive or i == 1) and d not in dirs:
                dirs.add(d)
                entries.append({"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest()})
        if recursive or len(segs) == 1:
            entry = {"type": "file", "path": p, "size": len(data), "oid": git_sha1(data)}
            if lfs:
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            entries.append(entry)
    if path and not entries:
        raise HubError(404, f"{path} does not exist at {rev}", "EntryNotFound")
    return h._send(200, entries)


def _commits(h, repo, rev):
    out, commit = [], _at(repo, rev)
    while commit is not None:
        out.append({"id": commit.oid, "title": commit.title, "message": commit.title,
                    "date": commit.date, "authors": [{"user": "tester"}]})
        commit = repo.commits.get(commit.parent) if commit.parent else None
    return h._send(200, out)


def _resolve(h, hub, rtype, rid, rev, path):
    repo = hub.repo(rtype, rid)
    if repo.private and not h._authorized():
        raise HubError(401, f"Repository {rid} not found", "RepoNotFound")
    _gate(h, repo)
    commit = _at(repo, rev)
    if path not in commit.files:
        raise HubError(404, f"Entry {path} not found", "EntryNotFound", headers={"X-Repo-Commit": commit.oid})
    data, lfs = commit.files[path]
    etag = hashlib.sha256(data).hexdigest() if lfs else git_sha1(data)
    headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}
    if lfs:
        headers["X-Linked-Etag"] = f'"{etag}"'
        headers["X-Linked-Size"] = str(len(data))
    return h._send(200, data, headers)

