"""Credit usage for admins (PRD §4.4, §4.5, §8): what was spent per day, per member and per model,
the product metrics beside the previous period, and the dashboard's recent credit movements.

Everything is read from the ledger, which records each image exactly once, in the same transaction
that finishes it: a capture is an image that arrived (its credits are spent), a release one that
failed or timed out (its credits went back). So "spent" is captured credits, "images" are captures,
and the success rate is captures ÷ (captures + releases), all by when the image settled. The
generation time is that of the generations started (held) in the period and finished since:
created_at → finished_at.

Days are the organization's (Organization.time_zone). A period is a run of whole local days, and
every query filters `created_at` between the aware datetimes of its first and last midnights, which
the ledger's (org, kind, created_at) index serves however long the history is; a `__date` lookup
would compute a date for every entry the organization ever had.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from functools import cached_property
from typing import Any

from django.conf import settings
from django.db.models import Avg, Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from credits.models import LedgerEntry
from orgs.models import Membership, Organization

PERIOD_CHOICES = (7, 30, 90)
DEFAULT_DAYS = 30
ACTIVE_WINDOW_DAYS = 7  # "weekly active": started a generation in the period's last 7 days

Kind = LedgerEntry.Kind
CAPTURED = Q(kind=Kind.CAPTURE)
RELEASED = Q(kind=Kind.RELEASE)
TIMED = Q(kind=Kind.HOLD, generation__finished_at__isnull=False)
DURATION = F("generation__finished_at") - F("generation__created_at")


def period_days(value: Any) -> int:
    """The dashboard's `?days=`: one of PERIOD_CHOICES, anything else is the default."""
    try:
        days = int(value)
    except (TypeError, ValueError):
        return DEFAULT_DAYS
    return days if days in PERIOD_CHOICES else DEFAULT_DAYS


def midnight(day: date, zone: tzinfo) -> datetime:
    """The first moment of `day` in `zone`, aware. A 23- or 25-hour day (daylight saving) is
    still one day: its midnights come from the zone's rules, not from a fixed offset."""
    return datetime.combine(day, time.min, tzinfo=zone)


@dataclass(frozen=True)
class Period:
    """Whole local days, first to last inclusive."""

    first: date
    last: date
    zone: tzinfo

    @classmethod
    def last_days(cls, org: Organization, days: int, *, now: datetime | None = None) -> "Period":
        """The `days` days ending today in the organization's time zone."""
        today = timezone.localtime(now or timezone.now(), org.zone).date()
        return cls(today - timedelta(days=days - 1), today, org.zone)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def weeks(self) -> float:
        return self.days / 7

    @property
    def start(self) -> datetime:
        return midnight(self.first, self.zone)

    @property
    def end(self) -> datetime:
        """The first moment after the period."""
        return midnight(self.last + timedelta(days=1), self.zone)

    def previous(self) -> "Period":
        """The period of the same length just before this one."""
        return Period(
            self.first - timedelta(days=self.days), self.first - timedelta(days=1), self.zone
        )

    def last_week(self) -> "Period":
        return Period(self.last - timedelta(days=ACTIVE_WINDOW_DAYS - 1), self.last, self.zone)

    def dates(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range(self.days)]

    def entries(self, org: Organization) -> QuerySet[LedgerEntry]:
        """The organization's holds, captures and releases in this period (the index's range)."""
        return LedgerEntry.objects.filter(
            org_id=org.pk,
            kind__in=(Kind.HOLD, Kind.CAPTURE, Kind.RELEASE),
            created_at__gte=self.start,
            created_at__lt=self.end,
        )


# --- Breakdowns: per day, per member, per model -------------------------------------------------

TOTALS = {
    "credits": Coalesce(Sum("amount", filter=CAPTURED), 0),
    "images": Count("pk", filter=CAPTURED),
    "failed": Count("pk", filter=RELEASED),
    "generation_time": Avg(DURATION, filter=TIMED),
}


def success_rate(done: int, failed: int) -> float | None:
    """Done images ÷ finished images; None when none finished."""
    return done / (done + failed) if done + failed else None


def _finish(row: dict) -> dict:
    row["success_rate"] = success_rate(row["images"], row["failed"])
    duration = row["generation_time"]
    row["generation_seconds"] = duration.total_seconds() if duration is not None else None
    return row


@dataclass(frozen=True)
class DayUsage:
    day: date
    credits: int
    images: int
    failed: int
    success_rate: float | None
    generation_seconds: float | None


class Usage:
    """An organization's usage in a period. Each part is one query, run when first read, so the
    members page (by_member only) pays for one and the dashboard for all."""

    def __init__(self, org: Organization, period: Period):
        self.org, self.period = org, period

    @cached_property
    def days(self) -> list[DayUsage]:
        """Every day of the period, those without usage too."""
        rows = {
            row["day"]: _finish(row)
            for row in self.period.entries(self.org)
            .annotate(day=TruncDate("created_at", tzinfo=self.period.zone))
            .values("day")
            .annotate(**TOTALS)
            .order_by()
        }
        empty = {"credits": 0, "images": 0, "failed": 0, "generation_seconds": None}
        series = []
        for day in self.period.dates():
            row = rows.get(day, empty)
            series.append(
                DayUsage(
                    day,
                    row["credits"],
                    row["images"],
                    row["failed"],
                    success_rate(row["images"], row["failed"]),
                    row["generation_seconds"],
                )
            )
        return series

    @cached_property
    def by_member(self) -> list[dict]:
        """Rows of actor_id, actor__email, actor__name, credits, images, failed, success_rate,
        generation_seconds: most credits first. A removed member's usage has actor_id None."""
        rows = (
            self.period.entries(self.org)
            .values("actor_id", "actor__email", "actor__name")
            .annotate(**TOTALS)
            .order_by("-credits", "actor__email")
        )
        return [_finish(row) for row in rows]

    @cached_property
    def by_model(self) -> list[dict]:
        """Rows of model (the name it had when generating), credits, images, failed, success_rate,
        generation_seconds: most credits first."""
        rows = (
            self.period.entries(self.org)
            .values(model=F("generation__provider_name"))
            .annotate(**TOTALS)
            .order_by("-credits", "model")
        )
        return [_finish(row) for row in rows]

    @cached_property
    def metrics(self) -> "Metrics":
        return _metrics(self.org, self.period)

    @property
    def credits(self) -> int:
        return self.metrics.current.credits

    @property
    def images(self) -> int:
        return self.metrics.current.images


def usage_summary(
    org: Organization, *, days: int = DEFAULT_DAYS, now: datetime | None = None
) -> Usage:
    """The last `days` days of the organization's usage, today included."""
    return Usage(org, Period.last_days(org, days, now=now))


# --- PRD §8 metrics, beside the previous period -------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """One period's numbers."""

    period: Period
    credits: int  # spent: captured
    images: int  # arrived
    failed: int
    generation_time: timedelta | None  # average, generations started in the period
    active_members: int  # started a generation in the period's last 7 days
    members: int  # memberships that had begun by the period's end

    @property
    def success_rate(self) -> float | None:
        return success_rate(self.images, self.failed)

    @property
    def generation_seconds(self) -> float | None:
        return None if self.generation_time is None else self.generation_time.total_seconds()

    @property
    def credits_per_member_week(self) -> float | None:
        """Spent ÷ members ÷ weeks."""
        return self.credits / self.members / self.period.weeks if self.members else None


@dataclass(frozen=True)
class Comparison:
    """A metric now and in the previous period. `unit` says how to show it: "credits",
    "count", "percent" (a 0..1 rate) or "seconds"."""

    key: str
    label: str
    current: float | None
    previous: float | None
    unit: str
    help: str = ""

    @property
    def change(self) -> float | None:
        """Percentage points for a rate, otherwise the relative change in percent; None without
        a previous figure to compare with."""
        if self.current is None or self.previous is None:
            return None
        if self.unit == "percent":
            return (self.current - self.previous) * 100
        if self.previous == 0:
            return None
        return (self.current - self.previous) / self.previous * 100


@dataclass(frozen=True)
class Metrics:
    current: Figures
    previous: Figures

    @property
    def comparisons(self) -> list[Comparison]:
        now, before = self.current, self.previous
        return [
            Comparison("credits", "Credits spent", now.credits, before.credits, "credits"),
            Comparison("images", "Images delivered", now.images, before.images, "count"),
            Comparison(
                "success_rate",
                "Generation success rate",
                now.success_rate,
                before.success_rate,
                "percent",
                "Images that arrived ÷ images that finished (arrived or failed).",
            ),
            Comparison(
                "generation_time",
                "Average generation time",
                now.generation_seconds,
                before.generation_seconds,
                "seconds",
                "From starting a generation to its last image, for generations started in the "
                "period that have finished.",
            ),
            Comparison(
                "active_members",
                "Weekly active members",
                now.active_members,
                before.active_members,
                "count",
                "Members who started a generation in the last 7 days of the period.",
            ),
            Comparison(
                "credits_per_member_week",
                "Credits per member per week",
                now.credits_per_member_week,
                before.credits_per_member_week,
                "credits",
                "Credits spent ÷ members ÷ weeks in the period.",
            ),
        ]


def _metrics(org: Organization, period: Period) -> Metrics:
    """Both periods in two queries: the ledger from the previous period's start to this one's
    end, with each figure filtered to its period, and the membership counts."""
    previous = period.previous()
    windows = {"now": period, "before": previous}
    active = {"now": period.last_week(), "before": previous.last_week()}
    aggregates: dict[str, Any] = {}
    for name, p in windows.items():
        inside = Q(created_at__gte=p.start, created_at__lt=p.end)
        week = Q(created_at__gte=active[name].start, created_at__lt=active[name].end)
        aggregates |= {
            f"{name}_credits": Coalesce(Sum("amount", filter=CAPTURED & inside), 0),
            f"{name}_images": Count("pk", filter=CAPTURED & inside),
            f"{name}_failed": Count("pk", filter=RELEASED & inside),
            f"{name}_time": Avg(DURATION, filter=TIMED & inside),
            f"{name}_active": Count("actor_id", distinct=True, filter=Q(kind=Kind.HOLD) & week),
        }
    span = Period(previous.first, period.last, period.zone)
    totals = span.entries(org).aggregate(**aggregates)
    members = Membership.objects.filter(org_id=org.pk).aggregate(
        now=Count("pk", filter=Q(joined_at__lt=period.end)),
        before=Count("pk", filter=Q(joined_at__lt=previous.end)),
    )

    def figures(name: str, p: Period) -> Figures:
        return Figures(
            p,
            totals[f"{name}_credits"],
            totals[f"{name}_images"],
            totals[f"{name}_failed"],
            totals[f"{name}_time"],
            totals[f"{name}_active"],
            members[name],
        )

    return Metrics(figures("now", period), figures("before", previous))


# --- Recent credit movements, a generation per line ---------------------------------------------


@dataclass
class LedgerLine:
    """A line of the dashboard's recent movements: a top-up or an adjustment as it is, or a
    generation's hold with all its captures and releases."""

    at: datetime  # the line's latest movement
    kind: str  # a LedgerEntry.Kind; "hold" for a generation's line
    delta: int  # the balance change of the whole line
    balance_after: int  # after the line's latest movement
    actor: Any = None
    note: str = ""
    generation: Any = None
    held: int = 0
    spent: int = 0
    refunded: int = 0
    done: int = 0
    failed: int = 0

    @property
    def holding(self) -> int:
        """Credits still held for images not finished yet."""
        return self.held - self.spent - self.refunded

    @property
    def is_generation(self) -> bool:
        return self.generation is not None

    @property
    def label(self) -> str:
        return str(Kind(self.kind).label)


def recent_movements(org: Organization, *, lines: int = 5) -> list[LedgerLine]:
    """The organization's newest `lines` lines, newest first, in two queries. A generation has at
    most NERSTUDIO_MAX_IMAGES_PER_GENERATION + 1 entries, so the newest lines × that many entries
    hold the newest `lines` lines; each generation's totals are then summed over all its entries,
    however old."""
    window = lines * (settings.NERSTUDIO_MAX_IMAGES_PER_GENERATION + 1)
    entries = (
        LedgerEntry.objects.filter(org_id=org.pk)
        .select_related("actor", "generation")
        .order_by("-created_at", "-pk")[:window]
    )
    result: list[LedgerLine] = []
    by_generation: dict[int, LedgerLine] = {}
    for entry in entries:
        if entry.generation_id in by_generation or len(result) == lines:
            continue
        line = LedgerLine(
            at=entry.created_at,
            kind=entry.kind,
            delta=entry.delta,
            balance_after=entry.balance_after,
            actor=entry.actor,
            note=entry.note,
            generation=entry.generation,
        )
        if entry.generation_id is not None:
            line.kind = Kind.HOLD
            by_generation[entry.generation_id] = line
        result.append(line)
    if by_generation:
        _sum_generations(org, by_generation)
    return result


def _sum_generations(org: Organization, lines: dict[int, LedgerLine]) -> None:
    totals = (
        LedgerEntry.objects.filter(org_id=org.pk, generation_id__in=list(lines))
        .values("generation_id")
        .annotate(
            held=Coalesce(Sum("amount", filter=Q(kind=Kind.HOLD)), 0),
            spent=Coalesce(Sum("amount", filter=CAPTURED), 0),
            refunded=Coalesce(Sum("amount", filter=RELEASED), 0),
            done=Count("pk", filter=CAPTURED),
            failed=Count("pk", filter=RELEASED),
            delta=Sum("delta"),
        )
        .order_by()
    )
    for row in totals:
        line = lines[row["generation_id"]]
        for name in ("held", "spent", "refunded", "done", "failed", "delta"):
            setattr(line, name, row[name])
