"""The model a translate run records for the replay backend without --model (the dataset's
`model` column, its config and card): named after the replay source, never a cut-off name."""

import pytest

from multiplt.translation.config import TranslateConfig


@pytest.mark.parametrize("source, label", [
    ("fx/replay-{lang}.jsonl", "replay"),       # was "replay-": the name cut at {lang}
    ("fx/replay/{lang}.jsonl", "replay"),
    ("s3://bucket/teacher_{lang}/", "teacher"),
    ("fx/lua.jsonl", "lua.jsonl"),              # one source for every language: its name
])
def test_replay_label_is_the_source_name_without_its_language_part(source, label):
    config = TranslateConfig(tests="t", langs=("lua",), out="o", backend="replay", replay_source=source)
    assert config.model_label == label


def test_generate_and_evaluate_add_a_hash_of_where_the_source_is(tmp_path, monkeypatch):
    """generate and evaluate name run folders by the label: the source's name and a hash of the
    source, a local path made absolute (the same spelling from another folder is another file)."""
    import hashlib

    from multiplt.generation.replay import replay_label

    def digest(text):
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    monkeypatch.chdir(tmp_path)
    assert replay_label("a/{lang}.jsonl") == f"replay_s{digest(str(tmp_path / 'a/{lang}.jsonl'))}"
    assert replay_label("a/{lang}.jsonl") != replay_label("b/{lang}.jsonl")
    assert replay_label("s3://b/t_{lang}/") == f"t_s{digest('s3://b/t_{lang}')}"
    # one place, however spelled
    assert replay_label("s3://b/t_{lang}") == replay_label("s3://b/t_{lang}/")
    assert replay_label(f"file://{tmp_path}/a/{{lang}}.jsonl") == replay_label("a/{lang}.jsonl")


def test_a_model_is_its_own_label():
    config = TranslateConfig(tests="t", langs=("lua",), out="o", backend="replay",
                             replay_source="fx/replay-{lang}.jsonl", model="org/teacher")
    assert config.model_label == "org/teacher"
