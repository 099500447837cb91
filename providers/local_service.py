"""The local image provider, run the way a remote provider runs.

`submit` only queues the job; a background task renders it with Pillow after the configured
delay, stores the PNG and POSTs a callback to the image's callback URL. `poll` answers from
storage. So the embedded default exercises the same callback → confirm → download path as kie.ai.
"""

import logging
import random
import time

import requests
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from gallery.media import fetch_url
from providers.adapters.base import (
    ImageJobRequest,
    ImageJobStatus,
    ImageJobSubmitted,
    InvalidOutput,
    loads,
)
from providers.adapters.local import LocalImageAdapter, render_image

logger = logging.getLogger(__name__)


STATES = ("pending", "success", "failed")


def _result_name(task_id: str) -> str:
    return f"local-provider/{task_id}.png"


def absolute_url(name: str) -> str:
    """Where the result is published: a short-lived URL for this one file, as a remote provider's
    CDN link would be (presigned with a bucket, signed by us without one)."""
    return fetch_url(name)


class LocalImageService(LocalImageAdapter):
    def submit(
        self, request: ImageJobRequest, *, timeout: float | None = None
    ) -> ImageJobSubmitted:
        from lib.tasks import enqueue
        from providers import tasks

        submitted = super().submit(request, timeout=timeout)
        enqueue(
            tasks.render_local_image,
            # Jittered like a real provider, so images arrive one by one.
            countdown=self.delay_seconds * random.uniform(0.6, 1.4),
            task_id=submitted.task_id,
            prompt=request.prompt,
            image_urls=list(request.image_urls),
            palette=list(request.palette),
            aspect_ratio=request.aspect_ratio or self.default_aspect_ratio,
            max_side=self.max_side(request.quality),
            callback_url=request.callback_url or "",
        )
        return submitted

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


def render_and_call_back(*, task_id, prompt, image_urls, palette, aspect_ratio, max_side,
                         callback_url) -> None:  # fmt: skip
    """What the local provider's worker does for one job."""
    products = []
    for url in image_urls:
        response = requests.get(url, timeout=(5, 30))
        response.raise_for_status()
        products.append(response.content)
    started = time.monotonic()
    png = render_image(prompt, products, palette, aspect_ratio,
                       seed=int(task_id[-8:], 16), max_side=max_side)  # fmt: skip
    name = default_storage.save(_result_name(task_id), ContentFile(png))
    logger.info("Local provider rendered %s in %.2f s", name, time.monotonic() - started)
    if callback_url:
        body = {"taskId": task_id, "state": "success", "resultUrls": [absolute_url(name)]}
        requests.post(callback_url, json=body, timeout=(5, 10)).raise_for_status()
