"""Least privilege for stage tasks: each stage gets only the credentials its command line can use
(plugins/multiplt_airflow/credentials.py `needed`), in both runtimes: the exact mapping for every
command line the DAGs' plans build, with file:// and s3:// data roots, and what a docker
container and a local subprocess really get."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
for _path in (str(REPO / "dags"), str(REPO / "plugins")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from multiplt_airflow import credentials  # noqa: E402
from multiplt_airflow.settings import CREDENTIAL_ENV  # noqa: E402
from multiplt_airflow.stage import stage_task  # noqa: E402
from multiplt_pipelines import corpus as corpus_plans  # noqa: E402
from multiplt_pipelines import params as schemas  # noqa: E402
from multiplt_pipelines import publishing, translation  # noqa: E402
from multiplt_pipelines import testgen as testgen_plans  # noqa: E402
from multiplt_pipelines.plans import evaluation_plan, training_plan  # noqa: E402
from tests.dags import test_stage_runtime  # noqa: E402
from tests.dags.test_stage_runtime import FakeDocker, _dag  # noqa: E402

docker_runtime = test_stage_runtime.docker_runtime  # the fixture: [multiplt] runtime = docker

S3 = set(credentials.STORAGE)
HUB = {"HF_TOKEN"}
KEY = {"OPENAI_API_KEY"}
NONE: set[str] = set()
VALUES = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLEID", "AWS_SECRET_ACCESS_KEY": "aws-secret-0d1e2f",
          "AWS_SESSION_TOKEN": "aws-session-9a8b7c", "HF_TOKEN": "hf_stage_token_4c5d6e",
          "OPENAI_API_KEY": "sk-teacher-key-1a2b3c"}


def test_the_groups_are_the_credentials():
    assert sorted(credentials.STORAGE + credentials.HUB + credentials.TEACHER) == sorted(CREDENTIAL_ENV)


def _defaults(schema: dict, **given) -> dict:
    return {**{k: v["default"] for k, v in schema.items() if "default" in v}, **given}


def _evaluate(root: str, **given) -> dict:
    params = _defaults(schemas.EVALUATE, model="bigcode/starcoderbase-1b", languages=["lua"],
                       shards=1, **given)
    return evaluation_plan(params, f"{root}/runs", f"{root}/results/results.parquet")[0]


def dag_stages(root: str) -> dict[str, list[str]]:
    """{stage: argv} of the command lines the DAGs' plans build under the data root `root`."""
    out: dict[str, list[str]] = {}
    for label, given in (("", {}), ("openai ", {"backend": "openai", "api_base": "http://t:8000/v1"}),
                         ("openai+tokenizer ", {"backend": "openai", "api_base": "http://t:8000/v1",
                                                "tokenizer": "bigcode/starcoderbase-1b"}),
                         ("replay ", {"backend": "replay", "replay_source": f"{root}/replay/{{lang}}"}),
                         ("hub-source ", {"benchmark_source": "openai/openai_humaneval"})):
        entry = _evaluate(root, **given)
        out.update({f"evaluate {label}build": entry["build"],
                    f"evaluate {label}generate": entry["generate"]})
    entry = _evaluate(root)
    out.update({"evaluate execute": entry["execute"][0], "evaluate score": entry["score"],
                "evaluate record": entry["record"]})
    out["finetune train"] = training_plan(_defaults(schemas.FINETUNE, languages=["lua"]),
                                          f"{root}/runs")[0]["train"]
    for label, given in (("", {}), ("openai ", {"backend": "openai", "api_base": "http://t:8000/v1"})):
        params = _defaults(testgen_plans.PARAMS, functions=f"{root}/runs/corpus/x/functions",
                           shards=1, **given)
        for stage, argv in testgen_plans.testgen_plan(params, f"{root}/runs")[0].items():
            out[f"testgen {label}{stage}"] = argv
        params = _defaults(translation.PARAMS, tests=f"{root}/runs/testgen/x/tests",
                           languages=["lua"], shards=1, **given)
        for stage, argv in translation.translation_plan(params, f"{root}/runs")[0].items():
            if stage in ("sample", "execute", "collect"):
                out[f"translate {label}{stage}"] = argv
        out[f"translate {label}summary"] = translation.summary_command(params, f"{root}/runs")
    for label, source in (("", "stdlib"), ("hub ", "hf://datasets/bigcode/the-stack/data/python")):
        plan = corpus_plans.corpus_plan(_defaults(corpus_plans.CORPUS, source=source, shards=1,
                                                  dedup_buckets=1), f"{root}/runs")
        out[f"corpus {label}build"] = plan["shards"][0]
    out.update({"corpus dedup": plan["dedup"][0], "corpus merge": plan["merge"][0]})
    dataset = {"dataset_repo": "org/data", "dataset_uri": f"{root}/runs/translate/x"}
    out["publish dataset"] = publishing.dataset_commands(dataset, [])[0]
    out["publish dataset dry-run"] = publishing.dataset_commands(
        {**dataset, "dry_run": "/tmp/dry"}, [])[0]
    out["publish checkpoints"] = publishing.checkpoint_commands(
        {"checkpoints_repo": "org/model", "training_outputs": [f"{root}/runs/training/lua"]}, [],
        f"{root}/results/results.parquet")[0]
    out["publish results"] = publishing.results_commands(
        {"results_repo": "org/board"}, [], f"{root}/results/results.parquet")[0]
    return out


# what each stage gets besides storage (`storage`: with an s3:// data root; `always`: also
# with a file:// one, since the command follows URIs recorded in its inputs)
EXPECTED = {
    "evaluate build": (NONE, "storage"),
    "evaluate generate": (HUB, "always"),
    "evaluate openai build": (NONE, "storage"),
    "evaluate openai generate": (KEY, "always"),
    "evaluate openai+tokenizer build": (NONE, "storage"),
    "evaluate openai+tokenizer generate": (HUB | KEY, "always"),
    "evaluate replay build": (NONE, "storage"),
    "evaluate replay generate": (NONE, "always"),
    "evaluate hub-source build": (HUB, "storage"),
    "evaluate hub-source generate": (HUB, "always"),
    "evaluate execute": (NONE, "storage"),
    "evaluate score": (NONE, "storage"),
    "evaluate record": (NONE, "always"),
    "finetune train": (HUB, "always"),
    "testgen generate": (HUB, "always"),
    "testgen validate": (NONE, "storage"),
    "testgen write": (NONE, "storage"),
    "testgen openai generate": (KEY, "always"),
    "testgen openai validate": (NONE, "storage"),
    "testgen openai write": (NONE, "storage"),
    "translate sample": (HUB, "always"),
    "translate execute": (NONE, "storage"),
    "translate collect": (NONE, "storage"),
    "translate summary": (NONE, "storage"),
    "translate openai sample": (KEY, "always"),
    "translate openai execute": (NONE, "storage"),
    "translate openai collect": (NONE, "storage"),
    "translate openai summary": (NONE, "storage"),
    "corpus build": (NONE, "storage"),
    "corpus hub build": (HUB, "storage"),
    "corpus dedup": (NONE, "storage"),
    "corpus merge": (NONE, "storage"),
    "publish dataset": (HUB, "always"),
    "publish dataset dry-run": (NONE, "always"),
    "publish checkpoints": (HUB, "always"),
    "publish results": (HUB, "always"),
}
# the DAGs' sandbox stages: in the docker runtime, stage in / run / stage out of these argvs
SANDBOXED = ("evaluate execute", "testgen validate", "testgen openai validate", "translate execute",
             "translate openai execute")


@pytest.mark.parametrize("root", ["s3://bucket", "file:///srv/multiplt"])
def test_every_dag_stage_gets_exactly_the_credentials_its_command_can_use(root):
    stages = dag_stages(root)
    assert sorted(stages) == sorted(EXPECTED)
    got = {name: set(credentials.needed(argv)) for name, argv in stages.items()}
    want = {name: others | (S3 if when == "always" or root.startswith("s3://") else NONE)
            for name, (others, when) in EXPECTED.items()}
    assert got == want
    # docker: a sandbox stage's steps. The networked ones move files (storage at most, never the
    # Hub token or the teacher's key); the run step gets nothing
    for name in SANDBOXED:
        argv = stages[name]
        storage = S3 if root.startswith("s3://") else NONE
        assert set(credentials.needed(["stage", "in", "--root", "/stage", "--", *argv])) == storage
        assert set(credentials.needed(["stage", "out", "--root", "/stage", "--", *argv])) == storage
        assert credentials.needed(["stage", "run", "--root", "/stage", "--", *argv]) == frozenset()


def _subcommands() -> dict[str, set[str]]:
    """{command: its subcommands (none: empty)} of the real CLI parser."""
    import argparse

    from multiplt.cli import build_parser

    def choices(parser) -> dict:
        return next((a.choices for a in parser._actions
                     if isinstance(a, argparse._SubParsersAction)), {})
    return {name: set(choices(sub)) for name, sub in choices(build_parser()).items()}


def _commands_in_dags() -> set[tuple[str, str]]:
    """(command, subcommand or "") of every command line written in dags/: list literals that
    start with a `multiplt` command and then its subcommand (a command without subcommands: an
    option), e.g. ["results", "record", ...], ["execute", "--in", ...]."""
    commands = _subcommands()
    found = set()
    for path in sorted((REPO / "dags").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.List) and len(node.elts) > 1):
                continue
            first, second = (e.value if isinstance(e, ast.Constant) else None for e in node.elts[:2])
            if first not in commands or not isinstance(second, str):
                continue
            if second in commands[first]:
                found.add((first, second))
            elif not commands[first] and second.startswith("--"):
                found.add((first, ""))
    return found


def test_the_mapping_covers_every_command_the_dags_run():
    """A command line added to a DAG gets a row in EXPECTED (and a decision in `needed`)."""
    covered = set()
    for argv in dag_stages("s3://bucket").values():
        sub = argv[1] if len(argv) > 1 and not argv[1].startswith("-") else ""
        covered |= {(argv[0], sub), (argv[0], "")}
    found = _commands_in_dags()
    assert found and found <= covered, f"not in the credentials mapping: {sorted(found - covered)}"


@pytest.mark.parametrize("argv, want", [
    (["generate", "--back=openai", "--model", "m"], S3 | KEY),  # argparse's prefix, --opt=V
    (["generate", "--backend", "replay", "--tokenizer=org/tok"], S3 | HUB),
    (["generate", "--backend", "vllm"], S3 | HUB),
    (["-v", "execute", "--in", "s3://b/run"], S3),
    (["execute", "--in", "/runs/x", "--unsafe-no-sandbox"], NONE),
    (["score", "--in=S3://b/run"], S3),
    (["corpus", "build", "--source", "/x", "--benchmarks", "humaneval,s3://b/mbpp.jsonl"], S3),
    (["benchmark", "build", "--source", "/data/mbpp.jsonl", "--lang", "lua", "--out", "/o"], NONE),
    (["results", "show", "--store", "/r.parquet"], NONE),
    (["stage", "--root", "/stage", "in", "--", "generate", "--model", "s3://b/m"], S3),
    (["model", "init-tiny", "--out", "/m"], NONE),
    (["--version"], NONE),
    ([], NONE),
])
def test_needed_reads_options_as_argparse_does(argv, want):
    assert set(credentials.needed(argv)) == want


def _set_credentials(monkeypatch):
    for name, value in VALUES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", VALUES["HF_TOKEN"])


# ---- docker: the private environment of each container ----------------------------------------
class _Ti:
    dag_id, run_id, map_index = "docker_least_privilege", "manual__1", -1


class _Docker(FakeDocker):
    def remove_volume(self, name):  # stage out removes the stage volume
        pass


def test_docker_containers_get_only_the_credentials_their_command_can_use(docker_runtime, monkeypatch):
    from multiplt_airflow.docker_stage import MultipltDockerOperator

    fake = _Docker()
    monkeypatch.setattr(MultipltDockerOperator, "cli", property(lambda self: fake))
    _set_credentials(monkeypatch)
    run = "s3://bucket/runs/evaluate/x"
    with _dag("docker_least_privilege") as dag:
        stage_task("execute", ["execute", "--in", run, "--shard", "0/1"], sandbox=True)
        stage_task("score", ["score", "--in", run, "-k", "1"])
        stage_task("generate", ["generate", "--out", run, "--model", "org/m"], gpu=True)
    envs = {}
    for task_id in ("execute.stage_in", "execute.run", "execute.stage_out", "score", "generate"):
        dag.get_task(task_id).execute({"ti": _Ti()})
        envs[task_id] = fake.created["environment"]
    for task_id in ("execute.stage_in", "execute.stage_out", "score"):
        env = envs[task_id]
        assert {k for k in env if k in CREDENTIAL_ENV} == S3, task_id
        assert VALUES["HF_TOKEN"] not in json.dumps(env) and VALUES["OPENAI_API_KEY"] not in json.dumps(env)
    assert not {k for k in envs["execute.run"] if k in CREDENTIAL_ENV}
    assert {k for k in envs["generate"] if k in CREDENTIAL_ENV} == S3 | HUB
    assert envs["generate"]["HF_TOKEN"] == VALUES["HF_TOKEN"]
    # every credential of the worker is still redacted from the log of every step
    score = dag.get_task("score")
    assert set(score._secrets) >= {VALUES["HF_TOKEN"], VALUES["OPENAI_API_KEY"]}


def test_docker_hub_token_of_the_connection_goes_only_where_it_is_used(docker_runtime, monkeypatch):
    from multiplt_airflow.docker_stage import MultipltDockerOperator

    fake = FakeDocker()
    monkeypatch.setattr(MultipltDockerOperator, "cli", property(lambda self: fake))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(credentials, "hub_token_from_connection", lambda: "hf_from_the_connection_77")
    with _dag("docker_connection_token") as dag:
        stage_task("record", ["results", "record", "--scores", "s3://b/r", "--store", "s3://b/s.parquet"])
        stage_task("publish", ["publish", "results", "--store", "s3://b/s.parquet", "--repo", "o/b"])
    dag.get_task("record").execute({})
    assert "HF_TOKEN" not in fake.created["environment"]
    dag.get_task("publish").execute({})
    assert fake.created["environment"]["HF_TOKEN"] == "hf_from_the_connection_77"


# ---- local: the environment of the subprocess ---------------------------------------------------
PRINT_NAMES = ("import json, os; print(json.dumps(sorted(k for k in os.environ if k in "
               f"{sorted([*CREDENTIAL_ENV, 'HUGGING_FACE_HUB_TOKEN'])!r})))")


def _local_names(monkeypatch, argv: list[str]) -> set[str]:
    from multiplt_airflow.local_stage import MultipltStageOperator

    monkeypatch.setattr(MultipltStageOperator, "command",
                        lambda self: [sys.executable, "-c", PRINT_NAMES])
    with _dag(f"local_least_privilege_{argv[0]}"):
        task = stage_task(argv[0], argv, do_xcom_push=True)
    assert isinstance(task, MultipltStageOperator)
    return set(json.loads(task.execute({})))


def test_local_subprocess_inherits_only_the_credentials_its_command_can_use(monkeypatch):
    _set_credentials(monkeypatch)
    assert _local_names(monkeypatch, ["execute", "--in", "s3://b/run"]) == S3
    assert _local_names(monkeypatch, ["score", "--in", "/runs/x"]) == NONE
    assert _local_names(monkeypatch, ["results", "record", "--scores", "/r", "--store", "/s"]) == S3
    assert _local_names(monkeypatch, ["generate", "--backend", "openai", "--model", "m"]) == S3 | KEY
    # the Hub token under its older name too, only where the Hub token goes
    assert _local_names(monkeypatch, ["publish", "results", "--store", "/s", "--repo", "o/b"]) == \
        S3 | HUB | {"HUGGING_FACE_HUB_TOKEN"}


def test_local_stage_without_the_hub_token_sends_no_saved_login_token(monkeypatch):
    """A stage that may not use HF_TOKEN must not fall back to a token saved on the worker by
    `huggingface-cli login`: huggingface_hub sends no implicit token there."""
    from multiplt_airflow.local_stage import MultipltStageOperator

    _set_credentials(monkeypatch)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "0")  # the worker's own setting is replaced
    probe = "import os; print(repr(os.environ.get('HF_HUB_DISABLE_IMPLICIT_TOKEN')))"
    monkeypatch.setattr(MultipltStageOperator, "command", lambda self: [sys.executable, "-c", probe])
    seen = {}
    for argv in (["score", "--in", "/runs/x"], ["publish", "results", "--store", "/s", "--repo", "o/b"]):
        with _dag(f"local_implicit_token_{argv[0]}"):
            task = stage_task(argv[0], argv, do_xcom_push=True)
        seen[argv[0]] = task.execute({})
    assert seen == {"score": "'1'", "publish": "'0'"}
