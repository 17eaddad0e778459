"""The generate driver's rerun contract, driven by the replay backend (no model needed)."""

import re

import pytest

from multiplt import storage
from multiplt.errors import MultipltError
from multiplt.generation import folder
from multiplt.generation.driver import generate

STOPS = ["\n(define", "\n;"]


@pytest.fixture
def bench(tmp_path):
    rows = [{"name": f"HumanEval_{i}_f", "language": "rkt", "prompt": f"#lang racket\n(define (f{i} x)\n",
             "tests": "(module+ test)\n", "stop_tokens": STOPS} for i in range(3)]
    uri = str(tmp_path / "bench.jsonl")
    storage.write_jsonl(uri, rows)
    replay = str(tmp_path / "replay.jsonl")
    storage.write_jsonl(replay, [{"name": r["name"], "completion": f"  (+ x {j}))"}
                                 for r in rows for j in range(4)])
    return uri, replay


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
    ({"language": "lua"}, "language"),
    ({"prompt": "#lang racket\n(define (g x)\n", "tests": "(module+ test 1)\n"}, "prompt and tests"),
])
def test_a_changed_benchmark_problem_is_refused_and_nothing_is_written(tmp_path, n, change, fields):
    # problem 0 is Lua, so that making problem 1 Lua leaves the run's language set (lua,rkt) as it was
    rows = [{"name": f"HumanEval_{i}_f", "language": "rkt", "prompt": f"#lang racket\n(define (f{i} x)\n",
             "tests": "(module+ test)\n", "stop_tokens": STOPS} for i in range(3)]
    rows[0].update(language="lua", prompt="local function f0(x)\n", tests="os.exit(0)\n")
    uri, replay = str(tmp_path / "bench.jsonl"), str(tmp_path / "replay.jsonl")
    storage.write_jsonl(uri, rows)
    storage.write_jsonl(replay, [{"name": r["name"], "completion": f"c{j}"} for r in rows for j in range(4)])
    out = tmp_path / "run"
    run((uri, replay), str(out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    rows[1].update(change)
    storage.write_jsonl(uri, rows)
    with pytest.raises(MultipltError, match=f"HumanEval_1_f.json.gz has another {fields} than "
                                            f"problem 'HumanEval_1_f' of .*another --out"):
        run((uri, replay), str(out), n=n)
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
    ("prompt", 5, "field\\(s\\) prompt must be strings"),
    ("stop_tokens", "\ndef", "stop_tokens must be a list of non-empty strings"),
    ("stop_tokens", 5, "stop_tokens must be a list"),
])
def test_a_malformed_benchmark_record_is_refused_before_anything_is_written(bench, tmp_path, field, value,
                                                                            message):
    """A record that would write outside the folder (its name is the file name), collide, or
    that the next steps cannot use: one error naming the record, and the folder stays empty
    (any language name passes: generation does not need ours, execution checks it)."""
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


@pytest.mark.parametrize("text,problem", [(": [", "is not valid YAML"), ("[1]\n", "is not a run record"),
                                          ("n: abc\n", "n must be a whole number, got 'abc'")])
def test_a_corrupt_run_record_is_an_error_and_nothing_is_written(bench, tmp_path, text, problem):
    out = tmp_path / "run"
    out.mkdir()
    (out / "_multiplt_run.yaml").write_text(text)
    with pytest.raises(MultipltError, match=problem):
        run(bench, str(out))
    assert sorted(p.name for p in out.iterdir()) == ["_multiplt_run.yaml"]


def test_the_run_record_says_whether_the_last_generate_finished(bench, tmp_path, monkeypatch):
    """`complete: false` goes with a call's first samples and `true` once it has them all, so
    score refuses a folder whose last generate was cut short. A later call with nothing to do
    (a smaller --n than the cut one) finishes the record when it covers every problem file there;
    a narrower one (--limit) leaves it."""
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
    assert run(bench, out, n=2)["generated"] == 0  # every problem has 2: scoreable again
    assert folder.read_run(out)["complete"] is True
    with pytest.raises(MultipltError, match="not fully executed"):  # generated; execute is next
        passk.read_counts(out, allow_partial=False)
