"""Issue 12 point 1: adding a language is adding one module to multiplt/languages/ (and its
fixtures), nothing else. A throwaway module is put on the package's path; the registry, the
pipelines' language lists, the executor's preflight and its library cache all pick it up, and
it runs in the real sandbox."""

from __future__ import annotations

import importlib
import re
import sys
import textwrap
from pathlib import Path

import pytest

import multiplt.languages
from multiplt import languages
from multiplt.execution import preflight
from multiplt.execution.sandbox import Sandbox
from multiplt.languages import registry

REPO = Path(__file__).resolve().parents[3]
SIX = ["jl", "lua", "ml", "py", "r", "rkt"]

# A Python dialect with its own test library: `toycheck.same`, precompiled into the library
# folder, which the program finds only through the mount the sandbox gives that folder.
TOY = textwrap.dedent('''
    import os

    from multiplt.languages.base import (ASSERTION_ERROR, EXCEPTION, LIBRARY_MOUNT, OK, Language)


    class ToyLanguage(Language):
        code = "toy"
        name = "toylang"
        file_ext = "toy"
        stop_tokens = ("\\ndef",)
        timeout = 15.0
        binaries = ("python3",)
        terms = {"array": "list", "list": "list", "tuple": "tuple", "dictionary": "dict",
                 "None": "None", "True": "True", "False": "False"}

        def render_value(self, value, t):
            return repr(value)

        def render_prompt(self, name, params, returns, description):
            return f"# {description}\\ndef {name}({', '.join(p.name for p in params)}):\\n"

        def render_assert(self, call, expected, tolerance):
            return f"    toycheck.same({call}, {expected})"

        def render_test_file(self, name, asserts):
            return "import toycheck\\ndef run(candidate):\\n" + "\\n".join(asserts) + f"\\nrun({name})\\n"

        def return_body(self, expr):
            return f"    return {expr}\\n"

        def command(self, path):
            return ["python3", "-B", path]

        def env(self):
            return {"PYTHONPATH": LIBRARY_MOUNT}

        def build_libraries(self, folder):
            path = os.path.join(folder, "toycheck.py")
            with open(path, "w") as f:
                f.write("def same(a, b):\\n    if a != b:\\n"
                        "        raise SystemExit(f'toy mismatch: {a!r} != {b!r}')\\n")
            os.chmod(path, 0o644)
            return True

        def classify(self, exit_code, stdout, stderr):
            if exit_code == 0:
                return OK
            return ASSERTION_ERROR if "toy mismatch" in stderr else EXCEPTION
''')


def _params():
    for path in (str(REPO / "dags"), str(REPO / "plugins")):
        if path not in sys.path:
            sys.path.insert(0, path)
    from multiplt_pipelines import params

    return importlib.reload(params)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    (tmp_path / "toy.py").write_text(TOY)
    monkeypatch.setattr(multiplt.languages, "__path__", [*multiplt.languages.__path__, str(tmp_path)])
    registry.load()
    yield languages.get("toy")
    monkeypatch.undo()
    sys.modules.pop("multiplt.languages.toy", None)
    registry.load()
    _params()


def test_the_registry_is_exactly_the_modules_of_the_package():
    assert languages.names() == SIX
    assert languages.targets() == [c for c in SIX if c != "py"]


def test_a_new_module_is_a_new_language_everywhere(toy):
    assert languages.names() == sorted(SIX + ["toy"])
    assert languages.get("toylang") is toy  # its published split name is an alias
    assert "toy" in languages.targets()

    params = _params()  # the DAGs' Params validate against the registry
    assert params.LANGUAGE_CODES == sorted(SIX + ["toy"])
    assert "toy" in params.EVALUATE["languages"]["default"]
    assert "toy" in params.LANGUAGES_SCHEMA["items"]["enum"]

    with Sandbox() as sandbox:
        preflight.preflight(sandbox, [toy])  # its own programs: good ends OK, bad AssertionError
        assert sandbox.preflight_passed == {"toy"}
        library = Path(sandbox._library(toy))
        assert (library / "toycheck.py").is_file()
        bad = sandbox.run(toy, preflight.known_program(toy, good=False), 20)
    assert "toy mismatch: 6 != 5" in bad.stderr  # the test library came through the mount


def test_a_module_that_is_not_a_complete_language_is_refused(tmp_path, monkeypatch):
    (tmp_path / "half.py").write_text("from multiplt.languages.base import Language\n\n"
                                      "class HalfLanguage(Language):\n    code = 'half'\n")
    monkeypatch.setattr(multiplt.languages, "__path__", [*multiplt.languages.__path__, str(tmp_path)])
    try:
        with pytest.raises(TypeError, match="must define exactly one complete Language"):
            registry.load()
    finally:
        monkeypatch.undo()
        sys.modules.pop("multiplt.languages.half", None)
        registry.load()
    assert languages.names() == SIX


def test_nothing_outside_the_language_modules_names_languages():
    """No list of language codes and no `code == "lua"` test outside multiplt/languages/."""
    code = r"""["'](?:py|rkt|jl|r|ml|lua)["']"""
    patterns = {"a list of language codes": re.compile(rf"{code}\s*[,:]\s*{code}"),
                "a test of one language": re.compile(rf"\.code\s*(?:==|!=)\s*{code}")}
    found = []
    for folder in ("multiplt", "dags", "plugins"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if path.parent == REPO / "multiplt" / "languages":
                continue
            text = path.read_text(encoding="utf-8")
            found += [f"{path.relative_to(REPO)}: {what}" for what, p in patterns.items()
                      if p.search(text)]
    assert found == []
