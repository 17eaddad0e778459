"""What the packaging tests read: the pinned requirement files, pyproject's extras, the imports in
the code (by `ast`, never by importing it) and the distributions that provide them."""

from __future__ import annotations

import ast
import functools
import pathlib
import re
import sys
import tomllib
from importlib import metadata

ROOT = pathlib.Path(__file__).resolve().parent.parent
CODE_DIRS = ("multiplt", "plugins", "dags")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;#]+)$")


def norm(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: pathlib.Path) -> dict[str, str]:
    """{normalized name: version} for a requirements file; every requirement must be `name==version`."""
    pins = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if not match:
            raise AssertionError(f"{path.name} line {number}: {raw!r} is not pinned exactly as name==version")
        pins[norm(match.group(1))] = match.group(3)
    return pins


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def extras() -> dict[str, dict[str, str]]:
    """{extra: {normalized name: version}}; the self-referencing `all` extra is expanded."""
    spec = pyproject()["project"]["optional-dependencies"]
    out: dict[str, dict[str, str]] = {}
    for extra, reqs in spec.items():
        pins = {}
        for req in reqs:
            self_ref = re.match(r"^multiplt\[([^\]]*)\]$", req)
            if self_ref:
                continue
            match = _PIN.match(req.strip())
            assert match, f"pyproject extra {extra!r}: {req!r} is not pinned as name==version"
            pins[norm(match.group(1))] = match.group(3)
        out[extra] = pins
    for extra, reqs in spec.items():
        for req in reqs:
            self_ref = re.match(r"^multiplt\[([^\]]*)\]$", req)
            if self_ref:
                for sub in self_ref.group(1).split(","):
                    out[extra].update(out[sub.strip()])
    return out


def core_pins() -> dict[str, str]:
    pins = {}
    for req in pyproject()["project"]["dependencies"]:
        match = _PIN.match(req.strip())
        assert match, f"pyproject dependency {req!r} is not pinned as name==version"
        pins[norm(match.group(1))] = match.group(3)
    return pins


# ---- imports in the code ---------------------------------------------------------------------------
def python_files(*dirs: str) -> list[pathlib.Path]:
    files = []
    for d in dirs:
        files.extend(p for p in sorted((ROOT / d).rglob("*.py")) if "__pycache__" not in p.parts)
    return files


def _guarded(node, parents) -> bool:
    """Inside a `try:` whose handlers catch ImportError (an optional dependency)."""
    for parent in parents:
        if isinstance(parent, ast.Try) and any(node_in(node, s) for s in parent.body):
            for handler in parent.handlers:
                names = []
                if isinstance(handler.type, ast.Name):
                    names = [handler.type.id]
                elif isinstance(handler.type, ast.Tuple):
                    names = [e.id for e in handler.type.elts if isinstance(e, ast.Name)]
                if {"ImportError", "ModuleNotFoundError"} & set(names):
                    return True
    return False


def node_in(node, tree) -> bool:
    return any(n is node for n in ast.walk(tree))


def imports(path: pathlib.Path) -> list[tuple[str, int, bool]]:
    """(absolute module name, line, guarded-by-ImportError) for every import in a file."""
    tree = ast.parse(path.read_text(), str(path))
    parents: dict[int, list] = {}

    def visit(node, chain):
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = chain + [node]
            visit(child, chain + [node])

    visit(tree, [])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        guarded = _guarded(node, parents.get(id(node), []))
        out.extend((name, node.lineno, guarded) for name in names)
    return out


def local_top_names() -> set[str]:
    """First-party import roots: the package, the test package, and modules on Airflow's paths."""
    names = {"multiplt", "tests"}
    for d in ("plugins", "dags", "scripts", "bench"):
        for p in (ROOT / d).glob("*"):
            if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()):
                names.add(p.stem)
    return names


@functools.cache
def _dist_files() -> dict[str, set[str]]:
    files = {}
    for dist in metadata.distributions():
        files[norm(dist.metadata["Name"])] = {str(f) for f in (dist.files or [])}
    return files


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def distribution_of(module: str) -> str | None:
    """The installed distribution that holds `module` (the deepest package file wins, so
    `airflow.providers.docker...` maps to the docker provider, not apache-airflow-core)."""
    top = module.partition(".")[0]
    candidates = [norm(d) for d in _packages_distributions().get(top, [])]
    if not candidates:
        return None
    if len(set(candidates)) == 1:
        return candidates[0]
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        stem = "/".join(parts[:depth])
        for dist in candidates:
            if {stem + ".py", stem + "/__init__.py"} & _dist_files().get(dist, set()):
                return dist
    return candidates[0]


def third_party_imports(dirs=CODE_DIRS) -> dict[str, list[str]]:
    """{module: ["path:line", ...]} for every non-stdlib, non-first-party, unguarded import."""
    local = local_top_names()
    found: dict[str, list[str]] = {}
    for path in python_files(*dirs):
        for module, line, guarded in imports(path):
            top = module.partition(".")[0]
            if top in sys.stdlib_module_names or top in local or top == "__future__" or guarded:
                continue
            found.setdefault(module, []).append(f"{path.relative_to(ROOT)}:{line}")
    return found


# ---- what a set of distributions brings with it ----------------------------------------------------
def requirement_closure(names, exact_only: bool = False) -> set[str]:
    return set(_closure(frozenset(norm(n) for n in names), exact_only))


@functools.cache
def _closure(names: frozenset, exact_only: bool) -> frozenset:
    """`names` plus every distribution they depend on (no extras), transitively. With exact_only,
    follow only `==` requirements (what a pin of `names` fixes by itself)."""
    seen, todo = set(), [norm(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for req in reqs:
            if "extra ==" in req or "extra==" in req:
                continue
            if ";" in req and "python_version" in req:
                marker = req.split(";", 1)[1]
                if not _python_marker_holds(marker):
                    continue
            spec = req.split(";", 1)[0]
            dep = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec).group(1)
            if exact_only and not re.search(r"==\s*[0-9]", spec):
                continue
            todo.append(norm(dep))
    return frozenset(seen)


def _python_marker_holds(marker: str) -> bool:
    version = "%d.%d" % sys.version_info[:2]
    for op, value in re.findall(r"python_version\s*([<>=!]=?)\s*['\"]([0-9.]+)['\"]", marker):
        a, b = tuple(map(int, version.split("."))), tuple(map(int, value.split(".")))
        if not {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[op]:
            return False
    return True


def import_roots_of(dists) -> set[str]:
    """Top-level import names provided by the given distributions."""
    wanted = {norm(d) for d in dists}
    return {top for top, owners in _packages_distributions().items()
            if wanted & {norm(o) for o in owners}}


def site_with_only(dists, dest: pathlib.Path) -> pathlib.Path:
    """A site-packages folder at `dest` holding only `dists` (and what they depend on): symlinks to
    their top-level modules and .dist-info folders here. Python run with `-I -S` and this folder
    on sys.path sees exactly what a venv with only those distributions would hold. (Namespace
    folders shared by several distributions, such as `airflow/`, come whole.)"""
    dest.mkdir(parents=True, exist_ok=True)
    for name in sorted(requirement_closure(dists)):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        site = pathlib.Path(dist.locate_file(""))
        for top in sorted({pathlib.PurePosixPath(str(f)).parts[0] for f in dist.files or []}):
            if top in ("..", "__pycache__") or top.endswith(".pth") or top.startswith("__editable__"):
                continue
            link = dest / top
            if not link.exists() and (site / top).exists():
                link.symlink_to(site / top)
    return dest


def modules_on_disk() -> list[str]:
    """multiplt.commands.X for every multiplt/commands/X.py that is not a _helper."""
    return sorted(f"multiplt.commands.{p.stem}" for p in (ROOT / "multiplt" / "commands").glob("*.py")
                  if not p.stem.startswith("_"))


def commands_on_disk() -> set[str]:
    """The command names the modules on disk register (each must register at least one)."""
    import argparse
    import importlib

    names = set()
    for module in modules_on_disk():
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(sub)
        assert sub.choices, f"{module} registers no command"
        names |= set(sub.choices)
    return names
