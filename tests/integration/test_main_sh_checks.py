"""README: `./scripts/main.sh` checks its models, its teacher server, --publish-repo, the
languages, the numbers and the corpus source before Airflow starts; each problem "is one line on
stderr and exit code 2". This runs the real
scripts/main.sh (--no-setup; the option routing, then scripts/embedded_airflow.py main-job and its
job_models checks) with one bad argument at a time: exit 2, exactly one line on stderr naming the
problem, nothing on stdout about Airflow, and neither an Airflow home nor a data folder made,
whether given by --home/--data or by MULTIPLT_AIRFLOW_HOME/MULTIPLT_DATA. No Airflow starts: a
fraction of a second a case (tests/integration/test_main_sh.py runs the happy path, e2e).
The same checks through Python: tests/unit/multiplt_airflow/test_main_job_args.py."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


@pytest.mark.parametrize("bad, problem", [
    # a teacher URL whose path does not end in /v1
    (["--teacher", "http://127.0.0.1:1/v2"],
     "--teacher 'http://127.0.0.1:1/v2': an OpenAI-compatible server URL ends in /v1"),
    # an unreachable teacher server
    (["--teacher", "http://127.0.0.1:{port}/v1"],
     "--teacher http://127.0.0.1:{port}/v1: server unreachable"),
    (["--publish-repo", "a/b/c"], "--publish-repo 'a/b/c' is not OWNER/NAME"),
    # a folder without config.json, relative to where main.sh was started
    (["--model", "empty"], "--model {here}/empty holds no model: no config.json in it"),
    # what goes to the DAGs: language codes, numbers within their Params, a readable corpus
    (["--languages", "lua,rktt"], "--languages lua,rktt: unknown language 'rktt'; known: "),
    (["--languages", ","], "--languages ',' names no language"),
    (["--n", "0"], "--n 0: 0 is less than the minimum of 1 (Param n of multiplt_testgen)"),
    (["--limit", "0"], "--limit 0: 0 is less than the minimum of 1 (Param limit of "
                       "multiplt_evaluate)"),
    (["--corpus-limit", "-1"], "--corpus-limit -1: -1 is less than the minimum of 1"),
    (["--max-new-tokens", "9000"], "--max-new-tokens 9000: 9000 is greater than the maximum of"),
    (["--source", "nope_dir"], "--source 'nope_dir' does not exist"),
    (["--source", "s3:/bucket/corpus"], "--source 's3:/bucket/corpus' reads as a mistyped URI"),
    (["--source", "empty"], "--source '{here}/empty' is an empty corpus"),
    # waits of 0 seconds or less: Airflow would start, the runs be triggered and left queued
    (["--timeout", "-5"], "--timeout -5: must be more than 0 seconds"),
    (["--start-timeout", "0"], "--start-timeout 0: must be more than 0 seconds"),
], ids=["teacher-not-v1", "teacher-unreachable", "publish-repo", "model-without-config",
        "unknown-language", "no-language", "n", "limit", "corpus-limit", "max-new-tokens",
        "missing-source", "mistyped-source", "empty-source", "timeout", "start-timeout"])
def test_a_bad_argument_is_one_line_and_exit_2_before_airflow_starts(tmp_path, bad, problem):
    here = tmp_path / "elsewhere"
    (here / "model").mkdir(parents=True)
    (here / "model" / "config.json").write_text("{}")  # enough for the --model check
    (here / "empty").mkdir()
    fill = {"port": closed_port(), "here": here}
    bad = [arg.format(**fill) for arg in bad]
    problem = problem.format(**fill)
    home, data = tmp_path / "home", tmp_path / "data"
    env_home, env_data = tmp_path / "env-home", tmp_path / "env-data"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "MULTIPLT_AIRFLOW", "MULTIPLT_CALLER"))}
    env.update(MULTIPLT_AIRFLOW_HOME=str(env_home), MULTIPLT_DATA=str(env_data),
               HF_HUB_OFFLINE="1")
    # --exit-when-done, --port and --start-timeout: should a check be lost, Airflow stops
    # again instead of serving on 8080 until the timeout; the bad argument last, where it
    # overrides those (the last of an option wins)
    argv = [str(REPO / "scripts" / "main.sh"), "--no-setup", "--model", "model",
            "--exit-when-done", "--port", str(closed_port()), "--start-timeout", "5",
            "--home", str(home), "--data", str(data), *bad]
    proc = subprocess.run(argv, cwd=here, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"main-job: {problem}"), lines[0]
    assert "Airflow" not in proc.stdout, proc.stdout
    for folder in (home, data, env_home, env_data):
        assert not folder.exists(), f"{folder} was made"


def _copy_of_main_sh(root: pathlib.Path, venv: bool) -> pathlib.Path:
    """scripts/main.sh in a repository root of its own, whose scripts/setup.sh and .venv/bin/
    multiplt only leave a mark: any setup or model build --help starts shows there."""
    scripts = root / "scripts"
    scripts.mkdir(parents=True)
    main_sh = scripts / "main.sh"
    main_sh.write_text((REPO / "scripts" / "main.sh").read_text())
    main_sh.chmod(0o755)
    (scripts / "setup.sh").write_text(f"#!/bin/sh\ntouch '{root}/setup-ran'\n")
    (scripts / "setup.sh").chmod(0o755)
    (scripts / "embedded_airflow.py").symlink_to(REPO / "scripts" / "embedded_airflow.py")
    if venv:
        bin_ = root / ".venv" / "bin"
        bin_.mkdir(parents=True)
        (bin_ / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        (bin_ / "multiplt").write_text(f"#!/bin/sh\ntouch '{root}/model-built'\nexit 1\n")
        for exe in ("python", "multiplt"):
            (bin_ / exe).chmod(0o755)
    return main_sh


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_is_printed_before_any_setup_or_model_build(tmp_path, flag):
    """`./scripts/main.sh --help` prints its usage and every option of the job (those of
    scripts/embedded_airflow.py main-job), exit 0, without running scripts/setup.sh or building
    the tiny model; before the setup made .venv it says where the options are."""
    main_sh = _copy_of_main_sh(tmp_path / "repo", venv=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "MULTIPLT_AIRFLOW", "MULTIPLT_CALLER"))}
    env.update(MULTIPLT_AIRFLOW_HOME=str(tmp_path / "home"), MULTIPLT_DATA=str(tmp_path / "data"))
    proc = subprocess.run([str(main_sh), "--port", "1", flag], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert out.startswith("The platform's main job on the embedded default"), out[:500]
    for option in ("--no-setup", "--exit-when-done", "--start-timeout", "--home", "--languages",
                   "--source", "--corpus-limit", "--limit", "--teacher-model", "--publish-repo"):
        assert option in out, option
    assert not (tmp_path / "repo" / "setup-ran").exists(), "--help ran scripts/setup.sh"
    assert not (tmp_path / "repo" / "model-built").exists(), "--help built the tiny model"
    for folder in ("home", "data"):
        assert not (tmp_path / folder).exists()

    bare = _copy_of_main_sh(tmp_path / "bare", venv=False)
    proc = subprocess.run([str(bare), flag], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "needs .venv: run\nscripts/setup.sh first" in proc.stdout
    assert not (tmp_path / "bare" / "setup-ran").exists(), "--help ran scripts/setup.sh"


@pytest.mark.parametrize("bad, problem", [
    (["--n", "0"], "--n 0: 0 is less than the minimum of 1 (Param n of multiplt_testgen)"),
    (["--publish-repo", "a/b/c"], "--publish-repo 'a/b/c' is not OWNER/NAME"),
    (["--teacher-model", "t"], "--teacher-model needs --teacher"),
    (["--start-timeout", "0"], "--start-timeout 0: must be more than 0 seconds"),
], ids=["n", "publish-repo", "teacher-model", "start-timeout"])
def test_the_arguments_are_checked_before_the_tiny_model_is_built(tmp_path, bad, problem):
    """Without --model, main.sh builds the tiny model (minutes) when models/tiny is missing: a
    bad argument is one line and exit 2 before that build, not after it; good ones go on to it."""
    main_sh = _copy_of_main_sh(tmp_path / "repo", venv=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "MULTIPLT_AIRFLOW", "MULTIPLT_CALLER"))}
    env.update(MULTIPLT_AIRFLOW_HOME=str(tmp_path / "home"), MULTIPLT_DATA=str(tmp_path / "data"),
               HF_HUB_OFFLINE="1")
    argv = [str(main_sh), "--no-setup", "--languages", "lua", "--exit-when-done"]
    proc = subprocess.run([*argv, *bad], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stderr.splitlines() == [proc.stderr.splitlines()[0]]
    assert proc.stderr.startswith(f"main-job: {problem}"), proc.stderr
    assert not (tmp_path / "repo" / "model-built").exists(), "the model was built first"
    for folder in ("home", "data"):
        assert not (tmp_path / folder).exists()
    # good arguments: on to the build (here .venv/bin/multiplt's mark, exit 1)
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert (tmp_path / "repo" / "model-built").exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 1 and "building the tiny local model" in proc.stdout


@pytest.mark.parametrize("model", [False, True], ids=["before-the-model-build", "with-model"])
def test_an_unknown_option_is_one_line_naming_main_sh(tmp_path, model):
    """`./scripts/main.sh --no-setup --languages py --bogus` printed argparse's usage block of
    embedded_airflow.py (4 lines) before the error: one line naming main.sh, exit 2, whether it
    comes from the check before the tiny model's build or from the job itself (--model given)."""
    main_sh = _copy_of_main_sh(tmp_path / "repo", venv=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "MULTIPLT_AIRFLOW", "MULTIPLT_CALLER", "MULTIPLT_PROG"))}
    env.update(MULTIPLT_AIRFLOW_HOME=str(tmp_path / "home"), MULTIPLT_DATA=str(tmp_path / "data"),
               HF_HUB_OFFLINE="1")
    argv = [str(main_sh), "--no-setup", "--languages", "py", "--bogus"]
    if model:
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / "config.json").write_text("{}")
        argv += ["--model", str(tmp_path / "model")]
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stderr == "main.sh: unrecognized arguments: --bogus (--help lists the options)\n"
    assert not (tmp_path / "repo" / "model-built").exists()
    for folder in ("home", "data"):
        assert not (tmp_path / folder).exists()
