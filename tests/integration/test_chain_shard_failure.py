"""One failed shard of a testgen or translate stage stops that shard only (under dag.test(), the
local runtime, real `multiplt` commands): the other shards' next stages run, validate and
write (collect) their rows, while the failed shard's next stage fails at once with the stage's
own message (exit 2, no retry) and the run's announcement, which needs every shard, does not
happen. Before, every shard's next stage was upstream_failed by one failed shard."""

from __future__ import annotations

import pytest

from tests.fixtures import translate as fx
from tests.integration.test_chain_dag_run import asset_events, same_data_uri
from tests.integration.test_testgen import FIXTURE as TESTGEN_FIXTURE
from tests.integration.test_testgen import functions_parquet
from tests.support.airflow import load_dag

pytestmark = pytest.mark.e2e


def _fail_shard(monkeypatch, stage: str, *shards: str, lang: str | None = None) -> None:
    """The `stage` task of each of `shards` fails (as a stage refusing its input: failed, not
    retried); every other task runs its command."""
    from airflow.sdk.exceptions import AirflowFailException
    from multiplt_airflow.local_stage import MultipltStageOperator

    real = MultipltStageOperator.execute

    def execute(self, context):
        argv = list(self.argv)
        if (self.task_id == stage and any(shard in argv for shard in shards)
                and (lang is None or any(f"-{lang}" in a or a == lang for a in argv))):
            raise AirflowFailException(f"{stage} {argv}: failed here")
        return real(self, context)

    monkeypatch.setattr(MultipltStageOperator, "execute", execute)


def _testgen_run(tmp_path, out):
    """multiplt_testgen on the testgen fixture in two shards, replayed, into `out`."""
    return load_dag("multiplt_testgen").test(run_conf={
        "functions": functions_parquet(tmp_path) + "/functions", "out": str(out),
        "backend": "replay", "replay_source": str(TESTGEN_FIXTURE / "replay.jsonl"), "n": 2,
        "shards": 2})


def _states(run) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


def test_a_failed_testgen_generate_shard_stops_only_its_own_shard(airflow_db, tmp_path,
                                                                   monkeypatch, capfd):
    same_data_uri(airflow_db, monkeypatch)
    _fail_shard(monkeypatch, "generate", "0/2")
    out = tmp_path / "tg"
    run = _testgen_run(tmp_path, out)
    states = _states(run)
    assert [states[("generate", i)] for i in (0, 1)] == ["failed", "success"]
    # shard 1 validated and wrote its tests; shard 0's next stages failed on their own
    assert [states[("validate", i)] for i in (0, 1)] == ["failed", "success"], states
    assert [states[("write", i)] for i in (0, 1)] == ["failed", "success"], states
    assert (out / "tests" / "shard-00001-of-00002.parquet").is_file()
    assert not (out / "tests" / "shard-00000-of-00002.parquet").exists()
    assert states[("announce", -1)] == "upstream_failed" and run.state == "failed"
    assert not (out / "funnel.json").exists() and asset_events(run) == []
    logs = capfd.readouterr()
    assert "is missing: run the generate stage of this shard first" in logs.out + logs.err



def test_when_every_testgen_generate_shard_fails_each_next_stage_fails_on_its_own(
        airflow_db, tmp_path, monkeypatch):
    """The rule's one success is the run's shard list, not a shard: with every generate shard
    failed, each validate and write still starts and fails at once (nothing to validate), and
    nothing is written or announced."""
    same_data_uri(airflow_db, monkeypatch)
    _fail_shard(monkeypatch, "generate", "0/2", "1/2")
    out = tmp_path / "tg"
    run = _testgen_run(tmp_path, out)
    states = _states(run)
    assert [states[(task, i)] for task in ("generate", "validate", "write") for i in (0, 1)] == [
        "failed"] * 6, states
    assert states[("announce", -1)] == "upstream_failed" and run.state == "failed"
    assert not (out / "tests").exists() and asset_events(run) == []


def test_a_failed_translate_sample_shard_stops_only_its_own_shard(airflow_db, tmp_path,
                                                                   monkeypatch):
    same_data_uri(airflow_db, monkeypatch)
    inputs = fx.write(tmp_path / "in")
    _fail_shard(monkeypatch, "sample", "0/2")
    run = load_dag("multiplt_translate").test(run_conf={
        "languages": ["lua"], "shards": 2, "n": fx.N, "timeout": fx.TIMEOUT, "backend": "replay",
        "replay_source": inputs["replay"], "tests": inputs["tests"],
        "out": f"file://{tmp_path}/translate"})
    states = _states(run)
    assert [states[("sample", i)] for i in (0, 1)] == ["failed", "success"]
    # shard 1 executed and collected its translations; shard 0's execute found no completions
    # (`--allow-empty`: nothing to run) and its collect failed ("shard 0/2 of lua has not been
    # sampled ...; run --stage sample first")
    assert [states[("validate", i)] for i in (0, 1)] == ["success", "success"], states
    assert [states[("collect", i)] for i in (0, 1)] == ["failed", "success"], states
    assert states[("summary", -1)] == "upstream_failed" and run.state == "failed"
    assert states[("announce_lua", -1)] == "upstream_failed" and asset_events(run) == []
    assert list((tmp_path / "translate" / "work" / "lua" / "1-of-2").glob("*")) != []
