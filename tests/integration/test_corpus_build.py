"""`multiplt corpus build` end to end on the planted fixture corpus (tests/fixtures/corpus/planted):
exact kept rows and reasons, the output contract, sharded runs killed and rerun, and bad input."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from multiplt import cli

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "corpus" / "planted"
KEPT = ["drops.py:51:kept_clamp", "dups_a.py:1:mean_of", "near_a.py:1:word_histogram",
        "structure.py:14:outer", "structure.py:24:words", "structure.py:30:raw_pattern"]
EXCLUDED = {
    "pkg/broken.py": "syntax_error", "pkg/latin1.py": "syntax_error",
    "structure.py:36:fetch_twice": "async_function",
    "drops.py:1:no_doc": "no_docstring", "drops.py:7:doc_later": "no_docstring",
    "drops.py:13:one_quote": "no_docstring", "drops.py:19:bare_return": "no_return_value",
    "drops.py:27:accented": "non_ascii", "drops.py:33:unfinished": "todo",
    "drops.py:40:trivial": "too_short",
    "bench_docstring.py:1:frac_part": "benchmark_overlap",
    "bench_renamed.py:4:any_pair_near": "benchmark_overlap",
    "bench_verbatim.py:1:longest_word": "benchmark_overlap",
    "drops.py:45:wrong_type": "type_error",
    "dups_b.py:4:mean_of": "duplicate", "near_b.py:1:word_histogram": "near_duplicate",
}
STEPS = [("extracted", 20, 20), ("async_def", 20, 19), ("generator", 19, 19), ("docstring", 19, 16), ("return_value", 16, 15),
         ("ascii", 15, 14), ("todo", 14, 13), ("too_short", 13, 12), ("decontaminate", 12, 9),
         ("typecheck", 9, 8), ("exact_dedup", 8, 7), ("near_dedup", 7, 6)]


def planted_corpus(root: Path) -> Path:
    """The fixture corpus plus its two unreadable files (see tests/fixtures/corpus/README.md)."""
    corpus = root / "planted"
    shutil.copytree(FIXTURE, corpus)
    (corpus / "pkg").mkdir(exist_ok=True)
    (corpus / "pkg" / "broken.py").write_text('def broken(x:\n    """Does not parse."""\n    return x\n')
    (corpus / "pkg" / "latin1.py").write_bytes(b"# caf\xe9: Latin-1\ndef latin(x: int) -> int:\n"
                                               b'    """Never read."""\n    y = x + 1\n    return y * y\n')
    return corpus


@pytest.fixture
def planted(tmp_path) -> str:
    return str(planted_corpus(tmp_path))


def read_parts(out: Path, kind: str) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(p) for p in sorted((out / kind).glob("part-*.parquet"))],
                     how="diagonal_relaxed")


def check_planted(out: Path) -> None:
    functions, excluded = read_parts(out, "functions"), read_parts(out, "excluded")
    assert sorted(functions["id"].to_list()) == KEPT
    assert dict(zip(excluded["id"], excluded["reason"])) == EXCLUDED
    funnel = json.loads((out / "funnel.json").read_text())
    assert [(s["name"], s["in"], s["out"]) for s in funnel["steps"]] == STEPS
    assert funnel["files"] == {"read": 11, "syntax_error": 2}
    assert excluded.filter(pl.col("reason") != "syntax_error").height == STEPS[0][1] - STEPS[-1][2]


@pytest.mark.slow
def test_planted_corpus_gives_exactly_the_expected_rows_and_reasons(planted, tmp_path):
    out = tmp_path / "out"
    assert cli.main(["corpus", "build", "--source", planted, "--out", str(out)]) == 0
    check_planted(out)
    functions = read_parts(out, "functions")
    assert functions.columns[:5] == ["content", "id", "sha1", "entrypoint", "context"]
    assert {"source", "path", "line"} <= set(functions.columns)
    words = functions.filter(pl.col("entrypoint") == "words").row(0, named=True)
    # kept only because its context carries the module-level pattern and its import
    assert words["context"] == 'import re\nWORD = re.compile(r"[A-Za-z]+")\n'
    assert words["content"].startswith("def words(text: str) -> list[str]:\n    '''Single-quoted")
    config = json.loads((out / "corpus_config.json").read_text())
    assert config["benchmarks"] == ["humaneval"] and config["typecheck_batch"] == 250
    # a rerun does no work and changes nothing
    before = (out / "_work" / "shards" / "00000-of-00001" / "_SUCCESS").stat().st_mtime_ns
    assert cli.main(["corpus", "build", "--source", planted, "--out", str(out)]) == 0
    assert (out / "_work" / "shards" / "00000-of-00001" / "_SUCCESS").stat().st_mtime_ns == before
    check_planted(out)


def _multiplt(*argv: str) -> list[str]:
    return [sys.executable, "-m", "multiplt", *argv]


@pytest.mark.slow
def test_sharded_run_killed_mid_shard_and_rerun_matches_one_process(planted, tmp_path, capsys):
    out = tmp_path / "sharded"
    common = ["--source", planted, "--out", str(out)]
    assert cli.main(["corpus", "build", *common, "--shard", "0/3"]) == 0
    # shard 1 is killed while it type-checks: it must leave no marker and no parts (only the
    # verdicts of type-check batches it finished)
    proc = subprocess.Popen(_multiplt("corpus", "build", *common, "--shard", "1/3"),
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in proc.stderr:
        if "corpus shard 1/3: type check of" in line:
            proc.kill()
            break
    proc.wait(timeout=60)
    assert proc.returncode != 0
    killed = out / "_work" / "shards" / "00001-of-00003"
    assert not (killed / "_SUCCESS").exists() and not list(killed.glob("*.parquet"))
    # merging now is refused, naming the missing shards
    assert cli.main(["corpus", "dedup", "--out", str(out), "--bucket", "0/2"]) == 2
    assert cli.main(["corpus", "dedup", "--out", str(out), "--bucket", "0/0"]) == 2
    assert "--bucket 0/0: need N >= 1" in capsys.readouterr().err
    marker = out / "_work" / "shards" / "00000-of-00003" / "_SUCCESS"
    before = marker.stat().st_mtime_ns
    for k in range(3):  # the rerun: shard 0 is skipped, 1 and 2 are built
        assert cli.main(["corpus", "build", *common, "--shard", f"{k}/3"]) == 0
    assert marker.stat().st_mtime_ns == before
    for b in range(2):
        assert cli.main(["corpus", "dedup", "--out", str(out), "--bucket", f"{b}/2"]) == 0
    assert cli.main(["corpus", "merge", "--out", str(out)]) == 0
    check_planted(out)
    assert len(list((out / "functions").glob("part-*.parquet"))) == 3


@pytest.mark.slow
def test_a_build_killed_during_the_type_check_checks_only_the_remaining_batches(planted, tmp_path):
    out = tmp_path / "killed"
    argv = ["corpus", "build", "--source", planted, "--out", str(out), "--typecheck-batch", "1",
            "--workers", "1"]
    proc = subprocess.Popen(_multiplt(*argv), stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in proc.stderr:
        if "type check: 2/" in line:  # two batches of one function each are done
            proc.kill()
            break
    proc.wait(timeout=120)
    assert proc.returncode != 0
    saved = list((out / "_work" / "shards" / "00000-of-00001" / "typecheck").glob("*.json"))
    assert len(saved) >= 2
    rerun = subprocess.run(_multiplt(*argv), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{len(saved)} of " in rerun.stderr and "batches already checked by an interrupted run" in rerun.stderr
    check_planted(out)


def test_a_rerun_of_a_finished_build_writes_nothing(planted, tmp_path):
    out = tmp_path / "done"
    argv = ["corpus", "build", "--source", planted, "--out", str(out), "--no-typecheck"]
    assert cli.main(argv) == 0
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert cli.main(argv) == 0
    assert cli.main(["corpus", "merge", "--out", str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps
    before = read_parts(out, "functions")
    for part in out.glob("functions/*.parquet"):  # an output lost: merged again
        part.unlink()
    assert cli.main(argv) == 0
    assert read_parts(out, "functions").equals(before)


def test_stdlib_source_without_type_check(tmp_path):
    out = tmp_path / "std"
    assert cli.main(["corpus", "build", "--source", "stdlib", "--out", str(out), "--limit", "25",
                     "--no-typecheck"]) == 0
    functions = read_parts(out, "functions")
    assert functions.height > 0 and all(i.startswith("stdlib:") for i in functions["id"])
    funnel = json.loads((out / "funnel.json").read_text())
    config = json.loads((out / "corpus_config.json").read_text())
    assert config["source_revision"] == f"python {platform.python_version()}"
    assert funnel["files"]["read"] == 25 and "typecheck" not in [s["name"] for s in funnel["steps"]]
    for before, after in zip(funnel["steps"], funnel["steps"][1:]):
        assert after["in"] == before["out"]
    # the same --out with other settings is refused instead of mixing two builds
    assert cli.main(["corpus", "build", "--source", "stdlib", "--out", str(out), "--limit", "25",
                     "--no-typecheck", "--near-threshold", "0.8"]) == 2
    assert json.loads((out / "funnel.json").read_text()) == funnel


def _bad(tmp_path, *argv) -> tuple[int, str]:
    out = tmp_path / "never"
    code = cli.main(["corpus", "build", *argv, "--out", str(out)])
    assert not out.exists(), "nothing may be written under --out on bad input"
    return code


def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    no_content = tmp_path / "nocontent.parquet"
    pl.DataFrame({"text": ["def f(): pass"]}).write_parquet(no_content)
    zero_rows = tmp_path / "zero"
    zero_rows.mkdir()
    pl.DataFrame({"content": []}, schema={"content": pl.String}).write_parquet(zero_rows / "z.parquet")
    cases = [
        (["--source", str(tmp_path / "missing")], "does not exist"),
        (["--source", "ftp://host/corpus"], "unknown scheme ftp://"),
        (["--source", str(no_content)], "no `content` column"),
        (["--source", str(empty)], "empty corpus"),
        (["--source", str(zero_rows)], "empty corpus"),
        (["--source", str(FIXTURE), "--benchmarks", "humaneval,apps"], "unknown benchmark 'apps'"),
        (["--source", str(FIXTURE), "--shard", "3/3"], "--shard"),
        (["--source", str(FIXTURE), "--benchmarks", str(tmp_path / "mbpp.jsonl")],
         f"benchmark file {tmp_path / 'mbpp.jsonl'} does not exist"),
    ]
    for argv, message in cases:
        assert _bad(tmp_path, *argv) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_s3_tables_in_and_s3_output(s3_bucket, tmp_path):
    """Parquet shards read from S3 and every output written there (the storage layer's atomic
    puts), with the type check off to keep it quick."""
    from multiplt import storage

    rows = {"content": ['def double_all(xs: list[int]) -> list[int]:\n    """Doubles."""\n'
                        '    out = [2 * x for x in xs]\n    return out\n', "x = (\n"],
            "repo": ["o/a", "o/b"]}
    buffer = tmp_path / "rows.parquet"
    pl.DataFrame(rows).write_parquet(buffer)
    storage.copy(str(buffer), f"{s3_bucket}/stack/python/part-0.parquet")
    out = f"{s3_bucket}/corpus"
    assert cli.main(["corpus", "build", "--source", f"{s3_bucket}/stack/python", "--out", out,
                     "--no-typecheck"]) == 0
    kept = storage.read_parquet(f"{out}/functions/part-00000.parquet")
    assert kept.select("id", "repo").rows() == [("part-0.parquet#0:1:double_all", "o/a")]
    excluded = storage.read_parquet(f"{out}/excluded/part-00000.parquet")
    assert excluded.select("id", "reason").rows() == [("part-0.parquet#1", "syntax_error")]
    assert storage.read_json(f"{out}/funnel.json")["steps"][-1]["out"] == 1
