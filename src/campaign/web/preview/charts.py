"""Charts for the Reports tab, drawn here as SVG: readable with no JavaScript, no library.
The markup is built from numbers and escaped text only, so templates may mark it safe.

Each chart carries its numbers as text too (a label on every bar), so it reads the same
in a screen reader and on paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from campaign.reports import Day, Link

SERIES = (("delivered", "#2f7d32"), ("bounced", "#c62828"), ("unsubscribed", "#6a4c93"))
"""The timeline's series and their colours."""

_FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def timeline(days: Sequence[Day]) -> str:
    """Deliveries, bounces and unsubscribes per day since the send began, as grouped bars."""
    width, height, top, bottom, left = 640, 220, 28, 30, 8
    plot = height - top - bottom
    peak = max((getattr(day, name) for day in days for name, _ in SERIES), default=0) or 1
    group = (width - left) / max(len(days), 1)
    bar = min(24.0, (group - 12) / len(SERIES))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart timeline" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-labelledby="timeline-title">',
        '<title id="timeline-title">Deliveries, bounces and unsubscribes per day since the send began</title>',
    ]
    for n, (name, colour) in enumerate(SERIES):
        key = left + n * 130
        parts.append(
            f'<rect x="{key}" y="4" width="12" height="12" fill="{colour}"/>'
            f'<text x="{key + 16}" y="14" {_FONT}>{name}</text>'
        )
    baseline = top + plot
    for index, day in enumerate(days):
        x0 = left + index * group + (group - bar * len(SERIES)) / 2
        for n, (name, colour) in enumerate(SERIES):
            value = int(getattr(day, name))
            h = plot * value / peak
            x = x0 + n * bar
            parts.append(
                f'<rect class="bar" data-day="{day.day}" data-series="{name}" data-value="{value}" '
                f'x="{x:.1f}" y="{baseline - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>day {day.day + 1}: {value} {name}</title></rect>"
            )
            if value:
                parts.append(
                    f'<text x="{x + (bar - 2) / 2:.1f}" y="{baseline - h - 3:.1f}" '
                    f'text-anchor="middle" {_FONT}>{value}</text>'
                )
        parts.append(
            f'<text x="{left + index * group + group / 2:.1f}" y="{height - 10}" '
            f'text-anchor="middle" {_FONT}>day {day.day + 1}</text>'
        )
    parts.append(
        f'<line x1="{left}" y1="{baseline}" x2="{width}" y2="{baseline}" stroke="#888"/></svg>'
    )
    return "".join(parts)


def clicks(links: Sequence[Link]) -> str:
    """Clicks per link as horizontal bars, the link written beside each."""
    row, label, width = 26, 330, 640
    height = max(len(links), 1) * row + 8
    peak = max((link.clicks for link in links), default=0) or 1
    room = width - label - 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart clicks" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-labelledby="clicks-title">',
        '<title id="clicks-title">Clicks per link</title>',
    ]
    for n, link in enumerate(links):
        y = 4 + n * row
        shown = link.url if len(link.url) <= 48 else link.url[:47] + "…"
        w = room * link.clicks / peak
        parts.append(
            f'<text x="0" y="{y + 16}" {_FONT}><title>{escape(link.url)}</title>{escape(shown)}</text>'
            f'<rect class="bar" data-url="{escape(link.url)}" data-value="{link.clicks}" '
            f'x="{label}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="#1d4f91"/>'
            f'<text x="{label + w + 6:.1f}" y="{y + 16}" {_FONT}>{link.clicks}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
