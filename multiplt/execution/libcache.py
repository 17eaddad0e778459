"""Test libraries precompiled once per batch, so each program does not parse them again.

Every Lua program loads luaunit (about 3,400 lines of Lua) before its first test; parsing it is
over half of a Lua program's run time. We compile it once with `luac` (debug info kept, so
messages and tracebacks read the same) into a folder that the sandbox mounts read-only at
LIB_MOUNT; the language's LUA_PATH looks there first and falls back to the system copy, so a
missing `luac` or a failed compile only costs speed.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

LOG = logging.getLogger("multiplt.execution")

#: where the sandbox mounts a language's precompiled libraries (inside the program's /tmp)
LIB_MOUNT = "/tmp/.multiplt-lib"


def build(code: str, root: str) -> str | None:
    """A folder of precompiled libraries for language `code` under `root`, or None."""
    if code != "lua":
        return None
    folder = os.path.join(root, f"lib-{code}")
    if os.path.isdir(folder):
        return folder
    try:
        return _build_lua(folder)
    except (OSError, subprocess.SubprocessError) as exc:
        LOG.info("lua: using luaunit from source (could not precompile it: %s)", exc)
        return None


def _build_lua(folder: str) -> str | None:
    lua, luac = shutil.which("lua5.4"), shutil.which("luac5.4")
    if not (lua and luac):
        return None
    source = subprocess.run([lua, "-e", "io.write(package.searchpath('luaunit', package.path) or '')"],
                            capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    if not source:
        return None
    os.makedirs(folder, mode=0o755)
    # The chunk name recorded in the bytecode is `source`, as when lua loads the file itself.
    subprocess.run([luac, "-o", os.path.join(folder, "luaunit.lua"), source], check=True,
                   capture_output=True, timeout=60)
    os.chmod(os.path.join(folder, "luaunit.lua"), 0o644)
    return folder
