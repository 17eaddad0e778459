"""One run's page: what the results store recorded for it (pass@k per k) and its per-problem
results from the run folder (multiplt.results.problems), as a sortable table."""

from __future__ import annotations

from html import escape

from multiplt_leaderboard.page import SORT_SCRIPT, shell


def render_page(run_rows: list[dict], problems: list[dict], user: str) -> str:
    first = run_rows[0]
    facts = [("run", first["run_id"]), ("model", first["model"]), ("revision", first["revision"] or "-"),
             ("experiment", first["experiment"] or "-"), ("language", first["lang"]),
             ("epoch", first["epoch"]), ("folder", first["run_uri"])]
    facts += [(f"pass@{r['k']}", f"{r['estimate']:.3f} over {r['num_problems']} problems") for r in run_rows]
    fact_rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in facts)
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
