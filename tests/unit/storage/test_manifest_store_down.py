"""A training output's manifest on a store that cannot be reached: `manifest.row` read the
connection error as "no manifest here" (its `except MultipltError` for names that are no storage
URI caught the PlatformError too), so `generate --model s3://bucket/tr --revision TAG` with the
store down said "--revision TAG is not a checkpoint tag ... (a storage URI has no Hub
revisions)", exit 2 (Airflow: no retry), instead of the connection error, exit 3 (retried)."""

from __future__ import annotations

import pytest

from multiplt import cli, storage
from multiplt.errors import PlatformError
from multiplt.storage import manifest


@pytest.fixture
def store_down(monkeypatch):
    """An S3 endpoint where nothing answers (a refused connection), with credentials set."""
    for key, value in {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_MAX_ATTEMPTS": "1",
                       "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def test_a_manifest_on_a_store_that_cannot_be_reached_is_a_platform_error(store_down):
    with pytest.raises(PlatformError, match="cannot reach the S3 endpoint"):
        manifest.row("s3://bucket/tr", "rkt-x-epoch1")
    assert manifest.row("bigcode/starcoderbase-1b", "main") is None  # a Hub name: no manifest


def test_generate_at_a_checkpoint_tag_with_the_store_down_exits_3(store_down, tmp_path, capsys):
    bench = str(tmp_path / "bench.jsonl")
    storage.write_jsonl(bench, [{"name": "HumanEval_0_f", "language": "rkt", "prompt": "(define (f x)\n",
                                 "tests": "", "stop_tokens": ["\n(define"]}])
    out = tmp_path / "out"
    assert cli.main(["generate", "--benchmark", bench, "--model", "s3://bucket/tr",
                     "--revision", "rkt-x-epoch1", "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert "cannot reach the S3 endpoint" in err and "not a checkpoint tag" not in err
    assert not out.exists()
