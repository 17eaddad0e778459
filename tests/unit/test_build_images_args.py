"""scripts/build_images.sh's options, run against a stand-in `docker` on PATH that records every
call and keeps a table of images (no engine, no registry, no network): which images --check
checks, that --online pulls the bases so a base changed upstream rebuilds, and --refresh."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from tests import packaging_facts as facts

SCRIPT = facts.ROOT / "scripts" / "build_images.sh"

FAKE_DOCKER = textwrap.dedent('''\
    #!{python}
    """docker, as far as scripts/build_images.sh uses it."""
    import hashlib, json, os, sys

    state = os.environ["FAKE_DOCKER_STATE"]
    table = os.path.join(state, "images.json")
    images = json.load(open(table)) if os.path.exists(table) else {{}}
    args = sys.argv[1:]
    with open(os.path.join(state, "calls.jsonl"), "a") as log:
        log.write(json.dumps(args) + "\\n")

    def save():
        json.dump(images, open(table, "w"))

    def find(ref):
        return images.get(ref) or next((i for i in images.values() if i["id"] == ref), None)

    if args[0] == "info":
        sys.exit(0)
    if args[:2] == ["image", "inspect"]:
        fmt, ref = args[3], args[4]
        image = find(ref)
        if image is None:
            sys.exit(1)
        if fmt == "{{{{.Id}}}}":
            print(image["id"])
        elif "Labels" in fmt:
            print(image.get("label", ""))
        else:  # RepoTags
            print(" ".join(r for r, i in images.items() if i["id"] == image["id"]))
        sys.exit(0)
    if args[0] == "pull":
        if os.environ.get("FAKE_PULL_FAILS"):
            print("Error response from daemon: no registry here", file=sys.stderr)
            sys.exit(1)
        ref = args[-1]
        rev = os.environ.get("FAKE_BASE_REV", "1")
        images[ref] = {{"id": "sha256:" + hashlib.sha256((ref + rev).encode()).hexdigest()}}
        save()
        sys.exit(0)
    if args[0] == "build":
        tag = args[args.index("-t") + 1]
        label = args[args.index("--label") + 1].split("=", 1)[1]
        images[tag] = {{"id": "sha256:" + hashlib.sha256((tag + label).encode()).hexdigest(),
                       "label": label}}
        save()
        sys.exit(0)
    if args[:2] == ["image", "rm"]:
        images.pop(args[-1], None)
        save()
        sys.exit(0)
    if args[:2] == ["image", "prune"]:
        sys.exit(0)
    if args[:2] == ["image", "ls"]:
        for ref in images:
            print(ref + "\\t1GB")
        sys.exit(0)
    print("fake docker: unexpected call", args, file=sys.stderr)
    sys.exit(99)
    ''')


def _dockerfile_base(name: str, arg: str) -> str:
    text = (facts.ROOT / "docker" / name).read_text()
    return re.search(rf"^ARG {arg}=(\S+)$", text, re.M).group(1)


SANDBOX_BASE = _dockerfile_base("sandbox.Dockerfile", "SANDBOX_BASE")
CUDA_BASE = _dockerfile_base("worker.Dockerfile", "CUDA_BASE")


class Engine:
    """The stand-in docker and a way to run the script against it."""

    def __init__(self, tmp_path):
        self.bin = tmp_path / "bin"
        self.state = tmp_path / "state"
        self.work = tmp_path / "work"
        for folder in (self.bin, self.state):
            folder.mkdir()
        docker = self.bin / "docker"
        docker.write_text(FAKE_DOCKER.format(python=sys.executable))
        # the offline build's Julia probe and base: never the network
        curl, debootstrap = self.bin / "curl", self.bin / "debootstrap"
        curl.write_text("#!/bin/sh\nexit 7\n")
        debootstrap.write_text("#!/bin/sh\necho 'fake debootstrap: no mirror here'\nexit 1\n")
        for tool in (docker, curl, debootstrap):
            tool.chmod(0o755)

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        (self.state / "calls.jsonl").write_text("")
        environment = {"PATH": f"{self.bin}:/usr/bin:/bin", "HOME": str(self.work),
                       "FAKE_DOCKER_STATE": str(self.state), "MULTIPLT_BUILD_DIR": str(self.work),
                       # no pip config: no local wheel folders, so the script serves none
                       "PIP_CONFIG_FILE": os.devnull, **env}
        return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                              env=environment, timeout=300)

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in (self.state / "calls.jsonl").read_text().splitlines()]

    def builds(self) -> list[list[str]]:
        return [c for c in self.calls() if c[0] == "build"]

    def pulls(self) -> list[str]:
        return [c[-1] for c in self.calls() if c[0] == "pull"]

    def images(self) -> dict:
        return json.loads((self.state / "images.json").read_text())


@pytest.fixture
def engine(tmp_path):
    return Engine(tmp_path)


def _tags(builds) -> list[str]:
    return [b[b.index("-t") + 1] for b in builds]


@pytest.mark.parametrize("order", [("--online", "--check"), ("--check", "--online")])
def test_online_check_checks_the_online_images_in_either_order(engine, order):
    """`--online --check` checked the offline images, `--check --online` built the online ones:
    the last flag won. Now both check the online images and build or pull nothing."""
    done = engine.run(*order)
    assert done.returncode == 1, done.stderr
    assert "multiplt-sandbox:latest is missing or out of date" in done.stdout
    assert "multiplt-worker:latest is missing or out of date" in done.stdout
    assert "multiplt-base:bookworm" not in done.stdout + done.stderr  # not the offline images
    assert engine.builds() == [] and engine.pulls() == []


def test_online_pulls_the_bases_so_a_base_changed_upstream_rebuilds(engine):
    """The digest took the literal "public" as the base's id, so a new base never rebuilt."""
    first = engine.run("--online", FAKE_BASE_REV="1")
    assert first.returncode == 0, first.stderr
    assert engine.pulls() == [SANDBOX_BASE, CUDA_BASE]
    assert _tags(engine.builds()) == ["multiplt-sandbox:latest", "multiplt-worker:latest"]
    labels = {tag: engine.images()[tag]["label"] for tag in _tags(engine.builds())}

    same = engine.run("--online", FAKE_BASE_REV="1")  # nothing changed: nothing built
    assert same.returncode == 0, same.stderr
    assert engine.builds() == [] and "is up to date" in same.stdout
    assert engine.run("--online", "--check", FAKE_BASE_REV="1").returncode == 0

    newer = engine.run("--online", FAKE_BASE_REV="2")  # both bases changed upstream
    assert newer.returncode == 0, newer.stderr
    assert _tags(engine.builds()) == ["multiplt-sandbox:latest", "multiplt-worker:latest"]
    assert all(engine.images()[tag]["label"] != label for tag, label in labels.items())


def test_online_uses_the_engines_copy_of_a_base_it_cannot_pull(engine):
    assert engine.run("--online").returncode == 0
    done = engine.run("--online", FAKE_PULL_FAILS="1")
    assert done.returncode == 0, done.stderr
    assert f"cannot pull {SANDBOX_BASE}" in done.stderr and "using the copy this engine has" in done.stderr
    assert engine.builds() == []  # the same bases: up to date


def test_online_stops_when_a_base_is_neither_pullable_nor_here(engine):
    done = engine.run("--online", FAKE_PULL_FAILS="1")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"build_images.sh: cannot pull {SANDBOX_BASE}: Error response from daemon: no registry here")
    assert engine.builds() == []


def test_refresh_rebuilds_up_to_date_images_without_the_layer_cache(engine):
    assert engine.run("--online").returncode == 0
    done = engine.run("--online", "--refresh")
    assert done.returncode == 0, done.stderr
    builds = engine.builds()
    assert _tags(builds) == ["multiplt-sandbox:latest", "multiplt-worker:latest"]
    assert all("--no-cache" in b for b in builds)
    assert engine.pulls() == [SANDBOX_BASE, CUDA_BASE]


def test_refresh_offline_makes_the_local_base_again(engine):
    """Offline, the base is kept by its tag forever; --refresh removes it first, so that
    debootstrap makes it again (the stand-in debootstrap fails: the script stops there)."""
    base = {"id": "sha256:" + hashlib.sha256(b"old base").hexdigest()}
    (engine.state / "images.json").write_text(json.dumps({"multiplt-base:bookworm": base}))
    kept = engine.run()  # without --refresh: kept, and nothing asks debootstrap
    assert "multiplt-base:bookworm exists, kept" in kept.stdout
    engine.run("--check")
    done = engine.run("--refresh")
    assert ["image", "rm", "multiplt-base:bookworm"] in engine.calls()
    assert "removed multiplt-base:bookworm (--refresh)" in done.stdout
    assert done.returncode == 1  # the stand-in cannot make it again, and that is said
    assert re.search(r"needs root|debootstrap failed", done.stderr)
    assert engine.builds() == []


@pytest.mark.parametrize("args, message", [
    (("--check", "--refresh"), "build_images.sh: --check builds nothing; --refresh rebuilds "
                               "everything: use one of them"),
    (("--fast",), "build_images.sh: unknown argument --fast (known: --online, --check, --refresh)"),
])
def test_bad_arguments_are_one_line_and_exit_2(engine, args, message):
    done = engine.run(*args)
    assert done.returncode == 2
    assert done.stderr.strip() == message
    assert engine.calls() == []  # refused before the engine is asked anything
