"""Step 1a of MultiPL-T: a Python corpus becomes filtered, decontaminated, deduplicated functions.

    sources    where documents come from (folder of .py, parquet/JSONL tables, hf://, stdlib)
    extract    top-level functions (too deeply nested ones dropped), their `context` (imports,
               module names)
    filters    the cheap keep-or-drop blocks, each with a named reason and counters
    tsnodes    tree-sitter-python node counts from Python's parser (the too-short filter's)
    decontam   benchmark overlap (exact substring + normalized match)
    typecheck  Pyright (basedpyright) in batches
    signatures exact and MinHash signatures; dedup: the cross-shard pass over them
    pin        the input of a build (revision and file list), recorded once for every shard
    shard      one shard of the input -> per-shard parts with a completion marker
    merge      dedup decisions applied, functions/ excluded/ funnel.json written
    pipeline   the whole build in one process (`multiplt corpus build` without --shard)

Reasons a row is dropped (the `reason` column of `excluded/`): see REASONS.
"""

REASONS = ("syntax_error", "too_deep", "async_function", "generator_function", "no_docstring",
           "no_return_value", "non_ascii", "todo", "too_short", "benchmark_overlap", "type_error",
           "duplicate", "near_duplicate")
