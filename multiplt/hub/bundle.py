"""A set of files to publish: local files by their path in the repo, compared by content with
what a revision of the repo already holds, or copied into a folder for a dry run."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

from multiplt import storage
from multiplt.errors import MultipltError

KEEP = {".gitattributes"}  # created by the Hub with the repo; never deleted
# A dry run's folder stands for one repo: this file in it names that repo, so that a dry run
# only ever removes files from a folder an earlier dry run of the same repo wrote
DRY_RUN_MARK = ".multiplt-dry-run.json"


def _check_dry_run_folder(folder: str, owner: str) -> None:
    """MultipltError unless `folder` is missing, empty, or a dry-run folder of `owner`."""
    import json

    if not os.path.isdir(folder) or not any(names for _, _, names in os.walk(folder)):
        return
    mark = os.path.join(folder, DRY_RUN_MARK)
    try:
        with open(mark, encoding="utf-8") as f:
            found = json.load(f).get("repo")
    except (OSError, ValueError, AttributeError):
        found = None
    if not isinstance(found, str) or found.lower() != owner.lower():  # Hub ids ignore case
        whose = f"a dry run of {found}" if found else "files no dry run wrote"
        raise MultipltError(f"cannot write the dry run of {owner} into {folder}: it holds {whose} (a dry run "
                            f"removes what a push would delete); give a new or empty folder")


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


def _in_the_way(target: str) -> str | None:
    """What keeps a file from being written at `target`: `target` itself when it is a folder, or
    the nearest existing path above it when that is not a folder; None when nothing is."""
    return target if os.path.isdir(target) else storage.file_above(target)


class Bundle:
    def __init__(self, tmp_root: str | None = None):
        """`tmp_root`: where the texts added go (a temporary folder below it), e.g. the caller's
        work folder, which goes away with it on any error; cleanup() removes them too."""
        self.files: dict[str, str] = {}
        self._tmp: str | None = None
        self._tmp_root = tmp_root
        self._hashes: dict[str, tuple[str, str]] = {}

    def add_file(self, repo_path: str, local_path: str) -> None:
        self.files[repo_path] = local_path
        self._hashes.pop(repo_path, None)

    def add_text(self, repo_path: str, text: str) -> None:
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="multiplt-publish-", dir=self._tmp_root)
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

    def write_to(self, folder: str, deletable=lambda path: True, owner: str | None = None) -> list[str]:
        """Make `folder` hold what the repo would after a push (the dry run): every file at its
        repo path, and the files a push would delete (`deletable`, not in the bundle) removed;
        returns the paths written. With `owner` (the repo id) the folder must be new, empty or
        an earlier dry run of that repo (DRY_RUN_MARK), and is marked as one. Every target is
        checked first, so that a file in the way writes nothing at all; each copy replaces its
        target in one rename, so a killed run leaves no torn file; a target already equal to its
        source is not copied again."""
        targets = {p: os.path.join(folder, *p.split("/")) for p in sorted(self.files)}
        for target in targets.values():
            blocker = _in_the_way(target)
            if blocker:
                kind = "a folder" if blocker == target else "a file, not a folder"
                raise MultipltError(f"cannot write the dry run into {folder}: {blocker} is {kind}")
        if owner is not None:
            _check_dry_run_folder(folder, owner)
            storage.write_json(os.path.join(os.path.abspath(folder), DRY_RUN_MARK), {"repo": owner},
                               if_changed=True)
        written = []
        for repo_path, target in targets.items():
            if os.path.isfile(target) and file_hashes(target) == self.hashes(repo_path):
                continue
            storage.copy(self.files[repo_path], target)  # atomic: a temp file renamed over it
            written.append(repo_path)
        for dirpath, _, names in os.walk(folder):
            for name in names:
                repo_path = os.path.relpath(os.path.join(dirpath, name), folder).replace(os.sep, "/")
                if (repo_path not in self.files and repo_path not in KEEP and repo_path != DRY_RUN_MARK
                        and deletable(repo_path)):
                    os.remove(os.path.join(dirpath, name))
        return written

    def cleanup(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "Bundle":
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()
