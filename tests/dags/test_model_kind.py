"""One rule tells a Hub repo id from a URI, a local path or a mistyped URI (checks.model_kind):
checks.model_name checks a Hub id as one, and plans.hub_model asks the Hub about exactly those."""

from __future__ import annotations

import pytest

from multiplt_pipelines import checks  # noqa: E402 (dags/ is on sys.path)
from multiplt_pipelines import plans  # noqa: E402


@pytest.mark.parametrize("model, backend, kind", [
    ("org/m", "vllm", "hub"),
    ("starcoder", "transformers", "hub"),
    ("s3://b/m", "transformers", "uri"),
    ("file:///models/m", "vllm", "uri"),
    ("/models/m", "transformers", "path"),
    ("./m", "transformers", "relative"),
    ("s3:/b/m", "transformers", "mistyped"),
    ("org/m", "openai", None),
    ("org/m", "replay", None),
    (None, "vllm", None),
])
def test_model_kind(model, backend, kind):
    assert checks.model_kind(model, backend) == kind
    assert plans.hub_model({"model": model, "backend": backend}) == (kind == "hub")


def test_a_relative_folder_here_is_no_hub_model_for_either(tmp_path, monkeypatch):
    """`models/m` naming a folder of the working folder: model_name refuses it as a relative path,
    and hub_model (which used to take it for a Hub id to look up) agrees it is none."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "m").mkdir(parents=True)
    assert checks.model_kind("models/m", "transformers") == "relative"
    with pytest.raises(checks.BadParams, match="Param model: 'models/m' is a relative path"):
        checks.model_name("models/m", "transformers")
    assert not plans.hub_model({"model": "models/m", "backend": "transformers"})
    assert plans.hub_model({"model": "models/n", "backend": "transformers"})  # nothing there: a Hub id


def test_model_name_checks_each_kind_as_before(tmp_path):
    checks.model_name("org/m", "vllm")
    checks.model_name("s3:/b/m", "transformers")  # the command refuses it with its hint
    checks.model_name("org/a b", "openai")  # a label
    with pytest.raises(checks.BadParams, match="Param model: 'org/a b' is not a local folder or storage URI, "
                                               "nor a Hub repo id"):
        checks.model_name("org/a b", "transformers")
    with pytest.raises(checks.BadParams, match="Param base_model: .* is no folder"):
        checks.model_name(str(tmp_path / "none"), "transformers", local=True, key="base_model")
    checks.model_name(str(tmp_path / "none"), "transformers")  # not checked off the local runtime
    with pytest.raises(checks.BadParams, match="is no folder"):
        checks.model_name(f"file://{tmp_path}/none", "vllm", local=True)
    checks.model_name(f"file://{tmp_path}", "vllm", local=True)
