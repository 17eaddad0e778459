"""translate keeps a translation only when its sealed tests ran and passed (test_tests_nonce.py);
a translation runs before them in one program, and one that redefines what they call (R's
`stopifnot`, Racket's `check-within` or `zero?`, OCaml's `=`, Lua's `error` or luaunit's
`assertEquals`, rackunit's check-around, R's `options(error = ...)`)
made them pass without testing anything. Now Racket's, R's and OCaml's sealed tests are immune to
what the translation defines (`Language.seal_tests`), and what a language cannot keep out (all
of it in Lua and Julia) is refused statically (`Language.tampers_with_tests`): such a sample is
dropped, never kept."""

from __future__ import annotations

import pathlib
import shutil

import pytest

from multiplt import languages
from multiplt.languages import get
from multiplt.translation import dedup
from multiplt.languages.base import OK
from multiplt.translation import collect
from multiplt.translation.collect import collect_function, passed
from multiplt.translation.pipeline import dropped_reasons
from multiplt.translation.problems import build_problem
from tests.fixtures import translate as fx
from tests.unit.translation.test_tests_nonce import ADD_ONE, run_program

# Per language: completions of add_one that compute a wrong answer (add 2, or the right one only
# for the first test) and redefine what the tests call; each printed the nonce before this fix.
CHEATS = {
    "rkt": ["  (map (lambda (x) (+ x 2)) xs))\n(define (check-within . _) (void))\n(check-equal? 1 1)\n",
            "  (map (lambda (x) (+ x 2)) xs))\n(define (zero? x) #t)\n(define (positive? x) #t)\n"
            "(current-error-port (open-output-nowhere))\n",
            "  (map (lambda (x) (+ x 2)) xs))\n(check-equal? 1 1)\n(current-check-around (lambda (t) (void)))\n",
            "  (map (lambda (x) (+ x 2)) xs))\n(define-syntax-rule (check-within a b c) (void))\n"
            "(check-equal? 1 1)\n"],
    "r": ["\n  xs + 2\n}\nstopifnot <- function(...) NULL\n",
          "\n  xs + 2\n}\nisTRUE <- function(x) TRUE\n",
          "\n  xs + 2\n}\nall.equal <- function(...) TRUE\n",
          "\n  xs + 2\n}\nall.equal.double <- function(...) TRUE\n",
          "\n  xs + 2\n}\nattach(list(stopifnot = function(...) NULL))\n",
          # a failed stopifnot went on to the nonce's line
          "\n  xs + 2\n}\noptions(error = function() NULL)\n"],
    "ml": ["\n  List.map (fun x -> x + 2) xs\nlet (=) _ _ = true\n",
           "\n  List.map (fun x -> x + 2) xs\n"
           "module Stdlib = struct include Stdlib let (=) _ _ = true end\nopen Stdlib\n"],
    "lua": ["    return xs\nend\nerror = function() end\n",
            "    return xs\nend\nlocal luaunit = require('luaunit')\nluaunit.assertEquals = function() end\n",
            "    return xs\nend\narg[1] = '--pattern'\narg[2] = 'none'\n",
            "    return xs\nend\nlu = {LuaUnit = {run = function() return 0 end}}\n"
            "require = function() return lu end\n"],
    "jl": ["    return xs .+ 2\nend\nmacro test(ex) nothing end\n",
           "    return xs .+ 2\nend\nBase.:(==)(a::Vector{Int64}, b::Vector{Int64}) = true\n"],
}


def test_every_target_has_cheats():
    assert set(CHEATS) == set(languages.targets())


def test_a_refused_translation_is_counted_in_the_funnel_by_one_reason():
    tampers = collect.TAMPERS  # the reason, as collect writes it
    problem = {**build_problem(ADD_ONE, get("lua")).row, "id": ADD_ONE["id"]}
    bodies = fx.COMPLETIONS["lua"]["add_one"][:1] + CHEATS["lua"]
    results = [{"program": problem["prompt"] + b + "\n" + problem["tests"], "status": OK, "exit_code": 0,
                "stdout": f"OK\n{problem['tests_nonce']}\n"} for b in bodies]  # each printed the nonce
    kept, excluded, counts = collect_function(problem, {"completions": bodies, "results": results}, "lua",
                                              dedup.RougeDedup(1.0), {"model": "m", "revision": None},
                                              len(bodies))
    assert [r["sample"] for r in kept] == [0]
    assert [(r["sample"], r["stage"], r["reason"]) for r in excluded] == [
        (1, "validate", f"{tampers}: error ="), (2, "validate", f"{tampers}: require"),
        (3, "validate", f"{tampers}: arg ="), (4, "validate", f"{tampers}: lu")]
    assert counts["passed"] == 1  # a refused sample is no pass (nor in pass_rate)
    dropped = dropped_reasons({}, excluded)
    assert dropped == {tampers: 4} == {tampers: counts["translations_sampled"] - counts["after_rouge_l"]}


def installed(code):
    lang = get(code)
    if not all(shutil.which(b) for b in lang.binaries):
        pytest.skip(f"{code} runtime not installed")
    return lang


@pytest.mark.slow
@pytest.mark.parametrize("code", sorted(CHEATS))
def test_a_translation_that_redefines_the_test_harness_is_not_kept(code, tmp_path):
    lang = installed(code)
    problem = {**build_problem(ADD_ONE, lang).row, "id": ADD_ONE["id"]}
    bodies = fx.COMPLETIONS[code]["add_one"][:1] + CHEATS[code]
    results = [run_program(lang, problem["prompt"] + b + "\n" + problem["tests"], tmp_path) for b in bodies]
    assert passed(results[0], problem["tests_nonce"]), results[0]
    kept, excluded, counts = collect_function(problem, {"completions": bodies, "results": results}, code,
                                              dedup.RougeDedup(1.0), {"model": "m", "revision": None},
                                              len(bodies))
    assert [r["sample"] for r in kept] == [0], [(r["sample"], bodies[r["sample"]]) for r in kept]
    assert sorted(r["sample"] for r in excluded) == list(range(1, len(bodies)))
    assert counts["passed"] == 1


# What each language refuses statically, after the function's header (prompt), and what it
# keeps: a parameter or local named like a library function (Lua's `string`, `next`), a table
# constructor's key, a call of a name the tests use.
PROMPTS = {"rkt": "#lang racket\n(define (f xs)\n", "r": "f <- function(xs, string) {",
           "ml": "let f (xs : int list) : int list =",
           "lua": "local function f(xs, string, next)\n", "jl": "function f(xs)\n"}
REFUSED = {
    "rkt": ["  xs)\n(define-syntax (module* stx) #'(void))\n",
            "  xs)\n(require (only-in racket/base [quote module*]))\n",
            "  xs)\n(require (prefix-in mod (only-in racket/base [quote ule*])))\n",
            "  xs)\n(require (rename-in racket/base [quote provide]))\n",
            "  xs)\n#reader(lib \"x\") 1\n",
            "  xs)\n(require (only-in racket/base [quote |module|]))\n",  # how the reader may spell it
            "  xs)\n#;x (define-syntax-rule (module a ...) (void))\n",
            # `module` naming a form: first in a list (after a `#;` datum too), or infix
            "  xs)\n(module m racket (display 1))\n", "  xs)\n[module* m #f]\n",
            "  xs)\n(#;x module m racket)\n", "  xs)\n(m . module . racket)\n"],
    "r": ["\n  xs\n}\n`::` <- function(pkg, name) function(...) NULL\n",
          "\n  xs\n}\n\"{\" <- function(...) NULL\n",
          "\n  xs\n}\nassign(\"<-\", function(...) NULL)\n",
          "\n  xs\n}\nall.equal.list <- function(...) TRUE\n",
          "\n  xs\n}\nmakeActiveBinding(\"test_humaneval\", function(v) NULL, globalenv())\n",
          "\n  xs\n}\nunlockBinding(\"stopifnot\", baseenv())\n",
          "\n  assign(\"stopifnot\", function(...) NULL, envir = parent.frame())\n  xs\n}\n",
          "\n  xs\n}\ntrace(\"stopifnot\", quote(return(invisible())), print = FALSE)\n",
          "\n  xs\n}\nregisterS3method(\"all.equal\", \"double\", function(...) TRUE)\n",
          # `=` binding a string-named piece of syntax where it assigns: a statement's start
          "\n  xs\n}\n\"(\" = function(x) 1\n", "\n  xs\n}\nx <- 1; \"{\" = function(...) NULL\n",
          "\n  if (TRUE) \"(\" = function(x) 1\n  xs\n}\n", "\n  (\"(\" = function(x) 1)\n  xs\n}\n",
          "\n  x <- r\"(a)\"; trace(\"f\")\n  xs\n}\n"],
    "ml": ["\n  xs\n;;\n#directory \"+compiler-libs\"\n", "\n  xs\n;; #load \"x.cma\"\n"],
    "lua": ["    return xs\nend\nassert = function() end\n", "    return xs\nend\nfunction error() end\n",
            "    return xs\nend\nlocal require = function() end\n", "    return xs\nend\nstring.format = nil\n",
            "    return xs\nend\nfunction table.insert() end\n", "    return xs\nend\nlocal t = os\nt.exit = nil\n",
            "    lu.assertEquals = function() end\n    return xs\nend\n", "    _G.error = nil\n    return xs\nend\n",
            "    return xs\nend\nrawset(_G, 'error', nil)\n", "    type = 1\n    return xs\nend\n",
            "    return xs\nend\ngetmetatable('').__index.upper = nil\n",
            "    return xs\nend\ndebug.sethook(print, 'l')\n", "    a, io.write = 1, 2\n    return xs\nend\n"],
    "jl": ["    xs\nend\nmacro testset(args...) nothing end\n",
           "    xs\nend\nfunction Base.:(==)(a::Vector{Int64}, b::Vector{Int64})\n    true\nend\n",
           "    xs\nend\nimport Base: ==\n==(a::Vector{Int64}, b::Vector{Int64}) = true\n",
           "    xs\nend\na::Vector{Int64} == b::Vector{Int64} = true\n", "    xs\nend\nmodule Test\nend\n",
           "    xs\nend\nconst Inf = 0.0\n", "    xs\nend\n@eval Base isequal(a, b) = true\n",
           "    xs\nend\n    a::Vector{Int64} == b::Vector{Int64} = true\n",
           "    xs\nend\nBase.:(==)(a::Vector{Int64},\n b::Vector{Int64}) = true\n",
           "    xs\nend\nlet\n global (==)(a, b) = true\nend\n",
           "    xs\nend\nconst Bs = Base\nfunction Bs.:(==)(a, b)\n    true\nend\n",
           "    xs\nend\nfunction var\"@test\"(__source__, __module__, ex)\n    nothing\nend\n",
           "    xs\nend\nvar\"==\"(a, b) = true\n", "    xs\nend\nimport Base.isequal\n",
           "    xs\nend\nimport Base.Iterators: zip\nzip(a, b) = 1\n",  # Base.Iterators.zip is Base.zip
           "    xs\nend\nx = \"$(eval(:(1)))\"\n", "    x = '\"'; eval(1)\n    xs\nend\n"],
}
KEPT = {
    "rkt": ["  (for/list ([x xs]) (add1 x)))\n", "  (define (list2 . a) a)\n  (list2 xs))\n",
            "  (string-length \"module* define-syntax\")) ; provide rename-out\n",
            "  (define (qualify module name) (string-append module \".\" name))\n  (qualify xs \"a\"))\n"],
    "r": ["\n  trace_sum <- sum(xs)\n  paste(\"(\", xs, \")\")\n}\n", "\n  string <- toupper(string)\n  xs\n}\n",
          "\n  switch(xs[1], \"(\" = 1, \")\" = -1)\n}\n", "\n  pairs <- c(\"(\" = 1, \")\" = -1)\n  pairs\n}\n",
          "\n  switch(xs[1],\n    \"(\" = 1,\n    \")\" = -1)\n}\n",
          "\n  # trace( the depth; attach( nothing\n  x <- \"trace(\"\n  y <- r\"(a # trace( \" b)\"\n  xs\n}\n"],
    "ml": ["\n  List.map (fun x -> x + 1) xs\n", "\n  let (=) a b = a == b in xs\n"],
    "lua": ["    string = string:lower()\n    next = 1\n    return xs\nend\n",
            "    local type = 'a'\n    type = 'b'\n    local t = {type = 1, [1] = 2}\n    return xs\nend\n",
            "    local table = {}\n    table[1] = 2\n    return table\nend\n",
            "    for select = 1, 3 do print(select) end\n    return xs\nend\n",
            "    local function helper(print) print = 1 return print end\n    return helper(xs)\nend\n",
            "    if type(xs) == 'table' then table.sort(xs) end\n    return {math.max(1, 2)}\nend\n",
            "    local d = setmetatable({}, {__index = function() return 0 end})\n    return xs\nend\n",
            "    -- _G require\n    local s = \"_G require\"\n    return xs\nend\nlocal helper = 1\n"],
    "jl": ["    return abs(xs[1]) == 1\nend\n", "    Dict{String, Int64}()\nend\n",
           "    y = Base.sort(xs)\n    flag = y == xs\n    return flag\nend\n",
           "    # eval is not needed\n    op = \"eval\"\n    s = \"\"\"\n    include(x) \"\"\"\n    return xs\nend\n",
           "    return check(xs, xs)\nend\ncheck(a, b) = a == b && sort(a; rev=true) == b\n",
           "    return g(xs)\nend\ng(xs; cmp = (a, b) -> a == b) = cmp(xs[1], xs[2]) ? 1 : 0\n",
           "    return collect(partition(xs, 2))\nend\nimport Base.Iterators: partition\n",
           "    c = '\"'\n    return xs' == xs ? c : 'b'\nend\n"],
}


def test_a_racket_parameter_named_module_is_kept():
    # only `module` naming a form, or bound by an import, can reach the sealed tests' submodule
    lang, prompt = get("rkt"), "#lang racket\n(define (qualify module name)\n"
    assert lang.tampers_with_tests(prompt, "  (string-append module \".\" name))\n") is None
    assert lang.tampers_with_tests(prompt, "  name)\n(module m racket (display 1))\n") == "module"


def test_every_target_has_static_cases():
    assert set(REFUSED) == set(KEPT) == set(PROMPTS) == set(languages.targets())


@pytest.mark.parametrize("code", sorted(REFUSED))
def test_what_each_language_refuses_statically(code):
    lang = get(code)
    assert [c for c in REFUSED[code] if not lang.tampers_with_tests(PROMPTS[code], c)] == []
    assert [(c, lang.tampers_with_tests(PROMPTS[code], c)) for c in KEPT[code]
            if lang.tampers_with_tests(PROMPTS[code], c)] == []
    assert [c for c in CHEATS[code] if code in ("lua", "jl") and not lang.tampers_with_tests(
        PROMPTS[code], c)] == []  # no sealing there: every cheat is refused statically


@pytest.mark.parametrize("code", sorted(KEPT))
def test_the_fixtures_right_translations_are_not_refused(code):
    lang = get(code)
    prompt = build_problem(ADD_ONE, lang).row["prompt"]
    for name, completions in fx.COMPLETIONS[code].items():
        for completion in completions:
            assert lang.tampers_with_tests(prompt, completion) is None, (name, completion)
    solutions = sorted((pathlib.Path(__file__).parents[2] / "fixtures" / "solutions" / code).glob("*.ok.*"))
    assert len(solutions) >= 28
    for path in solutions:  # after a header with their parameters' names (Lua's `string`)
        assert lang.tampers_with_tests(PROMPTS[code], path.read_text(encoding="utf-8")) is None, path


def _row(source: str, entrypoint: str, tests: list[str]) -> dict:
    typed = "from typing import Dict, List, Optional\n\n" + source
    return {"content": source, "content_with_types": typed, "entrypoint": entrypoint, "id": 1, "tests": tests,
            "sha1": fx.sha1(source)}


# Right translations (and a wrong one, last) of functions whose tests hold each kind of value the
# sealed tests of Racket, R and OCaml now compare in a scope of their own: dicts (an OCaml
# association list in another order: the sorting of both sides), infinities, strings, lists and
# None (OCaml's options).
VALUES = [
    (_row('def invert(d: Dict[str, int]) -> Dict[int, str]:\n    """Swap keys and values."""\n'
          '    return {v: k for k, v in d.items()}\n', "invert",
          ["assert invert({'a': 1, 'b': 2}) == {1: 'a', 2: 'b'}", "assert invert({}) == {}"]),
     {"rkt": ["  (for/hash ([(k v) (in-hash d)]) (values v k)))\n",
              "  (for/hash ([(k v) (in-hash d)]) (values v (string-append k \"!\"))))\n"],
      "r": ["\n  out <- list()\n  for (k in names(d)) out[[as.character(d[[k]])]] <- k\n  out\n}\n",
            "\n  out <- list()\n  for (k in names(d)) out[[as.character(d[[k]])]] <- toupper(k)\n  out\n}\n"],
      "ml": ["\n  List.rev (List.map (fun (k, v) -> (v, k)) d)\n",
             "\n  List.map (fun (k, v) -> (v, k ^ \"!\")) d\n"]}),
    (_row('def big(x: float) -> float:\n    """Scale to infinity."""\n    return x * 1e999\n', "big",
          ["assert big(1.0) == 1e999", "assert big(-2.0) == -1e999"]),
     {"rkt": ["  (* x +inf.0))\n", "  (* x 1e300))\n"], "r": ["\n  x * Inf\n}\n", "\n  x * 1e300\n}\n"],
      "ml": ["\n  x *. infinity\n", "\n  x *. 1e300\n"]}),
    (_row('def words(s: str) -> List[str]:\n    """Split on spaces."""\n    return s.split(" ")\n', "words",
          ['assert words("a b") == ["a", "b"]', 'assert words("x") == ["x"]']),
     {"rkt": ['  (string-split s " " #:trim? #f))\n', "  (list s))\n"],
      "r": ['\n  strsplit(s, " ")[[1]]\n}\n', "\n  s\n}\n"],
      "ml": ["\n  String.split_on_char ' ' s\n", "\n  [s]\n"]}),
    (_row('def first_neg(xs: List[int]) -> Optional[int]:\n    """The first negative number."""\n'
          '    for x in xs:\n        if x < 0:\n            return x\n    return None\n', "first_neg",
          ["assert first_neg([1, -2, -3]) == -2", "assert first_neg([1]) == None"]),
     {"rkt": ["  (for/first ([x xs] #:when (< x 0)) x))\n", "  (for/last ([x xs] #:when (< x 0)) x))\n"],
      "r": ["\n  for (x in xs) if (x < 0) return(x)\n  NULL\n}\n", "\n  for (x in rev(xs)) if (x < 0) return(x)\n"
            "  NULL\n}\n"],
      "ml": ["\n  List.find_opt (fun x -> x < 0) xs\n", "\n  List.find_opt (fun x -> x < 0) (List.rev xs)\n"]}),
]


@pytest.mark.slow
@pytest.mark.parametrize("code", ["rkt", "r", "ml"])
def test_the_sealed_tests_compare_every_kind_of_value_as_before(code, tmp_path):
    lang = installed(code)
    for row, completions in VALUES:
        problem = build_problem(row, lang).row
        assert problem is not None, row["entrypoint"]
        *right, wrong = completions[code]
        for completion, expected in [(c, True) for c in right] + [(wrong, False)]:
            result = run_program(lang, problem["prompt"] + completion + "\n" + problem["tests"], tmp_path)
            assert passed(result, problem["tests_nonce"]) is expected, (completion, result)
