"""Whether the token may read a Hub repo (multiplt.hub.access.gated_reason), against the test
Hub's auth-check: a gated repo is described by `model_info` to anyone, so only auth-check tells
that the evaluation's download would be refused."""

from __future__ import annotations

import pytest

from multiplt.hub import retry
from multiplt.hub.access import gated_reason
from tests.support.hub import TOKEN


def test_a_gated_repo_without_access_is_refused_with_a_clear_message(test_hub):
    test_hub.add_model("org/gated")
    test_hub.gate("org/gated")
    from huggingface_hub import HfApi

    assert HfApi(token=TOKEN).model_info("org/gated").gated == "manual"  # what the check looked at
    assert gated_reason("org/gated", TOKEN) == (
        f"'org/gated' is a gated repo, and the Hub token's account has no access to it: ask for "
        f"access at {test_hub.url}/org/gated, or leave it out")
    assert gated_reason("org/gated", None) == gated_reason("org/gated", TOKEN)  # HF_TOKEN is that token


def test_a_gated_repo_without_a_token_says_to_set_one(test_hub, monkeypatch, tmp_path):
    test_hub.add_model("org/gated")
    test_hub.gate("org/gated", granted=True, mode="auto")
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))
    assert gated_reason("org/gated", None) == (
        f"'org/gated' is a gated repo, and no valid Hub token was sent: set HF_TOKEN (in Airflow: "
        f"the connection huggingface_default) to a token of an account granted access "
        f"({test_hub.url}/org/gated), or leave it out")
    assert "no valid Hub token" in gated_reason("org/gated", "hf_not_the_token")


def test_readable_repos_pass_and_missing_ones_are_named(test_hub):
    test_hub.add_model("org/open")
    test_hub.add_model("org/gated")
    test_hub.gate("org/gated", granted=True)
    assert gated_reason("org/open", TOKEN) is None
    assert gated_reason("org/gated", TOKEN) is None  # access granted
    assert gated_reason("org/nope", TOKEN) == f"'org/nope' not found on the Hub ({test_hub.url})"


def test_a_hub_that_fails_is_raised_for_the_caller_to_retry(test_hub):
    test_hub.add_model("org/open")
    test_hub.fail("GET", r"/auth-check$", 503)
    with pytest.raises(Exception) as raised:
        gated_reason("org/open", TOKEN)
    assert retry.is_retryable(raised.value)


def test_a_gated_repo_s_files_are_refused_as_the_hub_refuses_them(test_hub):
    """The test Hub answers downloads of a gated repo as the Hub does (403 GatedRepo)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import GatedRepoError

    test_hub.add_model("org/gated")
    test_hub.gate("org/gated")
    with pytest.raises(GatedRepoError):
        hf_hub_download("org/gated", ".gitattributes")
    test_hub.gate("org/gated", granted=True)
    assert hf_hub_download("org/gated", ".gitattributes")
