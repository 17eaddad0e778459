"""A line chart of pass@1 by epoch per language, experiment and model, drawn as SVG on the server
(no JavaScript). Legend labels longer than LABEL_CHARS are shortened; the full label is the
series' `data-label` and the tooltip of its points."""

from __future__ import annotations

from html import escape

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22"]
WIDTH, HEIGHT = 900, 360
LEFT, RIGHT, TOP, BOTTOM = 56, 320, 24, 48
LABEL_CHARS = 46


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "…"


def render_svg(series: dict[str, list[tuple[int, float]]], k: int = 1) -> str:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    epochs = sorted({e for pts in series.values() for e, _ in pts}) or [0]
    lo, hi = min(epochs), max(max(epochs), min(epochs) + 1)
    top = 1.0  # pass@k is a fraction: a fixed axis keeps plots comparable

    def x(epoch: float) -> float:
        return LEFT + (epoch - lo) / (hi - lo) * plot_w

    def y(value: float) -> float:
        return TOP + plot_h - value / top * plot_h

    out = [f'<svg id="passk-plot" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
           f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
           f'aria-label="pass@{k} by epoch per language and model" font-family="sans-serif" font-size="12">',
           f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>']
    for i in range(6):  # horizontal grid and y labels
        value = top * i / 5
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                   f'stroke="#e0e0e0"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.2f}</text>')
    step = max(1, (hi - lo) // 10)
    for epoch in range(lo, hi + 1, step):
        out.append(f'<text x="{x(epoch):.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{epoch}</text>')
    out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="#333"/>')
    out.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#333"/>')
    out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">epoch</text>')
    out.append(f'<text transform="translate(14,{TOP + plot_h / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">pass@{k}</text>')
    if not series:
        out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h / 2:.1f}" '
                   f'text-anchor="middle" fill="#666">no results recorded yet</text>')
    for i, (label, pts) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        coords = " ".join(f"{x(e):.1f},{y(v):.1f}" for e, v in pts)
        out.append(f'<g class="series" data-label="{escape(label)}">')
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>')
        for e, v in pts:
            out.append(f'<circle cx="{x(e):.1f}" cy="{y(v):.1f}" r="3.5" fill="{color}">'
                       f'<title>{escape(label)} epoch {e}: {v:.3f}</title></circle>')
        ly = TOP + 10 + 18 * i
        out.append(f'<rect x="{LEFT + plot_w + 16}" y="{ly - 8}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{LEFT + plot_w + 34}" y="{ly + 2}"><title>{escape(label)}</title>'
                   f'{escape(_short(label))}</text></g>')
    out.append("</svg>")
    return "\n".join(out)
