"""Prompt and test-file shapes per language, as MultiPL-E writes them (multipl-e-facts section 1):
the prompt ends inside an open function header, so a completion is a body."""

import pytest

from multiplt import languages
from multiplt.languages.base import Param, TestCase
from multiplt.languages.types import BOOL, FLOAT, List

PARAMS = [Param("numbers", List(FLOAT)), Param("threshold", FLOAT)]
DESC = "Check closeness.\n>>> x"

PROMPTS = {
    "rkt": "#lang racket\n\n;; Check closeness.\n;; >>> x\n(define (close numbers threshold)\n",
    "jl": '"""Check closeness.\n>>> x\n"""\nfunction close(numbers::Vector{Float64}, threshold::Float64)::Bool \n',
    "r": "# Check closeness.\n# >>> x\nclose <- function(numbers, threshold) {",
    "ml": "(**Check closeness.\n * >>> x\n*)\nlet close (numbers : float list) (threshold : float) : bool =",
    "lua": "-- Check closeness.\n-- >>> x\nlocal function close(numbers, threshold)\n",
    "py": 'from typing import List\n\ndef close(numbers: List[float], threshold: float) -> bool:\n'
          '    """Check closeness.\n    >>> x\n    """\n',
}

TESTS = {
    "rkt": "(require rackunit)\n\n(define (test-humaneval) \n\n  (let (( candidate close))\n"
           "    (check-within (candidate (list 1.0 2.0) 0.5) #t 0.001)\n))\n\n(test-humaneval)",
    "jl": "using Test\n\n@testset begin\n\ncandidate = close;\n"
          "\t@test(candidate([1.0, 2.0], 0.5) == true)\nend\n",
    "r": "test_humaneval <- function() {\ncandidate <- close\n"
         "    stopifnot(isTRUE(all.equal(candidate(c(1.0, 2.0), 0.5), TRUE)))\n}\ntest_humaneval()",
    "ml": "let assertions =\n let candidate = close in\n  assert ((candidate [1.0; 2.0] 0.5) = true);\n  ()\n",
    "lua": "lu = require('luaunit')\n\nfunction test_humaneval()\nlocal candidate = close\n"
           "    lu.assertEquals(candidate({1.0, 2.0}, 0.5), true)\nend\n\nos.exit(lu.LuaUnit.run())",
    "py": "def check(candidate):\n    assert candidate([1.0, 2.0], 0.5) == True\n\n"
          "def test_check():\n    check(close)\n\ntest_check()\n",
}


@pytest.mark.parametrize("code", languages.names())
def test_prompt_shape(code):
    assert code in PROMPTS, f"no expected prompt for {code}"
    assert languages.get(code).render_prompt("close", PARAMS, BOOL, DESC) == PROMPTS[code]


@pytest.mark.parametrize("code", languages.names())
def test_test_file_shape(code):
    assert code in TESTS, f"no expected test file for {code}"
    lang = languages.get(code)
    line = lang.render_case("candidate", PARAMS, BOOL, TestCase(([1, 2], 0.5), True))
    assert lang.render_test_file("close", [line]) == TESTS[code]


@pytest.mark.parametrize("code,expected", [
    ("rkt", [">>> (f (list 1) \"a\")", "#t"]), ("ml", [">>> f [1] \"a\"", "true"]),
    ("lua", [">>> f({1}, \"a\")", "true"])])
def test_doctest_shape(code, expected):
    lang = languages.get(code)
    assert lang.render_doctest(lang.render_call("f", ["(list 1)" if code == "rkt" else
                                                      "[1]" if code == "ml" else "{1}", '"a"']),
                               "#t" if code == "rkt" else "true") == expected
