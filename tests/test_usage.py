"""Credit usage (credits.usage) against hand-computed figures: per day, per member, per model, the
PRD §8 metrics beside the previous period, local days in a time zone that is not UTC, days of 23
and 25 hours, the cache of settled days, and the dashboard's ledger lines."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.utils import timezone

from credits import services as credits
from credits.models import LedgerEntry
from credits.usage import Period, Usage, period_days, recent_movements, usage_summary
from tests.usage_history import (
    LOCAL,
    SEEDREAM,
    at,
    generation,
    move,
    rival_spending,
    week_of_history,
)

pytestmark = pytest.mark.django_db

TODAY = date(2026, 3, 20)
NOW = at("Asia/Tokyo", TODAY, "15:00")


@pytest.fixture
def history(org, admin_membership, member_membership):
    return week_of_history(org, admin_membership, member_membership, TODAY)


@pytest.fixture
def week(org, history):
    """The last 7 days of the fixture, as the dashboard's 7-day period reads them."""
    return usage_summary(org, days=7, now=NOW)


def test_a_period_is_whole_local_days_ending_today_in_the_organizations_zone(org):
    org.time_zone = "Asia/Tokyo"
    # 20 March 23:30 UTC is already 21 March in Tokyo.
    period = Period.last_days(org, 7, now=datetime(2026, 3, 20, 23, 30, tzinfo=ZoneInfo("UTC")))

    assert (period.first, period.last) == (date(2026, 3, 15), date(2026, 3, 21))
    assert period.start == datetime(2026, 3, 14, 15, 0, tzinfo=ZoneInfo("UTC"))
    assert period.end == datetime(2026, 3, 21, 15, 0, tzinfo=ZoneInfo("UTC"))
    previous = period.previous()
    assert (previous.first, previous.last) == (date(2026, 3, 8), date(2026, 3, 14))


@pytest.mark.parametrize(
    ("given", "days"),
    [
        ("7", 7),
        ("30", 30),
        ("90", 90),
        (None, 30),
        ("", 30),
        ("8", 30),
        ("-7", 30),
        ("abc", 30),
        ("7.0", 30),
        ("1e9", 30),
    ],
)
def test_only_the_offered_periods_are_accepted(given, days):
    assert period_days(given) == days


def test_credits_per_day_count_captures_on_the_local_day_they_settled(week):
    by_day = {d.day: (d.credits, d.images, d.failed, d.generation_seconds) for d in week.days}

    assert list(by_day) == [TODAY - timedelta(days=n) for n in range(6, -1, -1)]
    assert by_day == {
        # G3 held at 00:10 local: 15:10 UTC the day before, yet this day here.
        date(2026, 3, 14): (3, 1, 1, 20.0),
        date(2026, 3, 15): (0, 0, 0, None),
        date(2026, 3, 16): (0, 0, 0, None),
        date(2026, 3, 17): (0, 0, 0, None),
        # G2 held at 23:30; its images settled at 00:30, on the next local day.
        date(2026, 3, 18): (0, 0, 0, 3600.0),
        date(2026, 3, 19): (3, 3, 1, None),
        date(2026, 3, 20): (9, 3, 0, 40.0),
    }
    assert [d.success_rate for d in week.days][::6] == [0.5, 1.0]


def test_usage_by_member(week, history):
    rows = [
        (
            r["actor__email"],
            r["credits"],
            r["images"],
            r["failed"],
            r["success_rate"],
            r["generation_seconds"],
        )
        for r in week.by_member
    ]
    assert rows == [
        ("ada@acme.test", 9, 3, 0, 1.0, 40.0),
        ("max@acme.test", 6, 4, 2, pytest.approx(4 / 6), (3600 + 20) / 2),
        # Kim's generation is still running: started, nothing settled, no time yet.
        ("kim@acme.test", 0, 0, 0, None, None),
    ]
    assert week.by_member[0]["actor_id"] == history.ada.user_id
    assert week.by_member[0]["actor__name"] == "Ada Admin"


def test_usage_by_model(week):
    rows = [
        (
            r["model"],
            r["credits"],
            r["images"],
            r["failed"],
            r["success_rate"],
            r["generation_seconds"],
        )
        for r in week.by_model
    ]
    assert rows == [
        (SEEDREAM, 12, 4, 1, 0.8, 30.0),
        (LOCAL, 3, 3, 1, 0.75, 3600.0),
    ]


def test_the_prd_metrics_and_the_previous_week(week):
    figures = {c.key: (c.current, c.previous) for c in week.metrics.comparisons}

    assert figures == {
        "credits": (15, 15),
        "images": (7, 5),
        "success_rate": (pytest.approx(7 / 9), pytest.approx(5 / 7)),
        "generation_time": (1220.0, 45.0),
        "active_members": (3, 2),
        "credits_per_member_week": (5.0, 7.5),
    }
    assert (week.credits, week.images) == (15, 7)


def test_changes_are_points_for_rates_and_percent_otherwise(week):
    change = {c.key: c.change for c in week.metrics.comparisons}

    assert change["credits"] == 0
    assert change["images"] == pytest.approx(40.0)
    assert change["success_rate"] == pytest.approx((7 / 9 - 5 / 7) * 100)
    assert change["active_members"] == pytest.approx(50.0)
    assert change["credits_per_member_week"] == pytest.approx(-100 / 3)


def test_weekly_active_members_are_those_who_started_in_the_periods_last_seven_days(org, history):
    # 30 days: the window is d6 … d0, so Max (G3 on d6, G2 on d2) counts, and in the
    # previous 30 days (d59 … d30) nobody started anything.
    thirty = usage_summary(org, days=30, now=NOW).metrics
    assert (thirty.current.active_members, thirty.previous.active_members) == (3, 0)
    # Ending two days earlier, the window is d8 … d2: Ada's G4 (d7), Max's G3 (d6) and G2 (d2);
    # Kim's G7 (d0) is after it and Max's G5 (d10) before it.
    earlier = usage_summary(org, days=30, now=NOW - timedelta(days=2)).metrics
    assert earlier.current.active_members == 2


def test_credits_per_member_week_counts_members_who_had_joined_by_the_periods_end(org, history):
    metrics = usage_summary(org, days=30, now=NOW).metrics
    # 30 days: 15 + 15 credits, 3 members, 30/7 weeks.
    assert metrics.current.credits_per_member_week == pytest.approx(30 / 3 / (30 / 7))
    # The previous 30 days spent nothing; Ada and Max were members.
    assert (metrics.previous.members, metrics.previous.credits_per_member_week) == (2, 0)


def test_without_usage_every_figure_is_empty_not_zero_divided(org, admin_membership):
    usage = usage_summary(org, days=7, now=NOW)

    assert [d.credits for d in usage.days] == [0] * 7
    assert usage.by_member == [] and usage.by_model == []
    figures = {c.key: (c.current, c.previous, c.change) for c in usage.metrics.comparisons}
    assert figures["success_rate"] == (None, None, None)
    assert figures["generation_time"] == (None, None, None)
    assert figures["credits"] == (0, 0, None)


def test_another_organizations_spending_is_never_counted(org, history, other_admin_membership):
    rival_spending(other_admin_membership, TODAY)
    usage = usage_summary(org, days=7, now=NOW)

    assert "Rival model" not in {r["model"] for r in usage.by_model}
    assert usage.credits == 15
    assert other_admin_membership.user_id not in {r["actor_id"] for r in usage.by_member}


def test_a_deleted_members_usage_stays_as_a_removed_member(org, history):
    history.max.user.delete()
    rows = {r["actor__email"]: r["credits"] for r in usage_summary(org, days=7, now=NOW).by_member}

    assert rows == {"ada@acme.test": 9, None: 6, "kim@acme.test": 0}


# --- Daylight saving: 23- and 25-hour days -------------------------------------------------------


def captured_at(membership, moments):
    """One generation whose images arrive at `moments`, 1 credit each."""
    generation(
        membership,
        held_at=moments[0] - timedelta(minutes=5),
        images="d" * len(moments),
        cost=1,
        settled_at=list(moments),
    )


@pytest.mark.parametrize(
    ("zone", "switch", "on_the_day", "next_day"),
    [
        # US spring forward, 8 March 2026: 02:00 EST becomes 03:00 EDT, a 23-hour day.
        ("America/New_York", date(2026, 3, 8), ["00:30", "03:30", "23:30"], ["00:15"]),
        # EU spring forward, 29 March 2026: 02:00 CET becomes 03:00 CEST.
        ("Europe/Berlin", date(2026, 3, 29), ["01:30", "03:30", "23:59"], ["00:01"]),
        # US fall back, 1 November 2026: 01:00–02:00 happens twice, a 25-hour day.
        ("America/New_York", date(2026, 11, 1), ["00:30", "01:30", "01:30+", "23:30"], ["00:30"]),
        # EU fall back, 25 October 2026.
        ("Europe/Berlin", date(2026, 10, 25), ["02:30", "02:30+", "23:30"], ["00:30"]),
    ],
)
def test_days_of_23_and_25_hours_count_their_own_entries(
    org, admin_membership, zone, switch, on_the_day, next_day
):
    org.time_zone = zone
    org.save(update_fields=["time_zone"])
    credits.top_up(org=org, amount=100)

    def moment(day, clock):
        return at(zone, day, clock.rstrip("+"), fold=int(clock.endswith("+")))

    day_before, day_after = switch - timedelta(days=1), switch + timedelta(days=1)
    captured_at(admin_membership, [moment(day_before, "23:59")])
    captured_at(admin_membership, [moment(switch, c) for c in on_the_day])
    captured_at(admin_membership, [moment(day_after, c) for c in next_day])

    three_days = Period(day_before, day_after, ZoneInfo(zone))
    utc = ZoneInfo("UTC")  # aware times in one zone subtract as wall clocks: compare in UTC
    hours = (three_days.end.astimezone(utc) - three_days.start.astimezone(utc)) / timedelta(hours=1)
    assert hours == 72 + (1 if switch.month in (10, 11) else -1)
    usage = Usage(org, three_days)
    assert [(d.day, d.credits) for d in usage.days] == [
        (day_before, 1),
        (switch, len(on_the_day)),
        (day_after, len(next_day)),
    ]
    # The switch day alone: its own entries, none of its neighbours'.
    assert Usage(org, Period(switch, switch, ZoneInfo(zone))).credits == len(on_the_day)


# --- Settled days come from the cache; today never does ----------------------------------------


def test_todays_spending_shows_at_once_while_settled_days_are_read_once(
    org, admin_membership, django_assert_num_queries
):
    credits.top_up(org=org, amount=1000)
    now = timezone.now()
    old = generation(admin_membership, held_at=now - timedelta(days=20), images="dd")
    usage = usage_summary(org, days=30)
    assert usage.days[-21].credits == 6 and usage.days[-1].credits == 0

    generation(admin_membership, held_at=now - timedelta(minutes=2), images="d")
    with django_assert_num_queries(2):  # the days not settled yet, and their generations
        days = usage_summary(org, days=30).days
    assert (days[-21].credits, days[-1].credits) == (6, 3)
    # A settled day is not read again: a change behind the ledger's back is not seen.
    LedgerEntry.objects.filter(generation=old).delete()
    assert usage_summary(org, days=30).days[-21].credits == 6


def test_a_new_time_zone_regroups_the_days(org, admin_membership):
    credits.top_up(org=org, amount=100)
    # 22:00 UTC on 10 March: the 10th in UTC, the 11th in Tokyo.
    moment = datetime(2026, 3, 10, 22, 0, tzinfo=ZoneInfo("UTC"))
    generation(admin_membership, held_at=moment, images="d", cost=5)
    when = datetime(2026, 3, 15, 12, 0, tzinfo=ZoneInfo("UTC"))

    in_utc = {d.day: d.credits for d in usage_summary(org, days=7, now=when).days}
    org.time_zone = "Asia/Tokyo"
    in_tokyo = {d.day: d.credits for d in usage_summary(org, days=7, now=when).days}

    assert (in_utc[date(2026, 3, 10)], in_utc[date(2026, 3, 11)]) == (5, 0)
    assert (in_tokyo[date(2026, 3, 10)], in_tokyo[date(2026, 3, 11)]) == (0, 5)


# --- Recent credit movements: a generation on one line -------------------------------------------


def test_a_generations_hold_captures_and_releases_are_one_line(org, admin_membership):
    zone, day = "UTC", date(2026, 3, 2)
    move(credits.top_up(org=org, amount=100, note="Order 7"), at(zone, day, "09:00"))
    # 4 images at 3 credits: 2 arrived, 1 failed, 1 still running.
    running = generation(
        admin_membership,
        held_at=at(zone, day, "10:00"),
        images="dfd",
        count=4,
        settled_at=[at(zone, day, t) for t in ("10:01", "10:02", "10:03")],
    )
    move(credits.top_up(org=org, amount=50), at(zone, day, "11:00"))

    lines = recent_movements(org)

    assert [line.kind for line in lines] == ["topup", "hold", "topup"]
    line = lines[1]
    assert line.generation == running and line.at == at(zone, day, "10:03")
    assert (line.held, line.spent, line.refunded, line.holding) == (12, 6, 3, 3)
    assert (line.done, line.failed, line.delta) == (2, 1, -9)
    assert line.balance_after == 100 - 12 + 3
    assert lines[0].balance_after == 100 - 12 + 3 + 50
    topup = lines[2]
    assert (topup.delta, topup.note, topup.balance_after, topup.is_generation) == (
        100,
        "Order 7",
        100,
        False,
    )


def test_the_newest_lines_are_found_however_entries_interleave(org, admin_membership, settings):
    settings.NERSTUDIO_MAX_IMAGES_PER_GENERATION = 3
    zone, day = "UTC", date(2026, 3, 2)
    move(credits.top_up(org=org, amount=100), at(zone, day, "08:00"))
    # Three generations started one after another whose images settle late, interleaved.
    made = [
        generation(
            admin_membership,
            held_at=at(zone, day, f"09:0{n}"),
            images="ddd",
            cost=1,
            settled_at=[at(zone, day, f"1{i}:0{n}") for i in range(3)],
        )
        for n in range(3)
    ]

    lines = recent_movements(org, lines=3)

    assert [line.generation for line in lines] == made[::-1]
    assert all((line.spent, line.done, line.delta) == (3, 3, -3) for line in lines)


def test_recent_movements_take_two_queries_however_long_the_history(
    org, admin_membership, django_assert_num_queries
):
    credits.top_up(org=org, amount=1000)
    for _ in range(settings.NERSTUDIO_MAX_IMAGES_PER_GENERATION):
        generation(admin_membership, held_at=timezone.now(), images="dfd", cost=1)
    with django_assert_num_queries(2):
        assert len(recent_movements(org)) == 5


def test_a_membership_from_another_organization_never_appears_in_lines(
    org, admin_membership, other_admin_membership
):
    credits.top_up(org=other_admin_membership.org, amount=100)
    generation(other_admin_membership, held_at=timezone.now(), images="d")
    assert recent_movements(org) == []
