"""Dataset discovery and funnel chart data on small hand-written stage folders (the layouts of
multiplt corpus, testgen and translate), locally and on S3, and a run's per-problem results."""

from __future__ import annotations

import pytest

from multiplt import storage
from multiplt.errors import MultipltError
from multiplt.results import dataset_runs, datasets, funnel, problems
from tests.support.chain_folders import parquet as _parquet, write_chain


def by_title(found):
    return {d.title: d for d in found}


def check_chain(found, root):
    assert [d.title for d in found] == ["corpus (stdlib)", "tests (testgen)", "translation lua",
                                        "translation racket"]
    got = by_title(found)
    assert all(d.error is None for d in found), [d.error for d in found]

    corpus = got["corpus (stdlib)"]
    assert (corpus.kind, corpus.dag_id, corpus.rows, corpus.model) == ("corpus", "multiplt_corpus", 3, None)
    assert corpus.uri == f"{root}/corpus/stdlib" and corpus.config_uri.endswith("corpus_config.json")
    assert corpus.bytes == storage.listing(f"{root}/corpus/stdlib/functions")[0].size > 0
    assert [(s["name"], s["in"], s["out"], s["dropped"], s["reasons"]) for s in corpus.steps] == [
        ("extract", 6, 6, 0, []), ("returns_value", 6, 4, 2, [("no_return", 2)]),
        ("exact_dedup", 4, 3, 1, [("duplicate", 1)])]

    tests = got["tests (testgen)"]
    assert (tests.rows, tests.model, tests.revision, tests.dag_id) == (3, "tiny/coder", "r1", "multiplt_testgen")
    assert len(tests.files) == 2 and tests.published is None
    assert tests.steps[1]["reasons"] == [("no_asserts", 1)]

    rkt = got["translation racket"]
    assert (rkt.lang, rkt.rows, rkt.model, rkt.revision) == ("rkt", 2, "tiny/coder", "main")
    assert [(s["name"], s["in"], s["out"]) for s in rkt.steps] == [
        ("build", 3, 3), ("validate", 6, 4), ("clean", 4, 4), ("dedup", 4, 2)]
    assert rkt.steps[1]["reasons"] == [("failed: Exception (exit #)", 2)]
    assert sorted(rkt.steps[3]["reasons"]) == [("exact", 1), ("rouge_l # > #", 1)]
    assert rkt.published["repo"] == "me/multiplt-data"
    lua = got["translation lua"]
    assert (lua.lang, lua.rows, lua.model) == ("lua", 1, "other/coder")
    assert lua.steps[2] == {"name": "clean", "in": 2, "out": 1, "dropped": 1,
                            "reasons": [("contains TODO", 1)]}
    assert rkt.key != lua.key and rkt.key.startswith(rkt.uri)


def test_discovery_finds_every_stage_output_locally(tmp_path):
    root = f"file://{tmp_path}/runs"
    write_chain(root)
    check_chain(datasets.discover(root), root)


def test_discovery_on_s3(s3_bucket):
    root = f"{s3_bucket}/runs"
    write_chain(root)
    check_chain(datasets.discover(root), root)


def test_a_broken_dataset_is_listed_with_its_error_and_the_others_still_read(tmp_path):
    root = f"file://{tmp_path}"
    write_chain(root)
    storage.write_text(f"{root}/testgen/funnel.json", "{not json")
    storage.write_json(f"{root}/corpus/stdlib/funnel.json", {"steps": [{"name": "extract", "in": -1, "out": 0}]})
    got = by_title(datasets.discover(root))
    assert "testgen/funnel.json is not valid JSON" in got["tests (testgen)"].error
    assert "step 'extract' `in` is -1, not a row count" in got["corpus (stdlib)"].error
    assert got["translation racket"].error is None and got["translation racket"].rows == 2


def test_excluded_file_without_reason_is_an_error(tmp_path):
    root = f"file://{tmp_path}"
    write_chain(root)
    _parquet(f"{root}/testgen/excluded/shard-00000-of-00002.parquet", [{"sha1": "4"}])
    got = by_title(datasets.discover(root))
    assert "has no `reason` column" in got["tests (testgen)"].error


def test_empty_or_missing_root_lists_nothing(tmp_path):
    assert datasets.discover(f"file://{tmp_path}/nothing") == []


def test_reasons_that_match_no_step_are_listed_as_other():
    steps = funnel.steps_of({"steps": [{"name": "a", "in": 3, "out": 1}]}, "f.json")
    out = funnel.attach_reasons(steps, funnel.reason_counts([[(None, "a"), (None, "mystery 12")]]))
    assert out == [{"name": "a", "in": 3, "out": 1, "dropped": 2, "reasons": [("a", 1)]},
                   {"name": "other", "in": None, "out": None, "dropped": 1, "reasons": [("mystery #", 1)]}]
    with pytest.raises(MultipltError, match="f.json has no `steps` list"):
        funnel.steps_of({"rkt": {}}, "f.json")


def test_per_problem_results_of_a_run_folder(tmp_path):
    run = f"file://{tmp_path}/run"
    ok, bad = {"status": "OK", "exit_code": 0}, {"status": "Exception", "exit_code": 1}
    storage.write_json(f"{run}/HumanEval_10_x.results.json.gz", {"name": "HumanEval_10_x", "results": [ok, ok]})
    storage.write_json(f"{run}/HumanEval_2_y.results.json.gz", {"name": "HumanEval_2_y", "results": [ok, bad]})
    storage.write_json(f"{run}/HumanEval_2_y.json.gz", {"name": "HumanEval_2_y", "completions": ["a", "b"]})
    storage.write_json(f"{run}/HumanEval_3_z.results.json.gz",
                       {"name": "HumanEval_3_z", "results": [{"status": "OK", "exit_code": 1}]})
    rows = problems.per_problem(run)
    assert rows == [
        {"problem": "HumanEval_2_y", "n": 2, "passed": 1, "statuses": {"OK": 1, "Exception": 1}},
        {"problem": "HumanEval_3_z", "n": 1, "passed": 0, "statuses": {"OK, exit 1": 1}},
        {"problem": "HumanEval_10_x", "n": 2, "passed": 2, "statuses": {"OK": 2}}]
    (tmp_path / "empty").mkdir()
    with pytest.raises(MultipltError, match="has no \\*.results.json.gz files"):
        problems.per_problem(f"file://{tmp_path}/empty")


def test_runs_are_matched_to_the_dataset_they_announced(tmp_path):
    root = f"file://{tmp_path}"
    write_chain(root)
    got = by_title(datasets.discover(root))
    events = [
        {"dag_id": "multiplt_translate", "run_id": "t1", "uri": f"{root}/translate/data/racket",
         "extra": {"dataset_uri": f"{root}/translate", "lang": "rkt"}},
        {"dag_id": "multiplt_translate", "run_id": "t2", "uri": f"{root}/translate/data/lua",
         "extra": {"dataset_uri": f"{root}/translate", "lang": "lua"}},
        {"dag_id": "multiplt_translate", "run_id": "t1", "uri": f"{root}/translate/data/racket", "extra": {}},
        {"dag_id": "multiplt_corpus", "run_id": "c1", "uri": f"{root}/corpus", "extra": None},
        {"dag_id": "multiplt_corpus", "run_id": "c2", "uri": f"{root}/elsewhere", "extra": {}},
        {"dag_id": "multiplt_testgen", "run_id": "g1", "uri": "x://tests", "extra": {"out": f"{root}/testgen/"}},
        {"dag_id": "multiplt_evaluate", "run_id": "e1", "uri": f"{root}/testgen", "extra": {}},
    ]
    runs = {title: [r["run_id"] for r in dataset_runs.runs_for(d, events)] for title, d in got.items()}
    assert runs == {"translation racket": ["t1"], "translation lua": ["t2"], "corpus (stdlib)": ["c1"],
                    "tests (testgen)": ["g1"]}


def test_without_a_config_the_model_comes_from_the_provenance_column(tmp_path):
    root = f"file://{tmp_path}"
    write_chain(root)
    storage.delete(f"{root}/translate/config", recursive=True)
    got = by_title(datasets.discover(root))
    assert got["translation racket"].model == "tiny/coder" and got["translation racket"].config_uri is None
    assert got["translation lua"].model is None  # its rows name no model


def test_runs_are_matched_from_the_events_the_corpus_and_testgen_dags_emit(tmp_path):
    """The corpus and testgen DAGs announce under fixed Asset URIs (`<data>/corpus/functions`,
    `<data>/testgen/tests`) with extras naming places inside their folders
    (corpus.functions_announcement, testgen.tests_announcement): those runs are the folders'."""
    root = f"file://{tmp_path}"
    write_chain(root)
    got = by_title(datasets.discover(root))
    events = [
        {"dag_id": "multiplt_corpus", "run_id": "c1", "uri": f"{root}/corpus/functions",
         "extra": {"functions_uri": f"{root}/corpus/stdlib/functions", "source": "stdlib",
                   "funnel_uri": f"{root}/corpus/stdlib/funnel.json", "rows": 3}},
        {"dag_id": "multiplt_corpus", "run_id": "c2", "uri": f"{root}/corpus/functions",
         "extra": {"functions_uri": f"{root}/corpus/other/functions", "source": "other"}},
        {"dag_id": "multiplt_testgen", "run_id": "g1", "uri": f"{root}/testgen/tests",
         "extra": {"tests_uri": f"{root}/testgen/tests", "functions_uri": f"{root}/corpus/stdlib/functions",
                   "model": "tiny/coder", "funnel_uri": f"{root}/testgen/funnel.json"}},
    ]
    for event in events:  # the fixed Asset URIs: neither inside nor above a dataset's folder (the
        # DAGs' testgen folders are `<data>/testgen/<name>`, this layout's is `<root>/testgen`)
        event["uri"] = event["uri"].replace(root, f"{root}/assets")
    runs = {title: [r["run_id"] for r in dataset_runs.runs_for(d, events)] for title, d in got.items()}
    assert runs["corpus (stdlib)"] == ["c1"] and runs["tests (testgen)"] == ["g1"]
