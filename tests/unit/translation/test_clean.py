"""Cleaning (issue 15, point 4): cut at the test suite, drop the canonical-Python comment block and
empty comment lines; TODO detection; comment stripping for ROUGE-L."""

import pytest

from multiplt.languages import get
from multiplt.translation.clean import (CleanError, clean_program, cut_at_tests,
                                        drop_empty_comment_lines, has_todo, strip_comments)
from multiplt.translation.problems import build_problem
from tests.fixtures import translate as fx


@pytest.mark.parametrize("code", ["rkt", "jl", "r", "ml", "lua"])
def test_clean_program_keeps_clean_prompt_and_completion_only(code):
    problem = build_problem(fx.ROWS[0], get(code)).row
    completion = fx.COMPLETIONS[code]["add_one"][4]  # has an empty comment line
    program = problem["prompt"] + completion + "\n" + problem["tests"]
    cleaned = clean_program(program, problem["prompt"], problem["clean_prompt"], code)
    right = clean_program(problem["prompt"] + fx.COMPLETIONS[code]["add_one"][0] + "\n" + problem["tests"],
                          problem["prompt"], problem["clean_prompt"], code)
    assert cleaned == right  # the empty comment line is gone
    assert "Canonical Python" not in cleaned and "return [x + 1" not in cleaned
    assert "candidate" not in cleaned  # the test suite is cut
    assert cleaned.startswith(problem["clean_prompt"].split("\n")[0])
    assert cleaned.endswith("\n") and not cleaned.endswith("\n\n")


def test_clean_refuses_a_program_of_another_prompt():
    with pytest.raises(CleanError):
        clean_program("(define (g x) x)", "#lang racket\n", "#lang racket\n", "rkt")


@pytest.mark.parametrize("code, program, expected", [
    ("rkt", "(define (f) 1)\n(require rackunit)\n(check-equal? 1 1)", "(define (f) 1)\n"),
    ("lua", "local function f()\nend\nlu = require('luaunit')", "local function f()\nend"),
    ("ml", "let f () = 1\nlet assertions =\n ()", "let f () = 1"),
    ("jl", "function f()\nend\nusing Test\n", "function f()\nend"),
    ("r", "f <- function() {\n}\ntest_humaneval <- function() {", "f <- function() {\n}"),
])
def test_cut_at_each_languages_test_suite(code, program, expected):
    assert cut_at_tests(program, code) == expected


def test_empty_comment_lines_only():
    text = ";; doc\n;;\n  ;;  \n(define (f x)\n\n  x)"
    assert drop_empty_comment_lines(text, "rkt") == ";; doc\n(define (f x)\n\n  x)"
    assert drop_empty_comment_lines("(**doc\n *\n * more\n*)", "ml") == "(**doc\n * more\n*)"
    assert drop_empty_comment_lines("-- a\n--\nx = 1 -- b", "lua") == "-- a\nx = 1 -- b"


def test_todo_and_comment_stripping():
    assert has_todo(";; TODO: later") and not has_todo(";; todo is fine")
    assert strip_comments(";; doc\n(define (f x) ; why\n  #| block\n |# x)", "rkt") == "(define (f x)\n   x)"
    assert strip_comments('"""doc"""\nfunction f(x) # c\n  x\nend', "jl") == "function f(x)\n  x\nend"
    assert strip_comments("(** doc *)\nlet f x = (* c *) x", "ml") == "let f x =  x"
    assert strip_comments("-- c\nlocal x = 1 --[[ b ]]", "lua") == "local x = 1"
    assert strip_comments("# c\nf <- 1 # d", "r") == "f <- 1"
