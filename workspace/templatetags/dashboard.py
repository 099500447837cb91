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
        bars.append(
            {
                "day": d.day,
                "credits": d.credits,
                "images": d.images,
                "x": _pct(i * slot),
                "width": _pct(slot),
                "bar_x": _pct(i * slot + slot * (1 - BAR_SHARE) / 2),
                "bar_width": _pct(slot * BAR_SHARE),
                "y": TOP + PLOT_HEIGHT - height,
                "height": height,
            }
        )
    step = max(1, math.ceil(count / MAX_DATE_LABELS))
    labels = []
    for i in range(count - 1, -1, -step):  # from the last day back, so today is always named
        centre = (i + 0.5) * slot
        anchor = "start" if centre < 6 else "end" if centre > 94 else "middle"
        x = 0 if anchor == "start" else 100 if anchor == "end" else centre
        labels.append({"day": days[i].day, "x": _pct(x), "anchor": anchor})
    baseline = TOP + PLOT_HEIGHT
    return {
        "bars": bars,
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
    if isinstance(value, float) and not value.is_integer():
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
