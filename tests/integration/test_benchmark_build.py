"""`multiplt benchmark build|ls` and `build_benchmark`: files, report, counts, sources, errors."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys

import pytest

from multiplt import languages
from multiplt.benchmarks import analyze, build, sources
from multiplt.benchmarks.build import build_benchmark
from multiplt.errors import MultipltError

FIELDS = {"name", "language", "prompt", "tests", "stop_tokens", "doctests", "original",
          "prompt_terminology"}
TARGETS = {"py": 164, "rkt": 161, "jl": 159, "r": 161, "ml": 155, "lua": 161}
# how each prompt ends: inside an open function header, so a completion is a body
ENDINGS = {"rkt": r"\(define \(\w+( \w+)*\)\n$", "jl": r"function \w+\(.*\)::.+ \n$",
           "r": r"\w+ <- function\(.*\) \{$", "ml": r"let \w+( \(\w+ : .+?\))+ : .+ =$",
           "lua": r"local function \w+\(.*\)\n$", "py": r'("""|\'\'\')\n$'}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "multiplt", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def humaneval():
    src = sources.load("humaneval")
    return src, analyze.analyze(src)


@pytest.mark.slow
@pytest.mark.parametrize("code", sorted(TARGETS))
def test_full_humaneval_meets_the_targets(humaneval, code):
    src, analyses = humaneval
    rows, report = build.build_rows(src, languages.get(code), analyses)
    assert len(rows) >= TARGETS[code]
    assert report["asserts_translated_fraction"] >= 0.95
    assert set(report["problems"]) == {an.problem.name for an in analyses}
    kept = {r["name"] for r in rows}
    for name, entry in report["problems"].items():
        if name in kept:
            assert entry["translated_asserts"] >= min(3, entry["source_asserts"]), name
        else:  # nothing dropped silently
            assert entry["reason"] and {"name": name, "reason": entry["reason"]} in report["dropped_problems"]
        for drop in entry["dropped_asserts"]:
            assert drop["reason"] and drop["assert"]
    names = [r["name"] for r in rows]
    assert names == sorted(names)  # MultiPL-E orders by name
    import re
    for row in rows:
        assert set(row) == FIELDS and row["language"] == code
        assert re.search(ENDINGS[code], row["prompt"]), row["prompt"][-200:]


def test_cli_build_writes_rows_and_report(tmp_path):
    out = tmp_path / "bench" / "humaneval-ml.jsonl"
    result = cli("benchmark", "build", "--source", "humaneval", "--lang", "ml", "--out", str(out),
                 "--problems", "HumanEval_0_has_close_elements,HumanEval/12,HumanEval_22_filter_integers")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["name"] for r in rows] == ["HumanEval_0_has_close_elements", "HumanEval_12_longest"]  # 22: List[Any]
    assert rows[0]["stop_tokens"] == ["\n\n", "\n(*", "\ntype", "\nlet"]
    assert rows[0]["doctests"] == "transform" and rows[0]["prompt_terminology"] == "reworded"
    assert "let has_close_elements (numbers : float list) (threshold : float) : bool =" in rows[0]["prompt"]
    assert " * >>> has_close_elements [1.0; 2.0; 3.0] 0.5\n * false" in rows[0]["prompt"]
    report = json.loads((tmp_path / "bench" / "humaneval-ml.jsonl.report.json").read_text())
    assert report["problems_in"] == 3 and report["problems_kept"] == 2
    assert report["problems"]["HumanEval_0_has_close_elements"]["source_asserts"] == 7
    assert report["problems"]["HumanEval_0_has_close_elements"]["translated_asserts"] == 7
    assert report["dropped_problems"][0]["name"] == "HumanEval_22_filter_integers"
    assert "OCaml has no type for Any" in report["dropped_problems"][0]["reason"]


def test_limit_takes_the_first_names(tmp_path):
    out = tmp_path / "x.jsonl"
    report = build_benchmark("humaneval", "rkt", str(out), limit=3)
    names = [json.loads(line)["name"] for line in out.read_text().splitlines()]
    assert names == ["HumanEval_0_has_close_elements", "HumanEval_100_make_a_pile",
                     "HumanEval_101_words_string"]
    assert report["problems_in"] == 3


def test_a_rebuild_killed_before_its_file_leaves_no_old_problems_beside_the_new_report(tmp_path, monkeypatch):
    """The file marks a finished build and readers trust the report beside it: a full rebuild
    of a --limit 2 file killed after the new report must not leave the 2 problems under a report
    that says 'all of humaneval' (evaluate would reuse them as the whole benchmark)."""
    from multiplt import storage
    from multiplt.evaluation.run_folder import built_marker

    out = tmp_path / "humaneval-lua.jsonl"
    build_benchmark("humaneval", "lua", str(out), limit=2)
    assert built_marker(str(out)) == "_first2"

    class Killed(BaseException):
        pass

    def killed(uri, rows):  # the process dies as the benchmark file's write begins
        raise Killed

    monkeypatch.setattr(storage, "write_jsonl", killed)
    with pytest.raises(Killed):
        build_benchmark("humaneval", "lua", str(out))
    assert json.loads(out.with_name(out.name + ".report.json").read_text())["config"]["limit"] is None
    assert not out.exists()  # no file: the next evaluate builds it again
    monkeypatch.undo()
    build_benchmark("humaneval", "lua", str(out), limit=3)
    assert len(out.read_text().splitlines()) == 3 and built_marker(str(out)) == "_first3"


#: the storage calls build_benchmark makes itself
OWN = ("delete", "write_json", "write_jsonl")


def _writes(monkeypatch) -> list:
    """Every delete and write of the storage API from now on, as (function, URI); a
    write_json's own write_text and write_bytes are there too."""
    from multiplt import storage

    calls = []
    for name in ("delete", "write_bytes", "write_text", "write_json", "write_jsonl"):
        def record(uri, *args, _name=name, _real=getattr(storage, name), **kwargs):
            calls.append((_name, str(uri)))
            return _real(uri, *args, **kwargs)
        monkeypatch.setattr(storage, name, record)
    return calls


def test_a_rebuild_of_the_same_content_never_removes_the_file(tmp_path, monkeypatch, caplog):
    """Every evaluate run builds its benchmark, up to 4 at once into the same file, and another
    run's generate reads it meanwhile: a rebuild that would write the same bytes writes nothing,
    so the file never disappears (nor is it replaced: same inode, same mtime)."""
    out = tmp_path / "humaneval-lua.jsonl"
    report_file = out.with_name(out.name + ".report.json")
    first = build_benchmark("humaneval", "lua", str(out), limit=2)
    before = [(p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in (out, report_file)]
    calls = _writes(monkeypatch)
    with caplog.at_level("INFO", logger="multiplt.benchmarks"):
        again = build_benchmark("humaneval", "lua", str(out), limit=2)
    assert calls == []
    assert [(p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in (out, report_file)] == before
    assert again == first
    assert "is unchanged (2 lua problems); nothing written" in caplog.text


def test_a_new_report_beside_the_same_problems_keeps_the_file(tmp_path, monkeypatch):
    """Only the report differs (another multiplt version): the report is replaced, the file with
    the same problems stays where it is."""
    import multiplt

    out = tmp_path / "humaneval-lua.jsonl"
    build_benchmark("humaneval", "lua", str(out), limit=2)
    inode, data = out.stat().st_ino, out.read_bytes()
    monkeypatch.setattr(multiplt, "__version__", "0.0.0+other")
    calls = _writes(monkeypatch)
    build_benchmark("humaneval", "lua", str(out), limit=2)
    assert [name for name, _ in calls if name in OWN] == ["write_json"]
    assert (out.stat().st_ino, out.read_bytes()) == (inode, data)
    report = json.loads(out.with_name(out.name + ".report.json").read_text())
    assert report["config"]["versions"]["multiplt"] == "0.0.0+other"
    assert report["config"]["provenance"]["multiplt"] == "0.0.0+other"  # the code that built it
    assert report["config"]["provenance"]["code_version"]


def test_a_changed_benchmark_is_removed_before_its_report_is_written(tmp_path, monkeypatch):
    """Different problems (--limit 3 after --limit 2): the old file goes first, the new one comes
    last, as the kill-window test above needs."""
    out = tmp_path / "humaneval-lua.jsonl"
    build_benchmark("humaneval", "lua", str(out), limit=2)
    calls = _writes(monkeypatch)
    build_benchmark("humaneval", "lua", str(out), limit=3)
    assert [name for name, _ in calls if name in OWN] == ["delete", "write_json", "write_jsonl"]
    assert calls[0] == ("delete", str(out))
    assert len(out.read_text().splitlines()) == 3


MINI = [
    {"task_id": "Mini/1", "entry_point": "halve",
     "prompt": "def halve(xs):\n    \"\"\"Halve every number of a list.\n    >>> halve([2, 3])\n    [1.0, 1.5]\n    \"\"\"\n",
     "canonical_solution": "    return [x / 2 for x in xs]\n",
     "test": "def check(candidate):\n    assert candidate([]) == []\n    assert candidate([2, -4]) == [1.0, -2.0]\n"
             "    assert abs(candidate([1])[0] - 0.5) < 1e-9\n    for n in range(3):\n"
             "        assert candidate([n]) == [n / 2]\n"},
    {"task_id": "Mini/2", "entry_point": "is_even",
     "prompt": "def is_even(n: int) -> bool:\n    \"\"\"True for even numbers; None is never returned.\"\"\"\n",
     "canonical_solution": "    return n % 2 == 0\n",
     "test": "def check(candidate):\n    assert candidate(2)\n    assert not candidate(-3)\n    assert True\n"
             "    assert candidate(10) is True\n"},
    {"task_id": "Mbpp/3", "entry_point": "add_one",  # MBPP style: the test calls the function by name
     "prompt": "def add_one(x: int) -> int:\n    \"\"\"Add one.\"\"\"\n",
     "canonical_solution": "    return x + 1\n",
     "test": "def check(candidate):\n    assert add_one(1) == 2\n    assert add_one(-1) == 0\n"},
]


def test_any_humaneval_format_jsonl_gz_uri(tmp_path):
    src = tmp_path / "mini.jsonl.gz"
    src.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in MINI).encode()))
    out = tmp_path / "mini-ml.jsonl"
    report = build_benchmark(f"file://{src}", "ml", str(out))
    rows = {r["name"]: r for r in map(json.loads, out.read_text().splitlines())}
    halve = rows["Mini_1_halve"]
    assert "let halve (xs : int list) : float list =" in halve["prompt"]
    assert "assert ((candidate []) = []);" in halve["tests"]
    assert "assert ((candidate [2; (-4)]) = [1.0; (-2.0)]);" in halve["tests"]
    assert halve["tests"].count("assert") == 3 + 3  # two literal + tolerance (1e-09 check) + loop
    assert "(candidate [2]) = [1.0]" in halve["tests"]
    assert ">>> halve [2; 3]\n * [1.0; 1.5]" in halve["prompt"]
    even = rows["Mini_2_is_even"]
    assert "assert ((candidate (-3)) = false);" in even["tests"]
    assert "None is never returned" in even["prompt"]  # OCaml's word for None is None
    assert report["problems"]["Mini_2_is_even"]["source_asserts"] == 3
    assert report["problems"]["Mini_2_is_even"]["ignored"][0]["reason"] == "assert True tests nothing"
    assert "assert ((candidate (-1)) = 0);" in rows["Mbpp_3_add_one"]["tests"]


def test_bad_source_rows_are_a_clear_error_and_write_nothing(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps({"task_id": "X/1", "prompt": "def f(): pass"}) + "\n")
    out = tmp_path / "out.jsonl"
    result = cli("benchmark", "build", "--source", str(src), "--lang", "lua", "--out", str(out))
    assert result.returncode == 2
    assert "lacks the HumanEval-format field(s) entry_point, test" in result.stderr
    assert not out.exists() and not os.path.exists(str(out) + ".report.json")
    src.write_text(json.dumps({"task_id": "X/1", "prompt": "def f():\n", "entry_point": "f",
                               "test": "def check(candidate):\n    assert candidate() == 1\n",
                               "canonical_solution": 5}) + "\n")
    result = cli("benchmark", "build", "--source", str(src), "--lang", "lua", "--out", str(out))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "problem 1 (X/1): canonical_solution must be a string, got int" in result.stderr
    assert not out.exists() and not os.path.exists(str(out) + ".report.json")


@pytest.mark.parametrize("kwargs,message", [
    ({"source": "humaneval", "problems": ["HumanEval_999_nope"]}, "unknown problem name"),
    ({"source": "no/such/file.jsonl"}, "does not exist"),
    ({"source": "not a source"}, "unknown benchmark source"),
    ({"source": "humaneval", "limit": 0}, "--limit must be at least 1"),
    ({"source": "humaneval", "problems": ","}, "--problems ',' names no problem"),
    ({"source": "humaneval", "problems": ""}, "--problems '' names no problem"),
    ({"source": "s3:/bucket/he.jsonl"}, "--source 's3:/bucket/he.jsonl' reads as a mistyped URI (did you "
                                        "mean 's3://bucket/he.jsonl'?)"),
    ({"source": "s3//bucket/x"}, "reads as a mistyped URI (did you mean 's3://bucket/x'?)"),
    ({"source": "file:/tmp/he.jsonl"}, "did you mean 'file:///tmp/he.jsonl'?"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(MultipltError, match=re.escape(message)):
        build_benchmark(lang="r", out=str(tmp_path / "o.jsonl"), **kwargs)
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("content,message", [
    (None, "is not a file"),  # a folder
    (b"\xff\xfe\x00binary", "not a (gzipped) UTF-8 JSONL file (UnicodeDecodeError)"),
    (gzip.compress(b'{"task_id": "X/1"}\n' * 50)[:-12], "not a (gzipped) UTF-8 JSONL file (EOFError)"),
    (gzip.compress(b'{"task_id": "X/1"}\n' * 50)[:10] + b"\xff" * 4 + gzip.compress(b'{"task_id": "X/1"}\n' * 50)[14:],
     "not a (gzipped) UTF-8 JSONL file (error)"),  # zlib.error: a corrupt deflate stream
])
def test_unreadable_sources_are_a_clear_error(tmp_path, content, message):
    src = tmp_path / "src.jsonl.gz"
    if content is None:
        src.mkdir()
    else:
        src.write_bytes(content)
    with pytest.raises(MultipltError, match=re.escape(message)):
        build_benchmark(lang="r", out=str(tmp_path / "o.jsonl"), source=str(src))
    assert not (tmp_path / "o.jsonl").exists()


def test_an_out_folder_is_refused_before_any_work(tmp_path):
    for out in (str(tmp_path) + "/", str(tmp_path)):
        with pytest.raises(MultipltError, match="is a folder; give the benchmark file's URI"):
            build_benchmark(lang="r", out=out, source="humaneval", limit=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name,out", [
    ("one.jsonl", "one.jsonl"), ("one.jsonl.gz", "./one.jsonl.gz"), ("one.jsonl", "sub/../one.jsonl"),
    ("one.jsonl", "link.jsonl"), ("one.jsonl", "FILE_URI"), ("one.jsonl.report.json", "one.jsonl")])
def test_an_out_that_is_the_source_is_refused(tmp_path, name, out):
    """--out (or the report beside it) naming the source, however spelled, would replace the
    input with the output: refused in one line before anything is written."""
    src = tmp_path / name
    data = "\n".join(json.dumps(r) for r in MINI).encode()
    src.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.jsonl").symlink_to(src)
    out = f"file://{src}" if out == "FILE_URI" else out
    before, original = sorted(p.name for p in tmp_path.iterdir()), src.read_bytes()
    result = subprocess.run([sys.executable, "-m", "multiplt", "benchmark", "build", "--source", name,
                             "--lang", "lua", "--out", out], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and f"is the source file {name}" in result.stderr
    assert src.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_same_file_compares_s3_uris_by_bucket_and_key():
    assert build._same_file("s3://bucket/b/x.jsonl", "s3://bucket/b/x.jsonl")
    assert not build._same_file("s3://bucket/b/x.jsonl", "s3://bucket/b/y.jsonl")
    assert not build._same_file("s3://bucket/b/x.jsonl", "s3://other/b/x.jsonl")
    assert not build._same_file("s3://bucket/x.jsonl", "x.jsonl")


def test_hugging_face_source_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(MultipltError, match="cannot load the Hugging Face dataset 'nobody/nothing'"):
        build_benchmark("nobody/nothing", "lua", str(tmp_path / "o.jsonl"))


@pytest.mark.slow
def test_ls_lists_sources_and_counts():
    result = cli("benchmark", "ls", "--json")
    assert result.returncode == 0, result.stderr
    table = json.loads(result.stdout)
    assert table[0]["source"] == "humaneval" and table[0]["problems"] == 164
    assert set(table[0]["languages"]) == set(TARGETS)
    assert all(table[0]["languages"][c] >= n for c, n in TARGETS.items())
