"""`checkpoint_of` resolves a checkpoint with one read of its training output's manifest, by tag
and by checkpoint folder alike, with the same answers as before."""

import pytest

from multiplt import storage
from multiplt.errors import MultipltError
from multiplt.generation import model_source
from multiplt.storage import manifest


@pytest.fixture
def out(tmp_path):
    out = str(tmp_path / "out")
    for epoch in (1, 2):
        tag = f"rkt-x-epoch{epoch}"
        manifest.append(out, {"uri": f"{out}/checkpoints/{tag}", "tag": tag, "epoch": epoch,
                              "lang": "rkt", "experiment": "x"})
    return out


@pytest.fixture
def reads(monkeypatch):
    """The manifest reads and existence checks made, by kind."""
    calls = {"read_jsonl": 0, "exists": 0}
    for name in calls:
        real = getattr(storage, name)

        def counted(uri, *args, _real=real, _name=name, **kwargs):
            if str(uri).endswith(manifest.MANIFEST):
                calls[_name] += 1
            return _real(uri, *args, **kwargs)

        monkeypatch.setattr(storage, name, counted)
    return calls


def test_a_checkpoint_by_tag_is_one_manifest_read(out, reads):
    got = model_source.checkpoint_of(out, "rkt-x-epoch2")
    assert got == model_source.Checkpoint(out, "rkt-x-epoch2", f"{out}/checkpoints/rkt-x-epoch2", 2, "x")
    assert reads == {"read_jsonl": 1, "exists": 1}


def test_a_checkpoint_by_folder_is_one_manifest_read(out, reads):
    folder = f"{out}/checkpoints/rkt-x-epoch1"
    assert model_source.checkpoint_of(folder, None) == model_source.Checkpoint(out, "rkt-x-epoch1", folder, 1, "x")
    assert reads == {"read_jsonl": 1, "exists": 1}


def test_what_is_no_checkpoint_is_still_none_and_an_unknown_tag_still_an_error(out, tmp_path):
    assert model_source.checkpoint_of(f"{out}/checkpoints/rkt-x-epoch7", None) is None  # not listed (yet)
    assert model_source.checkpoint_of(str(tmp_path / "plain"), "main") is None  # no manifest there
    assert model_source.checkpoint_of("bigcode/starcoderbase-1b", "main") is None  # a Hub name
    with pytest.raises(MultipltError, match="has no checkpoint tagged 'rkt-x-epoch9'; its tags: rkt-x-epoch1, "
                                            "rkt-x-epoch2"):
        model_source.checkpoint_of(out, "rkt-x-epoch9")


def test_row_is_the_tagged_row_or_none(out, tmp_path):
    assert manifest.row(out, "rkt-x-epoch1")["uri"] == f"{out}/checkpoints/rkt-x-epoch1"
    assert manifest.row(out, "rkt-x-epoch9", unknown_ok=True) is None
    assert manifest.row(str(tmp_path / "plain"), "rkt-x-epoch1") is None
    with pytest.raises(MultipltError, match="its tags: rkt-x-epoch1, rkt-x-epoch2"):
        manifest.row(out, "rkt-x-epoch9")
