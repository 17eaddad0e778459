"""Every external program the code calls comes from a package in scripts/setup.sh's APT_PACKAGES
(or from an Essential package every Debian has), except Julia, which the sandbox image installs;
and so does every Debian package a language names (`Language.packages`: runtime, test library)."""

from __future__ import annotations

import os
import shutil
from types import SimpleNamespace

import pytest

from multiplt import languages
from tests import system_facts as facts

VENV_BIN = facts.ROOT / ".venv" / "bin"
# Programs some code runs on purpose without an apt package here, and where they come from.
ELSEWHERE = {
    "julia": "docker/sandbox.Dockerfile (Debian has no package; tests parse Julia with tree-sitter)",
    "docker": "the Docker host of the docker runtime (compose); never run by tests",
    "nvidia-smi": "the GPU host's driver",
}

pytestmark = pytest.mark.skipif(not shutil.which("dpkg-query"), reason="needs Debian's dpkg-query")


def required_programs() -> dict[str, str]:
    used = dict(facts.programs_used())
    for lang in languages.LANGUAGES.values():
        for binary in lang.binaries:
            used.setdefault(binary, f"multiplt/languages ({lang.name})")
        assert lang.command("/tmp/x")[0] in lang.binaries, f"{lang.name} runs a program not in its .binaries"
    return used


def test_the_scan_finds_what_the_languages_and_sandbox_run():
    used = required_programs()
    for expected in ("racket", "Rscript", "ocaml", "lua5.4", "julia", "python3"):
        assert expected in used


def language_package_problems(listed: list[str], langs) -> list[str]:
    """What the languages `langs` need that the Debian packages `listed` (with what they depend
    on) lack: each package of `Language.packages` (unless Essential); and the package of each of
    its `binaries` (Julia's comes from elsewhere) and of its test library (where system_facts
    knows the library's file) must be among its own `packages`."""
    closure = facts.package_closure(listed)
    problems = []
    for lang in langs:
        for package in lang.packages:
            if package not in closure and not facts.is_essential(package):
                problems.append(f"{package} (in {lang.name}'s packages)")
        own = facts.package_closure(lang.packages)
        for binary in lang.binaries:
            if binary in ELSEWHERE:
                continue
            package = facts.providing_package(binary)
            if package not in own and not facts.is_essential(package):
                problems.append(f"{lang.name} runs {binary}, from {package}, which its packages "
                                f"{list(lang.packages)} do not name")
        if lang.test_library in facts.LIBRARIES:
            package = facts.providing_package(lang.test_library)
            if package not in own:
                problems.append(f"{lang.name}'s test library {lang.test_library} comes from "
                                f"{package}, which its packages {list(lang.packages)} do not name")
    return problems


def test_every_language_package_comes_from_the_setup_list():
    problems = language_package_problems(facts.apt_packages(), languages.LANGUAGES.values())
    assert not problems, "scripts/setup.sh APT_PACKAGES misses:\n" + "\n".join(problems)


def test_the_language_check_names_what_is_missing():
    """A Perl-like language whose test library the list lacks (its runtime, from perl-base, is
    Essential); a Lua without its test library's package; a language whose packages do not give
    its binary."""
    perl = SimpleNamespace(name="perl", packages=("libtest-deep-perl",), binaries=("perl",),
                           test_library="Test::Deep")
    lua = SimpleNamespace(name="lua", packages=("lua5.4",), binaries=("lua5.4",), test_library="luaunit")
    racket = SimpleNamespace(name="racket", packages=(), binaries=("racket",), test_library="rackunit")
    assert language_package_problems(facts.apt_packages(), [perl, lua, racket]) == [
        "libtest-deep-perl (in perl's packages)",
        "lua's test library luaunit comes from lua-unit, which its packages ['lua5.4'] do not name",
        "racket runs racket, from racket, which its packages [] do not name"]
    assert language_package_problems([p for p in facts.apt_packages() if p != "lua-unit"],
                                     [languages.get("lua")]) == ["lua-unit (in lua's packages)"]


def test_every_program_comes_from_the_setup_list():
    listed = facts.apt_packages()
    closure = facts.package_closure(listed)
    problems = []
    for program, where in sorted(required_programs().items()):
        if program in ELSEWHERE:
            continue
        if (VENV_BIN / program).exists() and program not in facts.WATCHED:
            continue  # a console script of a pinned Python package
        package = facts.providing_package(program)
        if package is None:
            problems.append(f"{program} (used at {where}) is not installed from any Debian package here")
        elif package not in closure and not facts.is_essential(package):
            problems.append(f"{program} (used at {where}) comes from {package}, which APT_PACKAGES lacks")
    assert not problems, "scripts/setup.sh APT_PACKAGES misses:\n" + "\n".join(problems)


def test_julia_comes_from_the_sandbox_image():
    dockerfile = (facts.ROOT / "docker/sandbox.Dockerfile").read_text()
    assert "julialang" in dockerfile and "/usr/local/bin/julia" in dockerfile
    assert "julia" not in facts.apt_packages()


def test_setup_list_names_real_packages():
    """Each listed package is installed here (setup.sh installs them; CI runs it first)."""
    missing = [p for p in facts.apt_packages()
               if os.system(f"dpkg-query -W -f='${{Status}}' {p} 2>/dev/null | grep -q 'install ok installed'")]
    assert not missing, f"APT_PACKAGES lists packages that are not installed: {missing}"


def test_setup_refuses_a_venv_of_another_python(tmp_path):
    """requirements.lock is for Python 3.11: a .venv of another version is refused with one line
    before pip starts, instead of failing halfway through the install."""
    import subprocess

    (tmp_path / "scripts").mkdir()
    shutil.copy(facts.ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    fake = tmp_path / ".venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho 3.10\n")  # what `python -c ...` prints for Python 3.10
    fake.chmod(0o755)
    # an apt-get that installs nothing: where packages are missing setup.sh stops before the check
    apt = tmp_path / "bin" / "apt-get"
    apt.parent.mkdir()
    apt.write_text("#!/bin/sh\nexit 3\n")
    apt.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    env["PATH"] = f"{apt.parent}:{env['PATH']}"
    done = subprocess.run(["bash", str(tmp_path / "scripts" / "setup.sh")], capture_output=True,
                          text=True, env=env, timeout=120)
    if "apt packages" in done.stdout or "missing" in done.stderr:
        pytest.skip("the apt packages are not all installed here: setup.sh stops before the check")
    assert done.returncode == 1, done
    assert "Python 3.10" in done.stderr and "requirements.lock is for Python 3.11" in done.stderr
    assert not (tmp_path / ".venv" / ".multiplt-installed").exists()


def test_setup_refuses_to_make_a_venv_with_another_python(tmp_path):
    """PYTHON of another version is refused before any .venv is made."""
    import subprocess

    (tmp_path / "scripts").mkdir()
    shutil.copy(facts.ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    fake = tmp_path / "bin" / "python3.10"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 3.10\n")
    fake.chmod(0o755)
    apt = tmp_path / "bin" / "apt-get"  # installs nothing (see above)
    apt.write_text("#!/bin/sh\nexit 3\n")
    apt.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake), "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(tmp_path / "scripts" / "setup.sh")], capture_output=True,
                          text=True, env=env, timeout=120)
    if "apt packages" in done.stdout or "missing" in done.stderr:
        pytest.skip("the apt packages are not all installed here: setup.sh stops before the check")
    assert done.returncode == 1, done
    assert f"{fake} is Python 3.10, but requirements.lock is for Python 3.11" in done.stderr
    assert not (tmp_path / ".venv").exists()
