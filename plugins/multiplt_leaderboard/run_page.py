"""One run's page: what the results store recorded for it (pass@k per k, with a marker where
samples timed out; the samples by status, the timeout limit(s) and the version of the code that
drew them, where the store has them) and its per-problem results from the run folder
(multiplt.results.problems), as a sortable table."""

from __future__ import annotations

from html import escape

from multiplt_leaderboard.board import statuses_of, timeout_note
from multiplt_leaderboard.page import SORT_SCRIPT, shell, timeout_limits, timeout_marker


def _statuses(row: dict) -> str | None:
    """"OK: 120, Timeout: 3" (the store's order: most first); the stored text where it is no
    such JSON object; None where the row has none."""
    counts = statuses_of(row)
    if counts is None:
        return row.get("statuses")
    return ", ".join(f"{status}: {n}" for status, n in counts.items()) or "no samples"


def _timeouts(row: dict) -> str | None:
    if row.get("timeouts") is None:
        return None
    counts = statuses_of(row)
    return f"{row['timeouts']} of {sum(counts.values())} samples" if counts else str(row["timeouts"])


def _limits(row: dict) -> str | None:
    return timeout_limits(row) or None


def _per_k(label: str, run_rows: list[dict], value) -> list[tuple[str, str]]:
    """The fact `label` of the run's rows: one line when every k's row says the same, one per k
    (`label (pass@k)`) when they differ; nothing where none says it (rows recorded before it)."""
    values = [(r["k"], value(r)) for r in run_rows]
    said = {v for _, v in values if v is not None}
    if not said:
        return []
    if len(said) == 1 and all(v is not None for _, v in values):
        return [(label, said.pop())]
    return [(f"{label} (pass@{k})", v) for k, v in values if v is not None]


def render_page(run_rows: list[dict], problems: list[dict], user: str) -> str:
    first = run_rows[0]
    facts = [("run", first["run_id"]), ("model", first["model"]), ("revision", first["revision"] or "-"),
             ("experiment", first["experiment"] or "-"), ("language", first["lang"]),
             ("epoch", first["epoch"]), ("folder", first["run_uri"])]
    fact_rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in facts)
    fact_rows += "".join(f'<tr><th>pass@{escape(str(r["k"]))}</th><td>{r["estimate"]:.3f} over '
                         f'{escape(str(r["num_problems"]))} problems{timeout_marker(timeout_note(r))}</td></tr>'
                         for r in run_rows)
    recorded = (_per_k("samples by status", run_rows, _statuses) + _per_k("timed out", run_rows, _timeouts)
                + _per_k("timeout limit", run_rows, _limits)
                + _per_k("code version", run_rows, lambda r: r.get("code_version")))
    fact_rows += "".join(f'<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>' for k, v in recorded)
    rows = []
    for p in problems:
        statuses = ", ".join(f"{escape(s)}: {n}" for s, n in sorted(p["statuses"].items()))
        rows.append(f'<tr><td data-value="{escape(p["problem"])}">{escape(p["problem"])}</td>'
                    f'<td class="score" data-value="{p["n"]}">{p["n"]}</td>'
                    f'<td class="score" data-value="{p["passed"]}">{p["passed"]}</td>'
                    f'<td class="score" data-value="{p["passed"] / p["n"] if p["n"] else 0:.4f}">'
                    f'{p["passed"] / p["n"] if p["n"] else 0:.3f}</td>'
                    f'<td data-value="{statuses}">{statuses}</td></tr>')
    body = (f'<p><a href="./">back to the leaderboard</a></p><table class="facts">{fact_rows}</table>'
            f"<h2>Per problem</h2>"
            f'<table id="problems" class="sortable"><thead><tr><th>problem</th><th>completions</th>'
            f"<th>passed</th><th>pass rate</th><th>statuses</th></tr></thead><tbody>{''.join(rows)}"
            f"</tbody></table><script>{SORT_SCRIPT}</script>")
    return shell(f"Run {first['model']} {first['lang']}", body, user, "run")
