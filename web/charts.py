"""Pictures drawn on the server as SVG: sparklines and per-queue state bars.

SVG attributes, not inline styles, carry every size and colour class, so the
pages keep a CSP without 'unsafe-inline'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from markupsafe import Markup

# Order of the segments in a state bar, left to right.
BAR_STATES = ("running", "queued", "delayed", "done", "dead", "cancelled")


def sparkline(values: Sequence[float], *, width: int = 120, height: int = 28,
              css: str = "spark", label: str = "") -> Markup:
    """A line of ``values`` (oldest first) scaled to the box, with its area shaded."""
    if not values:
        values = [0]
    top = max(max(values), 1)
    step = width / max(len(values) - 1, 1)
    points = [(i * step, height - 2 - (v / top) * (height - 4)) for i, v in enumerate(values)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    area = f"0,{height} {line} {width},{height}"
    title = escape(label)
    return Markup(
        f'<svg class="{css}" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'role="img" aria-label="{title}"><title>{title}</title>'
        f'<polygon class="area" points="{area}"/><polyline class="line" points="{line}"/></svg>'
    )


def state_bar(counts: Mapping[str, int], *, width: int = 240, height: int = 10) -> Markup:
    """One bar split by job state; a sliver keeps a non-zero state visible."""
    total = sum(counts.get(s, 0) for s in BAR_STATES)
    parts = []
    if total == 0:
        parts.append(f'<rect class="empty" x="0" y="0" width="{width}" height="{height}"/>')
    else:
        shown = {s: counts.get(s, 0) for s in BAR_STATES if counts.get(s, 0)}
        widths = {s: max(width * n / total, 2.0) for s, n in shown.items()}
        scale = width / sum(widths.values())
        x = 0.0
        for state, w in widths.items():
            w *= scale
            parts.append(f'<rect class="s-{state}" x="{x:.2f}" y="0" width="{w:.2f}" '
                         f'height="{height}"><title>{state}: {shown[state]:,}</title></rect>')
            x += w
    label = ", ".join(f"{s} {counts.get(s, 0):,}" for s in BAR_STATES)
    return Markup(
        f'<svg class="bar" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'role="img" aria-label="{escape(label)}">{"".join(parts)}</svg>'
    )
