"""The main job's arguments (scripts/embedded_airflow.py main-job): --model, --teacher,
--teacher-model and --publish-repo -> the chain DAGs' Variables (chain_job.chain_settings), the
teacher's checks (job_models) with one-line errors and exit 2, and the environment Airflow and
its stages get (offline unless the Hub is needed; HF_ENDPOINT and HF_TOKEN inherited)."""

from __future__ import annotations

import argparse
import socket

import pytest

from multiplt.errors import MultipltError
from multiplt_airflow import chain_job, job_models
from multiplt_airflow.rest import AirflowAPIError
from tests.support.airflow import load_launcher

TARGETS = ["rkt", "jl", "r", "ml", "lua"]


def settings(**kw):
    return chain_job.chain_settings(model="org/base", languages=["py", "lua", "rkt"],
                                    targets=TARGETS, root="s3://b/job", publish_dir="/tmp/pub",
                                    n=2, max_new_tokens=64, limit=1, **kw)


def test_default_teacher_is_the_model_and_publication_is_a_dry_run():
    v = settings()
    for dag in ("multiplt_testgen", "multiplt_translate"):
        assert (v[dag]["backend"], v[dag]["model"]) == ("transformers", "org/base")
        assert "api_base" not in v[dag]
    assert v["multiplt_testgen"]["out"] == "s3://b/job/testgen"
    assert v["multiplt_translate"]["languages"] == ["lua", "rkt"]  # py is no target
    assert v["multiplt_finetune"]["base_model"] == "org/base"
    assert v["multiplt_finetune"]["limit"] == 1 and v["multiplt_finetune"]["epochs"] == 1
    assert v["multiplt_publish"] == {"dataset_repo": "local/multiplt-main-job",
                                     "dry_run": "/tmp/pub"}


def test_a_served_teacher_writes_tests_and_translations_and_the_model_is_trained():
    teacher = {"backend": "openai", "model": "served-7b", "api_base": "http://h:8000/v1"}
    v = settings(teacher=teacher, publish_repo="me/run")
    for dag in ("multiplt_testgen", "multiplt_translate"):
        assert {k: v[dag][k] for k in ("backend", "model", "api_base", "n", "max_new_tokens")} == {
            "backend": "openai", "model": "served-7b", "api_base": "http://h:8000/v1", "n": 2,
            "max_new_tokens": 64}
    assert v["multiplt_finetune"]["base_model"] == "org/base"
    assert v["multiplt_finetune"]["backend"] == "transformers"  # evaluation runs the checkpoints
    assert v["multiplt_publish"] == {"dataset_repo": "me/run", "checkpoints_repo": "me/run"}


def test_the_testgen_plan_passes_the_teacher_server_on():
    from multiplt_pipelines import testgen as plans

    params = {k: p["default"] for k, p in plans.PARAMS.items()}
    params.update(settings(teacher={"backend": "openai", "model": "t",
                                    "api_base": "http://h/v1"})["multiplt_testgen"])
    params["functions"] = "file:///data/corpus/stdlib/functions"  # plan requires the input
    [entry] = plans.testgen_plan(params, "file:///data")
    argv = entry["generate"]
    assert argv[argv.index("--backend") + 1] == "openai"
    assert argv[argv.index("--api-base") + 1] == "http://h/v1"
    assert argv[argv.index("--model") + 1] == "t"


def test_teacher_server_model_is_asked_from_the_server_or_checked(completions_server):
    assert job_models.teacher_generation(completions_server.url) == {
        "backend": "openai", "model": "teacher", "api_base": completions_server.url}
    url = completions_server.url
    assert job_models.teacher_generation(url.removesuffix("/v1"), "teacher")["api_base"] == url
    with pytest.raises(MultipltError, match=r"--teacher-model 'other' is not served by .*teacher"):
        job_models.teacher_generation(completions_server.url, "other")
    completions_server.models.append("second")
    with pytest.raises(MultipltError, match="serves 2 models .*--teacher-model"):
        job_models.teacher_generation(completions_server.url)


def test_bad_or_unreachable_teacher_urls_are_clear_errors():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(MultipltError, match="server unreachable"):
        job_models.teacher_generation(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(MultipltError, match="ends in /v1"):
        job_models.teacher_generation(f"http://127.0.0.1:{port}/api")
    with pytest.raises(MultipltError, match="not a server URL"):
        job_models.teacher_generation("http:///v1")


def test_unknown_models_are_clear_errors(tmp_path, tiny_model, test_hub):
    job_models.check_model(tiny_model)
    with pytest.raises(MultipltError, match="no config.json"):
        job_models.check_model(str(tmp_path))
    with pytest.raises(MultipltError, match="neither a model folder"):
        job_models.check_model(str(tmp_path / "missing"))
    with pytest.raises(MultipltError, match="'ns/nothing': no such model on the Hub"):
        job_models.check_model("ns/nothing")
    with pytest.raises(MultipltError, match="--teacher .*no such model on the Hub"):
        job_models.teacher_generation("ns/nothing")


def test_main_job_exits_2_with_one_line_before_starting_airflow(tiny_model, tmp_path, capsys):
    launcher = load_launcher()
    rc = launcher.main(["--home", str(tmp_path / "home"), "main-job", "--model", tiny_model,
                        "--teacher", "http://127.0.0.1:1/v1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "server unreachable" in err
    assert not (tmp_path / "home").exists()  # nothing was started
    rc = launcher.main(["--home", str(tmp_path / "home"), "main-job", "--model",
                        str(tmp_path / "nothing")])
    assert rc == 2 and "--model" in capsys.readouterr().err


@pytest.mark.parametrize("argv, line", [
    (["--start-timeout", "-1", "serve"], "serve: --start-timeout -1: must be more than 0 seconds"),
    (["--start-timeout", "0", "main-job"], "main-job: --start-timeout 0: must be more than 0 seconds"),
    (["main-job", "--timeout", "-5"], "main-job: --timeout -5: must be more than 0 seconds"),
    (["main-job", "--timeout", "nan"], "main-job: --timeout nan: must be more than 0 seconds"),
], ids=["serve-start-timeout", "start-timeout", "timeout", "timeout-nan"])
def test_a_wait_of_no_time_is_refused_before_starting_airflow(tiny_model, tmp_path, capsys,
                                                              monkeypatch, argv, line):
    """--timeout -5 started Airflow, triggered the chain's runs, then gave up at once (exit 1),
    leaving them queued: like the other checked numbers it is one line and exit 2 first."""
    from multiplt_airflow.embedded import EmbeddedAirflow

    started = []

    def start(self, timeout=300):  # Airflow would start here: end the run (exit 1) instead
        started.append(timeout)
        raise TimeoutError("started")

    monkeypatch.setattr(EmbeddedAirflow, "start", start)
    monkeypatch.setattr(EmbeddedAirflow, "stop", lambda self, grace=30: None)
    launcher = load_launcher()
    if "main-job" in argv:
        argv = [*argv, "--model", tiny_model, "--languages", "lua"]
    rc = launcher.main(["--home", str(tmp_path / "home"), "--data", str(tmp_path / "data"), *argv])
    assert (rc, capsys.readouterr().err, started) == (2, line + "\n", [])
    assert not (tmp_path / "home").exists() and not (tmp_path / "data").exists()


def test_airflow_runs_offline_unless_the_job_needs_the_hub(tiny_model, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def env(*argv):
        parser = argparse.Namespace(cmd="main-job", model=argv[0], teacher=None, publish_repo=None)
        for key, value in zip(argv[1::2], argv[2::2]):
            setattr(parser, key, value)
        return job_models.airflow_environment(parser)

    assert env(tiny_model)["HF_HUB_OFFLINE"] == "1"
    assert env(tiny_model, "teacher", "http://h:8000/v1")["HF_HUB_OFFLINE"] == "1"
    assert "HF_HUB_OFFLINE" not in env("org/base")
    assert "HF_HUB_OFFLINE" not in env(tiny_model, "teacher", "org/teacher")
    assert "HF_HUB_OFFLINE" not in env(tiny_model, "publish_repo", "me/run")
    assert "HF_HUB_OFFLINE" not in env(tiny_model, "source", "hf://datasets/org/corpus")
    assert env(tiny_model, "source", "stdlib")["HF_HUB_OFFLINE"] == "1"


def test_the_teacher_test_server_replays_n_recorded_completions_per_prompt(completions_server):
    """tests/support/completions_server.py, as the openai backend calls it."""
    import json
    import urllib.error
    import urllib.request

    completions_server.record("def f():\n", ["right", "wrong"])

    def post(body):
        req = urllib.request.Request(completions_server.url + "/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return [c["text"] for c in json.loads(resp.read())["choices"]]

    assert post({"model": "teacher", "prompt": "def f():", "n": 2}) == ["right", "wrong"]
    assert post({"model": "teacher", "prompt": "  def f():\n", "n": 1}) == ["right"]  # in turn
    assert post({"model": "teacher", "prompt": "def f():"}) == ["wrong"]
    for body, code in (({"model": "other", "prompt": "def f():"}, 404),
                       ({"model": "teacher", "prompt": "def g():"}, 400)):
        with pytest.raises(urllib.error.HTTPError) as err:
            post(body)
        assert err.value.code == code


def test_the_openai_backend_gets_the_recorded_completions_from_the_test_server(completions_server):
    from multiplt.generation.backends import make_backend
    from multiplt.generation.base import Request, Sampling

    completions_server.record("p1", ["a", "b"])
    backend = make_backend("openai", model="teacher", api_base=completions_server.url)
    requests = [Request(problem="x", index=i, prompt="p1") for i in range(2)]
    got = sorted(text for batch in backend.generate(requests, Sampling(max_new_tokens=4))
                 for _, text in batch)
    assert got == ["a", "b"]


def test_local_paths_become_absolute_for_the_stages(tmp_path, monkeypatch):
    """Airflow runs each stage in another working folder: a relative --source or --model (as in
    the README's `--source tests/fixtures/corpus/planted`) is made absolute; Hub ids, URIs and
    stdlib stay as they are."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MULTIPLT_CALLER_PWD", raising=False)
    args = argparse.Namespace(model="model", teacher=None, teacher_model=None, publish_repo=None,
                              source="corpus")
    job_models.check_job_models(args)
    assert (args.model, args.source) == (str(tmp_path / "model"), str(tmp_path / "corpus"))
    # started elsewhere by scripts/main.sh (which then changes to the repository root)
    monkeypatch.chdir("/")
    monkeypatch.setenv("MULTIPLT_CALLER_PWD", str(tmp_path))
    args = argparse.Namespace(model="model", teacher=None, source="corpus")
    job_models.absolute_local_paths(args)
    assert (args.model, args.source) == (str(tmp_path / "model"), str(tmp_path / "corpus"))
    args = argparse.Namespace(model="s3://b/m", teacher="org/teacher", source="stdlib")
    job_models.absolute_local_paths(args)
    assert (args.model, args.teacher, args.source) == ("s3://b/m", "org/teacher", "stdlib")


@pytest.mark.parametrize("error, line", [
    (AirflowAPIError("POST", "/api/v2/dags/multiplt_evaluate/dagRuns", 400,
                     '{"detail":\n  "conf invalid"}'),
     'main-job: POST /api/v2/dags/multiplt_evaluate/dagRuns -> HTTP 400: {"detail": "conf invalid"}'),
    (TimeoutError("run r1 of multiplt_corpus still running after 3600s"),
     "main-job: run r1 of multiplt_corpus still running after 3600s"),
], ids=["api-error", "timeout"])
def test_an_airflow_api_error_or_timeout_is_one_line_and_exit_1(tiny_model, tmp_path, capsys,
                                                               monkeypatch, error, line):
    """An answer of the REST API the job cannot go on with (or a run that outlives --timeout)
    is one line on stderr and exit code 1, Airflow stopped, not a traceback."""
    from multiplt_airflow.embedded import EmbeddedAirflow

    stopped = []

    def start(self, timeout=300):
        raise error

    monkeypatch.setattr(EmbeddedAirflow, "start", start)
    monkeypatch.setattr(EmbeddedAirflow, "stop", lambda self, grace=30: stopped.append(self))
    launcher = load_launcher()
    rc = launcher.main(["--home", str(tmp_path / "home"), "main-job", "--model", tiny_model,
                        "--languages", "lua", "--exit-when-done"])
    assert rc == 1 and len(stopped) == 1
    assert capsys.readouterr().err == line + "\n"



def test_check_only_checks_and_starts_nothing(tiny_model, tmp_path, capsys, monkeypatch):
    """--check-only (scripts/main.sh's pass before it builds the tiny model): the checks as before
    Airflow starts, then exit 0 without starting it; --model may be left out then, and only
    then: it is checked when given."""
    from multiplt_airflow.embedded import EmbeddedAirflow

    def start(self, timeout=300):
        raise AssertionError("Airflow was started")

    monkeypatch.setattr(EmbeddedAirflow, "start", start)
    launcher = load_launcher()
    home = ["--home", str(tmp_path / "home"), "--data", str(tmp_path / "data")]
    assert launcher.main([*home, "--check-only", "main-job", "--languages", "lua"]) == 0
    assert launcher.main([*home, "--check-only", "main-job", "--model", tiny_model]) == 0
    assert launcher.main([*home, "--check-only", "serve"]) == 0
    assert launcher.main([*home, "--check-only", "main-job", "--languages", "lua,rktt"]) == 2
    assert "main-job: --languages lua,rktt: unknown language 'rktt'" in capsys.readouterr().err
    assert launcher.main([*home, "--check-only", "main-job", "--model", str(tmp_path / "no")]) == 2
    assert "--model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        launcher.main([*home, "main-job", "--languages", "lua"])
    assert exited.value.code == 2
    assert "the following arguments are required: --model" in capsys.readouterr().err
    assert not (tmp_path / "home").exists() and not (tmp_path / "data").exists()
