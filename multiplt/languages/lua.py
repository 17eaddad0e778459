"""Lua (`lua`): tests use luaunit's `assertEquals`; exit code = number of failures."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from multiplt.languages.base import (ASSERTION_ERROR, EXCEPTION, LIBRARY_MOUNT, OK, SYNTAX_ERROR,
                                     Language, Param, checked_nonce, contains, decimal_escaped)
from multiplt.languages.types import PyType

#: where Debian's liblua5.4-dev puts lua.h (the fork server's glue is compiled against it)
LUA_INCLUDE = "/usr/include/lua5.4"

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def lua_string(text: str) -> str:
    """A Lua string literal of the same bytes: control characters (NUL included) as 3-digit
    decimal escapes (`\\0` followed by `1` would be the one byte 0x01)."""
    return decimal_escaped(text, _ESCAPES)


def lua_number(value) -> str:
    text = repr(value)
    return {"inf": "math.huge", "-inf": "-math.huge", "nan": "(0/0)"}.get(text, text)

#: the last line of render_test_file's output: runs the tests, exits with how many did not pass
_RUN = "os.exit(lu.LuaUnit.run())"

_SUMMARY = re.compile(r"Ran \d+ tests? in [\d.]+ seconds?, (\d+) success(?:es)?"
                      r"(?:, (\d+) failures?)?(?:, (\d+) errors?)?")


class LuaLanguage(Language):
    code = "lua"
    name = "lua"
    file_ext = "lua"
    stop_tokens = ("\nlocal", "\nfunction", "\n--", "\n\n")
    timeout = 15.0
    binaries = ("lua5.4",)
    test_library = "luaunit"
    packages = ("lua5.4", "lua-unit", "liblua5.4-dev")  # liblua5.4-dev: lua.h for fork_server
    test_marker = "\nlu ="
    comment = ("--", "")
    empty_comment = r"--"
    comment_patterns = (r"--\[\[.*?\]\]", r"--[^\n]*")
    terms = {"array": "table", "list": "table", "tuple": "table", "dictionary": "table",
             "None": "nil", "True": "true", "False": "false"}
    keywords = frozenset("and break do else elseif end false for function goto if in local nil not "
                         "or repeat return then true until while".split())

    # ---- writing problems ----------------------------------------------------------------------
    def render_value(self, value, t: PyType) -> str:
        if value is None:
            return "nil"  # MultiPL-E wrote `None`, an undefined global that happens to be nil
        if isinstance(value, bool):
            return "true" if value else "false"
        if t.kind == "float":
            return lua_number(float(value))
        if isinstance(value, (int, float)):
            return lua_number(value)
        if isinstance(value, str):
            return lua_string(value)
        if isinstance(value, (list, tuple)):
            elems = t.args if t.kind == "tuple" else [t.args[0]] * len(value)
            return "{" + ", ".join(self.value(v, e) for v, e in zip(value, elems)) + "}"
        if isinstance(value, dict):
            kt, vt = t.args
            return "{" + ", ".join(f"[{self.value(k, kt)}] = {self.value(v, vt)}"
                                   for k, v in value.items()) + "}"
        raise TypeError(f"cannot render {value!r}")

    def render_prompt(self, name: str, params: list[Param], returns: PyType, description: str) -> str:
        comment = "".join(f"-- {line}".rstrip() + "\n" for line in description.split("\n"))
        args = ", ".join(self.identifier(p.name) for p in params)
        return f"{comment}local function {self.identifier(name)}({args})\n"

    def render_assert(self, call: str, expected: str, tolerance: float | None) -> str:
        if tolerance is not None:
            return f"    lu.assertAlmostEquals({call}, {expected}, {tolerance!r})"
        return f"    lu.assertEquals({call}, {expected})"

    def render_test_file(self, name: str, asserts: list[str]) -> str:
        body = "\n".join(asserts)
        return (f"lu = require('luaunit')\n\nfunction test_humaneval()\n"
                f"local candidate = {self.identifier(name)}\n{body}\nend\n\n"
                f"{_RUN}")

    def seal_tests(self, tests: str, nonce: str) -> str:
        # luaunit's run returns the number of failed and erroring tests: the nonce only at 0
        if not tests.endswith(_RUN):
            raise ValueError("not a Lua test file of render_test_file")
        return (tests[:-len(_RUN)] + "local multiplt_not_passed = lu.LuaUnit.run()\n"
                f"if multiplt_not_passed == 0 then io.stdout:write(\"{checked_nonce(nonce)}\\n\") "
                "io.stdout:flush() end\nos.exit(multiplt_not_passed)")

    def return_body(self, expr: str) -> str:
        return f"    return {expr}\nend\n"

    def command(self, path: str) -> list[str]:
        return ["lua5.4", path]

    def env(self) -> dict[str, str]:
        # The luaunit build_libraries precompiled first, then Lua's default path (";;").
        # LIBRARY_MOUNT exists only in the sandbox: the unsandboxed runner points this entry at a
        # folder of the program's own (runners.unmounted_env), never at the host's /tmp.
        return {"LUA_PATH": f"{LIBRARY_MOUNT}/?.lua;;"}

    def build_libraries(self, folder: str) -> bool:
        """luaunit (about 3,400 lines) compiled once with luac: parsing it is over half of a Lua
        program's run time. Debug info is kept and the chunk name is the source path, as when
        lua loads the file itself, so messages and tracebacks read the same."""
        lua, luac = shutil.which("lua5.4"), shutil.which("luac5.4")
        if not (lua and luac):
            return False
        source = subprocess.run(
            [lua, "-e", "io.write(package.searchpath('luaunit', package.path) or '')"],
            capture_output=True, text=True, timeout=30, check=True).stdout.strip()
        if not source:
            return False
        out = os.path.join(folder, "luaunit.lua")
        subprocess.run([luac, "-o", out, source], check=True, capture_output=True, timeout=60)
        os.chmod(out, 0o644)
        return True

    def fork_server(self, folder: str, library: str) -> list[str] | None:
        """`lua5.4` with luaunit loaded (a fresh `lua5.4` costs more in exec, dynamic linking and
        loading luaunit than most test programs run). The server is `lua5.4 -e CODE FILE`:
        CODE loads luaunit and forks; in each program it returns and lua5.4's own main runs
        FILE, switched to the program (_GLUE says how), exactly as `lua5.4 PROGRAM` runs it:
        same chunk name, messages, traceback, exit status. Needs lua.h (liblua5.4-dev) to
        build the glue; without it, a fresh interpreter per program."""
        lua = shutil.which("lua5.4")
        if not lua or not os.path.exists(os.path.join(LUA_INCLUDE, "lua.h")):
            raise OSError(f"no lua5.4 or no {LUA_INCLUDE}/lua.h (Debian package liblua5.4-dev)")
        from multiplt.execution import native  # the execution side builds C the one way

        glue = native.build_source(folder, "multiplt-lua.so", _GLUE.encode(),
                                   [["-shared", "-fPIC", f"-I{LUA_INCLUDE}"]])
        server = os.path.join(folder, "server.lua")
        placeholder = os.path.join(folder, "program.lua")  # never read: switched in each program
        with open(server, "w", encoding="utf-8") as f:
            f.write(_SERVER.format(library=lua_string(library), glue=lua_string(glue),
                                   placeholder=lua_string(placeholder)))
        os.chmod(server, 0o644)
        return ["lua5.4", "-e", f"dofile({lua_string(server)})", placeholder]

    def classify(self, exit_code: int, stdout: str, stderr: str) -> str:
        summary = _SUMMARY.search(stdout)
        if summary:
            failures, errors = int(summary.group(2) or 0), int(summary.group(3) or 0)
            if errors:
                return EXCEPTION
            if failures:
                return ASSERTION_ERROR
            return OK if exit_code == 0 else EXCEPTION
        if exit_code == 0:
            return OK
        # Compile errors abort before luaunit runs: "lua5.4: file:3: <msg> near <token>", with no
        # stack traceback (runtime errors always have one, and may also say "expected").
        if "stack traceback:" not in stderr and contains(
                stderr, r"^lua[\d.]*: [^\n]*:\d+: [^\n]*(near|expected|syntax error|"
                        r"unfinished|malformed|invalid escape)"):
            return SYNTAX_ERROR
        return EXCEPTION


# The fork server's glue (fork_server), a Lua C function. lua5.4's main (lua.c) runs `-e` code,
# then loads the script named by its argv entry, which it reads only then. In each program the
# glue points that entry at the program file, so lua.c itself loads and runs the program: the
# same code path as `lua5.4 PROGRAM`. glibc passes the process's argc and argv to the
# constructors of a library loaded later (dlopen), which is how the glue finds that entry.
_GLUE = r"""
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>

int multiplt_serve(int control_fd);
void multiplt_share_init(void);
const char *multiplt_program(void);

static int saved_argc;
static char **saved_argv;

__attribute__((constructor)) static void keep_argv(int argc, char **argv, char **envp) {
    (void)envp;
    saved_argc = argc;
    saved_argv = argv;
}

/* serve(control_fd, placeholder): nil when the requests end; in each program, true, with the
 * script entry of argv (the placeholder) now the program file, for lua.c to run. */
int multiplt_lua_serve(lua_State *L) {
    int fd = (int)luaL_checkinteger(L, 1);
    const char *placeholder = luaL_checkstring(L, 2);
    if (!saved_argv || saved_argc < 2 || strcmp(saved_argv[saved_argc - 1], placeholder) != 0)
        return luaL_error(L, "multiplt: the script argument is not %s", placeholder);
    multiplt_share_init();  /* pid 1 on the server's memory, not a copy (init.c) */
    if (multiplt_serve(fd) != 0) {
        lua_pushnil(L);
        return 1;
    }
    char *program = strdup(multiplt_program());
    if (!program) return luaL_error(L, "multiplt: out of memory");
    saved_argv[saved_argc - 1] = program;
    lua_pushstring(L, program);
    return 1;
}
"""

# The server (run by `lua5.4 -e 'dofile(...)' PLACEHOLDER`). `arg` is first made the table that
# lua.c makes for `lua5.4 FILE` ([-1] the interpreter, [0] the file), because luaunit keeps the
# table it finds when loaded (its command line); in each program [0] becomes the program. The
# random generator is seeded again in each program, as a fresh interpreter seeds its own.
_SERVER = """assert(package.loadlib({library}, "*"))
local serve = assert(package.loadlib({glue}, "multiplt_lua_serve"))
arg = {{[-1] = arg[-3], [0] = arg[0]}}
require("luaunit")
collectgarbage()
local program = serve(3, {placeholder})
if not program then os.exit(0) end
arg[0] = program
math.randomseed()
"""
