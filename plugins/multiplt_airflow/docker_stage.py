"""The docker runtime: ``multiplt <argv...>`` as DockerOperators in the images from ``docker/``.

- Ordinary stages run in ``[multiplt] worker_image``; GPU stages ask for every GPU through
  ``device_requests``; every other container gets ``NVIDIA_VISIBLE_DEVICES=void``, so that on a
  host whose default runtime is nvidia it sees no GPU (the CUDA base image sets ``all``).
- Every stage container runs as ``SANDBOX_USER`` (uid 10001, the images' ``multiplt`` user),
  never root: what it writes to a bind-mounted data root is that user's, so the data root must
  be writable by it (``_ensure_folder`` warns when it is not). Ordinary and GPU stages mount the
  named volume ``[multiplt] hf_cache_volume`` at the Hub cache (``HF_CACHE``), so a model is
  downloaded once per host, not once per container.
- Local storage of the settings (a ``file://`` data root, the results store's folder:
  ``file_roots``) is bind-mounted at the same path in every container that reads or writes
  storage, so URIs mean the same inside and what the container writes stays on the host.
  No other host folder is visible in a stage container: a run's Param naming a local path
  elsewhere (``source=/home/me/code``) is refused by the run's first task (``mounted``).
  A folder the whole host shares (``/``, a top-level system folder such as /tmp, /home or
  /var, /var/tmp, or /stage) is refused with a MultipltError (``SHARED_FOLDERS``).
- Containers are removed when the task ends, whatever ends it (``auto_remove="force"``: the
  provider removes the container with ``force=True`` in a ``finally``, which also kills one
  still running when the task times out or fails); their output is in the task log. Each
  carries the labels ``org.multiplt.stage`` (``<dag_id>/<task_id>``) and ``org.multiplt.run``
  (the run id), so leftovers (a worker killed outright) can be found and removed by label.
- Credentials (``settings.CREDENTIAL_ENV``) are read from the worker's environment when
  the task runs and passed only as ``private_environment``: never a template field, so never in
  rendered fields, the serialized DAG, XCom or the log (and registered with the secrets masker).
  A container gets only those its command line can use (``credentials.needed`` of the
  entrypoint's arguments and the command: ``stage in|out`` get storage credentials at most).
- Sandbox stages (untrusted, LLM-written programs) run in ``[multiplt] sandbox_image`` with
  ``network_mode="none"`` and no credentials. Their inputs come in and their outputs go out in
  two separate networked steps in the worker image, over a Docker volume private to the task
  instance (``multiplt stage in|run|out``, which maps each remote URI in argv to a folder of
  the volume). The three steps form a ``TaskGroup`` named after the stage; mapped
  (``stage_task_mapped``), a mapped task group whose instance i runs stage_in[i] >> run[i] >>
  stage_out[i] over the i-th argv, so one shard's failure stops no other shard. All three run as
  ``SANDBOX_USER`` (not root; the images own /stage by it, so a fresh volume is writable).
  The run step drops every capability and may not gain privileges; its seccomp filter,
  AppArmor profile, SELinux label and /proc masking are lifted (``RUN_HOST_CONFIG``) because
  the executor's own sandbox, bubblewrap, must create user and PID namespaces and mount a fresh
  /proc in it (the engine ignores the AppArmor and SELinux options on hosts without them).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk import TaskGroup, task_group
from airflow.sdk.exceptions import AirflowFailException
from docker.types import DeviceRequest, Mount

from multiplt_airflow import credentials as creds_mod
from multiplt_airflow.local_stage import BAD_INPUT_EXIT_CODE, KILL_GRACE_S, split_lines
from multiplt_airflow.settings import STORAGE_ENV, MultipltSettings

STAGE_ROOT = "/stage"  # where the per-task volume is mounted in all three sandbox steps
# Folders that local storage may not be in directly: the docker runtime would bind-mount the
# whole folder into every stage container at the same path. `/` and the top-level system
# folders (FHS) are shared by everything on the host and hide the image's own (/opt holds its
# virtualenv, /usr its Python); /var/tmp is a second world-writable /tmp; /stage is where the
# stage volume is mounted.
SHARED_FOLDERS = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
    "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr",
    "/var", "/var/tmp", STAGE_ROOT})
# DockerOperator's failure message carries the container's wait() result: {'StatusCode': N, ...}
_STATUS_CODE = re.compile(r"'StatusCode': (-?\d+)")
# The user of every stage container: the `multiplt` user of both images (docker/*.Dockerfile),
# which owns /stage (the stage volume's mount point), the Hub cache and the worker's home.
SANDBOX_USER = "10001:10001"
STAGE_UID, STAGE_GID = (int(n) for n in SANDBOX_USER.split(":"))
HF_CACHE = "/cache/huggingface"  # HF_HOME of the worker image, where hf_cache_volume is mounted
# Labels of every stage container (docs/docker.md: removing leftovers by label).
STAGE_LABEL, RUN_LABEL = "org.multiplt.stage", "org.multiplt.run"
# Host settings of the sandbox run step (no network, no credentials, not root besides):
# bubblewrap inside needs unshare/clone with namespace flags (Docker's default seccomp profile
# refuses them without CAP_SYS_ADMIN), mount (refused by the docker-default AppArmor profile and
# by SELinux's container type) and an unmasked /proc to mount a new one over.
# MaskedPaths/ReadonlyPaths [] is what `docker run --security-opt systempaths=unconfined` sends.
# The engine applies `apparmor=` only where the host has AppArmor and `label=` only where it
# has SELinux (elsewhere both are accepted and ignored).
RUN_HOST_CONFIG = {"cap_drop": ["ALL"],
                   "security_opt": ["no-new-privileges", "seccomp=unconfined", "apparmor=unconfined",
                                    "label=disable"],
                   "MaskedPaths": [], "ReadonlyPaths": []}


class DockerStageInputRejected(DockerContainerFailedException, AirflowFailException):
    """The container's ``multiplt`` exited 2: it rejected its input (bad URI, config, record).
    Retrying cannot help, so the task fails at once instead of using its retries (as the local
    runtime's StageInputRejected)."""


class MultipltDockerOperator(DockerOperator):
    """A DockerOperator that adds storage settings and credentials at run time.

    ``credentials=False`` (the sandbox step) passes neither. ``stage_volume=True`` mounts the
    volume shared by the stage-in, run and stage-out steps of one task instance at /stage;
    ``remove_volume=True`` (the stage-out step) removes it once the step succeeded (a failed
    step leaves it for the log and the retry).
    """

    def __init__(self, *, credentials: bool = True, stage_volume: bool = False,
                 stage_group: str | None = None, volume_prefix: str = "multiplt-stage",
                 host_config: dict[str, Any] | None = None, remove_volume: bool = False,
                 **kwargs):
        kwargs.setdefault("do_xcom_push", False)
        kwargs.setdefault("mount_tmp_dir", False)
        kwargs.setdefault("auto_remove", "force")
        super().__init__(**kwargs)
        self.credentials = credentials
        self.stage_volume = stage_volume
        self.stage_group = stage_group
        self.volume_prefix = volume_prefix
        self.remove_volume = remove_volume
        # container host settings DockerOperator has no argument for (cap_drop, security_opt).
        # Every container runs Docker's init (tini) as PID 1: `multiplt` as PID 1 would never
        # reap the orphans its tools leave (Pyright's node workers, a runtime's children) and the
        # kernel sends PID 1 no signal it has no handler for; init forwards `docker stop`'s
        # SIGTERM to multiplt, which ends the command as Ctrl-C does (exit 143).
        self.host_config = {"init": True, **(host_config or {})}
        self._own_labels = self.labels  # the caller's; execute() adds the stage's own
        self._secrets: list[str] = []

    @property
    def log(self):
        # container output is logged through self.log: redact credentials from every line
        base = super().log
        return creds_mod.RedactingLogger(base, self._secrets) if self._secrets else base

    def multiplt_argv(self) -> list[str]:
        """The arguments of `multiplt` in the container: the entrypoint's after `multiplt` (the
        `stage in|run|out` steps'), then the (rendered) command."""
        import shlex

        entry, command = (shlex.split(v) if isinstance(v, str) else list(v or [])
                          for v in (self.entrypoint, self.command))
        if entry[:1] == ["multiplt"]:
            entry = entry[1:]
        return [str(a) for a in [*entry, *command]]

    def volume_name(self, context) -> str:
        """One volume per (DAG run, stage, map index), shared by the three sandbox steps."""
        ti = context["ti"]
        key = f"{ti.dag_id}\0{ti.run_id}\0{self.stage_group}\0{ti.map_index}"
        return f"{self.volume_prefix}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"

    def stage_labels(self, context) -> dict[str, str]:
        """The container's labels: which DAG, task and run it belongs to."""
        ti = context.get("ti")
        dag_id = getattr(ti, "dag_id", None) or self.dag_id
        task_id = getattr(ti, "task_id", None) or self.task_id
        run_id = getattr(ti, "run_id", None) or context.get("run_id")
        given = self._own_labels
        own = dict.fromkeys(given, "") if isinstance(given, list) else dict(given or {})
        return {**own, STAGE_LABEL: f"{dag_id}/{task_id}", **({RUN_LABEL: run_id} if run_id else {})}

    def execute(self, context):
        self.labels = self.stage_labels(context)
        if not self.device_requests:  # no GPU, also where the host's default runtime is nvidia
            self.environment = {"NVIDIA_VISIBLE_DEVICES": "void", **(self.environment or {})}
        if self.credentials:
            self.environment = {**{k: os.environ[k] for k in STORAGE_ENV if os.environ.get(k)},
                                **self.environment}
            # the worker's credentials that this command line can use; all of them (and any
            # private environment given) are masked and redacted from the log
            worker = {**creds_mod.from_environment(), **self._private_environment}
            creds_mod.register_masks(worker)
            self._secrets = creds_mod.secret_values(worker)
            self._private_environment = {**creds_mod.for_command(self.multiplt_argv(), worker),
                                         **self._private_environment}
        for mount in self.mounts:
            if mount.get("Type") == "bind":
                _ensure_folder(mount["Source"], self.log)
        if self.stage_volume:
            name = self.volume_name(context)
            self.log.info("Stage volume: %s at %s", name, STAGE_ROOT)
            self.mounts = [*self.mounts, Mount(target=STAGE_ROOT, source=name, type="volume")]
        cli, create = self.cli, self.cli.create_host_config
        cli.create_host_config = lambda **kw: with_host_config(create, kw, self.host_config)
        # the provider logs container output split on "\n" only: a bar a library redraws in place
        # ("\r", transformers loading weights) would reach the task log as one record at its end
        cli, attach = self.cli, self.cli.attach
        cli.attach = lambda **kw: _lines_of(attach(**kw))
        try:
            result = creds_mod.redact(super().execute(context), self._secrets)  # XCom too
        except DockerContainerFailedException as exc:
            code = _STATUS_CODE.search(str(exc))
            if code and int(code.group(1)) == BAD_INPUT_EXIT_CODE:
                raise DockerStageInputRejected(
                    f"{exc} (exit code {BAD_INPUT_EXIT_CODE}: bad input, not retried)",
                    logs=exc.logs) from exc
            raise
        if self.stage_volume and self.remove_volume:
            _remove_volume(self.cli, self.volume_name(context), self.log)
        return result

    def on_kill(self) -> None:
        """Stop the container with KILL_GRACE_S between the engine's SIGTERM (tini forwards it to
        multiplt) and its SIGKILL, then remove it: within the 5 s Airflow leaves the task process
        before it SIGKILLs it (local_stage.KILL_GRACE_S). The provider's on_kill stops with the
        container's stop timeout (10 s by default), so the task process was killed before it
        could remove the container. Removed here, not again by execute's `finally`."""
        from docker.errors import APIError

        if self.container is None:  # not created yet: nothing runs
            return
        container = self.container["Id"]
        self.log.info("Stopping container %s (SIGKILL after %d s)", container[:12], KILL_GRACE_S)
        try:
            self.cli.stop(container, timeout=KILL_GRACE_S)
        except APIError as exc:  # gone already, or the engine refused: the removal kills it
            self.log.info("Container %s not stopped: %s", container[:12], exc)
        if self.auto_remove == "force":
            try:
                self.cli.remove_container(container, force=True)
                self.auto_remove = "never"  # execute's `finally` would find it gone
            except APIError as exc:
                self.log.info("Container %s not removed: %s", container[:12], exc)


def _lines_of(stream):
    """The container's output as "\\n"-ended lines, "\\r" ending a line too (local_stage's rule)."""
    for line in split_lines(stream):
        yield line + b"\n"


def _remove_volume(cli, name: str, log, wait_s: float = 120.0) -> None:
    """Remove the stage volume once the stage-out container is gone. The engine removes an
    exited container in the background, and with the vfs storage driver that takes a while (its
    whole file system is a copy): until then the volume is "in use" (HTTP 409), so retry. A
    container of this volume that never ran or has exited is a leftover of an earlier try whose
    create call timed out on the client while the engine went on to make it (nothing removes
    it, and it would hold the volume for good): it is removed. The volume is this task
    instance's alone (volume_name), so no other task's container is touched."""
    import time

    from docker.errors import APIError

    deadline = time.monotonic() + wait_s
    while True:
        try:
            cli.remove_volume(name)
            break
        except APIError as exc:
            if "in use" not in str(exc) or time.monotonic() > deadline:
                raise
            _remove_leftovers(cli, name, log)
            time.sleep(1.0)
    log.info("Removed stage volume %s", name)


def _remove_leftovers(cli, volume: str, log) -> None:
    """Remove the containers of `volume` that are not running ("created": made by a create call
    that timed out on the client; "exited": not yet removed)."""
    from docker.errors import APIError

    for container in cli.containers(all=True, filters={"volume": volume,
                                                      "status": ["created", "exited"]}):
        try:
            cli.remove_container(container["Id"], v=False, force=False)
            log.info("Removed leftover container %s (%s) of stage volume %s",
                     container["Id"][:12], container.get("State"), volume)
        except APIError as exc:  # being removed already, or started meanwhile
            log.info("Leftover container %s not removed: %s", container["Id"][:12], exc)


def _ensure_folder(path: str, log) -> None:
    """Create a storage folder before it is bind-mounted: the engine refuses a missing source
    (e.g. the results store's folder before the first ``results record``). Warn when the stage
    containers' user (uid 10001) cannot write it: a stage writing there would fail with
    "Permission denied"."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:  # not on this machine's filesystem: the engine will say what is wrong
        log.warning("Cannot create %s for its bind mount: %s", path, exc)
        return
    if not writable_by_stage_user(path):
        log.warning("%s is not writable by uid %d, the user of every stage container: a stage "
                    "that writes there fails with Permission denied (make it that user's: "
                    "chown -R %s %s)", path, STAGE_UID, SANDBOX_USER, path)


def writable_by_stage_user(path: str) -> bool:
    """Whether uid/gid 10001 (no other groups) may create files in the folder `path`, by its
    mode bits (ACLs are not read: a folder writable only through an ACL reads as not)."""
    st = os.stat(path)
    if st.st_uid == STAGE_UID:
        bits = 0o300
    elif st.st_gid == STAGE_GID:
        bits = 0o030
    else:
        bits = 0o003
    return st.st_mode & bits == bits


def with_host_config(create, kwargs: dict[str, Any], extra: dict[str, Any]):
    """create_host_config(**kwargs) plus `extra`: snake_case keys are its arguments, CamelCase
    keys (which it has no argument for) go into the Engine API's HostConfig as they are."""
    args = {k: v for k, v in extra.items() if not k[:1].isupper()}
    host_config = create(**{**kwargs, **args})
    host_config.update({k: v for k, v in extra.items() if k[:1].isupper()})
    return host_config


def file_roots(settings: MultipltSettings) -> list[str]:
    """The host folders behind the settings' local storage URIs (``file://`` or an absolute
    path): the data root and the results store's folder (the store is one file, replaced by a
    temp file renamed into place, next to its ``.lock``). A folder inside another is left out.
    A folder in ``SHARED_FOLDERS`` (``/``, /tmp, ...) is refused: MultipltError."""
    from multiplt.errors import MultipltError
    from multiplt.storage import uri as storage_uri

    folders = []
    for key, uri, is_file in (("data_uri", settings.data_uri, False),
                              ("results_store", settings.results_store, True)):
        if not uri or not (uri.startswith("file://") or os.path.isabs(uri)):
            continue  # s3://, or a relative path (which no mount makes mean the same inside)
        try:
            loc = storage_uri.parse(uri)
        except MultipltError:
            continue  # a bad URI: the stage's command reports it
        if loc.is_local:
            path = "/" + os.path.normpath(loc.path).lstrip("/")  # normpath keeps a leading //
            folder = os.path.dirname(path) if is_file else path
            if folder in SHARED_FOLDERS:
                raise MultipltError(_shared_folder_message(key, uri, folder, path, is_file))
            folders.append(folder)
    roots: list[str] = []  # in the settings' order, so the operator's fields are stable
    for folder in folders:
        if not any(_inside(folder, r) for r in roots):
            roots = [r for r in roots if not _inside(r, folder)] + [folder]
    return roots


def _shared_folder_message(key: str, uri: str, folder: str, path: str, is_file: bool) -> str:
    own = folder.rstrip("/") + "/multiplt"
    example = f"{own}/{os.path.basename(path)}" if is_file else own
    what = "the results store" if is_file else "the data root"
    mounted = f"{what}'s folder" if is_file else what
    return (f"[multiplt] {key} = {uri}: the docker runtime would bind-mount {mounted}, "
            f"{folder}, into every stage container, which it refuses for / and the system "
            f"folders of the host and the images (/tmp, /home, /var, /opt, /stage, ...); put "
            f"{what} in a folder of its own, e.g. file://{example}")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def mounted(path: str, roots: list[str]) -> bool:
    """Whether the absolute host path `path` is in one of `roots` (``file_roots``), the only host
    folders a stage container sees (``_data_mounts``); the planning checks refuse any other
    (multiplt_pipelines.checks.mounted)."""
    path = "/" + os.path.normpath(path).lstrip("/")
    return any(_inside(path, root) for root in roots)


def _data_mounts(settings: MultipltSettings) -> list[Mount]:
    """Every local storage folder of the settings (``file_roots``) is bind-mounted at the same
    path, so file:// URIs mean the same inside the container and what it writes stays."""
    return [Mount(target=path, source=path, type="bind") for path in file_roots(settings)]


def _make(task_id: str, entrypoint: list[str], argv, mapped_argvs, **kwargs):
    if mapped_argvs is not None:
        return MultipltDockerOperator.partial(task_id=task_id, entrypoint=entrypoint,
                                              **kwargs).expand(command=mapped_argvs)
    return MultipltDockerOperator(task_id=task_id, entrypoint=entrypoint, command=argv, **kwargs)


#: seconds an Engine API call may take (the provider's default is 60). With the vfs storage
#: driver the engine copies the whole image to create a container, and on a loaded machine that
#: took longer than 60 s: the client gave up while the engine made the container anyway.
API_TIMEOUT_S = 600


def build(task_id: str, argv: list[str] | None, settings: MultipltSettings, *, gpu: bool,
          sandbox: bool, cpus: float | None, memory: str | None, mapped_argvs, **kwargs: Any):
    common: dict[str, Any] = {"docker_url": settings.docker_url, "timeout": API_TIMEOUT_S, **kwargs}
    if cpus:
        common["cpus"] = float(cpus)
    if memory:
        common["mem_limit"] = memory
    networked = {"network_mode": settings.docker_network} if settings.docker_network else {}
    if gpu and settings.docker_gpus == "all":
        common["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    if not sandbox:
        cache = ([Mount(target=HF_CACHE, source=settings.hf_cache_volume, type="volume")]
                 if settings.hf_cache_volume else [])
        return _make(task_id, ["multiplt"], argv, mapped_argvs, image=settings.worker_image,
                     mounts=[*_data_mounts(settings), *cache], **networked,
                     **{"user": SANDBOX_USER, **common})

    # Sandbox: stage in (networked, credentials) -> run (no network, no credentials) -> stage out.
    # A trigger rule is the stage's, so its first step's: the steps after it follow their own
    # step (a failed stage_in must stop run, whatever the stage's rule).
    first = {"trigger_rule": common.pop("trigger_rule")} if "trigger_rule" in common else {}
    staged = {"stage_volume": True, "stage_group": task_id, "user": SANDBOX_USER,
              "volume_prefix": settings.stage_volume_prefix}

    def steps(argv) -> None:
        entry = ["--root", STAGE_ROOT, "--"]
        stage_in = MultipltDockerOperator(
            task_id="stage_in", entrypoint=["multiplt", "stage", "in", *entry], command=argv,
            image=settings.worker_image, mounts=_data_mounts(settings), **staged, **networked,
            **first, **_without(common, "device_requests"))
        run = MultipltDockerOperator(
            task_id="run", entrypoint=["multiplt", "stage", "run", *entry], command=argv,
            image=settings.sandbox_image, network_mode="none", credentials=False,
            host_config=RUN_HOST_CONFIG, **staged, **common)
        stage_out = MultipltDockerOperator(
            task_id="stage_out", entrypoint=["multiplt", "stage", "out", *entry], command=argv,
            image=settings.worker_image, mounts=_data_mounts(settings), remove_volume=True,
            **staged, **networked, **_without(common, "device_requests"))
        stage_in >> run >> stage_out

    if mapped_argvs is None:
        with TaskGroup(group_id=task_id) as group:
            steps(argv)
        return group
    # Mapped: a mapped task group, so that the steps of one map index depend on each other only
    # (stage_in[i] >> run[i] >> stage_out[i]). Three mapped operators would make every run wait
    # for every stage_in and every stage_out for every run: one failed shard would stop them all.
    # Its steps are plain operators whose command is the group instance's argv (a mapped
    # operator inside an expanded group is refused by Airflow).
    return task_group(group_id=task_id)(steps).expand(argv=mapped_argvs)


def _without(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}
