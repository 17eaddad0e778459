"""Small programs, in MultiPL-E's test style, that end in each status in each language.

PROGRAMS[lang][status] is a list of (label, program). Each is the preflight's known problem
(add(2, 3) == 5) in the language's own rendering, with a body returning the expression below;
the expressions break it in each way.
"""

from __future__ import annotations

from multiplt import languages
from multiplt.execution.preflight import known_problem


def _with(code: str, expr: str) -> str:
    lang = languages.get(code)
    prompt, tests = known_problem(lang)
    return prompt + lang.return_body(expr) + "\n" + tests


PROGRAMS: dict[str, dict[str, list[tuple[str, str]]]] = {
    "py": {
        "OK": [("add", _with("py", "x + y"))],
        "AssertionError": [("wrong answer", _with("py", "x - y"))],
        "SyntaxError": [("parse", _with("py", "x +")),
                        ("indent", "def add(x, y):\nreturn x\n")],
        "Exception": [("raise", _with("py", "int('boom')")),
                      ("name", _with("py", "undefined_name"))],
        "Timeout": [("loop", _with("py", "next(z for z in iter(int, 1) if z)"))],
    },
    "rkt": {
        "OK": [("add", _with("rkt", "(+ x y)"))],
        "AssertionError": [("check-within", _with("rkt", "(- x y)"))],
        "SyntaxError": [("read: missing paren", _with("rkt", "(+ x y")),
                        ("read: extra paren", _with("rkt", "(+ x y))")),
                        ("expand: unbound identifier", _with("rkt", "(plus x y)")),
                        ("expand: bad syntax", _with("rkt", "(if)"))],
        "Exception": [("error", _with("rkt", '(error "boom")')),
                      ("contract", _with("rkt", "(car x)"))],
        "Timeout": [("loop", _with("rkt", "(let loop () (loop))"))],
    },
    "r": {
        "OK": [("add", _with("r", "x + y"))],
        "AssertionError": [("stopifnot", _with("r", "x - y"))],
        "SyntaxError": [("unexpected }", _with("r", "x +")),
                        ("unexpected symbol", _with("r", "x y"))],
        "Exception": [("stop", _with("r", "stop('boom')")),
                      ("not found", _with("r", "undefined_thing + 1"))],
        "Timeout": [("repeat", _with("r", "repeat {}"))],
    },
    "ml": {
        "OK": [("add", _with("ml", "x + y"))],
        "AssertionError": [("assert", _with("ml", "x - y"))],
        "SyntaxError": [("parse", _with("ml", "x + )")),
                        ("type error", _with("ml", "x +. y")),
                        ("unbound value", _with("ml", "plus x y"))],
        "Exception": [("failwith", _with("ml", 'failwith "boom"')),
                      ("division", _with("ml", "x / 0"))],
        "Timeout": [("loop", _with("ml", "let rec loop () = loop () in loop ()"))],
    },
    "lua": {
        "OK": [("add", _with("lua", "x + y"))],
        "AssertionError": [("assertEquals", _with("lua", "x - y"))],
        "SyntaxError": [("unexpected symbol", _with("lua", "x +")),
                        ("unfinished string", _with("lua", "'x"))],
        "Exception": [("error in test", _with("lua", "error('boom')")),
                      ("bad argument", _with("lua", "table.insert(nil, 1)")),
                      ("error at top level",
                       _with("lua", "x + y").replace("lu = require", "local z = nil + 1\nlu = require")),
                      ("bad argument at top level",
                       _with("lua", "x + y").replace("lu = require", "table.insert(nil, 1)\nlu = require"))],
        "Timeout": [("loop", _with("lua", "(function() while true do end end)()"))],
    },
    "jl": {
        "OK": [("add", _with("jl", "x + y"))],
        "AssertionError": [("@test", _with("jl", "x - y"))],
        "SyntaxError": [("parse", _with("jl", "x +)"))],
        "Exception": [("error", _with("jl", 'error("boom")'))],
        "Timeout": [("loop", _with("jl", "(while true end; 0)"))],
    },
}


def cases(code: str):
    for status, programs in PROGRAMS[code].items():
        for label, program in programs:
            yield status, label, program
