"""A set of files to publish: local files by their path in the repo, compared by content with
what a revision of the repo already holds, or copied into a folder for a dry run."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

KEEP = {".gitattributes"}  # created by the Hub with the repo; never deleted


def file_hashes(path: str) -> tuple[str, str]:
    """(git blob sha1, sha256) of a file: the Hub identifies regular files by the first and LFS
    files by the second."""
    sha1, sha256 = hashlib.sha1(), hashlib.sha256()
    sha1.update(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha1.update(chunk)
            sha256.update(chunk)
    return f"sha1:{sha1.hexdigest()}", f"sha256:{sha256.hexdigest()}"


class Bundle:
    def __init__(self):
        self.files: dict[str, str] = {}
        self._tmp: str | None = None
        self._hashes: dict[str, tuple[str, str]] = {}

    def add_file(self, repo_path: str, local_path: str) -> None:
        self.files[repo_path] = local_path
        self._hashes.pop(repo_path, None)

    def add_text(self, repo_path: str, text: str) -> None:
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="multiplt-publish-")
        local = os.path.join(self._tmp, f"{len(self.files)}-{os.path.basename(repo_path)}")
        with open(local, "w", encoding="utf-8") as f:
            f.write(text)
        self.add_file(repo_path, local)

    def hashes(self, repo_path: str) -> tuple[str, str]:
        if repo_path not in self._hashes:
            self._hashes[repo_path] = file_hashes(self.files[repo_path])
        return self._hashes[repo_path]

    def changes(self, remote: dict[str, str], deletable=lambda path: True,
                ignore=frozenset()) -> tuple[dict[str, str], list[str]]:
        """({repo path: local path} to add or replace, [repo paths to delete]) to make the
        revision whose files are `remote` ({path: hash}) hold this bundle. Paths in `ignore`
        are left out of the comparison."""
        changed = {p: local for p, local in self.files.items()
                   if p not in ignore and remote.get(p) not in self.hashes(p)}
        deleted = [p for p in remote if p not in self.files and p not in KEEP and p not in ignore
                   and deletable(p)]
        return changed, sorted(deleted)

    def same_as(self, remote: dict[str, str], deletable=lambda path: True, ignore=frozenset()) -> bool:
        changed, deleted = self.changes(remote, deletable, ignore)
        return not changed and not deleted

    def write_to(self, folder: str) -> list[str]:
        """Copy every file into `folder` at its repo path (the dry run); the paths written."""
        written = []
        for repo_path, local in sorted(self.files.items()):
            target = os.path.join(folder, *repo_path.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(local, target)
            written.append(repo_path)
        return written

    def cleanup(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "Bundle":
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()
