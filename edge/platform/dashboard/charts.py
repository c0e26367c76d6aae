"""Small server-rendered SVG charts: one bar per minute, no JavaScript needed."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 180
HEIGHT = 36


def _number(value: float) -> str:
    return f"{value:.0f}" if value == int(value) or value >= 100 else f"{value:.1f}"


def bars(
    values: Sequence[float],
    *,
    label: str,
    unit: str = "",
    kind: str = "requests",
    width: int = WIDTH,
) -> Markup:
    """One minute per bar, oldest on the left, scaled to the largest value.

    Args:
        values: one figure per minute.
        label: what is charted, e.g. ``"requests per minute"``; with the total
            and the peak it becomes the chart's accessible name and tooltip.
        unit: appended to the peak in that text (e.g. ``" ms"``).
        kind: a CSS class suffix choosing the colour.
        width: in CSS pixels (the height is fixed).
    """
    peak = max(values, default=0)
    total = sum(values)
    drawn = sum(1 for v in values if v > 0)
    summary = (
        f"{label} over the last {len(values)} minutes: "
        f"total {_number(total)}, peak {_number(peak)}{unit}"
        if kind != "latency"
        else f"{label} over the last {len(values)} minutes: peak {_number(peak)}{unit}"
    )
    step = width / max(len(values), 1)
    rects = []
    for i, value in enumerate(values):
        if value <= 0:
            continue
        height = max(1.0, (HEIGHT - 2) * value / peak)
        rects.append(
            f'<rect x="{i * step:.2f}" y="{HEIGHT - height:.2f}" '
            f'width="{max(step - 0.6, 0.6):.2f}" height="{height:.2f}"></rect>'
        )
    # APPSEC: every interpolated value is a number we computed or escaped text.
    return Markup(  # noqa: S704
        f'<svg class="chart chart-{escape(kind)}" viewBox="0 0 {width} {HEIGHT}" '
        f'width="{width}" height="{HEIGHT}" role="img" aria-label="{escape(summary)}" '
        f'data-points="{drawn}" focusable="false">'
        f"<title>{escape(summary)}</title>"
        f'<line x1="0" y1="{HEIGHT - 0.5}" x2="{width}" y2="{HEIGHT - 0.5}"></line>'
        f"{''.join(rects)}</svg>"
    )
