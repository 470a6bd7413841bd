"""Server-rendered SVG charts (no JavaScript): the alert timeline."""

from __future__ import annotations

from html import escape

WIDTH = 900
HEIGHT = 160
MARGIN = 30


def bucket_prefix(hour_buckets: int) -> int:
    """Characters of an RFC 3339 time that make a bucket: minutes for a short span, days for a long one."""
    if hour_buckets <= 2:
        return len("2026-01-01T00:00")
    if hour_buckets > 96:
        return len("2026-01-01")
    return len("2026-01-01T00")


def timeline_svg(buckets: list[tuple[str, int]]) -> str:
    """Bars of alert counts per bucket, labelled at the ends, with a title per bar (hover shows it)."""
    if not buckets:
        return (f'<svg class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="no alerts">'
                f'<text x="{WIDTH // 2}" y="{HEIGHT // 2}" text-anchor="middle">no alerts</text></svg>')
    peak = max(n for _, n in buckets)
    plot_w = WIDTH - 2 * MARGIN
    plot_h = HEIGHT - 2 * MARGIN
    step = plot_w / len(buckets)
    bar = max(1.0, step * 0.8)
    parts = [f'<svg class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="alerts over time, peak {peak}">',
             f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN}" y2="{HEIGHT - MARGIN}" class="axis"/>',
             f'<text x="{MARGIN - 4}" y="{MARGIN + 4}" text-anchor="end" class="tick">{peak}</text>']
    for i, (label, count) in enumerate(buckets):
        h = plot_h * count / peak if peak else 0
        x = MARGIN + i * step + (step - bar) / 2
        y = HEIGHT - MARGIN - h
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" class="bar">'
                     f'<title>{escape(label)}: {count}</title></rect>')
    parts.append(f'<text x="{MARGIN}" y="{HEIGHT - 8}" class="tick">{escape(buckets[0][0])}</text>')
    if len(buckets) > 1:
        parts.append(f'<text x="{WIDTH - MARGIN}" y="{HEIGHT - 8}" text-anchor="end" class="tick">'
                     f'{escape(buckets[-1][0])}</text>')
    parts.append("</svg>")
    return "".join(parts)
