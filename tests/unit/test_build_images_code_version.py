"""The images record the code they were built from: scripts/build_images.sh gives every build
the argument MULTIPLT_CODE_VERSION (this checkout's version, as multiplt.provenance reads it
from a checkout; the variable of that name overrides it), which is part of the inputs digest,
and every Dockerfile makes it the image's environment variable of that name (read by
multiplt.provenance where no checkout holds the package), as its last step; compose passes it
from the shell."""

from __future__ import annotations

import pytest
import yaml

from multiplt import provenance
from tests import packaging_facts as facts
from tests.unit.test_build_images_args import Engine
from tests.unit.test_docker import instructions

DOCKER = facts.ROOT / "docker"
ARG = provenance.CODE_VERSION_ENV


@pytest.fixture
def engine(tmp_path):
    return Engine(tmp_path)


def build_args(build: list[str]) -> dict[str, str]:
    return dict(build[i + 1].split("=", 1) for i, word in enumerate(build) if word == "--build-arg")


@pytest.mark.parametrize("name", ["worker.Dockerfile", "sandbox.Dockerfile", "airflow.Dockerfile"])
def test_every_image_keeps_the_code_version_it_was_built_with_as_its_last_step(name):
    steps = instructions(DOCKER / name)
    assert steps[-2:] == [("ARG", f"{ARG}=unknown"), ("ENV", f"{ARG}=${{{ARG}}}")]


def test_compose_passes_the_code_version_to_every_build():
    services = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    built = {name: s["build"] for name, s in services.items() if "build" in s}
    assert built and all(b.get("args", {}).get(ARG) == f"${{{ARG}:-unknown}}" for b in built.values()), built


def test_the_script_builds_every_image_with_this_checkouts_version(engine, monkeypatch):
    monkeypatch.setenv("HOME", str(engine.work))  # as the script runs (Engine.run)
    found = provenance.checkout_version(str(facts.ROOT))
    # where git cannot say (no checkout, no git program) the script says "unknown"
    expected = found["code_version"] if found and "dirty" in found else "unknown"
    done = engine.run("--online")
    assert done.returncode == 0, done.stderr
    builds = engine.builds()
    assert len(builds) == 2 and all(build_args(b)[ARG] == expected for b in builds)


def test_the_variable_overrides_it_and_another_version_rebuilds(engine):
    assert engine.run("--online", **{ARG: "v1"}).returncode == 0
    assert [build_args(b)[ARG] for b in engine.builds()] == ["v1", "v1"]
    same = engine.run("--online", **{ARG: "v1"})
    assert same.returncode == 0 and engine.builds() == []  # the same inputs: nothing built
    assert engine.run("--online", "--check", **{ARG: "v2"}).returncode == 1  # out of date
    assert engine.run("--online", **{ARG: "v2"}).returncode == 0
    assert [build_args(b)[ARG] for b in engine.builds()] == ["v2", "v2"]


def test_the_script_documents_the_variable():
    header = (facts.ROOT / "scripts" / "build_images.sh").read_text().split("\nset -euo pipefail", 1)[0]
    assert f"#   {ARG} " in header
    assert f"| `{ARG}` |" in (facts.ROOT / "docs" / "docker.md").read_text()
