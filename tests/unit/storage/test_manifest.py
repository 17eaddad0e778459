"""The manifest of a training output and `resolve(model, revision)` for generation."""

import pytest

from multiplt.errors import MultipltError
from multiplt.storage import manifest


def row(out, epoch):
    tag = f"rkt-multiplt-epoch{epoch}"
    return {"uri": f"{out}/checkpoints/{tag}", "epoch": epoch, "step": 10 * epoch, "tag": tag,
            "eval_loss": 1.0 / epoch, "lang": "rkt", "experiment": "multiplt", "base": "b", "tokenizer": "b"}


def test_append_keeps_one_row_per_tag_in_epoch_order(tmp_path):
    out = str(tmp_path / "run")
    assert manifest.read(out) == []
    manifest.append(out, row(out, 2))
    manifest.append(out, row(out, 1))
    manifest.append(out, dict(row(out, 2), eval_loss=0.25))
    rows = manifest.read(out)
    assert [r["epoch"] for r in rows] == [1, 2] and rows[1]["eval_loss"] == 0.25


def test_resolve(tmp_path):
    out = str(tmp_path / "run")
    manifest.append(out, row(out, 1))
    assert manifest.resolve(out, "rkt-multiplt-epoch1") == f"{out}/checkpoints/rkt-multiplt-epoch1"
    assert manifest.resolve("file://" + out, "rkt-multiplt-epoch1").endswith("rkt-multiplt-epoch1")
    assert manifest.resolve(out, None) is None
    assert manifest.resolve("bigcode/starcoderbase-1b", "main") is None  # a Hub name
    assert manifest.resolve(str(tmp_path), "rkt-multiplt-epoch1") is None  # no manifest there
    with pytest.raises(MultipltError, match="rkt-multiplt-epoch1"):
        manifest.resolve(out, "rkt-multiplt-epoch9")



@pytest.mark.parametrize("change", [{"uri": None}, {"tag": 5}, {"epoch": "1"}, {"epoch": -1}, {"epoch": True},
                                    {"lang": ""}, {"experiment": None}])
def test_a_malformed_row_is_one_clear_error(tmp_path, change):
    out = str(tmp_path / "run")
    manifest.append(out, row(out, 1))
    bad = {k: v for k, v in {**row(out, 2), **change}.items() if v is not None}
    with open(manifest.manifest_uri(out), "a") as f:
        f.write(__import__("json").dumps(bad) + "\n")
    with pytest.raises(MultipltError, match=f"manifest.jsonl record 2: malformed checkpoint record \\({next(iter(change))}"):
        manifest.resolve(out, "rkt-multiplt-epoch1")
