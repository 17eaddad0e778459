"""The main job's models, checked before anything starts (scripts/embedded_airflow.py main-job).

- the base model (`--model`): a local folder, a storage URI or a Hub id, as `multiplt generate`
  and `multiplt train` take it; it must hold a `config.json` (a Hub id: the repo must exist).
- the teacher (`--teacher`), which writes the tests and the translations: the same kinds of model
  (the `transformers` backend), or the `http(s)://HOST/v1` URL of an OpenAI-compatible
  completions server (the `openai` backend; its served model is `--teacher-model`, or the one
  model its `/v1/models` lists).

Each problem is a `MultipltError` with one line that names it (the job exits 2 on it).
`check_job_models(args)` checks the job's arguments and gives the teacher's generation settings;
`airflow_environment(args)` what the embedded Airflow (and every stage it starts) adds to the
job's environment: HF_HUB_OFFLINE=1 unless the job needs the Hub.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request

from multiplt.errors import MultipltError


def is_server_url(teacher: str) -> bool:
    return teacher.startswith(("http://", "https://"))


def check_model(model: str, what: str = "--model") -> None:
    """MultipltError unless `model` names a model: a folder or storage URI holding config.json,
    or a model repo on the Hub (HF_ENDPOINT, HF_TOKEN)."""
    from multiplt import storage

    if "://" in model:
        try:
            found = storage.exists(storage.join(model, "config.json"))
        except MultipltError:
            raise
        except Exception as exc:  # an unreachable or refused object store
            raise MultipltError(f"{what} {model}: cannot read it ({exc})") from None
        if not found:
            raise MultipltError(f"{what} {model} holds no model: no config.json in it")
        return
    if os.path.isdir(model):
        if not os.path.isfile(os.path.join(model, "config.json")):
            raise MultipltError(f"{what} {model} holds no model: no config.json in it")
        return
    if os.path.exists(model) or model.startswith((".", "/")) or model.count("/") > 1:
        raise MultipltError(f"{what} {model!r} is neither a model folder, a storage URI nor a "
                            f"Hub id")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().model_info(model)
    except RepositoryNotFoundError:
        raise MultipltError(f"{what} {model!r}: no such model on the Hub "
                            f"({os.environ.get('HF_ENDPOINT') or 'huggingface.co'}), nor a local "
                            f"folder") from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise MultipltError(f"{what} {model!r}: cannot ask the Hub about it: "
                            f"{str(exc).splitlines()[0]}") from None


def served_models(api_base: str, timeout: float = 30) -> list[str]:
    """The model ids an OpenAI-compatible server lists at `<api_base>/models`."""
    url = api_base.rstrip("/") + "/models"
    headers = {}
    if os.environ.get("OPENAI_API_KEY"):
        headers["Authorization"] = f"Bearer {os.environ['OPENAI_API_KEY']}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=timeout) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise MultipltError(f"--teacher {api_base}: GET {url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        raise MultipltError(f"--teacher {api_base}: server unreachable "
                            f"({getattr(exc, 'reason', exc)})") from None
    except ValueError:
        raise MultipltError(f"--teacher {api_base}: GET {url} did not answer JSON") from None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise MultipltError(f"--teacher {api_base}: GET {url} gave no model list (`data`)")
    return [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]


def teacher_generation(teacher: str, teacher_model: str | None = None) -> dict:
    """The generation settings of test generation and translation: {backend, model, api_base}."""
    if not is_server_url(teacher):
        if teacher_model:
            raise MultipltError("--teacher-model is the served model of a --teacher server URL; "
                                f"--teacher {teacher} is a model itself")
        check_model(teacher, "--teacher")
        return {"backend": "transformers", "model": teacher, "api_base": None}
    parsed = urllib.parse.urlparse(teacher)
    if not parsed.netloc or parsed.params or parsed.query or parsed.fragment:
        raise MultipltError(f"--teacher {teacher!r} is not a server URL (http(s)://HOST[:PORT]/v1)")
    if parsed.path.rstrip("/") and not parsed.path.rstrip("/").endswith("/v1"):
        raise MultipltError(f"--teacher {teacher!r}: an OpenAI-compatible server URL ends in /v1 "
                            f"(e.g. http://host:8000/v1)")
    api_base = teacher.rstrip("/") if parsed.path.rstrip("/") else teacher.rstrip("/") + "/v1"
    models = served_models(api_base)
    if teacher_model:
        if teacher_model not in models:
            raise MultipltError(f"--teacher-model {teacher_model!r} is not served by {api_base} "
                                f"(it serves: {', '.join(models) or 'nothing'})")
        return {"backend": "openai", "model": teacher_model, "api_base": api_base}
    if len(models) != 1:
        raise MultipltError(f"--teacher {api_base} serves {len(models)} models "
                            f"({', '.join(models) or 'none'}): name one with --teacher-model")
    return {"backend": "openai", "model": models[0], "api_base": api_base}


def absolute_local_paths(args) -> None:
    """--model, --teacher and --source as absolute paths where they are local paths that exist:
    Airflow runs each stage in its own working folder, where a relative path names nothing.
    Relative to where the user started scripts/main.sh (MULTIPLT_CALLER_PWD, which it sets
    before it changes to the repository root), else to this process's working folder. A named
    corpus source (`stdlib`: multiplt.corpus.sources.NAMED_SOURCES) is no path."""
    from multiplt.corpus.sources import NAMED_SOURCES

    base = os.environ.get("MULTIPLT_CALLER_PWD") or os.getcwd()
    for key in ("model", "teacher", "source"):
        value = getattr(args, key, None)
        if not value or "://" in value or (key == "source" and value in NAMED_SOURCES):
            continue
        path = os.path.join(base, value)  # an absolute value stays as it is
        if os.path.exists(path):
            setattr(args, key, os.path.abspath(path))


def check_job_models(args) -> dict | None:
    """The teacher's generation settings, once --model and --teacher are known to exist
    (MultipltError naming the problem otherwise); local paths made absolute first. Without
    --model (main.sh's --check-only pass before it builds the tiny model that will be --model)
    every check but the model's, and no teacher settings when the teacher is that model (None)."""
    absolute_local_paths(args)
    if args.publish_repo and args.publish_repo.count("/") != 1:
        raise MultipltError(f"--publish-repo {args.publish_repo!r} is not OWNER/NAME")
    if args.model is not None:
        check_model(args.model)
    if not args.teacher:
        if args.teacher_model:
            raise MultipltError("--teacher-model needs --teacher (an OpenAI-compatible server URL)")
        return {"backend": "transformers", "model": args.model, "api_base": None} if args.model else None
    return teacher_generation(args.teacher, args.teacher_model)


def uses_hub(args) -> bool:
    """Whether the job talks to the Hub: a Hub id as a model, a Hub dataset as the corpus
    (`--source hf://...`), or a publication."""
    models = [args.model] + ([args.teacher] if args.teacher else [])
    if str(getattr(args, "source", None) or "").startswith("hf://"):
        return True
    return bool(getattr(args, "publish_repo", None)) or any(
        "://" not in m and not os.path.exists(m) and not is_server_url(m)
        for m in models)


def airflow_environment(args) -> dict[str, str]:
    """What Airflow and every stage it starts add to this process's environment (which they
    inherit, HF_ENDPOINT and HF_TOKEN included): offline Hub access unless the job needs the Hub."""
    env = {"HF_HUB_DISABLE_TELEMETRY": "1"}
    if not (args.cmd == "main-job" and uses_hub(args)) and "HF_HUB_OFFLINE" not in os.environ:
        env["HF_HUB_OFFLINE"] = "1"
    return env
