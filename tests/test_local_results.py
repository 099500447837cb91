"""The local provider keeps its results a while, as a remote provider does, then drops them:
without that every image generated offline stayed stored twice (its result and the pipeline's
copy)."""

import os
import time
import uuid
from datetime import timedelta

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from providers.local import image as local_image


def _result(age: timedelta, name: str | None = None) -> str:
    name = default_storage.save(
        name or f"local-provider/local-{uuid.uuid4().hex}.png", ContentFile(b"png")
    )
    then = time.time() - age.total_seconds()
    os.utime(default_storage.path(name), (then, then))
    return name


def test_results_older_than_the_retention_are_deleted_and_the_rest_kept(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.NERSTUDIO_IMAGE_DEADLINE_SECONDS = 600  # retention: the larger of 1 h and 2 × this
    old = _result(timedelta(hours=1, minutes=5))
    fresh = _result(timedelta(minutes=50))
    foreign = _result(timedelta(days=3), name="local-provider/notes.png")

    assert local_image.expire_local_results() == 1

    assert not default_storage.exists(old)
    assert default_storage.exists(fresh)
    assert default_storage.exists(foreign)  # not a result of the renderer: left alone


def test_results_outlive_a_long_image_deadline(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.NERSTUDIO_IMAGE_DEADLINE_SECONDS = 3 * 3600  # an image may wait 3 h for its result
    waiting = _result(timedelta(hours=4))

    assert local_image.expire_local_results() == 0
    assert default_storage.exists(waiting)


def test_nothing_rendered_yet_is_nothing_to_expire(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path

    assert local_image.expire_local_results() == 0
