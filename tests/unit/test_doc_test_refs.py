"""The tests the docs name exist: a backticked `tests/PATH.py` (or `tests/PATH.py::NAME`) is a
file of the tree (and NAME a function of it), and a backticked bare `test_NAME` (or
`test_NAME[param]`) is a test function somewhere under tests/, unless it is a name of the
package (a language's `test_marker`, R's `test_humaneval`). docs/languages.md once pointed readers
to a `test_julia_programs_run_when_julia_exists` that never existed."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _spans():
    for doc in DOCS:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            for span in re.findall(r"`([^`]+)`", line):
                yield f"{doc.relative_to(ROOT)}:{number}", span


def test_named_test_files_and_functions_exist():
    wrong = []
    for where, span in _spans():
        for path, name in re.findall(r"\b(tests/[\w/]+\.py)(?:::(\w+))?", span):
            file = ROOT / path
            if not file.is_file():
                wrong.append(f"{where}: {path} is no file")
            elif name and not re.search(rf"^\s*(?:async\s+)?def {name}\b", file.read_text(), re.M):
                wrong.append(f"{where}: {path} has no {name}")
    assert not wrong, "\n".join(wrong)


def test_bare_test_names_are_tests_or_names_of_the_package():
    tests = set()
    for file in (ROOT / "tests").rglob("*.py"):
        tests |= set(re.findall(r"^\s*(?:async\s+)?def (test_\w+)", file.read_text(errors="replace"), re.M))
    package = "\n".join(p.read_text(errors="replace") for p in (ROOT / "multiplt").rglob("*")
                        if p.suffix in (".py", ".R", ".rkt", ".jl", ".lua", ".ml") and p.is_file())
    wrong = [f"{where}: {span}" for where, span in _spans()
             if (name := re.fullmatch(r"(test_\w+)(\[[\w-]+\])?", span)) and name[1] not in tests
             and not re.search(rf"\b{name[1]}\b", package)]
    assert not wrong, "\n".join(wrong)
