"""The leaderboard plugin without a running Airflow: table shaping (one benchmark at a time), the
SVG plots (pass@k by epoch per language, experiment and model; a dataset's funnel), the pages'
HTML and escaping, and that anonymous or forged requests never see the pages or their data."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlencode

import pytest

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

from multiplt_leaderboard import board, datasets_page, funnel_chart, page, plot, run_page  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"


def row(lang, epoch, estimate, k=1, model="out/rkt", experiment="multiplt", created="2026-01-01",
        run_id=None):
    return {"model": model, "revision": f"{lang}-{experiment}-epoch{epoch}", "experiment": experiment,
            "lang": lang, "epoch": epoch, "k": k, "estimate": estimate, "num_problems": 4, "n": 2,
            "temperature": 0.2, "benchmark": "b", "created_at": created,
            "run_id": run_id or f"{lang}{epoch}"}


ROWS = [row("rkt", 0, 0.1, model="base"), row("rkt", 1, 0.2), row("rkt", 2, 0.3),
        row("lua", 1, 0.4, model="out/lua"), row("lua", 1, 0.45, model="out/lua", created="2026-02-01", run_id="lua1-again"),
        row("rkt", 1, 0.6, k=10)]


def test_board_has_a_cell_per_language_and_the_latest_recording_wins():
    languages, entries = board.board(ROWS, k=1)
    assert languages == ["lua", "rkt"]
    lua = [e for e in entries if e["model"] == "out/lua"]
    assert len(lua) == 1 and lua[0]["cells"] == {"lua": {"estimate": 0.45, "num_problems": 4, "n": 2,
                                                                 "run_id": "lua1-again", "timeouts": None}}
    assert [(e["model"], e["epoch"]) for e in entries] == [("base", 0), ("out/lua", 1), ("out/rkt", 1),
                                                           ("out/rkt", 2)]
    assert board.k_values(ROWS) == [1, 10]
    _, tens = board.board(ROWS, k=10)
    assert [e["cells"]["rkt"]["estimate"] for e in tens] == [0.6]


def test_epoch_series_per_language_experiment_and_model():
    series = board.epoch_series(ROWS, k=1)
    # the base model (epoch 0 only) starts the line of the tuned model of its language and experiment
    assert series == {"lua (multiplt) · out/lua": [(1, 0.45)],
                      "rkt (multiplt) · out/rkt": [(0, 0.1), (1, 0.2), (2, 0.3)]}


def test_two_models_with_the_same_language_and_experiment_get_a_line_each():
    rows = [row("rkt", 1, 0.2, model="a/tuned"), row("rkt", 1, 0.7, model="b/tuned"),
            row("rkt", 2, 0.8, model="b/tuned")]
    assert board.epoch_series(rows) == {"rkt (multiplt) · a/tuned": [(1, 0.2)],
                                        "rkt (multiplt) · b/tuned": [(1, 0.7), (2, 0.8)]}
    # two bases of one language and experiment: which one a line starts from is unknown, so none
    rows += [row("rkt", 0, 0.1, model="a"), row("rkt", 0, 0.3, model="b")]
    series = board.epoch_series(rows)
    assert series["rkt (multiplt) · a"] == [(0, 0.1)] and series["rkt (multiplt) · b"] == [(0, 0.3)]
    assert series["rkt (multiplt) · b/tuned"] == [(1, 0.7), (2, 0.8)]
    svg = ET.fromstring(plot.render_svg(series))
    assert len(svg.findall(f"{SVG}g")) == 4


def bench(benchmark, estimate, num_problems, created, lang="lua", epoch=1, k=1, model="out/lua"):
    """A row as `multiplt_evaluate` records it: `benchmark` is the language's benchmark file."""
    return dict(row(lang, epoch, estimate, k=k, model=model, created=created,
                    run_id=f"{benchmark}-{lang}{epoch}-k{k}"), num_problems=num_problems,
                benchmark=f"file:///data/benchmarks/{benchmark}-{lang}.jsonl",
                dataset=f"{benchmark}-{lang}-{model.replace('/', '_')}-e{epoch}-0.2")


# one model, language and epoch on the full HumanEval, a 5-problem smoke run of it (recorded
# last) and MBPP; HumanEval has the most rows (pass@1 and pass@10, epoch 2, and R)
BENCHES = [bench("humaneval", 0.12, 164, "2026-01-01"), bench("humaneval", 0.3, 164, "2026-01-01", k=10),
           bench("humaneval", 0.2, 164, "2026-01-01", epoch=2), bench("humaneval", 0.15, 161, "2026-01-01", lang="r"),
           bench("mbpp", 0.31, 397, "2026-01-02"), bench("humaneval_first5", 0.60, 5, "2026-01-03")]


def test_board_and_epoch_series_show_one_benchmark_the_one_with_most_rows_by_default():
    assert {"benchmark", "dataset"} <= set(board.ROW_FIELDS)
    assert [(b["name"], b["rows"], b["num_problems"]) for b in board.benchmarks(BENCHES)] == [
        ("humaneval", 4, 164), ("mbpp", 1, 397), ("humaneval_first5", 1, 5)]
    languages, entries = board.board(BENCHES, k=1)
    assert languages == ["lua", "r"]  # each language's file of one benchmark
    assert [(e["revision"], {lang: c["estimate"] for lang, c in e["cells"].items()}) for e in entries] == [
        ("lua-multiplt-epoch1", {"lua": 0.12}), ("r-multiplt-epoch1", {"r": 0.15}),
        ("lua-multiplt-epoch2", {"lua": 0.2})]
    assert board.epoch_series(BENCHES) == {"lua (multiplt) · out/lua": [(1, 0.12), (2, 0.2)],
                                           "r (multiplt) · out/lua": [(1, 0.15)]}
    for name, estimate in (("humaneval_first5", 0.60), ("mbpp", 0.31)):
        _, entries = board.board(BENCHES, k=1, benchmark=name)
        assert [(e["epoch"], e["cells"]["lua"]["estimate"], e["cells"]["lua"]["num_problems"])
                for e in entries] == [(1, estimate, 5 if name == "humaneval_first5" else 397)]
        assert board.epoch_series(BENCHES, 1, name) == {"lua (multiplt) · out/lua": [(1, estimate)]}
    assert board.board(BENCHES, k=1, benchmark="nosuch") == ([], [])


def test_default_benchmark_ties_go_to_more_problems_then_the_name():
    rows = [bench("a_smoke", 0.6, 5, "2026-01-02"), bench("humaneval", 0.1, 164, "2026-01-01")]
    assert board.default_benchmark(rows) == "humaneval"
    rows = [bench("zeta", 0.6, 164, "2026-01-02"), bench("alpha", 0.1, 164, "2026-01-01")]
    assert board.default_benchmark(rows) == "alpha"
    assert board.default_benchmark([]) is None
    unnamed = [dict(r, benchmark=None) for r in ROWS]  # stores recorded without a benchmark name
    assert board.default_benchmark(unnamed) == "" and board.board(unnamed, 1) == board.board(ROWS, 1, "b")


def test_page_escapes_what_the_store_holds():
    hostile = [dict(row("rkt", 1, 0.5, model="<script>alert(1)</script>", experiment="x"),
                    benchmark="/data/<i>bench</i>-rkt.jsonl")]
    languages, entries = board.board(hostile, 1)
    html = page.render_page(languages, entries, [1], 1, "<svg/>", "<b>user</b>", "store",
                            benchmarks=board.benchmarks(hostile), benchmark="<i>bench</i>")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;user&lt;/b&gt;" in html
    assert "<i>bench</i>" not in html and '<strong id="benchmark">&lt;i&gt;bench&lt;/i&gt;</strong>' in html
    assert '<td class="score" data-value="0.5000"><a href="run?run_id=rkt1">0.500</a></td>' in html
    assert 'href="datasets"' in html  # the navigation to the Datasets page


@pytest.fixture
def client():
    """The app mounted under /leaderboard, as Airflow's API server mounts plugin apps."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from multiplt_leaderboard.app import app

    root = FastAPI()
    root.mount("/leaderboard", app)
    return TestClient(root, base_url="http://127.0.0.1:8080")


def test_anonymous_requests_get_401_or_a_login_redirect(client):
    assert client.get("/leaderboard/api/results").status_code == 401
    assert client.get("/leaderboard/plot.svg").status_code == 401
    assert client.get("/leaderboard/api/datasets").status_code == 401
    page_response = client.get("/leaderboard/?k=1", follow_redirects=False)
    assert page_response.status_code == 307
    assert page_response.headers["location"] == (
        "/auth/login?next=http%3A%2F%2F127.0.0.1%3A8080%2Fleaderboard%2F%3Fk%3D1")
    for path in ("/leaderboard/datasets", "/leaderboard/run?run_id=x%40y"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 307
        assert response.headers["location"] == "/auth/login?" + urlencode(
            {"next": "http://127.0.0.1:8080" + path})


def test_funnel_chart_draws_in_and_out_per_step_with_reasons():
    steps = [{"name": "extract", "in": 10, "out": 10, "dropped": 0, "reasons": []},
             {"name": "filter", "in": 10, "out": 4, "dropped": 6,
              "reasons": [(f"r{i}", 6 - i) for i in range(6)]},
             {"name": "other", "in": None, "out": None, "dropped": 2, "reasons": [("odd", 2)]}]
    svg = ET.fromstring(funnel_chart.render_svg(steps, "f1"))
    groups = svg.findall(f"{SVG}g")
    assert [(g.get("data-name"), g.get("data-in"), g.get("data-out")) for g in groups] == [
        ("extract", "10", "10"), ("filter", "10", "4"), ("other", "None", "None")]
    widths = {r.get("class"): float(r.get("width")) for r in groups[1].findall(f"{SVG}rect")}
    assert widths["out"] == pytest.approx(widths["in"] * 0.4)
    reasons = [t.text for t in groups[1].findall(f"{SVG}text") if t.get("class") == "reason"]
    assert reasons == ["6 × r0", "5 × r1", "4 × r2", "3 × r3", "3 × 2 other reason(s)"]
    assert "10 → 4  (−6)" in "".join(groups[1].itertext())


def test_datasets_page_lists_every_dataset_with_links(tmp_path):
    from multiplt.results import datasets
    from tests.support.chain_folders import write_chain

    root = f"file://{tmp_path}"
    write_chain(root)
    found = datasets.discover(root)
    runs = [[{"dag_id": d.dag_id, "run_id": "manual__2026-01-01T00:00:00+00:00"}] if d.kind == "corpus"
            else [] for d in found]
    html = datasets_page.render_page(found, runs, "<i>me</i>", root)
    assert html.count('<section class="dataset"') == 4
    assert 'href="/dags/multiplt_corpus/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00"' in html
    assert "no run announced this folder" in html and "&lt;i&gt;me&lt;/i&gt;" in html
    assert html.count('<a class="hub" href="http://hub/datasets/me/multiplt-data" target="_blank" '
                      'rel="noopener">me/multiplt-data</a>') == 4  # summary + section, 2 splits
    assert "<code>tiny/coder</code> @ r1" in html and "none (no model made it)" in html
    assert html.count('<svg class="funnel"') == 4
    broken = datasets.discover(root)
    broken[0].error = "funnel.json is <bad>"
    html = datasets_page.render_page(broken, [None] * 4, "me", root, events_error="db down")
    assert "Cannot read this dataset: funnel.json is &lt;bad&gt;" in html
    assert "Airflow runs unavailable: db down" in html and "(runs unavailable)" in html
    assert "No datasets yet" in datasets_page.render_page([], [], "me", root)


def test_run_page_shows_per_problem_results():
    run_rows = [dict(row("rkt", 1, 0.5), run_uri="file:///runs/x", k=k, estimate=e) for k, e in ((1, 0.5), (10, 1.0))]
    problems = [{"problem": "HumanEval_2_y", "n": 2, "passed": 1, "statuses": {"OK": 1, "<Exception>": 1}}]
    html = run_page.render_page(run_rows, problems, "me")
    assert "pass@1</th><td>0.500 over 4 problems" in html and "pass@10</th><td>1.000 over 4 problems" in html
    assert '<td class="score" data-value="0.5000">0.500</td>' in html
    assert "&lt;Exception&gt;: 1" in html and 'id="problems" class="sortable"' in html


@pytest.fixture
def signed_in(client, monkeypatch, tmp_path):
    """The app with a signed-in user (Airflow's token check stubbed), a results store holding one
    scored run folder, and hand-written stage folders under the data root."""
    from multiplt import storage
    from multiplt.evaluation.run_folder import scores_csv
    from multiplt.results import record_runs
    from multiplt_leaderboard import app as app_module
    from tests.support.chain_folders import write_chain

    async def user(request):
        return type("User", (), {"get_name": lambda self: "alice"})()

    run = f"file://{tmp_path}/runs/humaneval-lua-m-main-0.2"
    storage.write_text(f"{run}/_multiplt_run.yaml", "model: m\nlang: lua\nexperiment: e\n")
    storage.write_text(f"{run}/_scores.csv", scores_csv([{
        "Dataset": "humaneval-lua-m-main-0.2", "Pass@k": 1, "Estimate": 0.25, "NumProblems": 2,
        "MinCompletions": 2, "MaxCompletions": 2}]))
    # the results the scores were computed from (`results record` checks them against each other)
    for name, results in (("HumanEval_0_a", ["OK", "AssertionError"]), ("HumanEval_1_b", ["Timeout", "Exception"])):
        storage.write_json(f"{run}/{name}.results.json.gz", {"name": name, "results": [
            {"status": s, "exit_code": 0 if s == "OK" else 1} for s in results]})
    store = f"file://{tmp_path}/results.parquet"
    record_runs([run], store)
    write_chain(f"file://{tmp_path}/runs")
    events = [{"dag_id": "multiplt_testgen", "run_id": "scheduled__1", "uri": f"file://{tmp_path}/runs/testgen/tests",
               "extra": {}, "timestamp": None}]
    monkeypatch.setattr(app_module, "authenticated_user", user)
    monkeypatch.setattr(app_module, "_store_uri", lambda: store)
    monkeypatch.setattr(app_module, "_data_root", lambda: f"file://{tmp_path}/runs")
    monkeypatch.setattr(app_module, "_asset_events", lambda: events)
    return client


def test_a_score_links_to_the_runs_per_problem_page(signed_in):
    import re

    board_html = signed_in.get("/leaderboard/").text
    links = re.findall(r'<a href="(run\?run_id=[^"]+)">0.250</a>', board_html)
    assert len(links) == 1
    page_html = signed_in.get("/leaderboard/" + links[0].replace("&amp;", "&")).text
    assert "Signed in as alice" in page_html
    rows = re.findall(r"<tr><td data-value=\"(HumanEval_\d_\w)\">.*?</tr>", page_html)
    assert rows == ["HumanEval_0_a", "HumanEval_1_b"]
    assert "Exception: 1, Timeout: 1" in page_html
    missing = signed_in.get("/leaderboard/run?run_id=nope")
    assert missing.status_code == 404 and "not in the results store" in missing.text


def test_the_page_shows_one_benchmark_and_links_to_the_others(signed_in, monkeypatch):
    import re

    from multiplt_leaderboard import app as app_module

    html = signed_in.get("/leaderboard/").text  # the store's one run names no benchmark
    assert '<strong id="benchmark">(unnamed)</strong>' in html and ">0.250</a>" in html
    assert ">0.250</a>" in signed_in.get("/leaderboard/?benchmark=&k=1").text

    monkeypatch.setattr(app_module, "_rows", lambda: BENCHES)
    html = signed_in.get("/leaderboard/").text
    assert '<strong id="benchmark">humaneval</strong> (up to 164 problems)' in html
    scores = lambda text: re.findall(r'<a href="run\?run_id=[^"]+">([0-9.]+)</a>', text)  # noqa: E731
    assert scores(html) == ["0.120", "0.150", "0.200"]
    assert '<a href="?benchmark=humaneval_first5&amp;k=1">humaneval_first5</a>' in html
    assert '<a href="?benchmark=humaneval&amp;k=10">pass@10</a>' in html
    assert "<h2>pass@1 by epoch on humaneval</h2>" in html
    smoke = signed_in.get("/leaderboard/?benchmark=humaneval_first5").text
    assert scores(smoke) == ["0.600"] and '<strong id="benchmark">humaneval_first5</strong> (up to 5 problems)' in smoke
    assert "epoch 1: 0.310" in signed_in.get("/leaderboard/plot.svg?benchmark=mbpp").text
    assert "epoch 1: 0.120" in signed_in.get("/leaderboard/plot.svg").text
    data = signed_in.get("/leaderboard/api/results?benchmark=mbpp").json()
    assert [r["estimate"] for r in data["rows"]] == [0.31]
    assert [b["name"] for b in data["benchmarks"]] == ["humaneval", "mbpp", "humaneval_first5"]


def test_datasets_page_and_json_through_the_app(signed_in):
    html = signed_in.get("/leaderboard/datasets").text
    assert html.count('<section class="dataset"') == 4
    assert 'href="/dags/multiplt_testgen/runs/scheduled__1"' in html
    data = signed_in.get("/leaderboard/api/datasets").json()
    by_title = {d["title"]: d for d in data["datasets"]}
    assert by_title["tests (testgen)"]["runs"] == [{"dag_id": "multiplt_testgen", "run_id": "scheduled__1",
                                                   "timestamp": None}]
    assert by_title["translation racket"]["steps"][3] == {
        "name": "dedup", "in": 4, "out": 2, "dropped": 2, "reasons": [["exact", 1], ["rouge_l # > #", 1]]}


def test_a_models_epochs_are_in_numeric_order_whatever_their_revision_tags():
    """Revision tags LANG-EXP-epochN sort as text (epoch10 before epoch2); the table does not."""
    rows = [row("rkt", epoch, 0.1 * epoch, run_id=f"e{epoch}") for epoch in (10, 2, 1)]
    rows += [row("rkt", 0, 0.05, model="base")]
    _, entries = board.board(rows, k=1)
    assert [(e["model"], e["epoch"]) for e in entries] == [("base", 0), ("out/rkt", 1), ("out/rkt", 2),
                                                           ("out/rkt", 10)]
    html = page.render_page(*board.board(rows, k=1), [1], 1, "<svg/>", "me", "store",
                            benchmarks=board.benchmarks(rows), benchmark="b")
    assert html.index('data-value="2">2</td>') < html.index('data-value="10">10</td>')


def test_datasets_page_links_leave_the_leaderboards_frame():
    """The page is shown in a frame of the Airflow UI: a link to a DAG or run opens in the whole
    window (not a UI inside the frame), a Hub link in a tab of its own."""
    import re

    from multiplt.results import datasets

    dataset = datasets.Dataset(uri="file:///d/corpus/x", kind="corpus", dag_id="multiplt_corpus",
                               published={"repo": "me/data", "url": "https://hub/datasets/me/data"})
    html = datasets_page.render_page([dataset], [[{"dag_id": "multiplt_corpus", "run_id": "manual__1"}]],
                                     "me", "file:///d")
    links = re.findall(r"<a [^>]*>", html)
    into_airflow = [a for a in links if 'href="/dags/' in a]
    hub = [a for a in links if "https://hub/" in a]
    assert len(into_airflow) == 2 and all('target="_top"' in a for a in into_airflow)
    assert len(hub) == 2 and all('target="_blank" rel="noopener"' in a for a in hub)
    # the plugin's own pages stay in the frame
    own = [a for a in links if a not in into_airflow + hub]
    assert own and not any("target=" in a for a in own)


def _write_store(path, rows: list[dict]) -> str:
    import polars as pl

    pl.DataFrame(rows).write_parquet(path)
    return f"file://{path}"


MALFORMED = [
    # (column left null in the second row, what the refusal names)
    ("model", "1 row with no model"), ("lang", "1 row with no lang"),
    ("epoch", "1 row with no epoch"), ("estimate", "1 row with no estimate"),
]


@pytest.mark.parametrize("column, says", MALFORMED)
def test_a_store_with_rows_missing_what_the_leaderboard_needs_is_one_line_not_a_traceback(
        signed_in, monkeypatch, tmp_path, column, says):
    from multiplt_leaderboard import app as app_module

    good = {"run_id": "a@1", "k": 1, "model": "m", "lang": "lua", "epoch": 1, "estimate": 0.5,
            "created_at": "2026-01-01"}
    store = _write_store(tmp_path / "bad.parquet", [good, {**good, "run_id": "b@1", column: None}])
    monkeypatch.setattr(app_module, "_store_uri", lambda: store)
    for path in ("/leaderboard/", "/leaderboard/?k=1&benchmark="):
        response = signed_in.get(path)
        assert response.status_code == 500 and response.headers["content-type"].startswith("text/html")
        assert f'<p class="error" id="error">{store} is not a well-formed results store: {says}' in response.text
        assert "Traceback" not in response.text
    for path in ("/leaderboard/api/results", "/leaderboard/plot.svg"):
        response = signed_in.get(path)
        assert response.status_code == 500 and response.headers["content-type"] == "application/json"
        assert says in response.json()["detail"]


def test_an_unreadable_store_is_an_html_page_on_the_pages_and_json_on_the_api(signed_in, monkeypatch, tmp_path):
    from multiplt_leaderboard import app as app_module

    garbage = tmp_path / "<garbage>.parquet"
    garbage.write_bytes(b"not parquet")
    monkeypatch.setattr(app_module, "_store_uri", lambda: f"file://{garbage}")
    response = signed_in.get("/leaderboard/")
    assert response.status_code == 500 and response.headers["content-type"].startswith("text/html")
    assert "is not a readable parquet file" in response.text
    assert "&lt;garbage&gt;.parquet" in response.text and "<garbage>" not in response.text  # escaped
    assert not response.text.lstrip().startswith("{")
    api = signed_in.get("/leaderboard/api/results")
    assert api.status_code == 500 and "is not a readable parquet file" in api.json()["detail"]


def test_a_run_not_recorded_or_whose_folder_is_gone_is_an_html_page(signed_in, tmp_path):
    import shutil

    missing = signed_in.get("/leaderboard/run?run_id=nope")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "run &#x27;nope&#x27; is not in the results store" in missing.text
    shutil.rmtree(tmp_path / "runs" / "humaneval-lua-m-main-0.2")
    run_id = signed_in.get("/leaderboard/api/results").json()["rows"][0]["run_id"]
    gone = signed_in.get("/leaderboard/run", params={"run_id": run_id})
    assert gone.status_code == 404 and gone.headers["content-type"].startswith("text/html")
    assert (f"run folder file://{tmp_path}/runs/humaneval-lua-m-main-0.2 does not exist (moved or "
            "removed since the run was recorded)") in gone.text
    assert "was it executed" not in gone.text


def test_a_signed_in_user_without_access_gets_an_html_page_on_the_pages(client, monkeypatch):
    from fastapi import HTTPException

    from multiplt_leaderboard import app as app_module

    async def forbidden(request):
        raise HTTPException(403, "Forbidden")

    monkeypatch.setattr(app_module, "authenticated_user", forbidden)
    for path in ("/leaderboard/", "/leaderboard/datasets", "/leaderboard/run?run_id=x"):
        response = client.get(path)
        assert response.status_code == 403 and response.headers["content-type"].startswith("text/html")
        assert '<p class="error" id="error">Forbidden</p>' in response.text
    response = client.get("/leaderboard/api/results")
    assert response.status_code == 403 and response.json() == {"detail": "Forbidden"}


def test_a_bad_query_parameter_is_an_html_page_on_the_pages_and_json_on_the_api(signed_in):
    """FastAPI's own 422 (a query parameter that does not parse, or is missing) is the same
    one-line HTML page as the app's other errors on the pages; the data endpoints keep JSON."""
    bad = signed_in.get("/leaderboard/", params={"k": "<abc>"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("text/html")
    assert ('<p class="error" id="error">bad query parameter k=&#x27;&lt;abc&gt;&#x27;: '
            "Input should be a valid integer") in bad.text
    assert "<abc>" not in bad.text and not bad.text.lstrip().startswith("{")
    missing = signed_in.get("/leaderboard/run")
    assert missing.status_code == 422 and missing.headers["content-type"].startswith("text/html")
    assert '<p class="error" id="error">missing query parameter run_id</p>' in missing.text
    api = signed_in.get("/leaderboard/api/results", params={"k": "abc"})
    assert api.status_code == 422 and api.headers["content-type"] == "application/json"
    assert api.json()["detail"][0]["loc"] == ["query", "k"] and api.json()["detail"][0]["input"] == "abc"
