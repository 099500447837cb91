"""Background work of the workspace: the files of a deleted organization."""

import logging

from celery import shared_task
from django.core.files.storage import default_storage

from lib.tasks import Task

logger = logging.getLogger(__name__)


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
