"""Bad input to `multiplt generate` and `multiplt evaluate`: one error line, exit 2, nothing
written and nothing built; and what a replay run without --model is recorded as."""

import pytest

from multiplt import cli, storage
from multiplt.errors import MultipltError
from multiplt.evaluation.run_folder import SCORES_HEADER, parse_run_yaml


def gen(bench, out, *extra, replay=True):
    uri, source = bench
    flags = ["--backend", "replay", "--replay-source", source] if replay else []
    return cli.main(["generate", "--benchmark", uri, "--out", str(out), *flags, "--n", "2", *extra])


def one_error(capsys, message):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def rewrite(bench, change):
    """The bench fixture's benchmark file with `change(lines)` applied to its JSON lines."""
    path = bench[0]
    lines = storage.read_text(path).splitlines()
    storage.write_text(path, "\n".join(change(lines)) + "\n")


@pytest.mark.parametrize("language", ["zz", "js"])
def test_a_language_multiplt_does_not_execute_is_generated_with_a_warning(bench, tmp_path, capsys,
                                                                          language):
    """A MultiPL-E benchmark of another language (humaneval-js) is sampled here and executed by
    MultiPL-E's own harness; `multiplt execute` refuses it, and generate says so."""
    rewrite(bench, lambda lines: [line.replace('"language": "rkt"', f'"language": "{language}"')
                                  for line in lines])
    assert gen(bench, tmp_path / "run") == 0
    err = capsys.readouterr().err
    assert f"unknown language '{language}'" in err and "multiplt execute will refuse it" in err


def test_a_benchmark_of_two_languages_is_refused_before_anything_is_written(bench, tmp_path, capsys):
    """It gave one run folder recorded as `lang: lua,rkt` and scored as one pass@k."""
    rewrite(bench, lambda lines: [lines[0], lines[1].replace('"rkt"', '"lua"'), lines[2]])
    out = tmp_path / "run"
    assert gen(bench, out, "--limit", "1") == 2  # the whole file, not only the selected problems
    one_error(capsys, f"benchmark {bench[0]} record 2: language 'lua' is not record 1's 'rkt'; a "
                      "benchmark file holds one language")
    assert not out.exists()


def test_a_language_name_is_a_known_language(bench, tmp_path):
    rewrite(bench, lambda lines: [line.replace('"language": "rkt"', '"language": "racket"')
                                  for line in lines])
    assert gen(bench, tmp_path / "run") == 0


def test_a_benchmark_record_with_a_key_twice_is_refused(bench, tmp_path, capsys):
    """json keeps the last of two keys silently: the run record said lua for a Racket prompt."""
    rewrite(bench, lambda lines: [lines[0], lines[1][:-1] + ', "language": "lua"}', lines[2]])
    out = tmp_path / "run"
    assert gen(bench, out) == 2
    one_error(capsys, f"{bench[0]}: line 2 writes the key 'language' twice in one object")
    assert not out.exists()


def test_a_nested_key_twice_and_other_bad_lines_name_their_line(bench, tmp_path, capsys):
    rewrite(bench, lambda lines: [lines[0], '{"name": "x", "meta": {"a": 1, "a": 2}}'])
    assert gen(bench, tmp_path / "run") == 2
    one_error(capsys, "line 2 writes the key 'a' twice in one object")
    rewrite(bench, lambda lines: [lines[0], "", "[1]"])
    assert gen(bench, tmp_path / "run") == 2
    one_error(capsys, f"{bench[0]}: line 3 is not a JSON object (got list)")
    rewrite(bench, lambda lines: [lines[0], "{broken"])
    assert gen(bench, tmp_path / "run") == 2
    one_error(capsys, f"{bench[0]}: line 2 is not JSON: ")


def test_a_run_record_with_a_key_twice_is_refused_by_generate(bench, tmp_path, capsys):
    out = tmp_path / "run"
    assert gen(bench, out, "--model", "m1") == 0
    record = out / "_multiplt_run.yaml"
    record.write_text(record.read_text() + "model: other\n")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert gen(bench, out, "--model", "m1", "--n", "3") == 2
    one_error(capsys, f"{record} is not valid YAML: line ")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def scored(folder, problems=3, n=2):
    """A scores CSV as `multiplt score` writes it, for `results record` (no execution needed)."""
    storage.write_text(str(folder / "_scores.csv"), ",".join(SCORES_HEADER) + "\n"
                       f"{folder.name},1,0.5,{problems},{n},{n}\n")


def test_results_record_refuses_a_run_record_with_a_key_twice(bench, tmp_path, capsys):
    """A second `model:` made `results record` store the other model."""
    out = tmp_path / "run"
    assert gen(bench, out, "--model", "m1") == 0
    scored(out)
    record = out / "_multiplt_run.yaml"
    record.write_text(record.read_text() + "model: other\n")
    store = tmp_path / "store.parquet"
    capsys.readouterr()
    assert cli.main(["results", "record", "--scores", str(out), "--store", str(store)]) == 2
    line = len(record.read_text().splitlines())
    one_error(capsys, f"{record} is not valid YAML: line {line}, column 1: duplicate key 'model' "
                      "(first at line 1)")
    assert not store.exists()


def test_run_yaml_refuses_keys_twice_at_any_depth_and_keeps_merges():
    with pytest.raises(MultipltError, match=r"^r.yaml is not valid YAML: line 3, column 3: duplicate key 'a' "
                                            r"\(first at line 2\)$"):
        parse_run_yaml("x:\n  a: 1\n  a: 2\n", "r.yaml")
    assert parse_run_yaml("d: &d {a: 1}\ne:\n  <<: *d\n  a: 2\n", "r.yaml") == {"d": {"a": 1}, "e": {"a": 2}}
    with pytest.raises(MultipltError, match=r"^r.yaml is not valid YAML: line 2, column 1: expected the node content"):
        parse_run_yaml("a: [\n", "r.yaml")


def test_a_replay_run_without_a_model_is_recorded_under_its_source(bench, tmp_path, capsys):
    """As evaluate names it: `results record` refused the folder ("lacks model"). The name is
    the source's and a hash of where it is (replay_label): two sources of one name are two."""
    import hashlib

    out = tmp_path / "run"
    assert gen(bench, out) == 0
    record = parse_run_yaml((out / "_multiplt_run.yaml").read_text(), "r")
    label = "replay.jsonl_s" + hashlib.sha256(bench[1].encode()).hexdigest()[:8]
    assert record["model"] == record["tokenizer"] == label
    scored(out)
    store = tmp_path / "store.parquet"
    assert cli.main(["results", "record", "--scores", str(out), "--store", str(store)]) == 0
    import polars as pl

    assert pl.read_parquet(store)["model"].to_list() == [label]


def test_a_rerun_keeps_the_folder_s_label_for_the_same_source_content(bench, tmp_path, capsys):
    """The label hashes where the source is; a rerun into the folder keeps the folder's label
    when the source holds what it held: spelled as a file:// URI, moved with the tree, or a
    folder labelled before the hash (`replay.jsonl`), instead of being refused as another run."""
    import shutil

    out = tmp_path / "run"
    assert gen(bench, out, "--n", "1") == 0
    record = out / "_multiplt_run.yaml"
    label = parse_run_yaml(record.read_text(), "r")["model"]
    assert gen((bench[0], "file://" + bench[1]), out) == 0  # and draws sample 1
    moved = tmp_path / "moved.jsonl"
    shutil.copy(bench[1], moved)
    assert gen((bench[0], str(moved)), out, "--n", "3") == 0
    assert parse_run_yaml(record.read_text(), "r")["model"] == label
    old = tmp_path / "old"  # labelled as before the hash
    assert gen(bench, old) == 0
    text = (old / "_multiplt_run.yaml").read_text().replace(label, "replay.jsonl")
    (old / "_multiplt_run.yaml").write_text(text)
    assert gen(bench, old, "--n", "3") == 0
    assert parse_run_yaml((old / "_multiplt_run.yaml").read_text(), "r")["model"] == "replay.jsonl"


def test_a_finished_folder_refuses_a_replay_source_rewritten_since(bench, tmp_path, capsys):
    """Nothing is missing, so nothing is drawn; the replay source is still read (one file) and
    one holding other completions than the folder's were read from is refused, exit 2, instead
    of the folder's samples passing for its own. A source gone since is not compared."""
    import pathlib

    out = tmp_path / "run"
    assert gen(bench, out) == 0
    before = (out / "_multiplt_run.yaml").read_text()
    assert gen(bench, out) == 0  # the same source: a rerun that writes nothing
    source = pathlib.Path(bench[1])
    source.write_text(source.read_text().replace("(+ x 0)", "(- x 0)"))
    capsys.readouterr()
    assert gen(bench, out) == 2
    one_error(capsys, "resuming would mix samples of two models in one folder")
    assert (out / "_multiplt_run.yaml").read_text() == before
    source.unlink()
    assert gen(bench, out) == 0


@pytest.mark.parametrize("extra, replay, message", [
    (["--n", "100000000000"], True, "--n must be at most 10000, got 100000000000"),
    (["--n", "10001"], True, "--n must be at most 10000, got 10001"),
    (["--seed", str(2 ** 63)], True, f"--seed must be in [-2**63, 2**63), got {2 ** 63}"),
    (["--seed", str(-2 ** 63 - 1)], True, "--seed must be in [-2**63, 2**63)"),
    (["--model", "m", "--replay-source", "x.jsonl"], False,
     "--replay-source is for --backend replay only; --backend transformers samples from --model"),
    ([], False, "--model is required (except with --backend replay)"),
    (["--backend", "replay"], False, "the replay backend needs --replay-source"),
    # results record refuses such a label (the checkpoint tag <lang>-<experiment>-epochN)
    (["--experiment", "Bad Exp"], True, "--experiment 'Bad Exp': an experiment label is one or more"),
    (["--experiment", "ok\n"], True, "--experiment 'ok\\n': an experiment label is one or more"),
])
def test_bad_flags_are_refused_up_front(bench, tmp_path, capsys, monkeypatch, extra, replay, message):
    from multiplt.generation import driver

    monkeypatch.setattr(driver, "load_benchmark", lambda *a, **k: pytest.fail("the benchmark was read"))
    out = tmp_path / "run"
    assert gen(bench, out, *extra, replay=replay) == 2
    one_error(capsys, message)
    assert not out.exists()


@pytest.mark.parametrize("seed", ["-1", str(-2 ** 63), str(2 ** 63 - 1)])
def test_any_seed_the_results_store_holds_is_usable(bench, tmp_path, seed):
    """The run seed is hashed into each sample's seed (seeds.sample_seed), never given to torch:
    a negative one works, and differs from its absolute value."""
    out = tmp_path / "run"
    assert gen(bench, out, "--seed", seed) == 0
    assert parse_run_yaml((out / "_multiplt_run.yaml").read_text(), "r")["seed"] == int(seed)


def evaluate(tmp_path, *extra):
    return cli.main(["evaluate", "--lang", "rkt", "--out", str(tmp_path / "eval"), *extra])


@pytest.mark.parametrize("extra, message", [
    (["--backend", "replay", "--replay-source", "r", "--seed", str(2 ** 64)], "--seed must be in"),
    (["--backend", "replay", "--replay-source", "r", "--n", "10001"], "--n must be at most 10000"),
    (["--model", "m", "--replay-source", "r/{lang}"], "--replay-source is for --backend replay only"),
])
def test_evaluate_refuses_bad_flags_before_any_work(tmp_path, capsys, extra, message):
    assert evaluate(tmp_path, *extra) == 2
    one_error(capsys, message)
    assert not (tmp_path / "eval").exists()


def test_evaluate_refuses_a_file_as_benchmarks_folder_before_building(tmp_path, capsys, monkeypatch):
    """It built the benchmark, then failed with "a parent of it is a file"."""
    from multiplt.benchmarks import build

    monkeypatch.setattr(build, "build_benchmark", lambda *a, **k: pytest.fail("a benchmark was built"))
    afile = tmp_path / "one.orig.jsonl"
    afile.write_text("{}\n")
    replay = ["--backend", "replay", "--replay-source", str(tmp_path / "r")]
    assert evaluate(tmp_path, "--benchmarks", str(afile), *replay) == 2
    one_error(capsys, f"--benchmarks {afile} is a file; give a folder")
    assert evaluate(tmp_path, "--benchmarks", str(afile / "below"), *replay) == 2
    one_error(capsys, f"--benchmarks {afile / 'below'}: {afile} is a file, not a folder")
    assert not (tmp_path / "eval").exists() and afile.read_text() == "{}\n"
