"""The local image provider, run the way a remote provider runs.

`submit` only queues the job; a background task (`render_local_image`, below) renders it with
Pillow after the configured delay, stores the PNG and POSTs a callback to the image's callback URL.
`poll` answers from storage. So the embedded default exercises the same callback → confirm →
download path as kie.ai.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
import time
import uuid
from datetime import timedelta
from typing import ClassVar

import requests
from celery import shared_task
from django import forms
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from lib.fetch_urls import fetch_url
from lib.tasks import Task, enqueue
from providers.adapters.base import ImageAdapter
from providers.adapters.errors import InvalidOutput, PermanentError
from providers.adapters.http import loads
from providers.adapters.options import AdapterOptions
from providers.adapters.types import ImageJobRequest, ImageJobStatus, ImageJobSubmitted

from .render import QUALITY_SIDES, render_image

logger = logging.getLogger(__name__)

DEFAULT_DELAY_SECONDS = 2.0


class LocalImageOptions(AdapterOptions):
    delay_seconds = forms.FloatField(
        min_value=0,
        max_value=60,
        required=False,
        help_text=f"Seconds before an image arrives, as a remote provider's wait would be, 0 to "
        f"60. Blank: {DEFAULT_DELAY_SECONDS:g}.",
    )
    reuse_renders = forms.BooleanField(
        required=False,
        help_text="Render each size once and send copies: a load test's stand-in for a remote "
        "provider, whose CPU is not this machine's. Off: every image is drawn.",
    )


class LocalImageAdapter(ImageAdapter):
    """Submit returns at once; `render_local_image` renders the job after `delay_seconds` and
    completes it through the same path a remote callback would."""

    slug = "local-image"
    label = "Local renderer (offline)"
    default_model = "local-render"
    aspect_ratios = ("1:1", "4:5", "3:4", "2:3", "9:16", "5:4", "4:3", "3:2", "16:9", "21:9")
    default_aspect_ratio = "1:1"
    qualities = tuple(QUALITY_SIDES)
    default_quality = "standard"
    max_images = 4
    options_form: ClassVar[type[AdapterOptions]] = LocalImageOptions

    @property
    def delay_seconds(self) -> float:
        return self.options.get("delay_seconds", DEFAULT_DELAY_SECONDS)

    def max_side(self, quality: str | None) -> int:
        return QUALITY_SIDES.get(quality or self.default_quality, QUALITY_SIDES["standard"])

    def submit(
        self, request: ImageJobRequest, *, timeout: float | None = None
    ) -> ImageJobSubmitted:
        if (request.aspect_ratio or self.default_aspect_ratio) not in self.aspect_ratios:
            raise PermanentError(
                f"{self.label} does not support aspect ratio {request.aspect_ratio}.",
                code="invalid_request",
            )
        if (request.quality or self.default_quality) not in self.qualities:
            raise PermanentError(
                f"{self.label} does not support quality {request.quality}.", code="invalid_request"
            )
        task_id = f"local-{uuid.uuid4().hex}"
        enqueue(
            render_local_image,
            # Jittered like a real provider, so images arrive one by one.
            countdown=self.delay_seconds * random.uniform(0.6, 1.4),
            task_id=task_id,
            prompt=request.prompt,
            image_urls=list(request.image_urls),
            palette=list(request.palette),
            aspect_ratio=request.aspect_ratio or self.default_aspect_ratio,
            max_side=self.max_side(request.quality),
            callback_url=request.callback_url or "",
            reuse=bool(self.options.get("reuse_renders")),
        )
        return ImageJobSubmitted(task_id)

    def poll(self, task_id: str, *, timeout: float | None = None) -> ImageJobStatus:
        name = _result_name(task_id)
        if default_storage.exists(name):
            return ImageJobStatus(task_id, "success", (absolute_url(name),))
        return ImageJobStatus(task_id, "pending")

    def parse_callback(self, body: bytes) -> ImageJobStatus:
        payload = loads(body)
        if not isinstance(payload, dict) or not isinstance(payload.get("taskId"), str):
            raise InvalidOutput(
                "The local provider's callback has no task id.", code="bad_callback"
            )
        state = payload.get("state")
        urls = payload.get("resultUrls") or ()
        if state not in ("pending", "success", "failed") or not isinstance(urls, list):
            raise InvalidOutput("The local provider's callback is malformed.", code="bad_callback")
        return ImageJobStatus(
            payload["taskId"], state, tuple(u for u in urls if isinstance(u, str))
        )

    def _probe(self) -> str:
        return "The local renderer is built in and ready."


@shared_task(base=Task, acks_late=True)
def render_local_image(
    *,
    task_id: str,
    prompt: str,
    image_urls: list[str],
    palette: list[str],
    aspect_ratio: str,
    max_side: int,
    callback_url: str,
    reuse: bool = False,
) -> None:
    """What the local provider's worker does for one job: CPU work, on the `render` queue
    (settings.CELERY_TASK_ROUTES) so it never holds up the pipeline's own queues. With `reuse`
    (the `reuse_renders` option) each worker process draws each size once and stores copies."""
    started = time.monotonic()
    with _reusing if reuse else contextlib.nullcontext():
        png = _rendered.get((aspect_ratio, max_side)) if reuse else None
        if png is None:
            png = _render(task_id, prompt, image_urls, palette, aspect_ratio, max_side)
        if reuse:
            _rendered[(aspect_ratio, max_side)] = png
    name = default_storage.save(_result_name(task_id), ContentFile(png))
    logger.info("Local provider rendered %s in %.2f s", name, time.monotonic() - started)
    if callback_url:
        body = {"taskId": task_id, "state": "success", "resultUrls": [absolute_url(name)]}
        requests.post(callback_url, json=body, timeout=(5, 10)).raise_for_status()


_rendered: dict[tuple[str, int], bytes] = {}  # reuse_renders: one image per size and process
_reusing = threading.Lock()


def _render(task_id, prompt, image_urls, palette, aspect_ratio, max_side) -> bytes:
    products = []
    for url in image_urls:
        response = requests.get(url, timeout=(5, 30))
        response.raise_for_status()
        products.append(response.content)
    seed = int(task_id[-8:], 16)
    return render_image(prompt, products, palette, aspect_ratio, seed=seed, max_side=max_side)


TASK_ID = re.compile(r"local-[0-9a-f]{32}")


def _result_name(task_id: str) -> str:
    """Where a task's result is stored. The id comes back in callbacks: only the shape `submit`
    makes is a name (anything else could point elsewhere in storage)."""
    if not TASK_ID.fullmatch(task_id):
        raise PermanentError("Not a task of the local renderer.", code="unknown_task")
    return f"{RESULTS_FOLDER}/{task_id}.png"


RESULTS_FOLDER = "local-provider"
RESULT_RETENTION = timedelta(hours=1)  # at the least: see result_retention


def result_retention() -> timedelta:
    """How long the local provider keeps a result, as a remote provider keeps its results for a
    while (kie.ai: 14 days) and then drops them: long after the image's deadline, by which the
    pipeline has collected it (a copy of its own) or failed it."""
    return max(RESULT_RETENTION, 2 * timedelta(seconds=settings.NERSTUDIO_IMAGE_DEADLINE_SECONDS))


@shared_task
def expire_local_results() -> int:
    """The periodic clean-up (beat): delete the local provider's results older than
    result_retention(). Without it every generated image stayed stored twice. Returns how many
    were deleted."""
    try:
        _, names = default_storage.listdir(RESULTS_FOLDER)
    except FileNotFoundError:
        return 0  # nothing rendered yet
    cutoff = timezone.now() - result_retention()
    expired = 0
    for name in names:
        if not TASK_ID.fullmatch(name.removesuffix(".png")):
            continue  # not one of ours
        path = f"{RESULTS_FOLDER}/{name}"
        try:
            if default_storage.get_modified_time(path) < cutoff:
                default_storage.delete(path)
                expired += 1
        except FileNotFoundError:
            continue  # deleted meanwhile
    if expired:
        logger.info("Expired %d local provider results", expired)
    return expired


def absolute_url(name: str) -> str:
    """Where the result is published: a short-lived URL for this one file, as a remote provider's
    CDN link would be (presigned with a bucket, signed by us without one)."""
    return fetch_url(name)
