"""A dataset's funnel as an SVG bar chart drawn on the server: per step a grey bar of the rows in,
a blue bar of the rows out over it, the counts, and under it the reasons rows were dropped
(the most frequent REASONS_SHOWN; the rest summed). Steps come from multiplt.results.funnel."""

from __future__ import annotations

from html import escape

WIDTH = 900
LABEL_W, BAR_W = 150, 420
ROW_H, REASON_H, TOP = 26, 15, 12
REASONS_SHOWN = 4


def _reason_lines(step: dict) -> list[str]:
    reasons = step["reasons"]
    lines = [f"{rows} × {reason}" for reason, rows in reasons[:REASONS_SHOWN]]
    rest = sum(rows for _, rows in reasons[REASONS_SHOWN:])
    if rest:
        lines.append(f"{rest} × {len(reasons) - REASONS_SHOWN} other reason(s)")
    return lines


def render_svg(steps: list[dict], chart_id: str = "funnel") -> str:
    top = max([s["in"] for s in steps if s["in"] is not None]
              + [s["out"] for s in steps if s["out"] is not None] + [1])
    height = TOP * 2 + sum(ROW_H + REASON_H * len(_reason_lines(s)) for s in steps) + (0 if steps else ROW_H)
    out = [f'<svg class="funnel" id="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" '
           f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
           f'aria-label="rows in and out per step" font-family="sans-serif" font-size="12">',
           f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>']
    if not steps:
        out.append(f'<text x="{LABEL_W}" y="{TOP + 16}" fill="#666">no funnel steps</text>')
    y = TOP
    for step in steps:
        out.append(f'<g class="step" data-name="{escape(step["name"])}" data-in="{step["in"]}" '
                   f'data-out="{step["out"]}" data-dropped="{step["dropped"]}">')
        out.append(f'<text x="{LABEL_W - 8}" y="{y + 15}" text-anchor="end">{escape(step["name"])}</text>')
        if step["in"] is not None:
            w_in, w_out = BAR_W * step["in"] / top, BAR_W * step["out"] / top
            out.append(f'<rect class="in" x="{LABEL_W}" y="{y + 3}" width="{w_in:.1f}" height="18" '
                       f'fill="#d9d9d9"><title>{step["in"]} in</title></rect>')
            out.append(f'<rect class="out" x="{LABEL_W}" y="{y + 3}" width="{w_out:.1f}" height="18" '
                       f'fill="#1f77b4"><title>{step["out"]} out</title></rect>')
            text = f'{step["in"]} → {step["out"]}' + (f'  (−{step["dropped"]})' if step["dropped"] else "")
        else:
            text = f'−{step["dropped"]} (reasons of no step)'
        out.append(f'<text x="{LABEL_W + BAR_W + 10}" y="{y + 15}">{escape(text)}</text>')
        y += ROW_H
        for line in _reason_lines(step):
            out.append(f'<text class="reason" x="{LABEL_W + 12}" y="{y + 8}" fill="#a33" '
                       f'font-size="11">{escape(line)}</text>')
            y += REASON_H
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)
