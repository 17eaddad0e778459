"""Completion generation: backends behind one interface (`base.Backend`), registered by name in
`backends.py`, and the resumable driver that writes MultiPL-E completion folders
(`driver.generate`).

Backends: `transformers` (hf_backend.py: continuous batching in continuous.py over our sampler in
sampler.py), `openai` (openai_backend.py, any OpenAI-compatible completions server such as vLLM
or TGI), `vllm` (vllm_backend.py, vLLM's offline engine when installed) and `replay` (replay.py,
completions read back from existing files).
"""
