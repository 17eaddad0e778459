"""A bad language is named where it came from: `lang: xx` in a train recipe (no --lang given)
was reported as `--lang xx: unknown language 'xx'`; `benchmark build --lang ',,'` suggested
running `multiplt evaluate --lang ,,` instead of saying the list names no language, as
translate and evaluate say."""

from __future__ import annotations

import pytest

from multiplt import cli, languages

KNOWN = ", ".join(languages.names())


def _train(tmp_path, *extra):
    return cli.main(["train", "--dataset", str(tmp_path / "data"), "--base", "org/base",
                     "--experiment", "multiplt", "--out", str(tmp_path / "out"), *extra])


def test_a_recipe_s_unknown_language_names_the_recipe_and_key(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lang: xx\nepochs: 1\n")
    assert _train(tmp_path, "--recipe", str(recipe)) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"multiplt train: error: recipe {recipe}: lang: unknown language "
                            f"'xx'; known: {KNOWN}\n")
    assert not (tmp_path / "out").exists()
    # --print-config resolves the same way
    assert cli.main(["train", "--recipe", str(recipe), "--print-config"]) == 2
    assert f"recipe {recipe}: lang: unknown language 'xx'" in capsys.readouterr().err


def test_the_flag_is_named_when_it_gives_the_language(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lang: xx\n")
    assert _train(tmp_path, "--recipe", str(recipe), "--lang", "perlx") == 2
    assert capsys.readouterr().err == (
        f"multiplt train: error: --lang perlx: unknown language 'perlx'; known: {KNOWN}\n")
    # a good flag overrides the recipe's bad value
    assert cli.main(["train", "--recipe", str(recipe), "--lang", "racket", "--print-config"]) == 0
    assert "\nlang: rkt\n" in capsys.readouterr().out


@pytest.mark.parametrize("spec", [",,", "", " ", " , "])
def test_benchmark_build_of_an_empty_list_names_no_language(spec, tmp_path, capsys):
    out = tmp_path / "b.jsonl"
    assert cli.main(["benchmark", "build", "--lang", spec, "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"multiplt benchmark: error: --lang {spec!r} names no language\n"
    assert not out.exists()
