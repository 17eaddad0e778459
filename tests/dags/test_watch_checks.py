"""multiplt_watch's `plan`: a value of its settings that the runs it triggers would refuse is
refused there, before anything is triggered, naming the Airflow Variable `multiplt_watch` when
the value came from it (an Asset-triggered run has no conf: the Variable is where its settings
are); a finetune language without a split on the default dataset is one of them. The watcher
the DAG builds accepts the DAG's Params in the Variable and refuses a misspelled key."""

from __future__ import annotations

import asyncio
import re
from types import SimpleNamespace

import pytest

from tests.dags.test_pipeline_plans import defaults, load_dag
from tests.support.airflow import DAGS, load_file
from multiplt_pipelines import params as schemas  # noqa: E402 (dags/ is on sys.path)
from multiplt_pipelines import watching  # noqa: E402

VARIABLE = " (from the Airflow Variable multiplt_watch)"


def watch_plan(conf: dict, variable: str | None, monkeypatch):
    """multiplt_watch's plan as Airflow calls it: the conf merged into the params."""
    if variable is None:
        monkeypatch.delenv("AIRFLOW_VAR_MULTIPLT_WATCH", raising=False)
    else:
        monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_WATCH", variable)
    plan = load_dag("multiplt_watch").get_task("plan").python_callable
    return plan(params={**defaults(watching.WATCH), **conf},
                dag_run=SimpleNamespace(run_type="manual", conf=conf), run_id="r1",
                triggering_asset_events={})


def refusal(conf: dict, variable: str | None, monkeypatch) -> str:
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as refused:
        watch_plan(conf, variable, monkeypatch)
    return str(refused.value)


def test_a_refused_value_from_the_variable_names_it(monkeypatch):
    """The Variable's values reach the run unchecked by Airflow: `plan` used to pass them on
    (the triggered finetune or evaluate run failed later, not naming the Variable)."""
    message = refusal({"model": "org/m"}, '{"authors": ["org"], "n": 0}', monkeypatch)
    assert message.startswith("Param n: 0 is less than the minimum of 1") and message.endswith(VARIABLE)
    message = refusal({"model": "org/m"}, '{"finetune_languages": ["cobol"]}', monkeypatch)
    assert message.startswith("Param finetune_languages: 'cobol' is not one of ")
    assert message.endswith(VARIABLE)
    message = refusal({"model": "org/m"}, '{"backend": "replay"}', monkeypatch)
    assert message == ("Params backend, replay_source: the replay backend needs --replay-source "
                       "(a completion folder or JSONL) (backend from the Airflow Variable "
                       "multiplt_watch)")
    message = refusal({"model": "org/m"}, '{"finetune_languages": ["lua"], "recipe": "nope"}',
                      monkeypatch)
    assert message.startswith("Param recipe: ") and message.endswith(VARIABLE)
    # the same value given by the run's conf: refused, not blamed on the Variable
    message = refusal({"model": "org/m", "n": 0}, '{"authors": ["org"]}', monkeypatch)
    assert message.startswith("Param n: ") and not message.endswith(VARIABLE)
    message = refusal({"model": "./models/tiny", "finetune_languages": ["lua"]}, None, monkeypatch)
    assert re.search(r"Param model: '\./models/tiny' is a relative path", message)
    # the watch list's keys and good values pass
    runs = watch_plan({"model": "org/m"}, '{"authors": ["org"], "limit": 5, "n": 3, '
                      '"finetune_languages": ["lua"]}', monkeypatch)
    assert runs["evaluate"][0]["conf"]["n"] == 3 and runs["finetune"][0]["conf"]["languages"] == ["lua"]


@pytest.fixture
def perl(monkeypatch):
    """A target language added to the registry (docs/languages.md), which DAG parsing would add
    to `finetune_languages`' choices: nuprl/MultiPL-T has no `perl` split."""
    from multiplt import languages

    lua = type(languages.get("lua"))
    monkeypatch.setitem(languages.LANGUAGES, "pl",
                        type("PerlLanguage", (lua,), {"code": "pl", "name": "perl"})())
    spec = watching.WATCH["finetune_languages"]
    monkeypatch.setitem(watching.WATCH, "finetune_languages",
                        {**spec, "items": {**spec["items"], "enum": [*spec["items"]["enum"], "pl"]}})
    assert "pl" not in schemas.published_languages()


def test_a_finetune_language_without_a_published_split_is_refused_in_the_watch_run(perl, monkeypatch):
    """It used to be refused only when the triggered multiplt_finetune run reached its
    `settings` task (after the evaluate run of the base had started)."""
    expected = ("Param finetune_languages: nuprl/MultiPL-T has no 'perl' split to fine-tune pl on "
                "(its splits: julia, lua, ocaml, r, racket); train pl on a `dataset` of its own, "
                "e.g. its multiplt_translate output")
    # the language from the Variable, the dataset the default: the Variable named for its key
    assert refusal({"model": "org/m"}, '{"finetune_languages": ["lua", "pl"]}', monkeypatch) == (
        expected + " (finetune_languages from the Airflow Variable multiplt_watch)")
    assert refusal({"model": "org/m"}, '{"finetune_languages": ["pl"], "dataset": '
                   '"nuprl/MultiPL-T"}', monkeypatch) == expected + VARIABLE
    assert refusal({"model": "org/m", "finetune_languages": ["pl"]}, None, monkeypatch) == expected
    runs = watch_plan({"model": "org/m", "finetune_languages": ["pl"],
                       "dataset": "s3://b/translate/{lang}"}, None, monkeypatch)  # its own data
    assert runs["finetune"][0]["conf"]["languages"] == ["pl"]


def test_the_watcher_accepts_the_dags_params_in_the_variable(monkeypatch):
    """The multiplt_watch Variable is the watch list and the runs' settings: the DAG's watcher
    is given its Params, so it accepts them and refuses (logs, lists nothing) a misspelled key,
    which it used to ignore."""
    from structlog.testing import capture_logs

    trigger = load_file(DAGS / "multiplt_watch.py", "multiplt_watch_trigger_under_test"
                        ).NEW_BASE_MODEL.watchers[0].trigger
    assert trigger.serialize()[1]["params"] == sorted(watching.WATCH)
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_WATCH", '{"finetune_languages": ["lua"], '
                       '"evaluate_language": ["lua"]}')
    with capture_logs() as logs:
        assert asyncio.run(trigger.poll_once())[0] == []
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "watch list unusable: bad watch list: unknown key 'evaluate_language' (did you mean "
        "'evaluate_languages'?); nothing is listed until the multiplt_watch Variable is fixed "
        "(logged once)"]
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_WATCH", '{"finetune_languages": ["lua"]}')
    with capture_logs() as logs:
        assert asyncio.run(trigger.poll_once())[0] == []  # nothing to watch, no error
    assert [e["log_level"] for e in logs] == ["info"]


def test_the_form_offers_no_backend_the_watch_cannot_run(monkeypatch):
    """openai needs an api_base, which multiplt_watch has no Param for: the form does not offer
    it (it was offered, and always refused), and a conf naming it is refused by the schema."""
    assert "openai" not in watching.WATCH["backend"]["enum"]
    assert {"transformers", "vllm"} <= set(watching.WATCH["backend"]["enum"])
    assert "is not one of" in refusal({"backend": "openai"}, None, monkeypatch)


def test_an_unknown_key_of_the_variable_lists_each_param_once(monkeypatch):
    message = refusal({}, '{"zzz_unknown": 1}', monkeypatch)
    listed = message.split("its Params: ", 1)[1].rstrip(")").split(", ")
    assert "limit" in listed and len(listed) == len(set(listed))
