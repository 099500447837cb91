"""Credit usage for admins (PRD §4.4, §4.5): what was spent, per day, per member, per model.

"Spent" means captured: images that arrived. Held credits of images still generating and released
credits of failed ones are not usage.
"""

from dataclasses import dataclass
from datetime import date, timedelta

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from credits.models import LedgerEntry


@dataclass(frozen=True)
class DayUsage:
    day: date
    credits: int
    images: int
    height: int  # percent of the busiest day, for the chart


@dataclass(frozen=True)
class UsageSummary:
    days: list[DayUsage]
    by_member: list[dict]  # actor_id, actor__email, actor__name, credits, images
    by_model: list[dict]  # generation__provider_name, credits, images
    credits: int
    images: int


def usage_summary(org, *, days: int = 30, today: date | None = None) -> UsageSummary:
    today = today or timezone.localdate()
    first = today - timedelta(days=days - 1)
    captures = LedgerEntry.objects.filter(
        org=org, kind=LedgerEntry.Kind.CAPTURE, created_at__date__gte=first
    )
    totals = {"credits": Sum("amount"), "images": Count("id")}
    per_day = {
        row["day"]: row
        for row in captures.annotate(day=TruncDate("created_at")).values("day").annotate(**totals)
    }
    peak = max((row["credits"] for row in per_day.values()), default=0) or 1
    series = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = per_day.get(day, {"credits": 0, "images": 0})
        series.append(
            DayUsage(day, row["credits"], row["images"], round(100 * row["credits"] / peak))
        )
    by_member = list(
        captures.values("actor_id", "actor__email", "actor__name")
        .annotate(**totals)
        .order_by("-credits", "actor__email")
    )
    by_model = list(
        captures.values("generation__provider_name").annotate(**totals).order_by("-credits")
    )
    return UsageSummary(
        days=series,
        by_member=by_member,
        by_model=by_model,
        credits=sum(d.credits for d in series),
        images=sum(d.images for d in series),
    )
