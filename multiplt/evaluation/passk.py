"""pass@k over a folder of MultiPL-E results files (`<name>.results.json(.gz)`).

Per problem, with n results of which c pass (status OK and exit code 0), the unbiased estimator
(Chen et al., 2021) is 1 - C(n-c, k) / C(n, k) = (C(n, k) - C(n-c, k)) / C(n, k). We compute the
last form with exact integer binomials and one correctly rounded division, so the result is the
float nearest the true value for any n (1000 included), where the usual float product or
"1 - ratio" forms lose digits. The folder's estimate is the mean over its problems.

Where k > n for a problem the estimate is undefined: MultiPL-E's pass_k.py reports 1.0 there (a
known pitfall); we say so and leave that problem out of that k (and the whole k when no problem
has n >= k).

Side files written into the folder (never ending in .json): `_scores.csv` with MultiPL-E's
header `Dataset,Pass@k,Estimate,NumProblems,MinCompletions,MaxCompletions` (Dataset = the folder's
basename), and `_per_problem.parquet` (problem, language, n, c, pass@K per k).
"""

from __future__ import annotations

import csv
import io
import logging
import math

from multiplt import storage
from multiplt.errors import MultipltError
from multiplt.evaluation import parquet

LOG = logging.getLogger("multiplt.evaluation")

HEADER = ("Dataset", "Pass@k", "Estimate", "NumProblems", "MinCompletions", "MaxCompletions")
SCORES_FILE = "_scores.csv"
PER_PROBLEM_FILE = "_per_problem.parquet"


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k of one problem with n samples, c correct; needs 1 <= k <= n."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n} c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} is undefined with n={n} samples (need 1 <= k <= n)")
    if n - c < k:
        return 1.0
    total = math.comb(n, k)
    # One correctly rounded division of exact integers: no cancellation in "1 - small ratio".
    return (total - math.comb(n - c, k)) / total


def passed(result: dict) -> bool:
    return result.get("status") == "OK" and result.get("exit_code") == 0


def read_counts(in_uri: str) -> list[dict]:
    """[{problem, language, n, c}] for every results file in the folder (sorted by problem)."""
    rows = []
    for uri in storage.ls(in_uri):
        base = storage.basename(uri)
        for suffix in (".results.json.gz", ".results.json"):
            if base.endswith(suffix):
                break
        else:
            continue
        doc = storage.read_json(uri)
        results = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(results, list):
            raise MultipltError(f"{uri}: no `results` list")
        if not results:
            continue
        rows.append({"problem": doc.get("name") or base[: -len(suffix)],
                     "language": doc.get("language"), "n": len(results),
                     "c": sum(1 for r in results if isinstance(r, dict) and passed(r))})
    return sorted(rows, key=lambda r: r["problem"])


def score(in_uri: str, ks=(1,)) -> list[dict]:
    """Score a results folder: return the CSV rows (dicts keyed by HEADER) and write the side
    files `_scores.csv` and `_per_problem.parquet` into the folder."""
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise MultipltError(f"k must be positive integers, got {ks}")
    counts = read_counts(in_uri)
    if not counts:
        raise MultipltError(f"{in_uri}: no results files (<name>.results.json.gz) with results; "
                            "run `multiplt execute` first")
    dataset = storage.basename(str(in_uri).rstrip("/"))
    rows = []
    for k in ks:
        usable = [r for r in counts if r["n"] >= k]
        short = [r for r in counts if r["n"] < k]
        for r in counts:
            r[f"pass@{k}"] = pass_at_k(r["n"], r["c"], k) if r["n"] >= k else None
        if short:
            LOG.warning("pass@%d: %d of %d problems have fewer than %d completions (n=%d..%d); "
                        "left out of pass@%d (MultiPL-E would count them as 1.0)", k, len(short),
                        len(counts), k, min(r["n"] for r in short), max(r["n"] for r in short), k)
        if not usable:
            LOG.warning("pass@%d: no problem has %d completions; no pass@%d row", k, k, k)
            continue
        estimate = sum(r[f"pass@{k}"] for r in usable) / len(usable)
        rows.append({"Dataset": dataset, "Pass@k": k, "Estimate": estimate,
                     "NumProblems": len(usable), "MinCompletions": min(r["n"] for r in usable),
                     "MaxCompletions": max(r["n"] for r in usable)})
    storage.write_text(storage.join(in_uri, SCORES_FILE), to_csv(rows))
    _write_per_problem(storage.join(in_uri, PER_PROBLEM_FILE), counts, ks)
    return rows


def to_csv(rows: list[dict], header: bool = True) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(HEADER)
    for row in rows:
        writer.writerow([row[h] for h in HEADER])
    return buffer.getvalue()


def to_table(rows: list[dict]) -> str:
    cells = [list(HEADER)] + [[_fmt(row[h]) for h in HEADER] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]]) + "\n"


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _write_per_problem(uri: str, counts: list[dict], ks: list[int]) -> None:
    # Written with our standard-library writer: the sandbox image has no polars.
    columns = [("problem", "string", [r["problem"] for r in counts]),
               ("language", "string", [r["language"] for r in counts]),
               ("n", "int64", [r["n"] for r in counts]),
               ("c", "int64", [r["c"] for r in counts])]
    columns += [(f"pass@{k}", "double", [r[f"pass@{k}"] for r in counts]) for k in ks]
    storage.write_bytes(uri, parquet.write_table(columns))
