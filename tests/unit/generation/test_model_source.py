"""Where models come from: local folders, Hub ids with revisions, storage URIs with a cache."""

import json
import re

import pytest

from multiplt import storage
from multiplt.errors import MultipltError
from multiplt.generation import model_source


def test_local_folder_and_revision_errors(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    assert model_source.resolve_model(str(tmp_path / "m")).path == str(tmp_path / "m")
    with pytest.raises(MultipltError, match="revision"):
        model_source.resolve_model(str(tmp_path / "m"), "main")
    with pytest.raises(MultipltError, match="not a model folder"):
        model_source.resolve_model(str(tmp_path / "nope"))


def test_a_local_training_output_at_a_tag_resolves_to_its_checkpoint(tmp_path, monkeypatch):
    """`--model OUT --revision TAG` for an output trained with a local --out (manifest rows with bare
    paths), as an absolute path, a relative one and a file:// URI; an unknown tag names the tags."""
    out = tmp_path / "out"
    ckpt = out / "checkpoints" / "rkt-x-epoch1"
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text("{}")
    storage.write_jsonl(str(out / "manifest.jsonl"), [{"uri": str(ckpt), "tag": "rkt-x-epoch1", "epoch": 1,
                                                       "lang": "rkt", "experiment": "x"}])
    monkeypatch.chdir(tmp_path)
    for model in (str(out), "out", "./out/", f"file://{out}"):
        resolved = model_source.resolve_model(model, "rkt-x-epoch1")
        assert (resolved.path, resolved.checkpoint_uri) == (str(ckpt), str(ckpt)), model
        assert model_source.resolve_model(model, "rkt-x-epoch1", what="tokenizer").path == str(ckpt)
    with pytest.raises(MultipltError, match="has no checkpoint tagged 'rkt-x-epoch9'; its tags: rkt-x-epoch1"):
        model_source.resolve_model(str(out), "rkt-x-epoch9")
    ckpt.rename(tmp_path / "moved")
    with pytest.raises(MultipltError, match=f"manifest names the checkpoint {ckpt}, which is not a folder"):
        model_source.resolve_model(str(out), "rkt-x-epoch1")


def test_a_mistyped_storage_uri_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MultipltError, match=re.escape("model 's3:/bucket/m' reads as a mistyped URI "
                                                      "(did you mean 's3://bucket/m'?)")):
        model_source.resolve_model("s3:/bucket/m")


def test_a_name_that_is_no_folder_and_not_on_the_offline_hub_says_both(monkeypatch):
    """An owner/name that is not a local folder (a mistyped path) and that the Hub cannot give
    (offline here): the error names what was asked for and both places looked in."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    for what in ("model", "tokenizer"):
        with pytest.raises(MultipltError, match=f"{what} 'm/nonexist' is not a local folder or storage URI, "
                                                "and cannot be downloaded from the Hub"):
            model_source.resolve_model("m/nonexist", what=what)


def test_s3_model_downloaded_once_and_refetched_when_changed(s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("MULTIPLT_CACHE_DIR", str(tmp_path / "cache"))
    uri = f"{s3_bucket}/models/m"
    storage.write_text(f"{uri}/config.json", json.dumps({"v": 1}))
    storage.write_bytes(f"{uri}/model.safetensors", b"weights")
    calls = []
    real = storage.download_dir
    monkeypatch.setattr(storage, "download_dir", lambda u, d: (calls.append(u), real(u, d))[1])
    first = model_source.resolve_model(uri)
    again = model_source.resolve_model(uri)
    assert first.path == again.path and len(calls) == 1
    assert open(f"{first.path}/model.safetensors", "rb").read() == b"weights"
    storage.write_text(f"{uri}/config.json", json.dumps({"v": 2}))
    changed = model_source.resolve_model(uri)
    assert changed.path != first.path and len(calls) == 2
    assert json.load(open(f"{changed.path}/config.json")) == {"v": 2}
    with pytest.raises(MultipltError, match="holds no files"):
        model_source.resolve_model(f"{s3_bucket}/models/empty")
    storage.write_text(f"{s3_bucket}/models/tok/tokenizer.json", "{}")
    with pytest.raises(MultipltError, match="holds no model: no config.json"):
        model_source.resolve_model(f"{s3_bucket}/models/tok")
    assert len(calls) == 2  # refused before downloading
    tok = model_source.resolve_model(f"{s3_bucket}/models/tok", what="tokenizer")
    assert open(f"{tok.path}/tokenizer.json").read() == "{}"


def test_generate_on_a_folder_without_a_model_says_so(tmp_path, capsys):
    """A folder with no config.json (here: only a tokenizer file) holds no model: one line that
    says so, exit 2, nothing written; not a tokenizer-conversion message from transformers."""
    from multiplt import cli

    empty = tmp_path / "not-a-model"
    empty.mkdir()
    (empty / "tokenizer.json").write_text("{}")
    bench = str(tmp_path / "bench.jsonl")
    storage.write_jsonl(bench, [{"name": "HumanEval_0_f", "language": "rkt", "prompt": "(define (f)\n",
                                 "tests": "", "stop_tokens": ["\n("]}])
    out = tmp_path / "out"
    code = cli.main(["generate", "--benchmark", bench, "--model", str(empty), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        f"multiplt generate: error: {empty} holds no model: no config.json in {empty}"]
    assert not out.exists()
    # a tokenizer folder needs no config.json
    assert model_source.resolve_model(str(empty), what="tokenizer").path == str(empty)


@pytest.mark.parametrize("failure", [ConnectionError("Connection reset by peer"), TimeoutError("timed out")])
def test_a_hub_that_does_not_answer_is_a_platform_error(monkeypatch, failure):
    """No connection or a timeout while downloading is the platform's (exit 3: the stage runtime
    retries), not the input's; the cause is named in the one line."""
    import huggingface_hub

    from multiplt.errors import PlatformError

    def unreachable(*args, **kwargs):
        raise OSError("cannot find the requested files in the local cache") from failure
    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    with pytest.raises(PlatformError, match="model 'org/m' cannot be downloaded from the Hub now .*: the Hub "
                                            "did not answer \\((ConnectionError: Connection reset by peer|"
                                            "TimeoutError: timed out)\\)"):
        model_source.resolve_model("org/m")


def test_a_hub_5xx_is_a_platform_error_and_a_404_the_inputs(monkeypatch):
    import huggingface_hub
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    from multiplt.errors import PlatformError

    def answering(status):
        def download(*args, **kwargs):
            response = httpx2.Response(status, request=httpx2.Request("GET", "https://hub.test/api/models/org/m"))
            raise HfHubHTTPError(f"{status} error", response=response)
        return download
    monkeypatch.setattr(huggingface_hub, "snapshot_download", answering(503))
    with pytest.raises(PlatformError):
        model_source.resolve_model("org/m")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", answering(403))
    with pytest.raises(MultipltError) as refused:
        model_source.resolve_model("org/m")
    assert not isinstance(refused.value, PlatformError)
