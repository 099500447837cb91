"""Deleting a large organization: 50 members, BENCH_GENERATIONS generations of 4 images (default
5,000, so 20,000 images), a hold and 4 captures in the ledger and 4 provider attempts per
generation. Timed: what the admin waits for (workspace.services.delete_organization: the members
go, the organization is marked deleted), then the background removal round by round
(workspace.services.purge_organization; PURGE_GENERATIONS generations a round, each one
transaction, which is as long as the organization's row stays locked), run here one after
another as the maintenance worker runs them. The files (named, not created) are not timed.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/nerstudio_bench \
    .venv/bin/python bench/delete_organization.py      # without DATABASE_URL: SQLite in a temp dir

No goal is set by an issue; it is printed so a change to the cascade can be compared.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import stack

ROOT = Path(__file__).resolve().parent.parent
GENERATIONS = int(os.environ.get("BENCH_GENERATIONS", 5000))
MEMBERS = 50


def main():
    print(stack.describe_machine(), flush=True)
    if "DATABASE_URL" not in os.environ:
        os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    elif os.environ["DATABASE_URL"].startswith("postgres"):
        stack.recreate_database(os.environ["DATABASE_URL"])
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nerstudio.settings.base")
    os.environ.setdefault("DEBUG", "true")
    os.environ["NERSTUDIO_MEDIA_ROOT"] = tempfile.mkdtemp()  # the files named below do not exist
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from accounts.models import User
    from credits import services as credits
    from credits.models import LedgerEntry
    from generation.models import Generation, GenerationImage
    from orgs.models import Membership
    from providers.models import ProviderAttempt
    from workspace.services import (
        PURGE_GENERATIONS,
        delete_organization,
        open_organization,
        purge_organization,
    )

    org = open_organization(name="Large organization")
    credits.top_up(org=org, amount=10 * GENERATIONS)
    users = [User.objects.create_user(email=f"m{i}@large.test") for i in range(MEMBERS)]
    Membership.objects.bulk_create(
        Membership(org=org, user=user, role="admin" if i == 0 else "member")
        for i, user in enumerate(users)
    )
    provider = org.providers.get(adapter="local-image")
    now = timezone.now()
    generations = Generation.objects.bulk_create(
        Generation(
            org=org,
            user=users[i % MEMBERS],
            provider=provider,
            provider_name=provider.name,
            prompt=f"Prompt {i}",
            count=4,
            credit_cost=1,
            aspect_ratio="1:1",
            status="done",
            finished_at=now,
        )
        for i in range(GENERATIONS)
    )
    images = GenerationImage.objects.bulk_create(
        GenerationImage(
            generation=g,
            org=org,
            user=g.user,
            provider=provider,
            index=k,
            status="done",
            file=f"generated/{org.public_id}/{g.pk}-{k}.png",
            thumbnail=f"generated/{org.public_id}/thumbs/{g.pk}-{k}.webp",
            finished_at=now,
        )
        for g in generations
        for k in range(4)
    )
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(org=org, kind="hold", delta=-4, amount=4, balance_after=0, generation=g)
            for g in generations
        ]
        + [
            LedgerEntry(
                org=org,
                kind="capture",
                delta=0,
                amount=1,
                balance_after=0,
                generation_id=image.generation_id,
                image=image,
            )
            for image in images
        ]
    )
    ProviderAttempt.objects.bulk_create(
        ProviderAttempt(
            provider=provider,
            purpose="submit",
            outcome="success",
            latency_ms=10,
            generation_id=g.pk,
        )
        for g in generations
        for _ in range(4)
    )
    print(
        f"{connection.vendor}: {MEMBERS} members, {len(generations):,} generations, "
        f"{len(images):,} images, {LedgerEntry.objects.filter(org=org).count():,} ledger entries",
        flush=True,
    )
    started = time.perf_counter()
    delete_organization(org=org, actor=users[0], confirm_name=org.name)
    seconds = time.perf_counter() - started
    print(f"delete_organization (the admin's wait): {seconds * 1000:.0f} ms")
    rounds, files, more = [], 0, True
    while more:
        started = time.perf_counter()
        names, more = purge_organization(org.pk)
        rounds.append(time.perf_counter() - started)
        files += len(names)
    total = sum(rounds)
    print(
        f"purge_organization (background): {len(rounds)} rounds of up to {PURGE_GENERATIONS:,} "
        f"generations, {total:.2f} s in all ({total / len(images) * 1000:.2f} ms per image), "
        f"longest round {max(rounds) * 1000:.0f} ms; {files:,} files named for deletion"
    )


if __name__ == "__main__":
    main()
