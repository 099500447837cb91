"""Background work of the workspace: a deleted organization's rows and files removed and its
members told."""

import logging
from datetime import datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.mail import send_mass_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from lib.tasks import Task, enqueue
from orgs.models import Organization
from workspace import services

logger = logging.getLogger(__name__)

FILES_PER_TASK = 500  # a task's message stays small however large the organization
# The safety net's wait: a deletion's own purge (queued as it commits) has begun by then.
PURGE_AFTER = timedelta(minutes=5)


def delete_organization(*, org: Organization, actor, confirm_name: str) -> None:
    """An admin's or an operator's deletion (services.delete_organization: its arguments and
    errors), then, once that has committed, the removal of the rest and an email to each member
    removed."""
    emails = services.delete_organization(org=org, actor=actor, confirm_name=confirm_name)
    enqueue(purge_organization, org_id=org.pk)
    if emails:
        enqueue(
            tell_members_of_deletion,
            org_name=org.name,
            deleted_by=actor.email if actor is not None and not actor.is_superuser else "",
            deleted_at=timezone.now().isoformat(),  # not when a worker gets to it
            emails=emails,
        )


@shared_task(base=Task, acks_late=True)
def tell_members_of_deletion(
    *, org_name: str, deleted_by: str, deleted_at: str, emails: list[str]
) -> None:
    """One email to each member of a deleted organization (not the one who deleted it). As the
    invitations do, the platform writes it: a fixed subject, the organization's name quoted on
    one line, the admin named by their (verified) address, not their chosen name."""
    context = {
        "org_name": " ".join(org_name.split()),
        "deleted_by": deleted_by,
        "deleted_at": datetime.fromisoformat(deleted_at),
        "url": settings.NERSTUDIO_PUBLIC_URL + reverse("workspace:onboarding"),
    }
    body = render_to_string("workspace/email/organization_deleted.txt", context)
    send_mass_mail(
        [("Your NER Studio organization was deleted", body, None, [email]) for email in emails]
    )


@shared_task(base=Task, acks_late=True)
def purge_organization(org_id: int) -> None:
    """One round (services.purge_organization), its files, and the next round if any."""
    files, more = services.purge_organization(org_id)
    for start in range(0, len(files), FILES_PER_TASK):
        enqueue(delete_stored_files, names=files[start : start + FILES_PER_TASK])
    if more:
        enqueue(purge_organization, org_id=org_id)


@shared_task
def purge_deleted_organizations() -> int:
    """The safety net (periodic): a deleted organization still there some minutes later (its
    purge's message lost, or a worker stopped in a round) is purged again. Returns how many."""
    stale = Organization.objects.filter(deleted_at__lt=timezone.now() - PURGE_AFTER)
    ids = list(stale.values_list("pk", flat=True))
    for org_id in ids:
        enqueue(purge_organization, org_id=org_id)
    return len(ids)


@shared_task(base=Task, acks_late=True)
def delete_stored_files(names: list[str]) -> int:
    """Delete each file from the media storage (local folder or bucket); one that cannot be
    deleted is logged and the rest go on. Returns how many were deleted."""
    deleted = 0
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:
            logger.warning("Could not delete a file of a deleted organization", exc_info=True)
        else:
            deleted += 1
    logger.info("Deleted %d of %d stored files of a deleted organization", deleted, len(names))
    return deleted
