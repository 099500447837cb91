"""Credit races that only a real database can show (CI runs these on PostgreSQL): many requests
at once through the real service, each thread on its own connection."""

import base64
import json
import threading

import pytest
from django.db import connection, connections
from django.db.models import Sum
from kombu.transport import memory

from credits import limits
from credits import services as credits
from credits.models import CreditAccount, LedgerEntry
from generation import tasks
from generation.models import Generation, GenerationImage
from generation.pipeline.results import fail_image
from library.models import SourceImage
from orgs.models import Membership
from tests.concurrency import race
from tests.factories import MembershipFactory
from tests.images import validated

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="row locking needs PostgreSQL (CI sets it)"
    ),
]


def _race(calls, expected=(credits.InsufficientCredits,)):
    return race(calls, expected)


class BalanceWatcher(threading.Thread):
    """Reads the balance over and over while a race runs, on its own connection."""

    def __init__(self, org):
        super().__init__()
        self.org_id, self.seen, self.done = org.pk, [], threading.Event()

    def run(self):
        try:
            while not self.done.is_set():
                self.seen.append(CreditAccount.objects.get(org_id=self.org_id).balance)
        finally:
            connections.close_all()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.join(10)


def assert_consistent(org):
    balance = CreditAccount.objects.get(org=org).balance
    ledger = LedgerEntry.objects.filter(org=org)
    assert balance == ledger.aggregate(total=Sum("delta"))["total"] >= 0
    assert not ledger.filter(balance_after__lt=0).exists()
    return balance


def drain_queued_generations() -> list[int]:
    """Take the run_generation messages out of Celery's in-memory broker; their generation ids."""
    ids = []
    for queue in memory.Channel.queues.values():
        while not queue.empty():
            message = queue.get_nowait()
            if message["headers"]["task"] == "generation.tasks.run_generation":
                _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
                ids.append(kwargs["generation_id"])
    return ids


@pytest.fixture
def studio(admin_membership, settings, tmp_path):
    """An organization whose local image model costs 3 credits an image, four people who can
    submit, and uploads stored under tmp_path."""
    settings.MEDIA_ROOT = tmp_path
    org = admin_membership.org
    provider = org.providers.get(adapter="local-image")
    provider.catalogue.credit_cost = 3  # the platform's price for the model
    provider.catalogue.save()
    provider.refresh_from_db()
    people = [admin_membership] + [MembershipFactory(org=org) for _ in range(3)]
    return org, provider, people


def test_twenty_submissions_against_credits_for_ten_accept_exactly_ten(
    studio, tmp_path, memory_broker
):  # the pipeline messages wait in memory
    org, provider, people = studio
    credits.top_up(org=org, amount=10 * 2 * 3)  # ten generations of 2 images × 3 credits
    shared = validated("#c0392b")
    drain_queued_generations()

    def submit(i):
        return lambda: tasks.generate(
            membership=people[i % len(people)],
            provider=provider,
            prompt=f"Mug #{i}",
            count=2,
            aspect_ratio=provider.default_aspect_ratio,
            quality=provider.default_quality,
            products=[shared, validated(f"#{i:02x}86de")],
            references=[],
        )

    with BalanceWatcher(org) as watcher:
        outcomes = _race([submit(i) for i in range(20)])

    accepted = [o for o in outcomes if isinstance(o, Generation)]
    refused = [o for o in outcomes if isinstance(o, credits.InsufficientCredits)]
    assert (len(accepted), len(refused)) == (10, 10)
    assert assert_consistent(org) == 0
    assert watcher.seen and min(watcher.seen) >= 0
    assert LedgerEntry.objects.filter(org=org, kind="hold").count() == 10
    assert Generation.objects.filter(org=org).count() == 10
    assert GenerationImage.objects.filter(generation__org=org).count() == 20
    # The shared product is in the brand library once, with each accepted submission's own
    # photo. A refusal that lost the race after the balance check keeps its photo in the library
    # too (uploads are stored before the credit lock is taken, see start_generation); one refused
    # by the balance check stored nothing.
    sources = SourceImage.objects.filter(org=org)
    used = SourceImage.objects.filter(used_as_product__in=accepted).distinct()
    assert used.count() == 11
    assert 11 <= sources.count() <= 21
    assert all((tmp_path / s.file.name).is_file() for s in sources)
    # The pipeline was queued once for each accepted generation, after its commit.
    assert sorted(drain_queued_generations()) == sorted(g.pk for g in accepted)


def test_a_members_monthly_limit_holds_when_their_generations_race(studio, memory_broker):
    """Six generations of 2 × 3 credits at once against a 12-credit limit: exactly two run."""
    org, provider, people = studio
    credits.top_up(org=org, amount=1000)
    member = people[1]
    Membership.objects.filter(pk=member.pk).update(monthly_limit=12)
    member.refresh_from_db()

    def submit(i):
        return lambda: tasks.generate(
            membership=member,
            provider=provider,
            prompt=f"Mug #{i}",
            count=2,
            aspect_ratio=provider.default_aspect_ratio,
            quality=provider.default_quality,
            products=[validated(f"#{i:02x}86de")],
            references=[],
        )

    outcomes = _race([submit(i) for i in range(6)], expected=(limits.MonthlyLimitReached,))

    accepted = [o for o in outcomes if isinstance(o, Generation)]
    assert len(accepted) == 2
    assert limits.monthly_usage(member).spent == 12
    assert assert_consistent(org) == 1000 - 12


@pytest.fixture
def generating(studio):
    """A generation of 4 images × 3 credits, held, with 10 credits left over."""
    org, provider, people = studio
    credits.top_up(org=org, amount=22)
    generation = Generation.objects.create(
        org=org,
        user=people[0].user,
        provider=provider,
        provider_name=provider.name,
        credit_cost=3,
        prompt="A mug",
        aspect_ratio="1:1",
        count=4,
    )
    GenerationImage.objects.bulk_create(generation.new_images(4))
    credits.hold(generation=generation)
    return org, generation


def test_concurrent_captures_and_releases_of_one_image_settle_it_once(generating):
    org, generation = generating
    image = generation.images.first()

    def settle(i):
        move = credits.capture if i % 2 else credits.release
        # Each thread loads its own copy, as a callback task and the reconciler would.
        return lambda: move(
            image=GenerationImage.objects.select_related("generation").get(pk=image.pk)
        )

    outcomes = _race([settle(i) for i in range(12)], expected=())

    settled = [o for o in outcomes if o is not None]
    assert len(settled) == 1
    assert LedgerEntry.objects.filter(image=image).count() == 1
    expected = 10 + (3 if settled[0].kind == "release" else 0)
    assert assert_consistent(org) == expected


def test_concurrent_releases_return_exactly_the_cost_of_each_image(generating):
    org, generation = generating
    image_ids = list(generation.images.values_list("pk", flat=True))

    def release(image_id):
        return lambda: credits.release(
            image=GenerationImage.objects.select_related("generation").get(pk=image_id)
        )

    outcomes = _race([release(image_id) for image_id in image_ids * 3], expected=())

    assert sum(o is not None for o in outcomes) == 4
    assert assert_consistent(org) == 22  # everything held came back, once
    assert LedgerEntry.objects.filter(generation=generation, kind="release").count() == 4


def test_concurrent_failures_of_one_image_release_it_once(generating):
    """The deadline sweeper and a failure callback racing through fail_image."""
    org, generation = generating
    image = generation.images.first()

    outcomes = _race(
        [lambda: fail_image(image.pk, "No result in time") for _ in range(8)],
        expected=(),
    )

    assert outcomes.count(True) == 1
    assert assert_consistent(org) == 13
    assert LedgerEntry.objects.filter(image=image).count() == 1


@pytest.mark.parametrize("attempt", range(3))
def test_the_last_images_ending_at_once_still_end_their_generation(generating, attempt):
    """The deadline sweep failing the last two images at once: the generation ends, failed,
    with every image's credits back once."""
    org, generation = generating
    first, second, *last = generation.images.order_by("index").values_list("pk", flat=True)
    for image_id in (first, second):
        fail_image(image_id, "Failed before")

    race([lambda image_id=image_id: fail_image(image_id, "Timed out") for image_id in last])

    generation.refresh_from_db()
    assert generation.status == Generation.Status.FAILED
    assert generation.finished_at is not None
    assert assert_consistent(org) == 22  # every image's credits back, once
