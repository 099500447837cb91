"""Gallery page time as an organization's image count grows (issue 10: flat, not growing).

Seeds one organization on PostgreSQL with 10,000 and then 100,000 finished images (4 per
generation, 12 members, 3 image models, over 180 days, 5 % failed, some favourites and a
collection), then times the gallery view in-process (the Django test client: middleware, view,
queries and template, no network) for:

    first page       an admin, the organization's images, newest first
    deep page        the page after image 50,000 (or the middle at 10,000) via its keyset cursor
    filtered page    one model, one member, a date range
    member's page    a member's own images
    favourites       the admin's favourites
    collection       a shared collection of 300 images
    grouped          by generation
    text search      a word in 1 % of the prompts (informational: a scan, no index)

    .venv/bin/python bench/gallery.py       # needs PostgreSQL on 127.0.0.1:5432 (trust auth)
    DATABASE_URL=postgres://... .venv/bin/python bench/gallery.py

Goal (issue 10): p95 ≤ 50 ms at 100,000 images for the first, a deep and a filtered page.
"""

import os
import random
import statistics
import time
from datetime import timedelta

from stack import recreate_database, setup_django

DATABASE = os.environ.get(
    "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/nerstudio_bench_gallery"
)
SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "10000,100000").split(",")]
RUNS = int(os.environ.get("BENCH_RUNS", 40))
GOAL_MS = 50.0
PER_GENERATION = 4


def seed(org, members, models, upto: int, start: int) -> None:
    """Add generations and images until the organization has `upto` images."""
    from django.utils import timezone

    from generation.models import Generation, GenerationImage

    rng = random.Random(start)
    now = timezone.now()
    words = ["mug", "bottle", "sneaker", "watch", "lamp", "chair", "bag", "vase"]
    batch = 2_000  # generations per round trip
    made = start
    while made < upto:
        count = min(batch, (upto - made) // PER_GENERATION)
        generations = []
        for i in range(count):
            member, model = rng.choice(members), rng.choice(models)
            word = "aurora" if rng.random() < 0.01 else rng.choice(words)
            generations.append(
                Generation(
                    org=org,
                    user=member.user,
                    provider=model,
                    provider_name=model.name,
                    credit_cost=model.credit_cost,
                    prompt=f"A {word} on linen, number {made + i}",
                    aspect_ratio="1:1",
                    count=PER_GENERATION,
                    status="done",
                    finished_at=now - timedelta(minutes=made + i),
                )
            )
        Generation.objects.bulk_create(generations)
        images = []
        for generation in generations:
            for image in generation.new_images(PER_GENERATION):
                failed = rng.random() < 0.05
                image.status = "failed" if failed else "done"
                image.prompt = f"{generation.prompt}, variant {image.index + 1}"
                image.finished_at = generation.finished_at
                if not failed:
                    image.file = f"generated/{org.public_id}/{generation.pk}-{image.index}.png"
                    image.thumbnail = f"generated/{org.public_id}/thumbs/{generation.pk}.webp"
                    image.width = image.height = 1024
                images.append(image)
        GenerationImage.objects.bulk_create(images)
        made += count * PER_GENERATION


def mark(org, admin, upto_collection: int = 300) -> None:
    """Favourites (1 in 200 of the admin's view) and one collection of 300 images."""
    from gallery.models import Collection, CollectionItem, Favourite
    from generation.models import GenerationImage

    Favourite.objects.filter(user=admin.user).delete()
    Collection.objects.filter(org=org).delete()
    done = GenerationImage.objects.filter(org=org, status="done").order_by("pk")
    ids = list(done.values_list("pk", flat=True)[::200])
    Favourite.objects.bulk_create(Favourite(user=admin.user, image_id=i) for i in ids)
    board = Collection.objects.create(org=org, name="Spring campaign", created_by=admin.user)
    picked = list(done.values_list("pk", flat=True)[::97][:upto_collection])
    CollectionItem.objects.bulk_create(CollectionItem(collection=board, image_id=i) for i in picked)


def timed(client, url: str, params: dict) -> list[float]:
    for _ in range(3):  # warm: connection, template cache
        assert client.get(url, params).status_code == 200
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        response = client.get(url, params)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    return times


def report(label: str, times: list[float], goal: bool) -> None:
    p50 = statistics.median(times)
    p95 = statistics.quantiles(times, n=20)[-1]
    verdict = ""
    if goal:
        verdict = f"goal p95 ≤ {GOAL_MS:.0f} ms: {'met' if p95 <= GOAL_MS else 'MISSED'}"
    print(f"  {label:<16} p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   {verdict}")


def main() -> None:
    recreate_database(DATABASE)
    setup_django(DATABASE)
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    call_command("migrate", verbosity=0)
    from accounts.models import User
    from gallery.models import Collection
    from gallery.search import Cursor, GalleryQuery, cursor_of, find_images
    from generation.models import GenerationImage
    from orgs.models import Membership
    from workspace.services import create_organization

    admin_user = User.objects.create_user(email="bench-admin@example.com", name="Bench Admin")
    org = create_organization(user=admin_user, name="Bench Studio")
    admin = Membership.objects.get(user=admin_user)
    members = [admin] + [
        Membership.objects.create(
            org=org,
            user=User.objects.create_user(email=f"m{i}@example.com", name=f"Member {i}"),
            role="member",
        )
        for i in range(11)
    ]
    models = list(org.providers.filter(kind="image").order_by("priority")[:3])
    url = reverse("gallery:index")
    print(f"gallery bench: {connection.vendor}, {RUNS} requests per figure, server time in-process")
    have = 0
    for size in SIZES:
        seed(org, members, models, size, have)
        have = size
        mark(org, admin)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        total = GenerationImage.objects.filter(org=org).count()
        print(f"\n{total:,} images")
        admin_client, member_client = (Client(SERVER_NAME="127.0.0.1") for _ in range(2))
        admin_client.force_login(admin.user)
        member = members[1]
        member_client.force_login(member.user)
        # The cursor after image 50,000 (or the middle), as "Load more" would carry it.
        depth = min(50_000, total // 2)
        walker = GenerationImage.objects.filter(org=org, status="done").order_by(
            "-finished_at", "-id"
        )[depth]
        deep_cursor = str(cursor_of(walker, grouped=False))
        assert find_images(admin, GalleryQuery(everyone=True), Cursor.parse(deep_cursor)).images
        since = (walker.finished_at - timedelta(days=30)).date().isoformat()
        until = walker.finished_at.date().isoformat()
        board = Collection.objects.get(org=org)
        figures = [
            ("first page", admin_client, {}, True),
            ("deep page", admin_client, {"cursor": deep_cursor}, True),
            (
                "filtered page",
                admin_client,
                {
                    "model": str(models[1].public_id),
                    "member": str(member.public_id),
                    "since": since,
                    "until": until,
                },
                True,
            ),
            ("member's page", member_client, {}, False),
            ("favourites", admin_client, {"favourites": "on"}, False),
            ("collection", admin_client, {"collection": str(board.public_id)}, False),
            ("grouped", admin_client, {"view": "grouped"}, False),
            ("text search", admin_client, {"q": "aurora"}, False),
        ]
        for label, client, params, goal in figures:
            report(label, timed(client, url, params), goal and size >= 100_000)


if __name__ == "__main__":
    main()
