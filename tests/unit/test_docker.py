"""The images and the compose stack in docker/ cannot be built here (no Docker engine), so this
keeps them consistent with the code: the commands they run exist, what they pip-install is pinned,
goes through the lock and belongs to the image's extras, and compose's settings are real ones."""

from __future__ import annotations

import ast
import importlib.util
import pathlib
import re
import shlex
from types import SimpleNamespace

import pytest
import yaml

from multiplt import languages
from tests import packaging_facts as facts
from tests.packaging_facts import commands_on_disk

DOCKER = facts.ROOT / "docker"
# image -> the extras it must install (exactly): the places each image runs
IMAGE_EXTRAS = {
    "worker.Dockerfile": {"gen", "train", "storage", "bench", "corpus", "translate"},
    "sandbox.Dockerfile": {"exec"},
    "airflow.Dockerfile": {"airflow", "storage", "postgres"},
}
REQ = facts.read_pins(facts.ROOT / "requirements.txt")


def instructions(dockerfile: pathlib.Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, current = [], ""
    for line in dockerfile.read_text().splitlines():
        if line.lstrip().startswith("#") and not current:
            continue
        if line.lstrip().startswith("#"):
            continue
        current += line.rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            if current.strip():
                word, _, rest = current.strip().partition(" ")
                out.append((word.upper(), rest.strip()))
            current = ""
    return out


def shell_commands(run: str) -> list[list[str]]:
    """The simple commands of a RUN line (split on && ; |)."""
    commands = []
    for part in re.split(r"&&|\|\||;|\|", run):
        words = shlex.split(part, posix=True)
        if words:
            commands.append(words)
    return commands


def pip_installs(dockerfile: pathlib.Path) -> list[list[str]]:
    found = []
    for kind, args in instructions(dockerfile):
        if kind == "RUN":
            for words in shell_commands(args):
                names = [w.rsplit("/", 1)[-1] for w in words]
                if "pip" in names[:3] and "install" in words:
                    found.append(words[words.index("install") + 1:])
                elif names[:1] == ["pip"] or names[:1] == ["pip3"]:
                    found.append(words[1:])
    return found


def assert_multiplt_argv(argv: list[str], where: str) -> None:
    """`multiplt ARGV` names a command that exists (or is --help/--version)."""
    words = [w for w in argv if not w.startswith("-")]
    if not words:
        assert set(argv) <= {"--help", "--version", "-h"}, f"{where}: multiplt {argv}"
        return
    assert words[0] in commands_on_disk(), f"{where}: `multiplt {' '.join(argv)}`: no such command"


@pytest.mark.parametrize("name", sorted(IMAGE_EXTRAS))
def test_image_installs_its_extras_through_the_lock(name):
    dockerfile = DOCKER / name
    installs = pip_installs(dockerfile)
    assert installs, f"{name} installs nothing with pip"
    extras = set()
    for args in installs:
        assert any(a in ("-c", "--constraint") for a in args) and "requirements.lock" in args, (
            f"{name}: `pip install {' '.join(args)}` does not go through requirements.lock")
        assert "-r" not in args and "--requirement" not in args, (
            f"{name}: installs a whole requirements file; install the image's extras instead")
        targets = [a for i, a in enumerate(args) if not a.startswith("-") and args[i - 1] not in ("-c", "--constraint")]
        for target in targets:
            project = re.match(r"^(?:/src|\.)\[([a-z,]+)\]$", target)
            if project:
                extras |= set(project.group(1).split(","))
                continue
            pin = re.match(r"^([A-Za-z0-9._-]+)==(\S+)$", target)
            assert pin, f"{name}: pip installs {target!r}, which is not pinned as name==version"
            dist = facts.norm(pin.group(1))
            assert REQ.get(dist) == pin.group(2), f"{name}: {target} is not what requirements.txt pins"
            assert any(dist in facts.extras()[e] for e in IMAGE_EXTRAS[name]), (
                f"{name}: {target} belongs to none of the image's extras {sorted(IMAGE_EXTRAS[name])}")
    assert extras == IMAGE_EXTRAS[name], f"{name} installs extras {sorted(extras)}, want {sorted(IMAGE_EXTRAS[name])}"
    assert extras <= set(facts.extras()), f"{name} names an extra pyproject.toml lacks"
    copied = " ".join(args for kind, args in instructions(dockerfile) if kind == "COPY")
    assert "requirements.lock" in copied and "pyproject.toml" in copied


def sandbox_apt() -> set[str]:
    """What docker/sandbox.Dockerfile apt-get installs."""
    apt = set()
    for kind, args in instructions(DOCKER / "sandbox.Dockerfile"):
        if kind == "RUN":
            for words in shell_commands(args):
                if words[:2] == ["apt-get", "install"]:
                    apt |= {w for w in words[2:] if not w.startswith("-")}
    return apt


def sandbox_language_problems(apt: set[str], langs) -> list[str]:
    """What the languages `langs` need that the sandbox image's apt packages `apt` (with what
    they depend on) lack: each of their Debian `packages` and the package of each of their
    `binaries`, unless Essential (in every Debian image). Julia is installed from its own tarball
    and Python is the base image's (both checked in test_sandbox_image_has_every_language_runtime)."""
    from tests.system_facts import apt_packages, is_essential, package_closure, providing_package

    closure = package_closure(apt & set(apt_packages()))
    problems = []
    for lang in langs:
        for package in lang.packages:
            if package != "python3" and package not in closure and not is_essential(package):
                problems.append(f"sandbox image lacks {package} ({lang.name}'s packages)")
        for binary in lang.binaries:
            if binary in ("julia", "python3"):
                continue
            package = providing_package(binary)
            if package not in closure and not is_essential(package):
                problems.append(f"sandbox image lacks {binary} ({lang.name}, Debian package {package})")
    return problems


def test_sandbox_image_has_every_language_runtime():
    text = (DOCKER / "sandbox.Dockerfile").read_text()
    apt = sandbox_apt()
    # each language's Debian packages (runtime, test library) and binaries, as scripts/setup.sh's
    assert sandbox_language_problems(apt, languages.LANGUAGES.values()) == []
    # python3: the base image's own Python (by default the official image)
    assert re.search(r"^ARG SANDBOX_BASE=python:3\.11\S*\nFROM \$\{SANDBOX_BASE\}$", text, re.M)
    for needed in ("bubblewrap", "util-linux"):
        assert needed in apt, f"sandbox image lacks {needed}"
    # and every program the executor and the languages run (bwrap, prlimit, setpriv, luac5.4, ...)
    from tests.system_facts import (apt_packages, is_essential, package_closure, programs_in_python,
                                    providing_package)

    closure = package_closure(apt & set(apt_packages()))
    for path in facts.python_files("multiplt/execution", "multiplt/languages"):
        for program in programs_in_python(path):
            if program in ("julia", "python3"):
                continue
            package = providing_package(program)
            assert package in closure or is_essential(package), (
                f"sandbox image lacks {program} (run by {path.relative_to(facts.ROOT)}, Debian package {package})")
    # Julia: the official tarball, pinned by version and sha256, checked, on PATH
    assert re.search(r"JULIA_VERSION=\d+\.\d+\.\d+", text)
    assert re.search(r"JULIA_SHA256=[0-9a-f]{64}\b", text)
    assert "sha256sum --strict --check" in text and "julialang" in text
    assert re.search(r"ln -s \S+/bin/julia /usr/local/bin/julia", text)


def test_the_sandbox_check_names_a_missing_package_and_accepts_essential_ones():
    """A Perl-like language: its test library (libtest-deep-perl) is not in the image, and is
    named; its runtime, perl, comes from perl-base, Essential (in every Debian image): accepted."""
    perl = SimpleNamespace(name="perl", packages=("libtest-deep-perl",), binaries=("perl",))
    assert sandbox_language_problems(sandbox_apt(), [perl]) == [
        "sandbox image lacks libtest-deep-perl (perl's packages)"]
    lua = SimpleNamespace(name="lua", packages=("lua5.4", "lua-unit"), binaries=("lua5.4",))
    assert sandbox_language_problems(sandbox_apt() - {"lua-unit"}, [lua]) == [
        "sandbox image lacks lua-unit (lua's packages)"]


@pytest.mark.parametrize("name", sorted(IMAGE_EXTRAS))
def test_commands_the_images_run_exist(name):
    """Every image runs `multiplt` at least once (the build's smoke check), and what it runs exists."""
    entrypoint, checked = None, 0
    for kind, args in instructions(DOCKER / name):
        if kind == "RUN":
            for words in shell_commands(args):
                if words[0] == "multiplt":
                    assert_multiplt_argv(words[1:], f"{name} RUN")
                    checked += 1
        elif kind == "ENTRYPOINT":
            entrypoint = yaml.safe_load(args)
        elif kind == "CMD" and entrypoint == ["multiplt"]:
            assert_multiplt_argv(yaml.safe_load(args), f"{name} CMD")
            checked += 1
    assert checked, f"{name} runs no `multiplt` command, so nothing checks that the install works"


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def default_of(value: str) -> str:
    """What compose gives `${NAME:-default}` when NAME is unset (a plain value: itself)."""
    match = re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*:-(.*)\}", value)
    return match.group(1) if match else value


def test_compose_builds_from_existing_dockerfiles_and_runs_existing_commands():
    services = compose()["services"]
    built = {}
    for name, service in services.items():
        if "build" in service:
            context = (DOCKER / service["build"]["context"]).resolve()
            dockerfile = context / service["build"]["dockerfile"]
            assert dockerfile.is_file(), f"compose service {name} builds from missing {dockerfile}"
            built[service["image"]] = dockerfile.name
            entry = [w for kind, a in instructions(dockerfile) if kind == "ENTRYPOINT" for w in yaml.safe_load(a)]
            if entry == ["multiplt"] and "command" in service:
                assert_multiplt_argv(service["command"], f"compose service {name}")
    env = services["airflow-scheduler"]["environment"]
    assert built.get(default_of(env["AIRFLOW__MULTIPLT__WORKER_IMAGE"])) == "worker.Dockerfile"
    assert built.get(default_of(env["AIRFLOW__MULTIPLT__SANDBOX_IMAGE"])) == "sandbox.Dockerfile"
    for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
        assert any(s.get("command", [None])[:2] == ["airflow", component] for s in services.values()), component


def _settings_fields() -> set[str]:
    tree = ast.parse((facts.ROOT / "plugins/multiplt_airflow/settings.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "MultipltSettings":
            return {s.target.id for s in node.body if isinstance(s, ast.AnnAssign)}
    raise AssertionError("MultipltSettings not found in plugins/multiplt_airflow/settings.py")


def test_compose_settings_are_real_airflow_and_multiplt_options():
    spec = importlib.util.find_spec("airflow")
    templates = [pathlib.Path(p) / "config_templates/config.yml" for p in spec.submodule_search_locations]
    options = yaml.safe_load(next(t for t in templates if t.exists()).read_text())
    fields = _settings_fields()
    services = compose()["services"]
    env = services["airflow-scheduler"]["environment"]
    for key in env:
        match = re.match(r"^AIRFLOW__([A-Z_]+?)__([A-Z_]+)$", key)
        if not match:
            continue
        section, option = match.group(1).lower(), match.group(2).lower()
        if section == "multiplt":
            assert option in fields, f"compose sets [multiplt] {option}, which settings.py does not read"
        else:
            assert option in options.get(section, {}).get("options", {}), f"compose sets unknown [{section}] {option}"
    assert env["AIRFLOW__MULTIPLT__RUNTIME"] == "docker"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert "psycopg2-binary" in facts.extras()["postgres"]
    # data lands in the bucket the init step creates, on the MinIO service
    bucket = re.search(r"mc mb --ignore-existing local/([a-z0-9.-]+)", " ".join(services["minio-init"]["command"])).group(1)
    for key in ("AIRFLOW__MULTIPLT__DATA_URI", "AIRFLOW__MULTIPLT__RESULTS_STORE"):
        assert env[key].startswith(f"s3://{bucket}/"), key
    assert env["AWS_ENDPOINT_URL"] == "http://minio:9000" and "minio" in services
    # stage containers resolve `minio` only on this stack's network
    assert env["AIRFLOW__MULTIPLT__DOCKER_NETWORK"] == compose()["networks"]["default"]["name"]
    # secrets come from docker/.env, never from the committed file
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY",
                "AWS_SECRET_ACCESS_KEY"):
        assert env[key].startswith("${") and ":?" in env[key], f"{key} must come from docker/.env"


def _credential_env() -> tuple[str, ...]:
    tree = ast.parse((facts.ROOT / "plugins/multiplt_airflow/settings.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["CREDENTIAL_ENV"]:
            return ast.literal_eval(node.value)
    raise AssertionError("CREDENTIAL_ENV not found in plugins/multiplt_airflow/settings.py")


def test_compose_passes_the_credentials_the_stage_runtime_forwards():
    """The stage runtime forwards the credentials of settings.CREDENTIAL_ENV from the Airflow
    worker's environment; compose must put them there. The Hub token and the teacher server's
    key are optional: taken from the host's environment or docker/.env, empty when unset."""
    names = _credential_env()
    assert {"HF_TOKEN", "OPENAI_API_KEY"} <= set(names)
    airflow = {name: s for name, s in compose()["services"].items()
               if str(s.get("image", "")).startswith("multiplt-airflow")}
    assert {"airflow-scheduler", "airflow-triggerer", "airflow-dag-processor"} <= set(airflow)
    for name, service in airflow.items():
        env = service["environment"]
        for key in ("HF_TOKEN", "OPENAI_API_KEY"):
            assert env.get(key) == f"${{{key}:-}}", (
                f"compose service {name}: {key} must be passed from the host, optional: "
                f"{key}: ${{{key}:-}}, not {env.get(key)!r}")
        # every credential the runtime forwards is decided on here (MinIO's root credentials
        # are not temporary: no session token)
        missing = set(names) - set(env) - {"AWS_SESSION_TOKEN"}
        assert not missing, f"compose service {name} does not pass {sorted(missing)}"


def test_stage_runtime_runs_existing_commands():
    """The docker stage runtime wraps commands as `multiplt stage ...` inside the images."""
    checked = 0
    for path in facts.python_files("plugins"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.List) and node.elts and isinstance(node.elts[0], ast.Constant) \
                    and node.elts[0].value == "multiplt":
                argv = [e.value for e in node.elts[1:] if isinstance(e, ast.Constant) and isinstance(e.value, str)]
                if argv:
                    assert_multiplt_argv(argv, f"{path.relative_to(facts.ROOT)}:{node.lineno}")
                    checked += 1
    assert checked, "no `multiplt ...` command line found in plugins/: the check checked nothing"


@pytest.mark.parametrize("name", sorted(IMAGE_EXTRAS))
def test_what_images_copy_exists_and_reaches_the_build(name):
    """COPY sources exist in the repo and are not excluded by the Dockerfile's own .dockerignore
    (BuildKit reads docker/NAME.Dockerfile.dockerignore for a build context at the repo root)."""
    ignore = (DOCKER / f"{name}.dockerignore").read_text().splitlines()
    assert "*" in ignore, f"{name}.dockerignore should exclude everything by default"
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    for kind, args in instructions(DOCKER / name):
        if kind == "COPY" and "--from" not in args:
            *sources, _dest = args.split()
            for source in sources:
                assert (facts.ROOT / source).exists(), f"{name} copies missing {source}"
                assert source.rstrip("/") in allowed, f"{name} copies {source}, which its .dockerignore excludes"


def test_compose_lets_the_host_choose_the_worker_image_and_gpus():
    """A host without the NVIDIA Container Toolkit failed every GPU stage ("could not select
    device driver"), and the worker image was fixed in compose.yaml, whatever the shell said."""
    from multiplt_airflow.settings import DOCKER_GPUS, MultipltSettings

    env = compose()["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__MULTIPLT__WORKER_IMAGE"] == "${MULTIPLT_WORKER_IMAGE:-multiplt-worker:latest}"
    assert env["AIRFLOW__MULTIPLT__DOCKER_GPUS"] == "${MULTIPLT_DOCKER_GPUS:-all}"
    assert default_of(env["AIRFLOW__MULTIPLT__DOCKER_GPUS"]) == MultipltSettings.docker_gpus
    assert MultipltSettings.docker_gpus in DOCKER_GPUS
    text = (DOCKER / "compose.yaml").read_text()
    assert "MULTIPLT_DOCKER_GPUS=none" in text and "NVIDIA Container Toolkit" in text
    doc = (facts.ROOT / "docs" / "docker.md").read_text()
    assert "MULTIPLT_DOCKER_GPUS=none" in doc and "MULTIPLT_WORKER_IMAGE" in doc
    assert "NVIDIA Container Toolkit" in doc


AIRFLOW_JOBS = {"scheduler": "SchedulerJob", "dag-processor": "DagProcessorJob",
                "triggerer": "TriggererJob"}


def _airflow_components() -> dict[str, tuple[str, dict]]:
    """Airflow component (api-server, ...) -> (compose service name, service)."""
    return {s["command"][1]: (name, s) for name, s in compose()["services"].items()
            if s.get("command", [None])[:1] == ["airflow"] and s["command"][1] in
            ("api-server", *AIRFLOW_JOBS)}


def test_compose_airflow_components_have_healthchecks_and_wait_for_the_api_server():
    """No component had a healthcheck, and the scheduler started its tasks (which talk to the
    execution API) before the api-server answered."""
    from airflow.api_fastapi.core_api.routes.public import public_router
    from airflow.cli import cli_config

    found = _airflow_components()
    assert set(found) == {"api-server", *AIRFLOW_JOBS}
    apiserver = found["api-server"][0]
    components = {component: service for component, (_, service) in found.items()}
    # the api-server: its health endpoint, a route of the public API that needs no login
    test = components["api-server"]["healthcheck"]["test"]
    url = re.search(r"http://localhost:(\d+)(/\S+?)['\"]", " ".join(test))
    assert url and url.group(1) == components["api-server"]["command"][-1]
    assert url.group(2) in {route.path for route in public_router.routes}
    assert url.group(2) == "/api/v2/monitor/health"
    choices = cli_config.ARG_JOB_TYPE_FILTER.kwargs["choices"]
    for component, job in AIRFLOW_JOBS.items():
        service = components[component]
        assert service["healthcheck"]["test"] == [
            "CMD", "airflow", "jobs", "check", "--job-type", job, "--local"], component
        assert job in choices
        assert service["depends_on"][apiserver] == {"condition": "service_healthy"}, component
    for service in components.values():
        check = service["healthcheck"]
        assert {"interval", "timeout", "retries", "start_period"} <= set(check)


def _cfg_multiplt() -> dict[str, str]:
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(facts.ROOT / "airflow.cfg")
    return dict(parser["multiplt"])


def test_airflow_cfg_and_the_docs_name_every_multiplt_setting_with_its_default():
    """docker_gpus and stage_volume_prefix were documented but missing from airflow.cfg."""
    import dataclasses

    from multiplt_airflow.settings import MultipltSettings

    cfg = _cfg_multiplt()
    fields = {f.name: f.default for f in dataclasses.fields(MultipltSettings)}
    assert set(cfg) == set(fields), f"airflow.cfg [multiplt] lacks {sorted(set(fields) - set(cfg))}"
    for name, default in fields.items():
        if name not in ("data_uri", "results_store"):  # under the data directory, by variable
            assert cfg[name] == default, f"airflow.cfg [multiplt] {name} = {cfg[name]!r}, the code's default is {default!r}"
    table = (facts.ROOT / "docs" / "architecture.md").read_text()
    for name in fields:
        assert f"| `{name}` |" in table, f"docs/architecture.md's settings table lacks {name}"


def _useradd_uid(dockerfile: str) -> int:
    return int(re.search(r"useradd --uid (\d+)", (DOCKER / dockerfile).read_text()).group(1))


def test_the_worker_image_gives_the_stage_user_its_home_cache_and_workdir():
    """Stages ran as root; as uid 10001 they need a writable HF_HOME (/cache/huggingface), home
    (~/.cache: checkpoints copied from S3) and working folder (/work), all root's before."""
    from multiplt_airflow.docker_stage import HF_CACHE, SANDBOX_USER, STAGE_GID, STAGE_UID

    assert SANDBOX_USER == f"{STAGE_UID}:{STAGE_GID}"
    assert _useradd_uid("worker.Dockerfile") == _useradd_uid("sandbox.Dockerfile") == STAGE_UID
    steps = instructions(DOCKER / "worker.Dockerfile")
    env = " ".join(a for k, a in steps if k == "ENV")
    assert f"HF_HOME={HF_CACHE}" in env
    workdir = [a for k, a in steps if k == "WORKDIR"][-1]
    runs = [(i, a) for i, (k, a) in enumerate(steps) if k == "RUN"]
    [(index, run)] = [(i, a) for i, a in runs if "usermod" in a]
    commands = shell_commands(run)
    assert ["mkdir", "-p", HF_CACHE] in commands
    assert ["usermod", "--home", "/cache", "multiplt"] in commands
    assert ["chown", "-R", f"{STAGE_UID}:{STAGE_GID}", "/cache", workdir] in commands
    # after the dependency layer (a rebuild reuses it), before the code (edited often)
    deps = next(i for i, a in runs if "pip install" in a and "--no-deps" not in a)
    code = next(i for i, (k, a) in enumerate(steps) if k == "COPY" and a.startswith("multiplt "))
    assert deps < index < code
