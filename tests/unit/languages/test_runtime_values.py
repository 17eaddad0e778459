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

# A row per language whose runtime is installed: a registered language installed without one
# fails (here and in tests/unit/languages/test_per_language_tables.py). Julia, not installed
# here, has none; test_julia_writes_its_own_infinities_and_nan checks its literals' text.
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


def runnable(code: str, table: dict, name: str):
    """The language, for a test run in its runtime: skipped where the runtime is not installed
    (Julia here), failed where it is but `table` (named `name`) has no row for it."""
    lang = languages.get(code)
    if not all(shutil.which(b) for b in lang.binaries):
        pytest.skip(f"{code} runtime not installed")
    assert code in table, f"{code} is installed but has no row in {name}"
    return lang


@pytest.mark.parametrize("code", languages.names())
def test_literals_read_back(code, tmp_path):
    lang = runnable(code, PRINT, "PRINT")
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


# Control characters, each followed by a digit: Lua's `\d` escape reads up to three digits, so
# NUL written `\0` before a `1` was the one byte 0x01. R strings cannot hold NUL (below).
CONTROL = ["\x00" + "1", "a\x00\x0077", "\x7f" + "0", "\x1b[0m", "\x0b\x0c\x1c\x85x",
           "".join(chr(i) + "5" for i in range(32))]


@pytest.mark.parametrize("code", languages.names())
def test_control_characters_read_back_as_the_same_bytes(code, tmp_path):
    lang = runnable(code, PRINT, "PRINT")
    strings = [s for s in CONTROL if code != "r" or "\x00" not in s]
    lines = [PRELUDE.get(code, "")] + [PRINT[code][0](lang.value(s, STR)) for s in strings]
    path = tmp_path / f"control.{lang.file_ext}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.run(lang.command(str(path)), capture_output=True, timeout=60,
                          env={**__import__("os").environ, **lang.env()})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split(SEP.encode())[:-1] == [s.encode() for s in strings]


def test_r_values_holding_nul_are_not_expressible():
    """R drops a raw NUL (`"a<NUL>b"` reads as "ab") and refuses `\\0`: a test value holding one
    is Unsupported (the assert is dropped with the reason), never another string."""
    from multiplt.languages.base import Unsupported
    from multiplt.languages.types import Dict, List

    r = languages.get("r")
    for value, typ in (("a\x00b", STR), (["x", "\x00"], List(STR)), ({"k\x00": 1}, Dict(STR, INT))):
        with pytest.raises(Unsupported, match="R strings cannot hold the NUL character"):
            r.value(value, typ)
    assert r.value("a\x01b", STR) == '"a\x01b"'


@pytest.mark.parametrize("name", ["let", "define", "require", "list", "cons"])
def test_racket_functions_named_like_the_harness_bindings_can_pass(name, tmp_path):
    """The prompt's `(define (NAME ...))` binds NAME in the whole module, the tests included: a
    function named `let`, `define` or `require` (the harness) or `list`/`cons` (the values) is
    renamed, so a right body passes in the real racket."""
    from multiplt.languages.base import OK, Param, TestCase
    from multiplt.languages.types import List

    rkt = languages.get("rkt")
    if not shutil.which("racket"):
        pytest.skip("racket not installed")
    params = [Param(rkt.identifier("xs"), List(INT))]
    prompt = rkt.render_prompt(name, params, INT, "Sum xs.")
    cases = [rkt.render_case("candidate", params, INT, TestCase((xs,), sum(xs)))
             for xs in ([1, 2], [], [5])]
    program = prompt + rkt.return_body("(apply + xs)") + "\n" + rkt.render_test_file(name, cases)
    path = tmp_path / "program.rkt"
    path.write_text(program)
    proc = subprocess.run(rkt.command(str(path)), capture_output=True, text=True, timeout=120)
    assert rkt.classify(proc.returncode, proc.stdout, proc.stderr) == OK, (program, proc.stderr)
    assert f"(define ({name}_ xs)" in prompt and f"(( candidate {name}_))" in program


# (is it +infinity, -infinity, NaN: one line each) for a rendered float literal v
SPECIAL = {
    "py": lambda v: f"print({v} > 1e308, {v} < -1e308, {v} != {v}, sep={SEP!r}, end={SEP!r})",
    "rkt": lambda v: f'(for ([b (list (> {v} 1e308) (< {v} -1e308) (nan? {v}))]) (display b) (display "{SEP}"))',
    "r": lambda v: f'cat({v} > 1e308 & !is.nan({v}), {v} < -1e308 & !is.nan({v}), is.nan({v}), "", sep = "{SEP}")',
    "ml": lambda v: (f'let () = Printf.printf "%b{SEP}%b{SEP}%b{SEP}" ({v} > 1e308) ({v} < -1e308) '
                     f'(Float.is_nan {v})'),
    "lua": lambda v: f'io.write(tostring({v} > 1e308), "{SEP}", tostring({v} < -1e308), "{SEP}", '
                     f'tostring({v} ~= {v}), "{SEP}")',
}


@pytest.mark.parametrize("code", languages.names())
def test_infinities_and_nan_are_literals_of_the_language(code, tmp_path):
    """Python's inf, -inf and nan (a test value such as 1e999) were written as `inf`, `-inf`
    and `nan`: unbound names in Python, Racket, R and Julia, so no completion could pass."""
    lang = runnable(code, SPECIAL, "SPECIAL")
    values = [float("inf"), float("-inf"), float("nan")]
    lines = [PRELUDE.get(code, "")] + [SPECIAL[code](lang.value(v, FLOAT)) for v in values]
    path = tmp_path / f"special.{lang.file_ext}"
    path.write_text("\n".join(lines) + "\n")
    proc = subprocess.run(lang.command(str(path)), capture_output=True, text=True, timeout=60,
                          env={**__import__("os").environ, **lang.env()})
    assert proc.returncode == 0, proc.stderr
    truth = [p.strip().lower() in ("true", "#t") for p in proc.stdout.split(SEP)[:9]]
    assert truth == [True, False, False, False, True, False, False, False, True], proc.stdout


def test_julia_writes_its_own_infinities_and_nan():
    julia = languages.get("jl")
    assert [julia.value(v, FLOAT) for v in (float("inf"), float("-inf"), float("nan"), 2.5)] == \
        ["Inf", "-Inf", "NaN", "2.5"]


def test_racket_tests_expecting_an_infinity_or_nan_can_pass(tmp_path):
    """Racket's tests compare with check-within, where inf - inf is NaN, within no tolerance: a
    correct function returning +inf.0 (or a list holding +nan.0) failed its test."""
    from multiplt.languages.types import List

    lang = languages.get("rkt")
    if not all(shutil.which(b) for b in lang.binaries):
        pytest.skip("racket not installed")
    for value, typ in ((float("inf"), FLOAT), (float("-inf"), FLOAT), ([1.5, float("nan")], List(FLOAT)),
                       (2.5, FLOAT)):
        literal = lang.value(value, typ)
        program = (f"#lang racket\n(define (f) {literal})\n"
                   + lang.render_test_file("f", [lang.render_assert("(candidate)", literal, None)]))
        path = tmp_path / "t.rkt"
        path.write_text(program + "\n")
        proc = subprocess.run(lang.command(str(path)), capture_output=True, text=True, timeout=60,
                              env={**__import__("os").environ, **lang.env()})
        assert lang.classify(proc.returncode, proc.stdout, proc.stderr) == "OK", (literal, proc.stderr)
