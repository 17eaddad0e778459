"""The leaderboard's HTML: a sortable table (a few lines of inline script, no library) whose score
cells link to the run's per-problem page, and the SVG. `shell` is the frame every page shares."""

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


def render_page(languages: list[str], entries: list[dict], ks: list[int], k: int, svg: str,
                user: str, store_label: str) -> str:
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
    k_links = " ".join(f'<a href="?k={kk}"{" aria-current=page" if kk == k else ""}>pass@{kk}</a>'
                       for kk in ks)
    empty = '<p class="muted">No results recorded yet: run multiplt_evaluate.</p>' if not entries else ""
    body = f"""<p class="muted">pass@{k} per model, language and epoch, from {escape(store_label)}.
Click a column header to sort, a score for that run's per-problem results.</p>
<nav>{k_links}</nav>
{empty}
<table id="leaderboard" class="sortable">
<thead><tr>{"".join(f"<th>{escape(h)}</th>" for h in head)}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<h2>pass@1 by epoch</h2>
{svg}
<script>{SORT_SCRIPT}</script>"""
    return shell("MultiPL-T leaderboard", body, user, "leaderboard")


PAGES = (("leaderboard", "Leaderboard", "./"), ("datasets", "Datasets", "datasets"))


def shell(title: str, body: str, user: str, current: str) -> str:
    """A whole page: the title, links to the plugin's pages, who is signed in, the body."""
    links = " ".join(f'<a href="{href}"{" aria-current=page" if key == current else ""}>{name}</a>'
                     for key, name, href in PAGES)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{STYLE}</style></head>
<body>
<nav id="pages">{links}<span class="muted">Signed in as {escape(user)}.</span></nav>
<h1>{escape(title)}</h1>
{body}
</body></html>
"""
