"""multiplt.provenance: the code version (a git checkout's commit and whether its tracked files
changed; else the image's MULTIPLT_CODE_VERSION; else "unknown"), Python's and the libraries'
versions that every stage's record carries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from multiplt import provenance

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="no git program")


def git(root, *args) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    done = subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com",
                           "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
                          capture_output=True, text=True, check=True, env=env)
    return done.stdout.strip()


@pytest.fixture
def checkout(tmp_path):
    """A git checkout of one commit (a tracked file `a.py`)."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "a.py").write_text("x = 1\n")
    git(root, "add", "a.py")
    git(root, "commit", "-q", "-m", "one")
    return root


@needs_git
def test_a_checkout_gives_its_commit_and_dirty_only_for_changed_tracked_files(checkout):
    commit = git(checkout, "rev-parse", "HEAD")
    assert provenance.checkout_version(str(checkout)) == {
        "code_version": commit, "commit": commit, "dirty": False}
    (checkout / "notes.txt").write_text("untracked\n")  # untracked files do not count
    assert provenance.checkout_version(str(checkout))["dirty"] is False
    (checkout / "a.py").write_text("x = 2\n")
    assert provenance.checkout_version(str(checkout)) == {
        "code_version": commit + "-dirty", "commit": commit, "dirty": True}
    git(checkout, "add", "a.py")  # staged, not committed: still not the commit's code
    assert provenance.checkout_version(str(checkout))["dirty"] is True


@needs_git
def test_without_a_git_program_the_commit_is_read_from_the_git_folder(checkout, tmp_path, monkeypatch):
    """No git on PATH: HEAD's branch from its ref file, then (refs packed) from packed-refs, a
    detached HEAD as it is; whether files changed is not known, so `dirty` is absent and the code
    version says so (`-unverified`), never a bare commit that reads as a clean tree."""
    commit = git(checkout, "rev-parse", "HEAD")
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs"))
    assert provenance.checkout_version(str(checkout)) == {"code_version": commit + "-unverified",
                                                          "commit": commit}
    monkeypatch.undo()
    git(checkout, "pack-refs", "--all", "--prune")
    assert not (checkout / ".git" / "refs" / "heads" / "main").exists()
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs"))
    assert provenance.checkout_version(str(checkout))["commit"] == commit
    (checkout / ".git" / "HEAD").write_text(commit + "\n")
    assert provenance.checkout_version(str(checkout))["commit"] == commit


@needs_git
def test_a_worktree_is_a_checkout_too(checkout, tmp_path, monkeypatch):
    """A worktree's `.git` is a file naming its git folder, whose refs lie in the common one."""
    git(checkout, "worktree", "add", "-q", str(tmp_path / "wt"), "-b", "other")
    commit = git(checkout, "rev-parse", "HEAD")
    assert (tmp_path / "wt" / ".git").is_file()
    assert provenance.checkout_version(str(tmp_path / "wt"))["commit"] == commit
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs"))
    assert provenance.checkout_version(str(tmp_path / "wt")) == {"code_version": commit + "-unverified",
                                                                 "commit": commit}


def test_a_folder_without_git_is_no_checkout(tmp_path):
    assert provenance.checkout_version(str(tmp_path)) is None
    (tmp_path / ".git").mkdir()  # no HEAD in it
    assert provenance.checkout_version(str(tmp_path)) is None


@pytest.mark.parametrize("value, expected", [
    ("ab" * 20, {"code_version": "ab" * 20, "commit": "ab" * 20, "dirty": False}),
    ("ab" * 20 + "-dirty", {"code_version": "ab" * 20 + "-dirty", "commit": "ab" * 20, "dirty": True}),
    ("v1.2-build7", {"code_version": "v1.2-build7"}),
    ("", {"code_version": "unknown"}),
    (None, {"code_version": "unknown"}),
])
def test_the_environment_variable_as_the_image_gives_it(value, expected):
    assert provenance.environment_version(value) == expected


def test_outside_a_checkout_the_environment_variable_is_the_code_version(tmp_path, monkeypatch):
    """The package where no checkout holds it (an image's site-packages): the value the image was
    built with, else "unknown"."""
    monkeypatch.setattr(provenance, "package_root", lambda: str(tmp_path))
    monkeypatch.setenv(provenance.CODE_VERSION_ENV, "cd" * 20 + "-dirty")
    provenance._code_version.cache_clear()
    try:
        block = provenance.describe()
        assert (block["code_version"], block["commit"], block["dirty"]) == ("cd" * 20 + "-dirty", "cd" * 20, True)
        monkeypatch.delenv(provenance.CODE_VERSION_ENV)
        provenance._code_version.cache_clear()
        assert provenance.describe()["code_version"] == "unknown"
    finally:
        monkeypatch.undo()
        provenance._code_version.cache_clear()


def test_an_installed_package_reports_the_images_code_version(tmp_path):
    """The package copied where no .git is beside it (as pip installs it into an image), run
    with the image's MULTIPLT_CODE_VERSION: that is its code version, whatever folder it runs
    from; the torch and transformers versions come from their metadata, neither is imported."""
    site = tmp_path / "site" / "multiplt"
    site.mkdir(parents=True)
    for name in ("__init__.py", "provenance.py"):
        shutil.copy(os.path.join(os.path.dirname(provenance.__file__), name), site / name)
    code = ("import json, sys; from multiplt import provenance; "
            "block = provenance.describe(('torch', 'transformers', 'no-such-dist')); "
            "print(json.dumps([provenance.__file__, block, sorted({'torch', 'transformers'} & set(sys.modules))]))")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), provenance.CODE_VERSION_ENV: "v7"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=tmp_path, check=True)
    where, block, imported = json.loads(done.stdout)
    assert where == str(site / "provenance.py")
    assert block["code_version"] == "v7" and "commit" not in block
    assert block["python"] == ".".join(map(str, sys.version_info[:3]))
    from importlib import metadata

    expected = {}
    for name in ("torch", "transformers"):
        try:
            expected[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    assert block["libraries"] == expected and imported == []


def test_the_checkout_is_asked_once_per_process(monkeypatch):
    """One `git rev-parse` and one `git status` for every record a process writes."""
    calls = []
    real = subprocess.run
    monkeypatch.setattr(provenance.subprocess, "run", lambda args, **kw: (calls.append(args), real(args, **kw))[1])
    provenance._code_version.cache_clear()
    try:
        first = provenance.describe(provenance.CORPUS)
        assert [provenance.describe(provenance.GENERATION)["code_version"] for _ in range(3)] == [
            first["code_version"]] * 3
        assert len(calls) <= 2
    finally:
        monkeypatch.undo()
        provenance._code_version.cache_clear()


@needs_git
def test_this_checkout_is_found_from_the_package(monkeypatch):
    """Run from the repository (tests do): the code version is its commit."""
    root = provenance.package_root()
    if not os.path.exists(os.path.join(root, ".git")):
        pytest.skip("the package does not run from a git checkout here")
    before = git(root, "rev-parse", "HEAD")
    provenance._code_version.cache_clear()
    block = provenance.describe()
    after = git(root, "rev-parse", "HEAD")  # a commit made meanwhile: either is right
    assert block["commit"] in (before, after) and block["code_version"].startswith(block["commit"])
    assert block["multiplt"] == __import__("multiplt").__version__



@needs_git
def test_a_checkout_owned_by_another_user_still_says_dirty(checkout):
    """git refuses a checkout another user owns ("dubious ownership") unless it is named safe:
    root reading a user's tree (or a container's bind mount) still learns it has changes."""
    import pwd

    if os.geteuid() != 0:
        pytest.skip("changing a checkout's owner needs root")
    tracked = next(p for p in checkout.iterdir() if p.is_file())
    tracked.write_text(tracked.read_text() + "changed\n")
    nobody = pwd.getpwnam("nobody")
    for path in [checkout, *checkout.rglob("*")]:
        os.lchown(path, nobody.pw_uid, nobody.pw_gid)
    found = provenance.checkout_version(str(checkout))
    assert found["dirty"] is True and found["code_version"].endswith("-dirty")
