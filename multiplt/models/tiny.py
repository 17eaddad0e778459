"""A tiny StarCoder-architecture model built offline from code found on this machine.

`build_tiny_model(out, config)`:
  1. collects source files of the Python standard library and of the installed Racket,
     OCaml, R and Lua distributions (the languages MultiPL-T targets),
  2. trains a byte-level BPE tokenizer on them (the `tokenizers` library),
  3. trains a small GPTBigCode causal LM (multi-query attention, like StarCoderBase) for a few
     hundred steps on random windows of that code,
  4. saves model + tokenizer in Hugging Face format (loadable with `from_pretrained`) together
     with `multiplt_tiny.json` (the resolved config and corpus statistics).
Its pass rates are near zero; it exists so the whole pipeline runs offline on a CPU.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import pathlib
import random
import shutil
import sysconfig
import tempfile
import time

LOG = logging.getLogger("multiplt.models")

EOS = "<|endoftext|>"
SPECIAL_TOKENS = [EOS, "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"]


@dataclasses.dataclass
class TinyConfig:
    # sized for well under 5 minutes on 2 CPU cores (measured: ~4 CPU-minutes at 300 steps, 4 MB)
    vocab_size: int = 4096
    n_layer: int = 2
    n_embd: int = 128
    n_head: int = 4
    n_positions: int = 2048  # room for long prompts + 512 new tokens
    seq_len: int = 128
    batch_size: int = 8
    steps: int = 200
    lr: float = 1e-3
    corpus_bytes: int = 3_000_000  # spread evenly over the languages found
    seed: int = 0


# Where each language's sources live on Debian (first existing directories are used).
def corpus_sources() -> dict[str, tuple[list[str], tuple[str, ...]]]:
    return {
        "python": ([sysconfig.get_paths()["stdlib"]], (".py",)),
        "racket": (["/usr/share/racket/collects", "/usr/share/racket/pkgs"], (".rkt",)),
        "ocaml": (["/usr/lib/ocaml"], (".ml", ".mli")),
        "r": (["/usr/lib/R", "/usr/share/R"], (".R", ".r")),
        "lua": (["/usr/share/lua", "/usr/local/share/lua"], (".lua",)),
    }


def collect_corpus(total_bytes: int, seed: int = 0) -> tuple[list[str], dict]:
    """Return documents (file texts) from every language found, up to total_bytes, and stats."""
    sources = corpus_sources()
    per_lang = total_bytes // len(sources)
    rng = random.Random(seed)
    docs: list[str] = []
    stats: dict[str, dict] = {}
    for lang, (dirs, exts) in sources.items():
        files = sorted(
            str(p) for d in dirs if os.path.isdir(d)
            for p in pathlib.Path(d).rglob("*") if p.suffix in exts and p.is_file()
        )
        rng.shuffle(files)
        used = 0
        nfiles = 0
        for path in files:
            if used >= per_lang:
                break
            try:
                text = pathlib.Path(path).read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            # cap each file so one huge module does not stand for its whole language
            text = text[: min(per_lang - used, max(2000, per_lang // 20))]
            docs.append(text)
            used += len(text)
            nfiles += 1
        stats[lang] = {"files_found": len(files), "files_used": nfiles, "chars": used}
        if not files:
            LOG.warning("tiny model: no %s sources found in %s", lang, ", ".join(dirs))
    if not docs:
        from multiplt.errors import PlatformError
        raise PlatformError("tiny model: found no source code on this machine to train on")
    return docs, stats


def train_tokenizer(docs: list[str], vocab_size: int):
    """A byte-level BPE tokenizer (GPT-2/StarCoder style) wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(docs, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS,
                                   unk_token=EOS, model_max_length=1 << 30,
                                   clean_up_tokenization_spaces=False)


MARKER = "multiplt_tiny.json"  # written into every tiny model: marks a folder init-tiny may replace


def holds_other_files(out: str):
    """The error for an --out that holds something other than a tiny model."""
    from multiplt.errors import MultipltError

    return MultipltError(f"--out {out} holds other files (no {MARKER}: not a tiny model that init-tiny "
                         f"built); it is not replaced: give a new or empty folder")


def check_out(out_dir: str) -> None:
    """MultipltError unless `out_dir` can take the model: missing, an empty folder, or a tiny
    model an earlier init-tiny built (it is replaced); anything else is never overwritten."""
    from multiplt import storage
    from multiplt.errors import MultipltError

    out = pathlib.Path(out_dir)
    blocker = storage.file_above(out_dir)
    if blocker is not None:
        raise MultipltError(f"--out {out_dir}: {blocker} is a file, not a folder")
    if not out.exists():
        return
    if not out.is_dir():
        raise MultipltError(f"--out {out_dir} is a file; give a folder")
    if any(out.iterdir()) and not (out / MARKER).is_file():
        raise holds_other_files(out_dir)


def cannot_write(out_dir: str, exc: OSError):
    from multiplt.errors import MultipltError

    return MultipltError(f"cannot write --out {out_dir}: {exc.strerror or exc}")


def check_writable(out_dir: str) -> None:
    """MultipltError unless the model can be saved at `out_dir`: it is written into a temp folder
    beside it and renamed into place, so the nearest existing folder above it must take a new
    folder (a read-only file system or folder fails here, not after the training). Leaves
    nothing behind."""
    parent = pathlib.Path(out_dir).absolute().parent
    while not parent.exists():
        parent = parent.parent
    try:
        os.rmdir(tempfile.mkdtemp(prefix=f".{pathlib.Path(out_dir).name}.", dir=parent))
    except OSError as exc:
        raise cannot_write(out_dir, exc) from None


def build_tiny_model(out_dir: str, config: TinyConfig | None = None) -> dict:
    """Build the tiny model into local directory `out_dir` (atomically; an earlier tiny model
    there is replaced, any other content, a file or a place that cannot be written refused
    before any work, even before torch is imported); return its info dict."""
    check_out(out_dir)
    check_writable(out_dir)

    import torch
    from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

    from multiplt.log import progress

    cfg = config or TinyConfig()
    started = time.time()
    torch.manual_seed(cfg.seed)
    docs, stats = collect_corpus(cfg.corpus_bytes, cfg.seed)
    LOG.info("tiny model: corpus %s", {k: v["chars"] for k, v in stats.items()})
    tokenizer = train_tokenizer(docs, cfg.vocab_size)
    eos_id = tokenizer.convert_tokens_to_ids(EOS)

    # One long token stream, documents separated by EOS, as in StarCoder pre-training.
    ids: list[int] = []
    for enc in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        ids.append(eos_id)
    data = torch.tensor(ids, dtype=torch.long)
    seq_len = min(cfg.seq_len, len(data) - 1)

    model_cfg = GPTBigCodeConfig(
        vocab_size=len(tokenizer), n_positions=cfg.n_positions, n_embd=cfg.n_embd,
        n_layer=cfg.n_layer, n_head=cfg.n_head, multi_query=True, bos_token_id=eos_id,
        eos_token_id=eos_id, pad_token_id=eos_id, attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0)
    model = GPTBigCodeForCausalLM(model_cfg)
    optim = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    # Cosine decay after a short warmup: enough for the loss to drop well below uniform.
    warmup = max(1, cfg.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)))
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    losses = []
    bar = progress(total=cfg.steps, desc="tiny model training", unit="step")
    for _ in range(cfg.steps):
        starts = torch.randint(0, len(data) - seq_len, (cfg.batch_size,), generator=gen)
        batch = torch.stack([data[s: s + seq_len] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    model.eval()
    model.generation_config.pad_token_id = eos_id

    info = {"config": dataclasses.asdict(cfg), "corpus": stats, "tokens": len(ids),
            "parameters": sum(p.numel() for p in model.parameters()),
            "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
            "seconds": round(time.time() - started, 1)}
    out = pathlib.Path(out_dir)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:  # e.g. made read-only while it trained
        raise cannot_write(out_dir, exc) from None
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n")
        check_out(out_dir)  # again: something may have appeared there while it trained
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except OSError as exc:  # a full disk, a folder made read-only meanwhile
        raise cannot_write(out_dir, exc) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    LOG.info("tiny model: %d parameters, loss %.3f -> %.3f, %.0fs, saved to %s", info["parameters"],
             info["first_loss"] or 0, info["final_loss"] or 0, info["seconds"], out)
    return info
