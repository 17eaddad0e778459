"""Every setting scripts/build_images.sh takes from the environment (a line `X=${NAME:-default}`)
is documented, with its default, in the script's header and in docs/docker.md's table of its
settings."""

from __future__ import annotations

import re

from tests import packaging_facts as facts

SCRIPT = facts.ROOT / "scripts" / "build_images.sh"
DOCS = facts.ROOT / "docs" / "docker.md"


def test_every_variable_the_script_reads_is_documented_with_its_default():
    text = SCRIPT.read_text()
    read = dict(re.findall(r"^[A-Z_]+=\$\{([A-Z][A-Z0-9_]*):-([^}]*)\}$", text, re.M))
    assert {"MULTIPLT_SANDBOX_IMAGE", "MULTIPLT_BUILD_DIR", "DEBIAN_MIRROR"} <= set(read)
    header = text.split("\nset -euo pipefail", 1)[0]
    docs = DOCS.read_text()
    missing = []
    for name, default in read.items():
        if not re.search(rf"^#\s+{name}\s.*\({re.escape(default)}\)", header, re.M | re.S):
            missing.append(f"the script's header: {name} ({default})")
        if not re.search(rf"^\| `{name}` \| `{re.escape(default)}` \|", docs, re.M):
            missing.append(f"docs/docker.md: {name} ({default})")
    assert not missing, missing
    # renaming the sandbox image needs the setting the stages read
    assert "[multiplt] sandbox_image" in header
    assert re.search(r"^\| `MULTIPLT_SANDBOX_IMAGE` .*`\[multiplt\] sandbox_image`", docs, re.M)
