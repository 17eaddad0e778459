"""The generate driver's rerun contract, driven by the replay backend (no model needed)."""

import re

import pytest
import yaml

from multiplt import storage
from multiplt.errors import MultipltError
from multiplt.generation import folder
from multiplt.generation.driver import generate

from tests.unit.generation.conftest import STOPS


def run(bench, out, **kw):
    uri, replay = bench
    opts = dict(backend="replay", replay_source=replay, model="replayed", n=2, batch_size=3)
    opts.update(kw)
    return generate(uri, out, **opts)


def test_writes_multipl_e_files_and_run_record(bench, tmp_path):
    out = str(tmp_path / "run")
    summary = run(bench, out, experiment="multiplt", epoch=0)
    assert summary["generated"] == 6
    rec = storage.read_json(folder.problem_uri(out, "HumanEval_1_f"))
    assert set(rec) == {"name", "language", "prompt", "tests", "completions", "stop_tokens",
                        "temperature", "top_p", "max_tokens"}
    assert rec["completions"] == ["  (+ x 0))", "  (+ x 1))"]
    assert rec["stop_tokens"] == STOPS and rec["max_tokens"] == 512
    run_record = folder.read_run(out)
    assert run_record["experiment"] == "multiplt" and run_record["epoch"] == 0
    assert run_record["benchmark_sha256"] and run_record["n"] == 2
    assert not [u for u in storage.ls(out) if u.endswith(".yaml.json")]


def test_rerun_writes_nothing_and_more_samples_extend(bench, tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    run(bench, out)
    writes = []
    real = storage.write_bytes
    monkeypatch.setattr(storage, "write_bytes", lambda uri, data: (writes.append(uri), real(uri, data)))
    assert run(bench, out)["generated"] == 0
    assert writes == []
    assert run(bench, out, n=3)["generated"] == 3
    rec = storage.read_json(folder.problem_uri(out, "HumanEval_0_f"))
    assert rec["completions"] == ["  (+ x 0))", "  (+ x 1))", "  (+ x 2))"]


@pytest.mark.parametrize("change,field", [({"temperature": 0.8}, "temperature"),
                                          ({"top_p": 0.5}, "top_p"),
                                          ({"max_new_tokens": 64}, "max_new_tokens"),
                                          ({"seed": 3}, "seed")])
def test_changed_settings_are_refused_naming_the_difference(bench, tmp_path, change, field):
    out = str(tmp_path / "run")
    run(bench, out)
    with pytest.raises(MultipltError, match=field):
        run(bench, out, **change)


def test_changed_stop_tokens_in_problem_file_are_refused(bench, tmp_path):
    out = str(tmp_path / "run")
    run(bench, out, problems="HumanEval_0_f")
    rec = storage.read_json(folder.problem_uri(out, "HumanEval_0_f"))
    rec["stop_tokens"] = ["\n"]
    storage.write_json(folder.problem_uri(out, "HumanEval_0_f"), rec)
    with pytest.raises(MultipltError, match="stop_tokens"):
        run(bench, out)


@pytest.mark.parametrize("n", [2, 3])  # nothing to generate, or one more sample per problem
@pytest.mark.parametrize("change,fields", [
    ({"tests": "(module+ test (check-equal? 1 2))\n"}, "tests"),
    ({"prompt": "#lang racket\n(define (g x)\n"}, "prompt"),
    ({"prompt": "#lang racket\n(define (g x)\n", "tests": "(module+ test 1)\n"}, "prompt and tests"),
])
def test_a_changed_benchmark_problem_is_refused_and_nothing_is_written(bench, tmp_path, n, change, fields):
    uri, replay = bench
    rows = storage.read_jsonl(uri)
    out = tmp_path / "run"
    run(bench, str(out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    rows[1].update(change)
    storage.write_jsonl(uri, rows)
    with pytest.raises(MultipltError, match=r"records a different run \(benchmark_sha256: .*another --out"):
        run((uri, replay), str(out), n=n)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # a record without the benchmark's sha256 (written by hand, or by another tool): each
    # selected problem's file is still compared with the benchmark's problem
    record = yaml.safe_load((out / "_multiplt_run.yaml").read_text())
    del record["benchmark_sha256"]
    record.pop("model_identity", None)  # a hand-made record has neither
    (out / "_multiplt_run.yaml").write_text(yaml.safe_dump(record))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(MultipltError, match=f"HumanEval_1_f.json.gz has another {fields} than "
                                            f"problem 'HumanEval_1_f' of .*another --out"):
        run((uri, replay), str(out), n=n)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_benchmark_file_of_another_language_is_refused_and_nothing_is_written(bench, tmp_path):
    """A file holds one language (load_benchmark), so a problem's language changes only with the
    whole file's: the record's lang refuses it, and without lang nor sha256 (a hand-made record)
    the first problem file does."""
    uri, replay = bench
    out = tmp_path / "run"
    run(bench, str(out))
    storage.write_jsonl(uri, [{**row, "language": "lua"} for row in storage.read_jsonl(uri)])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(MultipltError, match=r"lang: folder has 'rkt', this run asks for 'lua'"):
        run(bench, str(out))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    record = yaml.safe_load((out / "_multiplt_run.yaml").read_text())
    del record["benchmark_sha256"], record["lang"]
    (out / "_multiplt_run.yaml").write_text(yaml.safe_dump(record))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(MultipltError, match="HumanEval_0_f.json.gz has another language than problem"):
        run(bench, str(out))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_bad_inputs(bench, tmp_path):
    out = str(tmp_path / "run")
    with pytest.raises(MultipltError, match="HumanEval_9_x"):
        run(bench, out, problems="HumanEval_9_x")
    with pytest.raises(MultipltError, match="does not exist"):
        generate(str(tmp_path / "missing.jsonl"), out, backend="replay", replay_source="x")
    with pytest.raises(MultipltError, match="too few completions"):
        run(bench, out, n=5)
    with pytest.raises(MultipltError, match="--epoch must be >= 0"):
        run(bench, out, epoch=-3)
    with pytest.raises(MultipltError, match="bad sampling settings: temperature nan"):
        run(bench, out, temperature=float("nan"))
    assert storage.ls(out) == []  # a failed run leaves nothing behind
    with pytest.raises(MultipltError, match="unknown generation backend"):
        run(bench, str(tmp_path / "run2"), backend="nope")


@pytest.mark.parametrize("problems", [",", "", ",,"])
def test_a_problems_list_that_names_no_problem_is_refused(bench, tmp_path, problems):
    """`--problems ,` selected nothing and "generated 0 samples for 0 problems" (exit 0)."""
    out = tmp_path / "run"
    with pytest.raises(MultipltError, match=re.escape(f"--problems {problems!r} names no problem; give "
                                                      "comma-separated problem names, or leave")):
        run(bench, str(out), problems=problems)
    assert not out.exists()


@pytest.mark.parametrize("field, value, message", [
    ("name", "../../escape", "name '../../escape' is not a plain file name"),
    ("name", ".hidden", "is not a plain file name"),
    ("name", ["n"], "name \\['n'\\] is empty or not a string"),
    ("name", "HumanEval_0_f", "problem 'HumanEval_0_f' appears twice"),
    ("language", "", "language is empty"),
    ("language", "lua", "language 'lua' is not record 1's 'rkt'; a benchmark file holds one language"),
    ("language", "cobol", "language 'cobol' is not record 1's 'rkt'"),
    ("prompt", 5, "field\\(s\\) prompt must be strings"),
    ("stop_tokens", "\ndef", "stop_tokens must be a list of non-empty strings"),
    ("stop_tokens", 5, "stop_tokens must be a list"),
])
def test_a_malformed_benchmark_record_is_refused_before_anything_is_written(bench, tmp_path, field, value,
                                                                            message):
    """A record that would write outside the folder (its name is the file name), collide, or
    that the next steps cannot use: one error naming the record, and the folder stays empty."""
    uri, replay = bench
    rows = storage.read_jsonl(uri)
    rows[1][field] = value
    bad = str(tmp_path / "bad.jsonl")
    storage.write_jsonl(bad, rows)
    storage.write_jsonl(replay, [{"name": str(r["name"]), "completion": "x"} for r in rows for _ in range(2)])
    out = tmp_path / "sub" / "run"
    with pytest.raises(MultipltError, match=f"bad.jsonl record 2: .*{message}"):
        generate(bad, str(out), backend="replay", replay_source=replay, model="replayed", n=2)
    assert not out.exists() and not (tmp_path / "escape.json.gz").exists()


@pytest.mark.parametrize("row, message", [
    ({"name": ["x"], "completion": "a"}, "name must be a non-empty string"),
    ({"name": "x", "completions": 5}, "completions must be strings"),
    ({"name": "x", "completion": 5}, "completions must be strings"),
    (["x"], "is not a JSON object"),
])
def test_a_malformed_replay_row_is_one_clear_error(bench, tmp_path, row, message):
    uri, replay = bench
    storage.write_jsonl(replay, storage.read_jsonl(replay) + [row])
    with pytest.raises(MultipltError, match=f"replay.jsonl (record|line) 13:? {message}"):
        run(bench, str(tmp_path / "run"))


def test_the_folder_refuses_a_problem_name_that_leaves_it(tmp_path):
    with pytest.raises(MultipltError, match="not a plain file name"):
        folder.problem_uri(str(tmp_path), "../x")


def test_replay_from_a_completion_folder(bench, tmp_path):
    first = str(tmp_path / "first")
    run(bench, first)
    second = str(tmp_path / "second")
    run(bench, second, replay_source=first)
    for name in ("HumanEval_0_f", "HumanEval_2_f"):
        assert storage.read_json(folder.problem_uri(second, name))["completions"] == \
            storage.read_json(folder.problem_uri(first, name))["completions"]


def test_limit_selects_first_problems(bench, tmp_path):
    out = str(tmp_path / "run")
    assert run(bench, out, limit=1)["problems"] == 1
    assert [storage.basename(u) for u in storage.ls(out) if u.endswith(".json.gz")] == ["HumanEval_0_f.json.gz"]


def test_vllm_missing_is_a_clear_error(bench, tmp_path):
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed")
    except ImportError:
        pass
    with pytest.raises(MultipltError, match="vllm"):
        run(bench, str(tmp_path / "run"), backend="vllm", model="x")


@pytest.mark.parametrize("text,problem", [
    (": [", "is not valid YAML"), ("[1]\n", "is not a run record"),
    ("n: abc\n", "n must be a positive whole number, got 'abc'; mend or remove it"),
    ("complete: maybe\n", "complete must be true or false, got 'maybe'; mend or remove it"),
    ("problems: HumanEval_0_f\n", "problems must be a list of problem names, got 'HumanEval_0_f'; mend"),
    ("selection: all\n", "selection 'all' is not the markers of a part of a benchmark .*; mend"),
])
def test_a_corrupt_run_record_is_an_error_and_nothing_is_written(bench, tmp_path, text, problem):
    out = tmp_path / "run"
    out.mkdir()
    (out / "_multiplt_run.yaml").write_text(text)
    with pytest.raises(MultipltError, match=problem):
        run(bench, str(out))
    assert sorted(p.name for p in out.iterdir()) == ["_multiplt_run.yaml"]


def test_the_run_record_says_whether_the_last_generate_finished(bench, tmp_path, monkeypatch):
    """`complete: false` goes with a call's first samples and `true` once it has them all, so
    score refuses a folder whose last generate was cut short. The record's n is the most any run
    asked for, and `complete: true` needs every problem to hold that many: a later call with
    nothing to do, a narrower one (--limit) or one with a smaller --n than the cut one, leaves
    the record false; the cut run's --n finishes it."""
    from multiplt.evaluation import passk

    out = str(tmp_path / "run")
    run(bench, out)
    assert folder.read_run(out)["complete"] is True
    real, written = folder.write_problem, []

    def cut_short(o, record):  # the second problem's write is interrupted
        if written:
            raise KeyboardInterrupt
        written.append(record["name"])
        real(o, record)

    monkeypatch.setattr(folder, "write_problem", cut_short)
    with pytest.raises(KeyboardInterrupt):
        run(bench, out, n=4)
    monkeypatch.setattr(folder, "write_problem", real)
    assert folder.read_run(out)["complete"] is False and folder.read_run(out)["n"] == 4
    with pytest.raises(MultipltError, match=r"not fully generated: the last `multiplt generate` into "
                                            r"it did not finish .*e\.g\. HumanEval_1_f \(2 of 4\)"):
        passk.read_counts(out, allow_partial=False)
    assert run(bench, out, limit=1)["generated"] == 0  # problem 0 only: the others stay short
    assert folder.read_run(out)["complete"] is False
    assert run(bench, out, n=2)["generated"] == 0  # every problem has 2, not the record's 4
    assert folder.read_run(out)["complete"] is False and folder.read_run(out)["n"] == 4
    assert run(bench, out, n=4)["generated"] == 4  # problems 1 and 2: 2 more each
    assert folder.read_run(out)["complete"] is True
    with pytest.raises(MultipltError, match="not fully executed"):  # generated; execute is next
        passk.read_counts(out, allow_partial=False)


def test_the_run_record_lists_every_problem_any_generate_selected(bench, tmp_path):
    """score names a selected problem whose file is gone, so the record holds the union of the
    selections (--limit, --problems, the whole benchmark) in the order first selected, as a
    YAML list after the other fields."""
    from multiplt.evaluation import passk

    out = str(tmp_path / "run")
    run(bench, out, limit=1)
    assert folder.read_run(out)["problems"] == ["HumanEval_0_f"]
    run(bench, out, problems="HumanEval_2_f")
    assert folder.read_run(out)["problems"] == ["HumanEval_0_f", "HumanEval_2_f"]
    run(bench, out, n=3)
    assert folder.read_run(out)["problems"] == ["HumanEval_0_f", "HumanEval_2_f", "HumanEval_1_f"]
    text = storage.read_text(storage.join(out, "_multiplt_run.yaml"))
    assert text.endswith("complete: true\nproblems:\n- HumanEval_0_f\n- HumanEval_2_f\n- HumanEval_1_f\n")
    # a selection the record lists already changes nothing (a rerun writes nothing)
    assert folder.merge_run(out, {**folder.read_run(out), "problems": ["HumanEval_1_f"]}) is None
    run(bench, out, limit=1, n=4)  # a narrower run keeps the others' names
    assert len(folder.read_run(out)["problems"]) == 3
    assert folder.read_run(out)["complete"] is False  # the others hold 3 of the record's n, 4
    run(bench, out, n=4)
    assert folder.read_run(out)["complete"] is True
    storage.delete(folder.problem_uri(out, "HumanEval_1_f"))  # e.g. lost by a stage-out
    with pytest.raises(MultipltError, match=r"1 problem\(s\) selected by `multiplt generate` .* "
                                            r"no completions file, e\.g\. HumanEval_1_f: rerun"):
        passk.read_counts(out, allow_partial=False)


def test_a_record_from_before_the_list_starts_it_with_the_problem_files(bench, tmp_path):
    """A record without `problems` (an older generate's) gains the list on the next run that
    writes samples: the problem files already there, each an earlier run's, then the run's own."""
    out = str(tmp_path / "run")
    run(bench, out, problems="HumanEval_2_f,HumanEval_1_f")
    record = folder.read_run(out)
    del record["problems"]
    storage.write_text(storage.join(out, "_multiplt_run.yaml"), yaml.safe_dump(record))
    assert run(bench, out)["generated"] == 2  # problem 0 only
    assert folder.read_run(out)["problems"] == ["HumanEval_1_f", "HumanEval_2_f", "HumanEval_0_f"]


def test_a_generate_writing_the_folder_meanwhile_loses_no_names(bench, tmp_path, monkeypatch):
    """The record is written minutes after it was read (the model loads in between) and again
    at the end: each write unites this run's selection with the record there then, so the
    names another generate wrote meanwhile stay, and so do this run's."""
    from multiplt.generation.replay import ReplayBackend

    out = str(tmp_path / "run")
    run(bench, out, limit=1)
    record_uri = storage.join(out, "_multiplt_run.yaml")

    def another_generate_writes(problems):  # a generate of another selection, not through write_run
        record = yaml.safe_load(storage.read_text(record_uri))
        storage.write_text(record_uri, yaml.safe_dump({**record, "problems": problems}))

    real_generate, real_write = ReplayBackend.generate, folder.write_problem

    def generate_after_another(self, requests, sampling):
        another_generate_writes(["HumanEval_0_f", "Other_a"])  # after this run read the record
        yield from real_generate(self, requests, sampling)

    def write_after_another(o, record):
        real_write(o, record)
        # a generate that read the record before this run's first write: this run's name is lost
        another_generate_writes(["HumanEval_0_f", "Other_a", "Other_b"])

    monkeypatch.setattr(ReplayBackend, "generate", generate_after_another)
    monkeypatch.setattr(folder, "write_problem", write_after_another)
    run(bench, out, problems="HumanEval_2_f")
    assert folder.read_run(out)["problems"] == ["HumanEval_0_f", "Other_a", "Other_b", "HumanEval_2_f"]


def test_a_narrower_call_does_not_finish_a_record_whose_selection_it_lacks(bench, tmp_path, monkeypatch):
    """A first run cut short after one problem file leaves the others without any file: a call
    with nothing to do for that one problem must not mark the folder complete, since the record
    lists the other problems as selected; the whole run finishes it."""
    from multiplt.evaluation import passk

    out = str(tmp_path / "run")
    real = folder.write_problem

    def cut_after_the_first(o, record):
        real(o, record)
        raise KeyboardInterrupt

    monkeypatch.setattr(folder, "write_problem", cut_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        run(bench, out)
    monkeypatch.setattr(folder, "write_problem", real)
    files = [storage.basename(u) for u in storage.ls(out) if u.endswith(".json.gz")]
    assert files == ["HumanEval_0_f.json.gz"]
    assert run(bench, out, limit=1)["generated"] == 0
    assert folder.read_run(out)["complete"] is False
    with pytest.raises(MultipltError, match="not fully generated"):
        passk.read_counts(out, allow_partial=False)
    assert run(bench, out)["generated"] == 4
    assert folder.read_run(out)["complete"] is True


def test_a_folder_of_another_benchmark_file_is_refused_even_with_other_problem_names(tmp_path, capsys):
    """Two benchmark files whose problems have disjoint names: nothing per problem differs, so
    only the run record's benchmark_sha256 tells that the second would mix its problems into the
    first's folder (and score them together). One error line, exit 2, nothing written."""
    from multiplt import cli

    def bench_file(name, prefix):
        rows = [{"name": f"{prefix}_{i}_f", "language": "rkt", "prompt": f"#lang racket\n(define (f{i} x)\n",
                 "tests": "(module+ test)\n", "stop_tokens": STOPS} for i in range(2)]
        uri, replay = str(tmp_path / f"{name}.jsonl"), str(tmp_path / f"{name}-replay.jsonl")
        storage.write_jsonl(uri, rows)
        storage.write_jsonl(replay, [{"name": r["name"], "completion": f"c{j}"}
                                     for r in rows for j in range(2)])
        return uri, replay

    first, second = bench_file("v1", "HumanEval"), bench_file("v2", "Mbpp")
    out = tmp_path / "run"
    run(first, str(out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    argv = ["generate", "--benchmark", second[0], "--out", str(out), "--backend", "replay",
            "--replay-source", second[1], "--model", "replayed", "--n", "2"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "records a different run (benchmark_sha256: folder has" in err
    assert f"of {first[0]}), this run asks for" in err and f"of {second[0]})" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # a record written without benchmark_sha256 (a hand-made or MultiPL-E folder) is not refused
    record = yaml.safe_load((out / "_multiplt_run.yaml").read_text())
    del record["benchmark_sha256"]
    record.pop("model_identity", None)  # a hand-made record has neither
    (out / "_multiplt_run.yaml").write_text(yaml.safe_dump(record))
    assert run(second, str(out))["generated"] == 4
