"""Small line charts drawn on the server as inline SVG: no script, no front-end build step."""

from django.utils.html import escape
from django.utils.safestring import mark_safe

__all__ = ["line_chart", "COLOURS"]

COLOURS = ["#417690", "#c0392b", "#2e8b57", "#8e44ad", "#d35400"]  # the admin's blue first


def line_chart(series, *, title, unit, width=420, height=120, start_label="60 min ago", end_label="now"):
    """An SVG line chart of ``series``, ``[(name, [value or None, ...]), ...]``, values oldest first.

    The y axis runs from 0 to the largest value; a None is a gap in its line. The chart
    has a ``<title>`` and the largest value in words, so it reads without the picture.
    """
    values = [v for _, points in series for v in points if v is not None]
    top = max(values) if values else 0
    scale = top if top > 0 else 1
    named = [(index, name) for index, (name, _) in enumerate(series) if name]
    left, right, upper, lower = 44, 8, 32 if named else 18, 20  # margins for the title, legend and labels
    plot_w, plot_h = width - left - right, height - upper - lower
    bottom = upper + plot_h
    parts = [
        (f'<svg xmlns="http://www.w3.org/2000/svg" class="p2w-chart" role="img" width="{width}" height="{height}" '
         f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'),  # no style: a strict CSP
        f"<title>{escape(title)}: {_summary(values, top, unit)}</title>",
        f'<text x="{left}" y="12" font-weight="bold" fill="currentColor">{escape(title)}</text>',
        f'<line x1="{left}" y1="{bottom}" x2="{left + plot_w}" y2="{bottom}" stroke="#999"/>',
        f'<line x1="{left}" y1="{upper}" x2="{left}" y2="{bottom}" stroke="#999"/>',
        f'<text x="{left - 4}" y="{upper + 8}" text-anchor="end" fill="currentColor">{_number(top)}</text>',
        f'<text x="{left - 4}" y="{bottom}" text-anchor="end" fill="currentColor">0 {escape(unit)}</text>',
        f'<text x="{left}" y="{height - 4}" fill="currentColor">{escape(start_label)}</text>',
        f'<text x="{left + plot_w}" y="{height - 4}" text-anchor="end" fill="currentColor">{escape(end_label)}</text>',
    ]
    for index, (name, points) in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        step = plot_w / max(len(points) - 1, 1)
        for run in _runs(points):
            xy = [(left + i * step, bottom - v / scale * plot_h) for i, v in run]
            if len(xy) == 1:
                parts.append(f'<circle cx="{xy[0][0]:.1f}" cy="{xy[0][1]:.1f}" r="2" fill="{colour}"/>')
            else:
                points_text = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points_text}"/>')
    x = left
    for index, name in named:  # the legend, on its own line under the title
        parts.append(f'<text x="{x:.0f}" y="26" fill="{COLOURS[index % len(COLOURS)]}">\u25cf {escape(name)}</text>')
        x += 6.5 * len(name) + 24  # about the width of the entry at 11 px
    parts.append("</svg>")
    return mark_safe("".join(str(part) for part in parts))


def _runs(points):
    """Consecutive ``(index, value)`` runs of ``points`` without a None."""
    run = []
    for i, value in enumerate(points):
        if value is None:
            if run:
                yield run
            run = []
        else:
            run.append((i, value))
    if run:
        yield run


def _summary(values, top, unit):
    return f"largest {_number(top)} {escape(unit)}" if values else "no data"


def _number(value):
    return f"{value:.3g}"
