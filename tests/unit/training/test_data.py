"""Loading the text column from storage (file or split files in a folder) and packing it."""

import json
import logging
import re

import polars as pl
import pytest

from multiplt.errors import MultipltError
from multiplt.training.data import load_texts, prepare
from multiplt.training.packing import split_documents


def test_parquet_split_files_in_a_folder(tmp_path):
    (tmp_path / "data").mkdir()
    pl.DataFrame({"content": ["a", "b"]}).write_parquet(tmp_path / "data" / "racket-00000-of-00002.parquet")
    pl.DataFrame({"content": ["c"]}).write_parquet(tmp_path / "data" / "racket-00001-of-00002.parquet")
    pl.DataFrame({"content": ["x"]}).write_parquet(tmp_path / "data" / "lua-00000-of-00001.parquet")
    assert load_texts(str(tmp_path), "racket") == ["a", "b", "c"]
    assert load_texts("file://" + str(tmp_path), "lua") == ["x"]
    with pytest.raises(MultipltError, match="no file for split 'ocaml'"):
        load_texts(str(tmp_path), "ocaml")


def test_jsonl_file_and_missing_column(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"content": t, "x": 1}) + "\n" for t in ["p", "q"]))
    assert load_texts(str(path), "racket") == ["p", "q"]
    with pytest.raises(MultipltError, match="no 'text' field"):
        load_texts(str(path), "racket", column="text")
    with pytest.raises(MultipltError, match="does not exist"):
        load_texts(str(tmp_path / "missing.parquet"), "racket")


class CharTokenizer:
    eos_token_id = 0

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[ord(c) for c in t] for t in texts]}


def test_prepare_packs_and_holds_out():
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("multiplt.training").addHandler(handler)
    texts = ["abcdefg"] * 99 + ["", None]  # 2 unusable documents
    packed = prepare(texts, CharTokenizer(), seq_len=16, eval_fraction=0.05, seed=0)
    assert packed.n_documents == 99 and packed.n_tokens == 99 * 8
    assert packed.eval.shape == (2, 16)  # 5 held-out documents = 40 tokens -> 2 sequences
    assert packed.train.shape[1] == 16 and (packed.train == 0).any()  # EOS separators
    assert packed.train.shape[0] == (94 * 8) // 16  # only the 94 training documents (8 tokens each)
    # distinct documents: no held-out document's tokens are in the training sequences
    docs = [chr(0x100 + i) * 7 for i in range(20)]
    distinct = prepare(docs, CharTokenizer(), seq_len=8, eval_fraction=0.2, seed=0)
    train_idx, eval_idx = split_documents(20, 0.2, seed=0)
    assert len(eval_idx) == 4 and distinct.train.shape == (16, 8) and distinct.eval.shape == (4, 8)
    in_train = set(distinct.train.flatten().tolist())
    assert in_train == {0x100 + i for i in train_idx} | {0}
    assert set(distinct.eval.flatten().tolist()) == {0x100 + i for i in eval_idx} | {0}
    small = prepare(["abc"] * 10, CharTokenizer(), seq_len=16, eval_fraction=0.1, seed=0)
    assert small.eval.shape[0] == 0
    logging.getLogger("multiplt.training").removeHandler(handler)
    assert any("eval loss skipped" in m for m in messages)
    with pytest.raises(MultipltError, match="too small"):
        prepare(["ab"], CharTokenizer(), seq_len=16, eval_fraction=0.0, seed=0)


def test_errors_about_the_data_name_the_dataset(tmp_path):
    """`train --dataset EMPTY.jsonl`: the error names the file (a folder: with its split)."""
    from multiplt.training.data import describe

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    source = describe(str(empty), "racket")
    with pytest.raises(MultipltError, match=re.escape(f"dataset {empty} has no usable documents: it has no rows")):
        prepare(load_texts(str(empty), "racket"), CharTokenizer(), seq_len=16, eval_fraction=0.0, seed=0,
                source=source)
    with pytest.raises(MultipltError, match=re.escape(f"dataset {tmp_path} (split racket) has no usable documents: "
                                                      "none of its 2 rows is a non-empty string")):
        prepare(["", None], CharTokenizer(), seq_len=16, eval_fraction=0.0, seed=0,
                source=describe(str(tmp_path), "racket"))
    with pytest.raises(MultipltError, match=re.escape(f"dataset {empty} is too small")):
        prepare(["ab"], CharTokenizer(), seq_len=16, eval_fraction=0.0, seed=0, source=source)


def test_a_split_with_a_shard_missing_is_refused(tmp_path):
    """translate writes data/<split>-K-of-N.parquet once shard K is collected: a split with a
    shard missing is refused (as publish dataset refuses it), naming the translate run to finish
    when the folder is one; other splits, and complete ones, load as before."""
    data = tmp_path / "data"
    data.mkdir()
    pl.DataFrame({"content": ["a"]}).write_parquet(data / "lua-00000-of-00002.parquet")
    pl.DataFrame({"content": ["r"]}).write_parquet(data / "racket-00000-of-00001.parquet")
    with pytest.raises(MultipltError, match=re.escape(
            f"dataset {tmp_path}: data/ holds 1 of the 2 shards of lua (no data/lua-00001-of-00002.parquet); "
            "train once every shard is there")):
        load_texts(str(tmp_path), "lua")
    (tmp_path / "work" / "lua" / "1-of-2").mkdir(parents=True)  # a translate output: its shard's problems
    (tmp_path / "work" / "lua" / "1-of-2" / "problems.jsonl").write_text("")
    for given in (tmp_path, data):
        with pytest.raises(MultipltError, match=re.escape(
                "its translate run has not finished: run shard(s) 1/2 first (`multiplt translate --out "
                f"{tmp_path} --shard K/N` with the run's other flags)")):
            load_texts(str(given), "lua")
    assert load_texts(str(tmp_path), "racket") == ["r"]
    pl.DataFrame({"content": ["b"]}).write_parquet(data / "lua-00001-of-00002.parquet")
    assert load_texts(str(tmp_path), "lua") == ["a", "b"]


def test_train_refuses_a_translate_output_with_a_shard_missing(tiny_model, tmp_path, capsys):
    """The command: one error line, exit 2, nothing written to --out."""
    from multiplt import cli

    (tmp_path / "tr" / "data").mkdir(parents=True)
    pl.DataFrame({"content": ["(define x 1)"] * 50}).write_parquet(
        tmp_path / "tr" / "data" / "racket-00000-of-00002.parquet")
    out = tmp_path / "out"
    assert cli.main(["train", "--dataset", str(tmp_path / "tr"), "--base", tiny_model, "--lang", "rkt",
                     "--experiment", "x", "--seq-len", "16", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "data/ holds 1 of the 2 shards of racket" in err and err.count("error:") == 1
    assert "Traceback" not in err and not out.exists()
