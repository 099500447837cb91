"""Dashboard and members page time as an organization's history grows (issue 11: flat, not
growing with the ledger).

Seeds one organization on PostgreSQL (time zone Europe/Berlin, so days are not UTC days) with a
year of generations and their ledger entries — 10,000 and then 100,000 images' worth: 4 images per
generation, 12 members, 3 image models, 5 % of images failed, a top-up each month — beside a
neighbouring organization with 10,000 images of its own. Then times, in-process (the Django test
client: middleware, view, queries and template, no network):

    dashboard 30 d   GET /  ?days=30: chart, breakdowns, PRD §8 metrics, recent movements
    dashboard 90 d   the same over 90 days (and the 90 before, for the comparison)
    members          the members page with each member's 30-day usage
    ledger CSV 30 d  the streamed ledger export of the last 30 days, read to its end
                     (informational: it grows with the period's entries, by design)
    90 d, cold cache the 90-day dashboard with the cache emptied before each request
                     (informational: what the first request after a restart pays)

    .venv/bin/python bench/dashboard.py     # needs PostgreSQL on 127.0.0.1:5432 (trust auth)
    DATABASE_URL=postgres://... BENCH_SIZES=10000 .venv/bin/python bench/dashboard.py

Goal (issue 11): p95 ≤ 50 ms at 100,000 images for both dashboards and the members page. The
figures are taken after three warming requests: settled days' sums are then in the cache
(credits.usage, "Daily tallies"), as they are for every request but the first of a day; the
first request after the cache is emptied sums every day of the period from the ledger once.
"""

import os
import random
import statistics
import sys
import time
from datetime import timedelta

from stack import describe_machine, recreate_database, setup_django

DATABASE = os.environ.get(
    "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/nerstudio_bench_dashboard"
)
SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "10000,100000").split(",")]
RUNS = int(os.environ.get("BENCH_RUNS", 40))
GOAL_MS = 50.0
PER_GENERATION = 4
HISTORY_DAYS = 365
NEIGHBOUR_IMAGES = 10_000


def seed(org, members, models, upto: int, start: int) -> None:
    """Add generations with their hold, captures and releases until the organization has `upto`
    images' worth, at random moments of the last HISTORY_DAYS days (the newest first, so the
    10,000 history is the most recent part of the 100,000 one)."""
    from django.db.models import Sum
    from django.utils import timezone

    from credits.models import CreditAccount, LedgerEntry
    from generation.models import Generation

    rng = random.Random(f"{org.pk}-{start}")
    now = timezone.now()
    # created_at is auto_now_add: let the seeded rows carry their own moments.
    stamps = [Generation._meta.get_field("created_at"), LedgerEntry._meta.get_field("created_at")]
    for field in stamps:
        field.auto_now_add = False
    try:
        made = start
        batch = 2_000  # generations per round trip
        while made < upto:
            count = min(batch, (upto - made) // PER_GENERATION)
            generations = []
            for _ in range(count):
                member, model = rng.choice(members), rng.choice(models)
                started = now - timedelta(seconds=rng.uniform(60, HISTORY_DAYS * 86_400))
                generations.append(
                    Generation(
                        org=org,
                        user=member.user,
                        provider=model,
                        provider_name=model.name,
                        credit_cost=model.credit_cost,
                        prompt="A mug on linen",
                        aspect_ratio="1:1",
                        count=PER_GENERATION,
                        status="done",
                        created_at=started,
                        finished_at=started + timedelta(seconds=rng.uniform(15, 120)),
                    )
                )
            Generation.objects.bulk_create(generations)
            entries = []
            for g in generations:
                total = g.count * g.credit_cost
                common = {
                    "org": org,
                    "actor_id": g.user_id,
                    "generation": g,
                    "provider_id": g.provider_id,
                    "balance_after": 0,  # not read by the pages measured
                }
                entries.append(
                    LedgerEntry(
                        kind="hold", delta=-total, amount=total, created_at=g.created_at, **common
                    )
                )
                span = (g.finished_at - g.created_at).total_seconds()
                for index in range(g.count):
                    failed = rng.random() < 0.05
                    entries.append(
                        LedgerEntry(
                            kind="release" if failed else "capture",
                            delta=g.credit_cost if failed else 0,
                            amount=g.credit_cost,
                            created_at=g.created_at
                            + timedelta(seconds=span * (index + 1) / g.count),
                            **common,
                        )
                    )
            LedgerEntry.objects.bulk_create(entries, batch_size=5_000)
            made += count * PER_GENERATION
        # A top-up each month, so the ledger has more than generations in it.
        for month in range(HISTORY_DAYS // 30 + 1):
            at = now - timedelta(days=30 * month, hours=1)
            LedgerEntry.objects.create(
                org=org,
                kind="topup",
                delta=10_000,
                amount=10_000,
                balance_after=0,
                created_at=at,
                note=f"Purchase order {start}-{month}",
            )
    finally:
        for field in stamps:
            field.auto_now_add = True
    balance = LedgerEntry.objects.filter(org=org).aggregate(total=Sum("delta"))["total"] or 0
    CreditAccount.objects.filter(org=org).update(balance=max(balance, 0))


def new_org(name: str, admin_email: str, members: int):
    from django.utils import timezone

    from accounts.models import User
    from orgs.models import Membership
    from workspace.services import create_organization

    admin_user = User.objects.create_user(email=admin_email, name=f"{name} Admin")
    org = create_organization(user=admin_user, name=name)
    admin = Membership.objects.get(user=admin_user)
    people = [admin] + [
        Membership.objects.create(
            org=org,
            user=User.objects.create_user(email=f"m{i}-{org.slug}@example.com", name=f"Member {i}"),
            role="member",
        )
        for i in range(members - 1)
    ]
    # Members of long standing, as in an organization with a year of history.
    Membership.objects.filter(org=org).update(joined_at=timezone.now() - timedelta(days=400))
    models = list(org.providers.filter(kind="image").order_by("priority")[:3])
    return org, people, models


def timed(
    client, url: str, params: dict, *, stream: bool = False, cold: bool = False
) -> list[float]:
    """Server times of RUNS requests after three warming ones; `cold` empties the cache before
    each (untimed), so every day of the period is summed from the ledger."""
    from django.core.cache import cache

    def get():
        response = client.get(url, params)
        assert response.status_code == 200, response.status_code
        if stream:
            b"".join(response.streaming_content)
        else:
            response.content  # noqa: B018 - rendered already; here for symmetry

    for _ in range(3):  # warm: connection, template cache
        get()
    times = []
    for _ in range(max(5, RUNS // 4) if cold else RUNS):
        if cold:
            cache.clear()
        started = time.perf_counter()
        get()
        times.append((time.perf_counter() - started) * 1000)
    return times


def report(label: str, times: list[float], goal: bool) -> bool:
    p50 = statistics.median(times)
    p95 = statistics.quantiles(times, n=20)[-1]
    verdict, met = "", p95 <= GOAL_MS
    if goal:
        verdict = f"goal p95 ≤ {GOAL_MS:.0f} ms at 100,000: {'MET' if met else 'MISSED'}"
    print(f"  {label:<16} p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   {verdict}", flush=True)
    return met or not goal


def main() -> None:
    print(describe_machine(), flush=True)
    recreate_database(DATABASE)
    setup_django(DATABASE)
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from credits.models import LedgerEntry

    call_command("migrate", verbosity=0)
    org, members, models = new_org("Bench Studio", "bench-admin@example.com", 12)
    org.time_zone = "Europe/Berlin"
    org.save(update_fields=["time_zone"])
    neighbour, their_members, their_models = new_org("Next Door", "next-admin@example.com", 4)
    seed(neighbour, their_members, their_models, NEIGHBOUR_IMAGES, 0)

    print(
        f"dashboard bench: {connection.vendor}, {RUNS} requests per figure, server time "
        f"in-process, history over {HISTORY_DAYS} days",
        flush=True,
    )
    today = timezone.localdate(timezone=org.zone)
    month = {"since": (today - timedelta(days=29)).isoformat(), "until": today.isoformat()}
    have, all_met = 0, True
    for size in SIZES:
        started = time.perf_counter()
        seed(org, members, models, size, have)
        have = size
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        entries = LedgerEntry.objects.filter(org=org).count()
        load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
        print(
            f"\n{size:,} images ({entries:,} ledger entries; seeded in "
            f"{time.perf_counter() - started:.0f} s; load average {load} on {os.cpu_count()} CPUs)",
            flush=True,
        )
        admin = Client(SERVER_NAME="127.0.0.1")
        admin.force_login(members[0].user)
        dashboard = reverse("workspace:dashboard")
        figures = [
            ("dashboard 30 d", dashboard, {"days": 30}, True, {}),
            ("dashboard 90 d", dashboard, {"days": 90}, True, {}),
            ("members", reverse("workspace:members"), {}, True, {}),
            ("ledger CSV 30 d", reverse("workspace:export-ledger"), month, False, {"stream": True}),
            ("90 d, cold cache", dashboard, {"days": 90}, False, {"cold": True}),
        ]
        for label, url, params, goal, options in figures:
            times = timed(admin, url, params, **options)
            all_met &= report(label, times, goal and size >= 100_000)
    if not all_met:
        sys.exit(1)


if __name__ == "__main__":
    main()
