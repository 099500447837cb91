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
would compute a date for every entry the organization ever had. Each local day is summed once per
member and model, and a day that has settled is kept in the cache (see "Daily tallies"), so a
page reads a few recent days from the ledger whatever its period.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from functools import cached_property
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import Count, Q, QuerySet, Sum
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


# --- Daily tallies: each local day's ledger summed once; settled days kept in the cache ---------
#
# A 90-day dashboard beside the previous 90 days covers half a year of an organization's entries:
# summing them on every request is tens of thousands of rows at 100,000 images a year, however
# well indexed (bench/dashboard.py). But a local day's entries never change once it has ended: the
# ledger is append-only and every entry is stamped when it is written. Only the generation time
# can still move while a generation held that day runs on, and a generation finishes within
# minutes (NERSTUDIO_IMAGE_DEADLINE_SECONDS; stalled ones are swept). So a day that ended
# SETTLED_AFTER ago is summed once and its sums kept in the cache, by organization, time zone and
# month; each request sums the newer days (and any the cache lost) from the ledger, and adds up a
# few dozen sums a day for the rest. Names are not cached: they are read each time.

SETTLED_AFTER = timedelta(hours=12)
CACHE_SECONDS = 60 * 60 * 24 * 45
CACHE_PREFIX = "usage-days:1"
GENERATIONS_PER_QUERY = 5_000


class Tally:
    """Figures that add up: spent credits, arrived and failed images, generations started, and of
    those the finished ones with their summed generation time."""

    __slots__ = ("credits", "failed", "images", "seconds", "started", "timed")

    def __init__(self, credits=0, images=0, failed=0, started=0, timed=0, seconds=0.0):
        self.credits, self.images, self.failed = credits, images, failed
        self.started, self.timed, self.seconds = started, timed, seconds

    def add(self, other: "Tally") -> "Tally":
        self.credits += other.credits
        self.images += other.images
        self.failed += other.failed
        self.started += other.started
        self.timed += other.timed
        self.seconds += other.seconds
        return self

    def freeze(self) -> tuple:
        return (self.credits, self.images, self.failed, self.started, self.timed, self.seconds)

    @property
    def success_rate(self) -> float | None:
        return success_rate(self.images, self.failed)

    @property
    def generation_seconds(self) -> float | None:
        """The average generation time of the finished generations started."""
        return self.seconds / self.timed if self.timed else None

    def row(self, **names: Any) -> dict:
        """A breakdown's row: `names` and the figures."""
        return names | {
            "credits": self.credits,
            "images": self.images,
            "failed": self.failed,
            "success_rate": self.success_rate,
            "generation_seconds": self.generation_seconds,
        }


@dataclass
class DayTally:
    """One local day: its total, by member (user id; None once deleted), by model (the name it
    had when generating) and who started a generation."""

    total: Tally
    members: dict[int | None, Tally]
    models: dict[str | None, Tally]
    starters: set[int]

    @classmethod
    def empty(cls) -> "DayTally":
        return cls(Tally(), {}, {}, set())

    def freeze(self) -> tuple:
        """As cached: plain tuples."""
        return (
            self.total.freeze(),
            {k: t.freeze() for k, t in self.members.items()},
            {k: t.freeze() for k, t in self.models.items()},
            tuple(self.starters),
        )

    @classmethod
    def thaw(cls, value: tuple) -> "DayTally":
        total, members, models, starters = value
        return cls(
            Tally(*total),
            {k: Tally(*t) for k, t in members.items()},
            {k: Tally(*t) for k, t in models.items()},
            set(starters),
        )


def success_rate(done: int, failed: int) -> float | None:
    """Done images ÷ finished images; None when none finished."""
    return done / (done + failed) if done + failed else None


def _cache_key(org: Organization, zone: tzinfo, month: date) -> str:
    return f"{CACHE_PREFIX}:{org.pk}:{zone}:{month:%Y-%m}"


def daily_tallies(org: Organization, days: list[date], zone: tzinfo) -> dict[date, DayTally]:
    """Each of `days` (local days in `zone`): settled ones from the cache when it has them, the
    others summed from the ledger together, from the first of them to the last (_sum_days).
    The cache keeps a month's settled days under one key: a 90-day page reads four or five."""
    settled_before = timezone.now() - SETTLED_AFTER

    def settled(day: date) -> bool:
        return midnight(day + timedelta(days=1), zone) <= settled_before

    keys = {
        day.replace(day=1): _cache_key(org, zone, day.replace(day=1))
        for day in days
        if settled(day)
    }
    found = cache.get_many(list(keys.values())) if keys else {}
    months: dict[date, dict[date, tuple]] = {m: found.get(key, {}) for m, key in keys.items()}
    tallies = {}
    for day in days:
        frozen = months.get(day.replace(day=1), {}).get(day)
        if frozen is not None:
            tallies[day] = DayTally.thaw(frozen)
    missing = [day for day in days if day not in tallies]
    if missing:
        summed = _sum_days(org, Period(min(missing), max(missing), zone))
        changed = set()
        for day in missing:
            tallies[day] = summed.get(day) or DayTally.empty()
            if settled(day):
                months[day.replace(day=1)][day] = tallies[day].freeze()
                changed.add(day.replace(day=1))
        if changed:
            cache.set_many({keys[m]: months[m] for m in changed}, CACHE_SECONDS)
    return tallies


def _sum_days(org: Organization, period: Period) -> dict[date, DayTally]:
    """The period's holds, captures and releases summed per local day, member and model, in two
    queries: the ledger summed per day, member and generation (a range scan of its
    (org, created_at) index, no join), then those generations' model names and times by primary
    key. Joined in SQL instead, PostgreSQL hashes every generation the organization ever had to
    match the few hundred of a recent day (bench/dashboard.py)."""
    rows = list(
        period.entries(org)
        .annotate(day=TruncDate("created_at", tzinfo=period.zone))
        .values("day", "actor_id", "generation_id")
        .annotate(
            credits=Coalesce(Sum("amount", filter=CAPTURED), 0),
            images=Count("pk", filter=CAPTURED),
            failed=Count("pk", filter=RELEASED),
            started=Count("pk", filter=Q(kind=Kind.HOLD)),
        )
        .order_by()
    )
    ids = sorted({row["generation_id"] for row in rows} - {None})
    generations: dict[int, tuple[str, float | None]] = {}
    model = LedgerEntry._meta.get_field("generation").related_model
    for chunk in range(0, len(ids), GENERATIONS_PER_QUERY):  # SQLite caps a query's parameters
        found = model._default_manager.filter(pk__in=ids[chunk : chunk + GENERATIONS_PER_QUERY])
        for pk, name, created, finished in found.values_list(
            "pk", "provider_name", "created_at", "finished_at"
        ):
            generations[pk] = (name, (finished - created).total_seconds() if finished else None)
    days: dict[date, DayTally] = {}
    for row in rows:
        name, seconds = generations.get(row["generation_id"], (None, None))
        timed = row["started"] if seconds is not None else 0  # a hold, of a finished generation
        tally = Tally(
            row["credits"],
            row["images"],
            row["failed"],
            row["started"],
            timed,
            seconds * timed if seconds is not None else 0.0,
        )
        day = days.setdefault(row["day"], DayTally.empty())
        day.total.add(tally)
        day.members.setdefault(row["actor_id"], Tally()).add(tally)
        day.models.setdefault(name, Tally()).add(tally)
        if row["started"] and row["actor_id"] is not None:
            day.starters.add(row["actor_id"])
    return days


# --- Breakdowns: per day, per member, per model -------------------------------------------------


@dataclass(frozen=True)
class DayUsage:
    day: date
    credits: int
    images: int
    failed: int
    success_rate: float | None
    generation_seconds: float | None


class Usage:
    """An organization's usage in a period, read from the daily tallies: one ledger query for
    the days not settled yet (and any the cache lacks), whichever parts are read. The metrics
    also read the previous period and count the members."""

    def __init__(self, org: Organization, period: Period):
        self.org, self.period = org, period
        self._tallies: dict[date, DayTally] = {}

    def tallies(self, period: Period) -> list[tuple[date, DayTally]]:
        """Each day of `period`, oldest first, read once per Usage."""
        needed = [day for day in period.dates() if day not in self._tallies]
        if needed:
            self._tallies |= daily_tallies(self.org, needed, period.zone)
        return [(day, self._tallies[day]) for day in period.dates()]

    @cached_property
    def days(self) -> list[DayUsage]:
        """Every day of the period, those without usage too."""
        return [
            DayUsage(
                day,
                t.total.credits,
                t.total.images,
                t.total.failed,
                t.total.success_rate,
                t.total.generation_seconds,
            )
            for day, t in self.tallies(self.period)
        ]

    @cached_property
    def by_member(self) -> list[dict]:
        """Rows of actor_id, actor__email, actor__name, credits, images, failed, success_rate,
        generation_seconds: most credits first. A deleted member's usage has actor_id None."""
        summed: dict[int | None, Tally] = {}
        for _, day in self.tallies(self.period):
            for actor, tally in day.members.items():
                summed.setdefault(actor, Tally()).add(tally)
        ids = [actor for actor in summed if actor is not None]
        people = (
            {
                pk: (email, name)
                for pk, email, name in get_user_model()
                .objects.filter(pk__in=ids)
                .values_list("pk", "email", "name")
            }
            if ids
            else {}
        )
        merged: dict[int | None, Tally] = {}
        for actor, tally in summed.items():
            merged.setdefault(actor if actor in people else None, Tally()).add(tally)
        rows = [
            tally.row(
                actor_id=actor,
                actor__email=people[actor][0] if actor is not None else None,
                actor__name=people[actor][1] if actor is not None else None,
            )
            for actor, tally in merged.items()
        ]
        rows.sort(key=lambda r: (-r["credits"], r["actor_id"] is None, r["actor__email"] or ""))
        return rows

    @cached_property
    def by_model(self) -> list[dict]:
        """Rows of model (the name it had when generating), credits, images, failed, success_rate,
        generation_seconds: most credits first."""
        summed: dict[str | None, Tally] = {}
        for _, day in self.tallies(self.period):
            for model, tally in day.models.items():
                summed.setdefault(model, Tally()).add(tally)
        rows = [tally.row(model=model) for model, tally in summed.items()]
        rows.sort(key=lambda r: (-r["credits"], r["model"] is None, r["model"] or ""))
        return rows

    @cached_property
    def metrics(self) -> "Metrics":
        previous = self.period.previous()
        self.tallies(Period(previous.first, self.period.last, self.period.zone))  # one query
        members = Membership.objects.filter(org_id=self.org.pk).aggregate(
            now=Count("pk", filter=Q(joined_at__lt=self.period.end)),
            before=Count("pk", filter=Q(joined_at__lt=previous.end)),
        )
        return Metrics(
            self._figures(self.period, members["now"]), self._figures(previous, members["before"])
        )

    def _figures(self, period: Period, members: int) -> "Figures":
        total, active = Tally(), set()
        week = period.last_week().first
        for day, tally in self.tallies(period):
            total.add(tally.total)
            if day >= week:
                active |= tally.starters
        seconds = total.generation_seconds
        return Figures(
            period,
            total.credits,
            total.images,
            total.failed,
            None if seconds is None else timedelta(seconds=seconds),
            len(active),
            members,
        )

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


# What a line shows, and no more: not the generations' JSON fields nor the people's other
# columns, for up to lines × (images + 1) entries a page.
LINE_FIELDS = (
    "kind",
    "delta",
    "balance_after",
    "note",
    "created_at",
    "generation_id",
    "actor__email",
    "actor__name",
    "actor__is_superuser",
    "generation__public_id",
    "generation__prompt",
    "generation__count",
)


def recent_movements(org: Organization, *, lines: int = 5) -> list[LedgerLine]:
    """The organization's newest `lines` lines, newest first, in two queries. A generation has at
    most NERSTUDIO_MAX_IMAGES_PER_GENERATION + 1 entries, so the newest lines × that many entries
    hold the newest `lines` lines; each generation's totals are then summed over all its entries,
    however old."""
    window = lines * (settings.NERSTUDIO_MAX_IMAGES_PER_GENERATION + 1)
    entries = (
        LedgerEntry.objects.filter(org_id=org.pk)
        .select_related("actor", "generation")
        .only(*LINE_FIELDS)
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
