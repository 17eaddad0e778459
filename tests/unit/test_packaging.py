"""Packaging is honest: every import is pinned, the extras match the pins, and each kind of command
runs with only its extra installed (a Python that sees only that extra's distributions stands in
for a venv holding only that extra), while `multiplt` itself never imports Airflow."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest

from tests.packaging_facts import commands_on_disk
from tests import packaging_facts as facts

REQ = facts.read_pins(facts.ROOT / "requirements.txt")
REQ_TEST = facts.read_pins(facts.ROOT / "requirements-test.txt")
LOCK = facts.read_pins(facts.ROOT / "requirements.lock")
HEAVY = ("torch", "transformers", "accelerate", "datasets", "polars", "boto3", "botocore", "airflow",
         "huggingface_hub", "tokenizers", "numpy", "safetensors", "pyarrow", "pandas")


# ---- (a) pins ------------------------------------------------------------------------------------
def _unpinned(found: dict[str, list[str]], pins: dict[str, str]) -> list[str]:
    allowed = facts.requirement_closure(pins, exact_only=True)
    problems = []
    for module, where in sorted(found.items()):
        dist = facts.distribution_of(module)
        if dist is None:
            problems.append(f"{module} (imported at {where[0]}) is not installed: pin it or guard the import")
        elif dist not in allowed:
            version = facts.metadata.version(dist)
            problems.append(f"{module} (imported at {', '.join(where[:3])}) comes from {dist}, "
                            f"which is not pinned: add {dist}=={version}")
    return problems


def test_requirements_pin_every_import_of_the_platform():
    problems = _unpinned(facts.third_party_imports(facts.CODE_DIRS), REQ)
    assert not problems, "requirements.txt misses:\n" + "\n".join(problems)


def test_test_requirements_pin_every_import_of_the_tests():
    found = facts.third_party_imports(("tests", "bench", "scripts"))
    problems = _unpinned(found, {**REQ, **REQ_TEST})
    assert not problems, "requirements-test.txt misses:\n" + "\n".join(problems)


def test_pins_agree_with_the_lock():
    for name, version in {**REQ, **REQ_TEST}.items():
        assert LOCK.get(name) == version, f"{name}=={version} but requirements.lock has {LOCK.get(name)}"
    for name, version in {**REQ, **REQ_TEST}.items():  # and with what is installed here
        try:
            installed = facts.metadata.version(name).split("+")[0]
        except facts.metadata.PackageNotFoundError:
            continue  # e.g. the compose-only PostgreSQL driver before setup.sh reinstalls
        assert installed == version, f"installed {name}=={installed} differs from its pin {version}"


def test_extras_pin_what_requirements_txt_pins():
    declared = {"(core)": facts.core_pins(), **facts.extras()}
    for extra, pins in declared.items():
        for name, version in pins.items():
            assert REQ.get(name) == version, (
                f"pyproject {extra} pins {name}=={version}, requirements.txt has {REQ.get(name)}")
    in_some_extra = set().union(*declared.values())
    missing = sorted(set(REQ) - in_some_extra)
    assert not missing, f"requirements.txt pins {missing}, but no pyproject extra installs them"


def test_library_never_imports_airflow():
    hits = [f"{p.relative_to(facts.ROOT)}:{line}" for p in facts.python_files("multiplt")
            for module, line, _ in facts.imports(p) if module.partition(".")[0] == "airflow"]
    assert not hits, f"multiplt/ must not import Airflow: {hits}"


# ---- (b) each kind of command with only its extra --------------------------------------------------
# Each command runs in a Python that sees only the core package plus one extra: `python -I -S` (no
# site-packages) with a folder of symlinks to exactly that extra's distributions and their
# dependencies (tests/packaging_facts.site_with_only), and this checkout on sys.path.
PRELUDE = "import sys\nsys.path[:0] = [sys.argv.pop(1), sys.argv.pop(1)]\n"
RUN_CLI = "from multiplt.cli import main\nsys.exit(main(sys.argv[1:]))\n"


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """sites(extras) -> a site folder holding the core install plus those extras."""
    root = tmp_path_factory.mktemp("sites")
    built: dict[tuple, str] = {}

    def site(extras: tuple[str, ...]) -> str:
        if extras not in built:
            dists = set(facts.core_pins())
            for extra in extras:
                dists |= set(facts.extras()[extra])
            built[extras] = str(facts.site_with_only(dists, root / ("-".join(extras) or "core")))
        return built[extras]

    return site


def run_with_only(site: str, code: str, *args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-I", "-S", "-c", PRELUDE + code, site, str(facts.ROOT), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=timeout)


def multiplt_with_only(sites, extras: tuple[str, ...], *argv, **kwargs):
    result = run_with_only(sites(extras), RUN_CLI, *argv, **kwargs)
    assert result.returncode == 0, (
        f"multiplt {' '.join(argv)} with only {extras or 'the core install'}:\n{result.stderr[-3000:]}")
    return result


def test_an_extra_site_holds_only_that_extra(sites):
    core = sites(())
    assert run_with_only(core, "import yaml").returncode == 0
    missing = run_with_only(core, "import polars")
    assert missing.returncode != 0 and "No module named 'polars'" in missing.stderr
    assert run_with_only(sites(("storage",)), "import polars, boto3").returncode == 0


def test_core_install_runs_help_and_version_of_every_command(sites):
    multiplt_with_only(sites, (), "--version")
    listed = multiplt_with_only(sites, (), "--help").stdout
    code = ("from multiplt import cli\nparser = cli.build_parser()\n"
            "for name in sys.argv[1:]:\n"
            "    try:\n        parser.parse_args([name, '--help'])\n"
            "    except SystemExit as e:\n        assert e.code == 0, name\n")
    commands = sorted(commands_on_disk())
    result = run_with_only(sites(()), code, *commands)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in commands:
        assert name in listed


def test_importing_the_cli_loads_only_the_standard_library(sites):
    code = ("before = set(sys.modules)\nfrom multiplt import cli\ncli.build_parser()\n"
            "print('\\n'.join(sorted(set(sys.modules) - before)))\n")
    result = run_with_only(sites(()), code)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = {m.partition(".")[0] for m in result.stdout.split()}
    foreign = sorted(m for m in loaded if m not in sys.stdlib_module_names and m != "multiplt")
    assert not foreign, f"importing multiplt.cli and its command modules loads {foreign}"
    assert not set(HEAVY) & loaded


def _problem(name: str, completions: list[str]) -> dict:
    return {"name": name, "language": "py", "prompt": "def add(a, b):\n",
            "tests": "\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n\ncheck(add)\n",
            "completions": completions, "stop_tokens": ["\ndef", "\n#", "\nif", "\nclass"],
            "temperature": 0.2, "top_p": 0.95, "max_tokens": 64}


@pytest.mark.slow
def test_exec_extra_runs_execute_and_score(sites, tmp_path):
    if not {"execute", "score"} <= commands_on_disk():
        pytest.fail("`multiplt execute` and `multiplt score` must exist (EXEC's commands)")
    folder = tmp_path / "run"
    folder.mkdir()
    for name, completions in {"add_0": ["    return a + b\n", "    return a - b\n"],
                              "add_1": ["    return b + a\n", "    return a + b\n"]}.items():
        (folder / f"{name}.json.gz").write_bytes(gzip.compress(json.dumps(_problem(name, completions)).encode()))
    multiplt_with_only(sites, ("exec",), "execute", "--in", str(folder), "--unsafe-no-sandbox")
    results = json.loads(gzip.decompress((folder / "add_0.results.json.gz").read_bytes()))
    assert [r["status"] for r in results["results"]] == ["OK", "AssertionError"]
    multiplt_with_only(sites, ("exec",), "score", "--in", str(folder))
    rows = (folder / "_scores.csv").read_text().splitlines()
    assert rows[0] == "Dataset,Pass@k,Estimate,NumProblems,MinCompletions,MaxCompletions"
    assert rows[1].split(",")[1:] == ["1", "0.75", "2", "2", "2"], rows


def test_storage_extra_records_and_shows_results(sites, tmp_path):
    run = tmp_path / "humaneval-py-tiny-main-0.2"
    run.mkdir()
    (run / "_scores.csv").write_text("Dataset,Pass@k,Estimate,NumProblems,MinCompletions,MaxCompletions\n"
                                     "humaneval-py,1,0.25,4,20,20\n")
    (run / "_multiplt_run.yaml").write_text(
        "model: tiny\nrevision: main\nresolved_commit: null\ntokenizer: null\nbenchmark: b.jsonl\n"
        "benchmark_sha256: '00'\nlang: py\nn: 20\ntemperature: 0.2\ntop_p: 0.95\nmax_new_tokens: 64\n"
        "seed: 0\nbackend: transformers\nexperiment: base\nepoch: 0\n")
    store = tmp_path / "results.parquet"
    multiplt_with_only(sites, ("storage",), "results", "record", "--scores", str(run), "--store", str(store))
    shown = multiplt_with_only(sites, ("storage",), "results", "show", "--store", str(store), "--format", "csv").stdout
    assert "tiny" in shown and "0.25" in shown


@pytest.mark.slow
def test_bench_and_gen_extras_build_a_benchmark_and_generate(sites, tiny_model, tmp_path):
    bench = tmp_path / "humaneval-py.jsonl"
    multiplt_with_only(sites, ("bench",), "benchmark", "build", "--source", "humaneval", "--lang", "py",
                       "--out", str(bench), "--limit", "1")
    assert len(bench.read_text().splitlines()) == 1
    out = tmp_path / "run"
    multiplt_with_only(sites, ("gen",), "generate", "--benchmark", str(bench), "--model", tiny_model, "--n", "2",
                       "--max-new-tokens", "8", "--out", str(out))
    files = sorted(p.name for p in out.iterdir())
    assert "_multiplt_run.yaml" in files and len([f for f in files if f.endswith(".json.gz")]) == 1


@pytest.mark.slow
def test_train_extra_fine_tunes(sites, tiny_model, tmp_path):
    data = tmp_path / "racket.jsonl"
    data.write_text("".join(json.dumps({"content": f"#lang racket\n(define (f{i} x) (+ x {i}))\n"}) + "\n"
                            for i in range(40)))
    out = tmp_path / "train"
    multiplt_with_only(sites, ("train",), "train", "--dataset", str(data), "--base", tiny_model, "--lang", "rkt",
                       "--experiment", "extras", "--out", str(out), "--epochs", "1", "--seq-len", "32",
                       "--batch-size", "4", "--micro-batch-size", "2", "--warmup-steps", "1",
                       "--eval-fraction", "0.1")
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["tag"] for r in rows] == ["rkt-extras-epoch1"]


@pytest.mark.slow
def test_airflow_extra_parses_the_dags_and_loads_the_plugins(sites, tmp_path):
    """The scheduler side (docker/airflow.Dockerfile) holds only `airflow` + `storage`: the DAG
    files and the stage runtime must load there without any GPU or sandbox package."""
    code = ("sys.path[:0] = [sys.argv.pop(1), sys.argv[1]]\n"
            "from airflow.dag_processing.dagbag import DagBag\n"
            "bag = DagBag(dag_folder=sys.argv[1])\n"
            "assert not bag.import_errors, bag.import_errors\n"
            "import multiplt_airflow.stage\n"
            "print(len(bag.dag_ids))\n")
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(facts.ROOT / "dags"),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(facts.ROOT / "plugins")}
    result = subprocess.run([sys.executable, "-I", "-S", "-c", PRELUDE + code, sites(("airflow", "storage")),
                             str(facts.ROOT), str(facts.ROOT / "plugins"), str(facts.ROOT / "dags")],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
