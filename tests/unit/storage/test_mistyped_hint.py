"""A value that reads as a mistyped URI (`s3:/b/x`) is refused with one hint, built in one place
(`storage.uri.local_name_hint`), for a local folder or file that is really called so: `./X` (the
CLI) or an absolute path (what a DAG takes: it refuses relative local paths). Every place that
refuses a mistyped URI gives it: storage URIs, corpus and benchmark sources, training's paths,
the staging of a stage's arguments."""

import re

import pytest

from multiplt.benchmarks.sources import check_name
from multiplt.commands import stage
from multiplt.corpus.sources import resolve as corpus_source
from multiplt.errors import MultipltError
from multiplt.storage import uri
from multiplt.training.config import resolve as train_config

REQUIRED = dict(dataset="d.parquet", base="m", lang="rkt", experiment="multiplt", out="/tmp/o")
TYPED = "s3:/bucket/x"


def test_the_hint_names_both_spellings():
    assert uri.local_name_hint(TYPED) == (f"a local folder of that name: write it as ./{TYPED} or "
                                          "as an absolute path")
    assert uri.local_name_hint(TYPED, "file").startswith("a local file of that name: ")
    # both spellings it suggests are local paths indeed
    assert uri.mistyped(f"./{TYPED}") is None and uri.mistyped(f"/data/{TYPED}") is None


@pytest.mark.parametrize("refuse,what", [
    (uri.parse, "folder"),
    (stage._staged, "folder"),
    (corpus_source, "folder or file"),
    (check_name, "file"),
    (lambda value: train_config("tiny", dict(REQUIRED, out=value)), "folder"),
], ids=["storage", "stage", "corpus", "benchmark", "train"])
def test_every_refusal_of_a_mistyped_uri_gives_the_hint(refuse, what):
    with pytest.raises(MultipltError) as error:
        refuse(TYPED)
    message = str(error.value)
    assert "'s3://bucket/x'" in message and "\n" not in message
    assert re.search(re.escape(uri.local_name_hint(TYPED, what)) + r"\)?$", message), message
