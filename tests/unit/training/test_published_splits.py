"""`multiplt train` on the published dataset nuprl/MultiPL-T: a split that is not one of its five
(the source language's, a language added to the registry, a typo) is refused with one line
when the config is resolved, before the output is touched or anything is loaded (the Hub loader
would fail only after the base model's download)."""

from __future__ import annotations

import pytest

from multiplt import cli, languages
from multiplt.errors import MultipltError
from multiplt.training import config as train_config

# MultiPL-T's splits on the Hub (its dataset card: lua, racket, ocaml, julia, r)
MULTIPLT_T_SPLITS = {"julia", "lua", "ocaml", "r", "racket"}


@pytest.fixture
def perl(monkeypatch):
    """A target language added to the registry, as docs/languages.md adds one: its split
    (`perl`) is in no published dataset."""
    lua = type(languages.get("lua"))
    added = type("PerlLanguage", (lua,), {"code": "pl", "name": "perl"})()
    monkeypatch.setitem(languages.LANGUAGES, "pl", added)
    return added


def train_args(tmp_path, *extra: str) -> list[str]:
    return ["train", "--base", "org/base", "--experiment", "e", "--out", str(tmp_path / "out"),
            *extra]


def test_the_published_splits_are_the_datasets_five():
    assert train_config.PUBLISHED_DATASET == "nuprl/MultiPL-T"
    assert set(train_config.PUBLISHED_SPLITS) == MULTIPLT_T_SPLITS


@pytest.mark.parametrize("lang, split", [("py", "python"), ("pl", "perl")])
def test_a_language_without_a_published_split_is_refused_before_anything_loads(
        tmp_path, monkeypatch, capsys, perl, lang, split):
    from multiplt.training import data, loop

    def loaded(*args, **kwargs):
        raise AssertionError("train loaded something for a split the dataset has not")

    monkeypatch.setattr(loop, "train", loaded)
    monkeypatch.setattr(data, "load_texts", loaded)
    rc = cli.main(train_args(tmp_path, "--dataset", "nuprl/MultiPL-T", "--lang", lang))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not (tmp_path / "out").exists()
    assert err == (f"multiplt train: error: --dataset nuprl/MultiPL-T has no split {split!r} for "
                   f"--lang {lang} (its splits: julia, lua, ocaml, r, racket): give --dataset data "
                   "of your own with that split (e.g. the output of `multiplt translate`), or "
                   "--split one of those")


def test_the_check_is_on_the_split_and_the_published_dataset_only(perl):
    base = {"base": "org/base", "experiment": "e", "out": "file:///o"}
    # a published split given by hand, for any language; any split of another dataset
    assert train_config.resolve(None, {**base, "dataset": "nuprl/MultiPL-T", "lang": "pl",
                                       "split": "racket"}).split == "racket"
    for dataset in ("org/perl-data", "s3://b/translate"):
        assert train_config.resolve(None, {**base, "dataset": dataset, "lang": "pl"}).split == "perl"
    for code in languages.targets():
        if code != "pl":  # the registry's own targets all have a published split today
            train_config.resolve(None, {**base, "dataset": "nuprl/MultiPL-T", "lang": code})
    # Hub names ignore case; a split that is a typo is refused as well
    with pytest.raises(MultipltError, match="--dataset nuprl/multipl-t has no split 'perl'"):
        train_config.resolve(None, {**base, "dataset": "nuprl/multipl-t", "lang": "pl"})
    with pytest.raises(MultipltError, match="no split 'rackett' for --lang rkt"):
        train_config.resolve(None, {**base, "dataset": "nuprl/MultiPL-T", "lang": "rkt",
                                    "split": "rackett"})
    # --print-config resolves the same way
    with pytest.raises(MultipltError, match="no split 'python'"):
        train_config.resolve(None, {"dataset": "nuprl/MultiPL-T", "lang": "py"}, require=False)
