"""What Airflow's trigger form makes of the Params of dags/multiplt_pipelines/params.py: language
lists are multi-selects (the form offers one for an array with `examples`, a free text area for
one whose codes sit only under `items`), descriptions are plain text (the form shows
`description` as written: Markdown backticks would show as backticks), and they say what the
run-start checks accept. Also the DAG docs of multiplt_finetune and multiplt_corpus against what
the DAGs do."""

from __future__ import annotations

import jsonschema
import pytest

from tests.dags.test_pipeline_plans import load_dag
from multiplt_pipelines import params as schemas  # noqa: E402 (dags/ is on sys.path)


@pytest.mark.parametrize("dag_id", ["multiplt_evaluate", "multiplt_finetune"])
def test_language_params_offer_their_codes_as_a_multi_select(dag_id):
    param = load_dag(dag_id).params.get_param("languages")
    assert param.schema["type"] == "array"
    assert param.schema["examples"] == param.schema["items"]["enum"] == schemas.LANGUAGE_CODES
    # the form's choices are exactly what validation takes
    for code in param.schema["examples"]:
        param.resolve([code])
    with pytest.raises(Exception, match="is not one of"):
        param.resolve(["cobol"])


def test_languages_schema_of_other_codes_offers_those():
    schema = schemas.languages_schema(schemas.TARGET_LANGUAGES)
    assert schema["examples"] == schema["items"]["enum"] == list(schemas.TARGET_LANGUAGES)
    assert "py" not in schema["examples"]
    jsonschema.validate(["lua"], schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(["py"], schema)


@pytest.mark.parametrize("group", ["EVALUATE", "FINETUNE", "SAMPLING"])
def test_param_descriptions_are_plain_text(group):
    for name, schema in getattr(schemas, group).items():
        assert "`" not in schema["description"], f"{group}.{name}: {schema['description']}"


def test_benchmark_source_says_every_form_the_check_accepts():
    from multiplt_pipelines import checks

    description = schemas.SAMPLING["benchmark_source"]["description"]
    for form in ("humaneval", "JSONL", "URI", "Hugging Face dataset owner/name"):
        assert form in description
    for source in ("humaneval", "/d/mbpp.jsonl", "s3://b/mbpp.jsonl", "openai/openai_humaneval"):
        checks.benchmark_sources("benchmark_source", source)  # accepted


@pytest.mark.parametrize("group, name", [("EVALUATE", "model"), ("FINETUNE", "base_model"),
                                         ("FINETUNE", "base_revision")])
def test_a_trimmed_model_param_says_so(group, name):
    """jsonschema has no custom message: the refusal names the pattern, the description the rule."""
    schema = getattr(schemas, group)[name]
    assert schema["pattern"] == schemas.TRIMMED_PATTERN
    assert "no spaces at either end" in schema["description"]


def test_finetune_doc_says_the_announcement_needs_every_evaluation_to_succeed():
    dag = load_dag("multiplt_finetune")
    announce = dag.get_task("announce_checkpoints")
    assert announce.trigger_rule == "all_success"
    assert "evaluate_checkpoints" in announce.upstream_task_ids
    assert "When every evaluation has succeeded, `announce_checkpoints`" in dag.doc_md
    assert "has finished" not in dag.doc_md
    assert "upstream_failed" in dag.doc_md


def test_corpus_doc_names_every_row_filter_of_a_shard():
    from multiplt.corpus import decontam, shard
    from multiplt.corpus.config import CorpusConfig

    doc = " ".join(load_dag("multiplt_corpus").doc_md.split())
    named = {"async_def": "`async def` functions", "generator": "generators (a `yield` of their own)",
             "docstring": "with docstrings", "return_value": "without a return value",
             "ascii": "non-ASCII", "todo": "TODOs", "too_short": "too short",
             "decontaminate": "overlapping the `benchmarks`"}
    blocks = [b.name for b in shard.row_blocks(CorpusConfig(source="s", out="o"), decontam.Benchmarks())]
    assert set(blocks) == set(named), blocks  # a new filter step needs its words in the doc
    for block in blocks:
        assert named[block] in doc, block


@pytest.mark.parametrize("dag_id, name", [("multiplt_translate", "languages"),
                                          ("multiplt_watch", "finetune_languages"),
                                          ("multiplt_watch", "evaluate_languages")])
def test_every_language_param_offers_exactly_what_it_takes(dag_id, name):
    """The multi-select's choices (examples) are the codes validation takes: translate's and the
    watch's fine-tuning languages are the targets only (python is no target)."""
    param = load_dag(dag_id).params.get_param(name)
    assert param.schema["examples"] == param.schema["items"]["enum"]
    for code in param.schema["examples"]:
        param.resolve([code])
