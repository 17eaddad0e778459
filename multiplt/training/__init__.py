"""Step 3 of MultiPL-T: fine-tune a code LLM on one language's validated data.

config     typed TrainConfig + YAML recipes (multiplt/recipes/) + CLI overrides
data       load the `content` column (storage parquet/JSONL or a Hub dataset) and tokenize it
packing    concatenate documents with EOS separators and cut exact seq_len chunks
optim      AdamW (no decay on biases/LayerNorm) and the warmup + cosine schedule
step       one optimizer step, the eval loss, gradient clipping (inside a fused AdamW)
master     AdamW over fp32 master weights of a bf16 model (precision bf16-master)
speed      the micro-batch and compile chosen from the GPU's memory (micro_batch_size 0)
gptbigcode multiplt's training forward for GPTBigCode models (fused LM head + loss, compiled blocks)
loop       the training loop (accelerate: CPU, one GPU, DDP or FSDP with the same command)
checkpoint per-epoch tagged bf16 checkpoints + the latest full training state, uploaded to --out
(the --out/manifest.jsonl of checkpoints is multiplt/storage/manifest.py, shared with generation)
"""
