"""A command's whole --out is hidden from the programs it executes, not only the folder being
executed: translate and evaluate passed just that folder, so other languages' and shards'
completions and results under --out stayed visible where --out lies in a folder programs see
(testgen hid its whole --out already). The pairs go through executor.private_folders, which
refuses a folder the sandbox cannot hide: planting that refusal for --out shows it is asked."""

from __future__ import annotations

import pytest

from multiplt import cli
from multiplt.execution import view
from tests.fixtures import translate as fx
from tests.unit.execution.helpers import installed


def _refuse(monkeypatch, folder):
    monkeypatch.setattr(view, "unhideable", lambda path: "planted reason" if path == str(folder) else None)


@pytest.mark.skipif(not installed("lua"), reason="lua5.4 not installed")
def test_translate_hides_its_whole_out(tmp_path, monkeypatch, capsys):
    inputs = fx.write(tmp_path / "in")
    out = tmp_path / "out"
    _refuse(monkeypatch, out)
    assert cli.main(["translate", "--tests", inputs["tests"], "--out", str(out), "--backend", "replay",
                     "--replay-source", inputs["replay"], "--n", "7", "--lang", "lua"]) == 2
    assert f"--out {out}: programs must not see the run's completions and results" in capsys.readouterr().err


@pytest.mark.skipif(not installed("lua"), reason="lua5.4 not installed")
def test_evaluate_hides_its_whole_out(tmp_path, monkeypatch, capsys):
    replay = tmp_path / "replay.jsonl"
    replay.write_text('{"name": "HumanEval_0_has_close_elements", "completion": "  return true\\nend\\n"}\n')
    out = tmp_path / "ev"
    _refuse(monkeypatch, out)
    assert cli.main(["evaluate", "--lang", "lua", "--limit", "1", "--n", "1", "--out", str(out),
                     "--backend", "replay", "--replay-source", str(replay)]) == 2
    assert f"--out {out}: programs must not see the run's completions and results" in capsys.readouterr().err
