"""Server-rendered SVG charts: no JavaScript, readable in light and dark mode.

Colours come from ``currentColor`` and Wagtail's CSS variables (classes styled in
``static/wagtail_smi/admin/admin.css``). Every chart carries a ``<title>`` and ``<desc>``
and is ``role="img"`` with ``aria-labelledby``; the report beside it shows the same figures
as a table, which is the full text alternative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    display: str
    alt_value: int = 0  # a second bar in the same slot (refunds beside revenue)
    alt_display: str = ""


def _n(value: float) -> str:
    return f"{value:.1f}"


def _scale(values, height: float) -> float:
    top = max([v for v in values if v is not None] + [0])
    return height / top if top > 0 else 0.0


def column_chart(
    bars: list[Bar],
    *,
    chart_id: str,
    title: str,
    description: str,
    series_label: str = "",
    alt_series_label: str = "",
    peak_text: str = "%(amount)s (%(period)s)",
) -> SafeString:
    """Vertical bars, one slot per period (oldest on the left), optional second series."""
    width, height, left, bottom, top = 720, 260, 36, 40, 24
    plot_h = height - bottom - top
    slots = max(len(bars), 1)
    slot_w = (width - left * 2) / slots
    has_alt = any(bar.alt_value for bar in bars)
    scale = _scale([b.value for b in bars] + [b.alt_value for b in bars], plot_h)
    # Keep period labels (about 70 units wide at this size) from overlapping.
    label_every = max(1, math.ceil(72 / slot_w))
    parts = []
    for i, bar in enumerate(bars):
        x = left + i * slot_w
        bar_w = max(slot_w * (0.4 if has_alt else 0.7), 1)
        h = bar.value * scale
        parts.append(
            format_html(
                '<rect class="smi-chart__bar" x="{}" y="{}" width="{}" height="{}">'
                "<title>{}: {}</title></rect>",
                _n(x + slot_w * 0.1),
                _n(top + plot_h - h),
                _n(bar_w),
                _n(h),
                bar.label,
                bar.display,
            )
        )
        if has_alt:
            ah = bar.alt_value * scale
            parts.append(
                format_html(
                    '<rect class="smi-chart__bar smi-chart__bar--alt" x="{}" y="{}" '
                    'width="{}" height="{}"><title>{}: {} {}</title></rect>',
                    _n(x + slot_w * 0.1 + bar_w),
                    _n(top + plot_h - ah),
                    _n(bar_w),
                    _n(ah),
                    bar.label,
                    alt_series_label,
                    bar.alt_display,
                )
            )
        if i % label_every == 0:
            parts.append(
                format_html(
                    '<text class="smi-chart__label" x="{}" y="{}" text-anchor="middle">{}</text>',
                    _n(x + slot_w / 2),
                    height - bottom + 16,
                    bar.label,
                )
            )
    axis = format_html(
        '<line class="smi-chart__axis" x1="{}" y1="{}" x2="{}" y2="{}"/>',
        left,
        top + plot_h,
        width - left,
        top + plot_h,
    )
    peak = max(bars, key=lambda b: b.value, default=None)
    peak_label = (
        format_html(
            '<text class="smi-chart__label" x="{}" y="14">{}</text>',
            left,
            peak_text % {"amount": peak.display, "period": peak.label},
        )
        if peak and peak.value
        else ""
    )
    legend = ""
    if has_alt:
        legend = format_html(
            '<rect class="smi-chart__bar" x="{}" y="{}" width="10" height="10"/>'
            '<text class="smi-chart__label" x="{}" y="{}">{}</text>'
            '<rect class="smi-chart__bar smi-chart__bar--alt" x="{}" y="{}" width="10" height="10"/>'
            '<text class="smi-chart__label" x="{}" y="{}">{}</text>',
            width - 220,
            height - 14,
            width - 206,
            height - 5,
            series_label,
            width - 110,
            height - 14,
            width - 96,
            height - 5,
            alt_series_label,
        )
    return _svg(
        chart_id,
        title,
        description,
        width,
        height,
        format_html_join("", "{}", ((part,) for part in [axis, peak_label, *parts, legend])),
    )


def funnel_chart(stages: list[Bar], *, chart_id: str, title: str, description: str) -> SafeString:
    """Horizontal bars, widest first: clicks → checkouts → paid → delivered."""
    width, row_h, label_w = 720, 40, 170
    height = row_h * max(len(stages), 1) + 10
    scale = _scale([s.value for s in stages], width - label_w - 140)
    rows = format_html_join(
        "",
        '<text class="smi-chart__label" x="0" y="{}" style="font-size:13px">{}</text>'
        '<rect class="smi-chart__bar" x="{}" y="{}" width="{}" height="{}"/>'
        '<text class="smi-chart__label" x="{}" y="{}" style="font-size:13px">{}</text>',
        (
            (
                i * row_h + 26,
                stage.label,
                label_w,
                i * row_h + 8,
                _n(max(stage.value * scale, 1 if stage.value else 0)),
                row_h - 14,
                _n(label_w + stage.value * scale + 8),
                i * row_h + 26,
                stage.display,
            )
            for i, stage in enumerate(stages)
        ),
    )
    return _svg(chart_id, title, description, width, height, rows)


def _svg(chart_id, title, description, width, height, body) -> SafeString:
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" role="img" '
        'aria-labelledby="{}-title {}-desc" focusable="false">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>{}</svg>',
        width,
        height,
        chart_id,
        chart_id,
        chart_id,
        title,
        chart_id,
        description,
        body,
    )
