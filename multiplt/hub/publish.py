"""Push a bundle to one branch of a repo as one commit, or nothing when the branch already holds
exactly these files (the idempotent rerun)."""

from __future__ import annotations

import logging

from multiplt.hub.auth import resolve_token
from multiplt.hub.bundle import Bundle
from multiplt.hub.client import HubClient

LOG = logging.getLogger("multiplt.hub")


def client_for(repo_id: str, repo_type: str, private: bool, endpoint: str | None = None,
               token: str | None = None) -> HubClient:
    """The client of `repo_id`, which is created unless it exists. `token`: the one the
    publication resolved before it read anything (auth.resolve_token), else resolved here."""
    client = HubClient(token or resolve_token(), repo_id, repo_type, endpoint)
    client.ensure_repo(private)
    return client


def data_or_card(path: str) -> bool:
    """The repo files a dataset publication owns (deleted when the bundle no longer has them)."""
    return path.startswith("data/") or path == "README.md"


def push_bundle(bundle: Bundle, repo_id: str, repo_type: str, private: bool, branch: str,
                message: str, deletable=lambda path: True, endpoint: str | None = None,
                token: str | None = None, check=None) -> dict:
    """`check(remote, read)`, when given, sees what the branch holds before anything is sent
    (`remote` {path: hash}; `read(path)` the text of one of its files) and raises to refuse the
    push; not called on a branch other than main that is at main's commit (as one this push
    creates: what it would replace there, main keeps)."""
    client = client_for(repo_id, repo_type, private, endpoint, token)
    client.ensure_branch(branch)
    branches = client.refs()["branches"]
    head = branches[branch]
    remote = client.files_at(head)
    if check is not None and (branch == "main" or head != branches.get("main")):
        check(remote, lambda path: client.read_text(path, head))
    changed, deleted = bundle.changes(remote, deletable)
    if not changed and not deleted:
        LOG.info("%s %s@%s is up to date: nothing uploaded", repo_type, repo_id, branch)
        return {"uploaded": 0, "deleted": 0, "commit": head, "up_to_date": True}
    oid = client.commit(changed, deleted, message, branch, parent=head)
    return {"uploaded": len(changed), "deleted": len(deleted), "commit": oid, "up_to_date": False}
