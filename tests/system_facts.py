"""What the setup-list tests read: scripts/setup.sh's APT_PACKAGES, the external programs the code
calls (found by `ast` and by name), and which Debian package provides each (`dpkg -S`)."""

from __future__ import annotations

import ast
import functools
import pathlib
import re
import subprocess

from tests.packaging_facts import ROOT, imports, python_files

# Programs looked for by name wherever they appear as a string in code, or as a command word in
# shell scripts; anything run through subprocess/os.exec/shutil.which is found by `ast` as well.
WATCHED = ("racket", "raco", "Rscript", "ocaml", "lua5.4", "julia", "bwrap", "unshare", "setpriv",
           "prlimit", "chromium", "chromedriver", "docker", "nvidia-smi", "pyright", "mypy", "git",
           "python3", "psql", "sh", "bash")
# Library files the runtimes load (not programs): luaunit is `require`d by Lua test programs.
LIBRARIES = {"luaunit": "/usr/share/lua/5.4/luaunit.lua"}
SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output", "execvp", "execv", "execvpe",
                    "spawnvp", "create_subprocess_exec", "which"}
SUBPROCESS_MODULES = {"subprocess", "os", "asyncio", "shutil"}
# the scanners themselves name the programs they look for
SELF = {"tests/system_facts.py", "tests/unit/test_setup_list.py"}
SCANNED_DIRS = ("multiplt", "plugins", "dags", "scripts", "tests", "bench")


def apt_packages() -> list[str]:
    text = (ROOT / "scripts/setup.sh").read_text()
    block = re.search(r"^APT_PACKAGES=\((.*?)^\)", text, re.S | re.M)
    assert block, "scripts/setup.sh has no APT_PACKAGES=( ... ) list"
    words = []
    for line in block.group(1).splitlines():
        words += line.split("#", 1)[0].split()
    return words


def _first_word(node) -> str | None:
    if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
        node = node.elts[0]
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip():
        return node.value.split()[0]
    return None


def programs_in_python(path: pathlib.Path) -> dict[str, int]:
    """{program: line} for programs a Python file runs."""
    found = {}
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and node.func.value.id in SUBPROCESS_MODULES:
            if node.func.attr in SUBPROCESS_CALLS:
                word = _first_word(node.args[0])
                if word and re.fullmatch(r"[A-Za-z0-9_.+-]+", word):
                    found.setdefault(word, node.lineno)
        if isinstance(node, ast.Constant) and node.value in WATCHED:
            found.setdefault(node.value, node.lineno)
    # selenium drives Chromium through chromedriver
    for module, line, _ in imports(path):
        if module.startswith("selenium.webdriver"):
            found.setdefault("chromedriver", line)
            found.setdefault("chromium", line)
    return found


def programs_in_shell(path: pathlib.Path) -> dict[str, int]:
    found = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        code = line.split("#", 1)[0] if not line.lstrip().startswith("#!") else ""
        for segment in re.split(r"&&|\|\||;|\||\$\(|`|\bthen\b|\bdo\b|\belse\b", code):
            words = segment.split()
            while words and "=" in words[0] and not words[0].startswith("="):
                words = words[1:]  # VAR=value command
            if words and words[0] in WATCHED:
                found.setdefault(words[0], number)
    return found


@functools.cache
def programs_used() -> dict[str, str]:
    """{program: "path:line"} for every external program the repository runs."""
    used = {}
    for path in python_files(*SCANNED_DIRS):
        if str(path.relative_to(ROOT)) in SELF:
            continue
        for program, line in programs_in_python(path).items():
            used.setdefault(program, f"{path.relative_to(ROOT)}:{line}")
    for d in ("scripts", "docker", ".ci"):
        for path in sorted((ROOT / d).glob("*")):
            if path.is_file() and (path.suffix == ".sh" or path.read_text(errors="replace").startswith("#!")):
                for program, line in programs_in_shell(path).items():
                    used.setdefault(program, f"{path.relative_to(ROOT)}:{line}")
    return used


@functools.cache
def providing_package(program: str) -> str | None:
    """The installed Debian package that ships `program` (or the library file), else None."""
    candidates = [LIBRARIES[program]] if program in LIBRARIES else [
        f"{d}/{program}" for d in ("/usr/bin", "/bin", "/usr/sbin", "/sbin")]
    for candidate in candidates:
        result = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True)
        for line in result.stdout.splitlines():
            if line.startswith("diversion"):
                continue
            package, _, path = line.partition(": ")
            if path.strip() == candidate:
                return package.split(":")[0].split(",")[0].strip()
    return None


@functools.cache
def _installed() -> dict[str, tuple[list[str], bool]]:
    """{package: (dependencies, essential)} for every installed package, from one dpkg-query."""
    result = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Depends}, ${Pre-Depends}\t${Essential}\n"],
                            capture_output=True, text=True, check=True)
    packages = {}
    for line in result.stdout.splitlines():
        package, depends, essential = (line.split("\t") + ["", ""])[:3]
        deps = []
        for clause in depends.split(","):
            for alternative in clause.split("|"):
                name = alternative.strip().split(" ")[0].split(":")[0]
                if name:
                    deps.append(name)
        packages[package] = (deps, essential.strip() == "yes")
    return packages


def package_closure(packages) -> set[str]:
    """The packages and everything they depend on, as installed here."""
    seen, todo = set(), list(packages)
    while todo:
        package = todo.pop()
        if package not in seen:
            seen.add(package)
            todo.extend(_installed().get(package, ([], False))[0])
    return seen


def is_essential(package: str) -> bool:
    return _installed().get(package, ([], False))[1]
