"""Rendered literals read back as the same values in the real runtimes (strings with quotes,
backslashes, newlines and `$`; negative, tiny and huge numbers). Julia cannot run here."""

import shutil
import subprocess

import pytest

from multiplt import languages
from multiplt.languages.types import FLOAT, INT, STR

pytestmark = pytest.mark.slow
SEP = "|SEP|"
STRINGS = ['say "hi" \\ back\nnew $x', "tab\there", "single ' quote", "", "$(x) #{y} %d", "é ✓"]
NUMBERS = [(-3, INT), (123456789012, INT), (-2.5, FLOAT), (1e-05, FLOAT), (0.5, FLOAT),
           (1e20, FLOAT), (3, FLOAT), (-0.001, FLOAT)]

PRINT = {  # (print a string literal, print a number literal of type, program suffix)
    "py": (lambda s: f"print({s}, end={SEP!r})", lambda n, t: f"print(repr({n}), end={SEP!r})", ""),
    "rkt": (lambda s: f'(display {s}) (display "{SEP}")',
            lambda n, t: f'(display (exact->inexact {n})) (display "{SEP}")', ""),
    "r": (lambda s: f'cat({s}, "{SEP}", sep = "")',
          lambda n, t: f'cat(format({n}, digits = 17), "{SEP}", sep = "")', ""),
    "ml": (lambda s: f'let () = print_string {s}; print_string "{SEP}"',
           lambda n, t: (f'let () = Printf.printf "%.17g{SEP}" {n}' if t is FLOAT
                         else f'let () = Printf.printf "%d{SEP}" {n}'), ""),
    "lua": (lambda s: f'io.write({s}, "{SEP}")', lambda n, t: f'io.write(string.format("%.17g", {n}), "{SEP}")', ""),
}
PRELUDE = {"rkt": "#lang racket\n"}


@pytest.mark.parametrize("code", sorted(PRINT))
def test_literals_read_back(code, tmp_path):
    lang = languages.get(code)
    if not all(shutil.which(b) for b in lang.binaries):
        pytest.skip(f"{code} runtime not installed")
    pstr, pnum, _ = PRINT[code]
    lines = [PRELUDE.get(code, "")]
    lines += [pstr(lang.value(s, STR)) for s in STRINGS]
    lines += [pnum(lang.value(n, t), t) for n, t in NUMBERS]
    path = tmp_path / f"values.{lang.file_ext}"
    path.write_text("\n".join(lines) + "\n")
    proc = subprocess.run(lang.command(str(path)), capture_output=True, text=True, timeout=60,
                          env={**__import__("os").environ, **lang.env()})
    assert proc.returncode == 0, proc.stderr
    parts = proc.stdout.split(SEP)[:-1]
    assert parts[: len(STRINGS)] == STRINGS
    for text, (n, _t) in zip(parts[len(STRINGS):], NUMBERS):
        assert float(text) == pytest.approx(float(n), rel=1e-12), (text, n)
