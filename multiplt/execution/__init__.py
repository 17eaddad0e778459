"""Running untrusted programs: the sandbox (`sandbox`, `process`), the per-language preflight
(`preflight`), MultiPL-E completion folders (`files`) and the parallel, resumable executor
(`executor.execute`)."""
