"""The leaderboard's HTML: one benchmark at a time (links to the others and to each k), a sortable
table (a few lines of inline script, no library) whose score cells link to the run's
per-problem page, and the SVG. A score whose run had samples time out carries a marker (its
title: how many of how many samples, under what limit), a prominent one when more than half did:
a loaded machine's score is not the model's. `shell` is the frame every page shares."""

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
.timeouts { font-size: 0.8em; color: #a65f00; white-space: nowrap; cursor: help; }
.timeouts.most { font-size: 0.9em; font-weight: bold; color: #b00000; }
td.timed-out { background: #fde2e2; }
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


def _seconds(value: float) -> str:
    return f"{value:g} s"


def timeout_limits(note: dict) -> str:
    """The wall-clock limit(s) a run's results ran under ("10 s", "5 s to 10 s"), "" when none
    was recorded."""
    low, high = note.get("min_timeout_s"), note.get("max_timeout_s")
    if low is None and high is None:
        return ""
    if low is None or high is None or low == high:
        return _seconds(high if low is None else low)
    return f"{_seconds(low)} to {_seconds(high)}"


def timeout_title(note: dict) -> str:
    """One sentence on a run's timed-out samples (board.timeout_note), for a title."""
    count = note["timeouts"]
    of = f" of {note['samples']}" if note["samples"] is not None else ""
    limits = timeout_limits(note)
    under = f" (limit {limits})" if limits else ""
    return (f"{count}{of} sample{'' if count == 1 and not of else 's'} timed out{under}: a loaded "
            "machine lowers a score this way, not only the model")


def timeout_marker(note: dict | None) -> str:
    """The marker after a score whose run had samples time out (escaped HTML); "" for none or a
    row that does not say. More than half of the samples timed out: a prominent one."""
    if not note:
        return ""
    count = note["timeouts"]
    if note["most"]:
        cls, text = "timeouts most", f"\u26a0 {count} of {note['samples']} timed out"
    else:
        cls, text = "timeouts", f"\u26a0 {count} timeout{'' if count == 1 else 's'}"
    return f' <span class="{cls}" title="{escape(timeout_title(note))}">{escape(text)}</span>'


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
    timed_out = False
    for entry in entries:
        cells = [_cell(entry["model"]), _cell(entry["revision"] or "", entry["revision"] or "-"),
                 _cell(entry["experiment"] or "", entry["experiment"] or "-"), _cell(entry["epoch"])]
        for lang in languages:
            cell = entry["cells"].get(lang)
            if cell is None:
                cells.append('<td class="score muted" data-value="">-</td>')
            else:
                link = "run?" + urlencode({"run_id": cell["run_id"]})
                note = cell.get("timeouts")
                timed_out = timed_out or bool(note)
                cls = "score timed-out" if note and note["most"] else "score"
                cells.append(f'<td class="{cls}" data-value="{cell["estimate"]:.4f}">'
                             f'<a href="{escape(link)}">{cell["estimate"]:.3f}</a>'
                             f'{timeout_marker(note)}</td>')
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
    legend = ('<p class="muted" id="timeouts-legend"><span class="timeouts">\u26a0</span> samples of '
              "that run timed out (hover for how many and the limit; a loaded machine can cause "
              "it): the score may not be the model's. A red cell: more than half did.</p>"
              if timed_out else "")
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
{legend}
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
