"""Packaging is honest: every import is pinned, the extras match the pins, and each kind of command
runs with only its extra importable (a `sys.meta_path` blocker stands in for a venv holding only
that extra), while `multiplt` itself never imports Airflow."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest

from multiplt import cli
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
BLOCKER = r"""
import importlib.abc, json, os, sys
ALLOWED = set(json.loads(os.environ["MULTIPLT_TEST_ALLOWED"]))
class ExtraOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in ALLOWED or top in sys.stdlib_module_names or top.startswith("__editable__"):
            return None
        raise ModuleNotFoundError(f"No module named {name!r} (not in the extra under test)", name=name)
sys.meta_path.insert(0, ExtraOnly())
"""


def allowed_roots(*extras: str) -> list[str]:
    """Import names available in a venv holding the core package plus `extras`."""
    dists = set(facts.core_pins())
    for extra in extras:
        dists |= set(facts.extras()[extra])
    return sorted(facts.import_roots_of(facts.requirement_closure(dists)) | {"multiplt"})


def run_with_only(extras: tuple[str, ...], code: str, *args, cwd=None, timeout=300):
    env = {**os.environ, "MULTIPLT_TEST_ALLOWED": json.dumps(allowed_roots(*extras))}
    return subprocess.run([sys.executable, "-c", BLOCKER + code, *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


RUN_CLI = "\nfrom multiplt.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def multiplt_with_only(extras, *argv, **kwargs):
    result = run_with_only(extras, RUN_CLI, *argv, **kwargs)
    assert result.returncode == 0, f"multiplt {' '.join(argv)} with only {extras or 'core'}:\n{result.stderr[-3000:]}"
    return result


def test_blocker_really_blocks():
    result = run_with_only((), "import polars")
    assert result.returncode != 0 and "not in the extra under test" in result.stderr


def test_core_install_runs_help_and_version_of_every_command():
    multiplt_with_only((), "--version")
    listed = multiplt_with_only((), "--help").stdout
    code = ("\nfrom multiplt import cli\nparser = cli.build_parser()\n"
            "for name in sys.argv[1:]:\n"
            "    try:\n        parser.parse_args([name, '--help'])\n"
            "    except SystemExit as e:\n        assert e.code == 0, name\n")
    commands = sorted(_registered())
    result = run_with_only((), code, *commands)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in commands:
        assert name in listed


def _registered() -> set[str]:
    import argparse
    import importlib

    sub = argparse.ArgumentParser().add_subparsers()
    for name in cli.COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return set(sub.choices)


def test_importing_the_cli_loads_only_the_standard_library():
    code = ("\nbefore = set(sys.modules)\nfrom multiplt import cli\ncli.build_parser()\n"
            "print('\\n'.join(sorted(set(sys.modules) - before)))\n")
    result = run_with_only((), code)
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
def test_exec_extra_runs_execute_and_score(tmp_path):
    if not {"execute", "score"} <= _registered():
        pytest.fail("`multiplt execute` and `multiplt score` must exist (EXEC's commands)")
    folder = tmp_path / "run"
    folder.mkdir()
    for name, completions in {"add_0": ["    return a + b\n", "    return a - b\n"],
                              "add_1": ["    return b + a\n", "    return a + b\n"]}.items():
        (folder / f"{name}.json.gz").write_bytes(gzip.compress(json.dumps(_problem(name, completions)).encode()))
    multiplt_with_only(("exec",), "execute", str(folder), "--unsafe-no-sandbox")
    results = json.loads(gzip.decompress((folder / "add_0.results.json.gz").read_bytes()))
    assert [r["status"] for r in results["results"]] == ["OK", "AssertionError"]
    multiplt_with_only(("exec",), "score", str(folder))
    rows = (folder / "_scores.csv").read_text().splitlines()
    assert rows[0] == "Dataset,Pass@k,Estimate,NumProblems,MinCompletions,MaxCompletions"
    assert rows[1].split(",")[1:] == ["1", "0.75", "2", "2", "2"], rows
