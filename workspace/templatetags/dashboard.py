"""The dashboard's chart and figures.

`{% usage_chart usage.days %}` draws credits spent per day as inline SVG, server-rendered: no
script, no library. Horizontal positions are percentages of the chart's width and vertical ones
pixels, so the bars stretch with the container while the labels keep their size (readable on a
390 px phone and on a wide screen alike). Every bar has a <title> with its day and value, and the
whole column is its hover target, days without spending too.
"""

import math

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma
from django.utils import dateformat
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()

PLOT_HEIGHT = 140  # px of bars
TOP = 16  # room above the top grid line for its label
AXIS = 22  # room below the bars for the dates
MAX_DATE_LABELS = 7
BAR_SHARE = 0.72  # of each day's slot; the rest is the gap between bars


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50… at or above `value`, for round grid lines."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def _pct(value: float) -> str:
    return f"{value:.3f}%"


def _bar(d, x: float, slot: float, height: float) -> str:
    """A day's column: its title, its hover target and its bar (if it spent anything). Built
    here rather than in a template loop, which for 90 days took longer than the rest of the
    dashboard; only the day's name is text, and it is escaped."""
    title = (
        f"<title>{escape(dateformat.format(d.day, 'D j M'))}: {_count(d.credits, 'credit')}, "
        f"{_count(d.images, 'image')}</title>"
    )
    bar = ""
    if height:
        bar = (
            f'<rect class="usage-bar-svg" x="{_pct(x + slot * (1 - BAR_SHARE) / 2)}" '
            f'y="{TOP + PLOT_HEIGHT - height}" width="{_pct(slot * BAR_SHARE)}" '
            f'height="{height}" rx="2" fill="#6d28d9"/>'
        )
    return (
        f'<g class="usage-day">{title}<rect x="{_pct(x)}" y="0" width="{_pct(slot)}" '
        f'height="{TOP + PLOT_HEIGHT}" fill="transparent"/>{bar}</g>\n'
    )


def _count(n: int, noun: str) -> str:
    """1 credit, 12 credits, 1,204 credits (intcomma only where it has work to do)."""
    return f"{intcomma(n) if n >= 1000 else n} {noun}{'' if n == 1 else 's'}"


@register.inclusion_tag("workspace/_usage_chart.html")
def usage_chart(days):
    """`days`: DayUsage rows (credits.usage), oldest first."""
    count = len(days)
    top = nice_ceiling(max((d.credits for d in days), default=0))
    slot = 100 / count if count else 100
    bars = []
    for i, d in enumerate(days):
        height = round(PLOT_HEIGHT * d.credits / top, 1)
        if d.credits and height < 1:
            height = 1  # a day with spending is never invisible
        bars.append(_bar(d, i * slot, slot, height))
    step = max(1, math.ceil(count / MAX_DATE_LABELS))
    labels = []
    for i in range(count - 1, -1, -step):  # from the last day back, so today is always named
        centre = (i + 0.5) * slot
        anchor = "start" if centre < 6 else "end" if centre > 94 else "middle"
        x = 0 if anchor == "start" else 100 if anchor == "end" else centre
        # Every other date is dropped on a phone (the chart's CSS), where seven would overlap.
        minor = len(labels) % 2 == 1
        labels.append({"day": days[i].day, "x": _pct(x), "anchor": anchor, "minor": minor})
    baseline = TOP + PLOT_HEIGHT
    return {
        "bars": mark_safe("".join(bars)),  # noqa: S308 - numbers and an escaped day name
        "labels": labels[::-1],
        "grid": [
            {"value": top, "y": TOP, "label_y": TOP - 4},
            *(
                [
                    {
                        "value": top // 2,
                        "y": TOP + PLOT_HEIGHT / 2,
                        "label_y": TOP + PLOT_HEIGHT / 2 - 4,
                    }
                ]
                if top > 1
                else []
            ),
        ],
        "baseline": baseline,
        "label_y": baseline + 16,
        "height": baseline + AXIS,
        "first": days[0].day if days else None,
        "last": days[-1].day if days else None,
        "total": sum(d.credits for d in days),
    }


@register.filter
def metric(value, unit):
    """A metric's value for people: 91.7%, 1 min 24 s, 12.5, 1,204."""
    if value is None:
        return "—"
    if unit == "percent":
        return f"{value * 100:.1f}%".replace(".0%", "%")
    if unit == "seconds":
        seconds = round(value)
        if seconds < 60:
            return f"{value:.1f} s" if value < 10 else f"{seconds} s"
        minutes, seconds = divmod(seconds, 60)
        if minutes < 60:
            return f"{minutes} min {seconds} s"
        hours, minutes = divmod(minutes, 60)
        return f"{hours} h {minutes} min"
    if isinstance(value, float):
        value = round(value, 1)  # 593.97 is "594", not "594.0"
        if not value.is_integer():
            return intcomma(f"{value:.1f}")
    return intcomma(int(value))


@register.filter
def change(comparison):
    """How a metric moved since the previous period: "+4.2 pts", "−12%", "no change", or "" when
    there is nothing to compare with."""
    delta = comparison.change
    if delta is None:
        return ""
    unit = " pts" if comparison.unit == "percent" else "%"
    shown = f"{abs(delta):.1f}".removesuffix(".0")
    if shown == "0":
        return "no change"
    return f"{'+' if delta > 0 else '−'}{shown}{unit}"
