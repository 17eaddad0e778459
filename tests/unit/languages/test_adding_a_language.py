"""Issue 12 point 1: adding a language is adding one module to multiplt/languages/ (and its
fixtures), nothing else. A throwaway module is put on the package's path; the registry, the
pipelines' language lists, the executor's preflight and its library cache all pick it up, and
it runs in the real sandbox."""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import multiplt.languages
from multiplt import languages
from multiplt.commands import train
from multiplt.execution import preflight
from multiplt.execution.sandbox import Sandbox
from multiplt.languages import registry
from multiplt.translation.clean import clean_program, cut_at_tests, strip_comments
from multiplt.translation.dedup import RougeDedup
from multiplt.translation.problems import build_problem
from tests.fixtures import translate as fx

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
        packages = ("python3",)
        terms = {"array": "list", "list": "list", "tuple": "tuple", "dictionary": "dict",
                 "None": "None", "True": "True", "False": "False"}
        test_marker = "import toycheck"
        comment = ("#", "")
        empty_comment = r"#+"
        comment_patterns = (r"#[^\\n]*",)

        def render_value(self, value, t):
            return repr(value)

        def render_prompt(self, name, params, returns, description):
            comment = "".join(f"# {line}".rstrip() + "\\n" for line in description.split("\\n"))
            return f"{comment}def {name}({', '.join(p.name for p in params)}):\\n"

        def render_assert(self, call, expected, tolerance):
            return f"    toycheck.same({call}, {expected})"

        def render_test_file(self, name, asserts):
            return "import toycheck\\ndef run(candidate):\\n" + "\\n".join(asserts) + f"\\nrun({name})\\n"

        def seal_tests(self, tests, nonce):
            return tests + f"print({nonce!r})\\n"

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


def test_translation_cleans_and_deduplicates_the_new_language(toy):
    """Cleaning (cut at the tests, drop empty comment lines) and near-duplicate detection (comments
    stripped) read the new language's `test_marker`, `empty_comment` and `comment_patterns`."""
    problem = build_problem(fx.ROWS[0], toy).row
    assert problem["tests"].startswith(toy.test_marker)
    body = "    #\n    return [x + 1 for x in xs]  # one more\n"
    program = problem["prompt"] + body + "\n" + problem["tests"]
    assert cut_at_tests(program, "toy") == problem["prompt"] + body + "\n"
    cleaned = clean_program(program, problem["prompt"], problem["clean_prompt"], "toy")
    assert cleaned == problem["clean_prompt"] + "    return [x + 1 for x in xs]  # one more\n"
    assert "Canonical Python" in problem["prompt"] and "Canonical Python" not in cleaned
    assert strip_comments(cleaned, "toy") == "def add_one(xs):\n    return [x + 1 for x in xs]"
    other = cleaned.replace("# one more", "# add one to each")  # differs in comments only
    verdicts = RougeDedup().greedy([(0, cleaned), (1, other)], "toy")
    assert [v.kept for v in verdicts] == [True, False] and verdicts[1].score == 1.0


def test_train_help_lists_the_new_language(toy):
    parser = argparse.ArgumentParser()
    train.register(parser.add_subparsers())
    lang = next(a for a in parser._subparsers._group_actions[0].choices["train"]._actions
                if a.dest == "lang")
    assert lang.help == "language code (jl lua ml py r rkt toy); tags are LANG-EXPERIMENT-epochN"


def _refusal(tmp_path, monkeypatch, module: str, text: str) -> str:
    """The TypeError's message when the registry loads a module `module` holding `text`."""
    (tmp_path / f"{module}.py").write_text(text)
    monkeypatch.setattr(multiplt.languages, "__path__", [*multiplt.languages.__path__, str(tmp_path)])
    try:
        with pytest.raises(TypeError) as refused:
            registry.load()
    finally:
        monkeypatch.undo()
        sys.modules.pop(f"multiplt.languages.{module}", None)
        registry.load()
    assert languages.names() == SIX
    return str(refused.value)


def test_a_module_that_is_not_a_complete_language_is_refused(tmp_path, monkeypatch):
    message = _refusal(tmp_path, monkeypatch, "half", "from multiplt.languages.base import Language\n\n"
                       "class HalfLanguage(Language):\n    code = 'half'\n")
    assert message.startswith("multiplt.languages.half must define exactly one complete Language "
                              "subclass; it defines ['HalfLanguage']; HalfLanguage lacks name, "
                              "file_ext, stop_tokens, timeout, binaries, packages, terms, "
                              "test_marker, comment, empty_comment, comment_patterns, classify(), ")


def test_a_language_without_a_required_attribute_is_refused_when_the_registry_loads(tmp_path, monkeypatch):
    """Every class attribute Language declares without a default is required: a module lacking
    some is refused at load, naming the module, the class and each one (not an AttributeError
    deep in a later command)."""
    assert registry.required() == ["code", "name", "file_ext", "stop_tokens", "timeout", "binaries",
                                   "packages", "terms", "test_marker", "comment", "empty_comment",
                                   "comment_patterns"]
    partial = re.sub(r"\n    (terms|packages|test_marker) = [^\n]*(\n {9,}[^\n]*)?", "", TOY)
    assert "terms" not in partial and "test_marker" not in partial and "code =" in partial
    message = _refusal(tmp_path, monkeypatch, "partial", partial)
    assert message == ("multiplt.languages.partial must define exactly one complete Language "
                       "subclass; it defines ['ToyLanguage']; ToyLanguage lacks packages, terms, "
                       "test_marker")


@pytest.mark.parametrize("code", ["Toy", "toy2", "to_y", ""])
def test_a_code_that_is_not_lower_case_letters_is_refused(tmp_path, monkeypatch, code):
    message = _refusal(tmp_path, monkeypatch, "badcode", TOY.replace('code = "toy"', f"code = {code!r}"))
    assert message == (f"multiplt.languages.badcode: ToyLanguage.code {code!r} must be lower-case "
                       f"letters a-z only (it names files, tags LANG-EXPERIMENT-epochN and "
                       f"pipeline parameters)")


# Per-language tables allowed outside multiplt/languages/: file -> (a regular expression for the
# allowed text, which the scan skips, and why it is not the registry's business).
EXEMPT = {
    # The tiny test model's pretraining corpus: the folders where Debian puts each language's own
    # source files on this machine. It is a fixed recipe for a reproducible toy model, not a list
    # of what the platform supports: a new language must not change that model (Julia is absent:
    # Debian packages none).
    "multiplt/models/tiny.py": (r"\ndef corpus_sources\(\).*?\n    \}\n", "the tiny model's corpus"),
    # The splits nuprl/MultiPL-T has on the Hub: a fact about that dataset, which a new language
    # does not change (it has no split there).
    "multiplt/training/config.py": (r"\nPUBLISHED_SPLITS = \([^)]*\)\n", "the published dataset's splits"),
}


def _words() -> set[str]:
    """Every language's code, name and split in the registry."""
    return {w for lang in languages.LANGUAGES.values() for w in (lang.code, lang.name, lang.split)}


def hand_lists(text: str) -> list[str]:
    """What in Python source `text` names languages by hand: a list of codes or names, a dict
    keyed by one, a test of one language's code."""
    alternation = "|".join(sorted(map(re.escape, _words()), key=lambda w: (-len(w), w)))
    word = rf"""["'](?:{alternation})["']"""
    patterns = {"a list of language codes": rf"{word}\s*,\s*{word}",
                "a dict keyed by language": rf"{word}\s*:",
                "a test of one language": rf"\.(?:code|name|split)\s*(?:==|!=)\s*{word}"}
    return [what for what, pattern in patterns.items() if re.search(pattern, text)]


def yaml_hand_lists(data, key=None) -> list[str]:
    """The same in parsed YAML: a mapping keyed by a language or a list of them, except a
    property override's `templates` (checked against the registry where the overrides load;
    tests/unit/languages/test_deviations.py requires one for every target)."""
    words = _words()
    found = []
    if isinstance(data, dict):
        if key != "templates" and words & set(map(str, data)):
            found.append(f"a mapping keyed by language under {key!r}")
        for k, v in data.items():
            found += yaml_hand_lists(v, k)
    elif isinstance(data, list):
        if len(data) > 1 and all(str(v) in words for v in data):
            found.append(f"a list of languages under {key!r}")
        for v in data:
            found += yaml_hand_lists(v, key)
    return found


def test_the_scan_catches_every_shape_and_reads_the_registry(toy):
    assert hand_lists('MARKERS = {"rkt": "(require rackunit)"}') == ["a dict keyed by language"]
    assert hand_lists("{'racket': ([], ('.rkt',))}") == ["a dict keyed by language"]
    assert hand_lists('for code in ("rkt", "jl"):') == ["a list of language codes"]
    assert hand_lists('ok = lang.code == "lua"') == ["a test of one language"]
    assert hand_lists('{"toylang": 1}') == ["a dict keyed by language"]  # the new language too
    assert hand_lists('open(path, "r")\nx = {"rkt_dir": 1}\nname = "lua"') == []
    assert yaml_hand_lists({"P": {"templates": {"rkt": "x"}, "extra": {"toy": "y"}}}) == [
        "a mapping keyed by language under 'extra'"]
    assert yaml_hand_lists({"P": {"languages": ["rkt", "toylang"]}}) == [
        "a list of languages under 'languages'"]


def test_nothing_outside_the_language_modules_names_languages():
    """No list of language codes or names, no dict keyed by one and no `code == "lua"` test
    outside multiplt/languages/ (EXEMPT aside), nor in the benchmark data files."""
    found = []
    for folder in ("multiplt", "dags", "plugins"):
        for path in sorted((REPO / folder).rglob("*.py")):
            where = str(path.relative_to(REPO))
            if path.parent == REPO / "multiplt" / "languages":
                continue
            text = path.read_text(encoding="utf-8")
            if where in EXEMPT:
                allowed = re.compile(EXEMPT[where][0], re.DOTALL)
                assert len(allowed.findall(text)) == 1, f"{where}: the exemption's text is gone; drop it"
                assert hand_lists(allowed.search(text).group()), f"{where} needs no exemption"
                text = allowed.sub("\n", text)
            found += [f"{where}: {what}" for what in hand_lists(text)]
    for path in sorted((REPO / "multiplt" / "benchmarks" / "data").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        found += [f"{path.relative_to(REPO)}: {what}" for what in yaml_hand_lists(data)]
    assert found == []
