"""Step 2 of MultiPL-T: translate validated Python functions into a low-resource language.

    problems   step-1 rows -> MultiPL-E-style problems (the benchmark builder's translator)
    clean      cut the test suite, the canonical-Python comment and empty comment lines
    dedup      exact, then greedy ROUGE-L within a function
    collect    passing samples -> cleaned, deduplicated dataset rows (resumable)
    writer     the Hugging Face dataset folder: data/, excluded/, funnel.json, README.md
    pipeline   one language and shard: build, sample, validate in the sandbox, collect
"""
