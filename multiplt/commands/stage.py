"""``multiplt stage in|run|out``: run a command that must not touch the network on staged files.

The docker runtime runs sandbox stages (untrusted programs) in a container with networking off
and no credentials. Around it, two networked steps move the data over a volume mounted at ROOT:

    multiplt stage in  --root /stage -- execute --in s3://b/run --shard 1/4   # download inputs
    multiplt stage run --root /stage -- execute --in s3://b/run --shard 1/4   # no network
    multiplt stage out --root /stage -- execute --in s3://b/run --shard 1/4   # upload new files

All three get the stage's own argv. Every ``s3://`` or ``file://`` URI in it (also as
``--opt=URI``) maps to the same folder of ROOT in all three steps; ``in`` copies what exists
there (a folder or one object), ``run`` executes ``multiplt`` with the URIs replaced by local
paths, and ``out`` uploads only files that are new or changed since ``in``, so inputs are never
rewritten and a rerun after a partial run uploads only the missing work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sys

from multiplt.errors import MultipltError

LOG = logging.getLogger("multiplt.stage")
SCHEMES = ("s3", "file")
# URLs that are arguments, not storage: a teacher server's --api-base, a Hub dataset; left as they are
PASSED = ("http", "https", "hf")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
MANIFEST = "_staged.manifest"  # never *.json: side files must not look like MultiPL-E files


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "stage", help="stage a sandbox command's files in and out of a local folder (docker runtime)",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("in", "run", "out"))
    parser.add_argument("--root", required=True, help="the folder shared by the three steps")
    parser.add_argument("argv", nargs="+", help="the stage's multiplt command line (after --)")
    parser.set_defaults(func=run_command)


def local_for(root: str, uri: str) -> str:
    """The local path a URI maps to: the same in every step."""
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    name = uri.rstrip("/").rsplit("/", 1)[-1] or "root"
    return os.path.join(root, digest, name)


def _staged(value: str) -> bool:
    """Whether an argument is a URI to stage (s3://, file://); http(s):// and hf:// pass as they
    are (a stage's argv carries the teacher's --api-base, unused by the sandbox step); any other
    `scheme://`, and a mistyped URI (`s3:/b/x`, `file:x`; see `storage.uri.mistyped`) that does not
    mean one of those passed, is an error, since the offline run would otherwise fail far from the
    cause."""
    from multiplt.storage.uri import local_name_hint, mistyped

    match = _SCHEME.match(value)
    if not match:
        meant = mistyped(value)
        meant_scheme = _SCHEME.match(meant) if meant else None
        if meant_scheme and meant_scheme.group(1).lower() not in PASSED:
            raise MultipltError(f"cannot stage {value}: a mistyped URI, not a local path (did you mean "
                                f"{meant!r}? {local_name_hint(value)})")
        return False
    if match.group(1).lower() in PASSED:
        return False
    if match.group(1).lower() not in SCHEMES:
        raise MultipltError(f"cannot stage {value}: unsupported scheme {match.group(1)}:// "
                            f"(only s3:// and file:// URIs are staged)")
    return True


def uris_in(argv: list[str]) -> list[str]:
    found = []
    for arg in argv:
        value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
        if _staged(value) and value not in found:
            found.append(value)
    return found


def rewrite(argv: list[str], root: str) -> list[str]:
    out = []
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            opt, value = arg.split("=", 1)
            out.append(f"{opt}={local_for(root, value)}" if _staged(value) else arg)
        else:
            out.append(local_for(root, arg) if _staged(arg) else arg)
    return out


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(path: str) -> dict[str, str]:
    """{relative path: sha256} of the files at `path` ("" for a single file)."""
    if os.path.isfile(path):
        return {"": _digest(path)}
    out = {}
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, path).replace(os.sep, "/")] = _digest(full)
    return out


def stage_in(argv: list[str], root: str) -> dict:
    from multiplt import storage
    from multiplt.storage import AtomicFile, cannot_write

    manifest = {}
    created = []  # removed again when staging fails (no credentials, a broken download)
    try:
        for uri in uris_in(argv):
            local = local_for(root, uri)
            if not os.path.exists(os.path.dirname(local)):
                created.append(os.path.dirname(local))
            try:
                os.makedirs(os.path.dirname(local), exist_ok=True)
            except OSError as exc:  # a read-only or full stage volume
                raise cannot_write(local, exc) from None
            if storage.ls(uri, recursive=True):
                storage.download_dir(uri, local)
            elif storage.exists(uri):
                storage.copy(uri, local)
            manifest[uri] = _files(local) if os.path.exists(local) else {}
            LOG.info("staged in %s -> %s (%d files)", uri, local, len(manifest[uri]))
        with AtomicFile(os.path.join(root, MANIFEST)) as f:  # an OSError: one MultipltError
            f.write(json.dumps(manifest).encode())
    except BaseException:
        for folder in created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return manifest


def stage_out(argv: list[str], root: str) -> list[str]:
    from multiplt import storage

    path = os.path.join(root, MANIFEST)
    if not os.path.exists(path):
        raise MultipltError(f"{path} is missing: run `multiplt stage in` first")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise MultipltError(f"{path} is not a readable stage manifest ({exc}): run `multiplt stage in` "
                            f"again") from None
    if not isinstance(manifest, dict) or not all(isinstance(v, dict) for v in manifest.values()):
        raise MultipltError(f"{path} is not a stage manifest (expected a JSON object of "
                            f"{{uri: {{file: sha256}}}}): run `multiplt stage in` again")
    uploaded = []
    for uri in uris_in(argv):
        local = local_for(root, uri)
        if not os.path.exists(local):
            continue
        before = manifest.get(uri, {})
        count = 0
        for rel, digest in sorted(_files(local).items()):
            if before.get(rel) == digest:
                continue  # an input, or unchanged: never rewrite it
            src = os.path.join(local, *rel.split("/")) if rel else local
            dst = storage.join(uri, rel) if rel else uri
            storage.copy(src, dst)
            uploaded.append(dst)
            count += 1
        LOG.info("staged out %s: %d new or changed files", uri, count)
    return uploaded


def run_command(args) -> int:
    argv = [a for a in args.argv if a != "--"] if args.argv[:1] == ["--"] else args.argv
    if not os.path.isdir(args.root):
        raise MultipltError(f"--root {args.root} is not a folder (mount the stage volume there)")
    if args.step == "in":
        stage_in(argv, args.root)
    elif args.step == "out":
        stage_out(argv, args.root)
    else:
        local_argv = rewrite(argv, args.root)
        LOG.info("running multiplt %s", " ".join(local_argv))
        # the sandbox hides this folder from programs too (multiplt.execution.view)
        os.environ["MULTIPLT_STAGE_ROOT"] = os.path.abspath(args.root)
        os.execv(sys.executable, [sys.executable, "-m", "multiplt", *local_argv])
    return 0
