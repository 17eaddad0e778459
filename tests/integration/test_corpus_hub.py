"""`--source hf://datasets/...`: The Stack-style parquet shards of a dataset on the test Hub,
listed and downloaded by the real huggingface_hub client."""

from __future__ import annotations

import io
import json

import polars as pl

from multiplt import cli

FUNCTIONS = [
    'import math\n\n\ndef hypot2(a: float, b: float) -> float:\n    """Length of the hypotenuse."""\n'
    '    squared = a * a + b * b\n    return math.sqrt(squared)\n',
    'def shout(word: str) -> str:\n    """Upper case with a bang."""\n    loud = word.upper()\n'
    '    return loud + "!"\n',
    "def f(:\n",
]


def _parquet(rows: dict) -> bytes:
    buffer = io.BytesIO()
    pl.DataFrame(rows).write_parquet(buffer)
    return buffer.getvalue()


def test_hub_dataset_folder_is_read_with_provenance(test_hub, tmp_path):
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo("ns/code", repo_type="dataset")
    api.upload_file(path_or_fileobj=_parquet({"content": FUNCTIONS[:2], "max_stars_repo_name": ["o/a", "o/b"]}),
                    path_in_repo="data/train-0.parquet", repo_id="ns/code", repo_type="dataset")
    api.upload_file(path_or_fileobj=_parquet({"content": FUNCTIONS[2:], "max_stars_repo_name": ["o/c"]}),
                    path_in_repo="data/train-1.parquet", repo_id="ns/code", repo_type="dataset")
    api.upload_file(path_or_fileobj=b"# not data\n", path_in_repo="README.md", repo_id="ns/code",
                    repo_type="dataset")
    out = tmp_path / "out"
    assert cli.main(["corpus", "build", "--source", "hf://datasets/ns/code/data", "--out", str(out),
                     "--no-typecheck", "--shard", "0/2"]) == 0
    assert cli.main(["corpus", "build", "--source", "hf://datasets/ns/code/data", "--out", str(out),
                     "--no-typecheck", "--shard", "1/2"]) == 0
    assert cli.main(["corpus", "dedup", "--out", str(out), "--bucket", "0/1"]) == 0
    assert cli.main(["corpus", "merge", "--out", str(out)]) == 0
    kept = pl.read_parquet(out / "functions" / "part-00000.parquet")
    assert kept["id"].to_list() == ["train-0.parquet#0:4:hypot2", "train-0.parquet#1:1:shout"]
    assert kept["max_stars_repo_name"].to_list() == ["o/a", "o/b"]
    assert kept["context"].to_list() == ["import math\n", ""]
    assert kept["source"].unique().to_list() == ["hf://datasets/ns/code/data"]
    excluded = pl.read_parquet(out / "excluded" / "part-00001.parquet")
    assert excluded.select("id", "reason").rows() == [("train-1.parquet#0", "syntax_error")]
    assert any(path.startswith("/datasets/ns/code/resolve/") for _, path in test_hub.requests)
    head = api.dataset_info("ns/code").sha
    assert json.loads((out / "corpus_config.json").read_text())["source_revision"] == head


def test_missing_hub_dataset_is_a_clear_error(test_hub, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["corpus", "build", "--source", "hf://datasets/ns/absent", "--out", str(out)]) == 2
    assert "cannot list the Hub dataset ns/absent" in capsys.readouterr().err
    assert not out.exists()
