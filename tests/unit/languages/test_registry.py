"""The registry holds exactly the six languages, each with its code, split name and extension."""

import pytest

from multiplt import languages
from multiplt.errors import MultipltError
from multiplt.languages.base import Language


def test_registry_is_exactly_these_six():
    assert set(languages.names()) == {"py", "rkt", "jl", "r", "ml", "lua"}
    assert len(languages.LANGUAGES) == 6


@pytest.mark.parametrize("code,split,ext", [
    ("py", "python", "py"), ("rkt", "racket", "rkt"), ("jl", "julia", "jl"), ("r", "r", "r"),
    ("ml", "ocaml", "ml"), ("lua", "lua", "lua")])
def test_codes_splits_and_extensions(code, split, ext):
    lang = languages.get(code)
    assert isinstance(lang, Language)
    assert (lang.code, lang.split, lang.file_ext) == (code, split, ext)
    assert languages.get(split) is lang  # the published split name works as an alias


def test_unknown_language_is_a_clear_error():
    with pytest.raises(MultipltError, match="unknown language 'cobol'"):
        languages.get("cobol")


@pytest.mark.parametrize("code,tokens", [
    ("rkt", ("\n(define ", "\n#|", "\n;", "\n(")),
    ("jl", ("\nfunction", "\nmacro", "\n\n")),
    ("r", ("\n#", "\n```")),
    ("ml", ("\n\n", "\n(*", "\ntype", "\nlet")),
    ("lua", ("\nlocal", "\nfunction", "\n--", "\n\n")),
    ("py", ("\ndef", "\n#", "\nif", "\nclass"))])
def test_stop_tokens_follow_multipl_e(code, tokens):
    assert tuple(languages.get(code).stop_tokens) == tokens


@pytest.mark.parametrize("code,expected", [
    ("rkt", ["list", "list", "list", "hash", "#f", "#t", "#f"]),
    ("jl", ["vector", "vector", "tuple", "dictionary", "nothing", "true", "false"]),
    ("r", ["vector", "list", "list", "named list", "NULL", "TRUE", "FALSE"]),
    ("ml", ["list", "list", "tuple", "association list", "None", "true", "false"]),
    ("lua", ["table", "table", "table", "table", "nil", "true", "false"])])
def test_terms_csv_vocabulary(code, expected):
    terms = languages.get(code).terms
    keys = ["array", "list", "tuple", "dictionary", "None", "True", "False"]
    assert [terms[k] for k in keys] == expected


def test_codes_of_a_comma_separated_list():
    """One parser of `--lang`-style lists: names become codes, repeats go, order stays."""
    from multiplt.languages import codes

    assert codes(" racket,lua ,rkt,,r", "--lang") == ["rkt", "lua", "r"]
    with pytest.raises(MultipltError, match="^--lang ' , ' names no language$"):
        codes(" , ", "--lang")
    with pytest.raises(MultipltError, match="^--languages lua,cobol: unknown language 'cobol'; known: "):
        codes("lua,cobol", "--languages")


@pytest.mark.parametrize("code", languages.names())
def test_comment_attributes_agree(code):
    """A comment written as `comment` says (as bench/execute_throughput.py writes one) is one
    that `comment_patterns` strip, and an empty one is an `empty_comment` line."""
    from multiplt.translation.clean import drop_empty_comment_lines, strip_comments

    start, end = languages.get(code).comment
    assert strip_comments(f"x\n{start} copy 1{' ' + end if end else ''}\n", code) == "x"
    assert drop_empty_comment_lines(f"x\n  {start} {end}".rstrip(), code) == "x"
