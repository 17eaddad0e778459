"""The Hub operations the publishers use, each one call under the retry policy (retry.py).

Reruns compare before they write: `files_at(rev)` gives the content hash of every file at a
revision (sha256 for LFS files, the git blob sha1 for the others, as the Hub stores them), and
`Bundle.hashes()` the same for the local files, so unchanged files are never sent again.
"""

from __future__ import annotations

import logging

from multiplt.errors import MultipltError
from multiplt.hub import retry

LOG = logging.getLogger("multiplt.hub")


class HubClient:
    def __init__(self, token: str, repo_id: str, repo_type: str, endpoint: str | None = None):
        from huggingface_hub import HfApi

        self.api = HfApi(endpoint=endpoint, token=token)
        self.repo_id, self.repo_type = repo_id, repo_type

    def _call(self, what: str, fn, *args, **kwargs):
        return retry.call(f"{what} ({self.repo_type} {self.repo_id})", fn, *args, **kwargs)

    def ensure_repo(self, private: bool) -> bool:
        """Create the repo unless it exists; True when it was created. With `private` an existing
        repo must be private: a public one is refused (MultipltError, before anything is
        uploaded), never made private here, since changing an existing repo's visibility is the
        owner's decision (its other files, links and users)."""
        if self._call("repo lookup", self.api.repo_exists, self.repo_id, repo_type=self.repo_type):
            if private:
                self._refuse_public()
            return False
        self._call("create repo", self.api.create_repo, self.repo_id, repo_type=self.repo_type,
                   private=private, exist_ok=True)
        LOG.info("created %s repo %s%s", self.repo_type, self.repo_id, " (private)" if private else "")
        return True

    def _refuse_public(self) -> None:
        """MultipltError when the existing repo is public (a publication asked for a private one)."""
        info = self._call("repo info", self.api.repo_info, self.repo_id, repo_type=self.repo_type)
        if getattr(info, "private", None) is not False:
            return
        raise MultipltError(
            f"--private: the {self.repo_type} repo {self.repo_id} exists and is public; nothing was "
            f"uploaded (a publication never changes an existing repo's visibility): make it private "
            f"on the Hub (its Settings, or HfApi().update_repo_settings({self.repo_id!r}, private=True, "
            f"repo_type={self.repo_type!r})), or publish without --private (in multiplt_publish: "
            f"private false)")

    def ensure_branch(self, branch: str) -> None:
        if branch == "main" or branch in self.refs()["branches"]:
            return
        self._call(f"create branch {branch}", self.api.create_branch, self.repo_id, branch=branch,
                   repo_type=self.repo_type, exist_ok=True)

    def refs(self) -> dict:
        refs = self._call("list refs", self.api.list_repo_refs, self.repo_id, repo_type=self.repo_type)
        return {"branches": {b.name: b.target_commit for b in refs.branches},
                "tags": {t.name: t.target_commit for t in refs.tags}}

    def files_at(self, revision: str) -> dict[str, str]:
        """{path: content hash} of every file at `revision`."""
        entries = self._call(f"list files at {revision}", lambda: list(self.api.list_repo_tree(
            self.repo_id, revision=revision, repo_type=self.repo_type, recursive=True)))
        from huggingface_hub.hf_api import RepoFile

        out = {}
        for entry in entries:
            if not isinstance(entry, RepoFile):
                continue  # a folder
            lfs = getattr(entry, "lfs", None)
            out[entry.path] = f"sha256:{lfs.sha256}" if lfs else f"sha1:{entry.blob_id}"
        return out

    def read_text(self, path: str, revision: str) -> str:
        """The text of one file of the repo at `revision` (e.g. the card on main)."""
        local = self._call(f"download {path} at {revision[:12]}", self.api.hf_hub_download, self.repo_id,
                           path, revision=revision, repo_type=self.repo_type)
        with open(local, encoding="utf-8") as f:
            return f.read()

    def read_text_if_any(self, path: str, revision: str) -> str | None:
        """The text of one file at `revision`, None when the Hub says the repo has no such file
        there (HTTP 404 `EntryNotFound`): one request for that file, not a listing of the tree.
        Any other failure (repo or revision not found, the Hub down) is read_text's error."""
        from huggingface_hub.errors import RemoteEntryNotFoundError

        def download():
            try:
                return self.api.hf_hub_download(self.repo_id, path, revision=revision,
                                                repo_type=self.repo_type)
            except RemoteEntryNotFoundError:
                return None

        local = self._call(f"download {path} at {revision[:12]}", download)
        if local is None:
            return None
        with open(local, encoding="utf-8") as f:
            return f.read()

    def commit(self, files: dict[str, str], deletions: list[str], message: str, branch: str,
               parent: str | None) -> str:
        """One commit adding `files` ({repo path: local path}) and deleting `deletions`; its oid."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=local) for p, local in sorted(files.items())]
        ops += [CommitOperationDelete(path_in_repo=p) for p in sorted(deletions)]
        try:
            info = self._call(f"commit {message!r}", self.api.create_commit, self.repo_id, operations=ops,
                              commit_message=message, revision=branch, parent_commit=parent,
                              repo_type=self.repo_type)
        except MultipltError:
            landed = self._landed(files, deletions, branch, parent)
            if landed is None:
                raise
            LOG.warning("commit %r landed (%s) although its answer was an error", message, landed[:12])
            return landed
        LOG.info("committed %r to %s@%s: %d file(s) added or changed, %d deleted (%s)", message,
                 self.repo_id, branch, len(files), len(deletions), info.oid[:12])
        return info.oid

    def _landed(self, files: dict[str, str], deletions: list[str], branch: str, parent: str | None) -> str | None:
        """The branch head when a commit failed on the client's side but the branch moved on to
        exactly the intended files (an answer lost after the Hub applied the commit), else None."""
        from multiplt.hub.bundle import file_hashes

        head = self.refs()["branches"].get(branch)
        if head is None or head == parent:
            return None
        remote = self.files_at(head)
        same = all(remote.get(p) in file_hashes(local) for p, local in files.items())
        return head if same and not any(p in remote for p in deletions) else None

    def create_tag(self, tag: str, oid: str) -> None:
        self._call(f"create tag {tag}", self.api.create_tag, self.repo_id, tag=tag, revision=oid,
                   repo_type=self.repo_type)

    def delete_tag(self, tag: str) -> None:
        self._call(f"delete tag {tag}", self.api.delete_tag, self.repo_id, tag=tag,
                   repo_type=self.repo_type)
