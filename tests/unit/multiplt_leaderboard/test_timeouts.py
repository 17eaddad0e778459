"""The leaderboard tells a score lowered by timed-out samples (a loaded machine) from a model that
fails the tests: the board marks a score whose run had samples time out (prominently when more
than half did), the run's page lists its samples by status, the timeout limit(s) and the code
version, and /api/results returns those columns as the store has them. Rows recorded before the
columns (all null) show nothing of them."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

from multiplt_leaderboard import board, page, run_page  # noqa: E402


def row(lang, estimate, statuses=None, timeouts=None, low=None, high=None, code_version=None, k=1,
        run_id=None):
    return {"model": "out/m", "revision": None, "experiment": "x", "lang": lang, "epoch": 1, "k": k,
            "estimate": estimate, "num_problems": 4, "n": 30, "temperature": 0.2, "benchmark": "b",
            "created_at": "2026-01-01", "run_id": run_id or f"{lang}@{k}", "run_uri": f"file:///runs/{lang}",
            "statuses": None if statuses is None else json.dumps(statuses), "timeouts": timeouts,
            "min_timeout_s": low, "max_timeout_s": high, "code_version": code_version}


FEW = row("lua", 0.4, {"OK": 100, "AssertionError": 17, "Timeout": 3}, 3, 10.0, 10.0, "abc1234")
MOST = row("rkt", 0.0, {"Timeout": 118, "OK": 2}, 118, 5.0, 15.0, "abc1234-dirty")
NONE_TIMED_OUT = row("py", 0.5, {"OK": 120}, 0, 10.0, 10.0, "abc1234")
OLDER = row("r", 0.0)  # recorded before the columns: all null


def board_html(rows):
    languages, entries = board.board(rows, 1)
    return page.render_page(languages, entries, [1], 1, "<svg/>", "me", "store",
                            benchmarks=board.benchmarks(rows), benchmark="b")


def cell(html, lang):
    (found,) = re.findall(rf'<td class="[^"]*" data-value="[^"]*"><a href="run\?run_id={lang}%401">.*?</td>', html)
    return found


def test_a_score_whose_samples_timed_out_is_marked_with_the_count_and_the_limit():
    html = board_html([FEW, MOST, NONE_TIMED_OUT, OLDER])
    few = cell(html, "lua")
    assert few.startswith('<td class="score" data-value="0.4000">')
    assert ('<span class="timeouts" title="3 of 120 samples timed out (limit 10 s): a loaded machine '
            'lowers a score this way, not only the model">\u26a0 3 timeouts</span>') in few
    # more than half timed out: the cell and the marker stand out, the limits are a range
    most = cell(html, "rkt")
    assert most.startswith('<td class="score timed-out" data-value="0.0000">')
    assert ('<span class="timeouts most" title="118 of 120 samples timed out (limit 5 s to 15 s): '
            'a loaded machine lowers a score this way, not only the model">\u26a0 118 of 120 timed out'
            '</span>') in most
    assert 'id="timeouts-legend"' in html
    # none timed out, or a row that does not say: the plain score
    assert cell(html, "py") == '<td class="score" data-value="0.5000"><a href="run?run_id=py%401">0.500</a></td>'
    assert cell(html, "r") == '<td class="score" data-value="0.0000"><a href="run?run_id=r%401">0.000</a></td>'


def test_rows_recorded_before_the_columns_show_no_marker():
    html = board_html([OLDER, NONE_TIMED_OUT])
    assert 'class="timeouts' not in html and "score timed-out" not in html and "timeouts-legend" not in html
    # timeouts without statuses (or statuses that are no JSON object): the count, no share
    note = board.timeout_note(dict(OLDER, timeouts=2, statuses="not json"))
    assert note == {"timeouts": 2, "samples": None, "min_timeout_s": None, "max_timeout_s": None,
                    "most": False}
    assert page.timeout_marker(note) == (' <span class="timeouts" title="2 samples timed out: a loaded '
                                         'machine lowers a score this way, not only the model">'
                                         '\u26a0 2 timeouts</span>')


def test_the_run_page_lists_the_statuses_the_limits_and_the_code_version():
    rows = [MOST, dict(MOST, k=10, estimate=0.1, statuses=json.dumps({"Timeout": 100, "OK": 2}), timeouts=100)]
    html = run_page.render_page(rows, [], "me")
    # the statuses differ per k (pass@10 counts the problems with at least 10 samples)
    assert "<tr><th>samples by status (pass@1)</th><td>Timeout: 118, OK: 2</td></tr>" in html
    assert "<tr><th>samples by status (pass@10)</th><td>Timeout: 100, OK: 2</td></tr>" in html
    assert "<tr><th>timed out (pass@1)</th><td>118 of 120 samples</td></tr>" in html
    assert "<tr><th>timeout limit</th><td>5 s to 15 s</td></tr>" in html
    assert "<tr><th>code version</th><td>abc1234-dirty</td></tr>" in html
    assert re.search(r"pass@1</th><td>0.000 over 4 problems <span class=\"timeouts most\" title=\"118 of 120 ", html)
    few = run_page.render_page([FEW], [], "me")
    assert "<tr><th>samples by status</th><td>OK: 100, AssertionError: 17, Timeout: 3</td></tr>" in few
    assert "<tr><th>timed out</th><td>3 of 120 samples</td></tr>" in few
    assert "<tr><th>timeout limit</th><td>10 s</td></tr>" in few


def test_the_run_page_of_an_older_row_shows_none_of_them():
    html = run_page.render_page([OLDER], [], "me")
    assert "pass@1</th><td>0.000 over 4 problems</td>" in html
    for label in ("samples by status", "timed out", "timeout limit", "code version", 'class="timeouts'):
        assert label not in html


def test_the_run_page_escapes_what_the_store_holds():
    hostile = row("lua", 0.1, {"<b>Boom</b>": 2, "Timeout": 1}, 1, None, None, "<script>x</script>")
    html = run_page.render_page([hostile], [], "me")
    assert "<b>Boom</b>" not in html and "&lt;b&gt;Boom&lt;/b&gt;: 2, Timeout: 1" in html
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    unparsed = run_page.render_page([dict(hostile, statuses="<i>not json</i>")], [], "me")
    assert "<i>not json</i>" not in unparsed and "&lt;i&gt;not json&lt;/i&gt;" in unparsed


@pytest.fixture
def signed_in(monkeypatch, tmp_path):
    """The app with a signed-in user and a store recorded from a run folder whose samples timed
    out under a 10 s limit, drawn by code version `abc1234`."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from multiplt import storage
    from multiplt.evaluation.run_folder import scores_csv
    from multiplt.results import record_runs
    from multiplt_leaderboard import app as app_module
    from multiplt_leaderboard.app import app

    async def user(request):
        return type("User", (), {"get_name": lambda self: "alice"})()

    run = f"file://{tmp_path}/runs/humaneval-lua-m-main-0.2"
    storage.write_text(f"{run}/_multiplt_run.yaml",
                       "model: m\nlang: lua\nexperiment: e\nprovenance:\n  code_version: abc1234\n")
    storage.write_text(f"{run}/_scores.csv", scores_csv([{
        "Dataset": "humaneval-lua-m-main-0.2", "Pass@k": 1, "Estimate": 0.25, "NumProblems": 2,
        "MinCompletions": 2, "MaxCompletions": 2}]))
    for name, results in (("HumanEval_0_a", ["OK", "Timeout"]), ("HumanEval_1_b", ["Timeout", "Timeout"])):
        storage.write_json(f"{run}/{name}.results.json.gz", {"name": name, "results": [
            {"status": s, "exit_code": 0 if s == "OK" else None, "timeout": 10} for s in results]})
    store = f"file://{tmp_path}/results.parquet"
    record_runs([run], store)
    monkeypatch.setattr(app_module, "authenticated_user", user)
    monkeypatch.setattr(app_module, "_store_uri", lambda: store)
    root = FastAPI()
    root.mount("/leaderboard", app)
    return TestClient(root, base_url="http://127.0.0.1:8080")


def test_the_pages_and_the_api_show_what_the_store_recorded(signed_in):
    (recorded,) = signed_in.get("/leaderboard/api/results").json()["rows"]
    assert json.loads(recorded["statuses"]) == {"Timeout": 3, "OK": 1}
    assert (recorded["timeouts"], recorded["min_timeout_s"], recorded["max_timeout_s"],
            recorded["code_version"]) == (3, 10.0, 10.0, "abc1234")
    html = signed_in.get("/leaderboard/").text
    (link,) = re.findall(r'<td class="score timed-out" data-value="0.2500"><a href="(run\?run_id=[^"]+)">0.250</a> '
                         r'<span class="timeouts most" title="3 of 4 samples timed out \(limit 10 s\)', html)
    run_html = signed_in.get("/leaderboard/" + link.replace("&amp;", "&")).text
    assert "<tr><th>samples by status</th><td>Timeout: 3, OK: 1</td></tr>" in run_html
    assert "<tr><th>timed out</th><td>3 of 4 samples</td></tr>" in run_html
    assert "<tr><th>timeout limit</th><td>10 s</td></tr>" in run_html
    assert "<tr><th>code version</th><td>abc1234</td></tr>" in run_html


def test_a_store_recorded_before_the_columns_reads_them_as_null(signed_in, monkeypatch, tmp_path):
    import polars as pl

    from multiplt_leaderboard import app as app_module

    old = {"run_id": "a@1", "k": 1, "model": "m", "lang": "lua", "epoch": 1, "estimate": 0.0,
           "created_at": "2026-01-01"}
    pl.DataFrame([old]).write_parquet(tmp_path / "old.parquet")
    monkeypatch.setattr(app_module, "_store_uri", lambda: f"file://{tmp_path / 'old.parquet'}")
    (recorded,) = signed_in.get("/leaderboard/api/results").json()["rows"]
    assert {name: recorded[name] for name in ("statuses", "timeouts", "min_timeout_s", "max_timeout_s",
                                              "code_version")} == dict.fromkeys(
        ("statuses", "timeouts", "min_timeout_s", "max_timeout_s", "code_version"))
    html = signed_in.get("/leaderboard/")
    assert html.status_code == 200 and 'class="timeouts' not in html.text and ">0.000</a></td>" in html.text
