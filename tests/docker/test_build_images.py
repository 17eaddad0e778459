"""scripts/build_images.sh removes the image a rebuild replaced (vfs keeps a full copy of each).

The whole script takes about 20 minutes from scratch, so this runs its `remove_replaced`
function (taken from the script as it is) on two small images built here on the local base.
"""

from __future__ import annotations

import re
import subprocess
import uuid

import pytest

from tests.docker.conftest import ROOT

pytestmark = pytest.mark.docker

LABEL = "org.multiplt.inputs"


def _script_functions() -> str:
    """say, image_id and remove_replaced, as scripts/build_images.sh defines them."""
    text = (ROOT / "scripts" / "build_images.sh").read_text()
    wanted = [re.search(r"^say\(\) .*$", text, re.M).group(0),
              re.search(r"^image_id\(\) .*$", text, re.M).group(0),
              re.search(r"^remove_replaced\(\) \{\n.*?^\}$", text, re.M | re.S).group(0)]
    return "\n".join(wanted)


def _build(tmp_path, tag: str, content: str, label: str | None) -> str:
    (tmp_path / "Dockerfile").write_text(f"FROM multiplt-base:bookworm\nRUN echo {content} > /x\n")
    args = ["docker", "build", "-q", "-t", tag, *(["--label", f"{LABEL}={label}"] if label else []),
            str(tmp_path)]
    subprocess.run(args, check=True, capture_output=True, env={"DOCKER_BUILDKIT": "0",
                                                                "PATH": "/usr/bin:/bin"})
    return _image_id(tag)


def _image_id(ref: str) -> str:
    done = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", ref],
                          capture_output=True, text=True)
    return done.stdout.strip()


def _remove_replaced(tag: str, old_id: str) -> str:
    script = f"LABEL={LABEL}\n{_script_functions()}\nremove_replaced {tag} {old_id}\n"
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture
def tag(docker_images):  # the images fixture made multiplt-base:bookworm
    name = f"multiplt-test-rebuild-{uuid.uuid4().hex[:8]}:latest"
    yield name
    subprocess.run(["docker", "image", "rm", "-f", name], capture_output=True)


def test_a_rebuild_removes_the_labelled_image_it_replaced(tmp_path, tag):
    old = _build(tmp_path, tag, "one", label="a")
    new = _build(tmp_path, tag, "two", label="b")
    assert old != new
    said = _remove_replaced(tag, old)
    assert "removed the image" in said
    assert _image_id(old) == ""  # gone
    assert _image_id(tag) == new  # the new one stays


def test_an_unlabelled_or_still_tagged_old_image_is_kept(tmp_path, tag):
    old = _build(tmp_path, tag, "one", label=None)  # not ours: no label
    _build(tmp_path, tag, "two", label="b")
    assert _remove_replaced(tag, old) == ""
    assert _image_id(old) == old
    subprocess.run(["docker", "image", "rm", old], check=True, capture_output=True)

    old = _build(tmp_path, tag, "three", label="c")
    other = tag.replace(":latest", ":kept")
    subprocess.run(["docker", "tag", old, other], check=True)
    try:
        _build(tmp_path, tag, "four", label="d")
        assert _remove_replaced(tag, old) == ""  # another tag still names it
        assert _image_id(old) == old
    finally:
        subprocess.run(["docker", "image", "rm", other], capture_output=True)


def test_an_old_image_a_container_uses_is_kept_with_the_engines_reason(tmp_path, tag):
    old = _build(tmp_path, tag, "one", label="a")
    container = subprocess.run(["docker", "create", old, "true"], check=True, capture_output=True,
                               text=True).stdout.strip()
    try:
        _build(tmp_path, tag, "two", label="b")
        said = _remove_replaced(tag, old)
        assert said.startswith(f"build_images.sh: kept the image {tag} replaced")
        assert container[:12] in said  # the engine's reason names the container
        assert _image_id(old) == old
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        subprocess.run(["docker", "image", "rm", old], capture_output=True)

