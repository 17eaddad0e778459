"""How the main job (scripts/embedded_airflow.py main-job) ends, on a simulated REST API
(tests/support/simulated_airflow.py): the Variables it set are set back to what they were before
it, however it ends (but one changed meanwhile, and none written where it holds what it held;
a Variable the API gives masked is refused up front); a job that does not end normally (Ctrl-C,
SIGTERM, --timeout) first marks its own unfinished runs failed (no one else's), so that none
resumes behind a later job, and sets the DAGs' paused flags back; its report holds only its
own runs (not those of an earlier job that resumed), a failed run with the error of each failed
task, and its header the translation targets apart from the evaluation languages. Also: the exit codes of an interrupted job (130, 143), and
--languages refusing a language whose runtime this machine lacks where the stages run on it."""

from __future__ import annotations

import datetime
import os
import signal

import pytest

from multiplt_airflow import chain_job
from tests.support.airflow import load_launcher
from tests.support.simulated_airflow import SimulatedAirflow, run_main_job

JOB_KEYS = ["multiplt_testgen", "multiplt_translate", "multiplt_finetune", "multiplt_publish"]
BEFORE = {"multiplt_publish": ('{"dataset_repo": "me/mine", "dry_run": "/srv/pub"}', "mine"),
          "multiplt_watch": ('{"authors": ["bigcode"]}', "the watch list")}


@pytest.fixture
def installed(monkeypatch):
    """The runtimes this machine "has", whatever it has: every one but those listed in
    `installed.missing` (monkeypatched preflight.missing_binaries), stages run locally."""
    from multiplt.execution import preflight

    class Installed:
        missing: set[str] = set()

    monkeypatch.setattr(preflight, "missing_binaries", lambda lang, unsafe=False: (
        list(lang.binaries) if lang.code in Installed.missing else []))
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RUNTIME", "local")
    return Installed


def test_the_variables_are_set_back_after_the_job(tmp_path, monkeypatch, capsys, installed):
    """The repro: after a main job, a run started by hand (or by an event) went on with the
    job's Variables (its `out` folders, n=1, the tiny model, a dry run into its folder)."""
    client = SimulatedAirflow(paused=True, variables=BEFORE)
    rc = run_main_job(tmp_path, monkeypatch, "lua", client)
    out = capsys.readouterr().out
    assert rc == 0, out
    # the job ran with its own settings ...
    assert sorted(client.job_set) == sorted(JOB_KEYS)
    assert client.job_set["multiplt_publish"]["dataset_repo"] == "local/multiplt-main-job"
    assert [r["state"] for r in client.runs["multiplt_finetune"]] == ["success"]
    # ... and left them as it found them: the one that existed as it was, the others deleted
    assert client.stored == BEFORE
    assert ("Airflow Variables multiplt_testgen, multiplt_translate, multiplt_finetune, "
            "multiplt_publish set back to what they were before the job (deleted: "
            "multiplt_testgen, multiplt_translate, multiplt_finetune)") in out
    # a job that ended normally leaves its DAGs unpaused and stops nothing
    assert not any(client.paused[d] for d in chain_job.CHAIN) and client.patched == []


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm", "timeout"])
def test_a_job_that_does_not_end_normally_stops_its_runs_and_sets_everything_back(
        tmp_path, monkeypatch, capsys, installed, stop):
    """Interrupted while the base model's evaluation works (or after --timeout): the repro's
    multiplt_evaluate and multiplt_testgen runs resumed when Airflow started again, beside the
    next job. Here the job marks its unfinished run failed (and waits until none of its runs
    works and each of its events has its runs), leaves the events queued for the chain, sets the
    paused flags and the Variables back, and the interruption goes on to main (exit 130/143, or
    1)."""
    launcher = load_launcher()
    # runs are listed 6 at a time (one per chain DAG): the interruption comes at the 3rd poll;
    # --timeout (1 s here) runs out while the held evaluation works
    exc = {"ctrl-c": KeyboardInterrupt, "sigterm": lambda: launcher.Terminated(),
           "timeout": lambda: None}[stop]()
    client = SimulatedAirflow(paused=True, variables=BEFORE, hold=["multiplt_evaluate"],
                              interrupt=(13, exc) if exc else None)
    with pytest.raises(type(exc) if exc else TimeoutError,
                       match=None if exc else "the chain is still running after 1s"):
        run_main_job(tmp_path, monkeypatch, "lua", client, launcher=launcher,
                     timeout=30 if exc else 1)
    out = capsys.readouterr().out
    [evaluate] = client.runs["multiplt_evaluate"]
    assert evaluate["state"] == "failed"
    assert client.patched == [("multiplt_evaluate", evaluate["dag_run_id"], {"state": "failed"})]
    assert (f"marked the job's unfinished runs failed (they do not resume when Airflow starts "
            f"again): multiplt_evaluate {evaluate['dag_run_id']}") in out
    # the rest of the chain had ended: nothing else was touched
    assert all(r["state"] == "success" for d in chain_job.CHAIN[:-2] for r in client.runs[d])
    assert client.cleared_queues == []  # whose a queued event is, Airflow does not say
    assert all(client.paused[d] for d in chain_job.CHAIN)  # as the fresh deployment had them
    assert client.stored == BEFORE


def test_an_interruption_before_any_run_sets_the_variables_back(tmp_path, monkeypatch, capsys,
                                                                 installed):
    """Interrupted while it sets the DAGs up, before triggering anything: nothing to stop, the
    paused flags and the Variables it had set go back."""
    client = SimulatedAirflow(paused=False, variables=BEFORE)
    set_paused, calls = client.set_paused, []

    def interrupted(dag_id, paused):  # Ctrl-C as the job unpauses its first DAG
        calls.append((dag_id, paused))
        if len(calls) == 1:
            raise KeyboardInterrupt
        set_paused(dag_id, paused)

    client.set_paused = interrupted
    with pytest.raises(KeyboardInterrupt):
        run_main_job(tmp_path, monkeypatch, "lua", client)
    assert client.stored == BEFORE and client.patched == [] and client.cleared_queues == []
    assert all(client.runs[d] == [] for d in chain_job.CHAIN)
    assert not any(client.paused.values())  # as they were


def test_an_earlier_jobs_resumed_run_is_not_in_the_report(tmp_path, monkeypatch, capsys,
                                                          installed):
    """A testgen run of an interrupted (killed) earlier job resumes when Airflow starts and
    announces its tests: the translate, finetune and publish runs its event starts are queued
    after the new job started but are not the job's: not waited for, not in its report."""
    client = SimulatedAirflow(paused=True, resume=["multiplt_testgen"])
    rc = run_main_job(tmp_path, monkeypatch, "lua", client)
    out = capsys.readouterr().out
    assert rc == 0, out
    # the earlier job's chain ran: 2 runs of each DAG after testgen, the first ones not the job's
    assert [len(client.runs[d]) for d in chain_job.CHAIN] == [1, 2, 2, 2, 1, 5]
    report = out[out.index("runs and the stages"):]
    listed = [line.rsplit(": ", 1)[0] for line in report.splitlines()
              if line.startswith("multiplt_")]
    # the runs the job triggered keep the run id it chose (chain_job.new_run_id)
    [corpus], [evaluate] = client.runs["multiplt_corpus"], client.runs["multiplt_evaluate"]
    assert corpus["dag_run_id"].startswith("manual__")
    assert listed == [f"multiplt_corpus {corpus['dag_run_id']}",
                      "multiplt_testgen multiplt_testgen_2",
                      "multiplt_translate multiplt_translate_2",
                      "multiplt_finetune multiplt_finetune_2",
                      f"multiplt_evaluate {evaluate['dag_run_id']}",
                      "multiplt_publish multiplt_publish_3", "multiplt_publish multiplt_publish_4",
                      "multiplt_publish multiplt_publish_5"]


def test_a_failed_run_is_reported_with_the_error_of_its_failed_task(tmp_path, monkeypatch,
                                                                    capsys, installed):
    """The repro: `multiplt_evaluate manual__...: failed` then "no results of this job", with
    no reason. The failed task and the stage's last error line follow the run's line."""
    line = ("multiplt execute: error: julia (jl) cannot run: julia not installed (not on PATH "
            "/usr/local/bin:/usr/bin:/bin)")
    client = SimulatedAirflow(paused=True, fail={"multiplt_evaluate": ("execute", 0, line)})
    rc = run_main_job(tmp_path, monkeypatch, "py", client)
    captured = capsys.readouterr()
    assert rc == 1
    lines = captured.out.splitlines()
    [run] = client.runs["multiplt_evaluate"]
    at = lines.index(f"multiplt_evaluate {run['dag_run_id']}: failed")
    assert lines[at + 1] == f"  execute[0] failed: {line}"
    assert not lines[at + 2].startswith("  ")  # the upstream_failed task is no reason
    assert "no results of this job" in captured.err


def test_the_header_names_the_translation_targets_apart_from_the_evaluated_languages(
        tmp_path, monkeypatch, capsys, installed):
    """py is evaluated, never a translation target: `chain ... into lua, ml, py, r, rkt` read
    as if py were translated into."""
    client = SimulatedAirflow(paused=True)
    assert run_main_job(tmp_path, monkeypatch, "py,lua,rkt", client) == 0
    out = capsys.readouterr().out
    assert "chain on /m: translation into lua, rkt, evaluation on py, lua, rkt (n=1, " in out
    assert client.job_set["multiplt_translate"]["languages"] == ["lua", "rkt"]


def test_with_no_installed_target_the_hint_names_only_installed_ones(tmp_path, monkeypatch,
                                                                     capsys, installed):
    """`--languages py` on a machine without Julia: the hint suggested jl, which would fail."""
    installed.missing = {"jl"}
    client = SimulatedAirflow(paused=True)
    assert run_main_job(tmp_path, monkeypatch, "py", client) == 0
    out = capsys.readouterr().out
    assert ("translation and fine-tuning did not run: no translation target among the chosen "
            "languages (py); the translation targets are lua, ml, r, rkt (add one to "
            "--languages)") in out


@pytest.fixture
def no_airflow(monkeypatch):
    """EmbeddedAirflow that starts nothing (its start runs `on_start`) and stops nothing."""
    from multiplt_airflow.embedded import EmbeddedAirflow

    calls = {"on_start": lambda: None, "stopped": 0}

    def start(self, timeout=300):
        calls["on_start"]()
        return self

    def stop(self, grace=30):
        calls["stopped"] += 1

    monkeypatch.setattr(EmbeddedAirflow, "start", start)
    monkeypatch.setattr(EmbeddedAirflow, "stop", stop)
    monkeypatch.setattr(EmbeddedAirflow, "login_text", lambda self: "login")
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield calls
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("sig, rc", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["ctrl-c", "sigterm"])
def test_an_interrupted_job_exits_130_or_143(tiny_model, tmp_path, capsys, no_airflow, sig, rc):
    """The repro: Ctrl-C (or `kill`) while the chain runs printed "stopping Airflow ..." and
    exited 0. The README's convention: 130 after Ctrl-C, 143 after SIGTERM."""
    launcher = load_launcher()

    def job(airflow, args):  # the job, working when the signal comes
        os.kill(os.getpid(), sig)
        raise AssertionError("no signal")

    launcher.main_job = job
    got = launcher.main(["--home", str(tmp_path / "home"), "--data", str(tmp_path / "data"),
                         "main-job", "--model", tiny_model, "--languages", "py",
                         "--exit-when-done"])
    assert got == rc and no_airflow["stopped"] == 1
    assert "stopping Airflow ..." in capsys.readouterr().out


def test_ctrl_c_after_the_job_keeps_its_exit_code(tiny_model, tmp_path, capsys, no_airflow,
                                                  monkeypatch):
    """Without --exit-when-done Ctrl-C is how the UI is stopped once the job is over: the exit
    code is the job's."""
    launcher = load_launcher()
    launcher.main_job = lambda airflow, args: 1
    monkeypatch.setattr(launcher.time, "sleep", lambda s: os.kill(os.getpid(), signal.SIGINT))
    got = launcher.main(["--home", str(tmp_path / "home"), "--data", str(tmp_path / "data"),
                         "main-job", "--model", tiny_model, "--languages", "py"])
    assert got == 1 and no_airflow["stopped"] == 1


def test_a_language_without_its_runtime_is_refused_where_stages_run_locally(
        tmp_path, capsys, monkeypatch, installed):
    """The repro: `--check-only main-job --languages jl` on a machine without Julia gave exit 0,
    and the job failed late, in its execute step, after a retry. Where the stages run on this
    machine the language's runtime must be installed; the docker runtime's images have them."""
    from multiplt.execution import preflight

    installed.missing = {"jl", "rkt"}
    launcher = load_launcher()
    assert launcher.installed_languages() == ["lua", "ml", "py", "r"]
    home = ["--home", str(tmp_path / "home"), "--data", str(tmp_path / "data")]
    for spec in ("jl", "lua,racket"):
        assert launcher.main([*home, "--check-only", "main-job", "--languages", spec]) == 2
        err = capsys.readouterr().err
        code, name, binary = ("jl", "julia", "julia") if spec == "jl" else ("rkt", "racket", "racket")
        assert err == (f"main-job: --languages {spec}: {name} ({code}) cannot run on this "
                       f"machine: {binary} not installed (not on PATH {preflight.runtime_path()}); "
                       f"installed: lua, ml, py, r; {preflight.INSTALL_HINT}\n")
    assert launcher.main([*home, "--check-only", "main-job", "--languages", "lua,py"]) == 0
    assert launcher.main([*home, "--check-only", "main-job"]) == 0  # every installed one
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RUNTIME", "docker")
    assert launcher.main([*home, "--check-only", "main-job", "--languages", "jl"]) == 0
    assert not (tmp_path / "home").exists()


def test_the_variables_api_as_restore_uses_it():
    """save_variables/restore_variables through the client's REST calls: what the job set goes
    back (or is deleted); one changed since is left; one holding what it held is not written."""
    client = SimulatedAirflow(paused=True, variables={
        "a": ('{"n": 1}', "kept"), "b": ('{"n": 1}', "theirs"), "d": ('{"n":1}', "never set")})
    saved = chain_job.save_variables(client, ["a", "b", "c", "d"])
    assert saved == {"a": {"value": '{"n": 1}', "description": "kept"},
                     "b": {"value": '{"n": 1}', "description": "theirs"}, "c": None,
                     "d": {"value": '{"n": 1}', "description": "never set"}}
    job_set = {key: {"n": 2} for key in saved}
    for key in ("a", "b", "c"):  # interrupted before it set d
        chain_job.set_variable(client, key, job_set[key])
    client.stored["b"] = ('{"n": 3}', "edited")
    assert chain_job.restore_variables(client, saved, job_set) == {
        "a": "restored", "b": "changed", "c": "deleted", "d": "unchanged"}
    assert client.stored == {"a": ('{"n": 1}', "kept"), "b": ('{"n": 3}', "edited"),
                             "d": ('{"n":1}', "never set")}


def test_a_stopped_job_fails_only_its_own_runs_and_leaves_queued_events(
        tmp_path, monkeypatch, capsys, installed):
    """The review's repro: an interrupted job marked failed every unfinished chain run queued
    since it started (a multiplt_evaluate run someone started by hand meanwhile, a translate run
    an earlier job's resumed testgen queued) and dropped every chain DAG's queued events. Now
    only the job's runs are failed; queued events are named in the output, not dropped."""
    from tests.support.simulated_airflow import ASSET_IDS

    launcher = load_launcher()
    client = SimulatedAirflow(paused=True, hold=["multiplt_evaluate", "multiplt_translate"],
                              resume=["multiplt_testgen"], interrupt=(13, KeyboardInterrupt()))
    trigger = client.trigger

    def and_someone_elses(dag_id, conf=None, unpause=True, run_id=None):
        got = trigger(dag_id, conf, unpause, run_id)
        if dag_id == "multiplt_evaluate":  # a user's own evaluation, started by hand meanwhile
            client._run("multiplt_evaluate", {"model": "someone/else"})
        return got

    client.trigger = and_someone_elses
    with pytest.raises(KeyboardInterrupt):
        run_main_job(tmp_path, monkeypatch, "lua", client, launcher=launcher)
    ASSET_IDS.setdefault("multiplt_dataset_lua", len(ASSET_IDS) + 1)
    late = (client.clock + datetime.timedelta(seconds=1)).isoformat()
    early = "2020-01-01T00:00:00+00:00"
    out = capsys.readouterr().out
    states = {d: [(r["dag_run_id"], r["state"]) for r in client.runs[d]] for d in chain_job.CHAIN}
    # the earlier job's translate run (started by its resumed testgen) and the user's run go on
    assert states["multiplt_translate"] == [("multiplt_translate_1", "running"),
                                            ("multiplt_translate_2", "failed")]
    mine = client.runs["multiplt_evaluate"][0]["dag_run_id"]  # the one the job triggered
    assert states["multiplt_evaluate"] == [(mine, "failed"), ("multiplt_evaluate_2", "running")]
    assert sorted(p[:2] for p in client.patched) == [("multiplt_evaluate", mine),
                                                     ("multiplt_translate", "multiplt_translate_2")]
    assert client.cleared_queues == []
    assert ("marked the job's unfinished runs failed (they do not resume when Airflow starts "
            f"again): multiplt_translate multiplt_translate_2, multiplt_evaluate {mine}") in out
    assert "Asset events queued" not in out  # none was queued
    # with queued events: named (those queued since the job started), left in place
    client = SimulatedAirflow(paused=True, hold=["multiplt_evaluate"],
                              interrupt=(13, KeyboardInterrupt()))
    client.queued = {"multiplt_finetune": [
        {"dag_id": "multiplt_finetune", "asset_id": ASSET_IDS["multiplt_dataset_lua"],
         "created_at": late}],
        "multiplt_publish": [{"dag_id": "multiplt_publish", "asset_id": 999, "created_at": early}]}
    with pytest.raises(KeyboardInterrupt):
        run_main_job(tmp_path, monkeypatch, "lua", client, launcher=launcher)
    out = capsys.readouterr().out
    assert client.cleared_queues == [] and len(client.queued) == 2
    assert ("Asset events queued since the job started were left (Airflow does not say whose "
            "they are): multiplt_finetune (multiplt_dataset_lua); each starts a run of its DAG "
            "once that is unpaused") in out


def test_a_variable_changed_while_the_job_runs_is_left_as_changed(tmp_path, monkeypatch, capsys,
                                                                  installed):
    """The review's repro: the user edited multiplt_publish in the UI while the job ran; the job
    wrote its saved value over the edit. Now the edit stays, with one line naming it."""
    client = SimulatedAirflow(paused=True, variables=BEFORE)
    trigger = client.trigger

    def and_an_edit(dag_id, conf=None, unpause=True, run_id=None):
        got = trigger(dag_id, conf, unpause, run_id)
        if dag_id == "multiplt_evaluate":
            client.stored["multiplt_publish"] = ('{"dataset_repo": "me/new"}', "edited")
        return got

    client.trigger = and_an_edit
    assert run_main_job(tmp_path, monkeypatch, "lua", client) == 0
    captured = capsys.readouterr()
    assert client.stored == {**BEFORE, "multiplt_publish": ('{"dataset_repo": "me/new"}', "edited")}
    assert ("main-job: Airflow Variable multiplt_publish was changed while the job ran: left as "
            "it is now, not set back\n") in captured.err
    assert ("Airflow Variables multiplt_testgen, multiplt_translate, multiplt_finetune set back "
            "to what they were before the job (deleted: multiplt_testgen, multiplt_translate, "
            "multiplt_finetune)") in captured.out


def test_a_variable_the_api_masks_is_refused_before_anything_changes(tmp_path, monkeypatch,
                                                                     capsys, installed):
    """The review's repro: multiplt_publish held an api_key, which the REST API answers as
    `***`; the job set its own value over it and could not write the secret back. Now the job
    refuses up front: one line, exit 2, no Variable, flag or run changed."""
    secret = ('{"dataset_repo": "me/mine", "api_key": "realsecret"}', "mine")
    client = SimulatedAirflow(paused=True, variables={"multiplt_publish": secret})
    assert run_main_job(tmp_path, monkeypatch, "lua", client) == 2
    captured = capsys.readouterr()
    assert client.stored == {"multiplt_publish": secret} and client.job_set == {}
    assert all(client.paused.values()) and all(r == [] for r in client.runs.values())
    err = captured.err.splitlines()
    assert len(err) == 1 and err[0].startswith(
        "main-job: Airflow Variable multiplt_publish holds a value the REST API gives masked "
        "(***), which the job could not set back when it ends: nothing changed")


def test_a_queued_run_that_would_read_the_jobs_settings_is_refused_before_anything_changes(
        tmp_path, monkeypatch, capsys, installed):
    """The review's finding: a translate run triggered while the DAG was paused stays queued;
    the job unpaused the DAG and the run started with the job's Variable, on the job's model.
    Now the job refuses up front: one line naming the run, exit 2, nothing changed. A queued
    run of a DAG whose Variable the job does not set (multiplt_evaluate) is no reason."""
    client = SimulatedAirflow(paused=True, variables=BEFORE,
                              late=["multiplt_translate", "multiplt_evaluate"])
    theirs = client._run("multiplt_translate", {"languages": ["rkt"]})
    client._run("multiplt_evaluate", {"model": "someone/else"})
    assert run_main_job(tmp_path, monkeypatch, "lua", client) == 2
    captured = capsys.readouterr()
    assert client.stored == BEFORE and client.job_set == {}
    assert all(client.paused.values()) and client.patched == []
    assert [r["state"] for d in chain_job.CHAIN for r in client.runs[d]] == ["queued", "queued"]
    err = captured.err.splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"main-job: queued before the job, these runs would read the job's settings (their "
        f"DAG's Airflow Variable) when they start: multiplt_translate {theirs}; nothing changed")


def test_a_variable_the_job_never_changed_keeps_its_text(tmp_path, monkeypatch, capsys,
                                                         installed):
    """The REST API gives a JSON value serialized again (`{"a":1}` as `{"a": 1}`): a Variable
    the job had not set yet when it was interrupted was written back in that form. Now a
    Variable equal (as JSON) to what it held is not written."""
    compact = ('{"dataset_repo":"me/mine"}', "mine")
    client = SimulatedAirflow(paused=True, variables={"multiplt_publish": compact})
    set_variable, calls = client.set_variable, []

    def interrupted(key, value, description=""):  # Ctrl-C as the job sets its 2nd Variable
        calls.append(key)
        if len(calls) == 2:
            raise KeyboardInterrupt
        set_variable(key, value, description)

    client.set_variable = interrupted
    with pytest.raises(KeyboardInterrupt):
        run_main_job(tmp_path, monkeypatch, "lua", client)
    assert client.stored == {"multiplt_publish": compact}
    assert calls == ["multiplt_testgen", "multiplt_translate"]  # publish: never written
