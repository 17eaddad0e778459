"""Every stage's record carries the `provenance` block (multiplt.provenance: the code version,
Python's and the stage's libraries' versions), the results store a `code_version` column from
the run record's; and a folder begun by another version of the code is resumed, never refused
for it (provenance is no part of a fingerprint, run identity or run_id)."""

from __future__ import annotations

import json
import pathlib
import platform

import polars as pl
import pytest
import yaml

from multiplt import cli, provenance, storage
from multiplt.errors import MultipltError
from tests.fixtures import translate as fx

OLD, NEW = "1" * 40, "2" * 40 + "-dirty"
TESTGEN_FIXTURE = pathlib.Path(__file__).parents[1] / "fixtures" / "testgen"


@pytest.fixture
def code(monkeypatch):
    """Sets the code version the records name (as another checkout or image would give it)."""
    def run_as(version: str) -> None:
        monkeypatch.setattr(provenance, "code_version", lambda: provenance.environment_version(version))
    return run_as


def check_block(block: dict, version: str, libraries: tuple[str, ...]) -> None:
    from importlib import metadata

    assert block["code_version"] == version
    assert block["python"] == platform.python_version()
    assert block["multiplt"] == __import__("multiplt").__version__
    installed = {}
    for name in libraries:
        try:
            installed[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    assert block["libraries"] == installed


# ---- corpus -----------------------------------------------------------------------------------
def corpus_config(tmp_path, typecheck=False):
    from multiplt.corpus.config import CorpusConfig

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "gen.py").write_text('def small(x):\n    """Doubles."""\n    return x * 2\n')
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"task_id": 1, "text": "Add.", "code": "def add(a, b):\n    return a + b\n"}) + "\n")
    return CorpusConfig(source=str(tmp_path / "src"), out=str(tmp_path / "out"), benchmarks=(str(bench),),
                        typecheck=typecheck)


def test_a_corpus_build_begun_by_other_code_is_finished_and_its_config_names_the_merges(tmp_path, code, caplog):
    """Shard 0 built by one version, shard 1, dedup and merge by another: accepted (the
    fingerprint holds no code version), and corpus_config.json's provenance is the merge's, its
    shard_provenance each shard's (in shard order), with a warning naming both versions;
    without the type check, basedpyright's version is not named."""
    from multiplt.corpus import pipeline
    from multiplt.corpus.dedup import run_bucket
    from multiplt.corpus.merge import merge

    cfg = corpus_config(tmp_path)
    code(OLD)
    pipeline.build(cfg, (0, 2))
    code(NEW)
    pipeline.build(cfg, (1, 2))
    run_bucket(cfg.out, 0, 1)
    merge(cfg.out)
    config = json.loads((tmp_path / "out" / "corpus_config.json").read_text())
    check_block(config["provenance"], NEW, provenance.CORPUS)
    assert {"fingerprint", "source_revision", "benchmark_sha256", "typecheck"} <= set(config)
    claimed = json.loads((tmp_path / "out" / "_work" / "config.json").read_text())
    assert "provenance" not in claimed and claimed["fingerprint"] == config["fingerprint"]
    assert [block["code_version"] for block in config["shard_provenance"]] == [OLD, NEW]
    check_block(config["shard_provenance"][0], OLD, provenance.CORPUS)
    warned = [r.getMessage() for r in caplog.records if "shard_provenance" in r.getMessage()]
    assert len(warned) == 1 and f"2 code version(s) ({OLD}, {NEW})" in warned[0], warned


def test_a_corpus_build_by_one_version_names_it_once_and_does_not_warn(tmp_path, code, caplog):
    from multiplt.corpus import pipeline
    from multiplt.corpus.dedup import run_bucket
    from multiplt.corpus.merge import merge

    cfg = corpus_config(tmp_path)
    code(NEW)
    for k in range(2):
        pipeline.build(cfg, (k, 2))
    run_bucket(cfg.out, 0, 1)
    merge(cfg.out)
    config = json.loads((tmp_path / "out" / "corpus_config.json").read_text())
    assert config["shard_provenance"] == [config["provenance"]]
    assert not [r for r in caplog.records if "shard_provenance" in r.getMessage()]


def test_a_type_checked_build_names_basedpyrights_version(tmp_path, code):
    """Its type_error drops depend on basedpyright's version (and Python's)."""
    code(NEW)
    cfg = corpus_config(tmp_path, typecheck=True)
    check_block(cfg.provenance(), NEW, provenance.CORPUS + ("basedpyright",))
    assert "provenance" not in cfg.as_dict()  # the shards' recorded config stays as it was


# ---- testgen ----------------------------------------------------------------------------------
def functions_folder(tmp_path) -> str:
    rows = [json.loads(line) for line in (TESTGEN_FIXTURE / "functions.jsonl").read_text().splitlines()]
    (tmp_path / "fn" / "functions").mkdir(parents=True)
    pl.DataFrame(rows).write_parquet(tmp_path / "fn" / "functions" / "part-0.parquet")
    return str(tmp_path / "fn")


def test_a_testgen_shard_begun_by_other_code_is_resumed_and_its_config_names_the_new(tmp_path, code):
    fn, out = functions_folder(tmp_path), tmp_path / "tg"

    def generate() -> int:
        return cli.main(["testgen", "--functions", fn, "--out", str(out), "--backend", "replay",
                         "--replay-source", str(TESTGEN_FIXTURE / "replay.jsonl"), "--n", "2",
                         "--stage", "generate"])

    code(OLD)
    assert generate() == 0
    uri = out / "work" / "shard-all" / "config.json"
    check_block(json.loads(uri.read_text())["provenance"], OLD, provenance.TESTGEN)
    code(NEW)
    assert generate() == 0
    config = json.loads(uri.read_text())
    check_block(config["provenance"], NEW, provenance.TESTGEN)
    assert config["validation"] and config["python_hash_seeds"] and config["n"] == 2
    # the completions were all drawn by the first run: their record names it
    record = yaml.safe_load((out / "work" / "shard-all" / "completions" / "_multiplt_run.yaml").read_text())
    assert record["provenance"]["code_version"] == OLD


# ---- translate --------------------------------------------------------------------------------
def test_a_translate_shards_config_names_its_code_and_keeps_its_versions_block(tmp_path, code):
    """A shard of one function that no language translates (no sampling, no sandbox): its config
    has `provenance` and the `versions` block as before."""
    given = fx.write(tmp_path / "in")
    pl.DataFrame(fx.ROWS).filter(pl.col("entrypoint") == "set_size").write_parquet(
        tmp_path / "in" / "tests" / "part-0.parquet")
    code(NEW)
    assert fx.replay_translate(given, tmp_path / "tr", "lua") == 0
    config = json.loads((tmp_path / "tr" / "config" / "lua-0-of-1.json").read_text())
    check_block(config["provenance"], NEW, provenance.TRANSLATE)
    assert config["versions"] == {"multiplt": config["provenance"]["multiplt"],
                                  "rouge-score": config["provenance"]["libraries"]["rouge-score"]}


@pytest.mark.slow
def test_a_translate_sampled_by_other_code_is_collected(tmp_path, code):
    """Sampled by one version, executed and collected by another: accepted; the shard's config
    names the collect's code, its `run` (the generate record) the sampling's."""
    given = fx.write(tmp_path / "in")
    code(OLD)
    assert fx.replay_translate(given, tmp_path / "tr", "lua", "--stage", "sample") == 0
    code(NEW)
    assert fx.replay_translate(given, tmp_path / "tr", "lua") == 0
    config = json.loads((tmp_path / "tr" / "config" / "lua-0-of-1.json").read_text())
    assert config["provenance"]["code_version"] == NEW
    assert config["run"]["provenance"]["code_version"] == OLD


# ---- generate and the results store ------------------------------------------------------------
HEADER = "Dataset,Pass@k,Estimate,NumProblems,MinCompletions,MaxCompletions\n"


def lua_bench(tmp_path) -> tuple[str, str]:
    names = [f"HumanEval_{i}_f" for i in range(3)]
    bench = str(tmp_path / "bench-lua.jsonl")
    storage.write_jsonl(bench, [{"name": n, "language": "lua", "prompt": f"local function {n}(x)\n",
                                 "tests": "\n", "stop_tokens": ["\nlocal"]} for n in names])
    replay = str(tmp_path / "replay.jsonl")
    storage.write_jsonl(replay, [{"name": n, "completion": f"  return x + {j}\nend\n"}
                                 for n in names for j in range(3)])
    return bench, replay


def generate(bench, out, n, **kw):
    from multiplt.generation.driver import generate as run

    uri, replay = bench
    return run(uri, str(out), backend="replay", replay_source=replay, model="replayed", n=n, **kw)


def record(out: pathlib.Path) -> dict:
    return yaml.safe_load((out / "_multiplt_run.yaml").read_text())


def test_a_generate_folder_begun_by_other_code_is_resumed_and_names_the_code_that_drew_last(tmp_path, code):
    bench, out = lua_bench(tmp_path), tmp_path / "run"
    code(OLD)
    generate(bench, out, 2)
    check_block(record(out)["provenance"], OLD, provenance.GENERATION)
    code(NEW)
    assert generate(bench, out, 2)["generated"] == 0  # nothing to draw: the record is left as it was
    assert record(out)["provenance"]["code_version"] == OLD
    assert generate(bench, out, 3)["generated"] == 3  # one more sample each: drawn by NEW
    check_block(record(out)["provenance"], NEW, provenance.GENERATION)
    assert record(out)["n"] == 3 and record(out)["complete"] is True


def scored(bench, out, n=2) -> str:
    generate(bench, out, n)
    (out / "_scores.csv").write_text(HEADER + f"{out.name},1,0.5,3,{n},{n}\n")
    return str(out)


def test_a_results_row_has_the_run_records_code_version(tmp_path, code):
    from multiplt.results import COLUMNS, read_store, record_runs

    assert "code_version" in COLUMNS
    code(NEW)
    run = scored(lua_bench(tmp_path), tmp_path / "run")
    store = str(tmp_path / "results.parquet")
    record_runs([run], store)
    (row,) = read_store(store).rows(named=True)
    assert row["code_version"] == NEW


def test_a_run_resumed_by_other_code_keeps_its_run_id_and_a_record_without_provenance_is_null(tmp_path, code):
    """The run_id hashes the record without its provenance: a folder whose last samples another
    version drew replaces its rows (now naming that version), and a record written before
    generate kept provenance has the same id, with code_version null."""
    from multiplt.results import read_store, record_runs

    code(OLD)
    run = scored(lua_bench(tmp_path), tmp_path / "run")
    store = str(tmp_path / "results.parquet")
    record_runs([run], store)
    (first,) = read_store(store).rows(named=True)
    assert first["code_version"] == OLD
    path = pathlib.Path(run) / "_multiplt_run.yaml"
    config = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**config, "provenance": {**config["provenance"], "code_version": NEW}},
                                   sort_keys=False))
    record_runs([run], store)
    (again,) = read_store(store).rows(named=True)
    assert (again["run_id"], again["code_version"], again["created_at"]) == (
        first["run_id"], NEW, first["created_at"])
    path.write_text(yaml.safe_dump({k: v for k, v in config.items() if k != "provenance"}, sort_keys=False))
    record_runs([run], store)
    (older,) = read_store(store).rows(named=True)
    assert (older["run_id"], older["code_version"]) == (first["run_id"], None)


def test_a_store_written_before_the_column_reads_it_as_null(tmp_path, code):
    from multiplt.results import read_store, record_runs

    code(OLD)
    store = tmp_path / "results.parquet"
    record_runs([scored(lua_bench(tmp_path), tmp_path / "run")], str(store))
    pl.read_parquet(store).drop("code_version").write_parquet(store)
    table = read_store(str(store))
    assert table["code_version"].to_list() == [None]


def test_a_provenance_that_is_not_a_mapping_is_refused_naming_the_record(tmp_path, code):
    from multiplt.results import record_runs

    code(OLD)
    run = scored(lua_bench(tmp_path), tmp_path / "run")
    path = pathlib.Path(run) / "_multiplt_run.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "provenance": "abc"}, sort_keys=False))
    with pytest.raises(MultipltError, match=r"_multiplt_run.yaml: provenance must be a mapping "
                                            r"\(generate writes it\), got 'abc'"):
        record_runs([run], str(tmp_path / "results.parquet"))
