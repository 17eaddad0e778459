"""The fine-tuning loop, top to bottom: set up accelerate, load model and data, resume if the
output already has checkpoints (else measure the base model's eval loss), then for each epoch
run the optimizer steps, measure eval loss and write a tagged checkpoint. The same code runs on
a CPU (tests), one GPU, or several GPUs launched with `accelerate launch -m multiplt train ...`
(DDP, or FSDP with distributed: fsdp).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import tempfile
import time

import torch

from multiplt import provenance
from multiplt.errors import MultipltError
from multiplt.log import progress
from multiplt.settings_diff import differences
from multiplt.storage import manifest
from multiplt.training import checkpoint, speed
from multiplt.training.config import TrainConfig, resume_differences
from multiplt.training.lease import lease_uri
from multiplt.training.optim import build_optimizer, build_scheduler
from multiplt.training.packing import epoch_order
from multiplt.training.step import LaggedMetrics, compile_blocks, evaluate, setup_forward, train_step

LOG = logging.getLogger("multiplt.training")


def make_accelerator(config: TrainConfig):
    from accelerate import Accelerator

    precision = resolve_precision(config)
    kwargs = {"mixed_precision": "bf16" if precision == "bf16-mixed" else "no"}
    if config.distributed == "fsdp":
        from accelerate import FullyShardedDataParallelPlugin

        # use_orig_params: the optimizer sees the model's own parameters (accelerate's FSDP1
        # default is flat ones), so biases and LayerNorm weights get no weight decay here either.
        kwargs["fsdp_plugin"] = FullyShardedDataParallelPlugin(
            auto_wrap_policy="transformer_based_wrap", state_dict_type="SHARDED_STATE_DICT",
            activation_checkpointing=config.gradient_checkpointing, use_orig_params=True)
    return Accelerator(**kwargs), precision


def resolve_precision(config: TrainConfig, world: int | None = None) -> str:
    """The precision a run uses. auto: bf16 where the hardware has it, exact fp32 on CPUs (tests);
    on one GPU bf16 weights with fp32 master weights in the optimizer (bf16-master), on several
    (DDP, FSDP) bf16 autocast over fp32 weights (bf16-mixed). bf16-master needs one process."""
    if world is None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    precision = config.precision
    if precision == "auto":
        if not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
            precision = "fp32"
        elif world == 1 and config.distributed != "fsdp":
            precision = "bf16-master"
        else:
            precision = "bf16-mixed"
    if precision == "bf16-master" and (world > 1 or config.distributed == "fsdp"):
        raise MultipltError("precision bf16-master runs in one process only (its optimizer neither "
                            "reduces nor shards gradients); use bf16-mixed with DDP or FSDP")
    return precision


def materialize(ref: str, revision: str, workdir: str, what: str = "base model",
                pin: bool = True) -> tuple[str, str | None]:
    """(what from_pretrained loads, the revision it loads it at), resolved and checked as
    `generate` resolves its model (`model_source.resolve_model`): training outputs resolve
    through their manifest, storage URIs are downloaded (to the model cache), and a path that is
    no folder, or a folder without a config.json (for a model), is one clear error before
    anything loads (revision None). A Hub base model is pinned: its name with the commit that
    `revision` ("" = the default branch) is at now (hub_base_commit), so that the tokenizer and the
    weights both load from that commit, and the run records it (`base_commit`) however the
    branch moves meanwhile; with `pin` False (the other processes of a DDP run, which load the
    commit the main process pinned) it is (name, None) and the Hub is not asked. A Hub tokenizer
    (`what` "tokenizer") passes through by name at `revision`."""
    from multiplt.generation.model_source import resolve_model

    resolved = resolve_model(ref, revision or None, what=what, hub=False)
    if resolved is None:  # a Hub name
        if what == "tokenizer":
            return ref, revision or None
        return ref, hub_base_commit(ref, revision or None, what) if pin else None
    return resolved.path, None


def hub_base_commit(name: str, revision: str | None, what: str = "base model") -> str:
    """The commit that `revision` (None: the default branch) of the Hub model `name` is at now.
    Only its config.json is fetched (the weights load after the data is packed, at this commit);
    with HF_HUB_OFFLINE a revision in the Hub cache resolves from there. A commit without
    config.json (an empty repo, an upload under way) is model_source.no_config's error; an
    unknown repo or revision, no access or offline mode a MultipltError (exit 2); a Hub that
    does not answer (network, 408, 429, 5xx) a PlatformError (exit 3: the stage runtime retries)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    from multiplt.errors import PlatformError
    from multiplt.generation.model_source import no_config
    from multiplt.hub.retry import describe, passing_cause

    try:
        path = snapshot_download(name, revision=revision, allow_patterns=["config.json"])
    except RevisionNotFoundError:
        raise MultipltError(f"{what} {name}: --base-revision {revision!r} not found on the Hub") from None
    except RepositoryNotFoundError as exc:
        if isinstance(exc, GatedRepoError):
            raise MultipltError(f"cannot load the {what} {name!r}: {describe(exc)}") from None
        raise MultipltError(f"{what} {name!r} not found on the Hub (nor a local folder or URI)") from None
    except Exception as exc:  # noqa: BLE001 - no access, offline, the network
        cause = passing_cause(exc)
        if cause is not None:
            raise PlatformError(f"cannot load the {what} {name!r} now (revision {revision!r}): the Hub "
                                f"did not answer ({describe(cause)}); try again later") from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MultipltError(f"cannot load the {what} {name!r}: {first}") from None
    commit = os.path.basename(os.path.normpath(path))
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise MultipltError(no_config(what, name, commit))
    return commit


@contextlib.contextmanager
def _loading(what: str, ref: str, revision: str | None = None):
    """transformers' errors for a name that is no model (missing folder, no config.json, an
    unknown Hub repo offline) as one MultipltError line naming it (exit 2: fix the input); a
    Hub that is down or unreachable (network errors, 408, 429, 5xx anywhere in the chain of
    causes) stays a PlatformError (exit 3), which the stage runtime retries. A base model given
    by its Hub name (from_pretrained fetches it at `revision`) whose commit holds no config.json
    (an empty repo, an upload under way) is named as such, with the commit, instead of with the
    error of whatever loaded first (the tokenizer's, from a repo without tokenizer files)."""
    import pickle

    from safetensors import SafetensorError

    from multiplt.errors import PlatformError
    from multiplt.hub.retry import is_retryable

    try:
        yield
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, SafetensorError) as exc:
        # SafetensorError / UnpicklingError / EOFError: a truncated or corrupt weights file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        chain, seen = exc, set()
        while chain is not None and id(chain) not in seen:
            seen.add(id(chain))
            if is_retryable(chain):
                raise PlatformError(f"cannot load the {what} {ref!r} now: {first}") from None
            chain = chain.__cause__ or chain.__context__
        if what == "base model" and _hub_name(ref):
            from multiplt.generation.model_source import hub_config_problem

            problem = hub_config_problem(ref, revision, what)
            if problem:
                raise MultipltError(problem) from None
        raise MultipltError(f"cannot load the {what} {ref!r}: {first}") from None


def _hub_name(ref: str) -> bool:
    """Whether `ref` names a Hub repo (what materialize passes through by name): no storage URI,
    no path spelled as one, and nothing here of that name."""
    return "://" not in ref and not ref.startswith((".", "/", "~")) and not os.path.exists(ref)


def check_vocabulary(packed, model, tokenizer_ref: str, base_ref: str) -> None:
    """Every token id of the packed data must have a row in the model's input embeddings (a
    tokenizer with a larger vocabulary than the model would fail mid-training); checked before
    anything is written."""
    rows = model.get_input_embeddings().num_embeddings
    top = max((int(t.max()) for t in (packed.train, packed.eval) if t.numel()), default=-1)
    if top >= rows:
        raise MultipltError(f"the tokenizer {tokenizer_ref!r} gives token id {top}, but the base model "
                            f"{base_ref!r} has only {rows} input embeddings (ids 0..{rows - 1}): use the "
                            "base model's tokenizer, or one whose vocabulary fits the model")


def train(config: TrainConfig) -> list[dict]:
    """Fine-tune according to `config`; returns the manifest rows of the output."""
    workdir = tempfile.mkdtemp(prefix="multiplt-train-")  # downloads and checkpoints before upload
    try:
        with contextlib.ExitStack() as held:  # the output's lock, once the process knows its rank
            return _train(config, workdir, held)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


#: each revision setting and the commit it resolves to on the Hub, as the run config records it
PINNED = (("base_revision", "base_commit"), ("dataset_revision", "dataset_commit"))


def settings_differences(saved: dict, config: TrainConfig, commits: dict | None = None) -> list[str]:
    """`key: value there, value now` (settings_diff) for each setting resume_differences finds
    between the run config under --out (`saved`) and this run's, as corpus build and testgen name
    theirs. `commits`: the recorded run's base_commit and dataset_commit (its run config's top
    level); a revision given now as exactly the commit the run recorded for it (`--base-revision
    COMMIT` for a run started on the default branch) is no difference: it names the same input."""
    now = config.as_dict()
    keys = [k for k in resume_differences(saved, config)
            if not any(k == setting and (commits or {}).get(commit) and now[k] == commits[commit]
                       for setting, commit in PINNED)]
    return differences(saved, now, keys)


def check_commit(out: str, saved: dict, key: str, commit: str | None, what: str, ref: str,
                 setting: str, revision: str) -> None:
    """Resuming `out` needs its Hub base model (`key` base_commit) or Hub dataset
    (dataset_commit) at the commit its run recorded (`saved`, the run config): one that the
    revision (`setting` base_revision or dataset_revision, `revision` its value) has moved off
    since is a changed setting, refused naming both commits and how to resume on the recorded
    one. A run config written before commits were recorded has none to compare (a warning)."""
    if key not in saved:
        if commit:
            LOG.warning("%s records no %s (its run started before runs recorded one): resuming on %s "
                        "%s at commit %s", out, key, what, ref, commit)
        return
    if saved[key] == commit:
        return
    flag = "--" + setting.replace("_", "-")
    old = saved[key]
    how = "use the same settings to resume it, or a new --out"
    if isinstance(old, str) and old and commit:
        how = (f"the {what} {ref} has moved on the Hub since the run started ({flag} "
               f"{revision or '(none: the default branch)'}): resume it on the commit it started from "
               f"with {flag} {old}, or use a new --out")
    raise MultipltError(f"{out} holds a run with different settings "
                        f"({differences(saved, {key: commit}, [key])[0]}); {how}")


def _pin_sources(config: TrainConfig, workdir: str, main: bool, broadcast) -> tuple[str, str | None, str | None]:
    """(what the base loads from, the commit of a Hub base, the commit of a Hub dataset), the
    commits as the main process resolved them (materialize, data.hub_dataset_commit): only it
    asks the Hub, so N processes make one request, not N (a transient 429 on any of them failed
    the run), and every process loads the same commits even if a branch moves in between. The
    main process's error is raised by every process together: the others receive it through
    `broadcast` (a collective every process calls, even one that failed itself). An error of
    another process alone (a storage base that failed to download there) is raised by that
    process only, after the broadcast; the launcher (torchrun, accelerate launch) then ends the
    others."""
    own, answer = None, [None, None, None]
    try:
        base_path, base_commit = (materialize(config.base, config.base_revision, workdir) if main else
                                  materialize(config.base, config.base_revision, workdir, pin=False))
        if main:  # materialize's revision is the commit of a Hub base, else None
            answer = [base_commit, data_commit(config), None]
    except MultipltError as exc:  # PlatformError too: the Hub did not answer (exit 3, retried)
        own = exc
        answer = [None, None, exc]
    base_commit, dataset_commit, refusal = broadcast([answer])[0]
    if refusal is not None or own is not None:
        raise refusal if refusal is not None else own
    return base_path, base_commit, dataset_commit


def data_commit(config: TrainConfig) -> str | None:
    """The commit of a Hub dataset's revision now (data.hub_dataset_commit), else None."""
    from multiplt.training import data

    if not data.is_hub_dataset(config.dataset):
        return None
    return data.hub_dataset_commit(config.dataset, config.dataset_revision or None, config.split)


def _train(config: TrainConfig, workdir: str, held: contextlib.ExitStack) -> list[dict]:
    from accelerate.utils import broadcast_object_list
    from transformers import AutoModelForCausalLM

    from multiplt import storage
    from multiplt.models.tokenizer import load_tokenizer
    from multiplt.storage.outputs import check_out, refuse_foreign
    from multiplt.training import data

    # --- The output first: a valid URI, and new, empty or a training output (its manifest, or
    # the run config every run writes before anything else, also each process of a DDP run). ---
    check_out(config.out)
    refuse_foreign(config.out, lambda: storage.exists(manifest.manifest_uri(config.out))
                   or storage.exists(storage.join(config.out, checkpoint.RUN_CONFIG))
                   or storage.exists(lease_uri(config.out)))  # a train that has not got that far
    accelerator, precision = make_accelerator(config)
    main = accelerator.is_main_process
    world = accelerator.num_processes
    if config.batch_size % (max(config.micro_batch_size, 1) * world):
        raise MultipltError(f"batch_size {config.batch_size} is not a multiple of micro_batch_size "
                            f"{max(config.micro_batch_size, 1)} x {world} processes")
    LOG.info("process %d of %d on %s (%s)", accelerator.process_index, world, accelerator.device,
             accelerator.distributed_type.value)
    # Before the manifest is read: a second train resuming the same output would read it, then
    # find the state it names deleted by this one's next commit.
    lease = held.enter_context(checkpoint.hold_output(config.out, accelerator))

    # --- Where are we? The manifest lists the complete checkpoints; resume after the newest. ---
    done = manifest.read(config.out)
    saved = {}
    if done:
        saved = checkpoint.read_run_config(config.out) or {}
        saved_micro = saved.get("config", {}).get("micro_batch_size") or 0
        if not config.micro_batch_size and saved_micro:  # a run started with a fixed micro-batch
            config = dataclasses.replace(config, micro_batch_size=saved_micro)
        changed = settings_differences(saved.get("config", {}), config, saved)
        if saved.get("precision", precision) != precision:  # e.g. auto resolved differently
            changed += differences(saved, {"precision": precision}, ["precision"])
        if changed:
            raise MultipltError(f"{config.out} holds a run with different settings ({'; '.join(changed)}); "
                                "use the same settings to resume it, or a new --out")
        if done[-1]["epoch"] >= config.epochs:
            LOG.info("all %d epochs of %s are already done; nothing to do", config.epochs, config.out)
            return done

    # --- Model, tokenizer and data. Every process builds the same packed tensors. ---
    torch.manual_seed(config.seed)
    # A Hub base and a Hub dataset are pinned first: their revisions' commits now, which the run
    # loads and records (base_commit, dataset_commit), and a resume must find unchanged.
    base_path, base_commit, dataset_commit = _pin_sources(config, workdir, main, broadcast_object_list)
    base_rev = base_commit
    for (setting, key), commit, what, ref in zip(PINNED, (base_commit, dataset_commit),
                                                  ("base model", "Hub dataset"), (config.base, config.dataset)):
        revision = getattr(config, setting)
        if commit:
            LOG.info("%s %s%s: commit %s", what, ref, f" at {revision}" if revision else "", commit)
        if done:
            check_commit(config.out, saved, key, commit, what, ref, setting, revision)
    tok_path, tok_rev = (materialize(config.tokenizer, "", workdir, "tokenizer") if config.tokenizer
                         else (base_path, base_rev))
    with _loading("tokenizer" if config.tokenizer else "base model", config.tokenizer or config.base,
                  tok_rev):
        tokenizer = load_tokenizer(tok_path, revision=tok_rev, ref=config.tokenizer or config.base)
    texts = data.load_texts(config.dataset, config.split, config.text_column, revision=dataset_commit)
    packed = data.prepare(texts, tokenizer, config.seq_len, config.eval_fraction, config.seed,
                          source=data.describe(config.dataset, config.split))
    del texts
    steps_per_epoch = packed.train.shape[0] // config.batch_size
    if steps_per_epoch == 0:
        raise MultipltError(f"only {packed.train.shape[0]} packed sequences: fewer than one batch of "
                            f"{config.batch_size} (the recipe's batch_size): add rows, or use a recipe "
                            "(or --batch-size) with a smaller batch_size")
    # The model last: bad data fails in seconds, before gigabytes of weights are loaded.
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    LOG.info("loading base model %s", config.base)  # the libraries' bars are off off a terminal
    with _loading("base model", config.base, base_rev):
        model = AutoModelForCausalLM.from_pretrained(base_path, revision=base_rev, dtype=dtype,
                                                     attn_implementation=config.attn_implementation)
    check_vocabulary(packed, model, config.tokenizer or config.base, config.base)
    model.config.use_cache = False
    if config.gradient_checkpointing and config.distributed != "fsdp":
        model.gradient_checkpointing_enable()
    # How to cut each step's batch and whether to compile (a resumed run keeps its micro-batch:
    # the accumulation order is part of what it computed).
    plan = speed.plan_for(config, model, accelerator.device, precision, world,
                          saved_micro=saved.get("speed", {}).get("micro_batch", 0))
    accum = plan.grad_accum
    LOG.info("micro-batch %d x accumulation %d (%s); compile %s", plan.micro_batch, accum, plan.reason,
             "on" if plan.compile else "off")
    run_config = config
    config = dataclasses.replace(config, micro_batch_size=plan.micro_batch, compile=plan.compile)
    why_not = setup_forward(model, config)  # before accelerate wraps the forward in autocast
    LOG.info("training forward: %s", "multiplt's GPTBigCode forward (fused LM head + loss)"
             if why_not is None else f"transformers' ({why_not})")
    n_positions = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
    if n_positions and config.seq_len > n_positions:
        raise MultipltError(f"seq_len {config.seq_len} exceeds the model's {n_positions} positions")

    total_steps = steps_per_epoch * config.epochs
    LOG.info("%d optimizer steps per epoch x %d epochs = %d steps; %d sequences of %d tokens per "
             "step (micro-batch %d x accumulation %d x %d processes); precision %s",
             steps_per_epoch, config.epochs, total_steps, config.batch_size, config.seq_len,
             config.micro_batch_size, accum, world, precision)

    # --- Optimizer and schedule, wrapped by accelerate (DDP/FSDP placement, autocast). ---
    if config.distributed == "fsdp":
        model = accelerator.prepare(model)  # FSDP wants the sharded model before the optimizer
        optimizer = build_optimizer(model, config.lr, config.weight_decay,
                                    (config.adam_beta1, config.adam_beta2), config.adam_eps)
        optimizer = accelerator.prepare(optimizer)
    else:
        model = model.to(accelerator.device)
        # bf16-master: the optimizer copies the fp32 weights as masters, then casts the model to bf16
        optimizer = build_optimizer(model, config.lr, config.weight_decay,
                                    (config.adam_beta1, config.adam_beta2), config.adam_eps,
                                    master_weights=precision == "bf16-master")
        model, optimizer = accelerator.prepare(model, optimizer)
    # Not prepared: accelerate would step a prepared scheduler once per process.
    scheduler = build_scheduler(optimizer, config.warmup_steps, total_steps, config.lr_scheduler)
    accelerator.register_for_checkpointing(scheduler)
    if config.compile and why_not is not None:  # multiplt's forward compiles its own blocks
        model = compile_blocks(model)

    run_info = {"config": run_config.as_dict(), "base_commit": base_commit, "dataset_commit": dataset_commit,
                "data": packed.describe(), "precision": precision,
                "speed": {"micro_batch": plan.micro_batch, "grad_accum": accum, "compile": plan.compile},
                "processes": world, "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
                "versions": _versions(),
                # the code (commit or image version), Python and libraries that trained: no part
                # of what a resume compares
                "provenance": provenance.describe(("torch", "transformers", "accelerate", "datasets",
                                                   "safetensors", "tokenizers", "huggingface_hub"))}
    start_epoch, step = 1, 0
    if done:
        last = done[-1]
        state_dir = os.path.join(workdir, "resume")
        state_dir, state = checkpoint.fetch_state(config.out, last["tag"], state_dir)
        if state["data_sha256"] != packed.sha256 or state["processes"] != world:
            raise MultipltError(f"cannot resume {config.out} exactly: the packed data or the number "
                                "of processes differs from the interrupted run")
        accelerator.load_state(state_dir)
        start_epoch, step = state["epoch"] + 1, state["step"]
        LOG.info("resuming from checkpoint %s (epoch %d) at step %d", last["tag"], state["epoch"], step)
    else:  # loading took a while: a train that took the lease over meanwhile keeps its run config
        checkpoint.check_held(lease, accelerator, f"the run config {checkpoint.RUN_CONFIG}")
        if main:
            checkpoint.write_yaml(storage.join(config.out, checkpoint.RUN_CONFIG), run_info)
        eval_before_training(model, packed, config, accelerator, lease)
    run_start_step = step

    # --- The epochs. ---
    model.train()
    seqs_per_process = config.micro_batch_size * accum
    rank = accelerator.process_index
    rows = list(done)
    for epoch in range(start_epoch, config.epochs + 1):
        order = epoch_order(packed.train.shape[0], epoch, config.seed)
        log_rows = []
        bar = progress(total=steps_per_epoch, desc=f"epoch {epoch}/{config.epochs}", unit="step") \
            if main else None
        metrics = LaggedMetrics()  # step k's loss is read once step k+1 is queued
        last_time = [time.perf_counter()]

        def report(m):  # log, progress bar and divergence check for one finished step
            if m is None:
                return
            # steps are queued one ahead of the GPU, so queueing intervals are step times
            queued = m.pop("queued")
            m["tokens_per_s"] = config.batch_size * config.seq_len / max(queued - last_time[0], 1e-9)
            last_time[0] = queued
            log_rows.append(m)
            if bar is not None:
                bar.set_postfix(loss=f"{m['loss']:.4f}", tok_s=f"{m['tokens_per_s']:,.0f}",
                                lr=f"{m['lr']:.2e}", refresh=False)
                bar.update(1)
            if main and (m["step"] % config.log_every == 0 or m["step"] % steps_per_epoch == 0):
                LOG.info("epoch %d step %d/%d loss %.4f lr %.3e grad_norm %.3f tokens/s %.0f", epoch,
                         m["step"], total_steps, m["loss"], m["lr"], m["grad_norm"], m["tokens_per_s"])
            if not math.isfinite(m["loss"]):
                raise MultipltError(f"training diverged: loss {m['loss']} at step {m['step']}")

        for i in range(steps_per_epoch):
            # This step's global batch, this process's share of it, cut into micro-batches.
            batch_idx = order[i * config.batch_size:(i + 1) * config.batch_size]
            mine = packed.train[batch_idx[rank * seqs_per_process:(rank + 1) * seqs_per_process]]
            if accelerator.device.type == "cuda":  # a copy from pageable memory waits for the GPU
                mine = mine.pin_memory()
            micro = [m.to(accelerator.device, non_blocking=True)
                     for m in mine.split(config.micro_batch_size)]
            lr = scheduler.get_last_lr()[0]  # the rate this step uses
            loss, norm = train_step(model, optimizer, scheduler, micro, accelerator, config.max_grad_norm,
                                    compiled=config.compile)
            step += 1
            report(metrics.push({"step": step, "lr": lr, "queued": time.perf_counter()},
                                loss=accelerator.reduce(loss, reduction="mean"), grad_norm=norm))
        report(metrics.flush())
        if bar is not None:
            bar.close()
        eval_loss = evaluate(model, packed.eval, config.micro_batch_size, accelerator)
        if eval_loss is None:
            LOG.info("epoch %d: no held-out sequences, eval loss skipped", epoch)
        else:
            LOG.info("epoch %d: eval loss %.4f", epoch, eval_loss)
        row = checkpoint.save_epoch(config, accelerator, model, tokenizer, run_info, packed, workdir,
                                    epoch, step, eval_loss, log_rows, run_start_step, lease=lease)
        rows.append(row)
    accelerator.wait_for_everyone()
    return rows


def eval_before_training(model, packed, config: TrainConfig, accelerator, lease=None) -> float | None:
    """The eval loss of the base model, before the first step (the paper's script logged eval at
    step 0), written to OUT/logs/epoch0.jsonl (`{"step": 0, "eval_loss": L}`) on a new run; nothing
    without held-out sequences. It draws no random numbers (the model is in eval mode: no
    dropout), so training goes on exactly as without it. It runs uncompiled (torch.compile's
    force_eager stance), so the compiled blocks still compile for training first, as before (the
    eval's smaller last micro-batch could otherwise make them recompile with dynamic shapes).
    A run killed before epoch 1 starts again from scratch and overwrites the file."""
    from multiplt import storage

    if packed.eval.shape[0] == 0:
        return None
    with torch.compiler.set_stance("force_eager"):
        loss = evaluate(model, packed.eval, config.micro_batch_size, accelerator)
    LOG.info("step 0 (before training): eval loss %.4f", loss)
    checkpoint.check_held(lease, accelerator, "logs/epoch0.jsonl")
    if accelerator.is_main_process:
        storage.write_jsonl(storage.join(config.out, "logs", "epoch0.jsonl"), [{"step": 0, "eval_loss": loss}])
    return loss


def _versions() -> dict:
    import accelerate
    import transformers

    return {"torch": str(torch.__version__), "transformers": str(transformers.__version__),
            "accelerate": str(accelerate.__version__)}
