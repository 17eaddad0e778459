"""The Datasets page: every dataset under the data root (multiplt.results.datasets), a summary
table, then per dataset its facts (folder, rows, bytes, model, config), links to the DAG runs that
announced it and to its Hub repo, and its funnel chart."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from multiplt_leaderboard import funnel_chart
from multiplt_leaderboard.page import shell


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _anchor(index: int) -> str:
    return f"dataset-{index}"


def _model(dataset) -> str:
    if not dataset.model:
        return '<span class="muted">none (no model made it)</span>' if dataset.kind == "corpus" \
            else '<span class="muted">not recorded</span>'
    revision = f" @ {escape(dataset.revision)}" if dataset.revision else ""
    return f"<code>{escape(dataset.model)}</code>{revision}"


# The page is shown in a frame of the Airflow UI: a link into Airflow replaces the whole UI
# (not the frame, which would then hold a second UI), a Hub link opens a tab of its own.
INTO_AIRFLOW = ' target="_top"'
OUTSIDE = ' target="_blank" rel="noopener"'


def _runs(dataset, runs: list[dict] | None) -> str:
    dag = f'<a href="/dags/{quote(dataset.dag_id)}"{INTO_AIRFLOW}>{escape(dataset.dag_id)}</a>'
    if runs is None:
        return f"{dag} <span class=\"muted\">(runs unavailable)</span>"
    if not runs:
        return f"{dag} <span class=\"muted\">(no run announced this folder)</span>"
    links = ", ".join(f'<a class="run" href="/dags/{quote(r["dag_id"])}/runs/{quote(r["run_id"], safe="")}"'
                      f'{INTO_AIRFLOW}>'
                      f'{escape(r["run_id"])}</a>' for r in runs)
    return f"{dag}: {links}"


def _hub(dataset) -> str:
    if not dataset.published:
        return '<span class="muted">not published</span>'
    repo = escape(str(dataset.published.get("repo")))
    url = dataset.published.get("url")
    return f'<a class="hub" href="{escape(url)}"{OUTSIDE}>{repo}</a>' if url else repo


def _section(index: int, dataset, runs: list[dict] | None) -> str:
    facts = [("folder", f"<code>{escape(dataset.uri)}</code>"), ("kind", escape(dataset.kind)),
             ("rows", "?" if dataset.rows is None else f"{dataset.rows:,}"),
             ("size", f"{human_bytes(dataset.bytes)} in {len(dataset.files)} file(s)"),
             ("model", _model(dataset)),
             ("config", f"<code>{escape(dataset.config_uri)}</code>" if dataset.config_uri
              else '<span class="muted">none found</span>'),
             ("Airflow runs", _runs(dataset, runs)), ("Hub", _hub(dataset))]
    rows = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in facts)
    error = f'<p class="error">Cannot read this dataset: {escape(dataset.error)}</p>' if dataset.error else ""
    chart = funnel_chart.render_svg(dataset.steps, f"funnel-{index}") if not dataset.error else ""
    return (f'<section class="dataset" id="{_anchor(index)}" data-key="{escape(dataset.key)}">'
            f"<h2>{escape(dataset.title)}</h2>{error}<table class=\"facts\">{rows}</table>"
            f"<h3>Funnel</h3>{chart}</section>")


def render_page(found: list, runs: list[list[dict] | None], user: str, root: str,
                events_error: str | None = None) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("dataset", "rows", "size", "model", "Hub"))
    summary = "".join(
        f'<tr><td><a href="#{_anchor(i)}">{escape(d.title)}</a></td>'
        f'<td class="score">{"?" if d.rows is None else f"{d.rows:,}"}</td>'
        f'<td class="score">{human_bytes(d.bytes)}</td><td>{escape(d.model or "-")}</td>'
        f"<td>{_hub(d)}</td></tr>" for i, d in enumerate(found))
    empty = ('<p class="muted">No datasets yet: run multiplt_corpus, multiplt_testgen and '
             "multiplt_translate.</p>") if not found else ""
    warning = f'<p class="error">Airflow runs unavailable: {escape(events_error)}</p>' if events_error else ""
    body = (f'<p class="muted">Every stage output (a folder with funnel.json) under '
            f"<code>{escape(root)}</code>.</p>{warning}{empty}"
            f'<table id="datasets"><thead><tr>{head}</tr></thead><tbody>{summary}</tbody></table>'
            + "".join(_section(i, d, r) for i, (d, r) in enumerate(zip(found, runs))))
    return shell("MultiPL-T datasets", body, user, "datasets")
