"""The leaderboard's HTML: one benchmark at a time (links to the others and to each k), a sortable
table (a few lines of inline script, no library) whose score cells link to the run's
per-problem page, and the SVG. `shell` is the frame every page shares."""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: left; }
th { background: #f3f3f3; cursor: pointer; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
td.score { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #777; }
nav a { margin-right: 0.8em; }
td.score a { color: inherit; }
.error { color: #a00; }
table.facts th { cursor: default; }
section.dataset { margin-top: 2em; }
"""

# Click a header to sort by it; numbers compare as numbers, empty cells last.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var asc = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.value, y = b.cells[col].dataset.value;
      if (x === "" || y === "") { return (x === "") - (y === ""); }
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def _cell(value, text=None, cls="") -> str:
    value = "" if value is None else value
    shown = escape(str(value if text is None else text))
    cls_attr = f' class="{cls}"' if cls else ""
    return f'<td{cls_attr} data-value="{escape(str(value))}">{shown}</td>'


def shown_name(name: str | None) -> str:
    """How the page names a benchmark; rows recorded without one are "(unnamed)"."""
    return name if name else "(unnamed)"


def _problems(count: int | None) -> str:
    return f"up to {count} problems" if count else ""


def render_page(languages: list[str], entries: list[dict], ks: list[int], k: int, svg: str,
                user: str, store_label: str, *, benchmarks: list[dict], benchmark: str | None) -> str:
    """`benchmarks`: board.benchmarks of the store; `benchmark`: the one shown (None: no rows)."""
    head = ["model", "revision", "experiment", "epoch", *languages]
    rows = []
    for entry in entries:
        cells = [_cell(entry["model"]), _cell(entry["revision"] or "", entry["revision"] or "-"),
                 _cell(entry["experiment"] or "", entry["experiment"] or "-"), _cell(entry["epoch"])]
        for lang in languages:
            cell = entry["cells"].get(lang)
            if cell is None:
                cells.append('<td class="score muted" data-value="">-</td>')
            else:
                link = "run?" + urlencode({"run_id": cell["run_id"]})
                cells.append(f'<td class="score" data-value="{cell["estimate"]:.4f}">'
                             f'<a href="{escape(link)}">{cell["estimate"]:.3f}</a></td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")

    def query(**args) -> str:  # a link keeps the other selection
        args = {"benchmark": benchmark, "k": k, **args}
        return escape("?" + urlencode({name: v for name, v in args.items() if v is not None}))

    def current_if(yes: bool) -> str:
        return " aria-current=page" if yes else ""

    k_links = " ".join(f'<a href="{query(k=kk)}"{current_if(kk == k)}>pass@{kk}</a>' for kk in ks)
    b_links = []
    for b in benchmarks:
        facts = ", ".join(filter(None, [f"{b['rows']} rows", _problems(b["num_problems"])]))
        b_links.append(f'<a href="{query(benchmark=b["name"])}"{current_if(b["name"] == benchmark)}>'
                       f'{escape(shown_name(b["name"]))}</a> <span class="muted">({facts})</span>')
    current = next((b for b in benchmarks if b["name"] == benchmark), None)
    if not benchmarks:
        empty = '<p class="muted">No results recorded yet: run multiplt_evaluate.</p>'
        shown = plot_title = ""
    else:
        problems = _problems(current["num_problems"]) if current else ""
        shown = (f' on benchmark <strong id="benchmark">{escape(shown_name(benchmark))}</strong>'
                 + (f" ({problems})" if problems else ""))
        plot_title = f" on {escape(shown_name(benchmark))}"
        empty = "" if entries else f'<p class="muted">No pass@{k} results on this benchmark.</p>'
    b_nav = f'<nav id="benchmarks">Benchmark: {" ".join(b_links)}</nav>' if benchmarks else ""
    body = f"""<p class="muted">pass@{k} per model, language and epoch{shown}, from {escape(store_label)}.
One benchmark at a time: a part of one (<code>--limit</code>, <code>--problems</code>) or another
source is a benchmark of its own. Click a column header to sort, a score for that run's
per-problem results.</p>
{b_nav}
<nav id="ks">{k_links}</nav>
{empty}
<table id="leaderboard" class="sortable">
<thead><tr>{"".join(f"<th>{escape(h)}</th>" for h in head)}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<h2>pass@1 by epoch{plot_title}</h2>
{svg}
<script>{SORT_SCRIPT}</script>"""
    return shell("MultiPL-T leaderboard", body, user, "leaderboard")


PAGES = (("leaderboard", "Leaderboard", "./"), ("datasets", "Datasets", "datasets"))


def shell(title: str, body: str, user: str | None, current: str | None) -> str:
    """A whole page: the title, links to the plugin's pages, who is signed in (when known), the
    body."""
    links = " ".join(f'<a href="{href}"{" aria-current=page" if key == current else ""}>{name}</a>'
                     for key, name, href in PAGES)
    signed_in = "" if user is None else f'<span class="muted">Signed in as {escape(user)}.</span>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{STYLE}</style></head>
<body>
<nav id="pages">{links}{signed_in}</nav>
<h1>{escape(title)}</h1>
{body}
</body></html>
"""


def error_page(message: str) -> str:
    """What a page shows instead when it cannot be shown: the one-line reason, escaped."""
    return shell("MultiPL-T leaderboard: cannot show this page",
                 f'<p class="error" id="error">{escape(message)}</p>', None, None)
