"""Ledger history at chosen moments, for the usage, dashboard and export tests.

Generations are held, captured and released through credits.services, as the pipeline does, and
then moved to the local times a test needs: `at(zone, day, "23:30")`.

`week_of_history` is the hand-computed fixture: an organization in Asia/Tokyo (UTC+9, so a local
day is not a UTC day) with a week of generations ending `today` and a week before it. Its figures,
worked out by hand, are in the docstring; the tests compare against those numbers, never against
what credits.usage computes another way.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from credits import services as credits
from credits.models import LedgerEntry
from generation.models import Generation, GenerationImage
from orgs.models import Membership
from tests.factories import GenerationFactory, MembershipFactory

SEEDREAM = "Seedream 4.5 Edit"
LOCAL = "Local renderer (offline)"


def at(zone: str, day: date, clock: str, *, fold: int = 0) -> datetime:
    """The aware moment `clock` ("23:30") of `day` in `zone`; fold=1 is the second 01:30 of a
    night when the clocks go back."""
    return datetime.combine(day, time.fromisoformat(clock), tzinfo=ZoneInfo(zone)).replace(
        fold=fold
    )


def move(entry: LedgerEntry, moment: datetime) -> None:
    LedgerEntry.objects.filter(pk=entry.pk).update(created_at=moment)


def generation(
    membership: Membership,
    *,
    held_at: datetime,
    images: str = "",
    count: int | None = None,
    model: str = SEEDREAM,
    cost: int = 3,
    settled_at: datetime | list[datetime] | None = None,
) -> Generation:
    """A generation by `membership` of `count` images (default: one per outcome), held at
    `held_at`, whose images then settle in order: "d" arrived (captured), "f" failed
    (released), at `settled_at` (one moment for all, or one per image; default 30 s after the
    hold). With fewer outcomes than images it is still running: not finished, no finishing
    time. A finished one finishes when its last image settles."""
    count = count or len(images)
    if not isinstance(settled_at, list):
        settled_at = [settled_at or held_at + timedelta(seconds=30)] * len(images)
    finished = len(images) == count
    made = GenerationFactory(
        org=membership.org,
        user=membership.user,
        provider_name=model,
        credit_cost=cost,
        count=count,
        status=Generation.Status.DONE if finished else Generation.Status.GENERATING,
        finished_at=max(settled_at) if finished else None,
    )
    Generation.objects.filter(pk=made.pk).update(created_at=held_at)
    move(credits.hold(generation=made), held_at)
    for index, (outcome, moment) in enumerate(zip(images, settled_at, strict=True)):
        image = GenerationImage.objects.create(generation=made, index=index)
        settle = credits.capture if outcome == "d" else credits.release
        move(settle(image=image), moment)
    made.refresh_from_db()
    return made


@dataclass
class History:
    ada: Membership
    max: Membership
    kim: Membership
    today: date
    zone: str = "Asia/Tokyo"

    def day(self, days_ago: int) -> date:
        return self.today - timedelta(days=days_ago)


def week_of_history(org, ada: Membership, max: Membership, today: date) -> History:
    """Organization in Asia/Tokyo; Ada and Max joined 60 days ago, Kim 4 days ago. Local times,
    d = today − n days. Current week: d6 … d0; previous week: d13 … d7.

        G1  Ada  Seedream ×3 @3  held d0 10:00, 3 arrived at 10:00:40            finished, 40 s
        G2  Max  Local    ×4 @1  held d2 23:30, 3 arrived + 1 failed d1 00:30     finished, 3600 s
        G3  Max  Seedream ×2 @3  held d6 00:10, 1 arrived + 1 failed 00:10:20     finished, 20 s
        G7  Kim  Local    ×2 @1  held d0 11:00, still running
        G4  Ada  Seedream ×4 @3  held d7 23:50, 4 arrived 23:51                   finished, 60 s
        G5  Max  Local    ×2 @1  held d10 12:00, 2 failed 12:00:30                finished, 30 s
        G6  Ada  Seedream ×1 @3  held d14 23:59:30, arrived d13 00:00:10           (hold too old)
        a top-up of 1,000 on d5 09:00 (never usage), and another organization's spending today.

    Current week: spent 9 + 3 + 3 = 15 credits on 7 images, 2 failed (success 7/9), average time
    (40 + 3600 + 20) / 3 = 1220 s, active Ada, Max, Kim = 3, members 3: 15 / 3 / 1 week = 5.
    Per day: d6 3 credits, 1 image, 1 failed, 20 s; d2 only G2's hold (3600 s, nothing spent);
    d1 3 credits, 3 images, 1 failed; d0 9 credits, 3 images, 40 s (G7 unfinished).
    Previous week: spent 12 (G4) + 3 (G6's capture) = 15 on 5 images, 2 failed (5/7), time
    (60 + 30) / 2 = 45 s (G6's hold is older), active Ada, Max = 2, members 2: 15 / 2 = 7.5.
    """
    zone = "Asia/Tokyo"
    org.time_zone = zone
    org.save(update_fields=["time_zone"])
    kim = MembershipFactory(org=org, user__email="kim@acme.test", user__name="Kim Kuro")
    days = {n: today - timedelta(days=n) for n in range(15)}
    Membership.objects.filter(pk__in=[ada.pk, max.pk]).update(
        joined_at=at(zone, today - timedelta(days=60), "09:00")
    )
    Membership.objects.filter(pk=kim.pk).update(joined_at=at(zone, days[4], "09:00"))
    move(
        credits.top_up(org=org, amount=1000, note='=HYPERLINK("http://x")'),
        at(zone, days[5], "09:00"),
    )
    g1 = at(zone, days[0], "10:00")
    generation(ada, held_at=g1, images="ddd", settled_at=g1 + timedelta(seconds=40))
    generation(
        max,
        held_at=at(zone, days[2], "23:30"),
        images="dddf",
        model=LOCAL,
        cost=1,
        settled_at=at(zone, days[1], "00:30"),
    )
    generation(
        max,
        held_at=at(zone, days[6], "00:10"),
        images="df",
        settled_at=at(zone, days[6], "00:10:20"),
    )
    generation(kim, held_at=at(zone, days[0], "11:00"), images="", count=2, model=LOCAL, cost=1)
    generation(
        ada,
        held_at=at(zone, days[7], "23:50"),
        images="dddd",
        settled_at=at(zone, days[7], "23:51"),
    )
    generation(max, held_at=at(zone, days[10], "12:00"), images="ff", model=LOCAL, cost=1)
    generation(
        ada,
        held_at=at(zone, days[14], "23:59:30"),
        images="d",
        settled_at=at(zone, days[13], "00:00:10"),
    )
    return History(ada, max, kim, today, zone)


def rival_spending(membership: Membership, today: date) -> None:
    """Another organization's spending at noon of its own days `today` − 0, 3 and 9: 2 images
    at 3 credits each time, on its own model."""
    credits.top_up(org=membership.org, amount=500)
    for n in (0, 3, 9):
        generation(
            membership,
            held_at=at(membership.org.time_zone, today - timedelta(days=n), "12:00"),
            images="dd",
            model="Rival model",
        )
