"""Checkpoints in the training output `OUT`:

    OUT/_multiplt_train.yaml          the resolved config of the run (checked on resume)
    OUT/checkpoints/TAG/              one per epoch: bf16 weights, config (use_cache on), tokenizer,
                                      _multiplt_train.yaml (resolved config + epoch, step, eval loss)
    OUT/state/TAG/                    the latest epoch only: the weights in the training precision
                                      (fp32; bf16 under precision bf16-master or bf16), optimizer, scheduler, RNG
                                      (per process) and trainer_state.json (epoch, step, data hash)
    OUT/logs/epochN.jsonl             per-step train loss, lr, grad norm, tokens/s; eval loss
    OUT/logs/epoch0.jsonl             a new run's eval loss of the base model, before step 1
    OUT/manifest.jsonl                appended last: the commit record (see storage/manifest.py)

Everything is first written to a local temporary folder and then uploaded, so `OUT` can be any
storage URI (file:// or s3://). A checkpoint counts only once its manifest row exists; a resume
starts from the state of the newest manifest row, and older state folders are deleted only after
the newer row is committed. One train at a time writes `OUT` (`hold_output`: an flock on a local
folder, a lease object on object storage): two reruns after a kill would otherwise each resume, and
one would delete the state the other is about to read.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import logging
import os
import shutil

import yaml

from multiplt import storage
from multiplt.errors import MultipltError, PlatformError
from multiplt.training import lease as leases

LOG = logging.getLogger("multiplt.training")
RUN_CONFIG = "_multiplt_train.yaml"
TRAINER_STATE = "trainer_state.json"


def checkpoint_uri(out: str, tag: str) -> str:
    return storage.join(out, "checkpoints", tag)


def state_uri(out: str, tag: str) -> str:
    return storage.join(out, "state", tag)


def write_yaml(uri: str, value: dict) -> None:
    storage.write_text(uri, yaml.safe_dump(value, sort_keys=False))


def read_run_config(out: str) -> dict | None:
    uri = storage.join(out, RUN_CONFIG)
    if not storage.exists(uri):
        return None
    try:
        data = yaml.safe_load(storage.read_text(uri))
    except yaml.YAMLError as exc:
        raise MultipltError(f"{uri} is not valid YAML ({exc.__class__.__name__}); it records the run this "
                            f"output holds: mend or remove it, or use a new --out") from None
    if not isinstance(data, dict) or not isinstance(data.get("config", {}), dict):
        raise MultipltError(f"{uri} is not a run config (a YAML mapping with a `config` mapping); mend or "
                            f"remove it, or use a new --out")
    return data


def save_tagged(model, state_dict: dict, tokenizer, run_info: dict, local_dir: str) -> None:
    """Write a loadable bf16 checkpoint (weights + config + tokenizer + run config) to local_dir.
    `state_dict` is the full (gathered, unwrapped) fp32 or bf16 state dict of `model`."""
    import torch

    bf16 = {k: v.detach().to(device="cpu", dtype=torch.bfloat16) for k, v in state_dict.items()}
    # Tied weights (StarCoder's lm_head = wte) once, as save_pretrained writes them from the model:
    # the separate bf16 copies no longer share storage, so it would store the head a second time.
    tied = getattr(model, "_tied_weights_keys", None) or ()
    if getattr(model.config, "tie_word_embeddings", True):
        for key in tied:
            source = tied[key] if isinstance(tied, dict) else None
            if key in bf16 and (source is None or source in bf16):
                del bf16[key]
    model.save_pretrained(local_dir, state_dict=bf16, safe_serialization=True)
    config = copy.deepcopy(model.config)
    config.use_cache = True  # generation wants the KV cache; training turned it off
    config.dtype = "bfloat16"
    config.save_pretrained(local_dir)
    tokenizer.save_pretrained(local_dir)
    with open(os.path.join(local_dir, RUN_CONFIG), "w") as f:
        yaml.safe_dump(run_info, f, sort_keys=False)


def upload(local_dir: str, uri: str) -> None:
    """Replace whatever is at `uri` (e.g. a partial upload of a killed run) with local_dir. A local
    `uri` on local_dir's filesystem gets the folder renamed into place, not copied (a 15B model's
    training state is about 190 GB; a copy would need twice that on disk for a while)."""
    if storage.exists(uri):
        storage.delete(uri, recursive=True)
    path = storage.local_path(uri)
    if path is not None:
        os.makedirs(os.path.dirname(path.rstrip("/")), exist_ok=True)
        if os.stat(os.path.dirname(path.rstrip("/"))).st_dev == os.stat(local_dir).st_dev:
            try:
                os.replace(local_dir, path.rstrip("/"))
                return
            except OSError as exc:
                # one file system mounted at two places (a container's bind mount of the host
                # folder its temp folder is on) has one st_dev, but rename refuses to cross mounts
                if exc.errno != errno.EXDEV:
                    raise
    storage.upload_dir(local_dir, uri)


def write_trainer_state(local_dir: str, state: dict) -> None:
    with open(os.path.join(local_dir, TRAINER_STATE), "w") as f:
        json.dump(state, f, indent=1)


@contextlib.contextmanager
def hold_output(out: str, accelerator):
    """Hold `out` for the whole run, in the main process, so a second `multiplt train` of it (a
    zombie try beside its retry, a command typed twice) is refused with PlatformError (exit 3, so
    the stage runtime retries it; the retry resumes from the newest checkpoint, or finds the run
    done). Every process of the run raises, not only the main one.

    A local folder (made if missing, removed again if it is still empty at the end) gets an
    exclusive flock on its own descriptor, so no file appears in it, and the kernel drops it
    however the process ends. Object storage (no local path) gets a lease (lease.py): the object
    OUT/.train-lease.json, renewed by a thread of the main process, taken over by another train
    only once it has not been renewed for lease.TTL_S, and deleted at the end. Yields that
    `Lease` in the main process (the run config's write and save_epoch check it before each write:
    a train whose lease was taken over stops there), else None. Unlocked, as two trains of such an `out` are not kept
    apart (see fetch_state): file systems that refuse flock (some NFS mounts), and S3 servers
    without conditional writes (a warning says so)."""
    from accelerate.utils import broadcast_object_list

    lock, made, refusal, held = None, False, None, None
    path = storage.local_path(out)
    try:
        if accelerator.is_main_process and path is not None:
            made = not os.path.exists(path)
            # the lock object exists before the flock is taken, so `finally` closes its
            # descriptor whatever interrupts (a Ctrl-C right after the flock returns included)
            lock = storage.FolderLock(path, timeout=0)
            try:
                lock.__enter__()
            except BlockingIOError:
                refusal = PlatformError(
                    f"another `multiplt train` is writing {out} (it holds the output's lock); once it "
                    f"has ended, rerun to resume from its newest checkpoint or find the run done")
        elif accelerator.is_main_process:
            try:
                held = leases.acquire(out)
            except MultipltError as exc:  # raised by every process (the others wait for this one)
                refusal = exc
            if held is not None:
                held.start()
        refusal = broadcast_object_list([refusal])[0]
        if refusal is not None:
            raise refusal
        yield held
    finally:
        if held is not None:
            held.release()
        if lock is not None:
            lock.__exit__()  # drops the lock
        if made:
            with contextlib.suppress(OSError):  # only an empty folder: a refused run wrote nothing
                os.rmdir(path)


def check_held(lease, accelerator, what: str) -> None:
    """Before the processes write `what` to the output: the main process checks that this train
    still holds the output's lease (`Lease.check`; nothing to check without one), and every
    process raises its PlatformError together. A collective: every process calls it."""
    from accelerate.utils import broadcast_object_list

    refusal = None
    if lease is not None:
        try:
            lease.check(what)
        except MultipltError as exc:
            refusal = exc
    refusal = broadcast_object_list([refusal])[0]
    if refusal is not None:
        raise refusal


def fetch_state(out: str, tag: str, local_dir: str) -> tuple[str, dict]:
    """The folder holding OUT/state/TAG (itself when local, else a download to local_dir) and its
    trainer_state.json. A state gone while the manifest has a newer row than TAG is another
    train of OUT that committed that row and pruned TAG's state after this one read the manifest
    (`hold_output` keeps two trains apart, but not on a file system that refuses flock or an S3
    server without conditional writes): PlatformError (retried), never advice to drop the run."""
    from multiplt.storage import manifest

    uri = state_uri(out, tag)
    if not storage.exists(storage.join(uri, TRAINER_STATE)):
        newest = (manifest.read(out) or [{}])[-1].get("tag")
        if newest != tag:
            raise PlatformError(f"cannot resume {out} from {tag}: another `multiplt train` of it has "
                                f"committed {newest} since this one read the manifest, and removed "
                                f"{tag}'s state; rerun to resume from {newest} or find the run done")
        raise MultipltError(f"cannot resume: {uri} holds no complete training state (the manifest "
                            f"lists {tag} as the newest checkpoint); start again with a new --out")
    folder = storage.local_path(uri)
    if folder is None:
        storage.download_dir(uri, local_dir)
        folder = local_dir
    with open(os.path.join(folder, TRAINER_STATE)) as f:
        return folder, json.load(f)


def prune_states(out: str, keep_tag: str) -> None:
    """Delete every state folder but the latest one (each 1B-model state is about 13 GB)."""
    for uri in storage.ls(storage.join(out, "state")):
        if uri.endswith("/") and storage.basename(uri) != keep_tag:
            storage.delete(uri, recursive=True)
            LOG.info("deleted older training state %s", uri)


def save_epoch(config, accelerator, model, tokenizer, run_info, packed, workdir, epoch, step,
               eval_loss, log_rows, run_start_step, lease=None) -> dict:
    """Tagged bf16 checkpoint, then the full state, then the manifest row (the commit). `lease`
    (hold_output's, main process) is checked before each of them is written: a train whose lease
    another train took over stops with PlatformError before writing anything more."""
    from accelerate.utils import broadcast_object_list

    from multiplt.storage import manifest

    tag = config.tag(epoch)
    main = accelerator.is_main_process
    check_held(lease, accelerator, f"checkpoint {tag}")
    full_state = accelerator.get_state_dict(model)  # gathers FSDP shards; collective
    ckpt_dir = os.path.join(workdir, f"ckpt-{epoch}")
    state_dir = broadcast_object_list([os.path.join(workdir, f"state-{epoch}")])[0]
    uri = checkpoint_uri(config.out, tag)
    if main:
        info = dict(run_info, epoch=epoch, step=step, eval_loss=eval_loss, tag=tag)
        save_tagged(accelerator.unwrap_model(model), full_state, tokenizer, info, ckpt_dir)
        upload(ckpt_dir, uri)
        os.makedirs(state_dir, exist_ok=True)
    del full_state
    accelerator.wait_for_everyone()
    accelerator.save_state(state_dir)
    accelerator.wait_for_everyone()
    # The checkpoint holds the tokenizer the run used (save_tagged), so the row names the
    # checkpoint itself: it loads wherever the checkpoint does, also when the base is a training
    # output (whose folder holds no tokenizer) or a Hub revision.
    row = {"uri": uri, "epoch": epoch, "step": step, "tag": tag, "eval_loss": eval_loss,
           "lang": config.lang, "experiment": config.experiment, "base": config.base,
           "base_revision": config.base_revision or None, "base_commit": run_info.get("base_commit"),
           "dataset_commit": run_info.get("dataset_commit"), "tokenizer": uri,
           "run_start_step": run_start_step, "state_uri": state_uri(config.out, tag)}
    if main:
        write_trainer_state(state_dir, {"epoch": epoch, "step": step, "tag": tag,
                                        "data_sha256": packed.sha256,
                                        "processes": accelerator.num_processes, "seed": config.seed})
    # collectives, so that every process stops together when the lease was lost meanwhile
    check_held(lease, accelerator, f"the training state of {tag}")  # the checkpoint's upload may have taken long
    if main:
        upload(state_dir, row["state_uri"])
        storage.write_jsonl(storage.join(config.out, "logs", f"epoch{epoch}.jsonl"),
                            log_rows + [{"step": step, "eval_loss": eval_loss}])
    check_held(lease, accelerator, f"the manifest row of {tag}")  # and so may the state's
    if main:  # the commit, then the prune of older states
        manifest.append(config.out, row)
        prune_states(config.out, keep_tag=tag)
        LOG.info("checkpoint %s (epoch %d, step %d) written to %s", tag, epoch, step, uri)
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)
    accelerator.wait_for_everyone()
    return row
