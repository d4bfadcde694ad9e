"""SVG line charts made on the server: one metric across a model's versions, one point per
version, with the versions the environments serve marked. No script, nothing fetched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 40


@dataclass(frozen=True)
class Point:
    """One version's value of the metric (None where it has none: no point is drawn)."""

    version: str
    value: float | None


def metric_chart(metric: str, points: Sequence[Point], marks: dict[str, list[str]]) -> str:
    """The chart of `metric` across `points` (oldest first); `marks` maps a version to the
    environments serving it, drawn as labelled rings around its point."""
    values = [p.value for p in points if p.value is not None]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high == low:  # a flat line, drawn in the middle of a small range around it
        pad = abs(low) * 0.05 or 0.5
        low, high = low - pad, high + pad
    step = plot_w / max(len(points) - 1, 1)

    def x(index: int) -> float:
        return LEFT + (index * step if len(points) > 1 else plot_w / 2)

    def y(value: float) -> float:
        return TOP + plot_h - (value - low) / (high - low) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" data-metric={quoteattr(metric)}>',
        f"<title>{escape(metric)} across versions</title>",
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_h}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
        f'<text class="tick" x="{LEFT - 6}" y="{y(high) + 4:.1f}" text-anchor="end">'
        f"{high:.4g}</text>",
        f'<text class="tick" x="{LEFT - 6}" y="{y(low) + 4:.1f}" text-anchor="end">'
        f"{low:.4g}</text>",
    ]
    line = [f"{x(i):.1f},{y(p.value):.1f}" for i, p in enumerate(points) if p.value is not None]
    if len(line) > 1:
        parts.append(f'<polyline class="line" points="{" ".join(line)}"/>')
    for index, point in enumerate(points):
        if point.value is None:
            continue
        cx, cy = x(index), y(point.value)
        label = escape(f"{point.version}: {metric} = {point.value:g}")
        parts.append(
            f'<circle class="point" cx="{cx:.1f}" cy="{cy:.1f}" r="4" '
            f'data-version={quoteattr(point.version)} data-value="{point.value!r}">'
            f"<title>{label}</title></circle>"
        )
        for offset, environment in enumerate(marks.get(point.version, [])):
            parts.append(
                f'<circle class="mark" cx="{cx:.1f}" cy="{cy:.1f}" r="{8 + 4 * offset}" '
                f"data-environment={quoteattr(environment)}/>"
                f'<text class="mark-label" x="{cx:.1f}" y="{TOP + plot_h + 16 + 12 * offset}" '
                f'text-anchor="middle">{escape(environment)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
