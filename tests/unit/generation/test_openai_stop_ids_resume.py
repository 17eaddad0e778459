"""A run folder of the openai backend with `--tokenizer` records whether the tokenizer's special
ids were sent as stop_token_ids (`stop_token_ids_sent`): completions asked with them end at the
first special token, those asked without run on past it. A folder resumed under the other
setting (written before the ids were sent, or against a server that refused the field, resumed
against one that takes it) would mix both kinds; generate refuses it, naming the difference."""

from __future__ import annotations

import pytest
import yaml

from multiplt import cli, storage
from multiplt.generation import folder
from tests.support.completions_server import CompletionsServer
from tests.unit.generation.test_special_tokens import ID, tokenizer

pytest.importorskip("transformers")

SPECIAL = {t: ID[t] for t in ("<s>", "</s>", "<file_sep>")}
PROMPT = "(define (f x)\n"


@pytest.fixture
def servers():
    """(a vLLM-like server that takes stop_token_ids, one that refuses the field as
    api.openai.com does), both with the same recorded completion."""
    made = [CompletionsServer(models=["m"], special_tokens=SPECIAL).start(),
            CompletionsServer(models=["m"], special_tokens=SPECIAL, openai_fields_only=True).start()]
    for server in made:
        server.record(PROMPT, ["  x)<file_sep>;; another file\n(define (g y) y)"])
    yield made
    for server in made:
        server.stop()


def generate(tmp_path, server, out, n: int) -> int:
    bench = tmp_path / "bench.jsonl"
    if not bench.exists():
        storage.write_jsonl(str(bench), [{"name": "HumanEval_0_f", "language": "rkt",
                                          "prompt": PROMPT, "tests": "", "stop_tokens": ["\n(define"]}])
    return cli.main(["generate", "--benchmark", str(bench), "--backend", "openai",
                     "--api-base", server.url, "--model", "m", "--tokenizer", str(tmp_path / "tok"),
                     "--n", str(n), "--out", str(out)])


def completions(out) -> list[str]:
    return storage.read_json(folder.problem_uri(str(out), "HumanEval_0_f"))["completions"]


def test_a_folder_is_resumed_only_under_the_setting_it_was_written_with(tmp_path, servers, capsys):
    takes, refuses = servers
    tokenizer().save_pretrained(tmp_path / "tok")
    # the same setting resumes: the completions end at <file_sep>
    assert generate(tmp_path, takes, tmp_path / "sent", 1) == 0
    assert generate(tmp_path, takes, tmp_path / "sent", 2) == 0
    assert folder.read_run(str(tmp_path / "sent"))["stop_token_ids_sent"] is True
    assert completions(tmp_path / "sent") == ["  x)", "  x)"]
    # a server that refused the field: completions run on past the special token
    assert generate(tmp_path, refuses, tmp_path / "refused", 1) == 0
    assert folder.read_run(str(tmp_path / "refused"))["stop_token_ids_sent"] is False
    assert completions(tmp_path / "refused") == ["  x);; another file"]
    capsys.readouterr()
    assert generate(tmp_path, takes, tmp_path / "refused", 2) == 2
    err = capsys.readouterr().err
    assert "records a different run (stop_token_ids_sent: folder has False, this run asks for True)" in err
    assert completions(tmp_path / "refused") == ["  x);; another file"]  # nothing added
    assert generate(tmp_path, refuses, tmp_path / "sent", 3) == 2
    assert "stop_token_ids_sent: folder has True, this run asks for False" in capsys.readouterr().err


def test_a_folder_written_before_the_ids_were_sent_is_not_resumed_with_them(tmp_path, servers, capsys):
    """The record of a folder written before this setting was recorded lacks it: the ids were
    not sent then."""
    takes, refuses = servers
    tokenizer().save_pretrained(tmp_path / "tok")
    out = tmp_path / "old"
    assert generate(tmp_path, refuses, out, 1) == 0
    record_uri = storage.join(str(out), folder.RUN_FILE)
    record = yaml.safe_load(storage.read_text(record_uri))
    del record["stop_token_ids_sent"]
    storage.write_text(record_uri, yaml.safe_dump(record, sort_keys=False))
    capsys.readouterr()
    assert generate(tmp_path, takes, out, 2) == 2
    assert "stop_token_ids_sent: folder has False, this run asks for True" in capsys.readouterr().err
    assert completions(out) == ["  x);; another file"]
    assert generate(tmp_path, refuses, out, 2) == 0  # without them, as it was written: resumed
    assert completions(out) == ["  x);; another file"] * 2
