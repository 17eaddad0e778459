"""A Hub repo that holds no model yet (only `.gitattributes`, as the Hub creates a repo, or an
upload still under way) is named as such, with the commit looked at: by generate's resolver
and by train's base model (which from_pretrained fetches by name), not by the error of whatever
failed to load first (a snapshot folder that does not exist, a tokenizer without files)."""

from __future__ import annotations

import json

import pytest

from multiplt import cli, storage
from multiplt.errors import MultipltError
from multiplt.generation import model_source


def expected(hub, what: str = "model") -> str:
    commit = hub.repos[("model", "ns/empty")].branches["main"]
    return f"{what} ns/empty at commit {commit} has no config.json (no weights yet: still uploading?)"


def test_resolving_an_empty_hub_repo_says_it_holds_no_model(test_hub):
    test_hub.add_model("ns/empty")
    with pytest.raises(MultipltError) as info:
        model_source.resolve_model("ns/empty")
    assert str(info.value) == expected(test_hub)
    with pytest.raises(MultipltError, match=r"^tokenizer ns/empty at commit [0-9a-f]{40} has no tokenizer files"):
        model_source.resolve_model("ns/empty", what="tokenizer")


def test_generate_on_an_empty_hub_repo_is_one_line_exit_2(test_hub, tmp_path, capsys):
    test_hub.add_model("ns/empty")
    bench = str(tmp_path / "bench.jsonl")
    storage.write_jsonl(bench, [{"name": "HumanEval_0_f", "language": "rkt", "prompt": "(define (f)\n",
                                 "tests": "", "stop_tokens": ["\n("]}])
    out = tmp_path / "out"
    assert cli.main(["generate", "--benchmark", bench, "--model", "ns/empty", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"multiplt generate: error: {expected(test_hub)}"]
    assert not out.exists()


def test_train_on_an_empty_hub_repo_names_it_not_the_tokenizer(test_hub, tmp_path, capsys):
    test_hub.add_model("ns/empty")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"content": f"(define (f{i}) {i})\n"}) + "\n" for i in range(8)))
    out = tmp_path / "out"
    code = cli.main(["train", "--dataset", str(data), "--base", "ns/empty", "--lang", "rkt",
                     "--experiment", "x", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"multiplt train: error: {expected(test_hub, 'base model')}" in err.splitlines()
    assert "instantiate" not in err and "Traceback" not in err


def test_a_failure_to_load_a_hub_model_that_has_a_config_keeps_its_own_error(test_hub, tiny_model):
    """The Hub repo holds a model (config.json): whatever failed is the loader's error, as before."""
    from multiplt.training.loop import _loading

    repo = test_hub.add_model("ns/tiny")
    with open(f"{tiny_model}/config.json", "rb") as f:
        head = repo.commit(repo.branches["main"], {**repo.commits[repo.branches["main"]].files,
                                                   "config.json": (f.read(), False)}, "config")
    repo.branches["main"] = head.oid
    with pytest.raises(MultipltError, match="^cannot load the base model 'ns/tiny': broken weights$"):
        with _loading("base model", "ns/tiny"):
            raise OSError("broken weights")
