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

    def tampers_with_tests(self, prompt: str, completion: str) -> str | None:
        # Lua's tests run in the same chunk after the translation: the globals and library
        # tables they (and luaunit) use are the translation's to replace or mutate, so no
        # sealing keeps them out. What is refused instead: see _tampering.
        return _tampering(prompt, completion)

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


#: Lua 5.4's standard globals, and luaunit's `lu`: what the tests and luaunit call or read
_STANDARD = frozenset(
    "_G _VERSION arg assert collectgarbage coroutine debug dofile error getmetatable io ipairs "
    "load loadfile math next os package pairs pcall print rawequal rawget rawlen rawset require "
    "select setmetatable string table tonumber tostring type utf8 warn xpcall lu".split())
#: the standard tables (mutable: an alias of one could change its fields)
_TABLES = frozenset("_G arg coroutine debug io math os package string table utf8 lu".split())
#: the ways to reach globals, the loaded modules, metatables or code indirectly
_REFLECTIVE = frozenset("_G _ENV rawset debug load dofile loadfile require package getmetatable "
                        "lu".split())
_TOKEN = re.compile(r"""--\[(?P<c>=*)\[.*?\](?P=c)\]|--[^\n]*|\[(?P<s>=*)\[.*?\](?P=s)\]
    |"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|(?P<name>[A-Za-z_]\w*)
    |0[xX][\w.]+|\d[\w.]*(?:[eEpP][+-]\d+)?|(?P<nl>\n)
    |\.\.\.|\.\.|==|~=|<=|>=|//|::|<<|>>|\S""", re.VERBOSE | re.DOTALL)
_KEYWORDS = frozenset("and break do else elseif end false for function goto if in local nil not "
                      "or repeat return then true until while".split())
_CONTINUES = frozenset("= , ( [ { . .. + - * / // % ^ # & ~ | << >> == ~= < <= > >= and or "
                       "not".split())


def _tampering(prompt: str, completion: str) -> str | None:
    """What in `completion` (after `prompt`, its function's header) writes a standard global or
    a field of one (`error = ...`, `string.format = ...`, `function assert(...)`, `arg[1] = ...`),
    declares one as a chunk-level local (which the tests after it would see), aliases a
    standard table (`local s = string`, whose fields could then change), or names a way around
    these (`_G`, `_ENV`, `rawset`, `debug`, `load`, `require`, `package`, `getmetatable`, `lu`),
    with Lua's scoping: a parameter or local of that name is not the global. Code built to evade
    it (a table reached another way, code assembled at run time) is not caught."""
    tokens = []
    for m in _TOKEN.finditer(prompt + completion):
        text = m.group(0)
        if text.startswith("--"):
            continue  # a comment
        if m.group("name"):
            kind = "kw" if text in _KEYWORDS else "name"
        elif m.group("nl"):
            kind = "nl"
        elif text.startswith(('"', "'")) or len(text) > 1 and text[0] == "[":
            kind = "str"
        else:
            kind = "op"
        tokens.append((kind, text, m.start()))
    start = len(prompt)
    scopes: list[set] = [set()]  # the chunk's locals, then each open block's
    stack: list[str] = []        # open blocks ("block", one scope each) and brackets
    pending: list = []           # (locals of a `local` statement, the stack depth it started at)

    def declared(name):
        return any(name in scope for scope in scopes)

    def declare(names):
        scopes[-1].update(names)

    def settle(depth):  # a `local` statement ended: its names are now in scope
        while pending and pending[-1][1] >= depth:
            declare(pending.pop()[0])

    def open_block(names=()):
        stack.append("block")
        scopes.append(set(names))

    def close_block():
        settle(len(stack))
        while stack and stack.pop() != "block":
            pass
        if len(scopes) > 1:
            scopes.pop()

    def skip(i, step=1):  # the index of the first token from i on (step -1: back) not a newline
        while 0 <= i < len(tokens) and tokens[i][0] == "nl":
            i += step
        return i

    def token(i):
        return tokens[i] if 0 <= i < len(tokens) else ("nl", "", 0)

    def params(i):  # a function's parameters from tokens[i] on, and the index after their `)`
        names, method = [], False
        while i < len(tokens) and tokens[i][1] != "(":
            method = method or tokens[i][1] == ":"
            i += 1
        while i < len(tokens) and tokens[i][1] != ")":
            if tokens[i][0] == "name":
                names.append(tokens[i][1])
            i += 1
        return names + ["self"] * method, i + 1

    def targets(i):  # the base names of the assignment targets before tokens[i] (`=`)
        bases, i = [], skip(i - 1, -1)
        while i >= 0:
            if tokens[i][1] in ")]":  # an index or a call in a target's prefix
                close, depth = tokens[i][1], 0
                while i >= 0:
                    depth += (tokens[i][1] == close) - (tokens[i][1] == {")": "(", "]": "["}[close])
                    i -= 1
                    if depth == 0:
                        break
                i = skip(i, -1)
                continue
            if tokens[i][0] != "name":
                return bases
            before = skip(i - 1, -1)
            if token(before)[1] in (".", ":"):
                i = skip(before - 1, -1)
                continue
            bases.append(tokens[i])
            if token(before)[1] != ",":
                return bases
            i = skip(before - 1, -1)
        return bases

    i, for_names = 0, None
    while i < len(tokens):
        kind, text, at = tokens[i]
        ours = at >= start
        if kind == "nl" or text == ";":
            if pending and pending[-1][1] == len(stack) and token(skip(i - 1, -1))[1] not in _CONTINUES:
                settle(len(stack))
        elif text == "local":
            j = skip(i + 1)
            if token(j)[1] == "function":
                name = token(skip(j + 1))
                if name[2] >= start and len(scopes) == 1 and name[1] in _STANDARD:
                    return f"local function {name[1]}"
                declare([name[1]])
                names, i = params(j + 1)
                open_block(names)
                continue
            names = []
            while j < len(tokens) and (tokens[j][0] == "name" or tokens[j][1] in (",", "<", ">")):
                if tokens[j][0] == "name" and tokens[j - 1][1] != "<":  # not an attribute
                    names.append(tokens[j][1])
                j += 1
            if ours and len(scopes) == 1 and _STANDARD.intersection(names):
                return f"local {sorted(_STANDARD.intersection(names))[0]}"
            pending.append((names, len(stack)))
            i = j + (token(j)[1] == "=")
            continue
        elif text == "function":
            name = token(skip(i + 1))
            if name[0] == "name" and name[2] >= start and not declared(name[1]) and name[1] in _STANDARD:
                return f"function {name[1]}"  # a function statement assigns to its first name
            names, i = params(i + 1)
            open_block(names)
            continue
        elif text == "for":
            for_names, i = [], i + 1
            while i < len(tokens) and tokens[i][1] not in ("=", "in"):
                if tokens[i][0] == "name":
                    for_names.append(tokens[i][1])
                i += 1
        elif text == "do":
            open_block(for_names or ())
            for_names = None
        elif text in ("if", "repeat"):
            open_block()
        elif text in ("end", "until"):
            close_block()
        elif kind == "op" and text in ("(", "[", "{"):
            stack.append(text)
        elif kind == "op" and text in (")", "]", "}"):
            settle(len(stack))
            if stack and stack[-1] != "block":
                stack.pop()
        elif text == "=" and (not stack or stack[-1] == "block"):
            for name in targets(i):
                if name[2] >= start and not declared(name[1]) and name[1] in _STANDARD:
                    return f"{name[1]} ="
        elif kind == "name" and ours and not declared(text):
            before, after = token(skip(i - 1, -1))[1], token(skip(i + 1))[1]
            key = stack and stack[-1] == "{" and after == "=" and before in ("{", ",", ";")
            if before not in (".", ":", "::", "goto") and not key:
                if text in _REFLECTIVE:
                    return text
                if text in _TABLES and after not in (".", "[", ":", "="):
                    return f"{text} (an alias)"
        i += 1
    return None


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
