"""Test libraries precompiled once per batch, so each program does not parse them again.

Each language says what to build (`Language.build_libraries`, e.g. Lua's luaunit); this module
gives it a folder in the batch's temp root, once per language, which the sandbox mounts read-only
at LIBRARY_MOUNT. A language that has nothing to build, or cannot build it here, runs without:
a failed build only costs speed.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile

from multiplt.languages.base import Language

LOG = logging.getLogger("multiplt.execution")


def build(lang: Language, root: str) -> str | None:
    """The folder of `lang`'s precompiled libraries under `root`, or None when it has none."""
    folder = os.path.join(root, f"lib-{lang.code}")
    if os.path.isdir(folder):
        return folder
    work = tempfile.mkdtemp(dir=root, prefix=f".lib-{lang.code}-")
    try:
        built = lang.build_libraries(work)
    except (OSError, subprocess.SubprocessError) as exc:
        LOG.info("%s: test libraries are loaded from source (could not precompile them: %s)",
                 lang.code, exc)
        built = False
    if not built:
        shutil.rmtree(work, ignore_errors=True)
        return None
    os.chmod(work, 0o755)  # the sandbox user reads it
    os.rename(work, folder)
    return folder
