"""Whether a token may read a Hub repo: the Hub's `auth-check` (HfApi.auth_check).

`model_info` describes a gated repo (its files, its commit) to anyone, also without access:
a check that a model exists passes, and the evaluation fails later, at its download. A gated
repo (`model_info(...).gated` is "auto" or "manual") is readable only by accounts that were
granted access, which `auth-check` answers for the token (HTTP 401/403 `GatedRepo` when not).
"""

from __future__ import annotations


def not_found(repo_id: str, where: str, token: str | None) -> str:
    """Why a repo the Hub does not show (missing, or private) cannot be read, in one line:
    `where` names the Hub (`the Hub (URL)`); without a `token` (none set here), the hint that a
    private repo needs one."""
    private = "" if token else (" (a private repo needs HF_TOKEN or the huggingface_default "
                                "connection, and none is set)")
    return f"{repo_id!r} not found on {where}{private}"


def gated_reason(repo_id: str, token: str | None, repo_type: str = "model",
                 endpoint: str | None = None) -> str | None:
    """None when `token` (None: huggingface_hub's default, HF_TOKEN or the saved one) may read
    the repo; else why not, in one line: a gated repo its account has no access to, or a repo
    the Hub does not show it (missing, or private). Any other failure (the Hub down, offline
    mode, HTTP 5xx) is raised as huggingface_hub raises it, for the caller to classify
    (retry.is_retryable)."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    api = HfApi(endpoint=endpoint, token=token)
    hub = (endpoint or constants.ENDPOINT).rstrip("/")
    url = f"{hub}/{'' if repo_type == 'model' else repo_type + 's/'}{repo_id}"
    try:
        api.auth_check(repo_id, repo_type=repo_type)
    except GatedRepoError as exc:  # before RepositoryNotFoundError: it is one
        if getattr(getattr(exc, "response", None), "status_code", None) == 401:  # no valid token
            return (f"{repo_id!r} is a gated repo, and no valid Hub token was sent: set HF_TOKEN "
                    f"(in Airflow: the connection huggingface_default) to a token of an account "
                    f"granted access ({url}), or leave it out")
        return (f"{repo_id!r} is a gated repo, and the Hub token's account has no access to it: "
                f"ask for access at {url}, or leave it out")
    except RepositoryNotFoundError:
        return not_found(repo_id, f"the Hub ({hub})", token)
    return None
