"""`multiplt testgen` that keeps no function: exit 0 (an empty result is a result) with one
WARNING line saying so and why, as `multiplt translate` warns for a language that kept no row."""

from __future__ import annotations

import json

from tests.integration.test_testgen import FIXTURE, functions_parquet, run_testgen


def _warnings(err: str) -> list[str]:
    """The WARNING lines of the log, from their level on (the log lines start with a time)."""
    return [line[line.index("WARNING "):] for line in err.splitlines() if "WARNING " in line]


def test_a_run_that_keeps_no_function_warns_naming_the_reasons(tmp_path, capsys):
    rows = [json.loads(line) for line in (FIXTURE / "functions.jsonl").read_text().splitlines()]
    replay = tmp_path / "no-asserts.jsonl"  # two completions per function, neither an assert
    replay.write_text("".join(json.dumps({"name": r["sha1"], "completion": text}) + "\n"
                              for r in rows for text in ("this is not python (\n", "print(1)\n")))
    out = tmp_path / "out"
    functions = functions_parquet(tmp_path, rows)
    assert run_testgen(functions, out, replay=str(replay)) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"shard": "shard-all", "functions": len(rows), "usable": len(rows),
                                        "kept": 0, "excluded": len(rows)}
    warnings = _warnings(captured.err)
    assert warnings == [  # each completion is the end of an assert line that does not parse
        f"WARNING multiplt.testgen: testgen kept 0 of {len(rows)} functions (no_asserts {len(rows)}; "
        f"assert lines of the completions: unparsable {2 * len(rows)}): {out}/tests holds no row; "
        f"{out}/excluded gives each function's reason"]

    # a rerun over the finished run keeps nothing either, and says so again
    assert run_testgen(functions, out, replay=str(replay)) == 0
    assert _warnings(capsys.readouterr().err) == warnings


def test_a_run_that_keeps_functions_does_not_warn(tmp_path, capsys):
    functions, out = functions_parquet(tmp_path), tmp_path / "out"
    assert run_testgen(functions, out) == 0
    assert json.loads((out / "funnel.json").read_text())["steps"][-1]["out"] > 0
    assert _warnings(capsys.readouterr().err) == []
