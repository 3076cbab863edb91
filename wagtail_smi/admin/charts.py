"""Server-rendered SVG charts: no JavaScript, readable in light and dark mode.

Colours come from ``currentColor`` and Wagtail's CSS variables (classes styled in
``static/wagtail_smi/admin/admin.css``). Every chart carries a ``<title>`` and ``<desc>``
and is ``role="img"`` with ``aria-labelledby``; the report beside it shows the same figures
as a table, which is the full text alternative. Column charts have a labelled value axis
with gridlines, a labelled time axis, a legend, and the value of each bar written on it
when there is room (always in its tooltip).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    display: str
    alt_value: int = 0  # a second bar in the same slot (margin beside net revenue)
    alt_display: str = ""


def _n(value: float) -> str:
    return f"{value:.1f}"


def nice_ticks(low: int, high: int, count: int = 4) -> list[int]:
    """Round tick values (1, 2, 2.5 or 5 × a power of ten) covering ``low``..``high``,
    zero included."""
    low, high = min(low, 0), max(high, 0)
    if low == high:
        high = low + 1
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next((m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw), 10 * power)
    step = max(int(math.ceil(step)), 1)
    start = math.floor(low / step) * step
    ticks, value = [], start
    while value < high + step:
        ticks.append(int(value))
        if value >= high:
            break
        value += step
    return ticks


def column_chart(
    bars: list[Bar],
    *,
    chart_id: str,
    title: str,
    description: str,
    series_label: str = "",
    alt_series_label: str = "",
    x_label: str = "",
    y_label: str = "",
    tick_format: Callable[[int], str] = str,
) -> SafeString:
    """Vertical bars, one slot per period (oldest on the left), an optional second series
    beside the first; the value axis is labelled with ``tick_format`` (money, counts)."""
    width, height = 720, 300
    left, right, top, bottom = 84, 12, 34, 58
    plot_w, plot_h = width - left - right, height - top - bottom
    slots = max(len(bars), 1)
    slot_w = plot_w / slots
    has_alt = bool(alt_series_label) and any(bar.alt_value for bar in bars)
    values = [b.value for b in bars] + ([b.alt_value for b in bars] if has_alt else [])
    ticks = nice_ticks(min(values, default=0), max(values, default=0))
    low, high = ticks[0], ticks[-1]
    scale = plot_h / (high - low)

    def y(value: float) -> float:
        return top + plot_h - (value - low) * scale

    parts = []
    for tick in ticks:
        parts.append(
            format_html(
                '<line class="smi-chart__grid" x1="{}" y1="{}" x2="{}" y2="{}"/>'
                '<text class="smi-chart__tick" x="{}" y="{}" text-anchor="end">{}</text>',
                left,
                _n(y(tick)),
                width - right,
                _n(y(tick)),
                left - 6,
                _n(y(tick) + 4),
                tick_format(tick),
            )
        )
    bar_w = max(slot_w * (0.38 if has_alt else 0.64), 1)
    show_values = slot_w >= (88 if has_alt else 44)
    label_every = max(1, math.ceil(64 / slot_w))  # period labels ~60 units wide
    for i, bar in enumerate(bars):
        x = left + i * slot_w + slot_w * (0.12 if has_alt else 0.18)
        series = [(bar.value, bar.display, "", series_label)]
        if has_alt:
            series.append(
                (bar.alt_value, bar.alt_display, " smi-chart__bar--alt", alt_series_label)
            )
        for offset, (value, display, modifier, name) in enumerate(series):
            bx = x + offset * bar_w
            top_y, bottom_y = sorted((y(value), y(0)))
            parts.append(
                format_html(
                    '<rect class="smi-chart__bar{}" x="{}" y="{}" width="{}" height="{}">'
                    "<title>{}, {}: {}</title></rect>",
                    modifier,
                    _n(bx),
                    _n(top_y),
                    _n(bar_w),
                    _n(max(bottom_y - top_y, 0)),
                    bar.label,
                    name,
                    display,
                )
            )
            if show_values and value:
                parts.append(
                    format_html(
                        '<text class="smi-chart__value" x="{}" y="{}" text-anchor="middle">{}</text>',
                        _n(bx + bar_w / 2),
                        _n(top_y - 4),
                        display,
                    )
                )
        if i % label_every == 0:
            parts.append(
                format_html(
                    '<text class="smi-chart__label" x="{}" y="{}" text-anchor="middle">{}</text>',
                    _n(left + i * slot_w + slot_w / 2),
                    top + plot_h + 16,
                    bar.label,
                )
            )
    axes = format_html(
        '<line class="smi-chart__axis" x1="{}" y1="{}" x2="{}" y2="{}"/>'
        '<line class="smi-chart__axis" x1="{}" y1="{}" x2="{}" y2="{}"/>'
        '<text class="smi-chart__axis-label" x="{}" y="{}" text-anchor="middle">{}</text>'
        '<text class="smi-chart__axis-label" x="14" y="{}" text-anchor="middle" '
        'transform="rotate(-90 14 {})">{}</text>',
        left,
        _n(y(0)),
        width - right,
        _n(y(0)),
        left,
        top,
        left,
        top + plot_h,
        _n(left + plot_w / 2),
        height - 8,
        x_label,
        _n(top + plot_h / 2),
        _n(top + plot_h / 2),
        y_label,
    )
    legend_items = [("", series_label)] + (
        [(" smi-chart__bar--alt", alt_series_label)] if has_alt else []
    )
    legend = format_html_join(
        "",
        '<rect class="smi-chart__bar{}" x="{}" y="8" width="10" height="10"/>'
        '<text class="smi-chart__label smi-chart__legend" x="{}" y="17">{}</text>',
        (
            (modifier, left + i * 150, left + i * 150 + 14, name)
            for i, (modifier, name) in enumerate(legend_items)
            if name
        ),
    )
    return _svg(
        chart_id,
        title,
        description,
        width,
        height,
        format_html_join("", "{}", ((part,) for part in [*parts, axes, legend])),
    )


def funnel_chart(stages: list[Bar], *, chart_id: str, title: str, description: str) -> SafeString:
    """Horizontal bars, widest first: clicks → checkouts → paid → delivered."""
    width, row_h, label_w = 720, 40, 170
    height = row_h * max(len(stages), 1) + 10
    top = max([s.value for s in stages] + [0])
    scale = (width - label_w - 140) / top if top > 0 else 0.0
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
